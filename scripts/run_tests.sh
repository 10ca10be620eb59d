#!/usr/bin/env bash
# Set up everything the tests use (venv, Debian chromium, the glTF validator)
# and run the whole suite, slow tests included. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
  else
    echo "chromium is missing: install Debian's 'chromium' package (browser test will fail in CI)" >&2
  fi
fi
if [ -f tests/js/package-lock.json ]; then
  npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
fi
exec .venv/bin/python -m pytest -m "slow or not slow" "$@"
