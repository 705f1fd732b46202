"""The lab VM's lifecycle: boot in the background, SSH into it, cut links, change scenarios, stop.

One VM per *instance* directory (``bondbot lab`` uses ``default``; the tests use their own), with
its state in ``state.json`` there, so separate commands (``up``, then ``link``, then ``down``)
find the running VM again.

Wiring (see :mod:`lab.network`): ``mgmt0`` is on QEMU user networking with a free host port
forwarded to the guest's sshd; ``eno1`` and ``eno2`` are on one QEMU hub together with a second
user-mode network that plays the gateway ``10.20.0.1`` (it answers ping and ARP) and forwards a
second host port to sshd on the bond's own address. QMP ``set_link`` on ``eno1`` is, as the guest
sees it, the switch port being shut: NO-CARRIER, ``ethtool``: ``Link detected: no``.

The disk is a qcow2 overlay on the cached image, so every ``up`` starts from the image's state
(the ``incident`` scenario), while a guest reboot keeps what the guest saved.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import (
    BootError,
    GuestCommandError,
    GuestPanic,
    ImageMissing,
    InvalidArgument,
    LabAlreadyRunning,
    LabNotRunning,
    QemuMissing,
)
from lab.hostconfig import pin_known_host, write_inventory_entry
from lab.image import Image, find_image
from lab.network import DEFAULT_PERSONA, SEED, Persona, get_persona
from lab.paths import instance_dir, socket_dir
from lab.qmp import qmp_command
from lab.scenarios import DEFAULT_SCENARIO, get_scenario, script_for

__all__ = ["LabVM", "VMState", "CommandResult", "INVENTORY_NAME", "qemu_binary", "kvm_usable"]

log = logging.getLogger(__name__)

INVENTORY_NAME = "lab-host"
QEMU = "qemu-system-x86_64"
KVM_DEVICE = "/dev/kvm"
# A working KVM guest prints its kernel banner within a second; where KVM is broken it never does.
KVM_PROBE_SECONDS = 15.0
_PANIC = b"Kernel panic - not syncing"
_PANIC_RETRIES = 2  # boots again after a guest panic under TCG, at most this many times
Progress = Callable[[str], None]


@dataclass(frozen=True)
class CommandResult:
    """What one command printed in the guest, as the fixtures record it."""

    command: str
    exit_status: int
    stdout: str
    stderr: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VMState:
    """What ``up`` leaves in ``state.json`` for later commands."""

    pid: int
    ssh_port: int
    bond_ssh_port: int
    accel: str
    image: str
    started_at: float
    boot_seconds: float = 0.0
    scenario: str = DEFAULT_SCENARIO
    ssh_via_bond: bool = False
    links: dict[str, bool] = field(default_factory=lambda: {n.name: True for n in SEED.nics})
    persona: str = DEFAULT_PERSONA
    # The guest's network state right after ``scenario`` applied (see ``_fingerprint``).
    fingerprint: str = ""
    inventory: str | None = None
    known_hosts: str | None = None


def qemu_binary(override: str | None = None) -> str:
    """The QEMU executable: the caller's ``override`` (a path or a command name, e.g. a wrapper the
    tests put in front of the real one; the CLI's is ``BONDBOT_QEMU``), else qemu-system-x86_64 on
    PATH; a clear error if missing."""
    if override:
        path = shutil.which(override)
        if path is None:
            raise QemuMissing(f"the QEMU given ({override!r}; the CLI reads BONDBOT_QEMU=) is not an executable")
        return path
    path = shutil.which(QEMU)
    if path is None:
        raise QemuMissing(
            f"{QEMU} not found: install the Debian package qemu-system-x86 (./run setup does it)"
        )
    return path


def kvm_usable(device: str | None = None) -> bool:
    """Whether /dev/kvm can be opened; a usable device still may not boot a guest (see ``up``)."""
    try:
        fd = os.open(device or KVM_DEVICE, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def _qemu_reason(message: str, limit: int = 300) -> str:
    """QEMU's own words, on one line: what the fallback message and the verdict file quote."""
    text = " ".join(line.strip() for line in message.splitlines() if line.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _slot(pci_slot: int | None) -> str:
    """``,addr=N`` for a pinned PCI slot: predictable NIC names (``ensN``) derive from it."""
    return "" if pci_slot is None else f",addr={pci_slot:#x}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"qemu-system" in cmdline and b"bondbot-lab" in cmdline


def _exited(pid: int) -> bool:
    """The process has exited (gone, or a zombie: its files, and their locks, are closed)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X")


class LabVM:
    """A lab VM instance. Construction touches nothing; ``up()`` boots, ``down()`` stops."""

    def __init__(self, instance: Path | None = None, *, lab_dir: Path | None = None, image: Image | None = None,
                 kvm_verdict: Path | None = None, kvm_device: str | None = None,
                 persona: Persona | str | None = None, qemu: str | None = None, accel: str = "auto") -> None:
        """``persona``: which lab host (default: the seed ``bookworm``; a running instance's state
        says which it runs). ``lab_dir``: the lab directory (the entry point's setting), where the
        images are found and, with no ``instance``, the instance lives: ``default`` for the seed, the
        persona's id else, so ``bondbot lab up --persona trixie`` runs next to the seed's VM. Without
        a ``lab_dir``, give the ``instance`` and the ``image``. ``qemu``: the QEMU to run (see
        ``qemu_binary``); ``accel``: ``up``'s default accelerator. Both are the entry point's
        settings (the CLI's ``BONDBOT_QEMU`` and ``BONDBOT_LAB_ACCEL``): the lab reads no environment."""
        if isinstance(persona, str):
            persona = get_persona(persona)
        self._persona = persona
        default_name = "default" if persona is None or persona.id == SEED.id else persona.id
        if instance is None:
            if lab_dir is None:
                raise TypeError("LabVM needs its instance directory or the lab directory (lab_dir=)")
            instance = instance_dir(default_name, lab_dir)
        self.dir = instance
        self._lab_dir = lab_dir
        self._image = image
        self._kvm_device = kvm_device or KVM_DEVICE
        # Where a failed KVM start is remembered; tests give their own, so a wrapper that fails
        # under KVM does not teach the developer's lab that KVM is broken.
        self._kvm_verdict = kvm_verdict
        self._qemu = qemu
        self._accel = accel

    # --- files -----------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    @property
    def console_log(self) -> Path:
        return self.dir / "console.log"

    @property
    def known_hosts(self) -> Path:
        """The lab's own pinned known_hosts, used by its SSH client whatever the settings say."""
        return self.dir / "known_hosts"

    @property
    def qmp_socket(self) -> Path:
        return socket_dir(self.dir) / "qmp.sock"

    @property
    def base_persona(self) -> Persona:
        """The persona as declared (udev-named NICs without names): the running state's, else the
        one given, else the seed."""
        state = self._read_state()
        if state is not None and _pid_alive(state.pid):
            return get_persona(state.persona)
        return self._persona or SEED

    @property
    def persona(self) -> Persona:
        """The persona with the guest's NIC names (from the image manifest where udev names them)."""
        base = self.base_persona
        if not base.udev_names:
            return base
        try:
            names = self.image.manifest.get("nic_names") or {}
        except (OSError, ValueError):
            names = {}
        return base.named(names) if isinstance(names, dict) else base

    @property
    def image(self) -> Image:
        if self._image is None:
            state = self._read_state()
            if state:
                self._image = Image(Path(state.image))
            else:
                from lab.recipe import recipe_for

                if self._lab_dir is None:
                    raise ImageMissing(f"no lab image given for {self.dir} and no lab directory to find one in")
                self._image = find_image(self._lab_dir, recipe=recipe_for(self.base_persona))
        return self._image

    def _read_state(self) -> VMState | None:
        try:
            return VMState(**json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def _write_state(self, state: VMState) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), indent=2) + "\n")
        os.replace(tmp, self.state_file)

    # --- status ----------------------------------------------------------------------------
    def state(self) -> VMState:
        """The running VM's state, or :class:`LabNotRunning`."""
        state = self._read_state()
        if state is None or not _pid_alive(state.pid):
            flag = "" if self.base_persona.id == SEED.id else f" --persona {self.base_persona.id}"
            raise LabNotRunning(f"the lab VM is not running ({self.dir}): start it with `bondbot lab up{flag}`")
        return state

    def is_running(self) -> bool:
        state = self._read_state()
        return state is not None and _pid_alive(state.pid)

    def status(self) -> dict[str, Any]:
        """A summary for ``bondbot lab status`` (also when the VM is down)."""
        state = self._read_state()
        running = state is not None and _pid_alive(state.pid)
        info: dict[str, Any] = {"running": running, "instance": str(self.dir)}
        if running and state is not None:
            persona = self.persona
            info.update(
                persona=persona.id,
                host=persona.host_name,
                pid=state.pid,
                accel=state.accel,
                ssh=f"root@127.0.0.1 -p {self.ssh_port(state)}",
                ssh_port=state.ssh_port,
                bond_ssh_port=state.bond_ssh_port,
                scenario=state.scenario,
                ssh_via_bond=state.ssh_via_bond,
                links={k: ("up" if v else "down") for k, v in state.links.items()},
                uptime_s=round(time.time() - state.started_at),
                boot_seconds=state.boot_seconds,
                image=state.image,
            )
        return info

    # --- lifecycle -------------------------------------------------------------------------
    def _qemu_argv(self, accel: str, ssh_port: int, bond_ssh_port: int, overlay: Path) -> list[str]:
        image = self.image
        persona = self.base_persona
        argv = [
            qemu_binary(self._qemu),
            "-name", "bondbot-lab,process=bondbot-lab",
            "-machine", "pc",
            "-nodefaults",
            "-display", "none",
            # Two vCPUs under TCG too: multi-threaded TCG can race the guest kernel's own code
            # patching (trixie's 6.12 oopsed in sched_clock_cpu at boot, twice in this project's
            # CI), but one vCPU boots trixie in 69 s instead of 40 s and reboots in 88 s instead of
            # 53 s here. A panic is rare and seen on the console at once: ``up`` and ``reboot``
            # start the guest again instead.
            "-smp", "2",
            "-m", "1024",
        ]
        if accel == "kvm":
            argv += ["-accel", "kvm", "-cpu", "host"]
        else:
            argv += ["-accel", "tcg,thread=multi", "-cpu", "max"]
        mgmt = persona.mgmt
        argv += [
            "-kernel", str(image.kernel),
            "-initrd", str(image.initrd),
            "-append", "root=/dev/vda rw console=ttyS0,115200 systemd.show_status=0",
            "-drive", f"file={overlay},if=virtio,format=qcow2,cache=unsafe",
            "-serial", f"file:{self.console_log}",
            "-qmp", f"unix:{self.qmp_socket},server=on,wait=off",
            # Management NIC: the operator's way in, never part of the bond.
            "-netdev", f"user,id=net-mgmt,net={persona.mgmt_net},hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
            "-device", f"virtio-net-pci,netdev=net-mgmt,id={mgmt.qemu_id},mac={mgmt.mac}{_slot(mgmt.pci_slot)}",
            # The "switch": a hub with both bond NICs and a user-mode gateway on it.
            "-netdev",
            f"user,id=net-gw,net={persona.bond_net},host={persona.gateway},"
            f"hostfwd=tcp:127.0.0.1:{bond_ssh_port}-{persona.bond_address}:22",
            "-netdev", "hubport,id=hub-gw,hubid=1,netdev=net-gw",
        ]
        # Hub 2 (spare NICs, for a second bond) has no gateway: carrier only.
        for n in persona.nics:
            if n.hub != 0:
                argv += [
                    "-netdev", f"hubport,id=hub-{n.qemu_id},hubid={n.hub}",
                    "-device",
                    f"virtio-net-pci,netdev=hub-{n.qemu_id},id={n.qemu_id},mac={n.mac},"
                    f"speed={n.speed_mbps},duplex=full{_slot(n.pci_slot)}",
                ]
        argv += ["-daemonize", "-pidfile", str(self.dir / "qemu.pid")]
        return argv

    def _start_qemu(self, accel: str, *, ports: tuple[int, int] | None = None) -> tuple[int, int, int]:
        """Start QEMU daemonized; returns (pid, ssh_port, bond_ssh_port). Retries on a port race.

        With ``ports`` (a restart after a panic): the same ports and the same disk, not a fresh one."""
        overlay = self.dir / "disk.qcow2"
        if ports is None:
            overlay.unlink(missing_ok=True)
            subprocess.run(
                ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(self.image.disk), str(overlay)],
                check=True, capture_output=True,
            )
        last_error = ""
        for _attempt in range(3 if ports is None else 1):
            ssh_port, bond_ssh_port = ports or (_free_port(), _free_port())
            if ssh_port == bond_ssh_port:
                continue
            self.console_log.unlink(missing_ok=True)
            self.qmp_socket.unlink(missing_ok=True)
            proc = subprocess.run(
                self._qemu_argv(accel, ssh_port, bond_ssh_port, overlay),
                capture_output=True, text=True, stdin=subprocess.DEVNULL,
            )
            if proc.returncode == 0:
                pid = int((self.dir / "qemu.pid").read_text().strip())
                return pid, ssh_port, bond_ssh_port
            last_error = proc.stderr.strip() or f"exit status {proc.returncode}"
            if "hostfwd" not in last_error and "forward" not in last_error:
                break
        if ports is None:
            overlay.unlink(missing_ok=True)
        raise BootError(f"QEMU did not start: {last_error}")

    def up(
        self,
        *,
        timeout: float = 300.0,
        accel: str | None = None,
        inventory_path: Path | None = None,
        known_hosts_path: Path | None = None,
        progress: Progress = lambda _msg: None,
        kvm_probe_seconds: float = KVM_PROBE_SECONDS,
    ) -> VMState:
        """Boot the VM and wait until SSH answers with the pinned host key.

        ``accel``: ``tcg``, ``kvm`` or ``auto`` (default: the VM's own, ``auto`` unless given). With
        ``auto``, KVM is tried when /dev/kvm opens, unless it failed before on this host (same
        kernel and QEMU). *Any* failure of that KVM start falls back to TCG: QEMU refusing to
        start or aborting at once (as it does with "failed to set MSR 0x10a" where nested KVM
        cannot run a guest), QEMU exiting during the boot, or a guest that prints no kernel banner
        within ``kvm_probe_seconds`` or never answers SSH. The reason (QEMU's own message where
        there is one) is reported once through ``progress`` and remembered, so the next ``up``
        goes straight to TCG. An explicit ``kvm`` or ``tcg`` never falls back. Then the inventory
        entry and the pinned host key are written (when the paths are given).
        """
        qemu_binary(self._qemu)
        if self.is_running():
            raise LabAlreadyRunning(
                f"the lab VM is already running ({self.dir}); `bondbot lab down` stops it"
            )
        image = self.image  # ImageMissing before anything is started
        self.dir.mkdir(parents=True, exist_ok=True)
        pin_known_host(self.known_hosts, "127.0.0.1", 1, image.host_key_line())  # creates the file
        accel = (accel or self._accel or "auto").lower()
        if accel not in {"auto", "kvm", "tcg"}:
            raise InvalidArgument(f"unknown accelerator {accel!r}: use auto, kvm or tcg")
        verdict_file = self.kvm_verdict_file
        candidates = [accel]
        note = ""
        if accel == "auto":
            candidates = ["tcg"]
            if not kvm_usable(self._kvm_device):
                note = f"; {self._kvm_device} cannot be opened"
            elif self._kvm_failed_before(verdict_file):
                note = f"; KVM failed on this host before, see {verdict_file}"
            else:
                candidates = ["kvm", "tcg"]
        panics = 0
        while candidates:
            choice = candidates.pop(0)
            may_fall_back = choice == "kvm" and len(candidates) > 0
            started = time.time()
            progress(f"booting the lab VM ({choice}{note if choice == 'tcg' else ''})")
            try:
                pid, ssh_port, bond_ssh_port = self._start_qemu(choice)
            except BootError as exc:
                if not may_fall_back:
                    raise
                self._fall_back(verdict_file, str(exc), progress)
                continue
            persona = self.persona
            state = VMState(pid=pid, ssh_port=ssh_port, bond_ssh_port=bond_ssh_port, accel=choice,
                            image=str(image.directory), started_at=started,
                            links={n.name or n.qemu_id: True for n in persona.nics}, persona=persona.id)
            self._write_state(state)
            for port in (ssh_port, bond_ssh_port):
                pin_known_host(self.known_hosts, "127.0.0.1", port, image.host_key_line())
            try:
                if may_fall_back:
                    self._wait_console(b"Linux version", timeout=kvm_probe_seconds, state=state)
                self.wait_ssh(timeout=60.0 if may_fall_back else timeout, state=state)
            except BaseException as exc:
                self.down()
                if isinstance(exc, GuestPanic) and choice == "tcg" and panics < _PANIC_RETRIES:
                    # A boot-time oops under TCG is QEMU's race, not the image's fault: boot again.
                    panics += 1
                    progress(f"the guest kernel panicked while booting (TCG); booting again ({panics}/{_PANIC_RETRIES})")
                    candidates.insert(0, choice)
                    continue
                if may_fall_back and isinstance(exc, BootError):
                    self._fall_back(verdict_file, str(exc), progress)
                    continue
                raise
            state.boot_seconds = round(time.time() - started, 1)
            state.inventory = str(inventory_path) if inventory_path else None
            state.known_hosts = str(known_hosts_path) if known_hosts_path else None
            self._write_state(state)
            self._publish(state)
            return state
        raise BootError("the lab VM did not boot")  # pragma: no cover - loop always returns/raises

    @property
    def kvm_verdict_file(self) -> Path:
        """Where a failed KVM start is remembered (per host fingerprint)."""
        return self._kvm_verdict or (self._lab_dir or self.dir.parent) / "kvm-verdict.json"

    def _fall_back(self, verdict_file: Path, error: str, progress: Progress) -> None:
        """Remember that KVM failed here and say why, once: the next ``up`` skips KVM silently."""
        reason = _qemu_reason(error)
        self._remember_kvm_failure(verdict_file, reason)
        progress(f"KVM did not work on this host ({reason}); falling back to TCG "
                 f"(remembered in {verdict_file})")

    def _host_fingerprint(self) -> str:
        """Kernel release, QEMU binary and version: a change to any of them may make KVM work."""
        binary = qemu_binary(self._qemu)
        qemu = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
        return f"{os.uname().release}|{binary}|{qemu}"

    def _kvm_failed_before(self, verdict_file: Path) -> bool:
        try:
            return json.loads(verdict_file.read_text()).get("failed_on") == self._host_fingerprint()
        except (OSError, ValueError):
            return False

    def _remember_kvm_failure(self, verdict_file: Path, reason: str) -> None:
        verdict_file.parent.mkdir(parents=True, exist_ok=True)
        verdict = {"failed_on": self._host_fingerprint(), "reason": reason,
                   "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        verdict_file.write_text(json.dumps(verdict) + "\n")

    def down(self) -> bool:
        """Stop the VM (politely through QMP, then by signal); returns whether one was running.

        Always safe to call: it also cleans up after a VM that died on its own.
        """
        state = self._read_state()
        was_running = state is not None and _pid_alive(state.pid)
        if state is not None:
            for port in (state.ssh_port, state.bond_ssh_port):
                control = socket_dir(self.dir) / f"ssh-{port}"
                if control.exists():
                    subprocess.run(self._ssh_base(port) + ["-O", "exit", "root@127.0.0.1"],
                                   capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
        if was_running and state is not None:
            with contextlib.suppress(Exception):
                qmp_command(self.qmp_socket, "quit", timeout=5)
            deadline = time.monotonic() + 10
            while _pid_alive(state.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            for sig in (signal.SIGTERM, signal.SIGKILL):
                if not _pid_alive(state.pid):
                    break
                with contextlib.suppress(ProcessLookupError):
                    os.kill(state.pid, sig)
                deadline = time.monotonic() + 5
                while _pid_alive(state.pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
        for path in (self.state_file, self.dir / "disk.qcow2", self.dir / "qemu.pid", self.qmp_socket):
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            socket_dir(self.dir).rmdir()  # only when empty
        return was_running

    # --- SSH -------------------------------------------------------------------------------
    def ssh_port(self, state: VMState | None = None) -> int:
        """The port the operator's SSH uses now: the bond's forward in ``ssh-via-bond``."""
        state = state or self.state()
        return state.bond_ssh_port if state.ssh_via_bond else state.ssh_port

    def _ssh_base(self, port: int, *, multiplex: bool = True) -> list[str]:
        # One multiplexed connection per port: a command then costs ~0.1 s instead of a key
        # exchange with an emulated CPU. ``multiplex=False`` proves reachability afresh.
        control = (
            ["-o", "ControlMaster=auto", "-o", f"ControlPath={socket_dir(self.dir)}/ssh-%p",
             "-o", "ControlPersist=30"]
            if multiplex else ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
        )
        return [
            "ssh", "-F", "/dev/null", *control,
            "-i", str(self.image.client_key),
            "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "HostKeyAlgorithms=ssh-ed25519",
            "-o", "ConnectTimeout=10",
            "-o", "ServerAliveInterval=5",
            "-o", "ServerAliveCountMax=3",
            "-o", "LogLevel=ERROR",
            "-p", str(port),
        ]

    def ssh_argv(self, command: str | None = None, *, port: int | None = None,
                 multiplex: bool = True) -> list[str]:
        """The OpenSSH command line that runs ``command`` (or a shell) as root in the guest."""
        argv = self._ssh_base(port or self.ssh_port(), multiplex=multiplex) + ["root@127.0.0.1"]
        if command is not None:
            argv += ["--", command]
        return argv

    def ssh(self, command: str, *, input: str | None = None, timeout: float = 60.0,
            check: bool = False, port: int | None = None, multiplex: bool = True) -> CommandResult:
        """Run ``command`` (a shell command line) as root in the guest; never raises on a non-zero
        exit unless ``check``. A connection failure is exit status 255, as with ``ssh``."""
        try:
            proc = subprocess.run(
                self.ssh_argv(command, port=port, multiplex=multiplex),
                input=input if input is not None else "",
                capture_output=True, text=True, timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise GuestCommandError(f"{command!r} did not finish within {timeout:.0f} s in the lab VM") from None
        result = CommandResult(command, proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise GuestCommandError(
                f"{command!r} failed in the lab VM (exit {proc.returncode}): {proc.stderr.strip()[-500:]}",
                exit_status=proc.returncode, stderr=proc.stderr,
            )
        return result

    def wait_ssh(self, *, timeout: float = 300.0, state: VMState | None = None,
                 port: int | None = None) -> None:
        """Wait until sshd answers (with the pinned key); :class:`BootError` with the console's
        last lines if it does not, or if QEMU exits meanwhile."""
        state = state or self.state()
        port = port or self.ssh_port(state)
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if not _pid_alive(state.pid):
                raise BootError(f"QEMU exited while booting the lab VM.\n{self._console_tail()}")
            if self._panicked():
                raise GuestPanic(f"the guest kernel panicked while booting.\n{self._console_tail()}")
            try:
                result = self.ssh("true", timeout=30, port=port)
            except GuestCommandError as exc:
                last = str(exc)
            else:
                if result.exit_status == 0:
                    return
                last = result.stderr.strip()
                if "REMOTE HOST IDENTIFICATION HAS CHANGED" in last or "Host key verification failed" in last:
                    raise BootError(f"the lab VM presented a host key other than the pinned one: {last}")
            time.sleep(1)
        raise BootError(
            f"SSH on port {port} did not answer within {timeout:.0f} s (last: {last or 'nothing'}).\n"
            f"{self._console_tail()}"
        )

    def _panicked(self, since: int = 0) -> bool:
        """A kernel panic on the console (after byte ``since``: the console file only grows)."""
        try:
            with self.console_log.open("rb") as console:
                console.seek(since)
                return _PANIC in console.read()
        except OSError:
            return False

    def _console_size(self) -> int:
        try:
            return self.console_log.stat().st_size
        except OSError:
            return 0

    def _wait_console(self, marker: bytes, *, timeout: float, state: VMState) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if marker in self.console_log.read_bytes():
                    return
            if not _pid_alive(state.pid):
                break
            time.sleep(0.5)
        raise BootError(f"the guest printed no {marker.decode()!r} within {timeout:.0f} s")

    def _console_tail(self, lines: int = 15) -> str:
        try:
            text = self.console_log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no console log)"
        return f"console ({self.console_log}), last lines:\n" + "\n".join(text[-lines:])

    def reboot(self, *, timeout: float = 300.0, crash: bool = False,
               progress: Progress = lambda _msg: None) -> float:
        """Reboot the guest (``systemctl reboot``) and wait until SSH answers again; returns seconds.

        The disk and the QMP link states survive; the guest's runtime state does not. A guest
        kernel that panics on the way (the console says so; under TCG a QEMU race has done it) is
        started again by a new QEMU on the same disk, ports and link states, twice at most, then
        ``GuestPanic``. ``crash``: instead of a clean reboot, ``sync`` and crash the guest's kernel
        (``sysrq c``), so that this recovery runs for real (a test's way to exercise it).
        """
        state = self.state()
        started = time.monotonic()
        boot_id = self.ssh("cat /proc/sys/kernel/random/boot_id", check=True).stdout.strip()
        seen = self._console_size()
        if crash:  # in the background, so that this session ends before the kernel does
            self.ssh("sync; setsid sh -c 'sleep 1; echo c > /proc/sysrq-trigger' </dev/null >/dev/null 2>&1 &",
                     timeout=30, check=True)
        else:
            self.ssh("systemctl reboot", timeout=30)
        restarts = 0
        while time.monotonic() - started < timeout:
            time.sleep(2)
            if self._panicked(since=seen):
                if restarts >= _PANIC_RETRIES + (1 if crash else 0):
                    raise GuestPanic(f"the guest kernel panicked during the reboot, {restarts + 1} times.\n"
                                     f"{self._console_tail()}")
                restarts += 1
                progress(f"the guest kernel panicked during the reboot; starting it again on the same disk "
                         f"({restarts})")
                state = self._restart_on_the_same_disk(state)
                seen = 0
                continue
            try:
                result = self.ssh("cat /proc/sys/kernel/random/boot_id", timeout=30)
            except GuestCommandError:
                continue  # a connection to a dying or panicked guest: the next round looks again
            if result.exit_status == 0 and result.stdout.strip() not in ("", boot_id):
                self._wait_network_manager(deadline=started + timeout)
                return time.monotonic() - started
            if not _pid_alive(state.pid):
                raise BootError(f"QEMU exited during the reboot.\n{self._console_tail()}")
        raise BootError(f"the lab VM did not come back within {timeout:.0f} s.\n{self._console_tail()}")

    def _restart_on_the_same_disk(self, state: VMState) -> VMState:
        """Stop a panicked guest's QEMU and start a new one on its disk, ports and link states."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(state.pid, signal.SIGKILL)
        # Gone, not just no longer QEMU-looking: a dying process keeps its disk and pid-file locks
        # (CI: "cannot create PID file: Cannot lock pid file") until the kernel has reaped it.
        deadline = time.monotonic() + 20
        while not _exited(state.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        (self.dir / "qemu.pid").unlink(missing_ok=True)
        pid, _, _ = self._start_qemu(state.accel, ports=(state.ssh_port, state.bond_ssh_port))
        state.pid = pid
        self._write_state(state)
        for nic in self.persona.nics:  # a new QEMU starts with every link up
            if not state.links.get(nic.name, True):
                self.link(nic.name, False)
        return self.state()

    def _ensure_network_manager(self, progress: Progress) -> None:
        """Every scenario is made with nmcli. A NetworkManager found stopped in the guest (CI saw
        "NetworkManager is not running" at three tests' set-up, on trixie, after scenario resets
        restarted it) is started again, and what its journal said is logged, so the lab's own
        trouble is one warning and not every later test's error."""
        script = (
            "systemctl is-active --quiet NetworkManager && exit 0\n"
            "systemctl is-enabled --quiet NetworkManager || exit 0\n"
            "echo 'NetworkManager was not running:'\n"
            "systemctl status NetworkManager --no-pager -n 0 2>&1 | head -n 5\n"
            "journalctl -u NetworkManager --no-pager -n 15 2>&1\n"
            "systemctl reset-failed NetworkManager; systemctl start NetworkManager\n"
            "i=0; until nmcli -t -f RUNNING general 2>/dev/null | grep -qx running; do "
            "i=$((i+1)); [ $i -lt 150 ] || { echo 'and it did not start again'; exit 1; }; sleep 0.2; done\n"
        )
        result = self.ssh("sh -s", input=script, timeout=90)
        if result.stdout.strip():
            log.warning("lab VM %s: %s", self.dir, result.stdout.strip()[-3000:])
            progress(result.stdout.strip().splitlines()[0])
        if result.exit_status != 0:
            raise GuestCommandError(f"NetworkManager is not running in the lab VM and did not start: "
                                    f"{(result.stdout + result.stderr).strip()[-800:]}",
                                    exit_status=result.exit_status, stderr=result.stderr)

    def _wait_network_manager(self, *, deadline: float) -> None:
        """After a reboot sshd answers before NetworkManager does; scenario resets use nmcli, so
        wait (bounded) until NetworkManager is active, or is not enabled at all."""
        probe = ("systemctl is-active --quiet NetworkManager"
                 " || ! systemctl is-enabled --quiet NetworkManager")
        while time.monotonic() < deadline:
            if self.ssh(probe, timeout=30).exit_status == 0:
                return
            time.sleep(1)
        raise BootError(f"NetworkManager did not start after the reboot.\n{self._console_tail()}")

    # --- switch ports and scenarios --------------------------------------------------------
    def link(self, name: str, up: bool) -> None:
        """Shut (``up=False``) or re-enable the switch port of the NIC the guest calls ``name``
        (the seed: eno1, eno2, mgmt0; trixie: the names its udev gave, e.g. ens4)."""
        state = self.state()
        target = self.persona.nic(name)
        qmp_command(self.qmp_socket, "set_link", {"name": target.qemu_id, "up": bool(up)})
        state.links[target.name] = bool(up)
        self._write_state(state)

    def scenario(self, name: str, *, progress: Progress = lambda _msg: None) -> VMState:
        """Put the host into scenario ``name`` through NetworkManager; links are all set up first."""
        state = self.state()
        persona = self.persona
        scenario = get_scenario(name, persona)
        for n in persona.nics:  # QMP state is cheap to reassert; the state file may predate a crash
            self.link(n.name, True)
        state = self.state()
        if state.ssh_via_bond:
            # Back to the management path, which the previous scenario cut.
            state.ssh_via_bond = False
            self._write_state(state)
            self.wait_ssh(timeout=60, state=state)
        fast = not scenario.ssh_via_bond
        if fast and state.scenario == scenario.name and state.fingerprint \
                and self._fingerprint() == state.fingerprint:
            # Nothing the script would reset has changed since it ran: applying it again would
            # give the same state, at 5-40 s of nmcli calls under TCG (every lab_host* fixture
            # resets to incident before each test, most of them after a read-only test).
            progress(f"scenario {scenario.name} is in place (state unchanged since it was applied)")
            self._publish(state)
            return state
        progress(f"applying scenario {scenario.name}: {scenario.summary}")
        state.fingerprint = ""
        self._write_state(state)
        self._ensure_network_manager(progress)
        self.ssh("sh -s", input=script_for(persona, scenario), timeout=120, check=True)
        state.scenario = scenario.name
        if fast:
            state.fingerprint = self._fingerprint()
        if scenario.ssh_via_bond:
            self.wait_ssh(timeout=60, state=state, port=state.bond_ssh_port)
            self.link(persona.mgmt.name, False)
            state = self.state()
            state.ssh_via_bond = True
        self._write_state(state)
        self._publish(state)
        return state

    def _fingerprint(self) -> str:
        """A digest of everything a scenario script resets, read in one SSH round trip without
        NetworkManager: its saved profiles, /etc/network/interfaces, every bond's state (/proc and
        sysfs, link failure counts included) and every interface's addresses and link state."""
        import hashlib

        result = self.ssh(
            "cd /etc/NetworkManager/system-connections && cksum -- * 2>/dev/null; "
            "cksum /etc/network/interfaces 2>/dev/null; ls /run/NetworkManager/system-connections 2>/dev/null; "
            "cat /sys/class/net/bonding_masters; cat /proc/net/bonding/* 2>/dev/null; "
            "grep -r . /sys/class/net/*/bonding/ 2>/dev/null; ip -br addr; ip -br link; true",
            timeout=60,
        )
        if result.exit_status != 0:
            return ""
        return hashlib.sha256(result.stdout.encode()).hexdigest()

    def inventory_entry(self, state: VMState | None = None) -> dict[str, Any]:
        """The persona's entry (``lab-host``, ``edge-07``), in bondbot's inventory format; without
        ``bond`` where the persona says the bond must be discovered."""
        state = state or self.state()
        persona = self.persona
        entry: dict[str, Any] = {
            "address": "127.0.0.1",
            "port": self.ssh_port(state),
            "user": "root",
            "key": str(self.image.client_key),
            "sudo": False,
        }
        if persona.inventory_bond:
            entry["bond"] = persona.bond
        entry["groups"] = ["lab"]
        return entry

    @property
    def inventory_name(self) -> str:
        """The host's name in the inventory (and the guest's host name)."""
        return self.persona.host_name

    def _publish(self, state: VMState) -> None:
        """Write the inventory entry and pin both forwarded ports' host key, where asked."""
        if state.known_hosts:
            for port in (state.ssh_port, state.bond_ssh_port):
                pin_known_host(Path(state.known_hosts), "127.0.0.1", port, self.image.host_key_line())
        if state.inventory:
            write_inventory_entry(Path(state.inventory), self.inventory_name, self.inventory_entry(state))
