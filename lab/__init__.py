"""A real bonded Linux host in a QEMU VM, for the tests and the demo."""
