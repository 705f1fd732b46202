"""Remote execution over SSH (asyncssh): connections, timeouts, host keys, inventory, fan-out."""
