"""Ansible inventories, read as Ansible reads them.

Two readers, one meaning:

- ``ansible-inventory --list`` (the real parser: plugins, scripts, directories, group_vars and
  host_vars, ranges) when it is installed. It starts slowly (~1 s), so for inventories made only
  of static files its output is cached in the ``cache_dir`` the caller gives (the CLI: bondbot's
  data directory, ``cache/ansible-inventory``), keyed on the path, size and
  mtime of every file it reads (inventory files, group_vars/, host_vars/, ansible.cfg) and the
  ``ANSIBLE_*`` environment: an unchanged inventory costs no ``ansible-inventory`` run at all.
  Plugin configs and scripts are never cached (their output can change by itself).
  The caller's ``ansible_inventory`` setting ``never`` (the CLI's ``BONDBOT_ANSIBLE_INVENTORY=never``,
  ``--no-ansible-inventory``, or the inventory's own ``settings: {ansible_inventory: never}``) turns it
  off; a path names the binary; ``auto`` (the default) runs the one on PATH.
- the built-in parser otherwise: INI and YAML, every range form (``[01:20:5]``, ``[a:f]``, several
  ranges in one name), ``host:port``, ``[group:vars]`` with ``key = value``, ``:children``, a
  directory as the inventory, group_vars/ and host_vars/ (files and directories), Ansible's
  variable precedence. It also runs beside ``ansible-inventory`` to say which file and line each
  value came from.

Either way the host is then built by one function (``_host_from_vars``): ``ansible_host``,
``ansible_port``, ``ansible_user``, ``ansible_ssh_private_key_file``, ``ansible_become``,
``bondbot_bond``, ``bondbot_jump``, ``-J``/``ProxyJump`` in ``ansible_ssh_common_args``, and
Jinja2 templates over the host's own variables are applied. Whatever it cannot follow
(``ansible_connection`` other than ssh, a template it cannot render, ``ProxyCommand``) skips the
host with a warning naming the file, line and setting; what it does not apply but can connect
without (passwords, ``StrictHostKeyChecking``, ``become_method``) is a warning and the host is
used as written.
"""

from __future__ import annotations

import ast
import getpass
import hashlib
import json
import os
import re
import shlex
import shutil
import string
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssh_exec.errors import InvalidValue, InventoryError
from ssh_exec.inventory import (
    Host,
    Inventory,
    make_host,
    safe_text,
    validate_address,
    validate_listed_name,
    validate_user,
    yaml_load,
)

__all__ = ["load_ansible", "builtin_inventory_from_text", "ansible_inventory_binary"]

_IGNORED_EXTS = (".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg", ".retry")
_VARS_EXTS = ("", ".yml", ".yaml", ".json")
_SSH_CONNECTIONS = {"ssh", "smart", "paramiko", "paramiko_ssh", "ansible.builtin.ssh", "ansible.legacy.ssh",
                    "ansible.builtin.paramiko_ssh", "ansible.netcommon.libssh"}
#: Later names win, as in Ansible's connection plugin option lookup.
_FIELD_VARS = {
    "address": ("ansible_host", "ansible_ssh_host"),
    "port": ("ansible_port", "ansible_ssh_port"),
    "user": ("ansible_user", "ansible_ssh_user"),
    "keys": ("ansible_private_key_file", "ansible_ssh_private_key_file"),
    "sudo": ("ansible_become",),
    "bond": ("bondbot_bond",),
    "jump": ("bondbot_jump",),
}
_NOT_APPLIED_VARS = {
    "ansible_password": "bondbot authenticates with keys only",
    "ansible_ssh_pass": "bondbot authenticates with keys only",
    "ansible_ssh_password": "bondbot authenticates with keys only",
    "ansible_become_password": "bondbot runs sudo -n, which never asks for a password",
    "ansible_become_pass": "bondbot runs sudo -n, which never asks for a password",
    "ansible_host_key_checking": "bondbot always checks host keys against its own known_hosts",
    "ansible_ssh_host_key_checking": "bondbot always checks host keys against its own known_hosts",
}
#: ``-o`` options in ssh args that change nothing about where, as whom or how safely we connect.
_HARMLESS_SSH_OPTIONS = {"controlmaster", "controlpersist", "controlpath", "serveraliveinterval",
                         "serveralivecountmax", "connecttimeout", "compression", "loglevel", "tcpkeepalive",
                         "connectionattempts", "forwardagent=no"}
_SSH_ARG_VARS = ("ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_ssh_args")


# --- values with their origin -----------------------------------------------------------------------


@dataclass
class _Var:
    value: Any
    where: str


VarMap = dict[str, _Var]


@dataclass
class _Group:
    name: str
    vars: VarMap = field(default_factory=dict)
    children: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)


@dataclass
class _Tree:
    """What the built-in parser read: groups, hosts and their vars, each value with its origin."""

    groups: dict[str, _Group] = field(default_factory=dict)
    host_vars: dict[str, VarMap] = field(default_factory=dict)
    host_where: dict[str, str] = field(default_factory=dict)
    inventory: Inventory = field(default_factory=Inventory)
    vars_bases: list[Path] = field(default_factory=list)
    static: bool = True  # only plain files (cacheable); False for scripts and plugin configs
    files: list[Path] = field(default_factory=list)

    def group(self, name: str) -> _Group:
        if name not in self.groups:
            self.groups[name] = _Group(name)
        return self.groups[name]

    def add_host(self, group: str, name: str, vars_: VarMap, where: str) -> None:
        g = self.group(group)
        if name not in g.hosts:
            g.hosts.append(name)
        if name not in self.host_vars:
            self.host_vars[name] = {}
            self.host_where[name] = where
        self.host_vars[name].update(vars_)


# --- ranges and host patterns -------------------------------------------------------------------------


def expand_range(pattern: str) -> list[str]:
    """Ansible's host ranges: ``[1:3]``, ``[01:20:5]`` (width kept), ``[a:f]``, several per name."""
    if "[" not in pattern:
        return [pattern]
    head, _, rest = pattern.partition("[")
    nrange, close, tail = rest.partition("]")
    if not close:
        raise ValueError(f"unclosed range in {pattern!r}")
    bounds = nrange.split(":")
    if len(bounds) not in (2, 3):
        raise ValueError(f"host range must be begin:end or begin:end:step, got [{nrange}]")
    beg, end = bounds[0] or "0", bounds[1]
    step = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise ValueError("host range must specify end value")
    if not step.isdigit() or int(step) < 1:
        raise ValueError(f"host range step must be a positive number, got {step!r}")
    if beg[0] == "0" and len(beg) > 1:
        if len(beg) != len(end):
            raise ValueError("host range must specify equal-length begin and end formats")
        width = len(beg)
    else:
        width = 0
    seq: list[str]
    if beg in string.ascii_letters and end in string.ascii_letters:
        i, j = string.ascii_letters.index(beg), string.ascii_letters.index(end)
        if i > j:
            raise ValueError("host range must have begin <= end")
        seq = list(string.ascii_letters[i:j + 1:int(step)])
    else:
        try:
            seq = [str(n).zfill(width) for n in range(int(beg), int(end) + 1, int(step))]
        except ValueError:
            raise ValueError(f"host range [{nrange}] is neither numeric nor letters") from None
    out: list[str] = []
    for item in seq:
        out += expand_range(head + item + tail)
    return out


def _split_host_port(pattern: str) -> tuple[str, int | None]:
    """``host:port``, ``[v6]:port``, a bare v6 address, or a range pattern with ``:`` inside ``[]``."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?", pattern)
    if m and ":" in m.group(1):
        return m.group(1), int(m.group(2)) if m.group(2) else None
    depth, colon = 0, -1
    for i, ch in enumerate(pattern):
        depth += ch == "["
        depth -= ch == "]"
        if ch == ":" and depth == 0:
            if colon >= 0:
                return pattern, None  # an IPv6 address without brackets
            colon = i
    if colon < 0:
        return pattern, None
    host, port = pattern[:colon], pattern[colon + 1:]
    if not port.isdigit():
        raise ValueError(f"invalid port {port!r} in {pattern!r}")
    return host, int(port)


def _expand_hostpattern(pattern: str) -> tuple[list[str], int | None]:
    host, port = _split_host_port(pattern)
    return expand_range(host), port


# --- INI ------------------------------------------------------------------------------------------------

_SECTION_RE = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_GROUPNAME_RE = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")


def _ini_value(v: str) -> Any:
    try:
        return ast.literal_eval(v)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return v


def _read_ini(text: str, where: str, tree: _Tree) -> None:
    inv = tree.inventory
    section, kind = "ungrouped", "hosts"
    for lineno, raw in enumerate(text.splitlines(), 1):
        here = f"{where}:{lineno}"
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and (line.endswith("]") or _SECTION_RE.match(line)):
            m = _SECTION_RE.match(line)
            if not m:
                inv.warn(here, f"cannot read section header {safe_text(line)!r}; the lines up to the next header are skipped")
                section, kind = "", "skip"
                continue
            section, kind = m.group(1), m.group(2) or "hosts"
            if kind not in {"hosts", "vars", "children"}:
                inv.warn(here, f"unknown section kind {kind!r}; the lines up to the next header are skipped")
                kind = "skip"
                continue
            tree.group(section)
            continue
        if kind == "skip":
            continue
        if kind == "vars":
            if "=" not in line:
                inv.warn(here, f"expected key=value in [{section}:vars], got {safe_text(line)!r}; line skipped")
                continue
            k, v = (e.strip() for e in line.split("=", 1))
            tree.group(section).vars[k] = _Var(_ini_value(v), here)
        elif kind == "children":
            m = _GROUPNAME_RE.match(line)
            if not m:
                inv.warn(here, f"expected a group name in [{section}:children], got {safe_text(line)!r}; line skipped")
                continue
            tree.group(m.group(1))
            if m.group(1) not in tree.group(section).children:
                tree.group(section).children.append(m.group(1))
        else:
            try:
                tokens = shlex.split(line, comments=True)
                names, port = _expand_hostpattern(tokens[0])
                hvars: VarMap = {}
                for tok in tokens[1:]:
                    if "=" not in tok:
                        raise ValueError(f"expected key=value host variable assignment, got {tok!r}")
                    k, v = tok.split("=", 1)
                    hvars[k] = _Var(_ini_value(v), here)
                if port is not None:
                    hvars["ansible_port"] = _Var(port, here)
            except (ValueError, IndexError) as exc:
                inv.warn(here, f"{safe_text(exc)}; line skipped")
                continue
            for name in names:
                tree.add_host(section, name, hvars, here)


# --- YAML -------------------------------------------------------------------------------------------------


def _vars_with_lines(mapping: Any, where: str, fallback: str) -> VarMap:
    lines = getattr(mapping, "lines", {})
    return {str(k): _Var(v, f"{where}:{lines[k]}" if k in lines else fallback) for k, v in mapping.items()}


def _read_yaml(data: Any, where: str, tree: _Tree) -> None:
    inv = tree.inventory

    def here(mapping: Any, key: Any) -> str:
        line = getattr(mapping, "lines", {}).get(key)
        return f"{where}:{line}" if line else where

    def walk(group: str, body: Any, at: str) -> None:
        tree.group(group)
        if body is None:
            return
        if not isinstance(body, dict):
            inv.warn(at, f"group {safe_text(group)!r} must be a mapping (hosts, vars, children); group skipped")
            return
        for key in body:
            if key not in ("hosts", "vars", "children"):
                inv.warn(here(body, key), f"group {safe_text(group)!r}: unknown key {safe_text(key)!r} ignored")
        hosts = body.get("hosts") or {}
        if isinstance(hosts, dict):
            for pattern, hvars in hosts.items():
                hat = here(hosts, pattern)
                try:
                    names, port = _expand_hostpattern(str(pattern))
                except ValueError as exc:
                    inv.warn(hat, f"{safe_text(exc)}; host skipped")
                    continue
                if hvars is not None and not isinstance(hvars, dict):
                    inv.warn(hat, f"host {safe_text(pattern)!r}: variables must be a mapping; host skipped")
                    continue
                vmap = _vars_with_lines(hvars or {}, where, hat)
                if port is not None:
                    vmap["ansible_port"] = _Var(port, hat)
                for name in names:
                    tree.add_host(group, name, vmap, hat)
        else:
            inv.warn(here(body, "hosts"), f"group {safe_text(group)!r}: hosts must be a mapping; ignored")
        gvars = body.get("vars") or {}
        if isinstance(gvars, dict):
            tree.group(group).vars.update(_vars_with_lines(gvars, where, here(body, "vars")))
        else:
            inv.warn(here(body, "vars"), f"group {safe_text(group)!r}: vars must be a mapping; ignored")
        children = body.get("children") or {}
        if isinstance(children, dict):
            for child, child_body in children.items():
                if str(child) not in tree.group(group).children:
                    tree.group(group).children.append(str(child))
                walk(str(child), child_body, here(children, child))
        else:
            inv.warn(here(body, "children"), f"group {safe_text(group)!r}: children must be a mapping; ignored")

    for group, body in data.items():
        walk(str(group), body, here(data, group))


# --- files, directories, group_vars/host_vars -----------------------------------------------------------


def _is_yaml_source(path: Path) -> bool:
    return path.suffix in (".yml", ".yaml", ".json") or path.suffix == ""


def _read_source(path: Path, tree: _Tree) -> None:
    inv = tree.inventory
    if path.is_dir():
        tree.vars_bases.append(path)
        for child in sorted(path.iterdir()):
            if child.name in ("group_vars", "host_vars") or child.name.startswith("."):
                continue
            if child.name.endswith(_IGNORED_EXTS):
                continue
            _read_source(child, tree)
        return
    tree.files.append(path)
    if path.parent not in tree.vars_bases:
        tree.vars_bases.append(path.parent)
    if os.access(path, os.X_OK):
        tree.static = False
        inv.warn(str(path), "an executable inventory script: only ansible-inventory runs it; its hosts are not loaded")
        return
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        inv.warn(str(path), f"cannot read: {exc}; file skipped")
        return
    if _is_yaml_source(path):
        try:
            data = yaml_load(text, str(path), lines=True)
        except InventoryError:
            data = None
        if isinstance(data, dict):
            if "plugin" in data:
                tree.static = False
                inv.warn(f"{path}:{getattr(data, 'lines', {}).get('plugin', 1)}",
                         f"inventory plugin {safe_text(data['plugin'])!r}: only ansible-inventory runs plugins; its hosts are not loaded",
                         setting="plugin")
                return
            _read_yaml(data, str(path), tree)
            return
    _read_ini(text, str(path), tree)


def _vars_files(base: Path, kind: str, name: str) -> Iterator[Path]:
    folder = base / kind
    for ext in _VARS_EXTS:
        f = folder / (name + ext)
        if f.is_file():
            yield f
    d = folder / name
    if d.is_dir():
        for f in sorted(p for p in d.rglob("*") if p.is_file()):
            if f.suffix in _VARS_EXTS and not f.name.startswith("."):
                yield f


def _load_vars(tree: _Tree, kind: str, name: str) -> VarMap:
    out: VarMap = {}
    for base in tree.vars_bases:
        for f in _vars_files(base, kind, name):
            try:
                text = f.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                tree.inventory.warn(str(f), f"cannot read: {exc}; file skipped")
                continue
            if text.lstrip().startswith("$ANSIBLE_VAULT"):
                tree.inventory.warn(str(f), "vault-encrypted: bondbot cannot read it; its variables are not applied")
                continue
            try:
                data = yaml_load(text, str(f), lines=True)
            except InventoryError as exc:
                tree.inventory.warn(str(f), f"{exc}; file skipped")
                continue
            if data is None:
                continue
            if not isinstance(data, dict):
                tree.inventory.warn(str(f), "expected a mapping of variables; file skipped")
                continue
            out.update(_vars_with_lines(data, str(f), str(f)))
    return out


def _group_depths(tree: _Tree) -> dict[str, int]:
    depth: dict[str, int] = {"all": 0}
    parents: dict[str, list[str]] = {}
    for g in tree.groups.values():
        for c in g.children:
            parents.setdefault(c, []).append(g.name)

    def d(name: str, seen: frozenset[str]) -> int:
        if name in depth:
            return depth[name]
        ps = [p for p in parents.get(name, []) if p not in seen]
        value = 1 + max((d(p, seen | {name}) for p in ps), default=0)
        depth[name] = value
        return value

    for name in tree.groups:
        d(name, frozenset())
    return depth


def _host_groups(tree: _Tree, name: str) -> list[str]:
    parents: dict[str, list[str]] = {}
    for g in tree.groups.values():
        for c in g.children:
            parents.setdefault(c, []).append(g.name)
    out: list[str] = []
    todo = [g.name for g in tree.groups.values() if name in g.hosts]
    while todo:
        group = todo.pop(0)
        if group not in out:
            out.append(group)
            todo += parents.get(group, [])
    return out


def _merged_vars(tree: _Tree) -> dict[str, tuple[VarMap, list[str]]]:
    """Each host's variables with Ansible's precedence, and its groups (without all/ungrouped)."""
    depth = _group_depths(tree)
    gv_cache: dict[str, VarMap] = {}

    def group_files(g: str) -> VarMap:
        if g not in gv_cache:
            gv_cache[g] = _load_vars(tree, "group_vars", g)
        return gv_cache[g]

    def priority(g: str) -> int:
        v = tree.groups[g].vars.get("ansible_group_priority") if g in tree.groups else None
        try:
            return int(v.value) if v else 1
        except (TypeError, ValueError):
            return 1

    out: dict[str, tuple[VarMap, list[str]]] = {}
    all_inv = tree.groups["all"].vars if "all" in tree.groups else {}
    for name in tree.host_vars:
        groups = [g for g in _host_groups(tree, name) if g != "all"]
        if not groups:
            groups = ["ungrouped"]
        ordered = sorted(groups, key=lambda g: (depth.get(g, 1), priority(g), g))
        merged: VarMap = dict(all_inv)
        merged.update(group_files("all"))
        for g in ordered:
            for k, v in (tree.groups[g].vars if g in tree.groups else {}).items():
                merged[k] = _Var(v.value, f"{v.where} (group {g})")
        for g in ordered:
            for k, v in group_files(g).items():
                merged[k] = _Var(v.value, f"{v.where} (group {g})")
        merged.update(tree.host_vars[name])
        merged.update(_load_vars(tree, "host_vars", name))
        out[name] = (merged, sorted(g for g in groups if g not in ("all", "ungrouped")))
    return out


def _builtin(path: Path) -> tuple[_Tree, dict[str, tuple[VarMap, list[str]]]]:
    tree = _Tree()
    _read_source(path, tree)
    return tree, _merged_vars(tree)


# --- templates and ssh args ------------------------------------------------------------------------------


class _Unrenderable(Exception):
    pass


def _render(value: Any, context: dict[str, Any]) -> Any:
    """Render Jinja2 in ``value`` over the host's variables, as Ansible does when it connects."""
    if not isinstance(value, str) or ("{{" not in value and "{%" not in value):
        return value
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    current: Any = value
    for _ in range(10):
        try:
            current = env.from_string(current).render(context)
        except jinja2.TemplateError as exc:
            raise _Unrenderable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
        if "{{" not in current and "{%" not in current:
            return current
    raise _Unrenderable("template still not rendered after 10 passes")


def _ssh_args(text: str, where: str, setting: str, host: str, inv: Inventory) -> tuple[str | None, bool]:
    """The ProxyJump chain in ssh args, and whether the host must be skipped (ProxyCommand)."""
    try:
        args = shlex.split(text)
    except ValueError as exc:
        inv.warn(where, f"{setting}: cannot read {safe_text(text)!r} ({exc}); host skipped", host=host, setting=setting)
        return None, True
    jump: str | None = None
    skip = False
    i = 0
    while i < len(args):
        a = args[i]
        value: str | None = None
        if a in ("-J", "-o") and i + 1 < len(args):
            value = args[i + 1]
            i += 1
        elif a.startswith(("-J", "-o")) and len(a) > 2:
            value = a[2:]
        if a.startswith("-J") and value is not None:
            jump = jump or value
        elif a.startswith("-o") and value is not None:
            m = re.match(r"([A-Za-z]+)\s*(?:=\s*|\s+)(.*)$", value.strip())
            key, val = (m.group(1), m.group(2).strip()) if m else (value.strip(), "")
            lkey = key.lower()
            if lkey == "proxyjump":
                if val.lower() != "none":
                    jump = jump or val
            elif lkey == "proxycommand":
                if val.lower() != "none":
                    skip = True  # the caller skips the host, saying why
            elif lkey in _HARMLESS_SSH_OPTIONS or f"{lkey}={val.lower()}" in _HARMLESS_SSH_OPTIONS:
                pass
            elif lkey in ("stricthostkeychecking", "userknownhostsfile", "globalknownhostsfile"):
                inv.warn(where, f"{setting}: -o {safe_text(value)} is not applied: bondbot checks host keys strictly "
                         "against its own known_hosts", host=host, setting=setting)
            else:
                inv.warn(where, f"{setting}: -o {safe_text(value)} is not applied", host=host, setting=setting)
        else:
            inv.warn(where, f"{setting}: {safe_text(a)} is not applied", host=host, setting=setting)
        i += 1
    return jump, skip


def _jump_hops(chain: str, inv: Inventory, names: set[str]) -> str:
    """Hops for a ``-J a,ops@b:2200`` chain, read as written (the name of the last hop)."""
    from ssh_exec.ssh_config import parse_jump_spec

    prev: str | None = None
    for spec in (s.strip() for s in chain.split(",") if s.strip()):
        user, host, port = parse_jump_spec(spec)
        if prev is None and user is None and port is None and host in names:
            prev = host
            continue
        name = spec if prev is None else f"{spec} via {prev}"
        inv.hops[name] = Host(name=name, address=validate_address(host), port=port or 22,
                              user=validate_user(user) if user else getpass.getuser(),
                              jump=prev)
        prev = name
    if prev is None:
        raise InvalidValue(f"empty jump chain {chain!r}")
    return prev


def _host_from_vars(name: str, hv: VarMap, groups: list[str], inv: Inventory, names: set[str], source: str) -> None:
    """Build ``name`` from its variables into ``inv`` (or skip it with a warning)."""
    host_where = hv["__where__"].where if "__where__" in hv else source
    context = {k: v.value for k, v in hv.items() if k != "__where__"}
    context.update(inventory_hostname=name, inventory_hostname_short=name.split(".")[0], group_names=sorted(groups))
    origins: dict[str, str] = {"name": host_where}

    def skip(where: str, message: str, setting: str | None = None) -> None:
        inv.skip(name, where, message, setting=setting)

    conn = hv.get("ansible_connection")
    if conn is not None:
        value = str(conn.value)
        if value not in _SSH_CONNECTIONS:
            skip(conn.where, f"ansible_connection={safe_text(value)}: bondbot connects over SSH only; host skipped",
                 "ansible_connection")
            return
    fields: dict[str, Any] = {"groups": groups}
    for fname, var_names in _FIELD_VARS.items():
        chosen = None
        for vn in var_names:
            if vn in hv and hv[vn].value is not None:
                chosen = vn
        if chosen is None:
            origins[fname] = "default"
            continue
        var = hv[chosen]
        try:
            value = _render(var.value, context)
        except _Unrenderable as exc:
            skip(var.where, f"{chosen}: cannot render {safe_text(var.value)!r} ({safe_text(exc)}); host skipped", chosen)
            return
        fields[fname] = value
        origins[fname] = f"{var.where} ({chosen})" if not var.where.endswith(")") else f"{var.where[:-1]}, {chosen})"
    for vn, why in _NOT_APPLIED_VARS.items():
        if vn in hv:
            inv.warn(hv[vn].where, f"{vn} is not applied: {why}", host=name, setting=vn)
    method = hv.get("ansible_become_method")
    if method is not None and str(method.value) != "sudo":
        inv.warn(method.where, f"ansible_become_method={safe_text(method.value)} is not applied: bondbot uses sudo -n",
                 host=name, setting="ansible_become_method")
    buser = hv.get("ansible_become_user")
    if buser is not None and str(buser.value) != "root":
        inv.warn(buser.where, f"ansible_become_user={safe_text(buser.value)} is not applied: bondbot becomes root",
                 host=name, setting="ansible_become_user")
    chain: str | None = None
    for setting in _SSH_ARG_VARS:
        arg_var = hv.get(setting)
        if arg_var is None or not arg_var.value:
            continue
        try:
            text = str(_render(arg_var.value, context))
        except _Unrenderable as exc:
            skip(arg_var.where, f"{setting}: cannot render {safe_text(arg_var.value)!r} ({safe_text(exc)}); host skipped", setting)
            return
        jump, must_skip = _ssh_args(text, arg_var.where, setting, name, inv)
        if must_skip:
            inv.skip(name, arg_var.where, f"{setting}: ProxyCommand is not run by bondbot (use -J or -o ProxyJump=); "
                     "host skipped", setting=setting)
            return
        if jump and chain is None:
            chain = jump
            origins["jump"] = f"{arg_var.where} ({setting})"
    try:
        if chain is not None:
            if fields.get("jump"):
                inv.warn(origins["jump"], f"bondbot_jump ignored: {chain} in ssh args wins", host=name, setting="bondbot_jump")
            fields["jump"] = _jump_hops(chain, inv, names)
            fields["_hop_names"] = set(inv.hops)
            fields["proxy_jump"] = chain
        host = make_host(name, fields, host_where)
    except (InvalidValue, ValueError) as exc:
        skip(host_where, f"{safe_text(exc)}; host skipped")
        return
    inv.hosts[name] = host
    inv.origins[name] = origins


def _build(hosts: dict[str, tuple[VarMap, list[str]]], inv: Inventory, source: str) -> Inventory:
    names = set(hosts)
    for name, (hv, groups) in hosts.items():
        try:
            validate_listed_name(name)
        except InvalidValue as exc:
            inv.skip(name, hv.get("__where__", _Var(None, source)).where, f"{exc}; host skipped")
            continue
        _host_from_vars(name, hv, groups, inv, names, source)
    return inv


def builtin_inventory_from_text(text: str, where: str, kind: str) -> Inventory:
    """The built-in parser on text (``kind``: ini or yaml); group_vars/host_vars are not looked for."""
    tree = _Tree()
    if kind == "yaml":
        data = yaml_load(text, where, lines=True) or {}
        if not isinstance(data, dict):
            raise InventoryError(f"{where}: expected a mapping of groups")
        _read_yaml(data, where, tree)
    else:
        _read_ini(text, where, tree)
    merged = _merged_vars(tree)
    for name in merged:
        merged[name][0]["__where__"] = _Var(None, tree.host_where[name])
    return _build(merged, tree.inventory, where)


# --- ansible-inventory ---------------------------------------------------------------------------------


def ansible_inventory_binary(setting: str = "auto") -> str | None:
    """``ansible-inventory`` to use, or None, for the caller's setting: never | auto | a path (the
    CLI's comes from ``BONDBOT_ANSIBLE_INVENTORY``; this layer reads no environment of its own)."""
    setting = (setting or "auto").strip()
    if setting.lower() in {"never", "off", "no", "false", "0"}:
        return None
    if setting and setting.lower() != "auto":
        return setting
    return shutil.which("ansible-inventory")


def _cache_key(binary: str, path: Path, tree: _Tree) -> str:
    files: list[Path] = []
    if path.is_dir():
        files += [p for p in path.rglob("*") if p.is_file()]
    else:
        files.append(path)
        for kind in ("group_vars", "host_vars"):
            d = path.parent / kind
            if d.is_dir():
                files += [p for p in d.rglob("*") if p.is_file()]
    cfg = [os.environ.get("ANSIBLE_CONFIG", ""), "ansible.cfg", os.path.expanduser("~/.ansible.cfg"),
           "/etc/ansible/ansible.cfg"]
    h = hashlib.sha256()
    h.update(f"{binary}\0{path.resolve()}\0{os.getcwd()}\0".encode())
    for f in sorted(set(files)) + [Path(c) for c in cfg if c]:
        try:
            st = f.stat()
            h.update(f"{f.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        except OSError:
            h.update(f"{f}\0-\0".encode())
    for k in sorted(os.environ):
        if k.startswith("ANSIBLE_"):
            h.update(f"{k}={os.environ[k]}\0".encode())
    return h.hexdigest()[:32]


def run_ansible_inventory(binary: str, path: Path, *, cache_dir: Path | None) -> tuple[dict[str, Any], list[str]]:
    """``ansible-inventory -i path --list`` as JSON, and its warnings; cached in ``cache_dir`` unless None."""
    key = None
    if cache_dir is not None:
        key = _cache_key(binary, path, _Tree())
        cached = cache_dir / f"{key}.json"
        try:
            data = json.loads(cached.read_text(encoding="utf-8"))
            return data["list"], data["warnings"]
        except (OSError, ValueError, KeyError):
            pass
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_LOCALHOST_WARNING="0")
    try:
        proc = subprocess.run([binary, "-i", str(path), "--list"], capture_output=True, text=True, env=env, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InventoryError(f"{binary} -i {path} --list could not run: {exc}") from None
    warnings = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip().startswith(("[WARNING]", "[DEPRECATION"))]
    if proc.returncode != 0:
        msg = " ".join(ln.strip() for ln in proc.stderr.splitlines() if ln.strip())[:500]
        raise InventoryError(f"ansible-inventory -i {path} --list failed (exit {proc.returncode}): {safe_text(msg)}")
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        raise InventoryError(f"ansible-inventory -i {path} --list printed no JSON") from None
    if key is not None and cache_dir is not None:
        d = cache_dir
        try:
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = d / f"{key}.json.tmp{os.getpid()}"
            tmp.write_text(json.dumps({"list": data, "warnings": warnings}), encoding="utf-8")
            tmp.replace(d / f"{key}.json")
        except OSError:
            pass  # a cache that cannot be written only costs time
    return data, warnings


def _from_ansible_list(data: dict[str, Any], tree_vars: dict[str, tuple[VarMap, list[str]]],
                       tree: _Tree | None, source: str) -> dict[str, tuple[VarMap, list[str]]]:
    hostvars = (data.get("_meta") or {}).get("hostvars") or {}
    parents: dict[str, list[str]] = {}
    members: dict[str, list[str]] = {}
    order: list[str] = []
    for g, body in data.items():
        if g == "_meta" or not isinstance(body, dict):
            continue
        for c in body.get("children") or []:
            parents.setdefault(c, []).append(g)
        for h in body.get("hosts") or []:
            members.setdefault(h, []).append(g)
            if h not in order:
                order.append(h)
    for h in hostvars:
        if h not in order:
            order.append(h)
    if tree is not None:
        known = [h for h in tree.host_vars if h in order]
        order = known + [h for h in order if h not in known]
    out: dict[str, tuple[VarMap, list[str]]] = {}
    for h in order:
        groups: list[str] = []
        todo = list(members.get(h, []))
        while todo:
            g = todo.pop(0)
            if g not in groups:
                groups.append(g)
                todo += parents.get(g, [])
        built = tree_vars.get(h, ({}, []))[0]
        vm: VarMap = {}
        for k, v in (hostvars.get(h) or {}).items():
            b = built.get(k)
            vm[k] = _Var(v, b.where if b is not None and b.value == v else f"{source} (ansible-inventory)")
        where = tree.host_where.get(h, source) if tree is not None else source
        vm["__where__"] = _Var(None, where)
        out[h] = (vm, sorted(g for g in groups if g not in ("all", "ungrouped")))
    return out


def load_ansible(path: Path, *, use_ansible_inventory: bool | None = None, cache_dir: Path | None = None,
                 ansible_inventory: str = "auto") -> Inventory:
    """An Ansible inventory file or directory; see the module docstring for which reader runs.
    ``cache_dir``: where ``ansible-inventory``'s output for static files is kept (None: not cached).
    ``ansible_inventory``: never | auto (on PATH) | the path of the ``ansible-inventory`` to run."""
    tree, merged = _builtin(path)
    for name in merged:
        merged[name][0]["__where__"] = _Var(None, tree.host_where[name])
    binary = ansible_inventory_binary(ansible_inventory) if use_ansible_inventory is not False else None
    if binary is not None:
        try:
            data, warnings = run_ansible_inventory(binary, path, cache_dir=cache_dir if tree.static else None)
        except InventoryError as exc:
            tree.inventory.warn(str(path), f"{exc}; read with bondbot's built-in parser instead")
        else:
            inv = Inventory()  # the built-in parser's own complaints do not apply: ansible-inventory read it
            for line in warnings:
                inv.warn(str(path), f"ansible-inventory: {safe_text(line)}")
            return _build(_from_ansible_list(data, merged, tree, str(path)), inv, str(path))
    return _build(merged, tree.inventory, str(path))
