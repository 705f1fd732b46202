"""The incident log: append-only, hash-chained events in SQLite or PostgreSQL, and timeline export."""
