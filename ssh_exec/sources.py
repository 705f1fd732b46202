"""Reading an inventory from its files: which reader reads a file, ``include:``, the checks after.

``load_inventory(path)`` detects the format (bondbot YAML, Ansible INI/YAML or directory,
OpenSSH client config) and hands the file to its reader; bondbot YAML's ``include:`` comes back
here. It lives apart from ``ssh_exec.inventory`` (the hosts and their validation), which every
reader imports, so that no reader and the model import each other. The Ansible and ssh_config
readers are imported when a file needs them (``ssh_exec.ansible_inventory`` alone costs ~10 ms).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ssh_exec.errors import InventoryError
from ssh_exec.inventory import Inventory, parse_bondbot_yaml, yaml_load

__all__ = ["load_inventory", "parse_ansible_ini", "parse_ansible_yaml", "parse_ssh_config"]


def parse_ansible_ini(text: str, *, where: str = "ansible inventory") -> Inventory:
    """An Ansible INI inventory given as text, read by the built-in parser."""
    from ssh_exec.ansible_inventory import builtin_inventory_from_text

    return builtin_inventory_from_text(text, where, "ini")


def parse_ansible_yaml(text: str, *, where: str = "ansible inventory") -> Inventory:
    """An Ansible YAML inventory given as text, read by the built-in parser."""
    from ssh_exec.ansible_inventory import builtin_inventory_from_text

    return builtin_inventory_from_text(text, where, "yaml")


def parse_ssh_config(text: str, *, where: str = "ssh config") -> Inventory:
    """An OpenSSH client config given as text (relative Includes resolve in ~/.ssh, as ssh does)."""
    import tempfile

    from ssh_exec.ssh_config_inventory import ssh_config_inventory

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "config"
        p.write_text(text, encoding="utf-8")
        inv = ssh_config_inventory(p, shown_as=where)
    return inv


def _detect_format(path: Path, text: str) -> tuple[str, Any]:
    """The format of ``path``, and its YAML when it was loaded to tell."""
    kind, data = _detect(path, text)
    return kind, data


def _detect(path: Path, text: str) -> tuple[str, Any]:
    if path.is_dir():
        return "ansible", None
    if path.suffix in {".ini", ".cfg"} or re.search(r"^\s*\[[^\]]+\]\s*(#.*)?$", text, re.M):
        return "ansible", None
    if re.search(r"^\s*(Host|Match)\s+\S", text, re.M | re.I) and not re.search(r"^\s*hosts\s*:", text, re.M):
        return "ssh-config", None
    try:
        data = yaml_load(text, str(path), lines=True)
    except InventoryError:
        return ("ansible" if text.strip() else "bondbot"), None
    if isinstance(data, dict) and set(data) & {"hosts", "settings", "include"} and set(data) <= {"hosts", "settings", "include"}:
        hosts = data.get("hosts")
        ansible_like = isinstance(hosts, dict) and any(
            isinstance(v, dict) and any(str(k).startswith("ansible_") for k in v) for v in hosts.values())
        if not ansible_like:
            return "bondbot", data
    if isinstance(data, dict):
        return "ansible", None
    if data is None:
        return "bondbot", data
    if isinstance(data, str) and not re.search(r"\s", text.strip()):
        return "ansible", None  # one bare host name: an INI inventory of one host
    raise InventoryError(f"{path}: cannot tell which inventory format this is")


_FORMAT_ALIASES = {"ansible-ini": "ansible", "ansible-yaml": "ansible", "ssh_config": "ssh-config"}


def load_inventory(path: Path | str, *, fmt: str = "auto", check: bool = True,
                   use_ansible_inventory: bool | None = None, missing_ok: bool = False,
                   cache_dir: Path | None = None, ansible_inventory: str = "auto") -> Inventory:
    """Read an inventory file or directory.

    Where the default inventory lives is the entry point's setting, not this layer's: the CLI
    passes ``bondbot.settings.inventory_path()`` with ``missing_ok=True`` when no ``--inventory``
    was given. A missing file is then an empty inventory (every host refused, with a message saying
    where to add it); a missing file named explicitly is an error. ``use_ansible_inventory``: None =
    use ``ansible-inventory`` for Ansible sources when it is installed, False = the built-in parser
    only. ``ansible_inventory``: the caller's setting, never | auto | the path of the
    ``ansible-inventory`` to run (the CLI passes ``BONDBOT_ANSIBLE_INVENTORY``). ``cache_dir``: where
    ``ansible-inventory``'s output for static files is cached (None: not cached).
    """
    p = Path(os.path.expanduser(str(path)))
    if not p.exists():
        if not missing_ok:
            raise InventoryError(f"inventory file {p} does not exist")
        return Inventory(source=p)
    text = ""
    if not p.is_dir():
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InventoryError(f"cannot read inventory {p}: {exc}") from None
    kind, data = _detect_format(p, text) if fmt == "auto" else (_FORMAT_ALIASES.get(fmt, fmt), None)
    if kind == "bondbot":
        def include(sub: Path, sub_fmt: str, use: bool | None) -> Inventory:
            return load_inventory(sub, fmt=sub_fmt, check=False, use_ansible_inventory=use, cache_dir=cache_dir,
                                  ansible_inventory=ansible_inventory)

        inv = parse_bondbot_yaml(text, where=str(p), base=p.parent, use_ansible_inventory=use_ansible_inventory,
                                 data=data, include=include)
    elif kind == "ansible":
        from ssh_exec.ansible_inventory import load_ansible

        inv = load_ansible(p, use_ansible_inventory=use_ansible_inventory, cache_dir=cache_dir,
                           ansible_inventory=ansible_inventory)
    elif kind == "ssh-config":
        from ssh_exec.ssh_config_inventory import ssh_config_inventory

        inv = ssh_config_inventory(p)
    else:
        raise InventoryError(f"unknown inventory format {fmt!r}; use one of auto, bondbot, ansible, ssh-config")
    inv.source = p
    if check:
        inv.check_jumps()
    return inv
