"""What the bonding triage steps printed, handed from the runbook engine to the diagnosis.

The engine fills a ``TriageOutputs`` (``outputs.type`` in runbook.yaml; its fields are the YAML's
output slots) from the commands it ran on a host; ``bondbot diagnose`` fills one from saved files.
The diagnosis never runs anything itself, so it can be checked offline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runbooks.outputs import SourceOutput

__all__ = ["SourceOutput", "TriageOutputs"]


@dataclass
class TriageOutputs:
    """Everything the triage collected about one bond; any part may be missing.

    A step that could not run (permission denied, timeout, unreadable output) is left out of the
    outputs and named in ``failed_steps`` with the reason, so the diagnosis can say what it could not
    check instead of concluding from silence: any failed step makes a bond without a root cause
    *inconclusive*, never healthy. ``proc_bonding`` is the bond's own state: without it the result is
    inconclusive whatever else was read.
    """

    bond: str
    proc_bonding: SourceOutput | None = None  # cat /proc/net/bonding/<bond>
    ip_details_json: SourceOutput | None = None  # ip -d -j link show <bond>
    ip_link: dict[str, SourceOutput] = field(default_factory=dict)  # ip link show <slave>, per slave
    ethtool: dict[str, SourceOutput] = field(default_factory=dict)  # ethtool <slave>, per slave
    nmcli: SourceOutput | None = None  # nmcli -t con show uuid <UUID> (terse) or plain
    failed_steps: dict[str, str] = field(default_factory=dict)  # step name -> reason
    #: Steps that did not apply, with why (NetworkManager not installed, or no profile owns the
    #: bond). Unlike ``failed_steps`` they hide nothing: the diagnosis may still call the bond healthy.
    not_applicable: dict[str, str] = field(default_factory=dict)
