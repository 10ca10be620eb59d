#!/usr/bin/env bash
# The checks CI runs before the tests: ruff's lint rules, ruff's formatting and
# mypy, all configured in pyproject.toml. Needs the dev venv (scripts/setup.sh --dev).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
