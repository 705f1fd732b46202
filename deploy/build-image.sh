#!/usr/bin/env bash
# Build the bondbot container image (deploy/Containerfile) with podman or buildah, and check it.
#
#   deploy/build-image.sh                 FROM the pinned public base (needs its registry)
#   deploy/build-image.sh --local-base    FROM a Debian 12 base debootstrapped here (needs root and
#                                         a Debian mirror; for machines that cannot pull images)
#   options: --tag NAME (default localhost/bondbot:dev), --isolation chroot|oci (default chroot),
#            --ca-bundle FILE|none: the CA bundle pip trusts during the build, mounted over the
#            base's (default with --local-base: this host's /etc/ssl/certs/ca-certificates.crt, for
#            networks behind a TLS-inspecting proxy; it is not copied into the image)
#
# Exit status: 0 built and checked; 1 the build or a check failed; 77 skipped, with the reason on
# stderr (no podman/buildah, not root for --local-base, no user namespaces...). The Debian base
# is cached (BONDBOT_IMAGE_CACHE, default ~/.cache/bondbot/image-base) and reused while it exists.
# Prints how long each part took. Not part of the default test suite (it takes tens of seconds):
# tests/deploy/test_image_build.py runs it when BONDBOT_IMAGE_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."

tag=localhost/bondbot:dev
isolation=chroot
local_base=0
ca_bundle=
while [ $# -gt 0 ]; do
  case "$1" in
    --local-base) local_base=1 ;;
    --tag) tag=$2; shift ;;
    --isolation) isolation=$2; shift ;;
    --ca-bundle) ca_bundle=$2; shift ;;
    *) echo "usage: deploy/build-image.sh [--local-base] [--tag NAME] [--isolation chroot|oci] [--ca-bundle FILE|none]" >&2; exit 2 ;;
  esac
  shift
done

skip() { echo "build-image: SKIPPED: $*" >&2; exit 77; }
fail() { echo "build-image: FAILED: $*" >&2; exit 1; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f s", b - a }'; }

if command -v podman >/dev/null; then
  build=(podman build); images() { podman image exists "$1"; }
  import() { podman import --quiet - "$1" >/dev/null; }
  inspect() { podman image inspect --format "$1" "$2"; }
elif command -v buildah >/dev/null; then
  build=(buildah build); images() { buildah inspect --type image "$1" >/dev/null 2>&1; }
  import() { local c; c=$(buildah from scratch); buildah add "$c" - / >/dev/null; buildah commit --quiet "$c" "$1" >/dev/null; buildah rm "$c" >/dev/null; }
  inspect() { buildah inspect --type image --format "$1" "$2"; }
else
  skip "neither podman nor buildah is installed (Debian: apt-get install podman, or buildah)"
fi

build_args=()
if [ -z "$ca_bundle" ] && [ "$local_base" = 1 ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  ca_bundle=/etc/ssl/certs/ca-certificates.crt
fi
if [ -n "$ca_bundle" ] && [ "$ca_bundle" != none ]; then
  [ -f "$ca_bundle" ] || fail "--ca-bundle $ca_bundle: no such file"
  build_args+=(--volume "$(realpath "$ca_bundle"):/etc/ssl/certs/ca-certificates.crt:ro")
fi
if [ "$local_base" = 1 ]; then
  base=localhost/bondbot-base:bookworm
  build_args+=(--build-arg "BASE=$base")
  if ! images "$base"; then
    [ "$(id -u)" = 0 ] || skip "--local-base debootstraps Debian and needs root"
    command -v debootstrap >/dev/null || skip "debootstrap is not installed (apt-get install debootstrap)"
    cache=${BONDBOT_IMAGE_CACHE:-$HOME/.cache/bondbot/image-base}
    mirror=${BONDBOT_DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit} /^deb / {print $2; exit}' \
      /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list 2>/dev/null || true)}
    mirror=${mirror:-http://deb.debian.org/debian}
    t0=$(now)
    if [ ! -x "$cache/rootfs/usr/bin/python3" ]; then
      rm -rf "$cache/rootfs.tmp"; mkdir -p "$cache"
      echo "==> debootstrap Debian 12 (minbase, python3) from $mirror" >&2
      debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$cache/rootfs.tmp" "$mirror" >"$cache/debootstrap.log" 2>&1 \
        || fail "debootstrap failed: see $cache/debootstrap.log"
      rm -rf "$cache/rootfs.tmp"/var/cache/apt/archives/*.deb "$cache/rootfs.tmp"/var/lib/apt/lists/*
      mv "$cache/rootfs.tmp" "$cache/rootfs"
    fi
    tar -C "$cache/rootfs" --numeric-owner -c . | import "$base" || fail "could not import the base into image storage"
    echo "base $base: $(secs "$t0" "$(now)") (debootstrap + import)" >&2
  fi
fi

t0=$(now)
log=$(mktemp); trap 'rm -f "$log"' EXIT
if ! "${build[@]}" --format docker --isolation "$isolation" "${build_args[@]}" -f deploy/Containerfile -t "$tag" . >"$log" 2>&1; then
  tail -25 "$log" >&2
  if grep -qiE "user namespaces? (are|is) not|cannot clone|unshare.*(not permitted|Operation not permitted)|newuidmap" "$log"; then
    skip "$isolation isolation is refused on this machine (user namespaces): see above"
  fi
  if grep -qiE "(pull|manifest|registry|dial tcp|no such host|i/o timeout).*" "$log" && [ "$local_base" = 0 ]; then
    skip "the public base image cannot be pulled here; use --local-base"
  fi
  fail "the build failed (above)"
fi
built=$(now)
echo "build: $(secs "$t0" "$built") ($tag, isolation $isolation)" >&2

# What the image must be, read back from it. (--format docker above: the OCI format has no
# HEALTHCHECK, and podman drops it with a warning.)
user=$(inspect '{{.Config.User}}' "$tag")
health=$(inspect '{{json .Config.Healthcheck}}' "$tag" 2>/dev/null || true)
size=$(inspect '{{.Size}}' "$tag")
[ "$user" = 10001:10001 ] || fail "the image runs as '$user', not bondbot (10001:10001)"
case "$health" in *bot.health*) ;; *) fail "no HEALTHCHECK on the health endpoint (got: $health)" ;; esac
echo "image: user $user, $((size / 1000000)) MB, healthcheck $health" >&2

# Inside the image, as its user: the packages import, the data directory is bondbot's, mode 0700.
# buildah run with chroot isolation works where an OCI runtime is refused (podman run here fails
# with "setrlimit RLIMIT_NOFILE: Operation not permitted"); podman run is the fallback.
check='import bot.health, incidents, os, pwd; d="/var/lib/bondbot"; s=os.stat(d); print(pwd.getpwuid(os.getuid()).pw_name, pwd.getpwuid(s.st_uid).pw_name, oct(s.st_mode & 0o777))'
out=
if command -v buildah >/dev/null; then
  ctr=$(buildah from --quiet "$tag")
  out=$(buildah run --isolation chroot --user 10001:10001 "$ctr" -- /opt/bondbot/venv/bin/python -c "$check" 2>&1) || out="FAILED: $out"
  buildah rm "$ctr" >/dev/null
elif ! out=$(podman run --rm --entrypoint /opt/bondbot/venv/bin/python "$tag" -c "$check" 2>&1); then
  echo "run: not checked: podman run is refused on this machine: $(echo "$out" | tail -1)" >&2
  out=skipped
fi
if [ "$out" != skipped ]; then
  [ "$out" = "bondbot bondbot 0o700" ] || fail "in the image: expected 'bondbot bondbot 0o700' (user, data dir owner, mode), got '$out'"
  echo "run: ok (user, data directory owner, mode: $out)" >&2
fi
echo "built $tag"
