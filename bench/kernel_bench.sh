#!/usr/bin/env bash
# Runs our kernels and PyTorch SDPA on the same GPU, in one command, and
# prints one table with the ratios ours / torch per row.
#   bench/kernel_bench.sh BIN_DIR [OUT_DIR]   (BIN_DIR holds kernel_bench)
set -euo pipefail
bin="${1:?usage: kernel_bench.sh BIN_DIR [OUT_DIR]}"
out="${2:-.}"
here="$(cd "$(dirname "$0")" && pwd)"
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
nvidia-smi --query-gpu=clocks.sm,clocks.max.sm,temperature.gpu,power.draw,clocks_throttle_reasons.active --format=csv > "$out/clocks_before.csv" || true
"$bin/kernel_bench" 10 > "$out/ours.csv"
python3 "$here/torch_sdpa_bench.py" 10 > "$out/torch.csv"
nvidia-smi --query-gpu=clocks.sm,clocks.max.sm,temperature.gpu,power.draw,clocks_throttle_reasons.active --format=csv > "$out/clocks_after.csv" || true
echo "# $(date -u +%F), $gpu; TFLOP/s (fwd: 4*b*s^2*h*d, /2 causal)"
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
