#!/bin/bash
# ring_bench beside PyTorch context parallel, on this machine's GPUs.
#   [RING_BENCH_LAUNCH=processes] bench/ring_bench.sh DIR OUT [ring_bench flags]
# DIR holds ring_bench, torch_single_gpu.py and torch_cp_bench.py (e.g.
# .dev/ on the device); OUT receives torch_single.txt, ring_bench.txt,
# torch_cp.txt and calibration.txt. "theoretic" is the best single-GPU
# kernel on one rank's tokens: ours, PyTorch's flash or cuDNN.
set -u
dir="$1"; out="$2"; shift 2
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0
nvidia-smi --query-gpu=name,clocks.sm,clocks_throttle_reasons.active --format=csv > "$out/gpus.txt" 2>&1
# The shape flags, passed on to the PyTorch baselines.
shape=()
for a in "$@"; do
  case "$a" in --tokens=*|--heads=*|--kv_heads=*|--head_dim=*) shape+=("${a%%=*}" "${a#*=}") ;; esac
done
python3 "$dir/torch_single_gpu.py" "${shape[@]}" 2>&1 | tee "$out/torch_single.txt"
read -r torch_ms torch_dense torch_varlen < <(tail -1 "$out/torch_single.txt")
torch_flags=()
[[ "$torch_ms" == *,*,*,* ]] && torch_flags=(--torch_single_ms="$torch_ms"
                                             --torch_single_names="$torch_dense,$torch_varlen")
# RING_BENCH_LAUNCH=processes: one ring_bench process per GPU under
# torchrun (--comm=nccl_env); otherwise one process drives every GPU.
if [[ "${RING_BENCH_LAUNCH:-}" == processes ]]; then
  rm -f "$out/nccl.id"
  torchrun --nproc_per_node="$(nvidia-smi -L | wc -l)" --no-python "$dir/ring_bench" \
    --comm=nccl_env --nccl_id_file="$out/nccl.id" --calibration_out="$out/calibration.txt" \
    "${torch_flags[@]}" "$@" 2>&1 | grep -v "^W[0-9]" | tee "$out/ring_bench.txt"
else
  "$dir/ring_bench" --calibration_out="$out/calibration.txt" "${torch_flags[@]}" "$@" \
    | tee "$out/ring_bench.txt"
fi
world=$(nvidia-smi -L | wc -l)
# ringattn's zigzag forward and forward+backward ms, for the ratio: only
# when ring_bench ran one rank per GPU, as torchrun does here.
ours=$(awk '$1 == "zigzag" && $2 == "fwd" { f = $(NF-2) } $1 == "zigzag" && $2 == "fwd+bwd" { b = $(NF-2) }
            END { if (f && b) print f "," b }' "$out/ring_bench.txt")
ranks=$(awk '$1 == "ring_bench:" { print $2; exit }' "$out/ring_bench.txt")
[ "$ranks" = "$world" ] || ours=""
cp_shape=()
for a in "$@"; do
  case "$a" in --tokens=*|--heads=*|--head_dim=*) cp_shape+=("${a%%=*}" "${a#*=}") ;; esac
done
torchrun --nproc_per_node="$world" "$dir/torch_cp_bench.py" "${cp_shape[@]}" ${ours:+--ours "$ours"} \
  2>&1 | grep -v "^W[0-9]" | tee "$out/torch_cp.txt"
