"""Verdicts: inconclusive is never healthy, a warning is never the root cause.

Every combination of failed triage steps is tried on real kernel output recorded from the lab
(the ``healthy`` and ``incident`` scenarios): 127 subsets of the seven per-bond steps each. A step
fails the way the engine files it (left out of the outputs, named in ``failed_steps``), or prints
something that does not parse. Whatever fails, the verdict is never "healthy".
"""

from __future__ import annotations

from dataclasses import replace
from itertools import combinations

import pytest

from runbooks.bonding.diagnosis import diagnose
from runbooks.bonding.outputs import SourceOutput, TriageOutputs
from test_diag_lab_recordings import LAB_FIXTURES, recorded_outputs

STEPS = ("proc_bonding", "ip_details", "nmcli", "ip_link eno1", "ip_link eno2", "ethtool eno1", "ethtool eno2")
SUBSETS = [c for n in range(1, len(STEPS) + 1) for c in combinations(STEPS, n)]


def _without(outputs: TriageOutputs, failed: tuple[str, ...], how: str) -> TriageOutputs:
    """``outputs`` with the ``failed`` steps failed (``how``: "failed") or printing garbage."""
    out = replace(outputs, ip_link=dict(outputs.ip_link), ethtool=dict(outputs.ethtool),
                  failed_steps=dict(outputs.failed_steps))
    for step in failed:
        name, _, slave = step.partition(" ")
        field = {"ip_details": "ip_details_json"}.get(name, name)
        current = getattr(out, field)[slave] if slave else getattr(out, field)
        garbage = SourceOutput(current.command, "Error: something else entirely\n")
        if how == "failed":
            if slave:
                del getattr(out, field)[slave]
            else:
                setattr(out, field, None)
            out.failed_steps[step] = "exit status 1: simulated failure"
        elif slave:
            getattr(out, field)[slave] = garbage
        else:
            setattr(out, field, garbage)
    return out


@pytest.fixture(scope="module")
def healthy() -> TriageOutputs:
    return recorded_outputs(LAB_FIXTURES / "healthy")


@pytest.fixture(scope="module")
def incident() -> TriageOutputs:
    return recorded_outputs(LAB_FIXTURES / "incident-eno1-down")


def test_the_recordings_themselves() -> None:
    assert diagnose(recorded_outputs(LAB_FIXTURES / "healthy")).verdict == "healthy"
    assert diagnose(recorded_outputs(LAB_FIXTURES / "incident-eno1-down")).verdict == "diagnosed"


@pytest.mark.parametrize("how", ["failed", "unparseable"])
def test_every_failed_subset_of_a_healthy_bond_is_inconclusive(healthy: TriageOutputs, how: str) -> None:
    for failed in SUBSETS:
        d = diagnose(_without(healthy, failed, how))
        assert d.verdict == "inconclusive", (failed, how, d.verdict)
        assert d.root_cause is None and d.reasons, failed
        assert d.headline().startswith("inconclusive: "), failed
        if "proc_bonding" in failed:
            assert "own state" in d.reasons[0], failed


@pytest.mark.parametrize("how", ["failed", "unparseable"])
def test_every_failed_subset_of_the_incident_is_never_healthy(incident: TriageOutputs, how: str) -> None:
    for failed in SUBSETS:
        d = diagnose(_without(incident, failed, how))
        assert d.verdict in {"diagnosed", "inconclusive"}, (failed, how)
        if "proc_bonding" in failed:  # the bond's own state unread: inconclusive whatever else shows
            assert d.verdict == "inconclusive" and d.root_cause is None, failed
        else:  # /proc/net/bonding alone proves miimon=0
            assert d.root_cause is not None and d.root_cause.code == "NO_LINK_MONITORING", failed


def test_unprivileged_details_make_a_quiet_bond_inconclusive(healthy: TriageOutputs) -> None:
    out = replace(healthy, failed_steps={"proc_bonding (privileged details)": "not privileged: LACP details"})
    d = diagnose(out)
    assert d.verdict == "inconclusive" and "not privileged" in d.reasons[0]


def test_not_applicable_is_not_a_failure(healthy: TriageOutputs) -> None:
    out = replace(healthy, nmcli=None, not_applicable={"nmcli": "NetworkManager is not installed (no nmcli)"})
    assert diagnose(out).verdict == "healthy"


def test_warnings_only_is_healthy_with_risks() -> None:
    d = diagnose(recorded_outputs(LAB_FIXTURES / "arp"))  # one ARP target: the example
    assert d.verdict == "healthy" and d.root_cause is None
    assert [f.code for f in d.risks] == ["ARP_SINGLE_TARGET"]
    assert d.headline() == "healthy, 1 risk"
    assert d.to_json()["risks"] == ["ARP_SINGLE_TARGET"]


def test_no_warning_rule_can_be_root_cause() -> None:
    from runbooks.bonding.rules import RULES

    samples = [recorded_outputs(p) for p in sorted(LAB_FIXTURES.iterdir()) if (p / "commands.yaml").is_file()
               and (p / "meta.yaml").is_file() and not p.name.startswith("trixie")]
    for outputs in samples:
        d = diagnose(outputs)
        if d.root_cause is not None:
            assert d.root_cause.severity.value == "critical"
    assert {r.code for r in RULES}  # registry loaded


def test_profile_names_are_shell_quoted_in_every_text(incident: TriageOutputs) -> None:
    """A profile named the nmtui way ("Bond connection 1") or with a quote: every command shown
    to people names it by its real connection.id, quoted so that copying it works."""
    import shlex

    base = incident.nmcli
    assert base is not None
    for name in ("bond-uplink0", "Bond connection 1", "it's \"quoted\"", "$(reboot)", "a:b\\c"):
        text = base.text.replace("connection.id:bond0", "connection.id:" + name.replace("\\", "\\\\").replace(":", "\\:"))
        text = text.replace("GENERAL.NAME:bond0", "GENERAL.NAME:" + name.replace("\\", "\\\\").replace(":", "\\:"))
        out = replace(incident, nmcli=SourceOutput("nmcli -t con show uuid 7715b6b9-8050-56f2-9890-4321a9126319", text))
        root = diagnose(out, strict=True).root_cause
        assert root is not None and root.code == "NO_LINK_MONITORING"
        q = shlex.quote(name)
        assert f"nmcli con modify {q} bond.options " in root.explanation, name
        assert f"nmcli con down {q} && nmcli con up {q}" in root.explanation, name
        assert f"nmcli con show {q} | grep bond.options" in root.explanation, name
        for cmd in root.facts["fix_commands"]:
            words = shlex.split(cmd.split(" && ")[0])
            assert words[3] == name, (name, cmd)
        if name != shlex.quote(name):
            assert f"con modify {name} " not in root.explanation
