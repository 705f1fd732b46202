"""Runbooks as data, and the engine that runs them.

The engine knows nothing of Slack: the CLI and the bot both drive it. Each runbook lives in its own
subpackage (``runbooks.bonding``) with its YAML steps, jinja2 templates, parsers and rules.
"""
