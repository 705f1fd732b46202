"""What goes into the lab image, as data: its hash decides when the cached image is stale.

Everything that changes the built image belongs here (suite, packages, files written into the
root file system, build steps' version), and nothing that doesn't (the mirror, paths): a change
to the recipe changes :func:`recipe_hash`, so ``bondbot lab build`` rebuilds exactly then.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from lab.network import BOND_NICS, HOST_NAME, NICS
from lab.scenarios import DEFAULT_SCENARIO, KEYFILE_DIR, SCENARIOS, base_keyfiles, keyfiles

__all__ = ["RootfsFile", "Recipe", "RECIPE", "recipe_hash"]

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


def _files() -> tuple[RootfsFile, ...]:
    files = [
        RootfsFile("/etc/hostname", f"{HOST_NAME}\n"),
        RootfsFile("/etc/hosts", f"127.0.0.1\tlocalhost\n127.0.1.1\t{HOST_NAME}\n"),
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


def recipe_hash(recipe: Recipe = RECIPE) -> str:
    """A short, stable hash of everything that shapes the image."""
    blob = json.dumps(asdict(recipe), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
