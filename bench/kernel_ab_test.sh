#!/usr/bin/env bash
# bench/kernel_ab.sh with stand-in kernel_bench binaries of known rates:
# the alternation's CSV, the per-repeat columns, the ratio of medians (two
# builds, and three in one command), the calls a line passed on, the
# sustained mode's GFLOP per joule, and the errors for a missing binary or
# a bad repeat, iteration or seconds count.
set -euo pipefail
script="$(dirname "$0")/kernel_ab.sh"
source "$(dirname "$0")/test_helpers.sh"  # $work, fail, expect_error
# A stand-in: the rates of repeat k (a count in a file) are BASE + k,
# BASE / 2 + k; torch rows are printed and must be left out.
for variant in A:100 B:120 C:140; do
  dir="$work/${variant%%:*}"
  mkdir -p "$dir"
  cat > "$dir/kernel_bench" <<STANDIN
#!/usr/bin/env bash
n=\$(( \$(cat "$dir/count" 2>/dev/null || echo 0) + 1 ))
echo \$n > "$dir/count"
printf %s ${variant%%:*} >> "$work/order"
# KERNEL_BENCH_SECONDS set: joules and SM clock columns (0.5 J a call, at
# 1500 MHz + 10 x the call's number).
j=\${KERNEL_BENCH_SECONDS:+,0.5,\$(( 1500 + 10 * n ))}
echo "row,impl,pass,ms,tflops\${j:+,joules,sm_mhz}"
[[ \${KERNEL_BENCH_SECONDS:-} == \${WANT_SECONDS:-} ]] || { echo "seconds: \${KERNEL_BENCH_SECONDS:-}" >&2; exit 1; }
[[ \$3 == auto ]] || { echo "kernels: \$3" >&2; exit 1; }
[[ \$1 == \${WANT_ITERATIONS:-10} ]] || { echo "iterations: \$1" >&2; exit 1; }
echo "\$2,ringattn,fwd,1.0,\$(( ${variant#*:} + (n + 1) / 2 ))\$j"
echo "\$2,ringattn,bwd,2.0,\$(( ${variant#*:} / 2 + (n + 1) / 2 ))\$j"
echo "\$2,torch_cudnn,fwd,1.0,999"
# TERM_AT=<letter><call>: that call signals kernel_ab.sh (its parent) as a
# timeout would.
[[ \${TERM_AT:-} != ${variant%%:*}\$n ]] || kill -TERM \$PPID
STANDIN
  chmod +x "$dir/kernel_bench"
done
out=$("$script" "$work/A" "$work/B" 3 r1 r2)
# 3 repeats x 2 rows x 2 variants x 2 passes, torch left out.
[[ $(grep -c '^[AB],[123],r[12],ringattn,' <<< "$out") == 24 ]] || fail "24 CSV lines"
grep -q 'torch' <<< "$out" && fail "torch rows printed"
# Each binary runs r1 then r2 per repeat: r1 sees calls 1, 3, 5 (+1, +2, +3).
grep -qx 'r1,ringattn,fwd,101 102 103,121 122 123,1.196' <<< "$out" || fail "r1 fwd summary"
grep -qx 'r2,ringattn,bwd,51 52 53,61 62 63,1.192' <<< "$out" || fail "r2 bwd summary"
grep -qx "# B = $work/B" <<< "$out" || fail "the letters' directories"
# Each repeat starts with the next build: A B, B A, A B per row.
[[ $(< "$work/order") == ABABBABAABAB ]] || fail "two builds' order: $(< "$work/order")"
# Three builds: each runs once per row and repeat, two ratios over A.
rm -f "$work"/*/count "$work/order"
out=$("$script" "$work/A" "$work/B,$work/C" 3 r1 r2)
[[ $(< "$work/order") == ABCABCBCABCACABCAB ]] || fail "three builds' order: $(< "$work/order")"
[[ $(grep -c '^[ABC],[123],r[12],ringattn,' <<< "$out") == 36 ]] || fail "36 CSV lines"
grep -qx 'row,impl,pass,A TFLOP/s (each repeat),B TFLOP/s (each repeat),C TFLOP/s (each repeat),B/A (medians),C/A (medians)' <<< "$out" || fail "three-build header"
grep -qx 'r1,ringattn,fwd,101 102 103,121 122 123,141 142 143,1.196,1.392' <<< "$out" || fail "three-build r1 fwd"
grep -qx 'r2,ringattn,bwd,51 52 53,61 62 63,71 72 73,1.192,1.385' <<< "$out" || fail "three-build r2 bwd"
# KERNEL_AB_ITERATIONS reaches kernel_bench (the stand-in fails otherwise).
rm -f "$work"/*/count
out=$(KERNEL_AB_ITERATIONS=100 WANT_ITERATIONS=100 "$script" "$work/A" "$work/B" 1 r1)
grep -qx 'r1,ringattn,fwd,101,121,1.198' <<< "$out" || fail "100 calls a line"
# KERNEL_AB_SECONDS reaches kernel_bench as KERNEL_BENCH_SECONDS (and one
# left in the environment does not): GFLOP per joule is TFLOP/s x ms / J.
rm -f "$work"/*/count
out=$(KERNEL_AB_SECONDS=2 WANT_SECONDS=2 "$script" "$work/A" "$work/B" 1 r1)
grep -qx 'r1,ringattn,fwd,101,121,1.198' <<< "$out" || fail "sustained TFLOP/s"
grep -qx 'row,impl,pass,A GFLOP/J (each repeat),B GFLOP/J (each repeat),B/A (medians)' <<< "$out" || fail "GFLOP/J header"
grep -qx 'r1,ringattn,fwd,202.0,242.0,1.198' <<< "$out" || fail "fwd GFLOP/J"
grep -qx 'r1,ringattn,bwd,204.0,244.0,1.196' <<< "$out" || fail "bwd GFLOP/J"
# The clocks: A's first call (1510 MHz) and B's (1510) per line.
grep -qx 'row,impl,pass,A SM MHz (each repeat),B SM MHz (each repeat),B/A (medians)' <<< "$out" || fail "SM MHz header"
grep -qx 'r1,ringattn,fwd,1510,1510,1.000' <<< "$out" || fail "fwd SM MHz"
rm -f "$work"/*/count
out=$(KERNEL_BENCH_SECONDS=5 "$script" "$work/A" "$work/B" 1 r1)
grep -q 'GFLOP/J' <<< "$out" && fail "a GFLOP/J table without KERNEL_AB_SECONDS"
grep -q 'SM MHz' <<< "$out" && fail "an SM MHz table without KERNEL_AB_SECONDS"
# Stopped by SIGTERM after B's second line (repeat 1, r2): the tables of
# the four runs so far, a line saying so, exit status 143.
rm -f "$work"/*/count
status=0
out=$(TERM_AT=B2 "$script" "$work/A" "$work/B" 3 r1 r2) || status=$?
[[ $status == 143 ]] || fail "exit status $status after SIGTERM, expected 143"
[[ $(grep -c '^[AB],[123],r[12],ringattn,' <<< "$out") == 8 ]] || fail "8 CSV lines before the signal"
grep -qx '# stopped by a signal in repeat 1 of 3: the tables hold the runs so far' <<< "$out" ||
  fail "the stop line"
grep -qx 'r1,ringattn,fwd,101,121,1.198' <<< "$out" || fail "r1 fwd after the signal"
grep -qx 'r2,ringattn,bwd,51,61,1.196' <<< "$out" || fail "r2 bwd after the signal"
for bad in 0 -1 abc 4000; do
  expect_error "seconds $bad" "KERNEL_AB_SECONDS must be seconds in (0, 3600]" \
    env KERNEL_AB_SECONDS="$bad" "$script" "$work/A" "$work/B" 1 r1
done
expect_error "0 iterations" "KERNEL_AB_ITERATIONS must be a positive integer" \
  env KERNEL_AB_ITERATIONS=0 "$script" "$work/A" "$work/B" 1 r1
expect_error "missing binary" "" "$script" "$work/A" "$work/none" 1 r1
expect_error "missing third binary" "no executable $work/none/kernel_bench" \
  "$script" "$work/A" "$work/B,$work/none" 1 r1
expect_error "0 repeats" "REPEATS must be a positive integer" "$script" "$work/A" "$work/B" 0 r1
expect_error "no rows" "usage" "$script" "$work/A" "$work/B" 1
echo PASS
