#!/usr/bin/env bash
# Builds the images of katotune's KATO-shaped test stack from Debian packages and PyPI,
# with no container registry:
#
#   katotune-test-redis:latest       Debian's redis-server (runs `redis-server [CONFIG]`)
#   katotune-test-clickhouse:latest  the real ClickHouse engine (PyPI chdb-core) behind
#                                    ClickHouse's HTTP interface on 8123; runs the *.sql
#                                    of /docker-entrypoint-initdb.d on first start and
#                                    keeps its data in /var/lib/clickhouse
#
# Each image is a Debian bookworm minbase root filesystem (debootstrap) imported into
# Docker. An image already present with the label io.katotune.test=true is reused;
# `--rebuild` builds both again. Needs root (debootstrap, chroot), docker, debootstrap,
# and network to the Debian mirror ($DEBIAN_MIRROR) and PyPI.
#
# Usage: scripts/test-images.sh [--rebuild]
set -euo pipefail

SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CHDB_CORE=26.9.0
REDIS_IMAGE=katotune-test-redis:latest
CLICKHOUSE_IMAGE=katotune-test-clickhouse:latest
LABEL=io.katotune.test
HERE=$(cd "$(dirname "$0")" && pwd)
# The ClickHouse HTTP front lives in the shared tools beside the clone (../shared), not
# in this repository; KATOTUNE_SHARED points elsewhere.
SHARED=${KATOTUNE_SHARED:-$HERE/../../shared}
ASSETS=$SHARED/tools/chdb-http
PATH_ENV="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

say() { echo "test-images: $*"; }
die() { echo "test-images: error: $*" >&2; exit 1; }

rebuild=false
case "${1:-}" in
  "") ;;
  --rebuild) rebuild=true ;;
  *) die "unknown argument '$1' (usage: $0 [--rebuild])" ;;
esac

# "katotune" when the image exists and is labelled as katotune's test image, "foreign"
# when a different image holds the tag, "" when there is none.
image_owner() {
  local label
  label=$(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$1" 2>/dev/null) || return 0
  if [ "$label" = "true" ]; then echo katotune; else echo foreign; fi
}

# Whether to build TAG: not when it is present (and not --rebuild); refuses to replace
# an image that is not katotune's.
needs_build() {
  case "$(image_owner "$1")" in
    katotune)
      if $rebuild; then say "$1: present, rebuilding (--rebuild)"; return 0; fi
      say "$1: present ($(image_size "$1")), reused"; return 1 ;;
    foreign)
      die "$1 exists but is not labelled $LABEL=true, so it is not katotune's test image; remove or retag it (docker rmi $1) and run again" ;;
    *) return 0 ;;
  esac
}

image_size() {
  docker image inspect -f '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1 / 1000000}'
}

# bootstrap ROOT PACKAGES: a minbase Debian root filesystem with PACKAGES installed.
bootstrap() {
  local root=$1 packages=$2 log=$WORK/debootstrap-$(basename "$1").log
  say "debootstrap $SUITE minbase + $packages from $MIRROR (log: $log)"
  if ! debootstrap --variant=minbase --include="$packages" "$SUITE" "$root" "$MIRROR" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "debootstrap failed for $packages (the last lines of its log are above)"
  fi
  mkdir -p "$root/data"
}

# Removes what a running container never reads: package caches and lists, docs, man
# pages and translations.
trim() {
  rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/* \
    "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/info/* \
    "$1"/usr/share/locale/* "$1"/var/log/*.log "$1"/var/cache/debconf/*-old
}

# import ROOT TAG CHANGE...: the root filesystem as a one-layer image.
import_root() {
  local root=$1 tag=$2
  shift 2
  local args=(--change "LABEL $LABEL=true" --change "ENV $PATH_ENV")
  for change in "$@"; do args+=(--change "$change"); done
  local old
  old=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
  say "$tag: importing $(du -sh "$root" | cut -f1) root filesystem"
  tar --numeric-owner -C "$root" -cf - . | docker import "${args[@]}" - "$tag" >/dev/null
  rm -rf "$root"
  # A rebuild leaves the previous image untagged: remove it, unless a container uses it.
  if [ -n "$old" ] && [ "$old" != "$(docker image inspect -f '{{.Id}}' "$tag")" ]; then
    docker rmi "$old" >/dev/null 2>&1 || say "$tag: the previous image $old is still in use; kept"
  fi
}

build_redis() {
  local started=$SECONDS root=$WORK/redis
  bootstrap "$root" redis-server
  trim "$root"
  chroot "$root" redis-server --version >/dev/null || die "redis-server does not run in the new root filesystem"
  import_root "$root" "$REDIS_IMAGE" \
    'WORKDIR /data' 'EXPOSE 6379' 'CMD ["redis-server", "--protected-mode", "no"]'
  say "$REDIS_IMAGE: built in $((SECONDS - started)) s, $(image_size "$REDIS_IMAGE")"
}

# pandas and pyarrow (chdb-core's declared dependencies, about 300 MB) are used only by
# chdb.dataframe, which the HTTP front never imports: the venv installs chdb-core
# without them. The stores test proves the engine answers through the image.
build_clickhouse() {
  local started=$SECONDS root=$WORK/clickhouse ca
  bootstrap "$root" python3,python3-venv
  # pip inside the chroot trusts the same certificate authorities as this machine
  # (a proxy's own CA included); the copy is removed before the image is made.
  ca=${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}
  cp "$ca" "$root/tmp/build-ca.crt"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  say "venv /opt/chdb: pip install chdb-core==$CHDB_CORE lz4 zstandard"
  chroot "$root" /usr/bin/python3 -m venv /opt/chdb
  chroot "$root" /usr/bin/env -i "$PATH_ENV" HOME=/root PIP_CERT=/tmp/build-ca.crt \
    PIP_DEFAULT_TIMEOUT=180 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    /opt/chdb/bin/pip install --no-cache-dir --quiet --no-deps \
    "chdb-core==$CHDB_CORE" lz4 zstandard || die "pip could not install chdb-core==$CHDB_CORE"
  rm -f "$root/tmp/build-ca.crt"
  : >"$root/etc/resolv.conf"
  install -D -m 0755 "$ASSETS/clickhouse-http.py" "$root/opt/chdb-http/clickhouse-http.py"
  install -D -m 0755 "$ASSETS/clickhouse-client" "$root/usr/local/bin/clickhouse-client"
  mkdir -p "$root/docker-entrypoint-initdb.d" "$root/var/lib/clickhouse"
  # (importing chdb outside a container logs a harmless cgroups complaint: kept quiet)
  chroot "$root" /opt/chdb/bin/python -c 'import chdb, lz4.frame, zstandard' 2>"$WORK/import.log" \
    || { cat "$WORK/import.log" >&2; die "the venv cannot import chdb, lz4 and zstandard"; }
  trim "$root"
  import_root "$root" "$CLICKHOUSE_IMAGE" \
    "LABEL $LABEL.chdb-core=$CHDB_CORE" 'EXPOSE 8123' \
    'CMD ["/opt/chdb/bin/python", "/opt/chdb-http/clickhouse-http.py", "--host", "0.0.0.0", "--port", "8123"]'
  say "$CLICKHOUSE_IMAGE: built in $((SECONDS - started)) s, $(image_size "$CLICKHOUSE_IMAGE")"
}

command -v docker >/dev/null || die "docker is missing: install docker.io (or Docker Engine)"
docker info >/dev/null 2>&1 || die "no Docker engine answers (is dockerd running, may this user use it?)"

build=()
needs_build "$REDIS_IMAGE" && build+=(redis)
needs_build "$CLICKHOUSE_IMAGE" && build+=(clickhouse)
if [ ${#build[@]} -eq 0 ]; then
  say "nothing to build"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || die "building needs root (debootstrap and chroot): run it with sudo"
command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap"
[ -f "$ASSETS/clickhouse-http.py" ] || die "$ASSETS/clickhouse-http.py is missing: the shared tools must be beside the clone (../shared) or KATOTUNE_SHARED must name them"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/katotune-test-images.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
total=$SECONDS
# Both builds run at once: most of their time is downloading and unpacking packages.
pids=()
for image in "${build[@]}"; do
  "build_$image" &
  pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do
  wait "$pid" || failed=1
done
[ "$failed" -eq 0 ] || die "an image build failed (its messages are above)"
say "done in $((SECONDS - total)) s"
