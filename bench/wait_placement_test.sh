#!/usr/bin/env bash
# bench/wait_placement.sh on a small listing of the shape bench/sass.sh
# prints: each gsb0, 0x1 wait with the exponentials before and after the
# gsb0, 0x0 wait that follows it, and a clear error for a missing file.
set -euo pipefail
script="$(dirname "$0")/wait_placement.sh"
source "$(dirname "$0")/test_helpers.sh"  # $work, fail, expect_error
cat > "$work/k.sass" <<'SASS'
        /*0100*/                   HGMMA.64x128x16.F32.BF16 R24, gdesc [UR20], R24, gsb0 ;
        /*0110*/                   WARPGROUP.DEPBAR.LE gsb0, 0x1 ;
        /*0120*/                   MUFU.EX2 R1, R1 ;
        /*0130*/                   MUFU.RCP R2, R2 ;
        /*0140*/                   WARPGROUP.DEPBAR.LE gsb0, 0x0 ;
        /*0150*/                   MUFU.EX2 R3, R3 ;
        /*0160*/                   MUFU.EX2 R4, R4 ;
        /*0170*/                   WARPGROUP.DEPBAR.LE gsb0, 0x1 ;
        /*0180*/                   MUFU.EX2 R5, R5 ;
        /*0190*/                   MUFU.EX2 R6, R6 ;
        /*01a0*/                   MUFU.EX2 R7, R7 ;
        /*01b0*/                   WARPGROUP.DEPBAR.LE gsb0, 0x0 ;
        /*01c0*/                   EXIT ;
SASS
out=$(bash "$script" "$work/k.sass")
[[ $(sed -n 1p <<< "$out") == '2 5 before=1 after=2' ]] || fail "first pair: $out"
[[ $(sed -n 2p <<< "$out") == '8 12 before=3 after=0' ]] || fail "second pair: $out"
[[ $(wc -l <<< "$out") == 2 ]] || fail "two pairs: $out"
expect_error "a missing listing" "cannot read" bash "$script" "$work/none.sass"
echo PASS
