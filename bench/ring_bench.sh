#!/bin/bash
# ring_bench beside PyTorch context parallel, on this machine's GPUs.
#   bench/ring_bench.sh DIR OUT [ring_bench flags]
# DIR holds ring_bench and torch_cp_bench.py (e.g. .dev/ on the device);
# OUT receives ring_bench.txt, torch_cp.txt and calibration.txt.
set -u
dir="$1"; out="$2"; shift 2
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0
nvidia-smi --query-gpu=name,clocks.sm,clocks_throttle_reasons.active --format=csv > "$out/gpus.txt" 2>&1
"$dir/ring_bench" --calibration_out="$out/calibration.txt" "$@" | tee "$out/ring_bench.txt"
world=$(nvidia-smi -L | wc -l)
# ringattn's zigzag forward and forward+backward ms, for the ratio: only
# when ring_bench ran one rank per GPU, as torchrun does here.
ours=$(awk '$1 == "zigzag" && $2 == "fwd" { f = $(NF-2) } $1 == "zigzag" && $2 == "fwd+bwd" { b = $(NF-2) }
            END { if (f && b) print f "," b }' "$out/ring_bench.txt")
ranks=$(awk '$1 == "ring_bench:" { print $2; exit }' "$out/ring_bench.txt")
[ "$ranks" = "$world" ] || ours=""
torchrun --nproc_per_node="$world" "$dir/torch_cp_bench.py" ${ours:+--ours "$ours"} \
  2>&1 | grep -v "^W[0-9]" | tee "$out/torch_cp.txt"
