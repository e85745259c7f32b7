#!/usr/bin/env bash
# bench/nccl_issue_ab.sh: the comparison of two ring_bench logs (rows in
# either order, a row only one has, the first kernel's host ms from the
# first --timeline line of a row, the hop issue lines) on stand-in logs and
# a stored one, and the errors for a missing log, logs without rows, bad
# usage, a folder without ring_bench and a machine without two GPUs.
set -euo pipefail
script="$(dirname "$0")/nccl_issue_ab.sh"
source "$(dirname "$0")/test_helpers.sh"  # $work, fail, expect_error
cat > "$work/a.txt" <<'LOG'
hop issue (host time ...): K and V apart (a forward's first step) 237.2 us, one message each way 212.6 us; NCCL groups: RINGATTN_NCCL_ISSUE=nonblocking
zigzag         fwd          495.60     526.75 ringattn             94.1%       544.9      577.0 / 577.0          2.000     2.037   +0.9%
ring           fwd          495.60     526.75 ringattn             94.1%       544.9      577.0 / 577.0          3.000     2.037   +0.9%
timeline: zigzag fwd ring: start 0.000 (0.000); the forward kernel 0.463 (0.176); the forward kernel 0.937 (0.185)
timeline: zigzag fwd baseline: start 0.000 (0.000); the forward kernel 0.928 (0.016)
timeline: zigzag fwd ring: start 0.000 (0.000); the forward kernel 0.500 (0.300)
LOG
cat > "$work/b.txt" <<'LOG'
hop issue (host time ...): K and V apart (a forward's first step) 62.7 us, one message each way 74.2 us; NCCL groups: RINGATTN_NCCL_ISSUE=blocking, connected to every peer at creation
ring           fwd          495.60     526.75 ringattn             94.1%       544.9      577.0 / 577.0          2.700     2.037   +0.9%
zigzag         fwd          495.60     526.75 ringattn             94.1%       544.9      577.0 / 577.0          1.800     2.037   +0.9%
stripe         fwd+bwd      495.60     526.75 ringattn             94.1%       544.9      577.0 / 577.0          8.000     2.037   +0.9%
timeline: zigzag fwd ring (one document set): start 0.000 (0.000); the forward kernel 0.300 (0.031)
LOG
out=$("$script" --compare "$work/a.txt" "$work/b.txt")
grep -q '^a.txt: hop issue.* 237.2 us' <<< "$out" || fail "A's hop issue line"
grep -q '^b.txt: hop issue.* 62.7 us' <<< "$out" || fail "B's hop issue line"
grep -Eq '^zigzag +fwd +2.000 +1.800 +0.900 +0.176 +0.031$' <<< "$out" || fail "zigzag's line"
grep -Eq '^ring +fwd +3.000 +2.700 +0.900 +- +-$' <<< "$out" || fail "ring's line"
grep -Eq '^stripe +fwd\+bwd +- +8.000 +- +- +-$' <<< "$out" || fail "a row only B has"
# A stored two-GPU log against itself: ratio 1, its first kernels.
log="sim/testdata/2026-12-04_h200x2_per_side_timeline_ring_bench.txt"
out=$("$script" --compare "$log" "$log")
grep -q '(no hop issue line)' <<< "$out" || fail "a log without the hop issue line"
grep -Eq '^zigzag +fwd +2.018 +2.018 +1.000 +0.176 +0.176$' <<< "$out" || fail "the stored zigzag fwd"
grep -Eq '^varlen_zigzag +fwd\+bwd +6.102 +6.102 +1.000 +0.253 +0.253$' <<< "$out" ||
  fail "the stored varlen zigzag fwd+bwd"
# Errors.
expect_error "a missing log" "cannot read" "$script" --compare "$work/a.txt" "$work/none.txt"
echo "no rows here" > "$work/empty.txt"
expect_error "logs without rows" "no rows in either log" "$script" --compare "$work/empty.txt" \
  "$work/empty.txt"
expect_error "--compare with one log" "usage: nccl_issue_ab.sh --compare" "$script" --compare \
  "$work/a.txt"
expect_error "no arguments" "usage: nccl_issue_ab.sh DIR OUT" "$script"
expect_error "no ring_bench" "no ring_bench in" "$script" "$work" "$work/out"
touch "$work/ring_bench" && chmod +x "$work/ring_bench"
mkdir -p "$work/no_gpus"  # an nvidia-smi that lists no GPU
printf '#!/bin/sh\nexit 0\n' > "$work/no_gpus/nvidia-smi" && chmod +x "$work/no_gpus/nvidia-smi"
PATH="$work/no_gpus:$PATH" expect_error "no GPUs" "needs two GPUs or more" "$script" "$work" \
  "$work/out"
echo "PASS"
