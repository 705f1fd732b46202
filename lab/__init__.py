"""A real bonded Linux host in a QEMU VM, for the tests and the demo.

Public API (see each module's docstring for the why):

- :func:`build_image` / :func:`find_image` -> :class:`Image` (``lab.image``): the cached image.
- :class:`LabVM` (``lab.vm``): ``up()``, ``down()``, ``status()``, ``ssh(cmd)``, ``link(if, up)``,
  ``scenario(name)``, ``reboot()``, ``inventory_entry()``.
- :data:`SCENARIOS`, :func:`get_scenario` (``lab.scenarios``): the named bond states.
- :func:`record_all` (``lab.record``): the triage fixtures in ``tests/fixtures/lab/``.
- Errors (``lab.errors``): all derive from :class:`LabError`.

The lab reads no bondbot settings: where its images and VMs live is the lab directory its caller
passes (``find_image(base)``, ``build_image(base=..., first_boot=lab.firstboot.first_boot)``,
``LabVM(lab_dir=...)``); the CLI gives ``bondbot.settings.lab_dir()``.
"""

from lab.errors import (
    BootError,
    BuildError,
    GuestCommandError,
    ImageMissing,
    InvalidArgument,
    LabAlreadyRunning,
    LabError,
    LabNotRunning,
    QemuMissing,
    QMPError,
)
from lab.image import Image, build_image, find_image
from lab.scenarios import DEFAULT_SCENARIO, SCENARIOS, Scenario, get_scenario
from lab.vm import INVENTORY_NAME, CommandResult, LabVM, VMState

__all__ = [
    "BootError",
    "BuildError",
    "CommandResult",
    "DEFAULT_SCENARIO",
    "GuestCommandError",
    "INVENTORY_NAME",
    "Image",
    "ImageMissing",
    "InvalidArgument",
    "LabAlreadyRunning",
    "LabError",
    "LabNotRunning",
    "LabVM",
    "QMPError",
    "QemuMissing",
    "SCENARIOS",
    "Scenario",
    "VMState",
    "build_image",
    "find_image",
    "get_scenario",
]
