"""The Slack surface (slack-bolt): commands, Block Kit views, approvals, authorization.

Public API:

* ``bot.app.build_app(deps, client=..., signing_secret=..., socket_mode=...) -> (AsyncApp, BondBot)``
  and ``bot.app.BotDeps(store, triage, policy, remediation=None, clock=...)``.
* ``bot.wiring.EngineTriage(pool, store)`` / ``EngineRemediation(pool, store)``: the real domain.
* ``bot.remediation.Remediation`` / ``PlanLike`` / ``plan_hash``: what the buttons need.
* ``bot.authz.load_policy(path=None, env=None) -> AuthzPolicy``.
* ``bot.server``: ``make_web_client``, ``start_http``, ``start_socket_mode``.
* ``bot.standin.SlackStandin``, ``bot.harness.start_bot``, ``bot.transcript.render_text/html``:
  Slack on loopback, for tests, the benchmark and the demo.
"""
