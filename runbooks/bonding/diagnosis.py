"""``diagnose()``: from what the triage printed to findings, a root cause and their texts.

The rules (:mod:`runbooks.bonding.rules`) decide; this module only orders their hits, picks the
root cause and renders each finding's summary and explanation from ``templates/<CODE>.j2``
(blocks ``summary`` and ``explanation``), so that wording changes never touch the logic.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from runbooks.findings import Diagnosis, Finding, Severity

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


def _finding(rule: Rule, hit: Hit, bond: str, mode: str) -> Finding:
    variables = {"bond": bond, "mode": mode, "severity": hit.severity.value,
                 "evidence": hit.evidence, **hit.facts}
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


def diagnose(outputs: TriageOutputs, *, strict: bool = False) -> Diagnosis:
    """Run every rule on the triage outputs.

    The root cause is the most severe finding that can explain an incident (highest rank among
    equals), or None when nothing is wrong. Findings come most severe first. With ``strict``, an
    output that does not parse raises :class:`~runbooks.bonding.parsers.ParseError`; otherwise it
    becomes an ``OUTPUT_UNPARSEABLE`` info finding and the rest is still diagnosed. Failed triage
    steps become ``STEP_FAILED`` info findings: what could not be checked is said, not assumed.
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
    findings = [_finding(*hits[i], bond, mode) for i in order]
    candidates = [
        (f, r) for f, (r, h) in zip(findings, (hits[i] for i in order))
        if r.root_rank is not None and f.severity is not Severity.INFO
    ]
    root = candidates[0][0] if candidates else None
    return Diagnosis(bond=bond, mode=mode, root_cause=root, findings=tuple(findings))
