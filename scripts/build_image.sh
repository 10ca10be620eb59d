#!/usr/bin/env bash
# Build the worker image: the one documented way (README, "Deployment").
#
#   bash scripts/build_image.sh [-t TAG] [any other `docker build` flags]
#
# TAG defaults to $HY3D_IMAGE_TAG, else hy3d-worker:local. The script never
# pushes. It needs a running Docker engine.
#
# The Dockerfile's base (python:3.11.7-slim-bookworm) comes from Docker Hub.
# When it is neither present nor pullable (a machine that reaches only the
# package registries), the script builds a STAND-IN under the same tag from
# Debian's own packages: debootstrap --variant=minbase bookworm, plus python3,
# pip and venv, the host's CA bundle, without Debian's EXTERNALLY-MANAGED
# marker (the real image has none). It says so loudly. The stand-in runs
# Python 3.11.2, not 3.11.7, and is labelled org.hy3d.base-standin=true; push
# nothing built on it. HY3D_DEBIAN_MIRROR overrides the mirror it uses.
set -euo pipefail
cd "$(dirname "$0")/.."

tag="${HY3D_IMAGE_TAG:-hy3d-worker:local}"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -t|--tag) tag="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done

die() { echo "build_image: $*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || die "docker is not installed (Debian: apt-get install docker.io)."
docker info >/dev/null 2>&1 || die "no Docker engine answers (start it: dockerd &, or systemctl start docker)."

base="$(awk 'toupper($1) == "FROM" { print $2; exit }' Dockerfile)"
[ -n "$base" ] || die "no FROM line in Dockerfile."

debian_mirror() {
  if [ -n "${HY3D_DEBIAN_MIRROR:-}" ]; then echo "$HY3D_DEBIAN_MIRROR"; return; fi
  # The host's own mirror (deb822 "URIs:" or one-line "deb URL suite"), not its security archive.
  local url
  url="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | awk '$1 == "URIs:" { print $2 } $1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; break } }' \
    | grep -v -- '-security' | head -n 1 || true)"
  echo "${url:-http://deb.debian.org/debian}"
}

make_standin() {
  [ "$(id -u)" = 0 ] || die "the stand-in base needs root (debootstrap and chroot)."
  if ! command -v debootstrap >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "debootstrap is missing and there is no apt-get to install it."
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
  fi
  local mirror rootfs
  mirror="$(debian_mirror)"
  rootfs="$(mktemp -d /var/tmp/hy3d-base.XXXXXX)"
  trap 'rm -rf "$rootfs"' RETURN
  echo "build_image: debootstrap bookworm from $mirror into $rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
  # What the real image has that minbase lacks: Python with pip and venv, HTTPS
  # roots, and Debian's docker-clean apt settings (no .deb cache left in layers).
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
  chroot "$rootfs" apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive chroot "$rootfs" apt-get install -y -q --no-install-recommends \
    python3 python3-pip python3-venv ca-certificates >/dev/null
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/lib/python3.*/EXTERNALLY-MANAGED
  # Builds fetch wheels over HTTPS; trust what the host trusts (it may sit behind a proxy with its own root).
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  fi
  ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
  ln -sf /usr/bin/pip3 "$rootfs/usr/local/bin/pip"
  : >"$rootfs/etc/resolv.conf"
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'LABEL org.hy3d.base-standin=true' \
    --change 'CMD ["python3"]' \
    - "$base" >/dev/null
}

if docker image inspect "$base" >/dev/null 2>&1; then
  echo "build_image: base $base is present"
elif docker pull "$base" >/dev/null 2>&1; then
  echo "build_image: pulled base $base"
else
  cat >&2 <<EOF
build_image: ***************************************************************
build_image: * $base cannot be pulled here.
build_image: * Building a STAND-IN under that tag from Debian bookworm packages
build_image: * (debootstrap; Python 3.11.2). Images built on it are for testing:
build_image: * build on a machine that can pull the real base before you push.
build_image: ***************************************************************
EOF
  make_standin
fi
if [ "$(docker image inspect -f '{{index .Config.Labels "org.hy3d.base-standin"}}' "$base" 2>/dev/null)" = true ]; then
  echo "build_image: NOTE: $base is the debootstrap stand-in, not the Docker Hub image." >&2
fi

# BuildKit built it in 4 min against the legacy builder's 6, and the two keep
# separate layer caches. Clients before 23.0 have BuildKit built in; later
# ones need the buildx plugin and fall back to the legacy builder without it.
# So when the first docker on PATH lacks buildx, an older client beside it
# (Debian's docker.io, say) builds instead.
builder=docker
if [ -z "${DOCKER_BUILDKIT:-}" ] && ! docker buildx version >/dev/null 2>&1; then
  export DOCKER_BUILDKIT=0
  for client in $(type -ap docker); do
    major="$("$client" version -f '{{.Client.Version}}' 2>/dev/null | cut -d. -f1 || true)"
    if [ -n "$major" ] && [ "$major" -lt 23 ] 2>/dev/null; then
      builder="$client"
      export DOCKER_BUILDKIT=1
      break
    fi
  done
fi

started=$(date +%s)
"$builder" build -t "$tag" ${args[@]+"${args[@]}"} .
echo "build_image: built $tag in $(( $(date +%s) - started )) s ($(docker image inspect -f '{{.Size}}' "$tag") bytes)"
