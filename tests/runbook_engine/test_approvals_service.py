"""runbooks.approvals on a real SQLite incident store: every refusal, expiry, exactly once, the log."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from incidents import IncidentStore
from runbooks.approvals import Approvals, Decision
from runbooks.plan import Plan, PlanStep

ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def plan(miimon: str = "100", action: str = "fix") -> Plan:
    return Plan(
        runbook="bonding", action=action, host="web-01", subject=(("bond", "bond0"),),
        title=f"enable miimon={miimon}",
        steps=(
            PlanStep("read", "state before", "cat /sys/class/net/bond0/bonding/miimon"),
            PlanStep("change", "enable link monitoring", f"echo {miimon} > /sys/class/net/bond0/bonding/miimon"),
            PlanStep("rollback", "undo", "echo 0 > /sys/class/net/bond0/bonding/miimon"),
        ),
        params=(("miimon", miimon),),
        context={"before": {"miimon": "0"}},
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[IncidentStore]:
    s = IncidentStore.open(f"sqlite:///{tmp_path / 'incidents.sqlite3'}")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def approvals(store: IncidentStore, clock: Clock) -> Approvals:
    return Approvals(store, clock=clock, ttl_seconds=900, two_person=True)


@pytest.fixture
def incident(store: IncidentStore) -> str:
    return store.create_incident(host="web-01", bond="bond0", requester=ALICE, channel="C0INC").id


def _refusals(store: IncidentStore, incident: str) -> list[dict]:
    return [e.payload for e in store.events(incident) if e.kind == "refusal"]


def test_offer_records_the_whole_plan_and_its_digest(approvals: Approvals, store: IncidentStore, incident: str,
                                                      clock: Clock) -> None:
    p = plan()
    offer = approvals.offer(incident, p, actor="bondbot")
    [event] = [e for e in store.events(incident) if e.kind == "proposal"]
    assert event.actor == "bondbot" and event.seq == offer.seq
    assert event.payload["digest"] == event.payload["plan_hash"] == p.digest == offer.digest
    assert Plan.from_dict(event.payload["plan"]) == p, "the log holds exactly the plan that was offered"
    assert event.payload["requester"] == ALICE, "the incident's requester by default"
    assert offer.expires_at == clock.now + timedelta(seconds=900)
    assert event.payload["expires_at"] == "2026-12-01T09:15:00.000Z"


def test_approval_by_another_person_is_recorded_with_the_digest(approvals: Approvals, store: IncidentStore,
                                                                 incident: str) -> None:
    p = plan()
    approvals.offer(incident, p, actor="bondbot")
    decision = approvals.decide(incident, p.digest, actor=BOB, approve=True, current=plan())
    assert decision and decision.code == "approved" and decision.plan == p and decision.action == "fix"
    [approval] = store.approvals(incident)
    assert approval.approver == BOB and approval.plan_hash == p.digest and decision.seq == approval.seq
    assert [e.kind for e in store.events(incident)][-1] == "approval"
    assert store.verify(incident).ok


def _offered(approvals: Approvals, incident: str) -> Plan:
    p = plan()
    approvals.offer(incident, p, actor="bondbot")
    return p


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("no_offer", "no_offer"),
        ("wrong_action", "no_offer"),
        ("self", "self_approval"),
        ("unauthorized", "unauthorized"),
        ("expired", "expired"),
        ("host_unreadable", "stale"),
        ("host_changed", "stale"),
        ("replaced", "replaced"),
        ("twice", "already_decided"),
        ("declined_before", "already_decided"),
    ],
)
def test_every_refusal_is_specific_and_recorded(
    approvals: Approvals, store: IncidentStore, incident: str, clock: Clock, case: str, code: str
) -> None:
    p = _offered(approvals, incident)
    digest, actor, current, kw = p.digest, BOB, plan(), {}
    if case == "no_offer":
        digest = "0" * 64
    elif case == "wrong_action":
        kw = {"action": "failover_test"}
    elif case == "self":
        actor = ALICE
    elif case == "unauthorized":
        kw = {"unauthorized": f"<@{actor}> is not an approver"}
    elif case == "expired":
        clock.advance(minutes=15)
    elif case == "host_unreadable":
        current = None
    elif case == "host_changed":
        current = plan(miimon="200")
    elif case == "replaced":
        approvals.offer(incident, plan(miimon="200"), actor="bondbot", batch="second")
    elif case == "twice":
        assert approvals.decide(incident, digest, actor=CAROL, approve=True, current=plan())
    elif case == "declined_before":
        assert not approvals.decide(incident, digest, actor=CAROL, approve=False, current=None)
    before = len(store.events(incident))
    decision = approvals.decide(incident, digest, actor=actor, approve=True, current=current, **kw)
    assert not decision and decision.code == code, decision
    assert decision.message
    events = store.events(incident)
    assert len(events) == before + 1, "the refusal, and nothing else, was recorded"
    refusal = events[-1]
    assert refusal.kind == "refusal" and refusal.actor == actor
    assert refusal.payload["code"] == code and refusal.payload["digest"] == digest
    assert refusal.payload["reason"] == decision.message and refusal.payload["stale"] is (code == "stale")
    assert len(store.approvals(incident)) == (1 if case == "twice" else 0)
    if case == "unauthorized":
        assert decision.message == f"<@{BOB}> is not an approver"
    if case == "self":
        assert decision.message.startswith("two-person rule")
    if case == "twice":
        assert decision.prior is not None and decision.prior.approver == CAROL
        assert CAROL in decision.message
    assert store.verify(incident).ok


def test_the_requester_may_approve_without_the_two_person_rule(store: IncidentStore, incident: str,
                                                                clock: Clock) -> None:
    solo = Approvals(store, clock=clock, ttl_seconds=60, two_person=False)
    p = plan()
    solo.offer(incident, p, actor="cli:root", requester="cli:root")
    assert solo.decide(incident, p.digest, actor="cli:root", approve=True, current=p)


def test_expiry_follows_the_injected_clock(approvals: Approvals, store: IncidentStore, incident: str,
                                           clock: Clock) -> None:
    p = _offered(approvals, incident)
    clock.advance(minutes=14, seconds=59)
    assert approvals.precheck(incident, p.digest, actor=BOB) is None, "still open a second before"
    clock.advance(seconds=1)
    refused = approvals.precheck(incident, p.digest, actor=BOB)
    assert refused is not None and refused.code == "expired" and "09:15:00.000Z" in refused.message
    assert not approvals.decide(incident, p.digest, actor=BOB, approve=True, current=p)
    assert store.approvals(incident) == []


def test_precheck_refuses_without_the_host_and_passes_silently(approvals: Approvals, store: IncidentStore,
                                                                incident: str) -> None:
    p = _offered(approvals, incident)
    before = len(store.events(incident))
    assert approvals.precheck(incident, p.digest, actor=BOB) is None
    assert len(store.events(incident)) == before, "a check that passed decides nothing: no event"
    refused = approvals.precheck(incident, p.digest, actor=ALICE)
    assert isinstance(refused, Decision) and refused.code == "self_approval"
    assert [e.kind for e in store.events(incident)][-1] == "refusal"


@pytest.mark.parametrize("approvers", [2, 6])
def test_concurrent_approvals_run_exactly_once(approvals: Approvals, store: IncidentStore,
                                               incident: str, tmp_path: Path, clock: Clock, approvers: int) -> None:
    """Approvers at the same moment, each with its own store (replicas, or the CLI and a click)."""
    p = _offered(approvals, incident)
    stores = [IncidentStore.open(f"sqlite:///{tmp_path / 'incidents.sqlite3'}") for _ in range(approvers)]
    services = [Approvals(s, clock=clock, ttl_seconds=900, two_person=True) for s in stores]
    actors = [f"U0APPROVER{i}" for i in range(approvers)]
    barrier = threading.Barrier(approvers)
    results: dict[str, Decision] = {}

    def approve(service: Approvals, actor: str) -> None:
        assert service.precheck(incident, p.digest, actor=actor) is None  # all pass before anyone decides
        barrier.wait()
        results[actor] = service.decide(incident, p.digest, actor=actor, approve=True, current=plan())

    try:
        threads = [threading.Thread(target=approve, args=(s, a)) for s, a in zip(services, actors, strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        for s in stores:
            s.close()
    assert sorted(d.code for d in results.values()) == ["already_decided"] * (approvers - 1) + ["approved"]
    [winner] = [a for a, d in results.items() if d]
    [approval] = store.approvals(incident)
    assert approval.approver == winner
    assert all(d.prior is not None and d.prior.approver == winner for d in results.values() if not d)
    kinds = [e.kind for e in store.events(incident)]
    assert kinds.count("approval") == 1 and kinds.count("refusal") == approvers - 1
    assert store.verify(incident).ok


def test_decline_decides_the_offer_once(approvals: Approvals, store: IncidentStore, incident: str) -> None:
    p = _offered(approvals, incident)
    declined = approvals.decide(incident, p.digest, actor=BOB, approve=False, current=None)
    assert not declined and declined.code == "declined"
    late = approvals.decide(incident, p.digest, actor=CAROL, approve=True, current=p)
    assert not late and late.code == "already_decided"
    assert store.approvals(incident) == []


def test_every_decision_and_the_run_are_events_with_the_same_digest(
    approvals: Approvals, store: IncidentStore, incident: str
) -> None:
    from dataclasses import dataclass

    @dataclass
    class Result:
        ok: bool
        summary: str

    p = _offered(approvals, incident)
    assert not approvals.decide(incident, p.digest, actor=ALICE, approve=True, current=p)  # self
    decision = approvals.decide(incident, p.digest, actor=BOB, approve=True, current=plan())
    approvals.begin_run(decision)
    approvals.record_run(decision, Result(True, "verified"))
    events = store.events(incident)
    kinds = [e.kind for e in events]
    assert kinds == ["opened", "proposal", "refusal", "approval", "note", "note"]
    digests = [events[1].payload["digest"], events[2].payload["digest"], events[3].payload["plan_hash"],
               events[4].payload["action_run"]["digest"], events[5].payload["action_result"]["digest"]]
    assert digests == [p.digest] * 5
    assert events[5].payload["action_result"]["ok"] is True
    with pytest.raises(ValueError, match="not approved"):
        approvals.record_run(approvals.decide(incident, p.digest, actor=CAROL, approve=True, current=p),
                             Result(True, "must not be recorded"))


def test_a_failed_run_is_recorded_from_its_exception(approvals: Approvals, store: IncidentStore,
                                                     incident: str) -> None:
    p = _offered(approvals, incident)
    decision = approvals.decide(incident, p.digest, actor=BOB, approve=True, current=p)
    approvals.record_run(decision, RuntimeError("ssh: connection lost"))
    result = store.events(incident)[-1].payload["action_result"]
    assert result == {"action": "fix", "plan_hash": p.digest, "digest": p.digest, "ok": False,
                      "summary": "error: ssh: connection lost"}


def test_refuse_records_a_callers_reason(approvals: Approvals, store: IncidentStore, incident: str) -> None:
    p = _offered(approvals, incident)
    refused = approvals.refuse(incident, p.digest, actor=BOB, code="already_decided",
                               message="already being approved; it does not run twice")
    assert not refused and refused.action == "fix"
    assert _refusals(store, incident)[-1]["reason"] == "already being approved; it does not run twice"


def test_unknown_incident_raises_and_records_nothing(approvals: Approvals) -> None:
    from incidents.errors import UnknownIncident

    with pytest.raises(UnknownIncident):
        approvals.decide("INC-ZZZZ", "0" * 64, actor=BOB, approve=True, current=None)
