"""``LabVM.up``'s choice of accelerator: any failure of a KVM start falls back to TCG, once.

A wrapper in front of the real QEMU (``LabVM(qemu=...)``, the CLI's ``BONDBOT_QEMU``; see :mod:`lab.fakeqemu`) fails under
``-accel kvm`` the way broken KVM hosts do: it aborts at once with "failed to set MSR 0x10a"
(this project's CI machine), or the guest hangs. Under TCG the wrapper *refuses* to start, so the
fallback's whole sequence is checked in a second, without a boot; the one real TCG boot through the
aborting wrapper is the ``trixie`` persona's shared boot (``test_persona_boot_fell_back_from_kvm``
in test_lab_trixie.py). "/dev/kvm" is a file of the test's own that opens, or a path that does not
exist, so the tests mean the same on a machine with working KVM, broken KVM or none.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from lab.errors import BootError, GuestPanic, QemuMissing
from lab.fakeqemu import MSR_MESSAGE, PANIC_LINE, REFUSE_MESSAGE, write_wrapper
from lab.image import Image
from lab.vm import LabVM, _pid_alive, qemu_binary

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="QEMU not installed")


@pytest.fixture
def fake_image(tmp_path: Path) -> Image:
    """Just enough of an image for ``up`` to reach QEMU: a tiny raw disk and a host key."""
    directory = tmp_path / "image"
    directory.mkdir()
    (directory / "manifest.json").write_text("{}\n")
    for name in ("vmlinuz", "initrd.img"):
        (directory / name).write_bytes(b"not a kernel")
    subprocess.run(["truncate", "-s", "1M", str(directory / "disk.img")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(directory / "ssh_host_ed25519_key")],
                   check=True)
    return Image(directory)


@pytest.fixture
def kvm_opens(tmp_path: Path) -> str:
    """A "/dev/kvm" that opens read-write, as a broken-but-present KVM does."""
    device = tmp_path / "kvm"
    device.write_text("")
    return str(device)


def attempts(log: Path) -> list[str]:
    """The accelerator of every QEMU start the wrapper saw, in order."""
    if not log.exists():
        return []
    return ["kvm" if " -accel kvm " in f" {line} " else "tcg" for line in log.read_text().splitlines()]


def note_starts(vm: LabVM) -> list[int]:
    """The pids of every QEMU ``vm`` starts, to check that none is left running."""
    pids: list[int] = []
    original = vm._start_qemu

    def start_and_note(accel: str) -> tuple[int, int, int]:
        started = original(accel)
        pids.append(started[0])
        return started

    vm._start_qemu = start_and_note  # type: ignore[method-assign]
    return pids


def make_vm(tmp_path: Path, image: Image, kvm_device: str, qemu: Path) -> LabVM:
    return LabVM(tmp_path / "vm", image=image, kvm_verdict=tmp_path / "verdict.json", kvm_device=kvm_device,
                 qemu=str(qemu))


def test_kvm_abort_falls_back_to_tcg_says_why_once_and_is_remembered(
    tmp_path: Path, fake_image: Image, kvm_opens: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "starts.log"
    qemu = write_wrapper(tmp_path / "qemu", kvm="abort", tcg="refuse", log=log)
    monkeypatch.setenv("BONDBOT_LAB_ACCEL", "kvm")  # the VM's own setting counts, not the environment
    vm = make_vm(tmp_path, fake_image, kvm_opens, qemu)
    said: list[str] = []

    with pytest.raises(BootError, match=REFUSE_MESSAGE):  # the TCG start was reached
        vm.up(progress=said.append)

    assert attempts(log) == ["kvm", "tcg"]
    fallbacks = [m for m in said if "falling back to TCG" in m]
    assert len(fallbacks) == 1, said
    assert "failed to set MSR 0x10a to 0x69" in fallbacks[0] and "Assertion" in fallbacks[0]
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    assert "failed to set MSR 0x10a" in verdict["reason"]
    assert qemu_binary(str(qemu)) in verdict["failed_on"]

    # Remembered: the next start goes straight to TCG and does not repeat QEMU's message.
    said.clear()
    with pytest.raises(BootError, match=REFUSE_MESSAGE):
        vm.up(progress=said.append)
    assert attempts(log) == ["kvm", "tcg", "tcg"]
    assert not any("falling back" in m or "MSR" in m for m in said), said
    assert any("KVM failed on this host before" in m for m in said), said
    assert not vm.is_running() and not (vm.dir / "disk.qcow2").exists()


def test_verdict_is_per_host_fingerprint(
    tmp_path: Path, fake_image: Image, kvm_opens: str
) -> None:
    """Another QEMU binary (an upgrade, another wrapper) is tried with KVM again."""
    log = tmp_path / "starts.log"
    for name in ("qemu-a", "qemu-b"):
        vm = make_vm(tmp_path, fake_image, kvm_opens, write_wrapper(tmp_path / name, kvm="abort", tcg="refuse", log=log))
        with pytest.raises(BootError):
            vm.up()
    assert attempts(log) == ["kvm", "tcg", "kvm", "tcg"]


def test_hanging_kvm_guest_is_stopped_and_falls_back(
    tmp_path: Path, fake_image: Image, kvm_opens: str
) -> None:
    log = tmp_path / "starts.log"
    vm = make_vm(tmp_path, fake_image, kvm_opens, write_wrapper(tmp_path / "qemu", kvm="hang", tcg="refuse", log=log))
    said: list[str] = []
    pids = note_starts(vm)
    with pytest.raises(BootError, match=REFUSE_MESSAGE):
        vm.up(progress=said.append, kvm_probe_seconds=2.0)

    assert attempts(log) == ["kvm", "tcg"]
    assert len(pids) == 1 and not _pid_alive(pids[0]), "the hung KVM guest was left running"
    fallbacks = [m for m in said if "falling back to TCG" in m]
    assert len(fallbacks) == 1 and "printed no 'Linux version' within 2 s" in fallbacks[0], said
    assert (tmp_path / "verdict.json").exists()


def test_a_guest_panic_under_tcg_boots_again_then_says_so(
    tmp_path: Path, fake_image: Image
) -> None:
    """A boot-time kernel panic under TCG (CI saw an int3 oops in sched_clock_cpu) is noticed on
    the console at once, not after the SSH timeout, and the guest is booted again (twice at most);
    a guest that keeps panicking is a BootError with the console's panic line."""
    log = tmp_path / "starts.log"
    vm = make_vm(tmp_path, fake_image, str(tmp_path / "no-kvm"),
                 write_wrapper(tmp_path / "qemu", kvm="abort", tcg="panic", log=log))
    said: list[str] = []
    pids = note_starts(vm)
    with pytest.raises(GuestPanic, match="panicked while booting") as raised:
        vm.up(progress=said.append, timeout=120)
    assert PANIC_LINE in str(raised.value)
    assert attempts(log) == ["tcg", "tcg", "tcg"]
    assert [m for m in said if "booting again" in m] == [
        "the guest kernel panicked while booting (TCG); booting again (1/2)",
        "the guest kernel panicked while booting (TCG); booting again (2/2)"]
    assert not any(_pid_alive(p) for p in pids) and not vm.is_running()


def test_kvm_absent_goes_straight_to_tcg_and_remembers_nothing(
    tmp_path: Path, fake_image: Image
) -> None:
    log = tmp_path / "starts.log"
    vm = make_vm(tmp_path, fake_image, str(tmp_path / "no-such-kvm"),
                 write_wrapper(tmp_path / "qemu", kvm="abort", tcg="refuse", log=log))
    said: list[str] = []
    with pytest.raises(BootError, match=REFUSE_MESSAGE):
        vm.up(progress=said.append)
    assert attempts(log) == ["tcg"]
    assert any("cannot be opened" in m for m in said) and not any("falling back" in m for m in said)
    assert not (tmp_path / "verdict.json").exists()


def test_explicit_kvm_never_falls_back(
    tmp_path: Path, fake_image: Image, kvm_opens: str
) -> None:
    log = tmp_path / "starts.log"
    vm = make_vm(tmp_path, fake_image, kvm_opens, write_wrapper(tmp_path / "qemu", kvm="abort", tcg="refuse", log=log))
    with pytest.raises(BootError, match="failed to set MSR 0x10a"):
        vm.up(accel="kvm")
    assert attempts(log) == ["kvm"]
    assert not (tmp_path / "verdict.json").exists()


def test_bondbot_qemu_must_be_executable(tmp_path: Path) -> None:
    with pytest.raises(QemuMissing, match="BONDBOT_QEMU="):
        qemu_binary(str(tmp_path / "missing-qemu"))


def test_wrapper_aborts_like_the_real_broken_kvm(tmp_path: Path) -> None:
    """The wrapper's failure is the one this machine's QEMU shows (stderr and a SIGABRT)."""
    wrapper = write_wrapper(tmp_path / "qemu", kvm="abort")
    proc = subprocess.run([str(wrapper), "-accel", "kvm", "-cpu", "host"], capture_output=True, text=True)
    assert proc.returncode != 0 and proc.stderr.strip() == MSR_MESSAGE
    version = subprocess.run([str(wrapper), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("QEMU emulator version")
