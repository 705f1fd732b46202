"""The lab's wiring: NIC names, MAC addresses and addresses, shared by the image and the VM.

The guest names its NICs from these MACs (systemd ``.link`` files baked into the image), and QEMU
gives its devices the same ids, so ``eno1`` means the same port to the guest, to QMP ``set_link``
and to the operator.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Nic",
    "MGMT",
    "ENO1",
    "ENO2",
    "BOND_NICS",
    "NICS",
    "BOND",
    "BOND_ADDRESS",
    "BOND_PREFIX",
    "GATEWAY",
    "BOND_NET",
    "MGMT_ADDRESS",
    "MGMT_NET",
    "HOST_NAME",
    "nic",
]

HOST_NAME = "lab-host"
BOND = "bond0"
# The seed runbook's gateway is 10.20.0.1; the lab uses the same subnet so outputs read alike.
BOND_NET = "10.20.0.0/24"
GATEWAY = "10.20.0.1"
BOND_ADDRESS = "10.20.0.10"
BOND_PREFIX = 24
MGMT_NET = "10.0.2.0/24"
MGMT_ADDRESS = "10.0.2.15"


@dataclass(frozen=True)
class Nic:
    """One guest NIC: its name (also the QEMU device id), MAC, and link speed in Mb/s."""

    name: str
    mac: str
    speed_mbps: int
    in_bond: bool


MGMT = Nic("mgmt0", "52:54:00:00:00:10", 1000, in_bond=False)
ENO1 = Nic("eno1", "52:54:00:20:00:01", 10000, in_bond=True)
ENO2 = Nic("eno2", "52:54:00:20:00:02", 10000, in_bond=True)
NICS = (MGMT, ENO1, ENO2)
BOND_NICS = (ENO1, ENO2)


def nic(name: str) -> Nic:
    """The NIC called ``name``; a clear error for anything else (names reach QMP and the CLI)."""
    for candidate in NICS:
        if candidate.name == name:
            return candidate
    from lab.errors import InvalidArgument

    known = ", ".join(n.name for n in NICS)
    raise InvalidArgument(f"unknown lab interface {name!r}: the lab VM has {known}")
