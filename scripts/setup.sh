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
