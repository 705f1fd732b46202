"""The approved fix "enable link monitoring": plan, precheck, rollback note, apply, verify, roll back.

Public API (the CLI ``bondbot fix`` and the Slack bot's approval buttons call exactly this)::

    from runbooks.bonding.remediation import Monitor, plan_fix, apply_fix
    from runbooks.bonding.failover import plan_failover_test, run_failover_test

    monitor = Monitor.mii(100)                      # or Monitor.arp(1000, ["10.20.0.1"], validate=None)
    plan = await plan_fix(pool.session("web-01"), "bond0", monitor, host="web-01",
                          target=None, checkpoint_timeout=60)            # -> FixPlan (reads only)
    plan.render_text()    # exact commands, verification, rollback: show this before approval
    plan.plan             # the runbooks.plan.Plan: every step (role, purpose, command) shown and run
    plan.plan_hash        # == plan.plan.digest: what an approval refers to
    plan.to_json()        # for Block Kit / logs
    result = await apply_fix(plan, pool=pool, actor="slack:U123", incident_store=store,
                             incident_id="INC-...", approved_hash=clicked_hash)  # -> FixResult
    result.ok; result.status  # "verified" | "rolled_back" | "refused" | "failed"
    result.render_text(); result.to_json(); result.checks; result.host_as_before

    fplan = await plan_failover_test(pool.session("web-01"), "bond0", "lab"|"manual"|"host",
                                     host="web-01", target=None, hold_seconds=3.0,
                                     allow_unmonitored=False)            # -> FailoverPlan
    fplan.ready; fplan.preconditions; fplan.render_text(); fplan.plan_hash

    # One reading for several plans (the bot's offers): read once, plan each from it (sends nothing).
    state = await read_bond_state(pool.session("web-01"), "bond0")
    tools = await read_failover_tools(pool.session("web-01"))        # runbooks.bonding.failover
    plan = await plan_fix(session, "bond0", host="web-01", state=state)
    fplan = await plan_failover_test(session, "bond0", "host", host="web-01", state=state, tools=tools)
    report = await run_failover_test(fplan, pool=pool, actor=..., maintenance_window_confirmed=True,
                                     link_control=None, notify=None,     # notify(text): tell the operator
                                     incident_store=None, incident_id=None)  # -> FailoverReport
    report.passed; report.detection_ms; report.outage_ms; report.lost_pings; report.primary_returned

``pool`` is an ``ssh_exec.SshPool``. A plan is plain data around one ``runbooks.plan.Plan``
(``plan.plan``), whose steps come from remediation.yaml's ``fix:`` / ``failover_test:`` lists and
whose digest is the only hash. A bot that does not keep it between showing and clicking plans again
at click time with the shown plan's run id (``plan_fix(..., run_id=plan.run_id)``; the failover
test: ``token=plan.token``) and compares digests: they are equal only if the state shown and every
command are. ``apply_fix`` refuses a plan whose ``approved_hash`` differs, whose steps are not what
its own state gives, or whose host changed since (precheck). Verification uses a NEW
SSH connection (the pool's connection to the host is closed first): a change that broke the path
the bot came in on must not look healthy because an old TCP session survived. Everything is
recorded in the incident log when ``incident_store``/``incident_id`` are given: the rollback note
before any change, every command with its output and the actor, the verification, the rollback.

How the change is made on a NetworkManager host, and why in this order:

1. precheck: read the state again; refuse if it differs from the plan (someone changed the bond
   since the diagnosis, or the plan is stale).
2. rollback note, recorded in the incident log BEFORE anything changes: bond.options and the
   runtime values as they are, and the exact commands that restore them.
3. NM checkpoint (D-Bus ``CheckpointCreate`` with a rollback timeout) over the bond and its ports,
   and an undo armed on the host (systemd-run, else setsid nohup) that restores the note's runtime
   values a few seconds after that timeout unless bondbot confirms: NetworkManager 1.42's rollback
   restores the profile and reactivates the bond but leaves options the old profile did not name
   (measured in the lab: arp_interval and arp_ip_target stayed).
   nmcli 1.42 has no checkpoint command; we call D-Bus with ``busctl``, which systemd ships on
   every host where NetworkManager runs; ``gdbus`` (libglib2.0-bin) or python3-dbus are often
   absent (the lab image has python3-minimal only). If the bot cannot confirm in time, e.g. because
   the change cut its SSH path, NetworkManager restores the profile and reactivates the bond itself.
4. ``nmcli connection modify`` first: the checkpoint only reactivates the bond on rollback when the
   profile or the active connection changed, so the profile change comes before the runtime one.
5. runtime change through sysfs (immediate, no outage), then ``nmcli device reapply`` so that
   NetworkManager's applied connection agrees with the kernel. If reapply is refused, the seed's
   ``nmcli con down/up``, detached on the host (systemd-run, else setsid nohup).
6. verify over a new connection: the monitor is on, every port's MII status is up, the profile on
   disk has it, the gateway answers. Then confirm: disarm the undo, destroy the checkpoint.
7. on any failure: roll back (checkpoint rollback, then the note's commands for whatever still
   differs), compare the host with the plan's "before" state and report.

Hosts where NetworkManager does not hold the bond get the armed undo and the runtime change
(sysfs). On an ifupdown bond (``ifquery`` knows it, exactly one interfaces file holds its stanza)
the fix also persists ``bond-miimon`` in that stanza (backup in /var/backups/bondbot first, a write
only if the file is still what the plan read, the undo restores the file too, verified with
``ifquery``; backend ``"ifupdown"``, see ``ifupdown_file``). For netplan, ifcfg and anything else it
prints the exact persistence steps, which the operator applies; bondbot does not edit those files.

Where the code lives (this module is the facade; import from here):

- ``bond_options``: errors, validation, template rendering, :class:`Monitor`, option merging,
  sysfs parsing and the runtime apply/restore commands (pure).
- ``bond_state``: :class:`BondState`, :func:`read_bond_state` (read-only), fingerprint comparison.
- ``fix_plan``: :class:`FixPlan`, :func:`build_fix_plan` (pure), :func:`plan_fix`, persistence steps.
- ``ifupdown_file``: the bond's stanza in an interfaces(5) file, edited as text (pure).
- ``failover`` / ``failover_parse``: the failover test and the parsers of what its sampler wrote.
- ``fix_apply``: :func:`apply_fix`, verification and rollback, :class:`FixResult`.
- ``records``: :class:`Check`, :class:`StepRecord` and the incident recorder (shared with the
  failover test).
"""

from __future__ import annotations

from runbooks.bonding.bond_options import (
    REMEDIATION_YAML,  # noqa: F401 - importable from the facade (see below)
    Monitor,
    PlanRefused,
    RemediationError,
    format_bond_options,
    merge_bond_options,
    parse_sysfs_bonding,
    render,
    runtime_apply_commands,  # noqa: F401 - importable from the facade (see below)
    runtime_restore_commands,
    validate_interface,
    validate_ipv4_target,
)
from runbooks.bonding.bond_state import BondState, fingerprint_differences, read_bond_state  # noqa: F401
from runbooks.bonding.fix_apply import COMMAND_TIMEOUT, FixResult, apply_fix  # noqa: F401
from runbooks.bonding.fix_plan import (
    CHECKPOINT_PLACEHOLDER,  # noqa: F401 - importable from the facade (see below)
    WATCHDOG_GRACE,  # noqa: F401 - importable from the facade (see below)
    FixPlan,
    build_fix_plan,
    persistence_steps,  # noqa: F401 - importable from the facade (see below)
    plan_fix,
)
from runbooks.bonding.records import Check, IncidentRecorder, StepRecord

__all__ = [
    "Monitor",
    "BondState",
    "FixPlan",
    "Check",
    "StepRecord",
    "FixResult",
    "RemediationError",
    "PlanRefused",
    "plan_fix",
    "apply_fix",
    "read_bond_state",
    "build_fix_plan",
    "merge_bond_options",
    "format_bond_options",
    "parse_sysfs_bonding",
    "runtime_restore_commands",
    "render",
    "validate_interface",
]

# Imported above beyond __all__: every name this module defined before it was split
# (REMEDIATION_YAML, COMMAND_TIMEOUT, the placeholders, fingerprint_differences, ...) stays
# importable from here; the two private names below are the ones failover.py used to import.
_Recorder = IncidentRecorder
_validate_ipv4_target = validate_ipv4_target
