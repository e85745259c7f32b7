#!/usr/bin/env bash
# Runs our kernels and PyTorch SDPA on the same GPU, in one command, and
# prints one table with the ratios ours / torch per row.
#   bench/kernel_bench.sh BIN_DIR [OUT_DIR]   (BIN_DIR holds kernel_bench)
#     every row once: ours (every kernel by name beside kAuto's) then torch.
#   bench/kernel_bench.sh BIN_DIR OUT_DIR REPEATS ROW...
#     ours (kAuto's kernels) and torch alternated row by row, REPEATS times,
#     ours first in odd repeats and torch first in even ones (cuDNN's own
#     rate moves 2-3 % between runs: one run decides no row within that of
#     1.0); every run kept in OUT_DIR/runs.csv
#     (repeat,row,impl,pass,ms,tflops), the table from each line's median
#     over the repeats, then ours / cuDNN per repeat.
# KERNEL_BENCH_ITERATIONS: timed calls per line (default 10; ours: their
# median, torch: their mean). KERNEL_BENCH_SECONDS=S: both run each line
# back to back for at least S seconds instead (the mean time) and measure
# the joules a call draws and the mean SM clock while it runs: tables of
# GFLOP per joule and of the clocks follow. Each such line first runs
# KERNEL_BENCH_SETTLE seconds untimed (default 3; 0: none) and is sized
# from the rate those reached, so that it is timed at the clock the power
# cap holds, not at the one the work before it left (the averaged power
# reaches the cap 1-1.5 s into a line).
# KERNEL_BENCH_TORCH_BACKENDS=cudnn (or flash, efficient, comma-separated):
# torch's lines for those backends only (torch_sdpa_bench.py).
# KERNEL_BENCH_TORCH replaces `python3 bench/torch_sdpa_bench.py` (tests).
set -euo pipefail
usage="usage: kernel_bench.sh BIN_DIR [OUT_DIR [REPEATS ROW...]]"
bin="${1:?$usage}"
out="${2:-.}"
repeats="${3:-}"
shift $(( $# < 3 ? $# : 3 ))
here="$(cd "$(dirname "$0")" && pwd)"
torch_bench=${KERNEL_BENCH_TORCH:-python3 $here/torch_sdpa_bench.py}
iterations=${KERNEL_BENCH_ITERATIONS:-10}
[[ "$iterations" =~ ^[1-9][0-9]*$ ]] || { echo "KERNEL_BENCH_ITERATIONS must be a positive integer: $iterations" >&2; exit 2; }
[[ -x "$bin/kernel_bench" ]] || { echo "no executable $bin/kernel_bench" >&2; exit 2; }
if [[ -n "$repeats" ]]; then
  [[ "$repeats" =~ ^[1-9][0-9]*$ ]] || { echo "REPEATS must be a positive integer: $repeats" >&2; exit 2; }
  [[ $# -gt 0 ]] || { echo "$usage (REPEATS needs at least one ROW)" >&2; exit 2; }
fi
mkdir -p "$out"
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2> /dev/null | head -1) || gpu="unknown GPU"
clocks() {
  nvidia-smi --query-gpu=clocks.sm,clocks.max.sm,temperature.gpu,power.draw,clocks_throttle_reasons.active \
    --format=csv > "$out/clocks_$1.csv" 2> /dev/null || true
}
clocks before
if [[ -z "$repeats" ]]; then
  "$bin/kernel_bench" "$iterations" > "$out/ours.csv"
  $torch_bench "$iterations" > "$out/torch.csv"
else
  echo "repeat,row,impl,pass,ms,tflops${KERNEL_BENCH_SECONDS:+,joules,sm_mhz}" > "$out/runs.csv"
  for ((rep = 1; rep <= repeats; ++rep)); do
    for row in "$@"; do
      # Ours first in odd repeats, torch first in even ones (as kernel_ab.sh
      # since the thirty-eighth session): whatever the first place costs or
      # gains falls on both.
      if ((rep % 2)); then
        { "$bin/kernel_bench" "$iterations" "$row" auto; $torch_bench "$iterations" "$row"; }
      else
        { $torch_bench "$iterations" "$row"; "$bin/kernel_bench" "$iterations" "$row" auto; }
      fi | awk -F, -v r="$rep" 'NR > 1 && $1 != "row" { print r "," $0 }' >> "$out/runs.csv"
    done
  done
  # Each line's median over the repeats, as kernel_bench / torch print lines.
  awk -F, "$(< "$here/table_functions.awk")"'
    NR == 1 { next }
    {
      key = $2 "," $3 "," $4
      if (!(key in ms)) order[++n] = key
      ms[key] = ms[key] " " $5; tf[key] = tf[key] " " $6; if (NF >= 7) j[key] = j[key] " " $7
      if (NF >= 8) mhz[key] = mhz[key] " " $8
    }
    END {
      header = "row,impl,pass,ms,tflops" (energy ? ",joules,sm_mhz" : "")
      print header > ours; print header > torch
      for (i = 1; i <= n; ++i) {
        k = order[i]
        line = k "," median(ms[k]) "," median(tf[k]) (energy ? "," median(j[k]) "," median(mhz[k]) : "")
        print line > (k ~ /^[^,]*,torch_/ ? torch : ours)
      }
    }' ours="$out/ours.csv" torch="$out/torch.csv" energy="${KERNEL_BENCH_SECONDS:+1}" "$out/runs.csv"
fi
clocks after
if [[ -n "${KERNEL_BENCH_SECONDS:-}" ]]; then
  calls="each line ${KERNEL_BENCH_SECONDS} s back to back (mean)"
else
  calls="$iterations calls a line"
fi
echo "# $(date -u +%F), $gpu; TFLOP/s (fwd: 4*b*s^2*h*d, /2 causal); $calls${repeats:+; medians of $repeats alternated repeats}"
awk -F, '
  # A cell: the value, "-" where there is none; a ratio to 3 places, "-"
  # where either side is missing.
  function cell(v) { return v != "" && v != 0 ? v : "-" }
  function ratio(x, y) { return x != "" && y ? sprintf("%.3f", x / y) : "-" }
  FNR == 1 { next }
  FILENAME ~ /ours/ && $2 == "ringattn" && $3 == "fwd" { ours[$1] = $5; order[++n] = $1; next }
  FILENAME ~ /ours/ && $2 == "ringattn" && $3 == "fwd+bwd" { ours_both[$1] = $5; next }
  FILENAME ~ /ours/ && $2 == "ringattn_fused_state" { fused[$1] = $5; next }
  FILENAME ~ /ours/ && $2 == "ringattn_mma_sync" && $3 == "fwd" { mma[$1] = $5; next }
  FILENAME ~ /ours/ && $2 == "ringattn_wgmma_cp_async" && $3 == "fwd" { cpa[$1] = $5; next }
  FILENAME ~ /ours/ && $2 == "ringattn_warp_specialized" && $3 == "fwd" { ws[$1] = $5; next }
  FILENAME ~ /ours/ && $2 == "ringattn_mma_sync" && $3 == "bwd" { mma_bwd[$1] = $5; next }
  FILENAME ~ /ours/ && $2 == "ringattn_wgmma" && $3 == "bwd" { wgmma_bwd[$1] = $5; next }
  FILENAME ~ /ours/ && $2 == "ringattn_warp_spec" && $3 == "bwd" { ws_bwd[$1] = $5; next }
  FILENAME ~ /ours/ && $2 == "ringattn" && $3 == "bwd" { ours_bwd[$1] = $5; next }
  FILENAME ~ /ours/ && $2 == "ringattn_o_in_dtype" && $3 == "bwd" { o_bwd[$1] = $5; next }
  FILENAME ~ /ours/ { next }
  $3 == "fwd" { t[$1, $2] = $5; ms[$1, $2] = $4 }
  $3 == "bwd" { bwd[$1, $2] = $5 }
  $3 == "fwd+bwd" { both[$1, $2] = $5 }
  END {
    printf "%-32s %9s %9s %9s %9s %9s %9s %9s %9s %12s %12s\n", "row", "ours", "fused", "mma.sync",
           "cp.async", "warp-spec", "flash", "cudnn", "efficient", "ours/flash", "ours/cudnn"
    for (i = 1; i <= n; i++) {
      r = order[i]
      f = t[r, "torch_flash"]; c = t[r, "torch_cudnn"]; e = t[r, "torch_efficient"]
      printf "%-32s %9.2f %9.2f %9s %9s %9s %9s %9s %9s %12s %12s\n", r, ours[r], fused[r],
             cell(mma[r]), cell(cpa[r]), cell(ws[r]), cell(f), cell(c), cell(e),
             ratio(ours[r], f), ratio(ours[r], c)
    }
    printf "\nbackward TFLOP/s (2.5x the forward FLOPs; torch: autograd.grad of a kept graph;"
    printf " ours: D from the fp32 ring state, O-dtype: D from the output in the input dtype, as torch)\n"
    printf "%-32s %9s %9s %9s %9s %9s %9s %9s %12s %12s %12s %9s %12s\n", "row", "ours", "mma.sync",
           "cp.async", "warp-spec", "flash", "cudnn", "efficient", "ours/flash", "ours/cudnn",
           "ours/effic.", "O-dtype", "O-dt/cudnn"
    for (i = 1; i <= n; i++) {
      r = order[i]
      if (!(r in ours_bwd)) continue
      f = bwd[r, "torch_flash"]; c = bwd[r, "torch_cudnn"]; e = bwd[r, "torch_efficient"]
      printf "%-32s %9.2f %9s %9s %9s %9s %9s %9s %12s %12s %12s %9s %12s\n", r, ours_bwd[r],
             cell(mma_bwd[r]), cell(wgmma_bwd[r]), cell(ws_bwd[r]), cell(f), cell(c), cell(e),
             ratio(ours_bwd[r], f), ratio(ours_bwd[r], c), ratio(ours_bwd[r], e),
             cell(o_bwd[r]), ratio(o_bwd[r], c)
    }
    printf "\nforward+backward TFLOP/s (3.5x the forward FLOPs)\n"
    printf "%-32s %9s %9s %9s %9s %12s %12s %12s\n", "row", "ours", "flash", "cudnn", "efficient",
           "ours/flash", "ours/cudnn", "ours/effic."
    for (i = 1; i <= n; i++) {
      r = order[i]
      if (!(r in ours_both)) continue
      f = both[r, "torch_flash"]; c = both[r, "torch_cudnn"]; e = both[r, "torch_efficient"]
      printf "%-32s %9.2f %9s %9s %9s %12s %12s %12s\n", r, ours_both[r], cell(f), cell(c),
             cell(e), ratio(ours_both[r], f), ratio(ours_both[r], c), ratio(ours_both[r], e)
    }
  }' "$out/ours.csv" "$out/torch.csv"
if [[ -n "${KERNEL_BENCH_SECONDS:-}" ]]; then
  # Per row ours, cuDNN's and ours / cuDNN per pass, of VALUE: gflop_per_joule
  # (both sides over the FLOPs of our line, ms x TFLOP/s) or sm_mhz (the
  # mean clock; binaries from before that column print none: "-").
  pass_table() {
    awk -F, -v value="$1" "$(< "$here/table_functions.awk")"'
      FNR == 1 { next }
      FILENAME ~ /ours/ && $2 == "ringattn" {
        ms[$1, $3] = $4; tf[$1, $3] = $5; j[$1, "ours", $3] = $6; c[$1, "ours", $3] = $7
      }
      FILENAME ~ /ours/ && !($1 in seen) { seen[$1] = 1; rows[++n] = $1 }
      FILENAME ~ /torch/ && $2 == "torch_cudnn" { j[$1, "cudnn", $3] = $6; c[$1, "cudnn", $3] = $7 }
      function cell(x) { return x > 0 ? sprintf(value == "sm_mhz" ? "%.0f" : "%.1f", x) : "-" }
      function of(r, side, pass,   k) {
        if (value == "sm_mhz") return c[r, side, pass] + 0
        k = r SUBSEP pass
        return gflop_per_joule(ms[k], tf[k], j[r, side, pass])
      }
      END {
        printf "%-32s %9s %9s %12s %9s %9s %12s %9s %9s %12s\n", "row", "fwd ours", "cudnn",
               "ours/cudnn", "bwd ours", "cudnn", "ours/cudnn", "both ours", "cudnn", "ours/cudnn"
        split("fwd bwd fwd+bwd", passes, " ")
        for (i = 1; i <= n; ++i) {
          r = rows[i]; line = sprintf("%-32s", r)
          for (p = 1; p <= 3; ++p) {
            o = of(r, "ours", passes[p]); x = of(r, "cudnn", passes[p])
            line = line sprintf(" %9s %9s %12s", cell(o), cell(x), o > 0 && x > 0 ? sprintf("%.3f", o / x) : "-")
          }
          print line
        }
      }' "$out/ours.csv" "$out/torch.csv"
  }
  printf "\nenergy, GFLOP per joule (the FLOPs above over the joules a call drew: NVML's counter)\n"
  pass_table gflop_per_joule
  # The cap takes it out of the clock: a line that draws less energy a cycle
  # runs at a higher one.
  printf "\nmean SM clock while each line ran (MHz; NVML, sampled every 10 ms)\n"
  pass_table sm_mhz
fi
if [[ -n "$repeats" ]]; then
  printf "\nours / cuDNN per repeat (fwd; bwd; fwd+bwd)\n"
  awk -F, '
    NR == 1 { next }
    $3 == "ringattn" { ours[$1, $2, $4] = $6 }
    $3 == "torch_cudnn" { cudnn[$1, $2, $4] = $6 }
    !($2 in seen) { seen[$2] = 1; rows[++n] = $2 }
    $1 > reps { reps = $1 }
    END {
      for (i = 1; i <= n; ++i) {
        line = sprintf("%-32s", rows[i])
        split("fwd bwd fwd+bwd", passes, " ")
        for (p = 1; p <= 3; ++p) {
          line = line (p > 1 ? ";" : "")
          for (r = 1; r <= reps; ++r) {
            k = r SUBSEP rows[i] SUBSEP passes[p]
            line = line " " ((k in ours) && cudnn[k] ? sprintf("%.3f", ours[k] / cudnn[k]) : "-")
          }
        }
        print line
      }
    }' "$out/runs.csv"
fi
