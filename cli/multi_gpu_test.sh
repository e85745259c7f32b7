#!/usr/bin/env bash
# Two GPUs: `ringattn run --backend=cuda` over NCCL, one thread per GPU
# (--comm=nccl) and one process per GPU launched the way torchrun does
# (RANK/WORLD_SIZE/LOCAL_RANK, --comm=nccl_env), gives the results of the
# same ring as two virtual ranks on one GPU (--comm=device --gpus=1), every
# layout, forward and backward; and a rank that fails or goes silent makes
# the other exit with an error within the timeout, never hang.
# On one GPU the two processes run as two hosts of NCCL's (NCCL_HOSTID
# differs; NCCL's socket transport over the loopback carries the hops):
# one process per rank only, the same comparisons and faults. Skips
# (passes with a message) without a GPU.
set -u
bin="cli/ringattn"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
export NCCL_NVLS_ENABLE=0
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
if [[ "$gpus" -lt 1 ]]; then
  echo "SKIPPED: needs a GPU (nvidia-smi lists ${gpus:-0})"
  exit 0
fi
one_gpu=0
if [[ "$gpus" -lt 2 ]]; then
  one_gpu=1
  echo "one GPU: two NCCL ranks as two hosts (NCCL_HOSTID), socket transport over lo"
fi
fail=0
shape=(--random --seed=5 --dtype=float32 --seqlen=1024 --num_heads=4 --num_kv_heads=2
       --head_dim=64 --world=2 --backend=cuda --timeout_s=60)
outputs() { echo "--out=$1_out.npy --lse=$1_lse.npy --dq=$1_dq.npy --dk=$1_dk.npy --dv=$1_dv.npy"; }
# Forward results must match bit for bit (the same tasks, kernels and step
# order); gradients within 1e-6 (the fp32 kernels add across GQA heads with
# atomics, in any order).
same() {  # same <what> <prefix a> <prefix b>
  local what="$1" a="$2" b="$3" name
  for name in out lse; do
    cmp -s "${a}_$name.npy" "${b}_$name.npy" || { echo "FAIL: $what: $name differs"; fail=1; }
  done
  python3 - "$a" "$b" <<'EOF' || { echo "FAIL: $what: gradients differ"; fail=1; }
import sys
import numpy as np
bad = False
for name in ("dq", "dk", "dv"):
    x = np.load(f"{sys.argv[1]}_{name}.npy").astype(np.float64)
    y = np.load(f"{sys.argv[2]}_{name}.npy").astype(np.float64)
    err = np.abs(x - y).max() / max(np.abs(y).max(), 1e-30)
    print(f"  {name}: max rel {err:.2e}")
    bad = bad or err > 1e-6
sys.exit(1 if bad else 0)
EOF
}
# Both ranks of a torchrun-style launch, in the background; waits for both.
two_processes() {  # two_processes <id file> <log prefix> args...
  local id="$1" log="$2"; shift 2
  rm -f "$id"
  local vars
  for r in 0 1; do
    vars=(RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r)
    if [[ $one_gpu -eq 1 ]]; then
      vars=(RANK=$r WORLD_SIZE=2 LOCAL_RANK=0 NCCL_HOSTID="ringattn-test-host-$r"
            NCCL_SOCKET_IFNAME=lo NCCL_IB_DISABLE=1 NCCL_MNNVL_ENABLE=0)
    fi
    [[ -n "${nccl_issue:-}" ]] && vars+=(RINGATTN_NCCL_ISSUE="$nccl_issue")
    # A rank that joins the communicator but not its connection (below).
    [[ "${skip_connect_rank:-}" == "$r" ]] && vars+=(RINGATTN_NCCL_TEST_SKIP_CONNECT=1)
    env "${vars[@]}" timeout 120 "$bin" run --comm=nccl_env --nccl_id_file="$id" "$@" \
      >"$log.$r" 2>&1 &
    pids[$r]=$!
  done
  rc0=0; rc1=0
  wait "${pids[0]}" || rc0=$?
  wait "${pids[1]}" || rc1=$?
}
# Both ranks as processes, then their results against a reference run's.
processes_match() {  # processes_match <what> <prefix> <reference prefix> args...
  local what="$1" out="$2" ref="$3"; shift 3
  two_processes "$out.id" "$out.log" "$@" $(outputs "$out")
  if [[ $rc0 -eq 0 && $rc1 -eq 0 ]]; then
    same "$what" "$out" "$ref"
  else
    echo "FAIL: $what: exit $rc0 / $rc1"; cat "$out.log".*; fail=1
  fi
}

for layout in ring zigzag stripe llama3; do
  extra=()
  [[ $layout == llama3 ]] && extra=(--kv_heads_per_group=1)
  ref="$tmp/ref_$layout" thr="$tmp/nccl_$layout" env="$tmp/env_$layout"
  timeout 120 "$bin" run "${shape[@]}" "${extra[@]}" --layout=$layout --comm=device --gpus=1 \
    $(outputs "$ref") >"$ref.log" 2>&1 || { echo "FAIL: $layout virtual ranks"; cat "$ref.log"; fail=1; continue; }
  if [[ $one_gpu -eq 1 ]]; then
    :  # one process holds one NCCL host: no two ranks as threads
  elif timeout 120 "$bin" run "${shape[@]}" "${extra[@]}" --layout=$layout --comm=nccl --gpus=2 \
      $(outputs "$thr") >"$thr.log" 2>&1; then
    same "$layout NCCL one thread per GPU" "$thr" "$ref"
  else
    echo "FAIL: $layout NCCL one thread per GPU"; cat "$thr.log"; fail=1
  fi
  processes_match "$layout NCCL one process per GPU" "$env" "$ref" "${shape[@]}" "${extra[@]}" \
    --layout=$layout
  # Every group on the blocking communicator (RINGATTN_NCCL_ISSUE=blocking,
  # comm/nccl_communicator.h): the same results.
  nccl_issue=blocking processes_match "$layout NCCL one process per GPU, blocking groups" \
    "$tmp/blocking_$layout" "$ref" "${shape[@]}" "${extra[@]}" --layout=$layout
  echo "ok: $layout"
done

# Faults, one process per GPU: rank 1 fails (aborts its communicator) or
# goes silent (returns without a word) at the start or after the forward
# (the ranks exchanged: with RINGATTN_NCCL_ISSUE=blocking rank 0's backward
# groups go to the blocking communicator); rank 0 reports an error in time.
# Last, rank 1 joins the communicator and leaves before connecting the
# blocking one to rank 0 (RINGATTN_NCCL_TEST_SKIP_CONNECT).
for fault in fail silent silent_after_forward fail/blocking silent/blocking \
    silent_after_forward/blocking skip_connect/blocking; do
  start=$(date +%s)
  issue=nonblocking
  [[ $fault == */blocking ]] && issue=blocking
  name="${fault%/blocking}"
  if [[ $name == skip_connect ]]; then
    nccl_issue=$issue skip_connect_rank=1 two_processes "$tmp/id_fault_$name.$issue" \
      "$tmp/fault_$name.$issue.log" "${shape[@]}" --layout=zigzag --timeout_s=15
  else
    nccl_issue=$issue two_processes "$tmp/id_fault_$name.$issue" \
      "$tmp/fault_$name.$issue.log" "${shape[@]}" --layout=zigzag --timeout_s=15 \
      --inject_fault_rank=1 --inject_fault="$name"
  fi
  took=$(( $(date +%s) - start ))
  if [[ $rc0 -eq 0 || $rc0 -eq 124 || $took -gt 60 ]]; then
    echo "FAIL: $fault: rank 0 exit $rc0 after ${took}s (want an error within the timeout)"
    cat "$tmp/fault_$name.$issue.log".*; fail=1
  else
    echo "ok: rank 1 $fault -> rank 0 exit $rc0 after ${took}s: $(tail -1 "$tmp/fault_$name.$issue.log.0")"
  fi
done
exit $fail
