"""Where the lab keeps its image cache and its running VMs."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

__all__ = ["lab_dir", "images_dir", "instance_dir", "socket_dir"]


def lab_dir() -> Path:
    """``BONDBOT_LAB_DIR``, or ``lab/`` in bondbot's data directory."""
    value = os.environ.get("BONDBOT_LAB_DIR")
    if value:
        return Path(value).expanduser()
    from bondbot.settings import data_dir

    return data_dir() / "lab"


def images_dir(base: Path | None = None) -> Path:
    return (base or lab_dir()) / "images"


def instance_dir(name: str = "default", base: Path | None = None) -> Path:
    """One running VM's files (state, console log, disk overlay). Tests use their own instance,
    so they never touch a VM the developer started with ``bondbot lab up``."""
    return (base or lab_dir()) / "vms" / name


def socket_dir(instance: Path) -> Path:
    """A short directory for UNIX sockets (QMP, SSH control): their paths are limited to 107
    bytes, which a deep ``BONDBOT_LAB_DIR`` would exceed."""
    digest = hashlib.sha256(str(instance.resolve()).encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"bondbot-lab-{os.getuid()}-{digest}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path
