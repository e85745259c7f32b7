#!/usr/bin/env bash
# bench/ring_predict on measured ring_bench logs: a 2-GPU run's own rows
# beside the prediction, the W = 8 prediction of a one-GPU run of virtual
# ranks with the link's rates given, and the errors for such a log without
# them and for bad flags.
set -euo pipefail
predict="$(dirname "$0")/ring_predict"
two_gpus="sim/testdata/2026-12-01_h200x2_ring_bench.txt"
virtual="sim/testdata/2026-12-02_h200_virtual_ranks_ring_bench.txt"
source "$(dirname "$0")/test_helpers.sh"  # fail

out=$("$predict" --log="$two_gpus")
[[ $out == *"2 GPUs, hop 278.6 GB/s, all-gather 222.3 GB/s"* ]] || fail "the 2-GPU header"
# 8 rows x 2 passes, each with the measured ms beside (ring fwd 3.213).
[[ $(grep -cE '^[a-z0-9_]+ +fwd(\+bwd)? +[0-9.]+ +[0-9.]+$' <<< "$out") == 16 ]] || fail "16 measured rows"
grep -qE '^ring +fwd +[0-9.]+ +3.213$' <<< "$out" || fail "ring fwd's measured 3.213 ms"

out=$("$predict" --log="$virtual" --world=8 --kv_heads=8 --hop_gbps=324.1 --all_gather_gbps=222.3)
[[ $out == *"2 virtual ranks on one GPU, hop 324.1 GB/s, all-gather 222.3 GB/s, hop issue none, hop's share of the kernels 0.000) for W = 8"* ]] ||
  fail "the virtual-ranks header"
[[ $out == *"h32/8 d128"* ]] || fail "the kv heads"
# Predictions only (a virtual run's times are not one GPU per rank's).
[[ $(grep -cE '^[a-z0-9_]+ +fwd(\+bwd)? +[0-9.]+ *$' <<< "$out") == 16 ]] || fail "16 predicted rows"
zigzag=$(awk '$1 == "zigzag" && $2 == "fwd" {print $3}' <<< "$out")
awk -v z="$zigzag" 'BEGIN {exit !(z > 5 && z < 15)}' || fail "zigzag fwd at W = 8: $zigzag ms"

# Another token count from the same calibration: predictions only (the
# log's rows are of its own tokens), smaller at a quarter of the tokens.
out=$("$predict" --log="$two_gpus" --tokens=2048)
[[ $out == *"for W = 2, 2048 tokens/rank"* ]] || fail "the tokens in the header"
[[ $(grep -cE '^[a-z0-9_]+ +fwd(\+bwd)? +[0-9.]+ *$' <<< "$out") == 16 ]] ||
  fail "16 predicted rows without measured ones"
zigzag=$(awk '$1 == "zigzag" && $2 == "fwd" {print $3}' <<< "$out")
awk -v z="$zigzag" 'BEGIN {exit !(z > 0.1 && z < 1)}' || fail "zigzag fwd at 2048 tokens: $zigzag ms"

# A log with one causal / full factor at fewer tokens: said; a log with
# them per block side: not.
out=$("$predict" --log="$two_gpus" --tokens=1024)
[[ $out == *"measured at its 8192 tokens only, not per block side"* ]] || fail "the one factor's note"
out=$("$predict" --log=sim/testdata/2026-12-04_h200x2_per_side_ring_bench.txt --tokens=1024)
[[ $out != *"not per block side"* ]] || fail "a note for a log with the factors per side"

# The host's issue of a step's transfers (none in this log): given, each
# forward's first step waits for it (one pass a row; a document set's each
# its own pass, the row their mean), the steps after have kernels enough.
base=$("$predict" --log="$two_gpus")
out=$("$predict" --log="$two_gpus" --hop_issue_us=136)
[[ $base == *"all-gather 222.3 GB/s, hop issue none, "* ]] || fail "no issue in the header"
[[ $out == *"hop issue 136.0 / 136.0 us (K and V apart / one message each way)"* ]] ||
  fail "the issue in the header: $out"
for row in ring zigzag varlen_zigzag; do
  before=$(awk -v r=$row '$1 == r && $2 == "fwd" {print $3}' <<< "$base")
  after=$(awk -v r=$row '$1 == r && $2 == "fwd" {print $3}' <<< "$out")
  awk -v a="$after" -v b="$before" 'BEGIN {d = a - b; exit !(d > 0.130 && d < 0.142)}' ||
    fail "$row fwd with a 136 us issue: $before -> $after ms"
done
out=$("$predict" --log="$two_gpus" --hop_issue_us=60,50)
[[ $out == *"hop issue 60.0 / 50.0 us"* ]] || fail "two issue times"
# The hop's share of the kernels (0.312 in the per-side log): 0, as copy
# engines take no SMs, makes every row at most as long.
per_side=sim/testdata/2026-12-04_h200x2_per_side_ring_bench.txt
base=$("$predict" --log="$per_side")
out=$("$predict" --log="$per_side" --hop_sm_share=0)
[[ $base == *"hop's share of the kernels 0.312)"* && $out == *"hop's share of the kernels 0.000)"* ]] ||
  fail "the share in the header: $out"
paste <(awk 'NR > 2 {print $3}' <<< "$base") <(awk 'NR > 2 {print $3}' <<< "$out") |
  awk '{if ($2 > $1) bad++; if ($2 < $1) less++} END {exit !(bad == 0 && less >= 8)}' ||
  fail "rows without the share: $base $out"
for bad in -0.5 1; do
  if out=$("$predict" --log="$two_gpus" --hop_sm_share=$bad 2>&1); then fail "--hop_sm_share=$bad accepted"; fi
  [[ $out == *"--hop_sm_share is $bad; expected -1 (the log's) or 0 <= share < 1"* ]] ||
    fail "the --hop_sm_share=$bad error: $out"
done
for bad in -1 1,2,3 x 1e7; do
  if out=$("$predict" --log="$two_gpus" --hop_issue_us=$bad 2>&1); then
    fail "--hop_issue_us=$bad accepted"
  fi
  [[ $out == *"--hop_issue_us is '$bad'; expected KV,ONE or one number"* ]] ||
    fail "the --hop_issue_us=$bad error: $out"
done

# Another hop size from a log with a hop sweep: the links from the sweep
# (named in the header), unless given.
out=$("$predict" --log=sim/testdata/2026-12-04_h200x2_per_side_ring_bench.txt --tokens=2048)
[[ $out =~ hop\ 2[0-9][0-9]\.[0-9]\ GB/s\ \(the\ log\'s\ hop\ sweep\ at\ 32\.0\ MiB\) ]] ||
  fail "the sweep's hop at 32 MiB: $out"
out=$("$predict" --log=sim/testdata/2026-12-04_h200x2_per_side_ring_bench.txt --tokens=2048 \
  --hop_gbps=300)
[[ $out == *"hop 300.0 GB/s, all-gather"* ]] || fail "a given hop over the sweep's: $out"

# A log of virtual ranks without the link's rates, bad flags: errors.
if out=$("$predict" --log="$virtual" --world=8 2>&1); then fail "no --hop_gbps accepted"; fi
[[ $out == *"virtual ranks sharing one GPU"*"give --hop_gbps"* ]] || fail "the virtual-ranks error"
if out=$("$predict" --log="$virtual" --hop_gbps=-1 2>&1); then fail "--hop_gbps=-1 accepted"; fi
[[ $out == *"expected 0 (the log's) or a bandwidth"* ]] || fail "the bandwidth error"
if out=$("$predict" --log="$two_gpus" --kv_heads=5 2>&1); then fail "--kv_heads=5 accepted"; fi
[[ $out == *"a divisor of 32 heads"* ]] || fail "the kv heads error"
for bad in -1 131073; do
  if out=$("$predict" --log="$two_gpus" --tokens=$bad 2>&1); then fail "--tokens=$bad accepted"; fi
  [[ $out == *"--tokens is $bad; expected 0 (the log's) or 1 to 131072 tokens per rank"* ]] ||
    fail "the --tokens=$bad error: $out"
done
if out=$("$predict" --log="$two_gpus" --tokens=3 2>&1); then fail "--tokens=3 accepted"; fi
[[ $out == *"not divisible by"* ]] || fail "the layout's divisibility error: $out"
echo PASS
