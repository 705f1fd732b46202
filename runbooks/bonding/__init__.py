"""The bonding-failover runbook: triage steps (runbook.yaml), the callables its YAML names (triage.py),
parsers for what the steps print, diagnosis rules, and the fix and failover test."""
