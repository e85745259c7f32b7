#!/usr/bin/env bash
# bench/hop_chunk_sweep.sh: the table from stand-in logs and a stored
# two-GPU one (the chunk size each read, ours / plain per size, the fastest
# log per size and issue #19's 280 GB/s from 32 MiB on), the runs through a
# stand-in torchrun and ring_bench (every chunk size reaches ring_bench's
# environment; "ringattn" leaves the variable unset), and the errors.
set -euo pipefail
script="$(dirname "$0")/hop_chunk_sweep.sh"
source "$(dirname "$0")/test_helpers.sh"  # $work, fail, expect_error
cat > "$work/a.txt" <<'LOG'
plain NCCL ring hop of 134217728 B: 288.8 GB/s (ncclSend / ncclRecv back to back, as nccl-tests' sendrecv); NCCL_P2P_NVL_CHUNKSIZE=unset (NCCL's default)
ring hop sweep (MiB per rank:GB/s ours/plain NCCL): 8:45.0/46.6 16:87.0/95.3 32:179.7/189.0 64:266.4/271.7
ring_bench: 2 x NVIDIA H200, NCCL, one process per GPU, bf16 b1 8192 tokens/rank h32/32 d128 causal
LOG
cat > "$work/b.txt" <<'LOG'
plain NCCL ring hop of 134217728 B: 301.0 GB/s (ncclSend / ncclRecv back to back, as nccl-tests' sendrecv); NCCL_P2P_NVL_CHUNKSIZE=131072
ring hop sweep (MiB per rank:GB/s ours/plain NCCL): 8:60.5/61.0 16:120.0/125.0 32:290.5/295.0 64:250.0/260.0
ring_bench: 2 x NVIDIA H200, NCCL, one process per GPU, bf16 b1 8192 tokens/rank h32/32 d128 causal
LOG
cat > "$work/d.txt" <<'LOG'
plain NCCL ring hop of 134217728 B: 280.0 GB/s (ncclSend / ncclRecv back to back, as nccl-tests' sendrecv); NCCL_P2P_NVL_CHUNKSIZE=131072
NCCL environment: NCCL_MAX_NCHANNELS=8 NCCL_NVLS_ENABLE=0 NCCL_P2P_NVL_CHUNKSIZE=131072
hop share: a hop of 134217728 B beside the 8192-token full block's forward kernel takes 0.081 of its rate
ring hop sweep (MiB per rank:GB/s ours/plain NCCL): 8:70.0/71.0 16:121.0/126.0 32:285.0/288.0 64:300.0/301.0
ring_bench: 2 x NVIDIA H200, NCCL, one process per GPU, bf16 b1 8192 tokens/rank h32/32 d128 causal
LOG
echo "ring_bench: no sweep here" > "$work/c.txt"
out=$("$script" --table "$work/a.txt" "$work/b.txt" "$work/c.txt")
grep -Eq '^W +chunk +8 MiB +16 MiB +32 MiB +64 MiB ' <<< "$out" || fail "the heading"
grep -Eq '^2 +nccl-default +45.0/46.6 +87.0/95.3 +179.7/189.0 +266.4/271.7$' <<< "$out" ||
  fail "NCCL's default chunks' line"
grep -Eq '^2 +131072 +60.5/61.0 +120.0/125.0 +290.5/295.0 +250.0/260.0$' <<< "$out" ||
  fail "the 128 KiB chunks' line"
grep -Eq '^- +- +- +- +- +- +\(no sweep: .*c.txt\)$' <<< "$out" || fail "a log without a sweep"
# A log of another NCCL setting with the hop's share: both after its sizes,
# the setting in its verdict.
other=$("$script" --table "$work/a.txt" "$work/b.txt" "$work/d.txt")
grep -Eq '^2 +131072 +70.0/71.0 .* 300.0/301.0 +\(hop share 0.081, NCCL_MAX_NCHANNELS=8\)$' \
  <<< "$other" || fail "the share and the setting: $other"
grep -q '^64 MiB: fastest with chunk 131072 NCCL_MAX_NCHANNELS=8 (W = 2): 300.0 GB/s  reaches 280' \
  <<< "$other" || fail "the setting in the verdict: $other"
grep -q '^8 MiB: fastest with chunk 131072 (W = 2): 60.5 GB/s$' <<< "$out" ||
  fail "8 MiB: no verdict below 32 MiB"
grep -q '^32 MiB: fastest with chunk 131072 (W = 2): 290.5 GB/s  reaches 280 GB/s$' <<< "$out" ||
  fail "32 MiB's verdict"
grep -q '^64 MiB: fastest with chunk nccl-default (W = 2): 266.4 GB/s  below 280 GB/s$' <<< "$out" ||
  fail "64 MiB's verdict"
# A stored two-GPU log (its sweep, before the chunk size was printed).
out=$("$script" --table sim/testdata/2026-12-04_h200x2_per_side_ring_bench.txt)
grep -Eq '^2 +- +93.5/115.2 +193.2/208.1 +229.4/238.7 +262.8/267.1 +287.3/293.1 +304.0/306.3$' \
  <<< "$out" || fail "the stored log's line"
grep -q '^32 MiB: fastest with chunk - (W = 2): 229.4 GB/s  below 280 GB/s$' <<< "$out" ||
  fail "the stored log's 32 MiB"

# The runs, through stand-ins: torchrun runs what follows --no-python once;
# ring_bench prints the chunk size its environment has and a sweep.
mkdir -p "$work/bin" "$work/dir"
cat > "$work/bin/torchrun" <<'SH'
#!/usr/bin/env bash
echo "torchrun $*" >> "$TORCHRUN_LOG"
while [[ "$1" != --no-python ]]; do shift; done
shift
exec "$@"
SH
cat > "$work/bin/nvidia-smi" <<'SH'
#!/bin/sh
printf 'GPU 0: NVIDIA H200\nGPU 1: NVIDIA H200\nGPU 2: NVIDIA H200\nGPU 3: NVIDIA H200\n'
SH
cat > "$work/dir/ring_bench" <<'SH'
#!/usr/bin/env bash
unset_chunk="unset (NCCL's default)"
chunk="${NCCL_P2P_NVL_CHUNKSIZE-$unset_chunk}"
echo "W1130 a torchrun warning"
echo "plain NCCL ring hop of 134217728 B: 1.0 GB/s (stand-in); NCCL_P2P_NVL_CHUNKSIZE=$chunk"
[[ "$chunk" == 1048576 ]] && exit 1  # a run that fails: no sweep
echo "ring hop sweep (MiB per rank:GB/s ours/plain NCCL): 8:${#chunk}.0/1.0 32:300.0/2.0"
echo "ring_bench: 4 x NVIDIA H200, NCCL, flags $*"
SH
chmod +x "$work/bin/torchrun" "$work/bin/nvidia-smi" "$work/dir/ring_bench"
export TORCHRUN_LOG="$work/torchrun.log" NCCL_P2P_NVL_CHUNKSIZE=999  # the caller's: replaced
out=$(PATH="$work/bin:$PATH" "$script" "$work/dir" "$work/out" --chunks=ringattn,65536,1048576 \
  --nproc=2 --iters=3 2> "$work/stderr")
[[ $(grep -c -- '--nproc_per_node=2 --no-python' "$work/torchrun.log") == 3 ]] ||
  fail "three runs of two processes: $(cat "$work/torchrun.log")"
grep -q -- '--comm=nccl_env --nccl_id_file=.*hop_chunk_65536.id --hop_only --hop_sweep --iters=3' \
  "$work/torchrun.log" || fail "ring_bench's flags: $(cat "$work/torchrun.log")"
grep -Eq '^4 +nccl-default +22.0/1.0 +300.0/2.0$' <<< "$out" || fail "ringattn: the variable unset"
grep -Eq '^4 +65536 +5.0/1.0 +300.0/2.0$' <<< "$out" || fail "65536 reached ring_bench"
grep -q 'chunk 1048576: no sweep' "$work/stderr" || fail "the failed run named: $(cat "$work/stderr")"
grep -q '^32 MiB: fastest with chunk nccl-default (W = 4): 300.0 GB/s  reaches 280 GB/s$' \
  <<< "$out" || fail "the runs' verdict"
grep -q '^W1130' "$work/out/hop_chunk_65536.txt" && fail "torchrun's warnings kept in the log"
[[ -f "$work/out/table.txt" ]] || fail "no table.txt"
unset NCCL_P2P_NVL_CHUNKSIZE

# Errors.
expect_error "no arguments" "usage: hop_chunk_sweep.sh DIR OUT" "$script"
expect_error "--table without logs" "usage: hop_chunk_sweep.sh" "$script" --table
expect_error "a missing log" "cannot read" "$script" --table "$work/none.txt"
expect_error "logs without a sweep" "no ring hop sweep line" "$script" --table "$work/c.txt"
expect_error "no ring_bench" "no ring_bench in" "$script" "$work" "$work/out"
PATH="$work/bin:$PATH" expect_error "one rank" "--nproc is '1'; expected 2 to the 4 GPU" \
  "$script" "$work/dir" "$work/out" --nproc=1
PATH="$work/bin:$PATH" expect_error "more ranks than GPUs" "--nproc is '8'" \
  "$script" "$work/dir" "$work/out" --nproc=8
PATH="$work/bin:$PATH" expect_error "a bad chunk size" "chunk size '128k'; expected bytes" \
  "$script" "$work/dir" "$work/out" --chunks=ringattn,128k
mkdir -p "$work/no_gpus"  # an nvidia-smi that lists no GPU
printf '#!/bin/sh\nexit 0\n' > "$work/no_gpus/nvidia-smi" && chmod +x "$work/no_gpus/nvidia-smi"
PATH="$work/no_gpus:$PATH" expect_error "no GPUs" "expected 2 to the 0 GPU" "$script" \
  "$work/dir" "$work/out"
echo "PASS"
