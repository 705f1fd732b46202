"""The lab's personas: each one a host the project had never seen, as data shared by image and VM.

A :class:`Persona` is everything the lab needs to build, wire and reset one kind of host: its
Debian suite, host name, bond, NICs (MACs, PCI slots, QEMU device ids) and subnets. Product code
never reads it: it is the truth that the lab tests' *oracles* compare bondbot's findings with.

- ``bookworm`` (the seed, :data:`SEED`): Debian 12, ``lab-host``, ``bond0`` on ``eno1``/``eno2``.
  The guest names its NICs from these MACs (systemd ``.link`` files baked into the image), and
  QEMU gives its devices the same ids, so ``eno1`` means one port to guest, QMP and operator.
- ``trixie`` (:data:`TRIXIE`): Debian 13, ``edge-07``, ``uplink0``. The guest's own udev names
  its NICs; the lab only pins their PCI slots (``addr=``) so the names are stable, and reads the
  names the guest gave at build time into the image manifest (:meth:`Persona.named`). QEMU's
  device ids stay ``nic1``... whatever the guest calls them.

The module constants (``BOND``, ``ENO1``, ``GATEWAY``...) are the seed persona's, as before.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = [
    "Nic",
    "Persona",
    "SEED",
    "TRIXIE",
    "PERSONAS",
    "DEFAULT_PERSONA",
    "get_persona",
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


@dataclass(frozen=True)
class Nic:
    """One guest NIC: its name in the guest, MAC, link speed in Mb/s, and its role.

    ``device_id`` is QEMU's id for the device (QMP ``set_link`` takes it); empty means the same as
    the guest's name. ``pci_slot`` pins the device's slot, which is what udev's predictable names
    derive from. ``hub`` is the QEMU hub ("switch") the NIC is cabled to (0: the management net).
    """

    name: str
    mac: str
    speed_mbps: int
    in_bond: bool
    device_id: str = ""
    pci_slot: int | None = None
    hub: int = 1

    @property
    def qemu_id(self) -> str:
        return self.device_id or self.name


@dataclass(frozen=True)
class Persona:
    """One lab host: what the image and the VM are made of (see the module docstring)."""

    id: str
    summary: str
    suite: str
    host_name: str
    bond: str
    bond_net: str
    gateway: str
    bond_address: str
    bond_prefix: int
    mgmt_net: str
    mgmt_address: str
    nics: tuple[Nic, ...]
    # True: the guest's udev names the NICs; their names come from the image manifest.
    udev_names: bool = False
    # Whether the inventory entry names the bond (False: bondbot must discover it).
    inventory_bond: bool = True
    python3: bool = True
    # Extra bonds some scenarios create (name, subnet address), on the spare NICs.
    second_bond: str = ""
    second_bond_address: str = ""

    @property
    def mgmt(self) -> Nic:
        return next(n for n in self.nics if n.hub == 0)

    @property
    def bond_nics(self) -> tuple[Nic, ...]:
        return tuple(n for n in self.nics if n.in_bond)

    @property
    def spare_nics(self) -> tuple[Nic, ...]:
        """NICs on the second switch, for a second bond; unconfigured otherwise."""
        return tuple(n for n in self.nics if n.hub == 2)

    @property
    def resolved(self) -> bool:
        """Whether every NIC has its guest name (udev-named personas: after ``named``)."""
        return all(n.name for n in self.nics)

    def named(self, names: dict[str, str]) -> Persona:
        """This persona with the guest's NIC names filled in (``names``: QEMU id -> guest name)."""
        nics = tuple(dataclasses.replace(n, name=names.get(n.qemu_id, n.name)) for n in self.nics)
        return dataclasses.replace(self, nics=nics)

    def nic(self, name: str) -> Nic:
        """The NIC the guest calls ``name``; a clear error for anything else (names reach QMP)."""
        for candidate in self.nics:
            if candidate.name and candidate.name == name:
                return candidate
        from lab.errors import InvalidArgument

        known = ", ".join(n.name for n in self.nics if n.name) or "(NIC names not known yet)"
        raise InvalidArgument(f"unknown lab interface {name!r}: the {self.id} lab VM has {known}")


MGMT = Nic("mgmt0", "52:54:00:00:00:10", 1000, in_bond=False, hub=0)
ENO1 = Nic("eno1", "52:54:00:20:00:01", 10000, in_bond=True)
ENO2 = Nic("eno2", "52:54:00:20:00:02", 10000, in_bond=True)

SEED = Persona(
    id="bookworm",
    summary="Debian 12, kernel 6.1, NetworkManager 1.42: lab-host, bond0 on eno1/eno2, profile bond0, python3",
    suite="bookworm",
    host_name="lab-host",
    bond="bond0",
    # The seed runbook's gateway is 10.20.0.1; the lab uses the same subnet so outputs read alike.
    bond_net="10.20.0.0/24",
    gateway="10.20.0.1",
    bond_address="10.20.0.10",
    bond_prefix=24,
    mgmt_net="10.0.2.0/24",
    mgmt_address="10.0.2.15",
    nics=(MGMT, ENO1, ENO2),
)

TRIXIE = Persona(
    id="trixie",
    summary="Debian 13, kernel 6.12, NetworkManager 1.52: edge-07, bond uplink0 on udev-named NICs, "
            "nmcli-named profiles, no python3, also ifupdown",
    suite="trixie",
    host_name="edge-07",
    bond="uplink0",
    bond_net="10.77.0.0/24",
    gateway="10.77.0.1",
    bond_address="10.77.0.20",
    bond_prefix=24,
    mgmt_net="10.0.2.0/24",
    mgmt_address="10.0.2.15",
    nics=(
        Nic("", "52:54:00:77:00:10", 1000, in_bond=False, device_id="mgmt", pci_slot=3, hub=0),
        Nic("", "52:54:00:77:00:01", 25000, in_bond=True, device_id="nic1", pci_slot=4),
        Nic("", "52:54:00:77:00:02", 25000, in_bond=True, device_id="nic2", pci_slot=5),
        Nic("", "52:54:00:77:01:03", 10000, in_bond=False, device_id="nic3", pci_slot=6, hub=2),
        Nic("", "52:54:00:77:01:04", 10000, in_bond=False, device_id="nic4", pci_slot=7, hub=2),
    ),
    udev_names=True,
    inventory_bond=False,
    python3=False,
    second_bond="uplink1",
    second_bond_address="10.77.1.20",
)

PERSONAS: dict[str, Persona] = {p.id: p for p in (SEED, TRIXIE)}
DEFAULT_PERSONA = SEED.id


def get_persona(name: str) -> Persona:
    """The persona called ``name``, or a clear error listing the ones that exist."""
    try:
        return PERSONAS[name]
    except KeyError:
        from lab.errors import InvalidArgument

        raise InvalidArgument(f"unknown lab persona {name!r}: choose one of {', '.join(PERSONAS)}") from None


# The seed persona's values, under the names the rest of the project has always used.
HOST_NAME = SEED.host_name
BOND = SEED.bond
BOND_NET = SEED.bond_net
GATEWAY = SEED.gateway
BOND_ADDRESS = SEED.bond_address
BOND_PREFIX = SEED.bond_prefix
MGMT_NET = SEED.mgmt_net
MGMT_ADDRESS = SEED.mgmt_address
NICS = SEED.nics
BOND_NICS = SEED.bond_nics


def nic(name: str) -> Nic:
    """The seed NIC called ``name``; a clear error for anything else."""
    return SEED.nic(name)
