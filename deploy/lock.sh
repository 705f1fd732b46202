#!/usr/bin/env bash
# Regenerate deploy/requirements.lock: bondbot's runtime dependencies (pyproject.toml's
# [project.dependencies], no extras) and its build backend, every version pinned, every file hashed.
# The container image and deploy/install.sh install exactly this file with --require-hashes.
#
#   deploy/lock.sh            rewrite the lock (after changing dependencies in pyproject.toml)
#   deploy/lock.sh --check    exit 1 if the lock no longer matches pyproject.toml
#
# Needs uv (pip install uv; it is in the dev extras). Resolved for CPython 3.11 (Debian 12's python3
# and the image's), on every platform (--universal), so one lock serves x86_64 and aarch64.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-$(command -v uv || echo .venv/bin/uv)}
out=deploy/requirements.lock
compile() {
  "$UV" pip compile --quiet --universal --python-version 3.11 --generate-hashes \
    --no-strip-extras --custom-compile-command "deploy/lock.sh" \
    pyproject.toml deploy/build-requirements.in -o "$1"
}
case "${1:-}" in
  --check)
    tmp=$(mktemp); trap 'rm -f "$tmp"' EXIT
    cp "$out" "$tmp"
    # Keep what is locked unless pyproject.toml needs a change: uv reuses the pins of -o's file.
    compile "$tmp"
    if ! diff -u "$out" "$tmp"; then
      echo "deploy/requirements.lock is out of date: run deploy/lock.sh" >&2; exit 1
    fi ;;
  "") compile "$out"; echo "wrote $out" ;;
  *) echo "usage: deploy/lock.sh [--check]" >&2; exit 2 ;;
esac
