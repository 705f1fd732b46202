from lab.testing import lab_env, lab_host, lab_vm  # noqa: F401, E402  (tests marked lab)
from tests.ssh.fixtures import ssh_host, sshd_server  # noqa: F401

try:  # the second persona (PERSONA2.md); its tests fail with "fixture not found" where it is absent
    from lab.testing import lab_env2, lab_host2, lab_vm2  # noqa: F401
except ImportError:
    pass
