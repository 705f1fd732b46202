"""Writing the lab host into bondbot's inventory and pinning its host key in known_hosts.

Both files belong to the user as much as to the lab: the inventory entry ``lab-host`` is merged
(other hosts and settings are kept), and only the known_hosts line for the lab's own
``[address]:port`` is replaced. Files are replaced atomically so a reader never sees half a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["write_inventory_entry", "pin_known_host", "known_hosts_pattern"]


def _atomic_write(path: Path, text: str, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_inventory_entry(path: Path, name: str, entry: dict[str, Any]) -> None:
    """Set ``hosts.<name>`` in the YAML inventory at ``path``, keeping everything else.

    Comments in the file are not preserved (PyYAML does not keep them); the data is.
    """
    import yaml

    data: dict[str, Any] = {}
    if path.exists():
        loaded = yaml.safe_load(path.read_text())
        if loaded is not None:
            if not isinstance(loaded, dict):
                from lab.errors import LabError

                raise LabError(f"{path}: not a bondbot inventory (expected a mapping at the top level)")
            data = loaded
    hosts = data.get("hosts") or {}
    if not isinstance(hosts, dict):
        from lab.errors import LabError

        raise LabError(f"{path}: 'hosts' must be a mapping of host names")
    hosts[name] = entry
    data["hosts"] = hosts
    class Dumper(yaml.SafeDumper):
        """Block mappings, flow lists (``groups: [lab]``), as people write inventories."""

    Dumper.add_representer(
        list, lambda dumper, value: dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=True)
    )
    text = yaml.dump(data, Dumper=Dumper, sort_keys=False, default_flow_style=False)
    _atomic_write(path, text, 0o600)


def known_hosts_pattern(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


def pin_known_host(path: Path, address: str, port: int, key_line: str) -> None:
    """Make ``path`` hold exactly one line for ``[address]:port``: ``key_line`` (``type base64``)."""
    pattern = known_hosts_pattern(address, port)
    lines: list[str] = []
    if path.exists():
        for line in path.read_text().splitlines():
            fields = line.split()
            if fields and not line.lstrip().startswith("#") and pattern in fields[0].split(","):
                continue
            lines.append(line)
    lines.append(f"{pattern} {key_line}")
    _atomic_write(path, "\n".join(lines) + "\n", 0o644)
