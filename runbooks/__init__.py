"""Runbooks as data, and the engine that runs them.

The engine knows nothing of Slack: the CLI and the bot both drive it. Each runbook lives in its own
subpackage (``runbooks.bonding``) with its YAML steps, jinja2 templates, parsers and rules.

Two modules every runbook shares: ``runbooks.render``, the one renderer of shell commands (every
value validated by its declared type, then shell-quoted), and ``runbooks.plan``, the one ``Plan``
of a change (ordered steps with roles; its ``digest`` is what is approved and run).
"""
