"""Remediation lab tests share the one lab VM of the test run (see :mod:`lab.testing`)."""

from lab.testing import lab_env, lab_host, lab_vm  # noqa: F401 - pytest fixtures
