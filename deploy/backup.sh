#!/usr/bin/env bash
# Back up bondbot's incident log while the bot runs, and verify a backup.
#
#   deploy/backup.sh backup DEST          SQLite: an online backup (SQLite's backup API: a consistent
#                                         snapshot, writers keep going) into DEST, checked with
#                                         PRAGMA integrity_check; PostgreSQL: pg_dump -Fc into DEST
#   deploy/backup.sh verify FILE [--into URL]
#                                         open a copy of a backup with this bondbot (migrating it
#                                         like an upgrade would) and verify every incident's hash
#                                         chain, status and approvals; a pg_dump file is first
#                                         restored into the EMPTY database URL given with --into.
#                                         Exit 0 all intact, 1 any incident broken (each named).
#
# The database is BONDBOT_DATABASE_URL (or $CREDENTIALS_DIRECTORY/BONDBOT_DATABASE_URL), else the
# SQLite file in BONDBOT_DATA_DIR, exactly as bondbot finds it. BONDBOT_PYTHON is the Python that
# has bondbot installed (default: /opt/bondbot/venv/bin/python, else .venv, else python3).
# On a systemd install run it as the service's user with its paths: sudo bondbot-admin shows them;
# e.g. sudo -u bondbot BONDBOT_DATA_DIR=/var/lib/bondbot deploy/backup.sh backup /backup/x.sqlite3
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
py=${BONDBOT_PYTHON:-}
if [ -z "$py" ]; then
  for c in /opt/bondbot/venv/bin/python "$here/.venv/bin/python" python3; do
    if command -v "$c" >/dev/null && "$c" -c 'import incidents' 2>/dev/null; then py=$c; break; fi
  done
fi
[ -n "$py" ] || { echo "backup.sh: no Python with bondbot installed (set BONDBOT_PYTHON)" >&2; exit 2; }

usage() { sed -n '2,14p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 file=$2; shift 2
into=
while [ $# -gt 0 ]; do
  case "$1" in --into) into=$2; shift ;; *) usage ;; esac
  shift
done

exec "$py" - "$cmd" "$file" "$into" <<'PY'
import os, shutil, sqlite3, subprocess, sys, tempfile
from pathlib import Path

from bondbot.settings import database_url

cmd, file, into = sys.argv[1], Path(sys.argv[2]), sys.argv[3]


def libpq(url: str) -> str:
    """SQLAlchemy's postgresql+psycopg:// URL as pg_dump/pg_restore take it."""
    return "postgresql://" + url.split("://", 1)[1]


def pg_tool(name: str) -> str:
    for d in [os.environ.get("BONDBOT_PG_BIN", "")] + sorted(
            (str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")), key=lambda s: int(s.split("/")[-2]), reverse=True):
        if d and (Path(d) / name).exists():
            return str(Path(d) / name)
    found = shutil.which(name)
    if not found:
        sys.exit(f"backup.sh: {name} not found (Debian: apt-get install postgresql-client)")
    return found


def verify(url: str) -> int:
    from incidents import IncidentStore

    broken = total = 0
    with IncidentStore.open(url) as store:
        for inc in store.list_incidents(limit=10**9):
            total += 1
            result = store.verify(inc.id)
            if not result.ok:
                broken += 1
                print(f"BROKEN {inc.id}: {result}")
    print(f"{total} incident(s) verified, {broken} broken" + ("" if broken else ": every chain intact"))
    return 1 if broken else 0


url = database_url()
if cmd == "backup":
    if file.exists():
        sys.exit(f"backup.sh: {file} exists; refusing to overwrite a backup")
    if url.startswith("sqlite:///"):
        src_path = url[len("sqlite:///"):].split("?", 1)[0]
        if not Path(src_path).exists():
            sys.exit(f"backup.sh: no incident log at {src_path}")
        tmp = file.with_name(file.name + ".partial")
        src, dst = sqlite3.connect(src_path, timeout=30), sqlite3.connect(tmp)
        try:
            src.backup(dst)  # pages copied under SQLite's own locking: a consistent snapshot
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            src.close(); dst.close()
        if check != "ok":
            tmp.unlink()
            sys.exit(f"backup.sh: the backup failed its integrity check: {check}")
        os.chmod(tmp, 0o600)
        tmp.rename(file)
    elif url.startswith("postgresql"):
        with open(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            done = subprocess.run([pg_tool("pg_dump"), "--format=custom", "--no-owner", "--dbname", libpq(url)], stdout=out)
        if done.returncode:
            file.unlink()
            sys.exit(f"backup.sh: pg_dump failed (exit {done.returncode})")
    else:
        sys.exit(f"backup.sh: cannot back up {url.split(':', 1)[0]} databases")
    print(f"backed up to {file} ({file.stat().st_size} bytes)")
elif cmd == "verify":
    if not file.exists():
        sys.exit(f"backup.sh: {file}: no such file")
    with open(file, "rb") as f:
        magic = f.read(16)
    if magic.startswith(b"SQLite format 3"):
        with tempfile.TemporaryDirectory() as d:
            copy = Path(d) / "incidents.sqlite3"
            shutil.copyfile(file, copy)  # verifying migrates: never touch the backup itself
            sys.exit(verify(f"sqlite:///{copy}"))
    elif magic.startswith(b"PGDMP"):
        if not into:
            sys.exit("backup.sh: a pg_dump backup is verified by restoring it: give --into URL of an empty database")
        done = subprocess.run([pg_tool("pg_restore"), "--no-owner", "--exit-on-error", "--dbname", libpq(into), str(file)])
        if done.returncode:
            sys.exit(f"backup.sh: pg_restore failed (exit {done.returncode})")
        sys.exit(verify(into))
    else:
        sys.exit(f"backup.sh: {file} is neither a SQLite file nor a pg_dump archive")
else:
    sys.exit(f"backup.sh: unknown command {cmd!r}: backup or verify")
PY
