"""What goes into the lab image, as data: its hash decides when the cached image is stale.

Everything that changes the built image belongs here (suite, packages, files written into the
root file system, build steps' version), and nothing that doesn't (the mirror, paths): a change
to the recipe changes :func:`recipe_hash`, so ``bondbot lab build`` rebuilds exactly then.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from lab.network import BOND_NICS, HOST_NAME, NICS, SEED, TRIXIE, Persona
from lab.scenarios import DEFAULT_SCENARIO, KEYFILE_DIR, SCENARIOS, base_keyfiles, keyfiles

__all__ = ["RootfsFile", "Recipe", "RECIPE", "TRIXIE_RECIPE", "RECIPES", "recipe_for", "recipe_hash"]

# Bump when the build procedure in lab.image changes in a way the data below does not show.
BUILD_VERSION = 3


@dataclass(frozen=True)
class RootfsFile:
    """A file written into the root file system after the packages are installed."""

    path: str
    content: str
    mode: int = 0o644


@dataclass(frozen=True)
class Recipe:
    suite: str
    # debootstrap --include cannot resolve network-manager's dependencies, so the packages are
    # installed afterwards with apt-get in a chroot.
    packages: tuple[str, ...]
    files: tuple[RootfsFile, ...]
    masked_units: tuple[str, ...]
    disk_size: str = "2G"
    build_version: int = BUILD_VERSION
    extra: dict[str, str] = field(default_factory=dict)


def _link_file(name: str, mac: str) -> RootfsFile:
    return RootfsFile(
        f"/etc/systemd/network/10-{name}.link",
        f"[Match]\nMACAddress={mac}\n\n[Link]\nName={name}\n",
    )


def _common_files(host_name: str) -> list[RootfsFile]:
    """What every persona's guest has: host name, sshd, NM and initramfs settings."""
    return [
        RootfsFile("/etc/hostname", f"{host_name}\n"),
        RootfsFile("/etc/hosts", f"127.0.0.1\tlocalhost\n127.0.1.1\t{host_name}\n"),
        # Root is mounted read-write from the kernel command line; no fsck pass on a scratch disk.
        RootfsFile("/etc/fstab", "/dev/vda\t/\text4\tdefaults\t0\t0\n"),
        RootfsFile(
            "/etc/ssh/sshd_config.d/bondbot-lab.conf",
            "# Only the ed25519 key generated at build time, so its pinned copy is the only one.\n"
            "HostKey /etc/ssh/ssh_host_ed25519_key\n"
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UseDNS no\n",
        ),
        RootfsFile(
            "/etc/NetworkManager/conf.d/bondbot-lab.conf",
            "[main]\n# Only the profiles we write; no 'Wired connection 1' on unconfigured NICs.\n"
            "no-auto-default=*\n",
        ),
        # virtio drivers and ext4 only: a small initramfs unpacks noticeably faster under TCG.
        RootfsFile("/etc/initramfs-tools/conf.d/bondbot-lab.conf", "MODULES=list\nCOMPRESS=zstd\n"),
        RootfsFile("/etc/initramfs-tools/modules", "virtio_pci\nvirtio_blk\nvirtio_net\next4\n"),
        RootfsFile("/etc/modules-load.d/bondbot-lab.conf", "bonding\n"),
        RootfsFile("/etc/systemd/journald.conf.d/bondbot-lab.conf", "[Journal]\nStorage=volatile\n"),
    ]


def _files() -> tuple[RootfsFile, ...]:
    files = _common_files(HOST_NAME)
    files += [_link_file(n.name, n.mac) for n in NICS]
    keyfile_set = {**base_keyfiles(), **keyfiles(SCENARIOS[DEFAULT_SCENARIO])}
    files += [RootfsFile(f"{KEYFILE_DIR}/{name}", text, 0o600) for name, text in keyfile_set.items()]
    return tuple(files)


RECIPE = Recipe(
    suite="bookworm",
    packages=(
        "linux-image-amd64",
        "systemd-sysv",
        "udev",
        "dbus",
        "kmod",
        "libpam-systemd",
        "network-manager",
        "openssh-server",
        "iproute2",
        "iputils-ping",
        "ethtool",
        "procps",
        "zstd",
        # A precise sampler (e.g. for failover timing) runs on the host itself.
        "python3-minimal",
    ),
    files=_files(),
    masked_units=(
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
        "dpkg-db-backup.timer",
        "e2scrub_all.timer",
        "e2scrub_reap.service",
        "fstrim.timer",
        "getty@tty1.service",
    ),
    extra={"bond_nics": ",".join(n.name for n in BOND_NICS)},
)


def _trixie_files() -> tuple[RootfsFile, ...]:
    from lab.edge_scenarios import MGMT_PROFILE, mgmt_keyfile

    # No .link files: the guest's udev names the NICs. Only the management NIC has a profile in
    # the image (matched by MAC); the bond's are made by nmcli at the build's first boot.
    files = _common_files(TRIXIE.host_name)
    files.append(RootfsFile(f"{KEYFILE_DIR}/{MGMT_PROFILE}.nmconnection", mgmt_keyfile(TRIXIE), 0o600))
    return tuple(files)


def _script_digest() -> str:
    """The first boot's incident script (NIC names as placeholders): a change rebuilds the image."""
    from lab.edge_scenarios import EDGE_SCENARIOS, edge_apply_script

    placeholder = TRIXIE.named({n.qemu_id: f"<{n.qemu_id}>" for n in TRIXIE.nics})
    script = edge_apply_script(placeholder, EDGE_SCENARIOS[DEFAULT_SCENARIO])
    return hashlib.sha256(script.encode()).hexdigest()[:16]


TRIXIE_RECIPE = Recipe(
    suite="trixie",
    # No python3 (and no perl beyond the perl-base that Debian's minimal base requires):
    # what a minimal Debian 13 host has. ifupdown + ifenslave for the bond NM does not manage.
    packages=tuple(p for p in RECIPE.packages if p != "python3-minimal") + ("ifupdown", "ifenslave"),
    files=_trixie_files(),
    masked_units=RECIPE.masked_units,
    extra={
        "persona": TRIXIE.id,
        # Booted once at build time: the guest's NIC names are read into the manifest, and the
        # incident scenario is made with nmcli (its profile names are nmcli's own).
        "first_boot": "discover-nic-names,scenario=incident",
        "pci_slots": ",".join(f"{n.qemu_id}@{n.pci_slot}" for n in TRIXIE.nics),
        "macs": ",".join(f"{n.qemu_id}={n.mac}" for n in TRIXIE.nics),
        "incident_script": _script_digest(),
    },
)

RECIPES: dict[str, Recipe] = {SEED.id: RECIPE, TRIXIE.id: TRIXIE_RECIPE}


def recipe_for(persona: Persona | str) -> Recipe:
    """The recipe of a persona (or persona id)."""
    key = persona if isinstance(persona, str) else persona.id
    return RECIPES[key]


def recipe_hash(recipe: Recipe = RECIPE) -> str:
    """A short, stable hash of everything that shapes the image."""
    blob = json.dumps(asdict(recipe), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
