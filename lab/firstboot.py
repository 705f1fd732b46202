"""The build's first boot, for personas whose guest names its own NICs (``trixie``).

The image is booted once before it is published: the names udev gave each NIC are read (by MAC,
from /sys/class/net) into the manifest, the default scenario is made with ``nmcli`` in the guest
(so the saved profiles carry the names NetworkManager chose), the guest is powered off cleanly and
the overlay is committed into the image's disk. Every later ``up`` starts from that state, and the
lab knows the NIC names before the VM runs (``lab link ens4 down`` is checked up front).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.errors import BuildError, LabError
from lab.image import Image
from lab.network import Persona

__all__ = ["first_boot"]

Progress = Callable[[str], None]

def _discover_names(vm: Any, persona: Persona) -> dict[str, str]:
    """QEMU device id -> the guest's name for it, matched by the NIC's own (permanent) MAC: a bond
    port shows the bond's MAC as its address, its own as ``permaddr``."""
    listing = vm.ssh("ip -d -j link show", check=True).stdout
    by_mac = {}
    for link in json.loads(listing):
        if link.get("link_type") != "ether" or link.get("linkinfo", {}).get("info_kind") == "bond":
            continue
        by_mac[str(link.get("permaddr") or link.get("address", "")).lower()] = link["ifname"]
    names = {}
    for nic in persona.nics:
        found = by_mac.get(nic.mac.lower())
        if not found:
            raise BuildError(f"first boot: no NIC with MAC {nic.mac} ({nic.qemu_id}) in the guest:\n{listing}")
        names[nic.qemu_id] = found
    return names


def first_boot(image_dir: Path, persona: Persona | str, work: Path,
               progress: Progress = lambda _msg: None, *, qemu: str | None = None,
               accel: str = "auto") -> dict[str, Any]:
    """Boot the image in ``image_dir`` once (see the module docstring); returns manifest entries.
    ``lab.image.build_image(first_boot=first_boot)`` calls it (the image cache does not import the VM);
    ``qemu`` and ``accel`` are the entry point's (``functools.partial`` them in), as for ``LabVM``."""
    from lab.network import get_persona
    from lab.scenarios import DEFAULT_SCENARIO
    from lab.vm import LabVM, _pid_alive

    if isinstance(persona, str):
        persona = get_persona(persona)

    image = Image(image_dir)
    vm = LabVM(work / "firstboot", image=image, persona=persona, qemu=qemu, accel=accel)
    vm.down()
    progress(f"first boot of the {persona.id} image: reading the NIC names udev gives, "
             f"making scenario {DEFAULT_SCENARIO} with nmcli")
    try:
        state = vm.up(progress=progress)
        names = _discover_names(vm, persona)
        # The manifest is not written yet: tell the VM the names directly.
        (image_dir / "manifest.json").write_text(json.dumps({"nic_names": names}) + "\n")
        vm.scenario(DEFAULT_SCENARIO, progress=progress)
        profiles = vm.ssh("nmcli -t -f NAME,UUID,TYPE,DEVICE connection show", check=True).stdout
        versions = vm.ssh("uname -r; NetworkManager --version", check=True).stdout.split()
        vm.ssh("sync; systemctl poweroff", timeout=30)
        deadline = time.monotonic() + 180
        while _pid_alive(state.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        if _pid_alive(state.pid):
            raise BuildError("first boot: the guest did not power off within 180 s")
        overlay = vm.dir / "disk.qcow2"
        proc = subprocess.run(["qemu-img", "commit", "-q", str(overlay)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"first boot: qemu-img commit failed: {proc.stderr.strip()}")
    except LabError as exc:
        if isinstance(exc, BuildError):
            raise
        raise BuildError(f"first boot of the {persona.id} image failed: {exc}") from None
    finally:
        vm.down()
        (image_dir / "manifest.json").unlink(missing_ok=True)
    return {
        "nic_names": names,
        "nm_profiles": [line for line in profiles.splitlines() if line],
        "first_boot_accel": state.accel,
        "first_boot_seconds": state.boot_seconds,
        "guest_kernel_release": versions[0],
        "guest_network_manager": versions[1],
    }
