#!/usr/bin/env bash
# Set up everything the tests use (venv, Debian chromium, the glTF validator),
# run the linters (scripts/lint.sh) and then the whole suite, slow tests included. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
# System tools the tests drive: Debian's chromium (browser test) and Node.js
# with npm (the Khronos glTF validator).
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v npm >/dev/null 2>&1 || missing+=(nodejs)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    # Some nodejs builds bundle npm, Debian's does not.
    command -v npm >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm
  else
    echo "missing system packages: ${missing[*]} (install them; the browser and validator tests need them)" >&2
  fi
fi
if command -v npm >/dev/null 2>&1; then
  npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
fi
# Lint, format and type checks first (pyproject.toml): a finding fails the run.
bash scripts/lint.sh
# Every test: fast, slow (browser included) and docker (tests/test_image.py,
# which skips with its reason when no Docker engine can be started).
exec .venv/bin/python -m pytest -m "slow or not slow or docker" "$@"
