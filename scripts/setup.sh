#!/usr/bin/env bash
# Create or update .venv with the pinned torch and the runtime requirements.
# Usage: bash scripts/setup.sh [--dev]   (--dev adds the test dependencies)
# Idempotent: re-running it only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# A venv left without pip (e.g. created where ensurepip was missing) is rebuilt.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  rm -rf .venv
  if ! "$PYTHON" -m venv .venv; then
    # Debian's python3 ships venv/ensurepip separately.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      apt-get update -q
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv
      rm -rf .venv
      "$PYTHON" -m venv .venv
    else
      echo "python3 -m venv failed: install your distribution's python3-venv package" >&2
      exit 1
    fi
  fi
fi
# System libraries the wheels load (the Dockerfile installs the same):
# libgl1 and libglib2.0-0 for opencv-python, libgomp1 for onnxruntime and numba.
missing=()
for pkg in libgl1 libglib2.0-0 libgomp1; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ] && command -v dpkg-query >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  else
    echo "missing system packages: ${missing[*]} (install them, e.g. sudo apt-get install ${missing[*]})" >&2
  fi
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip
# torch first, pinned: on this project's machines pip takes it from local disk;
# anything that pulled a newer torch would download several GB.
"${PIP[@]}" install -q -c constraints.txt torch torchvision
reqs=(-r requirements.txt)
if [ "${1:-}" = "--dev" ]; then
  reqs+=(-r requirements-dev.txt)
fi
"${PIP[@]}" install -q -c constraints.txt "${reqs[@]}"
