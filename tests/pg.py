"""A private PostgreSQL server for the test session: real PostgreSQL, no shared state, no set-up.

``initdb`` into a temporary directory and ``pg_ctl start`` on a free loopback port, with the Unix
socket in that directory too, so it never touches a system cluster. PostgreSQL refuses to run as
root, so when the tests run as root (CI does) the server runs as the ``postgres`` OS user that
Debian's ``postgresql`` package creates. Durability is switched off (``fsync=off``): this is a
throwaway server, and it starts in about a second.

Use from a conftest (the server starts once per pytest process, however many conftests import it)::

    from pg import postgres_url, fresh_postgres_database  # noqa: F401  (fixtures)

or directly: ``with private_postgres() as url: ...``. Tests that use it should be marked
``@pytest.mark.postgres``. Without PostgreSQL binaries the fixture skips, saying why.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

__all__ = ["PostgresUnavailable", "find_pg_bin", "private_postgres", "create_database", "postgres_url", "fresh_postgres_database"]


class PostgresUnavailable(RuntimeError):
    """PostgreSQL binaries (or a user to run them as) are missing on this machine."""


def find_pg_bin() -> Path:
    """The directory with initdb and pg_ctl: ``$BONDBOT_PG_BIN``, Debian's newest, or ``$PATH``."""
    env = os.environ.get("BONDBOT_PG_BIN")
    candidates = [env] if env else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for c in candidates:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin and $PATH); "
        "install Debian's 'postgresql' package (./run setup does)"
    )


def _run_as() -> tuple[str | None, int | None, int | None]:
    """(user name, uid, gid) to run the server as: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None, None, None
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable("running as root and there is no 'postgres' OS user to run PostgreSQL as") from None
    return "postgres", pw.pw_uid, pw.pw_gid


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def private_postgres() -> Iterator[str]:
    """Start a throwaway PostgreSQL server; yield its SQLAlchemy URL (superuser ``postgres``, trust auth)."""
    bindir = find_pg_bin()
    user, uid, gid = _run_as()
    base = Path(tempfile.mkdtemp(prefix="bondbot-pg-"))
    data = base / "data"
    log = base / "server.log"
    if uid is not None:
        os.chown(base, uid, gid)  # type: ignore[arg-type]
    kwargs: dict = {"user": uid, "group": gid} if uid is not None else {}
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "TZ": "UTC"}
    started = False
    try:
        subprocess.run(
            [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync",
             "--no-instructions"],
            check=True, capture_output=True, env=env, cwd=base, **kwargs,
        )
        for _attempt in range(5):
            port = _free_port()
            opts = (
                f"-c listen_addresses=127.0.0.1 -c port={port} -k {base} -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c max_connections=60 -c shared_buffers=16MB"
            )
            proc = subprocess.run(
                [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", "30", "start"],
                capture_output=True, env=env, cwd=base, **kwargs,
            )
            if proc.returncode == 0:
                started = True
                break
        if not started:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else proc.stderr.decode(errors="replace")
            raise RuntimeError(f"PostgreSQL did not start (as {user or 'current user'}):\n{tail}")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        if started:
            subprocess.run(
                [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True, env=env, cwd=base, **kwargs,
            )
        shutil.rmtree(base, ignore_errors=True)


def create_database(url: str, name: str | None = None) -> str:
    """Create an empty database on the server at ``url``; return its URL (for per-test isolation)."""
    import psycopg

    name = name or f"t_{uuid.uuid4().hex[:12]}"
    if not name.replace("_", "").isalnum():
        raise ValueError(f"bad database name {name!r}")
    from sqlalchemy.engine import make_url

    u = make_url(url)
    with psycopg.connect(host=u.host, port=u.port, user=u.username, dbname=u.database, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return u.set(database=name).render_as_string(hide_password=False)


# One server per pytest process, shared by every conftest that imports the fixtures below.
_lock = threading.Lock()
_server: dict[str, object] = {}


def _acquire() -> str:
    with _lock:
        if "url" not in _server:
            cm = private_postgres()
            _server["url"] = cm.__enter__()
            _server["cm"] = cm
            _server["users"] = 0
            atexit.register(_shutdown)
        _server["users"] = int(_server["users"]) + 1  # type: ignore[call-overload]
        return str(_server["url"])


def _release() -> None:
    with _lock:
        _server["users"] = int(_server["users"]) - 1  # type: ignore[call-overload]
        if _server["users"] == 0:
            _shutdown()


def _shutdown() -> None:
    cm = _server.pop("cm", None)
    _server.pop("url", None)
    if cm is not None:
        cm.__exit__(None, None, None)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of the session's private PostgreSQL server (its ``postgres`` database)."""
    try:
        url = _acquire()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield url
    finally:
        _release()


@pytest.fixture
def fresh_postgres_database(postgres_url: str) -> str:
    """URL of a new, empty database on the session's server, for a test that needs a clean schema."""
    return create_database(postgres_url)
