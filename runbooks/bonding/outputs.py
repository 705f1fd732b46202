"""What the triage steps printed, handed from the runbook engine to the diagnosis.

The engine fills a ``TriageOutputs`` from the commands it ran on a host; ``bondbot diagnose`` fills
one from saved files. The diagnosis never runs anything itself, so it can be checked offline.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SourceOutput:
    """One command's output. ``command`` is how evidence names its source, e.g.
    ``cat /proc/net/bonding/bond0``; ``text`` is its standard output, unmodified."""

    command: str
    text: str


@dataclass
class TriageOutputs:
    """Everything the triage collected about one bond; any part may be missing.

    A step that could not run (no nmcli on the host, permission denied, timeout) is left out of the
    outputs and named in ``failed_steps`` with the reason, so the diagnosis can say what it could not
    check instead of concluding from silence.
    """

    bond: str
    proc_bonding: SourceOutput | None = None  # cat /proc/net/bonding/<bond>
    ip_details_json: SourceOutput | None = None  # ip -d -j link show <bond>
    ip_link: dict[str, SourceOutput] = field(default_factory=dict)  # ip link show <slave>, per slave
    ethtool: dict[str, SourceOutput] = field(default_factory=dict)  # ethtool <slave>, per slave
    nmcli: SourceOutput | None = None  # nmcli -t con show <bond> (terse) or plain
    failed_steps: dict[str, str] = field(default_factory=dict)  # step name -> reason
