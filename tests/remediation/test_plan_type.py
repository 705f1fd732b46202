"""runbooks.plan: the digest covers exactly what is shown and run; roles are checked; JSON round-trips."""

from __future__ import annotations

import dataclasses
import json

import pytest

from runbooks.plan import ROLES, Plan, PlanError, PlanStep


def _plan(**over: object) -> Plan:
    base: dict[str, object] = {
        "runbook": "bonding", "action": "fix", "host": "web-01", "subject": (("bond", "bond0"),),
        "title": "enable MII link monitoring on bond0",
        "steps": (PlanStep("precheck", "bond exists", "test -d /sys/class/net/bond0/bonding"),
               PlanStep("change", "set miimon", "printf 100 > /sys/class/net/bond0/bonding/miimon"),
               PlanStep("verify", "read it back", "cat /sys/class/net/bond0/bonding/miimon"),
               PlanStep("operator", "pull the cable", instruction="unplug eth0's cable")),
        "params": (("method", "manual"), ("max_seconds", "60")),
        "context": {"before": {"miimon": "0"}},
    }
    base.update(over)
    return Plan(**base)  # type: ignore[arg-type]


def test_digest_is_sha256_hex_and_stable() -> None:
    a, b = _plan(), _plan()
    assert a.digest == b.digest
    assert len(a.digest) == 64 and int(a.digest, 16) >= 0


@pytest.mark.parametrize("field_name,value", [
    ("runbook", "other"), ("action", "failover-test"), ("host", "web-02"),
    ("subject", (("bond", "bond1"),)), ("params", (("method", "manual"), ("max_seconds", "61"))),
])
def test_digest_changes_with_every_hashed_plan_field(field_name: str, value: object) -> None:
    assert _plan(**{field_name: value}).digest != _plan().digest


@pytest.mark.parametrize("step_field", ["role", "purpose", "command", "instruction", "name"])
def test_digest_changes_with_every_step_field(step_field: str) -> None:
    base = _plan()
    idx = 3 if step_field == "instruction" else 1
    old = base.steps[idx]
    new_value = {"role": "restore", "purpose": old.purpose + "!", "command": old.command + " ",
                 "instruction": old.instruction + ".", "name": "other"}[step_field]
    steps = list(base.steps)
    steps[idx] = dataclasses.replace(old, **{step_field: new_value})
    assert _plan(steps=tuple(steps)).digest != base.digest


def test_digest_changes_with_step_order_and_count() -> None:
    base = _plan()
    assert _plan(steps=tuple(reversed(base.steps))).digest != base.digest
    assert _plan(steps=base.steps[:-1]).digest != base.digest


def test_digest_ignores_context() -> None:
    assert _plan(context={"before": {"miimon": "100"}, "anything": [1, 2]}).digest == _plan().digest
    assert _plan(context={}).digest == _plan().digest


def test_role_is_validated() -> None:
    with pytest.raises(PlanError, match="unknown plan step role"):
        PlanStep("delete-everything", "x", "true")
    with pytest.raises(PlanError, match="needs a command"):
        PlanStep("change", "x")
    with pytest.raises(PlanError, match="needs an instruction"):
        PlanStep("operator", "x")
    with pytest.raises(PlanError, match="not a command"):
        PlanStep("operator", "x", command="true", instruction="y")
    for role in ROLES:
        step = PlanStep(role, "p", "" if role == "operator" else "true", "do it" if role == "operator" else "")
        assert step.role == role


def test_round_trip_through_json() -> None:
    plan = _plan()
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["digest"] == plan.digest
    again = Plan.from_dict(data)
    assert again == plan and again.digest == plan.digest
    assert again.context == {"before": {"miimon": "0"}}
    assert again.title == plan.title


def test_from_dict_refuses_a_tampered_plan() -> None:
    data = _plan().to_dict()
    data["steps"][1]["command"] = "reboot"
    with pytest.raises(PlanError, match="digest mismatch"):
        Plan.from_dict(data)


def test_steps_for_keeps_plan_order() -> None:
    plan = _plan()
    assert [s.role for s in plan.steps_for("verify", "precheck")] == ["precheck", "verify"]
    assert plan.steps_for("rollback") == ()
    with pytest.raises(PlanError):
        plan.steps_for("nope")
    assert plan.subject_value("bond") == "bond0" and plan.param("max_seconds") == "60"
