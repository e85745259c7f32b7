#!/bin/bash
# The SASS of the kernels of one .cu file (sm_90a), to read offline what
# ptxas made of them: which registers stay live, where local memory
# (STL/LDL) is used, what a change moved. This machine's CUDA 13 has no
# cuobjdump or nvdisasm; Debian bookworm's non-free nvidia-cuda-toolkit
# (CUDA 11.8) has an nvdisasm that decodes sm_90a code (HGMMA, SYNCS,
# USETMAXREG included) once the cubin's ELF header carries the older
# encoding of the architecture, which this script writes.
#
#   bench/sass.sh cuda/flash/forward_warp_specialized_d128.cu [NAME_PART] > k.sass
#
# NAME_PART keeps only the functions whose mangled name contains it (e.g.
# ElementTypeE2ELi128E: the bf16 d128 instantiation). The first run
# downloads the package (84 MB) and keeps its nvdisasm (51 MB) in
# $RINGATTN_NVDISASM_DIR (default ~/.cache/ringattn/nvdisasm).
set -euo pipefail
cu="${1:?usage: bench/sass.sh FILE.cu [NAME_PART]}"
name_part="${2:-}"
dir="${RINGATTN_NVDISASM_DIR:-$HOME/.cache/ringattn/nvdisasm}"
nvdisasm="$dir/usr/bin/nvdisasm"
if [ ! -x "$nvdisasm" ]; then
  mkdir -p "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial"
  echo "deb http://deb.debian.org/debian bookworm non-free" > "$dir/apt/sources.list"
  opts=(-o "Dir::Etc::sourcelist=$dir/apt/sources.list" -o Dir::Etc::sourceparts=-
        -o "Dir::State::Lists=$dir/apt/lists" -o "Dir::Cache=$dir/apt/cache")
  apt-get "${opts[@]}" update > "$dir/apt/update.log" 2>&1 ||
    { cat "$dir/apt/update.log" >&2; exit 1; }
  (cd "$dir/apt" && apt-get "${opts[@]}" download nvidia-cuda-toolkit > /dev/null 2>&1 &&
     dpkg -x nvidia-cuda-toolkit_*.deb x)
  mkdir -p "$dir/usr/bin" && mv "$dir/apt/x/usr/bin/nvdisasm" "$nvdisasm" || true
  rm -rf "$dir/apt"
  [ -x "$nvdisasm" ] || { echo "bench/sass.sh: no nvdisasm in $dir" >&2; exit 1; }
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
nvcc -std=c++17 -O3 --expt-relaxed-constexpr -gencode=arch=compute_90a,code=sm_90a -I. \
  -cubin "$cu" -o "$tmp/k.cubin"
# CUDA 13 keeps the SM in bits 8-15 of e_flags (ELF ABI version 8); 11.8
# reads it from bits 0-7 and 16-23 (the virtual SM), with 64-bit addresses
# and the unified texture mode (0x500), ABI version 7.
python3 - "$tmp/k.cubin" <<'PY'
import struct
import sys

path = sys.argv[1]
elf = bytearray(open(path, "rb").read())
sm = (struct.unpack_from("<I", elf, 48)[0] >> 8) & 0xFF
struct.pack_into("<I", elf, 48, sm | 0x500 | (sm << 16))
elf[8] = 7
open(path, "wb").write(elf)
PY
"$nvdisasm" -c "$tmp/k.cubin" |
  awk -v part="$name_part" '/^\t\.section\t/ { keep = index($0, part) > 0 } keep || part == ""'
