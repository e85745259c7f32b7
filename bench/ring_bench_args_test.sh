#!/usr/bin/env bash
# bench/ring_bench's flags checked before it looks for a GPU: a bad value
# exits 1 with what was wrong and what was expected (no GPU needed).
set -euo pipefail
bench="$(dirname "$0")/ring_bench"
source "$(dirname "$0")/test_helpers.sh"  # fail

if out=$("$bench" --sync=bogus 2>&1); then fail "--sync=bogus accepted"; fi
[[ $out == *"--sync is 'bogus'; expected auto, spin, yield or block"* ]] || fail "the --sync error: $out"
if out=$("$bench" --torch_single_ms=1,x,3,4 2>&1); then fail "--torch_single_ms=1,x,3,4 accepted"; fi
[[ $out == *"--torch_single_ms has 'x'; expected four non-negative (finite) milliseconds"* ]] ||
  fail "the --torch_single_ms error: $out"
for bad in nan inf; do
  if out=$("$bench" --torch_single_ms=1,$bad,3,4 2>&1); then fail "--torch_single_ms $bad accepted"; fi
  [[ $out == *"--torch_single_ms has '$bad'"* ]] || fail "the --torch_single_ms $bad error: $out"
done
if out=$("$bench" --torch_single_ms=1,2 2>&1); then fail "two --torch_single_ms values accepted"; fi
[[ $out == *"--torch_single_ms has 2 values; expected F,FB,VF,VFB"* ]] || fail "the count error: $out"
for bad in -1 nan inf 601; do
  if out=$("$bench" --settle_s=$bad 2>&1); then fail "--settle_s=$bad accepted"; fi
  [[ $out == *"--settle_s is "*"; expected 0 (no settle) to 600 seconds before each line"* ]] ||
    fail "the --settle_s=$bad error: $out"
done
if out=$("$bench" --hop_only --world=1 2>&1); then fail "--hop_only --world=1 accepted"; fi
[[ $out == *"--hop_only times the links between ranks; --world is 1"*"expected 2 ranks or more"* ]] ||
  fail "the --hop_only error: $out"
echo "ring_bench_args_test: passed"
