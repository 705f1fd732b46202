"""Lab tests use the shared lab VM fixtures from :mod:`lab.testing` (one boot per persona per run)."""

from lab.testing import lab_env, lab_env2, lab_host, lab_host2, lab_vm, lab_vm2  # noqa: F401
