"""``diagnose()``: from what the triage printed to findings, a root cause and their texts.

The rules (:mod:`runbooks.bonding.rules`) decide; this module only orders their hits, picks the
root cause and renders each finding's summary and explanation from ``templates/<CODE>.j2``
(blocks ``summary`` and ``explanation``), so that wording changes never touch the logic.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from runbooks.findings import DIAGNOSED, HEALTHY, INCONCLUSIVE, Diagnosis, Finding, Severity

from .context import build_context
from .outputs import TriageOutputs
from .rules import Hit, Rule, run_rules

__all__ = ["TEMPLATE_DIR", "diagnose", "render_finding"]

TEMPLATE_DIR = Path(__file__).with_name("templates")


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # plain text; the Slack and terminal layers escape for their medium
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def _block(template, name: str, variables: dict[str, Any]) -> str:
    return "".join(template.blocks[name](template.new_context(variables))).strip()


def render_finding(code: str, variables: dict[str, Any]) -> tuple[str, str]:
    """(summary, explanation) of a code, from its template. The summary is one line."""
    template = _environment().get_template(f"{code}.j2")
    summary = " ".join(_block(template, "summary", variables).split())
    explanation = _block(template, "explanation", variables)
    return summary, explanation


def _finding(rule: Rule, hit: Hit, bond: str, mode: str, common: dict[str, Any]) -> Finding:
    variables = {"bond": bond, "mode": mode, "severity": hit.severity.value,
                 "evidence": hit.evidence, **common, **hit.facts}
    summary, explanation = render_finding(rule.code, variables)
    return Finding(code=rule.code, severity=hit.severity, summary=summary,
                   explanation=explanation, evidence=tuple(hit.evidence),
                   facts={**hit.facts, "root_rank": rule.root_rank})


def _bond_name(outputs: TriageOutputs, ctx) -> str:
    if outputs.bond:
        return outputs.bond
    if ctx.details is not None and ctx.details.ifname:
        return ctx.details.ifname
    if ctx.nmcli is not None and ctx.nmcli.interface_name:
        return ctx.nmcli.interface_name
    return "unknown"


def _inconclusive_reasons(outputs: TriageOutputs, ctx) -> tuple[list[str], bool]:
    """(what could not be read, whether that includes the bond's own state)."""
    reasons: list[str] = []
    own_unread = ctx.proc is None
    if own_unread:
        why = next((r for step, r in outputs.failed_steps.items() if step.split(" ")[0] == "proc_bonding"), None)
        if outputs.proc_bonding is not None and outputs.proc_bonding.command in ctx.parse_errors:
            why = f"unparseable: {ctx.parse_errors[outputs.proc_bonding.command].message}"
        reasons.append(f"the bond's own state (/proc/net/bonding/{outputs.bond or '?'}) could not be read: "
                       f"{why or 'not collected'}")
    for step, reason in outputs.failed_steps.items():
        if own_unread and step == "proc_bonding":
            continue
        reasons.append(f"{step}: {reason}")
    for command, err in ctx.parse_errors.items():
        if own_unread and outputs.proc_bonding is not None and command == outputs.proc_bonding.command:
            continue
        reasons.append(f"{command}: unparseable output ({err.message})")
    return reasons, own_unread


def diagnose(outputs: TriageOutputs, *, strict: bool = False) -> Diagnosis:
    """Run every rule on the triage outputs and reach a verdict.

    The root cause is the most severe *critical* finding that can explain an incident (highest
    rank among equals); a warning is never the root cause, it is a risk. Findings come most severe
    first. With ``strict``, an output that does not parse raises
    :class:`~runbooks.bonding.parsers.ParseError`; otherwise it becomes an ``OUTPUT_UNPARSEABLE``
    info finding and the rest is still diagnosed. Failed triage steps become ``STEP_FAILED`` info
    findings: what could not be checked is said, not assumed.

    Verdict: ``inconclusive`` when the bond's own state (/proc/net/bonding/<bond>) is missing or
    unparseable, whatever else was found (what was seen is still listed); else ``diagnosed`` when
    there is a root cause; else ``inconclusive`` when any step failed, was refused or did not parse
    (nothing wrong was seen, but not everything was read); else ``healthy``.
    """
    ctx = build_context(outputs, strict=strict)
    bond = _bond_name(outputs, ctx)
    ctx.bond = bond
    mode = ctx.mode
    hits = run_rules(ctx)
    order = sorted(
        range(len(hits)),
        key=lambda i: (-hits[i][1].severity.rank, -(hits[i][0].root_rank or -1), i),
    )
    import shlex

    profile = ctx.nmcli.id if ctx.nmcli is not None and ctx.nmcli.id else None
    common = {  # every template may name the bond's profile; always shell-quoted in commands
        "bond_q": shlex.quote(bond),
        "connection": profile,
        "connection_q": shlex.quote(profile) if profile is not None else None,
        "nm_note": outputs.not_applicable.get("nmcli"),
    }
    findings = [_finding(*hits[i], bond, mode, common) for i in order]
    candidates = [
        (f, r) for f, (r, _h) in zip(findings, (hits[i] for i in order), strict=True)
        if r.root_rank is not None and f.severity is Severity.CRITICAL
    ]
    reasons, own_unread = _inconclusive_reasons(outputs, ctx)
    root = candidates[0][0] if candidates and not own_unread else None
    if root is not None:
        verdict = DIAGNOSED
    elif reasons:
        verdict = INCONCLUSIVE
    else:
        verdict = HEALTHY
    return Diagnosis(subject={"bond": bond}, details={"mode": mode}, root_cause=root, findings=tuple(findings),
                     verdict=verdict, reasons=tuple(reasons) if verdict == INCONCLUSIVE else ())
