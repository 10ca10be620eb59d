#!/usr/bin/env bash
# The GPU kit, as ONE command on the GPU machine (Python 3.12, torch preinstalled, no network):
# installs the carried wheels (.whl/, from bench/gpu/prepare.sh) with --target, puts them on
# PYTHONPATH (plus the pymeshlab stand-in where pymeshlab is absent), then runs
# bench/gpu/kit.py: random full-size checkpoints, every row of bench/gpu/plan.py that fits in
# --budget-s (default 450), both tables printed and written as JSON under $OUT.
# Usage: bash bench/gpu/run.sh [--budget-s N] [--dry-run] [--plan module:NAME]
# Environment: PYTHON (default python3), KIT_WHEELS (default .whl), KIT_SITE (install target).
set -uo pipefail
cd "$(dirname "$0")/../.."
started=$(date +%s.%N)
PYTHON=${PYTHON:-python3}
WHEELS=${KIT_WHEELS:-.whl}
SITE=${KIT_SITE:-${TMPDIR:-/tmp}/gpu-kit-site}
budget=450
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --budget-s) budget=${args[i + 1]:-450} ;;
    --budget-s=*) budget=${args[i]#*=} ;;
  esac
done

shopt -s nullglob
wheels=("$WHEELS"/*.whl)
if [ ${#wheels[@]} -eq 0 ]; then
  echo "run.sh: no wheels in $WHEELS: run 'bash bench/gpu/prepare.sh' first (and carry .whl)" >&2
  exit 1
fi
rm -rf "$SITE"
"$PYTHON" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --no-cache-dir \
  --upgrade --target "$SITE" "${wheels[@]}" || { echo "run.sh: installing $WHEELS failed" >&2; exit 1; }
# The tree first: a wheel that ships a top-level tests/ or bench/ must not shadow ours.
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
# hy3dgen.shapegen imports pymeshlab at module level; only its unused postprocessors need it.
if ! "$PYTHON" -c 'import pymeshlab' >/dev/null 2>&1; then
  export PYTHONPATH="$PYTHONPATH:$PWD/bench/gpu/standins"
  echo "pymeshlab: not installed; the kit's stand-in answers hy3dgen's import (its postprocessors are unused)"
fi
# Never reach for a network; keep caches and temporary files off the tree.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1
scratch=$(mktemp -d "${TMPDIR:-/tmp}/gpu-kit.XXXXXX")
export NUMBA_CACHE_DIR=$scratch/numba HF_MODULES_CACHE=$scratch/hf_modules HF_HOME=$scratch/hf TMPDIR=$scratch
OUT=${OUT:-$PWD/outputs/gpu-kit}
mkdir -p "$OUT"
# The kit stops itself before the budget; timeout is the last resort if it cannot.
timeout --kill-after=10 "$(awk -v b="$budget" 'BEGIN {print int(b) + 30}')" \
  "$PYTHON" -m bench.gpu.kit --out "$OUT" --started-at "$started" "$@" 2>&1 | tee "$OUT/kit.log"
rc=${PIPESTATUS[0]}
rm -rf "$scratch"
exit "$rc"
