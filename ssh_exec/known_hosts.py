"""bondbot's own known_hosts file: read strictly, written only on an operator's confirmation.

The file is in OpenSSH format so that operators can inspect it with ``ssh-keygen -F`` and seed
it from their own files. bondbot never adds a key by itself; ``bondbot hosts trust`` is the only
writer, and it writes only after the operator has seen and confirmed the fingerprint.

Every function takes the file's path: where it lives is a setting of the entry point
(``bondbot.settings.known_hosts_path()``), which this layer does not know.
"""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh

from ssh_exec.errors import InventoryError
from ssh_exec.inventory import Host

__all__ = ["fingerprint", "load_known_hosts", "trusted_keys", "record_host_key"]


def fingerprint(key: asyncssh.SSHKey) -> str:
    """``SHA256:...``, the form ``ssh`` and ``ssh-keygen -l`` print."""
    return key.get_fingerprint("sha256")


def load_known_hosts(path: Path) -> asyncssh.SSHKnownHosts:
    """The trusted keys; a missing file trusts nothing (every host key is then 'unknown')."""
    p = path
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    except OSError as exc:
        raise InventoryError(f"cannot read bondbot's known_hosts file {p}: {exc}") from None
    try:
        return asyncssh.import_known_hosts(text)
    except (ValueError, asyncssh.KeyImportError) as exc:
        raise InventoryError(f"bondbot's known_hosts file {p} is not in OpenSSH format: {exc}") from None


def trusted_keys(host: Host, path: Path, *, addr: str = "") -> list[asyncssh.SSHKey]:
    """The keys recorded for ``host`` (by its address and port)."""
    matched = load_known_hosts(path).match(host.address, addr, host.port)
    return list(matched[0])


def record_host_key(host: Host, key: asyncssh.SSHKey, path: Path, *, replace: bool = False) -> Path:
    """Append ``key`` for ``host``; with ``replace``, drop the lines for this host first.

    Only ``bondbot hosts trust`` calls this, after the operator confirmed the fingerprint.
    """
    p = path
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pattern = host.known_hosts_pattern
    lines: list[str] = []
    if p.exists():
        lines = p.read_text(encoding="utf-8").splitlines()
    if replace:
        lines = [ln for ln in lines if not _line_is_for(ln, pattern)]
    public = key.export_public_key("openssh").decode().split()
    lines.append(f"{pattern} {public[0]} {public[1]}")
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o644)
    tmp.replace(p)
    return p


def _line_is_for(line: str, pattern: str) -> bool:
    fields = line.split()
    if not fields or fields[0].startswith("#"):
        return False
    first = fields[1] if fields[0].startswith("@") and len(fields) > 1 else fields[0]
    return pattern in first.split(",")
