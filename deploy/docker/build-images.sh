#!/usr/bin/env bash
# Builds every image of docker-compose.yml without an image registry: a Debian bookworm base
# made with debootstrap and `docker import`ed, then Postgres, Redis, an S3 server (SeaweedFS)
# and an SMTP sink (aiosmtpd) from Debian's and the Python registry's packages on it, and the
# app image from release binaries built on this machine.
#
#   deploy/docker/build-images.sh            build what is missing (the base once; the rest
#                                            again, which Docker's layer cache makes quick)
#   REBUILD_BASE=1 deploy/docker/build-images.sh    debootstrap the base again (updates)
#
# Images: taquilla-base:bookworm, taquilla-postgres:local, taquilla-redis:local,
# taquilla-s3:local, taquilla-smtp:local, taquilla:local. Needs root (debootstrap), a running
# Docker engine, debootstrap (apt-get install debootstrap) and cargo unless TAQUILLA_BINARIES
# names a directory that already holds release builds of `api` and `worker`.
# DEBIAN_MIRROR: the Debian mirror for debootstrap; unset = the one this machine's apt uses.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
BASE_IMAGE=taquilla-base:bookworm
log() { printf '[images] %s\n' "$*" >&2; }
die() {
  printf '[images] error: %s\n' "$*" >&2
  exit 1
}

docker info >/dev/null 2>&1 || die "no Docker engine answers (start dockerd, see README 'Docker')"
# The classic builder: it uses local images as they are (BuildKit may try a registry for
# them) and needs no buildx plugin.
export DOCKER_BUILDKIT=0

# This machine's Debian mirror, read from apt's sources (deb822 or one-line format).
apt_mirror() {
  local f line
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    [ -r "$f" ] || continue
    while read -r line; do
      case $line in
        URIs:*/debian | URIs:*/debian/) printf '%s\n' "${line#URIs: }"; return 0 ;;
        deb\ http*/debian\ bookworm\ * | deb\ http*/debian/\ bookworm\ *)
          line=${line#deb }
          printf '%s\n' "${line%% *}"
          return 0
          ;;
      esac
    done <"$f"
  done
  return 1
}

build_base() {
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed: apt-get install debootstrap"
  [ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
  local dir mirror
  mirror=${DEBIAN_MIRROR:-$(apt_mirror || true)}
  dir=$(mktemp -d "${TMPDIR:-/tmp}/taquilla-rootfs.XXXXXX")
  # shellcheck disable=SC2064 # the directory is known now
  trap "rm -rf '$dir'" EXIT
  log "debootstrap bookworm (minbase) into $dir${mirror:+ from $mirror}"
  debootstrap --variant=minbase bookworm "$dir/rootfs" ${mirror:+"$mirror"} >"$dir/debootstrap.log" 2>&1 ||
    { tail -n 20 "$dir/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
  # Updates and security fixes as well, when this machine's apt knows where they are.
  if [ -r /etc/apt/sources.list.d/debian.sources ] && grep -q bookworm /etc/apt/sources.list.d/debian.sources; then
    cp /etc/apt/sources.list.d/debian.sources "$dir/rootfs/etc/apt/sources.list.d/debian.sources"
    rm -f "$dir/rootfs/etc/apt/sources.list"
  fi
  rm -rf "$dir/rootfs/var/cache/apt/archives/"*.deb "$dir/rootfs/var/lib/apt/lists/"*
  log "docker import → $BASE_IMAGE-raw"
  tar -C "$dir/rootfs" -c . | docker import - "$BASE_IMAGE-raw" >/dev/null
  rm -rf "$dir"
  trap - EXIT
  log "upgrading the base's packages → $BASE_IMAGE"
  docker build --network host -t "$BASE_IMAGE" - <<EOF
FROM $BASE_IMAGE-raw
ENV LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get -y upgrade && rm -rf /var/lib/apt/lists/*
CMD ["bash"]
EOF
  docker rmi "$BASE_IMAGE-raw" >/dev/null
}

if [ "${REBUILD_BASE:-0}" = 1 ] || ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  build_base
else
  log "$BASE_IMAGE exists (REBUILD_BASE=1 to make it again)"
fi

# The Python packages of the S3 server and the SMTP sink are downloaded here, with this
# machine's pip settings (its index, proxy and certificates), and installed in the image
# without network: the pinned requirement is read from each Dockerfile.
wheels_for() {
  local svc=$1 dest=$2 req
  req=$(grep -o "'[A-Za-z0-9_.-]*==[0-9][A-Za-z0-9.]*'" "deploy/docker/$svc/Dockerfile" | tr -d "'")
  [ -n "$req" ] || return 0
  # shellcheck source=scripts/lib/services.sh
  source scripts/lib/services.sh
  ensure_tools_venv >&2 || die "no tools venv for pip (scripts/lib/services.sh)"
  log "pip download $req"
  "$TAQUILLA_TOOLS_VENV/bin/pip" download -q --only-binary=:all: -d "$dest" "$req" >&2 ||
    die "pip download $req failed"
}

for svc in postgres redis s3 smtp; do
  ctx=$(mktemp -d "${TMPDIR:-/tmp}/taquilla-$svc.XXXXXX")
  cp -r "deploy/docker/$svc/." "$ctx/"
  [ -d "$ctx/wheels" ] && wheels_for "$svc" "$ctx/wheels"
  log "building taquilla-$svc:local"
  docker build -q --network host --build-arg "BASE=$BASE_IMAGE" -t "taquilla-$svc:local" "$ctx" >/dev/null ||
    { rm -rf "$ctx"; die "docker build of taquilla-$svc:local failed"; }
  rm -rf "$ctx"
done

bin=${TAQUILLA_BINARIES:-}
if [ -z "$bin" ]; then
  command -v cargo >/dev/null 2>&1 || PATH="${HOME:-/root}/.cargo/bin:$PATH"
  command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust, or set TAQUILLA_BINARIES)"
  target=${CARGO_TARGET_DIR:-${HOME:-$ROOT}/.cache/taquilla/target}
  log "cargo build --release -p taquilla-api -p taquilla-worker (target: $target)"
  CARGO_TARGET_DIR=$target cargo build --release --quiet -p taquilla-api -p taquilla-worker
  bin=$target/release
fi
for b in api worker; do [ -x "$bin/$b" ] || die "$bin/$b is missing"; done

ctx=$(mktemp -d "${TMPDIR:-/tmp}/taquilla-app.XXXXXX")
cp deploy/docker/app/Dockerfile deploy/docker/app/setup.sh "$bin/api" "$bin/worker" "$ctx/"
# The release profile keeps debug info (for profiling, BENCHMARKS.md): ~150 MB per binary.
# The image keeps the symbols (backtraces) without it.
if command -v strip >/dev/null 2>&1; then strip --strip-debug "$ctx/api" "$ctx/worker"; fi
log "building taquilla:local from $bin"
docker build -q --network host --build-arg "BASE=$BASE_IMAGE" -t taquilla:local "$ctx" >/dev/null ||
  { rm -rf "$ctx"; die "docker build of taquilla:local failed"; }
rm -rf "$ctx"
log "images ready: $BASE_IMAGE taquilla-{postgres,redis,s3,smtp}:local taquilla:local"
