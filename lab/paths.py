"""Where the lab keeps its image cache and its running VMs, under a lab directory it is given.

The lab directory itself is a setting of the entry point (``bondbot.settings.lab_dir()``:
``BONDBOT_LAB_DIR``, else ``lab/`` in bondbot's data directory); the lab never reads settings.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

__all__ = ["images_dir", "instance_dir", "socket_dir"]


def images_dir(base: Path) -> Path:
    """The image cache in the lab directory ``base``."""
    return base / "images"


def instance_dir(name: str, base: Path) -> Path:
    """One running VM's files (state, console log, disk overlay) in the lab directory ``base``.
    Tests use their own instance, so they never touch a VM the developer started with ``bondbot lab up``."""
    return base / "vms" / name


def socket_dir(instance: Path) -> Path:
    """A short directory for UNIX sockets (QMP, SSH control): their paths are limited to 107
    bytes, which a deep ``BONDBOT_LAB_DIR`` would exceed."""
    digest = hashlib.sha256(str(instance.resolve()).encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"bondbot-lab-{os.getuid()}-{digest}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path
