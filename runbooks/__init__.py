"""Runbooks as data, and the engine that runs them.

The engine knows nothing of Slack: the CLI and the bot both drive it. It knows no runbook in
particular either: a runbook's YAML declares its parameters, its subject (bonding: ``bond``) and how
a host's subjects are discovered, its steps and their output slots, its parsers, its diagnosis and
its actions, naming its own Python as ``module:function``. ``runbooks.runbook`` loads and checks a
runbook and finds it by name (built in: ``runbooks/<name>/runbook.yaml``; ``BONDBOT_RUNBOOKS``) or
path; ``runbooks.engine`` runs any runbook's triage; ``runbooks.results`` is what it found;
``runbooks.actions`` plans a runbook's data actions and runs a Plan by role. Each built-in runbook
lives in its own subpackage (``runbooks.bonding``) with its YAML, templates, parsers and rules;
``tests/runbook_engine/loadavg/`` is a second one, kept in the tests.

Two modules every runbook shares: ``runbooks.render``, the one renderer of shell commands (every
value validated by its declared type, then shell-quoted), and ``runbooks.plan``, the one ``Plan``
of a change (ordered steps with roles; its ``digest`` is what is approved and run).
"""
