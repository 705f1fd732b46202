"""Where bondbot keeps its files, overridable by environment variables.

Every path can be moved with an environment variable so that tests, containers and several
instances on one machine never share state by accident.

Only the entry points read these (the CLI's commands, ``serve``, the demo) and pass what a lower
layer needs as an argument: ssh_exec, runbooks, incidents, bot and lab never import this module.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def _dir_from_env(var: str, default: Callable[[], Path]) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser() if value else default()


def data_dir() -> Path:
    """Per-user data: the incident database, the lab image, known_hosts (``BONDBOT_DATA_DIR``)."""
    def default() -> Path:
        from platformdirs import user_data_dir

        return Path(user_data_dir("bondbot"))

    return _dir_from_env("BONDBOT_DATA_DIR", default)


def config_dir() -> Path:
    """Per-user configuration: the inventory (``BONDBOT_CONFIG_DIR``)."""
    def default() -> Path:
        from platformdirs import user_config_dir

        return Path(user_config_dir("bondbot"))

    return _dir_from_env("BONDBOT_CONFIG_DIR", default)


def inventory_path() -> Path:
    """The YAML inventory of hosts (``BONDBOT_INVENTORY``)."""
    return _dir_from_env("BONDBOT_INVENTORY", lambda: config_dir() / "inventory.yaml")


def known_hosts_path() -> Path:
    """bondbot's own known_hosts file; never the user's, never auto-filled (``BONDBOT_KNOWN_HOSTS``)."""
    return _dir_from_env("BONDBOT_KNOWN_HOSTS", lambda: data_dir() / "known_hosts")


def ansible_cache_dir() -> Path:
    """Where ``ansible-inventory``'s output for static inventories is cached (in the data directory)."""
    return data_dir() / "cache" / "ansible-inventory"


def ansible_inventory() -> str:
    """Which ``ansible-inventory`` reads Ansible inventories (``BONDBOT_ANSIBLE_INVENTORY``): ``auto``
    (the one on PATH, if any; the default), ``never`` (bondbot's built-in parser only) or a path."""
    return os.environ.get("BONDBOT_ANSIBLE_INVENTORY", "").strip() or "auto"


def runbook_search_path() -> str:
    """More runbooks beside the built-in ones (``BONDBOT_RUNBOOKS``: ``os.pathsep``-separated
    runbook files, or folders holding ``<name>/runbook.yaml`` or ``runbook.yaml``)."""
    return os.environ.get("BONDBOT_RUNBOOKS", "")


def lab_qemu() -> str | None:
    """The QEMU the lab runs (``BONDBOT_QEMU``: a path or a command name), else None: the one on PATH."""
    return os.environ.get("BONDBOT_QEMU") or None


def lab_accel() -> str:
    """The lab VM's accelerator (``BONDBOT_LAB_ACCEL``: auto, the default; kvm; tcg)."""
    return (os.environ.get("BONDBOT_LAB_ACCEL") or "auto").strip().lower()


def lab_mirror() -> str | None:
    """The Debian mirror lab images are built from (``BONDBOT_LAB_MIRROR``), else None: apt's own."""
    return os.environ.get("BONDBOT_LAB_MIRROR") or None


def lab_dir() -> Path:
    """The lab's image cache and VMs (``BONDBOT_LAB_DIR``, else ``lab/`` in the data directory)."""
    return _dir_from_env("BONDBOT_LAB_DIR", lambda: data_dir() / "lab")


def secret(name: str) -> str | None:
    """A secret such as ``SLACK_BOT_TOKEN``: the environment variable, else systemd's credential.

    Under systemd, ``LoadCredential=NAME:/path`` puts the file in ``$CREDENTIALS_DIRECTORY/NAME``,
    readable only by the service, so tokens never sit in an environment file or ``/proc/PID/environ``.
    A set environment variable wins, so a manual run can override what the unit loads.
    """
    value = os.environ.get(name)
    if value:
        return value
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if not creds or "/" in name or name in ("", ".", ".."):
        return None
    try:
        return (Path(creds) / name).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


#: Files bondbot writes hold raw host outputs: readable by their owner only, unless told.
DEFAULT_FILE_MODE = 0o600


def file_mode() -> int:
    """The mode of the files bondbot writes (the SQLite log, exports): ``BONDBOT_FILE_MODE``
    (octal, e.g. ``640``), default 0600. Directories it creates get the matching x bits (0700)."""
    value = os.environ.get("BONDBOT_FILE_MODE", "").strip()
    if not value:
        return DEFAULT_FILE_MODE
    try:
        mode = int(value, 8)
    except ValueError:
        raise ValueError(f"BONDBOT_FILE_MODE must be an octal mode like 600 or 640, got {value!r}") from None
    if not 0 <= mode <= 0o666 or not mode & 0o600 == 0o600:
        raise ValueError(f"BONDBOT_FILE_MODE must let the owner read and write, with no x bits, got {value!r}")
    return mode


def dir_mode(mode: int) -> int:
    """The directory mode that matches file mode ``mode`` (0600 -> 0700, 0640 -> 0750)."""
    return mode | ((mode & 0o444) >> 2)


def database_url() -> str:
    """The incident store: ``BONDBOT_DATABASE_URL`` (or that credential), else SQLite in the data
    directory. The default SQLite file carries ``file_mode`` (``?file_mode=0600``) to the store,
    which creates the file and its directory with it (``incidents.store``)."""
    url = secret("BONDBOT_DATABASE_URL")
    if url:
        return url
    mode = file_mode()
    private_data_dir(mode)
    return f"sqlite:///{data_dir() / 'incidents.sqlite3'}?file_mode={mode:04o}"


def private_data_dir(mode: int | None = None) -> Path:
    """The data directory, created if missing and kept at ``dir_mode`` (0700 by default): it is
    bondbot's own, and holds the incident log and known_hosts. Returns it."""
    directory = data_dir()
    wanted = dir_mode(file_mode() if mode is None else mode)
    directory.mkdir(parents=True, exist_ok=True)
    info = directory.stat()
    if info.st_mode & 0o777 != wanted and info.st_uid == os.getuid():
        os.chmod(directory, wanted)
    return directory
