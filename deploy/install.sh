#!/usr/bin/env bash
# Install (or upgrade) bondbot as a systemd service on Debian 12 / Ubuntu 22.04+ / any systemd host.
#
#   sudo deploy/install.sh                 from this checkout; run it again to upgrade
#   sudo deploy/install.sh --start         ... and enable + (re)start the service
#   deploy/install.sh --prefix DIR         stage everything under DIR instead of / (no systemctl)
#
# What it does, each step idempotent:
#   1. the system user and group 'bondbot' (no login, home /var/lib/bondbot);
#   2. a virtualenv per release, /opt/bondbot/releases/<version>-<time>, with the dependencies from
#      deploy/requirements.lock (every version pinned, every file hashed) and bondbot itself, never
#      in the system Python (Debian refuses that: "externally-managed-environment");
#      /opt/bondbot/venv points at the new release only once it is complete (the previous one is
#      kept, for a rollback: ln -sfn releases/<old> /opt/bondbot/venv && systemctl restart bondbot);
#   3. /etc/bondbot (root:bondbot 0750) with authz.yaml and inventory.yaml if absent (never
#      overwritten), /etc/bondbot/credentials (root 0700) with the tokens given in the environment
#      (SLACK_BOT_TOKEN, SLACK_APP_TOKEN, SLACK_SIGNING_SECRET, BONDBOT_DATABASE_URL; mode 0600);
#   4. /var/lib/bondbot (bondbot 0700): the incident log and bondbot's known_hosts;
#   5. the hardened unit /etc/systemd/system/bondbot.service, checked with systemd-analyze verify,
#      and /usr/local/sbin/bondbot-admin: run bondbot commands as the service does
#      (e.g. sudo bondbot-admin hosts trust web-01; sudo bondbot-admin incident list).
# Needs: root (unless --prefix), python3 >= 3.11 with venv (Debian: apt-get install python3-venv),
# and PyPI (or PIP_INDEX_URL / PIP_FIND_LINKS for a mirror or a wheelhouse).
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
prefix=
start=0
keep=3
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$(realpath -m "$2"); shift ;;
    --start) start=1 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "==> $*"; }

[ "$(id -u)" = 0 ] || die "run as root (sudo deploy/install.sh); it creates a user and sets owners, --prefix too"
[ -z "$prefix" ] || [ "$start" = 0 ] || die "--start cannot be used with --prefix"
lock=$src/deploy/requirements.lock
[ -f "$lock" ] || die "$lock is missing (deploy/lock.sh makes it)"

python=${BONDBOT_PYTHON:-$(command -v /usr/bin/python3 || command -v python3 || true)}
[ -n "$python" ] && command -v "$python" >/dev/null || die "python3 not found (${python:-none}; Debian: apt-get install python3 python3-venv)"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "$python is $("$python" -V 2>&1); bondbot needs Python 3.11 or newer"
"$python" -c 'import venv, ensurepip' 2>/dev/null \
  || die "$python has no venv module (Debian/Ubuntu: apt-get install python3-venv)"

opt=$prefix/opt/bondbot
etc=$prefix/etc/bondbot
state=$prefix/var/lib/bondbot
unitdir=$prefix/etc/systemd/system

# 1. the user
user_args=()
if [ -n "$prefix" ]; then
  mkdir -p "$prefix/etc"
  for f in passwd group shadow gshadow; do [ -e "$prefix/etc/$f" ] || install -m 0644 /dev/null "$prefix/etc/$f"; done
  user_args=(--prefix "$prefix")
fi
if [ -n "$prefix" ]; then grep -q '^bondbot:' "$prefix/etc/passwd" && exists=1 || exists=0
else getent passwd bondbot >/dev/null && exists=1 || exists=0; fi
if [ "$exists" = 0 ]; then
  say "creating system user bondbot"
  useradd "${user_args[@]}" --system --user-group --home-dir /var/lib/bondbot --no-create-home \
    --shell /usr/sbin/nologin --comment "bondbot Slack bot" bondbot
fi
if [ -n "$prefix" ]; then
  uid=$(awk -F: '$1 == "bondbot" {print $3}' "$prefix/etc/passwd"); gid=$(awk -F: '$1 == "bondbot" {print $3}' "$prefix/etc/group")
else
  uid=$(id -u bondbot); gid=$(getent group bondbot | cut -d: -f3)
fi

# 2. the release's virtualenv
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$src/pyproject.toml" | head -1)
release=$opt/releases/$version-$(date -u +%Y%m%dT%H%M%SZ)
say "virtualenv $release (Python $("$python" -c 'import platform; print(platform.python_version())'))"
install -d -m 0755 "$opt" "$opt/releases"
rm -rf "$release"
build=
release_ok=0
# A release that did not install completely is removed; /opt/bondbot/venv never points at one.
cleanup() { [ "$release_ok" = 1 ] || rm -rf "$release"; [ -z "$build" ] || rm -rf "$build"; }
trap cleanup EXIT
"$python" -m venv "$release"
"$release/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes -r "$lock"
build=$(mktemp -d)
cp -r "$src/pyproject.toml" "$src/README.md" "$src/bondbot" "$src/runbooks" "$src/ssh_exec" \
  "$src/incidents" "$src/bot" "$src/lab" "$build/"
"$release/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-build-isolation "$build"
"$release/bin/python" -m compileall -q "$release/lib" >/dev/null
"$release/bin/bondbot" --help >/dev/null || die "the new release does not run: $release/bin/bondbot --help failed"
"$release/bin/pip" check >/dev/null || die "the new release's dependencies are inconsistent: $release/bin/pip check"
release_ok=1
install -m 0644 "$src/README.md" "$opt/README.md"
ln -sfn "releases/$(basename "$release")" "$opt/venv.new" && mv -T "$opt/venv.new" "$opt/venv"
# keep the newest $keep releases (the running one is always among them)
ls -1dt "$opt"/releases/*/ | tail -n +$((keep + 1)) | xargs -r rm -rf

# 3. configuration and credentials
install -d -m 0750 -o 0 -g "$gid" "$etc"
install -d -m 0700 -o 0 -g 0 "$etc/credentials"
[ -e "$etc/authz.yaml" ] || install -m 0640 -o 0 -g "$gid" "$src/deploy/authz.example.yaml" "$etc/authz.yaml"
if [ ! -e "$etc/inventory.yaml" ]; then
  printf '%s\n' "# bondbot's hosts (README: Triage over SSH). Key files must be readable by user bondbot," \
    "# e.g. /etc/bondbot/id_ed25519 owned root:bondbot mode 0640." "hosts: {}" >"$etc/inventory.yaml"
  chown "0:$gid" "$etc/inventory.yaml"; chmod 0640 "$etc/inventory.yaml"
fi
for name in SLACK_BOT_TOKEN SLACK_APP_TOKEN SLACK_SIGNING_SECRET BONDBOT_DATABASE_URL; do
  if [ -n "${!name:-}" ]; then
    (umask 077; printf '%s\n' "${!name}" >"$etc/credentials/$name.new") && mv "$etc/credentials/$name.new" "$etc/credentials/$name"
    say "credential $name written to $etc/credentials/$name (0600)"
  fi
done

# 4. state
install -d -m 0700 -o "$uid" -g "$gid" "$state"

# 5. the unit and the admin wrapper
install -d -m 0755 "$unitdir" "$prefix/usr/local/sbin"
install -m 0644 "$src/deploy/bondbot.service" "$unitdir/bondbot.service"
cat >"$prefix/usr/local/sbin/bondbot-admin.new" <<'EOF'
#!/bin/sh
# Run a bondbot command as the service does: as user bondbot, with the unit's paths and the
# database URL credential (installed by deploy/install.sh). Run as root: sudo bondbot-admin ...
set -eu
[ "$(id -u)" = 0 ] || { echo "bondbot-admin: run as root (sudo bondbot-admin ...)" >&2; exit 2; }
url=
[ -r /etc/bondbot/credentials/BONDBOT_DATABASE_URL ] && url=$(cat /etc/bondbot/credentials/BONDBOT_DATABASE_URL)
cd /var/lib/bondbot
exec setpriv --reuid=bondbot --regid=bondbot --init-groups env -i PATH=/usr/bin:/bin HOME=/var/lib/bondbot \
  LANG="${LANG:-C.UTF-8}" TERM="${TERM:-dumb}" \
  BONDBOT_CONFIG_DIR=/etc/bondbot BONDBOT_INVENTORY=/etc/bondbot/inventory.yaml \
  BONDBOT_SLACK_AUTHZ=/etc/bondbot/authz.yaml BONDBOT_DATA_DIR=/var/lib/bondbot \
  BONDBOT_KNOWN_HOSTS=/var/lib/bondbot/known_hosts ${url:+BONDBOT_DATABASE_URL="$url"} \
  /opt/bondbot/venv/bin/bondbot "$@"
EOF
chmod 0755 "$prefix/usr/local/sbin/bondbot-admin.new" && mv "$prefix/usr/local/sbin/bondbot-admin.new" "$prefix/usr/local/sbin/bondbot-admin"

if command -v systemd-analyze >/dev/null; then
  if [ -n "$prefix" ]; then
    [ -d "$prefix/usr/lib/systemd/system" ] || { mkdir -p "$prefix/usr/lib/systemd"; cp -a /usr/lib/systemd/system "$prefix/usr/lib/systemd/"; }
    out=$(systemd-analyze verify --root="$prefix" bondbot.service 2>&1) || die "systemd-analyze verify: $out"
  else
    out=$(systemd-analyze verify "$unitdir/bondbot.service" 2>&1) || die "systemd-analyze verify: $out"
  fi
  [ -z "$out" ] || die "systemd-analyze verify is not clean: $out"
fi

say "installed $(basename "$release") -> $opt/venv"
if [ -z "$prefix" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  if [ "$start" = 1 ]; then
    systemctl enable bondbot.service >/dev/null
    systemctl restart bondbot.service  # migrations run as the new release opens the incident log
    say "bondbot.service restarted: systemctl status bondbot; journalctl -u bondbot -f"
  fi
fi
missing=()
for name in SLACK_BOT_TOKEN SLACK_APP_TOKEN; do [ -s "$etc/credentials/$name" ] || missing+=("$name"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "next: put ${missing[*]} in $etc/credentials/ (one file each, mode 0600), fill in $etc/authz.yaml and"
  echo "      $etc/inventory.yaml, trust each host (sudo bondbot-admin hosts trust HOST), then:"
  echo "      systemctl enable --now bondbot"
fi
