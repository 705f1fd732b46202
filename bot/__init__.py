"""The Slack surface (slack-bolt): commands, Block Kit views, approvals, authorization.

Public API:

* ``bot.app.build_app(deps, client=..., signing_secret=..., socket_mode=...) -> (AsyncApp, BondBot)``
  and ``bot.app.BotDeps(store, triage, policy, remediation=None, clock=...)``.
* ``bot.wiring.EngineTriage(pool, store)`` / ``EngineRemediation(pool, store, *, link_control=None,
  hold_seconds=3.0, manual_timeout=300.0)``: the real domain (``link_control(port, up)`` adds the
  ``lab`` failover method; the caller passes it, the bot never imports the lab).
* ``bot.remediation.Remediation`` / ``PlanLike`` / ``plan_hash``: what the buttons need.
* ``bot.authz.load_policy(path=None, env=None) -> AuthzPolicy``.
* ``bot.server``: ``make_web_client``, ``start_http``, ``start_socket_mode``.
* ``bot.standin.SlackStandin``, ``bot.harness.start_bot``, ``bot.transcript.render_text/html``:
  Slack on loopback, for tests, the benchmark and the demo.
"""
