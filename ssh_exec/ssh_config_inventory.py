"""An OpenSSH client config as an inventory: aliases become hosts, ProxyJump chains become hops.

The reading itself is ``ssh_exec.ssh_config`` (asyncssh's parser, matched against ``ssh -G``).
Here: which names are hosts (literal ``Host`` aliases, plus names matching a wildcard pattern
other than ``*`` alone, resolved when asked for), how a ``ProxyJump a,ops@b:2200`` chain becomes
hops (each one a connection whose host key bondbot checks strictly), and what is warned about.

ProxyJump chains follow ssh: the first hop is resolved with its own config (its own ProxyJump
applies), each later hop is reached through the previous one, and ``user@``/``:port`` in a hop
spec win over that hop's config.
"""

from __future__ import annotations

import functools
from pathlib import Path

from ssh_exec.errors import InvalidValue
from ssh_exec.inventory import (
    Host,
    Inventory,
    InventoryWarning,
    make_host,
    validate_address,
    validate_user,
)
from ssh_exec.ssh_config import Resolved, parse_jump_spec, read_ssh_config, resolve

__all__ = ["ssh_config_inventory"]

_FIELDS = ("address", "port", "user", "keys", "jump")


def _warnings(r: Resolved, host: str) -> list[InventoryWarning]:
    return [InventoryWarning(where, msg, host, setting or None) for where, setting, msg in r.warnings]


def _hop(path: Path, spec: str, prev: str | None, first: bool, aliases: set[str], seen: frozenset[str],
         hops: dict[str, Host], warnings: list[InventoryWarning]) -> str:
    """The name of the hop for ``spec`` (reached through ``prev``), adding it to ``hops``."""
    user, name, port = parse_jump_spec(spec)
    r = resolve(path, name, user=user, port=port)
    warnings.extend(_warnings(r, spec))
    if r.skip:
        raise InvalidValue(f"jump host {spec!r} needs a ProxyCommand, which bondbot does not run")
    jump = prev
    if first and r.proxy_jump:
        if name in seen:
            raise InvalidValue(f"ProxyJump loop through {name!r}")
        jump = _chain(path, r.proxy_jump, aliases, seen | {name}, hops, warnings)
    if first and user is None and port is None and name in aliases:
        return name  # the alias itself, an inventory host resolved the same way
    hop_name = spec if jump is None else f"{spec} via {jump}"
    hops[hop_name] = Host(
        name=hop_name,
        address=validate_address(r.address),
        port=r.port,
        user=validate_user(r.user),
        keys=tuple(Path(k) for k in r.keys),
        jump=jump,
        proxy_jump=r.proxy_jump if first else None,
    )
    return hop_name


def _chain(path: Path, chain: str, aliases: set[str], seen: frozenset[str], hops: dict[str, Host],
           warnings: list[InventoryWarning]) -> str:
    prev: str | None = None
    for i, spec in enumerate(s for s in chain.split(",") if s.strip()):
        try:
            prev = _hop(path, spec.strip(), prev, i == 0, aliases, seen, hops, warnings)
        except ValueError as exc:
            raise InvalidValue(str(exc)) from None
    if prev is None:
        raise InvalidValue(f"empty ProxyJump {chain!r}")
    return prev


def _host_for(path: Path, name: str, where: str, aliases: set[str]
              ) -> tuple[Host | None, dict[str, str], list[InventoryWarning], dict[str, Host]]:
    r = resolve(path, name)
    warnings = _warnings(r, name)
    origins = {"name": where}
    for f in _FIELDS:
        origins[f] = r.origins.get(f, "default")
    if r.keys_default:
        origins["keys"] = "default (~/.ssh/id_* and ssh-agent)"
    if r.skip:
        return None, origins, warnings, {}
    hops: dict[str, Host] = {}
    fields: dict[str, object] = {"address": r.address, "port": r.port, "user": r.user, "keys": r.keys}
    try:
        if r.proxy_jump:
            fields["jump"] = _chain(path, r.proxy_jump, aliases, frozenset({name}), hops, warnings)
            fields["_hop_names"] = set(hops)
            fields["proxy_jump"] = r.proxy_jump
        host = make_host(name, fields, where)
    except InvalidValue as exc:
        warnings.append(InventoryWarning(where, f"{exc}; host skipped", name))
        return None, origins, warnings, {}
    return host, origins, warnings, hops


def ssh_config_inventory(path: Path, *, shown_as: str | None = None) -> Inventory:
    """Hosts of the ssh config at ``path``; a host that cannot be used is skipped with a warning."""
    result = read_ssh_config(path)
    inv = Inventory()
    for where, message in result.errors:
        inv.warn(where, message)
    aliases = {a for a, _ in result.aliases}
    for alias, where in result.aliases:
        host, origins, warnings, hops = _host_for(path, alias, where, aliases)
        for w in warnings:
            inv.warn(w.where, w.message, host=w.host, setting=w.setting)
        if host is None:
            mine = [w for w in warnings if w.host == alias]
            inv.skipped[alias] = "; ".join(f"{w.message} ({w.where})" for w in mine) or f"cannot be used ({where})"
            continue
        inv.hosts[alias] = host
        inv.origins[alias] = origins
        inv.hops.update(hops)
    if shown_as is None:
        for pattern, where in result.patterns:
            inv.patterns.append((pattern, where, functools.partial(_host_for, path, where=where, aliases=aliases)))
    return inv
