"""The Slack surface (slack-bolt): commands, Block Kit views, approvals, authorization.

Public API:

* ``bot.app.build_app(deps, client=..., signing_secret=..., socket_mode=...) -> (AsyncApp, BondBot)``
  and ``bot.app.BotDeps(store, triage, policy, remediation=None, clock=...)``.
* ``bot.wiring.EngineTriage(pool, store)`` / ``EngineRemediation(pool, store, *, link_control=None,
  hold_seconds=3.0, manual_timeout=300.0)``: the real domain (``link_control(port, up)`` adds the
  ``lab`` failover method; the caller passes it, the bot never imports the lab).
* ``bot.remediation.Remediation`` / ``PlanLike``: what the buttons need (approvals bind to
  ``runbooks.plan.Plan.digest``).
* ``bot.authz.load_policy(path=None, env=None) -> AuthzPolicy``.
* ``bot.server``: ``make_web_client``, ``start_http``, ``start_socket_mode``.

Not part of it: ``bot.testing`` (the Slack stand-in, ``start_bot`` and the transcript), Slack on
loopback for tests, the benchmarks and the demo, kept apart as ``starlette.testclient`` is; nothing in
the bot imports it.
"""
