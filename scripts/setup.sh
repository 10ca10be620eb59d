#!/usr/bin/env bash
# Create or update .venv with the pinned torch and the runtime requirements.
# Usage: bash scripts/setup.sh [--dev]   (--dev adds the test dependencies)
# Idempotent: re-running it only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
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
