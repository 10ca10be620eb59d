#!/usr/bin/env bash
# Prove the GPU kit here, before a GPU machine is lent: build a throwaway venv holding
# only what the GPU machine has (this machine's torch, linked in; the GPU machine's other
# preinstalled packages that the kit imports, from the registry: sim-requirements.txt),
# check that it holds no name the GPU machine lacks, then install the prepared cp311
# wheels the way run.sh installs the cp312 ones and run `run.sh --dry-run` in it.
# Last line: simulated=ok carry_mib=<n>. Needs registry access (prepare.sh, the venv).
# Usage: bash bench/gpu/simulate.sh [--keep]   (--keep leaves the venv and prints where)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
HOST_PY=${HOST_PY:-.venv/bin/python}
keep=0
[ "${1:-}" = "--keep" ] && keep=1

prep_log=$(mktemp)
if ! carry=$(bash bench/gpu/prepare.sh 2>"$prep_log" | tail -n 1) || [[ "$carry" != carry_mib=* ]]; then
  grep -v 'is ignored: it is neither a file nor a directory' "$prep_log" >&2
  echo "simulate.sh: prepare.sh failed: $carry" >&2
  rm -f "$prep_log"
  exit 1
fi
rm -f "$prep_log"
echo "$carry"

SIM=$(mktemp -d "${TMPDIR:-/tmp}/gpu-kit-sim.XXXXXX")
cleanup() { if [ "$keep" = 1 ]; then echo "kept $SIM"; else rm -rf "$SIM"; fi; }
trap cleanup EXIT

# The venv: the same interpreter as the project's venv, without its packages.
base=$("$HOST_PY" -c 'import sys; print(sys._base_executable)')
"$base" -m venv "$SIM/venv"
PY=$SIM/venv/bin/python
site=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

# torch as installed here: torch, torchvision, triton and the CUDA runtime packages
# (all preinstalled on the GPU machine) are linked from the project's venv, not copied.
"$HOST_PY" - "$SIM/torch" <<'PY'
import importlib.metadata as md, os, sys
layer = sys.argv[1]
os.makedirs(layer)
keep = ("torch", "torchvision", "triton", "nvidia-", "cuda-")
for dist in md.distributions():
    name = dist.metadata["Name"].lower().replace("_", "-")
    if not (name in keep[:3] or name.startswith(keep[3:])):
        continue
    base = str(dist.locate_file(""))
    tops = {f.parts[0] for f in dist.files or () if not f.parts[0].startswith("..")}
    for top in tops:
        src, dst = os.path.join(base, top), os.path.join(layer, top)
        if os.path.exists(src) and not os.path.lexists(dst) and top != "__pycache__":
            os.symlink(src, dst)
PY
echo "$SIM/torch" > "$site/gpu-kit-torch.pth"

# --no-compile: byte-compiling every file of scipy, numba & co. took longer than installing them.
"$PY" -m pip install -q --disable-pip-version-check --no-compile -c constraints.txt -r bench/gpu/sim-requirements.txt
echo "venv built in ${SECONDS} s"

# Nothing the GPU machine lacks may be in the venv.
"$PY" - bench/gpu/machine-packages.txt <<'PY'
import importlib.metadata as md, re, sys
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
allowed = {norm(line.split("==")[0].strip()) for line in open(sys.argv[1]) if line.strip() and not line.startswith("#")}
extra = sorted({norm(d.metadata["Name"]) for d in md.distributions()} - allowed)
if extra:
    sys.exit(f"simulate.sh: the venv holds packages the GPU machine lacks: {', '.join(extra)}")
for missing in ("hy3dgen", "diffusers", "mmgp", "trimesh", "vtkmodules", "pymeshlab", "xatlas", "rembg"):
    try:
        __import__(missing)
    except ImportError:
        continue
    sys.exit(f"simulate.sh: {missing} imports before the kit installed anything")
import torch, transformers
print(f"venv: torch {torch.__version__}, transformers {transformers.__version__}, "
      f"{len(list(md.distributions()))} distributions, all preinstalled on the GPU machine")
PY

# The transformers evidence, from a test: load after `import mmgp.offload` with the GPU
# machine's own transformers (the carried wheels less the ones marked '# replaces'), raw
# and through the backends; the dry run below then loads everything after mmgp with the
# carried one (see wheels.txt for the choice).
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} NUMBA_NUM_THREADS=${NUMBA_NUM_THREADS:-1}
replaced=$(grep -E '#\s*replaces' bench/gpu/wheels.txt | sed -E 's/==.*//; s/[-_.]+/_/g' | tr 'A-Z' 'a-z')
own=()
for whl in .whl-sim/*.whl; do
  dist=$(basename "$whl" | cut -d- -f1 | tr 'A-Z' 'a-z')
  grep -qx "$dist" <<<"$replaced" || own+=("$whl")
done
"$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --target "$SIM/site-own" "${own[@]}"
check() { PYTHONPATH="$ROOT:$1:$ROOT/bench/gpu/standins" "$PY" bench/gpu/check_transformers.py 2>/dev/null | tail -n 1; }
own_result=$(check "$SIM/site-own") || true
echo "decision: with the GPU machine's transformers: $own_result"

# The kit, as on the GPU machine, on the cp311 wheels of the same versions.
export OUT=$SIM/out
mkdir -p "$OUT"
# A roomy budget: on a loaded 2-core machine the CPU pass must not lose rows to it.
PYTHON=$PY KIT_WHEELS=.whl-sim KIT_SITE=$SIM/site bash bench/gpu/run.sh --dry-run --budget-s 1800
for f in shape.json texture.json profile.json; do
  [ -s "$OUT/$f" ] || { echo "simulate.sh: run.sh wrote no $f" >&2; exit 1; }
done
"$PY" - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
failed = [row for f in ("shape.json", "texture.json", "profile.json") for row in json.loads((out / f).read_text())["rows"]
          if row.get("error") or row.get("skipped")]
if failed:
    sys.exit(f"simulate.sh: {len(failed)} dry-run rows did not complete: {failed}")
PY
echo "decision: with the carried wheels the dry run loaded every checkpoint after importing mmgp"
echo "simulate.sh: ${SECONDS} s in all"
echo "simulated=ok $carry"
