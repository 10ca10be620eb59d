#!/usr/bin/env bash
# Download the wheels the GPU kit carries (bench/gpu/wheels.txt), for the GPU machine
# (CPython 3.12, manylinux x86-64) into .whl/ and, for bench/gpu/simulate.sh, the same
# versions for this machine's CPython 3.11 into .whl-sim/. Both folders are git-ignored;
# only .whl/ travels (name it in the device call's carry). Needs registry access.
# Last line: carry_mib=<n>, the size of .whl/; exits 1 when it is over 56 (the tree and
# the wheels must stay under the GPU machine's 64 MiB per call).
# Usage: bash bench/gpu/prepare.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
LIMIT_MIB=56
PYTHON=${PYTHON:-python3}
LIST=${KIT_WHEEL_LIST:-bench/gpu/wheels.txt}
# One NAME==VERSION per line; a trailing "# replaces ..." marks a deliberate replacement.
mapfile -t LINES < <(grep -Ev '^\s*(#|$)' "$LIST")
WANT=()
for line in "${LINES[@]}"; do
  spec=${line%%#*}
  spec=${spec//[[:space:]]/}
  WANT+=("$spec")
  # A carried wheel of a name the GPU machine already has shadows its copy: only on purpose.
  name=$(echo "${spec%%==*}" | tr 'A-Z_.' 'a-z--')
  if grep -Eiq "^${name}(==|$)" <(sed 's/[_.]/-/g' bench/gpu/machine-packages.txt) \
      && [[ "$line" != *"# replaces"* ]]; then
    echo "prepare.sh: $spec is preinstalled on the GPU machine; drop it or mark it '# replaces'" >&2
    exit 1
  fi
done

# pip matches manylinux tags exactly, so every tag a wanted wheel may carry is named.
PLATFORMS=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
  PLATFORMS+=(--platform "${tag}_x86_64")
done

fetch() {  # fetch DIR PYVER: exactly the listed wheels, nothing else left in DIR
  local dir=$1 pyver=$2
  mkdir -p "$dir"
  find "$dir" -maxdepth 1 -type f -name '*.whl' -delete
  "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version "$pyver" --implementation cp "${PLATFORMS[@]}" -d "$dir" "${WANT[@]}"
  local got
  got=$(find "$dir" -maxdepth 1 -type f -name '*.whl' | wc -l)
  if [ "$got" -ne "${#WANT[@]}" ]; then
    echo "prepare.sh: $dir holds $got wheels, $LIST names ${#WANT[@]}" >&2
    exit 1
  fi
}

fetch .whl 3.12
fetch .whl-sim 3.11
ls -l .whl/*.whl | awk '{printf "%10d  %s\n", $5, $9}'
bytes=$(find .whl -maxdepth 1 -type f -name '*.whl' -printf '%s\n' | awk '{s += $1} END {print s}')
mib=$(( (bytes + 1048575) / 1048576 ))
if [ "$mib" -gt "$LIMIT_MIB" ]; then
  echo "prepare.sh: .whl/ is ${mib} MiB, over the ${LIMIT_MIB} MiB the tree leaves room for" >&2
  echo "carry_mib=$mib"
  exit 1
fi
echo "carry_mib=$mib"
