"""Building and finding the lab image: Debian bookworm with the bonding driver and NetworkManager.

The build needs root (debootstrap, chroot) but no loop devices: ``mkfs.ext4 -d`` turns the root
file system directory into a disk image directly. The VM boots the kernel and initrd copied out of
that file system (``-kernel``/``-initrd``), so the disk needs no boot loader.

The SSH host key and the client key are generated at build time and stored with the image: ``up``
pins the host key from here instead of trusting whatever the VM presents on first contact.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lab.errors import BuildError, ImageMissing
from lab.paths import images_dir
from lab.recipe import RECIPE, Recipe, recipe_hash

__all__ = ["Image", "find_image", "build_image", "debian_mirror", "DEFAULT_MIRROR"]

DEFAULT_MIRROR = "http://deb.debian.org/debian"
_BUILD_TOOLS = ("debootstrap", "chroot", "mkfs.ext4", "ssh-keygen", "mount", "umount")

Progress = Callable[[str], None]
#: ``first_boot(image_dir, persona_id, work_dir, progress) -> manifest entries`` (``lab.firstboot``).
FirstBoot = Callable[[Path, str, Path, Progress], dict[str, object]]


@dataclass(frozen=True)
class Image:
    """A built image and the keys that go with it."""

    directory: Path

    @property
    def disk(self) -> Path:
        return self.directory / "disk.img"

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"

    @property
    def host_public_key(self) -> Path:
        """The guest sshd's ed25519 public key (the only host key it offers)."""
        return self.directory / "ssh_host_ed25519_key.pub"

    @property
    def client_key(self) -> Path:
        """The private key authorized for root in the guest."""
        return self.directory / "id_ed25519"

    @property
    def manifest(self) -> dict[str, object]:
        return json.loads((self.directory / "manifest.json").read_text())

    @property
    def recipe_hash(self) -> str:
        return self.directory.name

    def host_key_line(self) -> str:
        """``ssh-ed25519 AAAA...`` without the comment."""
        kind, blob = self.host_public_key.read_text().split()[:2]
        return f"{kind} {blob}"


def find_image(base: Path, recipe: Recipe = RECIPE) -> Image:
    """The image for ``recipe`` in the lab directory ``base``, or :class:`ImageMissing` saying how to build it."""
    image = Image(images_dir(base) / recipe_hash(recipe))
    if not (image.directory / "manifest.json").is_file():
        where = images_dir(base)
        persona = recipe.extra.get("persona")
        what = f"the {persona} lab image" if persona else "the lab image"
        raise ImageMissing(
            f"{what} is not built (no image for recipe {recipe_hash(recipe)} in {where}): "
            "run `bondbot lab build` (about 2-5 minutes per persona, needs root and the Debian mirror)"
        )
    return image


def debian_mirror(override: str | None = None) -> str:
    """The caller's ``override`` (the CLI's ``BONDBOT_LAB_MIRROR``), else the Debian mirror apt on
    this machine is configured with."""
    if override:
        return override
    candidates: list[Path] = [Path("/etc/apt/sources.list")]
    sources_d = Path("/etc/apt/sources.list.d")
    if sources_d.is_dir():
        candidates += sorted(sources_d.glob("*.sources")) + sorted(sources_d.glob("*.list"))
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        for match in re.finditer(r"(?:^URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", text, re.M):
            uri = match.group(1).rstrip("/")
            if re.search(r"/debian$", uri) and "security" not in uri:
                return uri
    return DEFAULT_MIRROR


def _log_run(cmd: list[str], log: Path, step: str, **kwargs: object) -> None:
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
        raise BuildError(f"lab image build failed at {step} (exit {proc.returncode}); log: {log}\n{tail}")


def _mounts_under(root: Path) -> list[str]:
    root_s = str(root.resolve())
    found = []
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            target = line.split()[1].replace("\\040", " ")
            if target == root_s or target.startswith(root_s + "/"):
                found.append(target)
    return found


def _unmount_all(root: Path) -> None:
    for target in sorted(_mounts_under(root), key=len, reverse=True):
        if subprocess.run(["umount", target], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", target], capture_output=True)
    left = _mounts_under(root)
    if left:
        raise BuildError(f"could not unmount {left}; remove them by hand before building again")


def _safe_rmtree(path: Path) -> None:
    """Remove a build directory, never while /dev or /proc are still bound inside it."""
    if path.exists():
        _unmount_all(path)
        shutil.rmtree(path)


@contextlib.contextmanager
def _chroot_mounts(rootfs: Path, debs: Path) -> Iterator[None]:
    binds = [
        (["mount", "-t", "proc", "proc"], rootfs / "proc"),
        (["mount", "-t", "sysfs", "sysfs"], rootfs / "sys"),
        (["mount", "--bind", "/dev"], rootfs / "dev"),
        (["mount", "--bind", "/dev/pts"], rootfs / "dev/pts"),
        # Downloaded packages are kept outside the image, so a rebuild does not fetch them again.
        (["mount", "--bind", str(debs)], rootfs / "var/cache/apt/archives"),
    ]
    try:
        for cmd, target in binds:
            target.mkdir(parents=True, exist_ok=True)
            subprocess.run([*cmd, str(target)], check=True, capture_output=True)
        yield
    finally:
        _unmount_all(rootfs)


@contextlib.contextmanager
def _build_lock(base: Path) -> Iterator[None]:
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _check_build_tools() -> None:
    missing = [tool for tool in _BUILD_TOOLS if shutil.which(tool) is None]
    if missing:
        raise BuildError(
            f"cannot build the lab image: {', '.join(missing)} not found; "
            "install the Debian packages debootstrap, e2fsprogs and openssh-client (./run setup)"
        )
    if os.geteuid() != 0:
        raise BuildError("cannot build the lab image: debootstrap and chroot need root")


def _write_rootfs_files(rootfs: Path, recipe: Recipe) -> None:
    for f in recipe.files:
        target = rootfs / f.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f.content)
        target.chmod(f.mode)


def _install_keys(rootfs: Path, out: Path, log: Path) -> None:
    ssh_dir = rootfs / "etc/ssh"
    for old in ssh_dir.glob("ssh_host_*"):
        old.unlink()
    host_key = ssh_dir / "ssh_host_ed25519_key"
    _log_run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@lab-host", "-f", str(host_key)],
             log, "generating the host key")
    shutil.copy(host_key.with_suffix(".pub"), out / "ssh_host_ed25519_key.pub")
    client_key = out / "id_ed25519"
    _log_run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bondbot-lab", "-f", str(client_key)],
             log, "generating the client key")
    root_ssh = rootfs / "root/.ssh"
    root_ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    (root_ssh / "authorized_keys").write_text(client_key.with_suffix(".pub").read_text())
    (root_ssh / "authorized_keys").chmod(0o600)


def _image_suite(directory: Path) -> str | None:
    """The suite an image was built from (None: no readable manifest, a broken leftover)."""
    try:
        return str(json.loads((directory / "manifest.json").read_text()).get("suite"))
    except (OSError, ValueError, AttributeError):
        return None


def _chroot_output(rootfs: Path, *cmd: str) -> str:
    return subprocess.run(["chroot", str(rootfs), *cmd], check=True, capture_output=True, text=True).stdout


def build_image(
    *,
    base: Path,
    force: bool = False,
    recipe: Recipe = RECIPE,
    progress: Progress = lambda _msg: None,
    first_boot: FirstBoot | None = None,
    mirror: str | None = None,
) -> tuple[Image, bool]:
    """Build the image for ``recipe`` unless it is cached; returns ``(image, built_now)``.

    ``first_boot``: how to boot a freshly built image once (``lab.firstboot.first_boot``), for the
    recipes that need it (``extra["first_boot"]``: the NIC names are read from the running guest).
    It is a parameter because booting needs ``lab.vm``, which sits above the image cache.
    ``mirror``: the Debian mirror to debootstrap from (default: ``debian_mirror()``'s).

    Concurrent builds (``./run setup`` in two shells) wait for each other through a lock file;
    the image appears atomically (built in a temporary directory, then renamed), so a half-built
    image is never mistaken for a cached one. Older images are removed after a successful build.
    """
    if not force:
        with contextlib.suppress(ImageMissing):
            return find_image(base, recipe), False
    if recipe.extra.get("first_boot") and first_boot is None:
        raise BuildError(f"the {recipe.extra.get('persona')} image needs a first boot: pass first_boot= "
                         "(lab.firstboot.first_boot)")
    _check_build_tools()
    with _build_lock(base):
        if not force:
            with contextlib.suppress(ImageMissing):
                return find_image(base, recipe), False
        key = recipe_hash(recipe)
        started = time.monotonic()
        work = base / f"build-{key}"
        _safe_rmtree(work)
        work.mkdir(parents=True)
        out = work / "out"
        out.mkdir()
        rootfs = work / "rootfs"
        log = base / "build.log"
        log.write_text(f"building lab image {key}\n")
        debs = base / "debs"
        debs.mkdir(exist_ok=True)
        mirror = debian_mirror(mirror)
        try:
            progress(f"debootstrap {recipe.suite} from {mirror} (log: {log})")
            _log_run(
                ["debootstrap", "--variant=minbase", f"--cache-dir={debs}", recipe.suite, str(rootfs), mirror],
                log, "debootstrap",
            )
            (rootfs / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\n# no daemons in the build chroot\nexit 101\n")
            (rootfs / "usr/sbin/policy-rc.d").chmod(0o755)
            resolv = rootfs / "etc/resolv.conf"
            resolv.unlink(missing_ok=True)
            shutil.copy("/etc/resolv.conf", resolv)
            env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LANG": "C.UTF-8"}
            with _chroot_mounts(rootfs, debs):
                progress(f"installing {len(recipe.packages)} packages in the chroot")
                _log_run(["chroot", str(rootfs), "apt-get", "update", "-q"], log, "apt-get update", env=env)
                _log_run(
                    ["chroot", str(rootfs), "apt-get", "install", "-y", "-q", "--no-install-recommends",
                     *recipe.packages],
                    log, "apt-get install", env=env,
                )
                progress("configuring the guest")
                _write_rootfs_files(rootfs, recipe)
                _install_keys(rootfs, out, log)
                if recipe.masked_units:
                    _log_run(["chroot", str(rootfs), "systemctl", "mask", *recipe.masked_units],
                             log, "masking units", env=env)
                _log_run(["chroot", str(rootfs), "update-initramfs", "-u", "-k", "all"],
                         log, "update-initramfs", env=env)
                kernel_pkg = _chroot_output(rootfs, "dpkg-query", "-W", "-f", "${Version}", "linux-image-amd64")
                nm_version = _chroot_output(rootfs, "dpkg-query", "-W", "-f", "${Version}", "network-manager")
                package_versions = _chroot_output(
                    rootfs, "dpkg-query", "-W", "-f", "${Package}=${Version}\n", *recipe.packages
                ).split()
            for path in (rootfs / "usr/sbin/policy-rc.d", resolv):
                path.unlink(missing_ok=True)
            for lists in (rootfs / "var/lib/apt/lists").glob("*_*"):
                lists.unlink()
            kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
            initrds = sorted((rootfs / "boot").glob("initrd.img-*"))
            if len(kernels) != 1 or len(initrds) != 1:
                raise BuildError(f"expected one kernel and one initrd in the image, found {kernels} {initrds}")
            shutil.copy(kernels[0], out / "vmlinuz")
            shutil.copy(initrds[0], out / "initrd.img")
            kernel_release = kernels[0].name.removeprefix("vmlinuz-")
            progress(f"making the {recipe.disk_size} ext4 disk image")
            _log_run(["mkfs.ext4", "-q", "-F", "-L", "lab-root", "-d", str(rootfs), str(out / "disk.img"),
                      recipe.disk_size], log, "mkfs.ext4")
            persona_id = recipe.extra.get("persona", "bookworm")
            booted: dict[str, object] = {}
            if recipe.extra.get("first_boot") and first_boot is not None:
                booted = first_boot(out, persona_id, work, progress)
            manifest = {
                "recipe_hash": key,
                "persona": persona_id,
                "suite": recipe.suite,
                "kernel_release": kernel_release,
                "kernel_package": kernel_pkg,
                "network_manager": nm_version,
                "packages": package_versions,
                "mirror": mirror,
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "build_seconds": round(time.monotonic() - started, 1),
                **booted,
            }
            (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
            _safe_rmtree(rootfs)
            target = images_dir(base) / key
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                shutil.rmtree(target)
            os.rename(out, target)
        finally:
            _safe_rmtree(work)
        # Older images of the same persona (suite) only: the other personas' stay valid.
        for old in images_dir(base).iterdir():
            if old.name != key and old.is_dir() and _image_suite(old) in (recipe.suite, None):
                shutil.rmtree(old, ignore_errors=True)
        progress(f"built lab image {key} in {time.monotonic() - started:.0f} s")
        return Image(target), True
