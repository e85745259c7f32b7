#!/usr/bin/env bash
# Where ptxas put each wgmma wait for "all but the last group" and the wait
# for all groups after it, in a SASS listing (bench/sass.sh's output): for
# every `WARPGROUP.DEPBAR.LE gsb0, 0x1`, how many MUFU.EX2 (exponentials) stand
# between it and the next `gsb0, 0x0`, and how many follow up to the next
# gsb0, 0x1 or the end. The forward overlaps its softmax with P V and the
# backward its exponentials with dP^T only for those before the second
# wait: ptxas moves that wait above arithmetic that does not need it (the
# thirty-first session found the forward's at the top of its softmax).
#   bench/sass.sh cuda/flash/forward_warp_specialized_d128.cu ElementTypeE2ELi128 > k.sass
#   bench/wait_placement.sh k.sass
# Prints one line per wait pair: `LINE_1 LINE_0 before=N after=M`.
set -euo pipefail
sass=${1:?usage: bench/wait_placement.sh SASS_FILE}
[[ -r "$sass" ]] || { echo "cannot read $sass" >&2; exit 2; }
awk '
  function flush() {
    if (one) printf "%d %d before=%d after=%d\n", one, zero, before, after
    one = 0; zero = 0; before = 0; after = 0
  }
  /WARPGROUP\.DEPBAR\.LE gsb0, 0x1/ { flush(); one = NR; next }
  /WARPGROUP\.DEPBAR\.LE gsb0, 0x0/ { if (one && !zero) zero = NR; else if (one) { flush() } ; next }
  /MUFU\.EX2/ { if (one && !zero) before++; else if (zero) after++ }
  END { flush() }' "$sass"
