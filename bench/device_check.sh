#!/usr/bin/env bash
# Every GPU test in one command, on a machine with GPUs but no Bazel: the
# test binaries built elsewhere (-c opt, static libstdc++) in BIN_DIR, the
# Python library in BIN_DIR/pylib (libringattn.so and the libraries ldd
# lists), this source tree for the Python scripts.
#   bench/device_check.sh BIN_DIR OUT_DIR
# Runs, each when its binary is there: flash_test (kernels vs the fp64
# oracle), compute-sanitizer memcheck / racecheck / synccheck on the
# persistent and fused-state forwards and the backward, ring_backend_test
# (rings of virtual ranks, device copies, NCCL on 2+ GPUs), ringattn_c_test
# (the C ABI on device tensors), python/cuda_test.py, the transformer-block
# example with --cuda and, on 2+ GPUs, python/cuda_failure_test.py under
# torchrun. One line per step, PASS or
# FAIL with its log under OUT_DIR; exit 1 if any failed.
set -u
bin=$(cd "${1:?usage: bench/device_check.sh BIN_DIR OUT_DIR}" && pwd)
out=${2:?usage: bench/device_check.sh BIN_DIR OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
export NCCL_NVLS_ENABLE=0
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
failed=0
step() {  # step NAME TIMEOUT_S COMMAND...: PASS/FAIL, log in OUT/NAME.log
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  if timeout "$limit" "$@" > "$out/$name.log" 2>&1; then
    echo "PASS $name ($((SECONDS - start)) s)"
  else
    echo "FAIL $name (rc $?, $((SECONDS - start)) s): $(grep -E 'FAIL|rror' "$out/$name.log" | head -3 | tr '\n' ' ')"
    failed=1
  fi
}
# compute-sanitizer TOOL on a test binary's FILTER: also fails on a hazard or error.
sanitizer=(compute-sanitizer --error-exitcode 1 --tool)
have() { [[ -x "$bin/$1" ]]; }
echo "$gpus GPU(s): $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | sort | uniq -c | xargs)"
if have flash_test; then
  step flash_test 600 "$bin/flash_test"
  for tool in memcheck racecheck synccheck; do
    step "flash_$tool" 600 "${sanitizer[@]}" "$tool" "$bin/flash_test" \
      --gtest_filter='*ManyTiles*:*FusedState*:*Backward*'
  done
fi
if have ring_backend_test; then
  step ring_backend_test 600 "$bin/ring_backend_test"
  step ring_backend_memcheck 600 "${sanitizer[@]}" memcheck "$bin/ring_backend_test" \
    --gtest_filter='*DeviceCopy*:*BackwardFrom*'
fi
have ringattn_c_test && step ringattn_c_test 300 "$bin/ringattn_c_test"
if [[ -f "$bin/pylib/libringattn.so" && "$gpus" -ge 1 ]]; then
  export RINGATTN_LIB="$bin/pylib/libringattn.so" PYTHONPATH=python
  step cuda_test 900 torchrun --nproc_per_node="$gpus" python/cuda_test.py --iters 10
  step torchrun_block_cuda 300 torchrun --nproc_per_node="$gpus" \
    python/examples/torchrun_block.py --cuda
  if [[ "$gpus" -ge 2 ]]; then
    step cuda_failure_test 180 torchrun --nproc_per_node=2 python/cuda_failure_test.py
  fi
fi
exit "$failed"
