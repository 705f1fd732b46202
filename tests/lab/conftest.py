"""Lab tests use the shared lab VM fixtures from :mod:`lab.testing` (one boot per run)."""

from lab.testing import lab_env, lab_host, lab_vm  # noqa: F401
