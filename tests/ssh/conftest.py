from tests.ssh.fixtures import ssh_host, sshd_server  # noqa: F401
