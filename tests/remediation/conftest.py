"""Remediation lab tests share the lab VMs of the test run (see :mod:`lab.testing`)."""

from lab.testing import lab_env, lab_env2, lab_host, lab_host2, lab_vm, lab_vm2  # noqa: F401 - pytest fixtures
