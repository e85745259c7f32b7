#!/usr/bin/env bash
# bench/ncu_hot_lines.py on a saved source page of the shape ncu prints
# (a line before the table, quoted CSV, thousands separators): the top
# lines by stall samples with their shares, the samples by kind of
# instruction, --mix's executed instructions by opcode (those of warps of
# fewer than 16 threads apart), --schedule's events in code order,
# --counts' lines grouped by the times they ran, --full-warps' stall
# reasons of the consumers' lines, and exit 2 for a page without a
# sampling column.
set -euo pipefail
script="$(dirname "$0")/ncu_hot_lines.py"
source "$(dirname "$0")/test_helpers.sh"  # $work, fail, expect_error
# expect_section WHAT FIRST EXPECTED ARGS...: the script's output on ARGS,
# from the line starting with FIRST to the one starting "by stall", is
# EXPECTED.
expect_section() {
  local what=$1 first=$2 expected=$3
  shift 3
  out=$(python3 "$script" "$@" | sed -n "/^$first/,/^by stall/p")
  [[ "$out" == "$expected" ]] || fail "$what: got
$out"
}
cat > "$work/page.csv" <<'CSV'
==PROF== a line ncu printed first
"# Address","Source","Warp Stall Sampling (All Samples)","Warp Stall Sampling (Not-issued Samples)"
"00000100","SYNCS.PHASECHK.TRANS64.TRYWAIT P0, [UR4+0x38], R3","1,500","1,400"
"00000110","HGMMA.64x128x16.F32.BF16 R24, gdesc[UR8], R24","500","100"
"00000120","WARPGROUP.DEPBAR.LE gsb0, 0x0","2,000","1,900"
"00000130","FFMA R1, R2, R3, R4","0","0"
"00000140","MUFU.EX2 R5, R6","1,000","800"
"00000150","BAR.SYNC.DEFER_BLOCKING 0x1, 0x100","0","0"
CSV
out=$(python3 "$script" "$work/page.csv" --top 3)
grep -qx '5000 stall samples (Warp Stall Sampling (All Samples)), 6 SASS lines' <<< "$out" || fail "total"
[[ $(sed -n 2p <<< "$out") == ' 40.00 %  00000120  WARPGROUP.DEPBAR.LE gsb0, 0x0' ]] || fail "top line"
[[ $(sed -n 3p <<< "$out") == ' 30.00 %  00000100  SYNCS.PHASECHK.TRANS64.TRYWAIT P0, [UR4+0x38], R3' ]] || fail "second line"
[[ $(grep -c ' %  0000' <<< "$out") == 3 ]] || fail "--top 3"
grep -qx ' 40.00 %  wgmma wait (WARPGROUP)' <<< "$out" || fail "wgmma wait kind"
grep -qx ' 30.00 %  mbarrier wait (SYNCS)' <<< "$out" || fail "mbarrier kind"
grep -qx ' 20.00 %  exp2 / rcp (MUFU)' <<< "$out" || fail "MUFU kind"
grep -qx ' 10.00 %  wgmma (HGMMA)' <<< "$out" || fail "HGMMA kind"
printf '"Source","Instructions Executed"\n"FFMA R1, R2, R3, R4","7"\n' > "$work/bare.csv"
expect_error "a page without samples" "no warp-stall sampling column" python3 "$script" "$work/bare.csv"
cat > "$work/reasons.csv" <<'CSV'
"Address","Source","Warp Stall Sampling (All Samples)","stall_long_sb","stall_long_sb (Not Issued)","stall_drain","stall_barrier"
"00000100","SYNCS.PHASECHK.TRANS64.TRYWAIT P0, [R12+URZ+0x38418], R3","100","100","50","0","0"
"00000110","@P0   BRA 0x00000130","600","600","300","0","0"
"00000120","S2R R2, SR_TID.X","200","10","0","190","0"
"00000130","BAR.SYNC.DEFER_BLOCKING 0x1, 0x100","100","0","0","0","100"
CSV
out=$(python3 "$script" "$work/reasons.csv" --top 2)
[[ $(sed -n 2p <<< "$out") == ' 60.00 %  00000110  @P0   BRA 0x00000130  <- try-wait on [R12+URZ+0x38418]  [long_sb 100 %]' ]] || fail "try-wait line"
[[ $(sed -n 3p <<< "$out") == ' 20.00 %  00000120  S2R R2, SR_TID.X  [drain 95 %, long_sb 5 %]' ]] || fail "reasons of a line"
grep -qx ' 70.00 %  mbarrier wait (SYNCS)' <<< "$out" || fail "the loop's branch counted as its wait"
grep -qx ' 20.00 %  stores draining at exit (drain)' <<< "$out" || fail "drain kind"
grep -qx ' 71.00 %  long_sb' <<< "$out" || fail "long_sb total"
grep -qx ' 19.00 %  drain' <<< "$out" || fail "drain total"
grep -q 'Not Issued' <<< "$out" && fail "a Not Issued column counted as a reason"
cat > "$work/mix.csv" <<'CSV'
"Address","Source","Warp Stall Sampling (All Samples)","Instructions Executed","Avg. Threads Executed"
"00000100","@!P0 MUFU.EX2 R5, R6","30","1,000","32"
"00000110","MUFU.EX2 R7, R8","10","1,000","32"
"00000120","SYNCS.PHASECHK.TRANS64.TRYWAIT P0, [R17+URZ+0x380a0], R0","0","6,000","1"
"00000130","@P0   BREAK B4","60","2,000","1"
CSV
out=$(python3 "$script" "$work/mix.csv" --top 1 --mix)
grep -qx 'by opcode: 0.01 M warp instructions executed, 0.01 M by warps of fewer than 16 threads' <<< "$out" ||
  fail "mix total"
grep -qx '     0.01 M  60.00 %  SYNCS      samples   0.00 %' <<< "$out" || fail "SYNCS executed"
grep -qx '     0.00 M  20.00 %  MUFU       samples  40.00 %' <<< "$out" || fail "MUFU with its predicate"
grep -qx '     0.00 M  20.00 %  BREAK      samples  60.00 %' <<< "$out" || fail "BREAK"
out=$(python3 "$script" "$work/page.csv" --mix)
grep -qx "by opcode: the page has no 'Instructions Executed' column" <<< "$out" || fail "mix without counts"
# --schedule: the synchronizing events in code order, runs of one event at
# one count merged, a try-wait loop's branch counted with its wait, lines
# never executed and plain arithmetic left out.
cat > "$work/schedule.csv" <<'CSV'
"Address","Source","Warp Stall Sampling (All Samples)","Instructions Executed","Avg. Threads Executed"
"00000100","SYNCS.PHASECHK.TRANS64.TRYWAIT P0, [UR8+0x10], R17","10","800","32"
"00000110","@P0   BRA 0x00000130","30","800","32"
"00000120","SYNCS.PHASECHK.TRANS64.TRYWAIT P0, [UR8+0x10], R17","0","0","0"
"00000130","HGMMA.64x128x16.F32.BF16 R24, gdesc[UR24], RZ, !UPT","5","800","32"
"00000140","HGMMA.64x128x16.F32.BF16 R24, gdesc[UR24], R24, gsb0","5","800","32"
"00000150","WARPGROUP.DEPBAR.LE gsb0, 0x0","100","800","32"
"00000160","FFMA R1, R2, R3, R4","0","800","32"
"00000170","MUFU.EX2 R5, R6","10","800","32"
"00000180","@P1   BAR.SYNC.DEFER_BLOCKING 0x5, 0x100","20","800","32"
"00000190","MUFU.EX2 R7, R8","10","800","32"
"000001a0","MUFU.EX2 R9, R10","0","800","32"
"000001b0","BAR.ARV 0x4, 0x100","0","800","32"
"000001c0","STSM.16.M88.4 [R14], R16","5","100","32"
"000001d0","UTMASTG.4D [UR8], [UR22]","5","100","1"
"000001e0","EXIT","0","8","32"
CSV
expect_section schedule schedule 'schedule (times executed, threads, share of samples, event):
       800   32  20.00 %  mbarrier wait [UR8+0x10]
       800   32   2.50 %  wgmma 64x128x16
       800   32   2.50 %  wgmma 64x128x16 commit
       800   32  50.00 %  wgmma wait 0x0
       800   32   5.00 %  exp2
       800   32  10.00 %  barrier sync 0x5
       800   32   5.00 %  exp2 x2
       800   32   0.00 %  barrier arrive 0x4
       100   32   2.50 %  stmatrix
       100    1   2.50 %  tma UTMASTG
         8   32   0.00 %  exit' "$work/schedule.csv" --top 1 --schedule
out=$(python3 "$script" "$work/page.csv" --schedule)
grep -qx "schedule: the page has no 'Instructions Executed' column" <<< "$out" || fail "schedule without counts"
# --counts N: the same page's lines grouped by the times they ran, the most
# executed instructions first (800 x 11 lines, 100 x 2, 8 x 1; lines never
# executed left out), each group's opcodes by lines, predicates dropped.
expect_section counts 'by times' 'by times executed (times, lines, instructions, share of them and of the samples, opcodes by lines):
       800    11      0.01 M  97.69 %  95.00 %  MUFU 3, BAR 2, HGMMA 2, BRA 1, FFMA 1, SYNCS 1, WARPGROUP 1
       100     2      0.00 M   2.22 %   5.00 %  STSM 1, UTMASTG 1' "$work/schedule.csv" --top 1 --counts 2
[[ $(python3 "$script" "$work/schedule.csv" --top 1 --counts | grep -c '^ *[0-9]* *[0-9]* *0\.0[01] M') == 3 ]] ||
  fail "--counts alone: all three groups (at most 12)"
out=$(python3 "$script" "$work/page.csv" --counts)
grep -qx "counts: the page has no 'Instructions Executed' column" <<< "$out" || fail "counts without counts"
# --full-warps: the reasons of the lines full warps ran (the one-thread
# try-wait left out), as shares of those lines' samples, each with its
# opcodes (predicates dropped) by samples.
cat > "$work/full.csv" <<'CSV'
"Address","Source","Warp Stall Sampling (All Samples)","Avg. Threads Executed","stall_wait","stall_selected","stall_long_sb"
"00000100","MUFU.EX2 R5, R6","40","32","30","10","0"
"00000110","FFMA R1, R2, R3, R4","20","32","4","16","0"
"00000120","@!P0 MUFU.EX2 R7, R8","20","32","20","0","0"
"00000130","SYNCS.PHASECHK.TRANS64.TRYWAIT P0, [UR4+0x38], R3","100","1","0","0","100"
CSV
expect_section "full warps" 'full warps' 'full warps: 80 samples (44.44 % of all), by stall reason, with the opcodes holding most of it:
 67.50 %  wait               MUFU 62.5 %, FFMA 5.0 %
 32.50 %  selected           FFMA 20.0 %, MUFU 12.5 %
by stall reason:' "$work/full.csv" --top 1 --full-warps
out=$(python3 "$script" "$work/page.csv" --full-warps)
grep -qx "full warps: the page needs the 'Avg. Threads Executed' and stall_\* columns" <<< "$out" ||
  fail "full warps without the columns"
echo PASS
