#!/usr/bin/env bash
# kernel_bench's own errors, found before it touches a GPU (so this runs on
# any machine): a bad iteration count or kernel set, a row it does not
# have, KERNEL_BENCH_SECONDS and KERNEL_BENCH_SETTLE outside their ranges;
# and its rows against bench/torch_sdpa_bench.py's (the baseline times the
# same rows; only the stripe block, a ring step's, has no SDPA form).
set -euo pipefail
bench="$(dirname "$0")/kernel_bench"
torch_rows="$(dirname "$0")/torch_sdpa_bench.py"
source "$(dirname "$0")/test_helpers.sh"  # $work, fail, expect_error
row=bf16_b16_s1024_h32_kv8_d128_causal

expect_error "0 iterations" "usage: kernel_bench" "$bench" 0
expect_error "kernel set" "usage: kernel_bench" "$bench" 1 "$row" some
expect_error "unknown row" "no row nosuchrow; the rows:" "$bench" 1 nosuchrow
for bad in 0 -1 abc 4000 nan; do
  expect_error "seconds $bad" "KERNEL_BENCH_SECONDS must be seconds in (0, 3600\]: $bad" \
    env KERNEL_BENCH_SECONDS="$bad" "$bench" 1 "$row"
done
for bad in -1 abc 4000 nan; do
  expect_error "settle $bad" "KERNEL_BENCH_SETTLE must be seconds in \[0, 3600\]: $bad" \
    env KERNEL_BENCH_SECONDS=1 KERNEL_BENCH_SETTLE="$bad" "$bench" 1 "$row"
done

# The rows: kernel_bench lists them after an unknown one.
"$bench" 1 nosuchrow 2> "$work/err" || true
ours=$(sed -n 's/.*the rows: //p' "$work/err" | tr ' ' '\n' | grep -v '_stripe' | sort)
torch=$(sed -n 's/^ *("\([a-z0-9_]*\)", torch\..*/\1/p' "$torch_rows" | sort)
[[ -n "$ours" && "$ours" == "$torch" ]] ||
  fail "kernel_bench's rows and torch_sdpa_bench's differ: $(diff <(echo "$ours") <(echo "$torch") || true)"
grep -q "^$row\$" <<< "$ours" || fail "no $row among kernel_bench's rows"
echo PASS
