"""QEMU wrappers that fail under KVM the way real machines do, for testing ``LabVM.up``'s fallback.

A wrapper is a POSIX shell script put in front of the real QEMU with ``LabVM(qemu=...)`` (the
CLI's ``BONDBOT_QEMU``). Under
``-accel kvm`` it fails in one of two ways seen in the field:

- ``abort``: QEMU prints "failed to set MSR 0x10a" and dies of an assertion at once (what
  ``-cpu host`` does on this project's nested-virtualization CI machine);
- ``hang``: QEMU runs but the guest never executes (here: the real QEMU, paused with ``-S``
  under TCG, without the kernel), as ``-cpu host,-arch-capabilities`` does there.

Otherwise (TCG, ``--version``) it execs the real QEMU, or with ``tcg="refuse"`` it refuses to
start a TCG guest, so a test can check the fallback's sequence without paying for a boot, or with
``tcg="panic"`` it plays a guest whose kernel panics at boot (seen under TCG on this project's CI
machine) so the boot-again path is checked the same way. Every
start's arguments are appended to ``log`` (one line each) when a log is given.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

__all__ = ["write_wrapper", "MSR_MESSAGE", "REFUSE_MESSAGE", "PANIC_LINE"]

MSR_MESSAGE = (
    "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\n"
    "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: "
    "Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed."
)
REFUSE_MESSAGE = "fake qemu: no TCG guest in this test"
PANIC_LINE = "[    3.084619] Kernel panic - not syncing: Fatal exception in interrupt"


def write_wrapper(path: Path, *, kvm: str = "abort", tcg: str = "exec", log: Path | None = None,
                  real: str | None = None) -> Path:
    """Write an executable wrapper at ``path``; ``kvm``: ``abort`` or ``hang``; ``tcg``: ``exec``
    (the real QEMU) or ``refuse``. ``real``: the real binary (default: qemu-system-x86_64 on PATH)."""
    if kvm not in ("abort", "hang") or tcg not in ("exec", "refuse", "panic"):
        raise ValueError(f"kvm must be abort or hang, tcg exec, refuse or panic (got {kvm!r}, {tcg!r})")
    real = real or shutil.which("qemu-system-x86_64")
    if real is None:
        raise FileNotFoundError("qemu-system-x86_64 is not installed")
    q = shlex.quote
    lines = [
        "#!/bin/sh",
        "# Written by lab.fakeqemu for a test: fails under -accel kvm like a broken KVM host.",
        f"real={q(real)}",
        f"log={q(str(log)) if log else ''}",
        'accel=none; prev=""',
        'for a in "$@"; do [ "$prev" = "-accel" ] && accel=${a%%,*}; prev=$a; done',
        '[ -n "$log" ] && [ "$accel" != none ] && printf "%s\\n" "$*" >> "$log"',
        'if [ "$accel" = kvm ]; then',
    ]
    if kvm == "abort":
        lines += [
            f"  cat >&2 <<'EOF'\n{MSR_MESSAGE}\nEOF",
            "  kill -s ABRT $$",
            "  exit 134",
        ]
    else:
        lines += [
            "  skip=0",
            '  for a do',
            "    shift",
            '    if [ $skip = 1 ]; then skip=0; continue; fi',
            '    case $a in -kernel|-initrd|-append) skip=1; continue ;; kvm) a=tcg ;; host) a=max ;; esac',
            '    set -- "$@" "$a"',
            "  done",
            '  exec "$real" "$@" -S',
        ]
    lines.append("fi")
    if tcg == "refuse":
        lines += [f'if [ "$accel" != none ]; then echo {q(REFUSE_MESSAGE)} >&2; exit 1; fi']
    elif tcg == "panic":
        # The guest "panics" at boot: the panic line goes to the serial file (-serial file:PATH),
        # and QEMU stays up, paused without the kernel, as a panicked guest does.
        lines += [
            'if [ "$accel" != none ]; then',
            '  serial=""; prev=""',
            '  for a in "$@"; do [ "$prev" = "-serial" ] && serial=${a#file:}; prev=$a; done',
            "  skip=0",
            '  for a do',
            "    shift",
            '    if [ $skip = 1 ]; then skip=0; continue; fi',
            '    case $a in -kernel|-initrd|-append) skip=1; continue ;; esac',
            '    set -- "$@" "$a"',
            "  done",
            # QEMU opens (truncates) the serial file as it starts, and -daemonize returns after
            # that: the line is appended once it has.
            '  "$real" "$@" -S || exit $?',
            f'  [ -n "$serial" ] && printf "%s\\n" {q(PANIC_LINE)} >> "$serial"',
            "  exit 0",
            "fi",
        ]
    lines.append('exec "$real" "$@"')
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)
    return path
