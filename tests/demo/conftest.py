"""The demo runs against the shared lab VM (one boot per test process)."""

from lab.testing import lab_env, lab_host, lab_vm  # noqa: F401
