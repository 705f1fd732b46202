"""The approvals service: offer a :class:`runbooks.plan.Plan`, decide on it once, record the run.

Why it exists: the rules that make an approval mean something (the two-person rule, expiry, the
host re-read and compared right before running, exactly once across bot replicas and the CLI) are
the same whoever asks, so they live here, below every surface. The Slack bot and the CLI's prompt
(``--yes``) both call this service; neither decides by itself. It knows no Slack: actors are plain
strings (a Slack user id, ``cli:root``), and who is *allowed* to approve is the caller's policy,
passed in as ``unauthorized=<reason>``.

Everything is decided through the incident store and recorded in the incident log, refusals too:

* ``proposal`` ``{"action", "plan_hash", "digest", "plan": Plan.to_dict(), "expires_at",
  "requester", "offered_by", "batch", ...}`` — :meth:`Approvals.offer`. ``plan_hash`` and
  ``digest`` are both ``plan.digest`` (``plan_hash`` is the name the store and older readers use).
  A later ``batch`` offering the same action replaces the earlier, undecided offers of it.
* ``approval`` — written by ``IncidentStore.record_approval`` with ``plan_hash = plan.digest``: the
  claim ``approval:<incident>:<digest>``, the approval row and the event are one transaction, so of
  two concurrent approvals (two clicks, two replicas, a click and the CLI) exactly one wins.
* ``refusal`` ``{"action", "plan_hash", "digest", "user", "code", "reason", "stale"}`` — every
  refused decision, with a stable ``code`` (:data:`REFUSALS`) and a sentence for people.
* ``note`` ``{"action_run": {...}}`` then ``note`` ``{"action_result": {"action", "plan_hash",
  "digest", "ok", "summary"}}`` — :meth:`Approvals.begin_run` and :meth:`Approvals.record_run`.

The service is synchronous, like the store; asyncio callers use ``asyncio.to_thread``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from runbooks.plan import Plan, PlanError, PlanStep

__all__ = [
    "REFUSALS",
    "Approvals",
    "Decision",
    "Offer",
    "RunResult",
    "approved_hash_for",
    "plan_of",
]

log = logging.getLogger(__name__)

#: Why a decision can go against running a plan (the ``code`` of a ``refusal`` event).
REFUSALS: dict[str, str] = {
    "no_offer": "no such plan was offered on this incident",
    "replaced": "this plan was replaced by a newer offer of the same action",
    "already_decided": "this plan was already decided; it does not run twice",
    "self_approval": "two-person rule: you requested this change, so someone else must approve it",
    "unauthorized": "not allowed to approve",
    "expired": "this approval request has expired",
    "stale": "the host changed since the plan was shown",
    "closed": "the incident is closed",
    "declined": "declined",
    "refused": "refused",
}


def _iso(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


class RunResult(Protocol):
    """How a run went: ``ok`` only when it ran *and* verified; ``summary`` for people."""

    ok: bool
    summary: str


@dataclass(frozen=True)
class Offer:
    """A plan offered for approval on an incident, as its ``proposal`` event records it."""

    incident_id: str
    digest: str
    action: str
    expires_at: datetime
    requester: str
    batch: str
    seq: int
    #: The plan as offered; None for proposals logged before plans were recorded in full.
    plan: Plan | None = field(default=None, compare=False)
    payload: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Decision:
    """The outcome of :meth:`Approvals.decide` (or a recorded refusal); true only when approved.

    ``plan`` is the plan to run (the one re-read from the host, whose digest is the approved one);
    ``prior`` is the approval that decided the plan earlier, when ``code`` is ``already_decided``.
    """

    incident_id: str
    digest: str
    actor: str
    approved: bool
    code: str
    message: str
    action: str = ""
    plan: Plan | None = field(default=None, compare=False)
    offer: Offer | None = field(default=None, compare=False)
    approval: Any = field(default=None, compare=False)  # incidents.Approval when approved
    prior: Any = field(default=None, compare=False)  # incidents.Approval of an earlier decision
    seq: int = 0  # the event that recorded the decision

    def __bool__(self) -> bool:
        return self.approved


class Approvals:
    """Offer -> decide (approve or refuse, exactly once) -> run -> result, all on the incident log.

    ``clock`` gives the current time (UTC, aware); tests inject one to expire offers.
    ``ttl_seconds`` is how long an offer may be approved; ``two_person`` forbids the requester of
    a change from approving it.
    """

    def __init__(self, store: Any, *, clock: Callable[[], datetime], ttl_seconds: float, two_person: bool) -> None:
        if not ttl_seconds > 0:
            raise ValueError(f"an offer must be open for some time, got ttl_seconds={ttl_seconds!r}")
        self.store = store
        self.clock = clock
        self.ttl_seconds = float(ttl_seconds)
        self.two_person = two_person

    # ------------------------------------------------------------------ offer

    def offer(
        self,
        incident_id: str,
        plan: Plan,
        *,
        actor: str,
        requester: str | None = None,
        action: str | None = None,
        batch: str = "",
        extra: Mapping[str, Any] | None = None,
    ) -> Offer:
        """Record ``plan`` as offered for approval on the incident (a ``proposal`` event).

        ``requester`` is who asked for the change (default: the incident's requester), whom the
        two-person rule keeps from approving it; ``action`` the name callers group offers by
        (default ``plan.action``); ``extra`` more payload for the caller's own views (it cannot
        override the service's keys).
        """
        incident = self.store.get(incident_id)
        who = requester if requester is not None else incident.requester
        expires = self.clock() + timedelta(seconds=self.ttl_seconds)
        digest = plan.digest
        payload: dict[str, Any] = dict(extra or {})
        payload.update({
            "action": action or plan.action,
            "plan_hash": digest,
            "digest": digest,
            "plan": plan.to_dict(),
            "expires_at": _iso(expires),
            "requester": who,
            "offered_by": actor,
            "batch": batch,
        })
        event = self.store.append(incident.id, actor=actor, kind="proposal", payload=payload)
        return Offer(incident.id, digest, str(payload["action"]), _parse_time(payload["expires_at"]), who, batch,
                     event.seq, plan, event.payload)

    def offers(self, incident_id: str) -> dict[str, Offer]:
        """Every plan offered on the incident, by digest (a digest offered again: the latest offer)."""
        return {o.digest: o for o in self._offers(self.store.events(incident_id), incident_id)}

    def open_offers(self, incident_id: str) -> dict[str, Offer]:
        """The offers not replaced by a later batch of the same action (decided or expired included)."""
        events = self.store.events(incident_id)
        return _current(list(self._offers(events, incident_id)))

    @staticmethod
    def _offers(events: Any, incident_id: str) -> Any:
        for event in events:
            p = event.payload
            if event.kind != "proposal" or not all(k in p for k in ("plan_hash", "action", "expires_at")):
                continue  # e.g. a proposal logged by an older CLI, with no offer behind it
            try:
                expires = _parse_time(str(p["expires_at"]))
            except ValueError:
                continue
            plan: Plan | None = None
            if isinstance(p.get("plan"), Mapping):
                try:
                    plan = Plan.from_dict(p["plan"])
                except (PlanError, KeyError, TypeError, ValueError):
                    plan = None
            yield Offer(event.incident_id or incident_id, str(p["plan_hash"]), str(p["action"]), expires,
                        str(p.get("requester") or ""), str(p.get("batch", "")), event.seq, plan, p)

    # ------------------------------------------------------------------ decide

    def precheck(
        self,
        incident_id: str,
        digest: str,
        *,
        actor: str,
        approve: bool = True,
        action: str | None = None,
        unauthorized: str | None = None,
    ) -> Decision | None:
        """The checks that need no host: a recorded refusal, or None when the host must be re-read.

        Callers that re-read the host to rebuild the plan (seconds over SSH) call this first, so
        that an unauthorized, self-, late or repeated click is refused without touching the host.
        :meth:`decide` makes the same checks again: they are cheap and the state may have moved.
        """
        found = self._check(incident_id, digest, actor=actor, approve=approve, action=action,
                            unauthorized=unauthorized)
        return found if isinstance(found, Decision) else None

    def decide(
        self,
        incident_id: str,
        digest: str,
        *,
        actor: str,
        approve: bool,
        current: Plan | None,
        action: str | None = None,
        unauthorized: str | None = None,
        current_error: str | None = None,
    ) -> Decision:
        """Approve (exactly once) or refuse the offered plan ``digest``; either way it is recorded.

        ``current`` is the plan rebuilt from a fresh read of the host (None: it could not be read,
        or the host no longer needs the change; ``current_error`` says why). Refused, with a
        ``refusal`` event, when: no such offer (or not of ``action``), replaced by a newer offer,
        already decided, the actor is the requester under the two-person rule, ``unauthorized``
        (the caller's policy said no, and why), expired, or ``current`` is None or has another
        digest. ``approve=False`` is a person declining the plan: it decides the offer too.
        """
        found = self._check(incident_id, digest, actor=actor, approve=approve, action=action,
                            unauthorized=unauthorized)
        if isinstance(found, Decision):
            return found
        offer = found
        if not approve:
            return self._decline(offer, actor)
        if current is None or current.digest != digest:
            if current is None:
                message = current_error or "the host no longer needs it"
            else:
                message = "the host changed since the plan was shown"
            return self._refuse(offer.incident_id, digest, actor=actor, code="stale", message=message, offer=offer)
        from incidents.errors import InvalidInput

        subject = " ".join(v for _k, v in current.subject)
        summary = f"{current.title} on {current.host}" + (f" {subject}" if subject else "")
        try:
            approval = self.store.record_approval(offer.incident_id, actor=actor, plan_hash=digest,
                                                  summary=summary[:200])
        except InvalidInput as exc:  # the incident was closed meanwhile
            return self._refuse(offer.incident_id, digest, actor=actor, code="closed", message=str(exc), offer=offer)
        if approval is None:  # another approval (click, replica, CLI) got there first
            prior = self._prior(offer.incident_id, digest)
            return self._refuse(offer.incident_id, digest, actor=actor, code="already_decided",
                                message=_already(prior), offer=offer, prior=prior)
        return Decision(offer.incident_id, digest, actor, True, "approved", f"approved by {actor}",
                        offer.action, current, offer, approval, None, approval.seq)

    def refuse(
        self, incident_id: str, digest: str, *, actor: str, code: str, message: str, action: str = "",
    ) -> Decision:
        """Record a refusal the caller decided (e.g. the work is already running elsewhere)."""
        offer = self.offers(incident_id).get(digest)
        return self._refuse(incident_id, digest, actor=actor, code=code, message=message, offer=offer,
                            action=action)

    # ------------------------------------------------------------------ run

    def begin_run(self, decision: Decision, *, actor: str | None = None) -> None:
        """Record that the approved plan starts running now (a ``note`` with its digest)."""
        self._require_approved(decision)
        run = {"action": decision.action, "plan_hash": decision.digest, "digest": decision.digest,
               "approved_by": decision.actor, "approval_seq": decision.seq}
        self.store.append(decision.incident_id, actor=actor or decision.actor, kind="note", payload={"action_run": run})

    def record_run(self, decision: Decision, result: RunResult | BaseException, *, actor: str | None = None) -> None:
        """Record how the approved plan's run ended (a ``note`` ``action_result`` with its digest).

        ``result`` is the domain's result (``ok``, ``summary``) or the exception the run raised.
        """
        self._require_approved(decision)
        if isinstance(result, BaseException):
            ok, summary = False, f"error: {result}"[:1000]
        else:
            ok, summary = bool(result.ok), str(result.summary)[:1500]
        outcome = {"action": decision.action, "plan_hash": decision.digest, "digest": decision.digest,
                   "ok": ok, "summary": summary}
        self.store.append(decision.incident_id, actor=actor or decision.actor, kind="note",
                          payload={"action_result": outcome})

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _require_approved(decision: Decision) -> None:
        if not decision.approved:
            raise ValueError(f"plan {decision.digest[:12]} was not approved ({decision.code}): it must not run")

    def _check(
        self, incident_id: str, digest: str, *, actor: str, approve: bool, action: str | None,
        unauthorized: str | None,
    ) -> Decision | Offer:
        incident = self.store.get(incident_id)  # UnknownIncident: nothing to record it in
        events = self.store.events(incident.id)
        offers = list(self._offers(events, incident.id))
        by_digest = {o.digest: o for o in offers}
        offer = by_digest.get(digest)
        if offer is None or (action is not None and offer.action != action):
            return self._refuse(incident.id, digest, actor=actor, code="no_offer",
                                message="no such plan on this incident", offer=None, action=action or "")
        prior = self._prior(incident.id, digest)
        if prior is not None or self._declined(events, digest):
            return self._refuse(incident.id, digest, actor=actor, code="already_decided", message=_already(prior),
                                offer=offer, prior=prior)
        if digest not in _current(offers):
            return self._refuse(incident.id, digest, actor=actor, code="replaced",
                                message="this plan was replaced by a newer one", offer=offer)
        requester = offer.requester or incident.requester
        if self.two_person and approve and actor == requester:
            return self._refuse(incident.id, digest, actor=actor, code="self_approval",
                                message=REFUSALS["self_approval"], offer=offer)
        if unauthorized:
            return self._refuse(incident.id, digest, actor=actor, code="unauthorized", message=unauthorized,
                                offer=offer)
        if offer.expires_at <= self.clock():
            return self._refuse(incident.id, digest, actor=actor, code="expired",
                                message=f"this approval request expired at {_iso(offer.expires_at)}", offer=offer)
        return offer

    def _prior(self, incident_id: str, digest: str) -> Any:
        return next((a for a in self.store.approvals(incident_id) if a.plan_hash == digest), None)

    @staticmethod
    def _declined(events: Any, digest: str) -> bool:
        return any(e.kind == "refusal" and e.payload.get("code") == "declined" and e.payload.get("digest") == digest
                   for e in events)

    def _decline(self, offer: Offer, actor: str) -> Decision:
        # The same claim key as record_approval's: one decision per offer, whichever comes first.
        if not self.store.claim(f"approval:{offer.incident_id}:{offer.digest}", actor=actor,
                                incident_id=offer.incident_id):
            prior = self._prior(offer.incident_id, offer.digest)
            return self._refuse(offer.incident_id, offer.digest, actor=actor, code="already_decided",
                                message=_already(prior), offer=offer, prior=prior)
        return self._refuse(offer.incident_id, offer.digest, actor=actor, code="declined",
                            message=f"declined by {actor}", offer=offer)

    def _refuse(
        self, incident_id: str, digest: str, *, actor: str, code: str, message: str, offer: Offer | None,
        prior: Any = None, action: str = "",
    ) -> Decision:
        what = offer.action if offer is not None else action
        payload = {"action": what, "plan_hash": digest, "digest": digest, "user": actor, "code": code,
                   "reason": message, "stale": code == "stale"}
        event = self.store.append(incident_id, actor=actor, kind="refusal", payload=payload)
        log.info("%s: %s refused for %s on %s: %s", incident_id, digest[:12], actor, code, message)
        return Decision(event.incident_id or incident_id, digest, actor, False, code, message, what,
                        offer.plan if offer is not None else None, offer, None, prior, event.seq)


def plan_of(planned: Any, *, action: str, method: str = "") -> Plan:
    """The :class:`Plan` behind what a remediation planned, for the bot and the CLI alike.

    ``planned`` is a ``Plan``, or an object carrying one as ``.plan`` (``FixPlan``) or as
    ``.domain.plan`` (the bot's ``DomainPlan`` wrapper). An older plan object that has none (host,
    bond, ``commands`` as strings or (purpose, command) pairs, ``rollback`` or ``restore``, its own
    ``plan_hash``) is made a Plan whose steps are its commands and whose parameters hold its method
    and own hash, so that its digest still covers everything shown: transitional, until every
    remediation plans a ``Plan``.
    """
    if isinstance(planned, Plan):
        return planned
    for holder in (planned, getattr(planned, "domain", None)):
        inner = getattr(holder, "plan", None)
        if isinstance(inner, Plan):
            return inner
    steps: list[PlanStep] = []
    for item in getattr(planned, "commands", ()):
        purpose, command = (str(item[0]), str(item[1])) if isinstance(item, tuple) else ("run", str(item))
        if command:
            steps.append(PlanStep("change", purpose, command))
    back = getattr(planned, "rollback", None)
    if back is None:
        back = (getattr(planned, "restore", ""),)
    steps += [PlanStep("rollback", "undo", str(c)) for c in back if str(c)]
    shown = getattr(planned, "method", "")
    params = [("method", method or str(shown)), ("method_text", str(shown)),
              ("domain_hash", str(getattr(planned, "plan_hash", "") or ""))]
    return Plan(runbook="bonding", action=action.replace("_", "-"), host=str(planned.host),
                subject=(("bond", str(planned.bond)),), title=str(getattr(planned, "title", "") or action),
                steps=tuple(steps), params=tuple(params))


def approved_hash_for(planned: Any) -> str:
    """What a remediation checks an approval against: the plan's digest (an older plan object
    without a ``Plan`` inside: its own ``plan_hash``, which :func:`plan_of` hashes as a parameter)."""
    if isinstance(planned, Plan):
        return planned.digest
    for holder in (planned, getattr(planned, "domain", None)):
        inner = getattr(holder, "plan", None)
        if isinstance(inner, Plan):
            return inner.digest
    return str(getattr(planned, "plan_hash", "") or "")


def _current(offers: list[Offer]) -> dict[str, Offer]:
    """The offers of each action's latest batch, by digest."""
    latest: dict[str, str] = {}
    for o in offers:
        latest[o.action] = o.batch
    return {o.digest: o for o in offers if o.batch == latest[o.action]}


def _already(prior: Any) -> str:
    if prior is None:
        return "this plan was already decided; it does not run twice"
    return f"already approved by {prior.approver} at {prior.approved_at}; it does not run twice"
