"""Fixtures for the incident log tests: every store test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from incidents import IncidentStore
from pg import create_database, fresh_postgres_database, postgres_url  # noqa: F401  (fixtures)


@pytest.fixture(scope="session")
def shared_pg_database(postgres_url: str) -> str:  # noqa: F811
    """One database for the session's PostgreSQL store tests (incidents never collide)."""
    return create_database(postgres_url, "incidents_tests")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL: a new SQLite file, or the session's PostgreSQL test database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'incidents.sqlite3'}"
    return request.getfixturevalue("shared_pg_database")


@pytest.fixture
def store(db_url: str) -> Iterator[IncidentStore]:
    s = IncidentStore.open(db_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def incident_id(store: IncidentStore) -> str:
    return store.create_incident(host="web-01", bond="bond0", requester="U024BE7LH", channel="#ops").id
