"""Alembic environment: always given a live connection by ``incidents.migrations.upgrade``."""

from __future__ import annotations

from alembic import context

from incidents.tables import VERSION_TABLE

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable through a hand-written alembic.ini
    raise RuntimeError("run migrations through incidents.migrations.upgrade(connection)")

context.configure(
    connection=connection,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
