"""Which hosts bondbot may reach, and how: the inventory and its sources.

The inventory is an allowlist: a name that is not in it is refused before anything connects,
unless the inventory says ``settings: {allow_unlisted_hosts: true}``. Hosts come from bondbot's
own YAML file (format below) and, because users already keep them, from Ansible inventories
(``ssh_exec.ansible_inventory``: files, directories, group_vars/host_vars, or ``ansible-inventory``
itself) and OpenSSH client config files (``ssh_exec.ssh_config``), pulled in with ``include:``
or given directly with ``--inventory PATH`` (the format is detected from the content).

bondbot's YAML::

    hosts:
      web-01:
        address: 10.0.0.5      # default: the name
        port: 22               # default: 22
        user: root             # default: the local user name
        key: ~/.ssh/id_ed25519 # or keys: [a, b] (tried in order); default: ~/.ssh/id_* and ssh-agent
        sudo: false            # run commands through ``sudo -n``
        bond: bond0            # the default bond for ``bondbot triage``
        groups: [web, dc1]
        jump: bastion          # optional: another host of this inventory to go through
    include:                   # optional: other inventories merged in (own entries win)
      - {path: /etc/ansible/hosts}             # format detected; or format: ansible|ssh-config|bondbot
      - {path: ~/.ssh/config}
      - {path: inventories/prod, ansible_inventory: false}   # built-in Ansible parser only
    settings:
      allow_unlisted_hosts: false
      ansible_inventory: auto  # auto (use `ansible-inventory` when on PATH) | never

One bad entry never refuses the whole inventory: it is skipped, and ``Inventory.warnings`` says
which file and line, and why (``bondbot hosts list`` prints them). Asking for a skipped host says
why it was skipped. ``Inventory.origins`` says where each value of each host came from.
"""

from __future__ import annotations

import fnmatch
import getpass
import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ssh_exec.errors import HostNotAllowed, HostSkipped, InvalidValue, InventoryError

__all__ = [
    "Host",
    "Inventory",
    "InventoryWarning",
    "parse_bondbot_yaml",
    "validate_host_name",
    "validate_address",
    "validate_user",
    "safe_text",
]

_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}")
_LABEL_RE = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")


def _escaped(ch: str) -> str:
    return ch if ch.isprintable() else (f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")


def safe_text(value: object) -> str:
    """``value`` with every non-printable character (terminal escapes, C1 controls, bidi and
    zero-width marks, line separators) shown as ``\\xNN`` or ``\\uNNNN``.

    The one rule for host- and inventory-sourced text on terminals and in logs (the CLI and the
    fix plan's texts use it too): a host name, a warning quoting a line or a NetworkManager
    profile name must not be able to move the cursor, recolour the screen or reorder what is read.
    """
    return "".join(_escaped(ch) for ch in str(value))


def validate_host_name(name: object) -> str:
    """An inventory name: letters, digits, ``_ . -``, not starting with ``-`` or ``.``; max 253."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidValue(
            f"invalid host name {safe_text(repr(name))}: use 1-253 characters from A-Z a-z 0-9 _ . - "
            "not starting with '-' or '.'"
        )
    return name


def validate_listed_name(name: object) -> str:
    """A name an inventory file lists: ``validate_host_name``, or an IPv6 address (Ansible
    inventories list hosts by address). Names typed by users stay ``validate_host_name``'s."""
    if isinstance(name, str) and ":" in name:
        try:
            return str(ipaddress.IPv6Address(name)) and name
        except ValueError:
            pass
    return validate_host_name(name)


def validate_address(address: object) -> str:
    """An IP address or a DNS name (RFC 1123 labels; ``_`` tolerated)."""
    if isinstance(address, str):
        try:
            return str(ipaddress.ip_address(address))
        except ValueError:
            pass
        if 0 < len(address) <= 253 and all(_LABEL_RE.fullmatch(p) for p in address.split(".")):
            return address
    raise InvalidValue(f"invalid address {safe_text(repr(address))}: expected an IP address or a DNS name")


def validate_user(user: object) -> str:
    if not isinstance(user, str) or not _USER_RE.fullmatch(user):
        raise InvalidValue(
            f"invalid user name {safe_text(repr(user))}: use A-Z a-z 0-9 _ . - (max 32), not starting with '-'")
    return user


def _validate_port(port: object) -> int:
    try:
        value = int(str(port))
    except ValueError:
        value = 0
    if not 1 <= value <= 65535 or isinstance(port, bool):
        raise InvalidValue(f"invalid port {safe_text(repr(port))}: expected a number from 1 to 65535")
    return value


def _as_bool(value: object, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in {"true", "yes", "1", "on", "false", "no", "0", "off", "y", "n"}:
        return value.strip().lower() in {"true", "yes", "1", "on", "y"}
    raise InvalidValue(f"invalid {what} {safe_text(repr(value))}: expected true or false")


@dataclass(frozen=True)
class Host:
    """How to reach one host. ``name`` is what operators type; ``address`` is what we dial.

    ``key`` is the first of ``keys`` (kept for callers that name one key); ``keys`` are tried in
    order, after the ssh-agent's keys when ``SSH_AUTH_SOCK`` is set. ``jump`` names the last hop
    (a host of the inventory, or one of ``Inventory.hops``); ``proxy_jump`` is the whole chain as
    the user wrote it (``a,ops@b:2200``), for display.
    """

    name: str
    address: str
    port: int = 22
    user: str = field(default_factory=getpass.getuser)
    key: Path | None = None
    sudo: bool = False
    bond: str | None = None
    groups: tuple[str, ...] = ()
    jump: str | None = None
    keys: tuple[Path, ...] = ()
    proxy_jump: str | None = None
    #: Runbook parameters for this host, by runbook name (``{"bonding": {"bond": "bond0"}}``);
    #: ``bond`` (the inventories' ``bond:``) is the bonding runbook's ``bond`` and is folded in here.
    params: Mapping[str, Mapping[str, str]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.key is not None and not self.keys:
            object.__setattr__(self, "keys", (self.key,))
        elif self.keys and self.key is None:
            object.__setattr__(self, "key", self.keys[0])
        params = {str(rb): dict(values) for rb, values in (self.params or {}).items()}
        if self.bond is not None:
            params.setdefault("bonding", {})["bond"] = self.bond
        elif params.get("bonding", {}).get("bond") is not None:
            object.__setattr__(self, "bond", params["bonding"]["bond"])  # one value, read either way
        object.__setattr__(self, "params", params)

    def params_for(self, runbook: str) -> Mapping[str, str]:
        """The inventory's parameters for ``runbook`` on this host (empty: none given)."""
        return self.params.get(runbook, {})

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
            "keys": [str(k) for k in self.keys],
            "sudo": self.sudo,
            "bond": self.bond,
            "params": {rb: dict(values) for rb, values in self.params.items()},
            "groups": list(self.groups),
            "jump": self.jump,
            "proxy_jump": self.proxy_jump,
        }


@dataclass(frozen=True)
class InventoryWarning:
    """Something in an inventory that bondbot skipped or does not follow, and where it is."""

    where: str  # "file:line", or "file" when the line is not known
    message: str
    host: str | None = None
    setting: str | None = None

    def __str__(self) -> str:
        who = f"{self.host}: " if self.host else ""
        return safe_text(f"{self.where}: {who}{self.message}")

    def to_json(self) -> dict[str, Any]:
        return {"where": self.where, "host": self.host, "setting": self.setting, "message": self.message}


#: A resolver for names matched by a wildcard pattern: name -> (host, origins, warnings, hops).
PatternResolver = Callable[[str], "tuple[Host | None, dict[str, str], list[InventoryWarning], dict[str, Host]]"]


@dataclass
class Inventory:
    """The hosts bondbot knows, and whether it may reach others (``allow_unlisted_hosts``)."""

    hosts: dict[str, Host] = field(default_factory=dict)
    allow_unlisted_hosts: bool = False
    source: Path | None = None
    warnings: list[InventoryWarning] = field(default_factory=list)
    #: host name -> field -> where it came from ("file:line", "file:line (group web)", "default")
    origins: dict[str, dict[str, str]] = field(default_factory=dict)
    #: jump hops that are not inventory hosts themselves (ProxyJump ``user@host:port`` specs)
    hops: dict[str, Host] = field(default_factory=dict)
    #: names that were skipped -> why (asking for one says so instead of "not in the inventory")
    skipped: dict[str, str] = field(default_factory=dict)
    #: ssh config wildcard ``Host`` patterns: (pattern, where, resolver) for names not listed
    patterns: list[tuple[str, str, PatternResolver]] = field(default_factory=list)

    def warn(self, where: str, message: str, *, host: str | None = None, setting: str | None = None) -> None:
        w = InventoryWarning(str(where), message, host, setting)
        if w not in self.warnings:
            self.warnings.append(w)

    def get(self, name: str) -> Host:
        """The host called ``name``; unlisted names are refused unless explicitly allowed."""
        if name in self.hosts:
            return self.hosts[name]
        validate_host_name(name)
        if name in self.skipped:
            raise HostSkipped(f"{name}: skipped when reading the inventory: {safe_text(self.skipped[name])}",
                              host=name)
        for pattern, where, resolver in self.patterns:
            pats = pattern.split(",")
            if any(fnmatch.fnmatchcase(name, p) for p in pats if not p.startswith("!")) and not any(
                    fnmatch.fnmatchcase(name, p[1:]) for p in pats if p.startswith("!")):
                host, origins, warnings, hops = resolver(name)
                for w in warnings:
                    self.warn(w.where, w.message, host=w.host, setting=w.setting)
                self.hops.update(hops)
                if host is None:
                    reason = "; ".join(w.message for w in warnings) or "cannot be used"
                    raise HostSkipped(f"{name}: matched by 'Host {pattern}' ({where}) but {safe_text(reason)}",
                                      host=name)
                self.origins[name] = origins
                return host
        if not self.allow_unlisted_hosts:
            where = f" ({self.source})" if self.source else ""
            raise HostNotAllowed(
                f"{name}: not in the inventory{where}. bondbot only connects to listed hosts: add it "
                "under 'hosts:' or set 'settings: {allow_unlisted_hosts: true}'.",
                host=name,
            )
        return Host(name=name, address=validate_address(name))

    def jump_host(self, name: str) -> Host:
        """A host to jump through: an inventory host or one of ``hops``."""
        if name in self.hops:
            return self.hops[name]
        return self.get(name)

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
        """Every ``jump`` names a known host, with no loop; a host that fails this is skipped."""
        for host in list(self.hosts.values()):
            seen = [host.name]
            current = host
            problem = None
            while current.jump is not None:
                if current.jump not in self.hosts and current.jump not in self.hops:
                    problem = f"jump host {current.jump!r} is not in the inventory"
                    break
                if current.jump in seen:
                    problem = f"jump hosts loop: {' -> '.join(seen + [current.jump])}"
                    break
                seen.append(current.jump)
                current = self.hosts.get(current.jump) or self.hops[current.jump]
            if problem:
                self.skip(host.name, self.origins.get(host.name, {}).get("jump", str(self.source or "inventory")),
                          f"{problem}; host skipped", setting="jump")

    def skip(self, name: str, where: str, message: str, *, setting: str | None = None) -> None:
        """Drop ``name`` with a warning (one bad entry never refuses the whole inventory)."""
        self.hosts.pop(name, None)
        self.skipped[name] = f"{message} ({where})"
        self.warn(where, message, host=name, setting=setting)

    def merge(self, other: Inventory) -> None:
        """Add ``other``'s hosts that this inventory does not already define, with its warnings."""
        for name, host in other.hosts.items():
            if name not in self.hosts and name not in self.skipped:
                self.hosts[name] = host
                self.origins[name] = other.origins.get(name, {})
        for name, why in other.skipped.items():
            if name not in self.hosts:
                self.skipped.setdefault(name, why)
        for name, hop in other.hops.items():
            self.hops.setdefault(name, hop)
        self.patterns.extend(other.patterns)
        for w in other.warnings:
            if w not in self.warnings:
                self.warnings.append(w)


def make_host(name: str, fields: Mapping[str, Any], where: str) -> Host:
    """A validated ``Host``; raises ``InvalidValue`` naming the bad field."""
    validate_listed_name(name)
    address = validate_address(str(fields.get("address") or name))
    port = _validate_port(fields.get("port", 22) if fields.get("port") is not None else 22)
    user = validate_user(str(fields["user"])) if fields.get("user") is not None else getpass.getuser()
    keys_raw = fields.get("keys")
    if keys_raw is None and fields.get("key"):
        keys_raw = [fields["key"]]
    if isinstance(keys_raw, str):
        keys_raw = [keys_raw]
    keys = tuple(Path(os.path.expanduser(str(k))) for k in keys_raw or ())
    sudo = _as_bool(fields.get("sudo", False), "sudo")
    bond = fields.get("bond")
    if bond is not None and not isinstance(bond, str):
        raise InvalidValue(f"invalid bond {bond!r}: expected an interface name")
    params = _runbook_params(fields.get("runbooks"))
    groups_raw = fields.get("groups", ())
    if isinstance(groups_raw, str):
        groups_raw = [groups_raw]
    groups = tuple(validate_host_name(str(g)) for g in groups_raw or ())
    jump = fields.get("jump")
    if jump is not None:
        jump = str(jump)
        if jump not in (fields.get("_hop_names") or ()):
            validate_host_name(jump)
    return Host(name, address, port, user, keys[0] if keys else None, sudo, bond, groups, jump, keys,
                fields.get("proxy_jump"), params)


def _runbook_params(raw: object) -> dict[str, dict[str, str]]:
    """``runbooks: {loadavg: {threshold: "4"}}``: plain names and strings here; each value is
    validated by its runbook's declared type when a triage uses it."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidValue("invalid runbooks: expected a mapping of runbook name -> {parameter: value}")
    out: dict[str, dict[str, str]] = {}
    for rb, values in raw.items():
        if not isinstance(rb, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", rb):
            raise InvalidValue(f"invalid runbook name {safe_text(repr(rb))} in runbooks:")
        if not isinstance(values, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str | int) and not isinstance(v, bool) for k, v in values.items()):
            raise InvalidValue(f"invalid runbooks.{rb}: expected a mapping of parameter -> value")
        out[rb] = {k: str(v) for k, v in values.items()}
    return out


def _make_host(name: str, fields: Mapping[str, Any], where: str) -> Host:
    """``make_host`` with the error naming the file (bondbot YAML: refuse, the caller skips)."""
    try:
        return make_host(name, fields, where)
    except InvalidValue as exc:
        raise InventoryError(f"{where}: host {safe_text(repr(name))}: {exc}") from None


# --- YAML with line numbers ------------------------------------------------------------------------


class LineDict(dict):
    """A YAML mapping that remembers the line (1-based) of each key."""

    lines: dict[Any, int]


def yaml_load(text: str, where: str, *, lines: bool = False) -> Any:
    """YAML (libyaml when present: a 1,000-host inventory loads ~7x faster); mappings are
    ``LineDict`` with each key's line when ``lines``."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader: Any = base
    if lines:
        class _Loader(base):  # type: ignore[valid-type, misc]
            pass

        def construct(loader: Any, node: Any) -> LineDict:
            loader.flatten_mapping(node)
            out = LineDict()
            out.lines = {}
            for key_node, value_node in node.value:
                key = loader.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    key = str(key)
                out[key] = loader.construct_object(value_node, deep=True)
                out.lines[key] = key_node.start_mark.line + 1
            return out

        _Loader.add_constructor("tag:yaml.org,2002:map", construct)
        loader = _Loader
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise InventoryError(f"{where}: not valid YAML: {safe_text(exc)}") from None


def _line_of(mapping: Any, key: Any) -> int | None:
    return getattr(mapping, "lines", {}).get(key)


# --- bondbot YAML ---------------------------------------------------------------------------------

_BONDBOT_FIELDS = {"address", "port", "user", "key", "keys", "sudo", "bond", "groups", "jump", "runbooks"}


#: Reads an included inventory: ``(path, fmt, use_ansible_inventory) -> Inventory``
#: (``ssh_exec.sources.load_inventory`` passes itself, so this module imports no file reader).
IncludeLoader = Callable[[Path, str, "bool | None"], "Inventory"]


def parse_bondbot_yaml(text: str, *, where: str = "inventory", base: Path | None = None,
                       use_ansible_inventory: bool | None = None, data: Any = None,
                       include: IncludeLoader | None = None) -> Inventory:
    """bondbot's own format; a bad host entry is skipped with a warning, a bad file is refused.
    ``data``: the file already loaded (``yaml_load(..., lines=True)``), to parse it only once.
    ``include``: how to read the files under ``include:`` (None: they are not followed, with a
    warning each)."""
    if data is None:
        data = yaml_load(text, where, lines=True)
    data = data or {}
    if not isinstance(data, dict):
        raise InventoryError(f"{where}: expected a mapping with 'hosts:' at the top")
    unknown = set(data) - {"hosts", "settings", "include"}
    if unknown:
        raise InventoryError(f"{where}: unknown top-level key(s) {sorted(unknown)}; expected hosts, settings, include")
    settings = data.get("settings") or {}
    if not isinstance(settings, dict) or set(settings) - {"allow_unlisted_hosts", "ansible_inventory"}:
        raise InventoryError(f"{where}: 'settings' accepts only allow_unlisted_hosts and ansible_inventory")
    inv = Inventory(allow_unlisted_hosts=_as_bool(settings.get("allow_unlisted_hosts", False), "allow_unlisted_hosts"))
    mode = str(settings.get("ansible_inventory", "auto")).lower()
    if mode not in {"auto", "never", "false", "no"}:
        raise InventoryError(f"{where}: settings.ansible_inventory must be auto or never, got {mode!r}")
    if use_ansible_inventory is None and mode != "auto":
        use_ansible_inventory = False
    hosts = data.get("hosts") or {}
    if not isinstance(hosts, dict):
        raise InventoryError(f"{where}: 'hosts' must be a mapping of name -> settings")
    for name, fields in hosts.items():
        line = _line_of(hosts, name)
        here = f"{where}:{line}" if line else where
        name = str(name)
        fields = fields or {}
        if not isinstance(fields, dict):
            inv.skip(name, here, "expected a mapping of settings; host skipped")
            continue
        extra = set(fields) - _BONDBOT_FIELDS
        if extra:
            inv.skip(name, here, f"unknown key(s) {sorted(extra)} (allowed: {sorted(_BONDBOT_FIELDS)}); host skipped")
            continue
        try:
            inv.hosts[name] = make_host(name, fields, where)
        except InvalidValue as exc:
            inv.skip(name, here, f"{exc}; host skipped")
            continue
        inv.origins[name] = {
            k: (f"{where}:{_line_of(fields, k)}" if _line_of(fields, k) else here) for k in fields
        }
    for item in data.get("include") or []:
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, dict) or "path" not in item:
            inv.warn(where, "each 'include' entry needs a 'path'; entry ignored")
            continue
        path = Path(os.path.expanduser(str(item["path"])))
        if base is not None and not path.is_absolute():
            path = base / path
        use = use_ansible_inventory
        if "ansible_inventory" in item:
            use = _as_bool(item["ansible_inventory"], "ansible_inventory") if use is not False else False
        if include is None:
            inv.warn(where, f"include {path}: not followed (read the file with load_inventory)")
            continue
        try:
            inv.merge(include(path, str(item.get("format", "auto")), use))
        except InventoryError as exc:
            inv.warn(where, f"include {path}: {exc}; its hosts are not loaded")
    return inv


def with_overrides(host: Host, **changes: Any) -> Host:
    """A copy of ``host`` with some fields changed (e.g. a bond given on the command line)."""
    return replace(host, **changes)
