#!/usr/bin/env bash
# bench/kernel_bench.sh's alternated mode with stand-ins of kernel_bench and
# of the torch script (known rates that move by repeat): every run kept,
# the table from each line's median, ours / cuDNN per repeat, the order of
# the calls (row by row, ours first in odd repeats, torch in even ones),
# and the errors for a missing
# binary, a bad repeat or iteration count and repeats without rows.
set -euo pipefail
script="$(dirname "$0")/kernel_bench.sh"
source "$(dirname "$0")/test_helpers.sh"  # $work, fail, expect_error
mkdir -p "$work/bin"
# Call k of either stand-in (one count, so the order shows) rates ours'
# forward 600 + k and backward 500 + k; cuDNN 610 and 520 on every call.
cat > "$work/bin/kernel_bench" <<STANDIN
#!/usr/bin/env bash
n=\$(( \$(cat "$work/count" 2>/dev/null || echo 0) + 1 )); echo \$n > "$work/count"
echo "ours \$2 \$1" >> "$work/calls"
[[ \$3 == auto ]] || { echo "kernels: \$3" >&2; exit 1; }
echo "row,impl,pass,ms,tflops\${KERNEL_BENCH_SECONDS:+,joules,sm_mhz}"
j() { [[ -n "\${KERNEL_BENCH_SECONDS:-}" ]] && echo ",\$1,\$(( 1500 + n ))"; }
echo "\$2,ringattn,fwd,1.0,\$(( 600 + n ))\$(j 0.5)"
echo "\$2,ringattn,bwd,2.0,\$(( 500 + n ))\$(j 1.0)"
echo "\$2,ringattn,fwd+bwd,3.0,\$(( 540 + n ))\$(j 1.5)"
echo "\$2,ringattn_fused_state,fwd,1.1,\$(( 590 + n ))\$(j 0.6)"
STANDIN
cat > "$work/torch" <<STANDIN
#!/usr/bin/env bash
n=\$(( \$(cat "$work/count" 2>/dev/null || echo 0) + 1 )); echo \$n > "$work/count"
echo "torch \$2 \$1" >> "$work/calls"
echo "row,impl,pass,ms,tflops\${KERNEL_BENCH_SECONDS:+,joules,sm_mhz}"
j() { [[ -n "\${KERNEL_BENCH_SECONDS:-}" ]] && echo ",\$1,1600"; }
echo "\$2,torch_cudnn,fwd,1.0,610\$(j 1.22)"
echo "\$2,torch_cudnn,bwd,2.0,520\$(j 2.0)"
echo "\$2,torch_cudnn,fwd+bwd,3.0,550\$(j 3.0)"
echo "\$2,torch_flash,fwd,1.5,400\$(j 2.5)"
STANDIN
chmod +x "$work/bin/kernel_bench" "$work/torch"
export KERNEL_BENCH_TORCH="$work/torch"
out=$(KERNEL_BENCH_ITERATIONS=7 "$script" "$work/bin" "$work/out" 3 r1 r2)
# Row by row, ours first in repeats 1 and 3, torch first in 2; 7 calls a line.
odd='ours r1 7;torch r1 7;ours r2 7;torch r2 7;'
[[ "$(tr '\n' ';' < "$work/calls")" == "${odd}torch r1 7;ours r1 7;torch r2 7;ours r2 7;${odd}" ]] ||
  fail "call order: $(cat "$work/calls")"
# 3 repeats x 2 rows x (4 ours + 4 torch) lines, the header once.
[[ $(wc -l < "$work/out/runs.csv") == 49 ]] || fail "runs.csv lines: $(wc -l < "$work/out/runs.csv")"
grep -qx '2,r2,ringattn,fwd,1.0,608' "$work/out/runs.csv" || fail "repeat 2's r2 forward (call 8)"
# r1's ours calls are 1, 6, 9: medians 606 / 506; r2's 3, 8, 11: 608 / 508.
grep -qx 'r1,ringattn,fwd,1.0,606' "$work/out/ours.csv" || fail "r1 median forward"
grep -qx 'r2,ringattn,bwd,2.0,508' "$work/out/ours.csv" || fail "r2 median backward"
grep -qx 'r1,torch_cudnn,fwd,1.0,610' "$work/out/torch.csv" || fail "torch medians"
grep -q 'torch' "$work/out/ours.csv" && fail "torch lines among ours"
grep -q '7 calls a line; medians of 3 alternated repeats' <<< "$out" || fail "the title names the repeats"
# The table: ours / cuDNN of the medians (606 / 610), fused beside it.
grep -Eq '^r1 +606\.00 +596\.00 .* 1\.515 +0\.993$' <<< "$out" || fail "r1 forward table row"
grep -Eq '^r2 +508\.00 .* 0\.977 ' <<< "$out" || fail "r2 backward table row"
# Per repeat: r1's calls 1, 6, 9 over cuDNN's 610 / 520 / 550.
grep -Eq '^r1 +0\.985 0\.993 0\.998; 0\.963 0\.973 0\.979; 0\.984 0\.993 0\.998$' <<< "$out" ||
  fail "per-repeat ratios"
# The sustained mode: joules per call kept and reduced, GFLOP per joule
# (r1, call 1: a call's FLOPs from ours' line, 601 TFLOP/s x 1 ms, over
# ours' 0.5 J and cuDNN's 1.22 J).
rm -f "$work/count" "$work/calls"
out=$(KERNEL_BENCH_SECONDS=2 "$script" "$work/bin" "$work/energy" 1 r1)
grep -qx 'repeat,row,impl,pass,ms,tflops,joules,sm_mhz' "$work/energy/runs.csv" || fail "runs.csv header"
grep -qx 'r1,ringattn,fwd,1.0,601,0.5,1501' "$work/energy/ours.csv" || fail "ours' joules and clock"
grep -qx 'r1,torch_cudnn,bwd,2.0,520,2.0,1600' "$work/energy/torch.csv" || fail "torch's joules and clock"
grep -q 'each line 2 s back to back (mean); medians of 1 alternated repeats' <<< "$out" || fail "sustained title"
grep -Eq '^r1 +1202\.0 +492\.6 +2\.440 +1002\.0 +501\.0 +2\.000 +1082\.0 +541\.0 +2\.000$' <<< "$out" ||
  fail "GFLOP per joule"
# The clocks: ours' call 1 at 1501 MHz over cuDNN's 1600 (every pass).
grep -q 'mean SM clock while each line ran' <<< "$out" || fail "clock table title"
grep -Eq '^r1 +1501 +1600 +0\.938 +1501 +1600 +0\.938 +1501 +1600 +0\.938$' <<< "$out" || fail "clock table row"
# The torch script (no torch here) at least parses.
python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read())' "$(dirname "$0")/torch_sdpa_bench.py" ||
  fail "torch_sdpa_bench.py does not parse"
# Errors.
expect_error "missing binary" "no executable $work/none/kernel_bench" "$script" "$work/none" "$work/o2" 1 r1
expect_error "0 repeats" "REPEATS must be a positive integer" "$script" "$work/bin" "$work/o2" 0 r1
expect_error "repeats without rows" "needs at least one ROW" "$script" "$work/bin" "$work/o2" 2
expect_error "bad iterations" "KERNEL_BENCH_ITERATIONS must be a positive integer" \
  env KERNEL_BENCH_ITERATIONS=x "$script" "$work/bin" "$work/o2" 1 r1
echo PASS
