"""Which hosts bondbot may reach, and how: the inventory and its sources.

The inventory is an allowlist: a name that is not in it is refused before anything connects,
unless the inventory says ``settings: {allow_unlisted_hosts: true}``. Hosts come from bondbot's
own YAML file (format below) and, because users already keep them, from Ansible inventories
(INI and YAML) and OpenSSH client config files, pulled in with ``include:`` or given directly with
``--inventory FILE`` (the format is detected from the content).

bondbot's YAML::

    hosts:
      web-01:
        address: 10.0.0.5      # default: the name
        port: 22               # default: 22
        user: root             # default: the local user name
        key: ~/.ssh/id_ed25519 # default: asyncssh's defaults (~/.ssh/id_*)
        sudo: false            # run commands through ``sudo -n``
        bond: bond0            # the default bond for ``bondbot triage``
        groups: [web, dc1]
        jump: bastion          # optional: another host of this inventory to go through
    include:                   # optional: other inventories merged in (own entries win)
      - {path: /etc/ansible/hosts}             # format detected; or format: ansible-ini|ansible-yaml|ssh-config
      - {path: ~/.ssh/config}
    settings:
      allow_unlisted_hosts: false

From Ansible: ``ansible_host``, ``ansible_port``, ``ansible_user``, ``ansible_ssh_private_key_file``,
``ansible_become`` and the bondbot-specific ``bondbot_bond`` / ``bondbot_jump``; group membership
(with ``:children``) becomes ``groups``. From ``ssh_config``: every ``Host`` alias without
wildcards, with ``HostName``, ``Port``, ``User``, ``IdentityFile`` and ``ProxyJump`` (a single
hop that is itself an alias in the same inventory).
"""

from __future__ import annotations

import fnmatch
import getpass
import ipaddress
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ssh_exec.errors import HostNotAllowed, InvalidValue, InventoryError

__all__ = [
    "Host",
    "Inventory",
    "load_inventory",
    "parse_bondbot_yaml",
    "parse_ansible_ini",
    "parse_ansible_yaml",
    "parse_ssh_config",
    "validate_host_name",
    "validate_address",
    "validate_user",
]

_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}")
_LABEL_RE = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")


def validate_host_name(name: object) -> str:
    """An inventory name: letters, digits, ``_ . -``, not starting with ``-`` or ``.``; max 253."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidValue(
            f"invalid host name {name!r}: use 1-253 characters from A-Z a-z 0-9 _ . - "
            "not starting with '-' or '.'"
        )
    return name


def validate_address(address: object) -> str:
    """An IP address or a DNS name (RFC 1123 labels; ``_`` tolerated)."""
    if isinstance(address, str):
        try:
            return str(ipaddress.ip_address(address))
        except ValueError:
            pass
        if 0 < len(address) <= 253 and all(_LABEL_RE.fullmatch(p) for p in address.split(".")):
            return address
    raise InvalidValue(f"invalid address {address!r}: expected an IP address or a DNS name")


def validate_user(user: object) -> str:
    if not isinstance(user, str) or not _USER_RE.fullmatch(user):
        raise InvalidValue(f"invalid user name {user!r}: use A-Z a-z 0-9 _ . - (max 32), not starting with '-'")
    return user


def _validate_port(port: object) -> int:
    try:
        value = int(str(port))
    except ValueError:
        value = 0
    if not 1 <= value <= 65535 or isinstance(port, bool):
        raise InvalidValue(f"invalid port {port!r}: expected a number from 1 to 65535")
    return value


def _as_bool(value: object, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "yes", "1", "on", "false", "no", "0", "off"}:
        return value.lower() in {"true", "yes", "1", "on"}
    raise InvalidValue(f"invalid {what} {value!r}: expected true or false")


@dataclass(frozen=True)
class Host:
    """How to reach one host. ``name`` is what operators type; ``address`` is what we dial."""

    name: str
    address: str
    port: int = 22
    user: str = field(default_factory=getpass.getuser)
    key: Path | None = None
    sudo: bool = False
    bond: str | None = None
    groups: tuple[str, ...] = ()
    jump: str | None = None

    @property
    def privileged(self) -> bool:
        """Whether commands run with root's capabilities (as root, or through ``sudo -n``)."""
        return self.user == "root" or self.sudo

    @property
    def known_hosts_pattern(self) -> str:
        """How this host is written in a known_hosts file (OpenSSH: ``[addr]:port`` off port 22)."""
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "port": self.port,
            "user": self.user,
            "key": str(self.key) if self.key else None,
            "sudo": self.sudo,
            "bond": self.bond,
            "groups": list(self.groups),
            "jump": self.jump,
        }


def _make_host(name: str, fields: Mapping[str, Any], where: str) -> Host:
    try:
        validate_host_name(name)
        address = validate_address(str(fields.get("address") or name))
        port = _validate_port(fields.get("port", 22))
        user = validate_user(str(fields["user"])) if fields.get("user") is not None else getpass.getuser()
        key = Path(str(fields["key"])).expanduser() if fields.get("key") else None
        sudo = _as_bool(fields.get("sudo", False), "sudo")
        bond = fields.get("bond")
        if bond is not None and not isinstance(bond, str):
            raise InvalidValue(f"invalid bond {bond!r}: expected an interface name")
        groups_raw = fields.get("groups", ())
        if isinstance(groups_raw, str):
            groups_raw = [groups_raw]
        groups = tuple(validate_host_name(str(g)) for g in groups_raw or ())
        jump = fields.get("jump")
        if jump is not None:
            jump = validate_host_name(str(jump))
    except InvalidValue as exc:
        raise InventoryError(f"{where}: host {name!r}: {exc}") from None
    return Host(name, address, port, user, key, sudo, bond, groups, jump)


@dataclass
class Inventory:
    """The hosts bondbot knows, and whether it may reach others (``allow_unlisted_hosts``)."""

    hosts: dict[str, Host] = field(default_factory=dict)
    allow_unlisted_hosts: bool = False
    source: Path | None = None

    def get(self, name: str) -> Host:
        """The host called ``name``; unlisted names are refused unless explicitly allowed."""
        if name in self.hosts:
            return self.hosts[name]
        validate_host_name(name)
        if not self.allow_unlisted_hosts:
            where = f" ({self.source})" if self.source else ""
            raise HostNotAllowed(
                f"{name}: not in the inventory{where}. bondbot only connects to listed hosts: add it "
                "under 'hosts:' or set 'settings: {allow_unlisted_hosts: true}'.",
                host=name,
            )
        return Host(name=name, address=validate_address(name))

    def select(self, groups: Iterable[str] = ()) -> list[Host]:
        """Hosts in any of ``groups`` (all hosts when none are given), in inventory order."""
        wanted = list(groups)
        if not wanted:
            return list(self.hosts.values())
        known = {g for h in self.hosts.values() for g in h.groups} | set(self.hosts)
        unknown = [g for g in wanted if g not in known]
        if unknown:
            raise InventoryError(f"unknown group(s): {', '.join(unknown)} (known: {', '.join(sorted(known)) or 'none'})")
        return [h for h in self.hosts.values() if h.name in wanted or set(h.groups) & set(wanted)]

    def check_jumps(self) -> None:
        """Every ``jump`` names a host of this inventory, with no loop."""
        for host in self.hosts.values():
            seen = [host.name]
            current = host
            while current.jump is not None:
                if current.jump not in self.hosts:
                    raise InventoryError(f"host {current.name!r}: jump host {current.jump!r} is not in the inventory")
                if current.jump in seen:
                    raise InventoryError(f"jump hosts loop: {' -> '.join(seen + [current.jump])}")
                seen.append(current.jump)
                current = self.hosts[current.jump]

    def merge(self, other: Inventory) -> None:
        """Add ``other``'s hosts that this inventory does not already define."""
        for name, host in other.hosts.items():
            self.hosts.setdefault(name, host)


# --- bondbot YAML ---------------------------------------------------------------------------------


def _yaml_load(text: str, where: str) -> Any:
    import yaml

    try:
        # libyaml when present: a 1,000-host inventory loads ~7x faster
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise InventoryError(f"{where}: not valid YAML: {exc}") from None


def parse_bondbot_yaml(text: str, *, where: str = "inventory", base: Path | None = None) -> Inventory:
    data = _yaml_load(text, where) or {}
    if not isinstance(data, dict):
        raise InventoryError(f"{where}: expected a mapping with 'hosts:' at the top")
    unknown = set(data) - {"hosts", "settings", "include"}
    if unknown:
        raise InventoryError(f"{where}: unknown top-level key(s) {sorted(unknown)}; expected hosts, settings, include")
    settings = data.get("settings") or {}
    if not isinstance(settings, dict) or set(settings) - {"allow_unlisted_hosts"}:
        raise InventoryError(f"{where}: 'settings' accepts only allow_unlisted_hosts")
    inv = Inventory(allow_unlisted_hosts=_as_bool(settings.get("allow_unlisted_hosts", False), "allow_unlisted_hosts"))
    hosts = data.get("hosts") or {}
    if not isinstance(hosts, dict):
        raise InventoryError(f"{where}: 'hosts' must be a mapping of name -> settings")
    allowed = {"address", "port", "user", "key", "sudo", "bond", "groups", "jump"}
    for name, fields in hosts.items():
        fields = fields or {}
        if not isinstance(fields, dict):
            raise InventoryError(f"{where}: host {name!r}: expected a mapping")
        extra = set(fields) - allowed
        if extra:
            raise InventoryError(f"{where}: host {name!r}: unknown key(s) {sorted(extra)}; allowed: {sorted(allowed)}")
        inv.hosts[str(name)] = _make_host(str(name), fields, where)
    for item in data.get("include") or []:
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, dict) or "path" not in item:
            raise InventoryError(f"{where}: each 'include' entry needs a 'path'")
        path = Path(str(item["path"])).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        inv.merge(load_inventory(path, fmt=item.get("format", "auto"), check=False))
    return inv


# --- Ansible --------------------------------------------------------------------------------------

_ANSIBLE_KEYS = {
    "ansible_host": "address",
    "ansible_ssh_host": "address",
    "ansible_port": "port",
    "ansible_ssh_port": "port",
    "ansible_user": "user",
    "ansible_ssh_user": "user",
    "ansible_ssh_private_key_file": "key",
    "ansible_private_key_file": "key",
    "ansible_become": "sudo",
    "bondbot_bond": "bond",
    "bondbot_jump": "jump",
}


class _AnsibleTree:
    """Groups, their hosts, vars and children, resolved like Ansible does (host vars win)."""

    def __init__(self) -> None:
        self.group_hosts: dict[str, list[str]] = {}
        self.group_vars: dict[str, dict[str, Any]] = {}
        self.children: dict[str, list[str]] = {}
        self.host_vars: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []

    def add_host(self, group: str, name: str, vars_: Mapping[str, Any]) -> None:
        self.group_hosts.setdefault(group, [])
        if name not in self.group_hosts[group]:
            self.group_hosts[group].append(name)
        if name not in self.host_vars:
            self.order.append(name)
            self.host_vars[name] = {}
        self.host_vars[name].update(vars_)

    def _ancestors(self, group: str, seen: set[str]) -> list[str]:
        parents = [p for p, kids in self.children.items() if group in kids and p not in seen]
        out: list[str] = []
        for p in parents:
            seen.add(p)
            out += self._ancestors(p, seen) + [p]
        return out

    def inventory(self, where: str) -> Inventory:
        inv = Inventory()
        for name in self.order:
            direct = [g for g, hs in self.group_hosts.items() if name in hs]
            groups: list[str] = []
            for g in direct:
                for anc in self._ancestors(g, set()) + [g]:
                    if anc not in groups:
                        groups.append(anc)
            merged: dict[str, Any] = dict(self.group_vars.get("all", {}))
            for g in groups:
                merged.update(self.group_vars.get(g, {}))
            merged.update(self.host_vars[name])
            fields: dict[str, Any] = {v: merged[k] for k, v in _ANSIBLE_KEYS.items() if k in merged}
            fields["groups"] = [g for g in groups if g not in {"all", "ungrouped"}]
            inv.hosts[name] = _make_host(name, fields, where)
        return inv


def _expand_range(pattern: str) -> list[str]:
    m = re.search(r"\[([0-9]+):([0-9]+)\]", pattern)
    if not m:
        return [pattern]
    lo, hi = m.group(1), m.group(2)
    width = len(lo) if lo.startswith("0") else 0
    out: list[str] = []
    for i in range(int(lo), int(hi) + 1):
        out += _expand_range(pattern[: m.start()] + str(i).zfill(width) + pattern[m.end() :])
    return out


def _parse_kv(tokens: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tok in tokens:
        key, sep, value = tok.partition("=")
        if sep:
            out[key] = value
    return out


def parse_ansible_ini(text: str, *, where: str = "ansible inventory") -> Inventory:
    tree = _AnsibleTree()
    section, kind = "ungrouped", "hosts"
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section, _, kind = line[1:-1].partition(":")
            kind = kind or "hosts"
            if kind not in {"hosts", "vars", "children"}:
                raise InventoryError(f"{where}:{lineno}: unknown section kind {kind!r}")
            continue
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as exc:
            raise InventoryError(f"{where}:{lineno}: {exc}") from None
        if not tokens:
            continue
        if kind == "vars":
            tree.group_vars.setdefault(section, {}).update(_parse_kv(tokens))
        elif kind == "children":
            tree.children.setdefault(section, []).append(tokens[0])
        else:
            for name in _expand_range(tokens[0]):
                tree.add_host(section, name, _parse_kv(tokens[1:]))
    return tree.inventory(where)


def parse_ansible_yaml(text: str, *, where: str = "ansible inventory") -> Inventory:
    data = _yaml_load(text, where) or {}
    if not isinstance(data, dict):
        raise InventoryError(f"{where}: expected a mapping of groups")
    tree = _AnsibleTree()

    def walk(group: str, body: Any) -> None:
        body = body or {}
        if not isinstance(body, dict):
            raise InventoryError(f"{where}: group {group!r} must be a mapping")
        for pattern, hvars in (body.get("hosts") or {}).items():
            for name in _expand_range(str(pattern)):
                tree.add_host(group, name, hvars or {})
        tree.group_vars.setdefault(group, {}).update(body.get("vars") or {})
        for child, child_body in (body.get("children") or {}).items():
            tree.children.setdefault(group, []).append(str(child))
            walk(str(child), child_body)

    for group, body in data.items():
        walk(str(group), body)
    return tree.inventory(where)


# --- OpenSSH client config ------------------------------------------------------------------------


def parse_ssh_config(text: str, *, where: str = "ssh config") -> Inventory:
    """Concrete ``Host`` aliases, each with the first value of every option that applies to it."""
    blocks: list[tuple[list[str], dict[str, str]]] = [(["*"], {})]
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([A-Za-z]+)(?:\s*=\s*|\s+)(.*)", line)
        if not m:
            raise InventoryError(f"{where}:{lineno}: cannot read {line!r}")
        key, value = m.group(1).lower(), m.group(2).strip().strip('"')
        if key == "host":
            blocks.append((value.split(), {}))
        elif key == "match":
            blocks.append(([], {}))  # Match blocks need runtime facts; their options are ignored
        else:
            blocks[-1][1].setdefault(key, value)
    aliases: list[str] = []
    for patterns, _ in blocks[1:]:
        for p in patterns:
            if not p.startswith("!") and not set(p) & set("*?") and p not in aliases:
                aliases.append(p)
    inv = Inventory()
    for alias in aliases:
        opts: dict[str, str] = {}
        for patterns, values in blocks:
            neg = any(fnmatch.fnmatchcase(alias, p[1:]) for p in patterns if p.startswith("!"))
            if not neg and any(fnmatch.fnmatchcase(alias, p) for p in patterns if not p.startswith("!")):
                for k, v in values.items():
                    opts.setdefault(k, v)
        fields: dict[str, Any] = {}
        if "hostname" in opts:
            fields["address"] = opts["hostname"].replace("%h", alias)
        if "port" in opts:
            fields["port"] = opts["port"]
        if "user" in opts:
            fields["user"] = opts["user"]
        if "identityfile" in opts:
            fields["key"] = opts["identityfile"]
        if opts.get("proxyjump", "none").lower() != "none":
            hop = opts["proxyjump"]
            if "," in hop or "@" in hop or ":" in hop:
                raise InventoryError(f"{where}: host {alias!r}: only a single ProxyJump alias is supported, got {hop!r}")
            fields["jump"] = hop
        inv.hosts[alias] = _make_host(alias, fields, where)
    return inv


# --- loading --------------------------------------------------------------------------------------


def _detect_format(path: Path, text: str) -> str:
    if path.suffix in {".ini", ".cfg"} or re.search(r"^\s*\[[^\]]+\]\s*$", text, re.M):
        return "ansible-ini"
    if re.search(r"^\s*Host\s+\S", text, re.M | re.I) and not re.search(r"^\s*hosts\s*:", text, re.M):
        return "ssh-config"
    data = _yaml_load(text, str(path))
    if isinstance(data, dict) and set(data) & {"hosts", "settings", "include"} and set(data) <= {"hosts", "settings", "include"}:
        if not (isinstance(data.get("hosts"), dict) and any(
            isinstance(v, dict) and set(v) & set(_ANSIBLE_KEYS) for v in data["hosts"].values()
        )):
            return "bondbot"
    if isinstance(data, dict):
        return "ansible-yaml"
    if data is None:
        return "bondbot"
    raise InventoryError(f"{path}: cannot tell which inventory format this is")


def load_inventory(path: Path | str | None = None, *, fmt: str = "auto", check: bool = True) -> Inventory:
    """Read an inventory file (bondbot's default location when ``path`` is None).

    A missing default inventory is an empty one (every host refused, with a message saying where
    to add it); a missing file named explicitly is an error.
    """
    from bondbot import settings

    explicit = path is not None
    p = Path(path).expanduser() if path is not None else settings.inventory_path()
    if not p.exists():
        if explicit:
            raise InventoryError(f"inventory file {p} does not exist")
        return Inventory(source=p)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"cannot read inventory {p}: {exc}") from None
    kind = _detect_format(p, text) if fmt == "auto" else fmt
    parsers = {
        "bondbot": lambda: parse_bondbot_yaml(text, where=str(p), base=p.parent),
        "ansible-ini": lambda: parse_ansible_ini(text, where=str(p)),
        "ansible-yaml": lambda: parse_ansible_yaml(text, where=str(p)),
        "ssh-config": lambda: parse_ssh_config(text, where=str(p)),
    }
    if kind not in parsers:
        raise InventoryError(f"unknown inventory format {kind!r}; use one of {sorted(parsers)}")
    inv = parsers[kind]()
    inv.source = p
    if check:
        inv.check_jumps()
    return inv


def with_overrides(host: Host, **changes: Any) -> Host:
    """A copy of ``host`` with some fields changed (e.g. a bond given on the command line)."""
    return replace(host, **changes)
