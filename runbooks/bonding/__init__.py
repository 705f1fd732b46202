"""The bonding-failover runbook: triage steps, parsers for what they print, and diagnosis rules."""
