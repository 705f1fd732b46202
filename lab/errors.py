"""Errors of the lab; every message is meant to be shown to the user as it is."""

from __future__ import annotations

__all__ = [
    "LabError",
    "QemuMissing",
    "ImageMissing",
    "BuildError",
    "BootError",
    "GuestPanic",
    "LabNotRunning",
    "LabAlreadyRunning",
    "InvalidArgument",
    "GuestCommandError",
    "QMPError",
]


class LabError(Exception):
    """Base class: something about the lab VM is wrong; the message says what and what to do."""


class QemuMissing(LabError):
    """QEMU (or another host tool the lab needs) is not installed."""


class ImageMissing(LabError):
    """The lab image for the current recipe has not been built."""


class BuildError(LabError):
    """Building the image failed; the message names the step and the log."""


class BootError(LabError):
    """The VM did not come up (QEMU refused to start, or SSH never answered)."""


class GuestPanic(BootError):
    """The guest kernel panicked while booting (seen under TCG: an oops while the kernel patches
    its own text, a race in QEMU's multi-threaded TCG); a fresh boot usually succeeds."""


class LabNotRunning(LabError):
    """An operation needs the VM, and it is not running."""


class LabAlreadyRunning(LabError):
    """``up`` was asked while a VM of this instance is already running."""


class InvalidArgument(LabError):
    """A bad interface name, link state or scenario name; nothing was changed."""


class QMPError(LabError):
    """QEMU's monitor refused a command or could not be reached."""


class GuestCommandError(LabError):
    """A command the lab ran in the guest failed."""

    def __init__(self, message: str, *, exit_status: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.exit_status = exit_status
        self.stderr = stderr
