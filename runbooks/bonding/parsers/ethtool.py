"""Parser for ``ethtool <if>``: what the NIC driver says about the physical link.

Format (ethtool's ``dump_link_usettings`` / netlink ``linkinfo``/``linkmodes``/``linkstate``
printers): an optional list of ``Cannot get <what>: <error>`` lines (printed when not root:
``Operation not permitted`` for wake-on-lan, link status, etc.), then ``Settings for <if>:`` and
TAB-indented ``Key: value`` lines, where long values continue on further, deeper-indented lines
(``Supported link modes``, ``Current message level``). The fields used here: ``Speed: <n>Mb/s``
or ``Unknown!``, ``Duplex: Full|Half|Unknown! (255)``, ``Auto-negotiation: on|off``, ``Port``, and
``Link detected: yes|no`` (the carrier; missing when the link state could not be read).
``ethtool -i`` output (``driver: ...``) is a different command and is rejected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import ParseError

__all__ = ["EthtoolInfo", "parse_ethtool"]


@dataclass
class EthtoolInfo:
    """``ethtool <if>``. ``None`` means ethtool did not print the field."""

    interface: str | None
    speed_mbps: int | None = None  # None also for "Unknown!"
    duplex: str | None = None  # "full" | "half" | "unknown"
    autoneg: bool | None = None
    port: str | None = None
    link_detected: bool | None = None
    errors: list[str] = field(default_factory=list)  # the "Cannot get ..." lines
    fields: dict[str, str] = field(default_factory=dict)
    lines: dict[str, str] = field(default_factory=dict)

    @property
    def unprivileged(self) -> bool:
        """ethtool ran without root: some settings (often link status) were hidden."""
        return any("Operation not permitted" in e for e in self.errors)


_ERROR_RE = re.compile(r"^(Cannot get .*|No data available|netlink error: .*)$")


def parse_ethtool(text: str, source: str = "ethtool") -> EthtoolInfo:
    """Parse ``ethtool <if>`` output; raises :class:`ParseError` for anything else."""
    info: EthtoolInfo | None = None
    errors: list[str] = []
    last_key: str | None = None
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if info is None:
            if _ERROR_RE.match(line):
                errors.append(line)
                continue
            m = re.fullmatch(r"Settings for (\S+):", line)
            if m:
                info = EthtoolInfo(interface=m.group(1), errors=errors,
                                   lines={"header": raw})
                continue
            if line.startswith("driver:"):
                raise ParseError(source, n, raw, "this is `ethtool -i` (driver information), "
                                 "not `ethtool <if>` link settings")
            raise ParseError(source, n, raw,
                             "not ethtool output: expected 'Settings for <if>:'")
        if _ERROR_RE.match(line):
            info.errors.append(line)
            continue
        if ":" not in line or not raw[:1].isspace():
            if last_key is not None and raw[:1].isspace():  # continuation of a long value
                info.fields[last_key] += " " + line
                continue
            raise ParseError(source, n, raw, "not ethtool output: expected an indented "
                             "'Key: value' line")
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        info.fields[key] = value
        info.lines[key] = raw
        last_key = key
        if key == "Speed":
            m = re.fullmatch(r"(\d+)\s*Mb/s", value)
            if m:
                info.speed_mbps = int(m.group(1))
            elif value.startswith("Unknown"):
                info.speed_mbps = None
            else:
                raise ParseError(source, n, raw, "speed is neither '<n>Mb/s' nor 'Unknown!'")
        elif key == "Duplex":
            v = value.split()[0].rstrip("!").lower() if value else ""
            if v not in ("full", "half", "unknown"):
                raise ParseError(source, n, raw, "duplex is neither Full, Half nor Unknown!")
            info.duplex = v
        elif key == "Auto-negotiation":
            info.autoneg = value == "on"
        elif key == "Port":
            info.port = value
        elif key == "Link detected":
            if value not in ("yes", "no"):
                raise ParseError(source, n, raw, "Link detected must be yes or no")
            info.link_detected = value == "yes"
    if info is None:
        if errors:  # e.g. the device does not exist: ethtool printed only errors
            return EthtoolInfo(interface=None, errors=errors)
        raise ParseError(source, 0, "", "empty input: no ethtool output")
    return info
