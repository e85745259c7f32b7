#!/usr/bin/env bash
# Our kernel beside cuDNN's in ncu, one launch of each on the same row, the
# way the thirtieth session found that cuDNN executes the same tensor
# instructions and exponentials as ours, in less time (docs/KERNEL_BENCH.md):
#   bench/ncu_compare.sh BIN_DIR OUT_DIR ROW [PASS...]     (PASS: fwd, bwd; both by default)
# BIN_DIR holds kernel_bench (ours: `kernel_bench 2 ROW auto`); cuDNN's side
# runs bench/torch_sdpa_bench.py on the same row. Kernels by name: ours
# FlashForward / FlashBackward, cuDNN's fprop / bprop (the first launch
# whose name matches). Prints per row and pass each metric, ours, cuDNN's
# and ours / cuDNN: time (us), warp instructions, tensor (HGMMA)
# instructions, MUFU (xu pipe) instructions, issue-active %, warps active
# per cycle, DRAM bytes read, L2 sectors (all, the SMs' reads, across the
# fabric between the L2's halves) and hit rate, then warps stalled per
# issued instruction by reason. Every ncu output is kept in OUT_DIR. NCU and PYTHON name the
# tools (ncu, python3 by default).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
usage="usage: bench/ncu_compare.sh BIN_DIR OUT_DIR ROW [fwd|bwd]..."
bin=${1:?$usage}
out=${2:?$usage}
row=${3:?$usage}
shift 3
passes=("$@")
(( ${#passes[@]} > 0 )) || passes=(fwd bwd)
for pass in "${passes[@]}"; do
  [[ $pass == fwd || $pass == bwd ]] || { echo "PASS must be fwd or bwd: $pass" >&2; exit 2; }
done
[[ -x "$bin/kernel_bench" ]] || { echo "no executable $bin/kernel_bench" >&2; exit 2; }
[[ "$row" =~ ^[A-Za-z0-9_]+$ ]] || { echo "ROW must be a kernel_bench row name: $row" >&2; exit 2; }
mkdir -p "$out"
ncu=${NCU:-ncu}
python=${PYTHON:-python3}
stalls=(gmma math_pipe_throttle barrier membar long_scoreboard short_scoreboard wait selected
        not_selected dispatch_stall mio_throttle lg_throttle no_instruction sleeping
        branch_resolving misc)
metrics=gpu__time_duration.sum,smsp__inst_executed.sum,sm__inst_executed_pipe_tensor_op_gmma.sum
metrics+=,smsp__inst_executed_pipe_xu.sum,smsp__issue_active.avg.pct_of_peak_sustained_elapsed
metrics+=,smsp__warps_active.avg.per_cycle_active,dram__bytes_read.sum
# The L2's sector work: all, the SMs' reads, between the L2's two halves
# (the fabric; ours +45 % over cuDNN's on the b16 forward, thirty-ninth
# session), and its hit rate.
metrics+=,lts__t_sectors.sum,lts__t_sectors_srcunit_tex_op_read.sum
metrics+=,lts__t_sectors_srcunit_ltcfabric.sum,lts__t_sector_hit_rate.pct
for r in "${stalls[@]}"; do metrics+=,smsp__average_warps_issue_stalled_${r}_per_issue_active.ratio; done

# name=value lines of one ncu output (the time in us, bytes and sectors in
# units, thousands separators dropped), then kernel=NAME.
parse() {
  awk '
    /^  [^ =]/ && kernel == "" { kernel = $0; sub(/^ +/, "", kernel); sub(/, Context .*/, "", kernel) }
    $1 ~ /__/ && NF >= 2 {
      v = $NF; gsub(",", "", v)
      if (v !~ /^[0-9.]+$/) next
      unit = NF >= 3 ? $(NF - 1) : ""
      if ($1 == "gpu__time_duration.sum") {
        if (unit == "ns") v /= 1000; else if (unit == "ms") v *= 1000; else if (unit == "s") v *= 1e6
      }
      # Counts of bytes and sectors (Kbyte, Msector, ...) in units.
      if (unit ~ /^[KMG](byte|sector)$/) {
        v = sprintf("%.0f", v * (unit ~ /^K/ ? 1e3 : unit ~ /^M/ ? 1e6 : 1e9))
      }
      print $1 "=" v
    }
    END { print "kernel=" kernel }' "$1"
}

status=0
for pass in "${passes[@]}"; do
  if [[ $pass == fwd ]]; then ours_k=FlashForward cudnn_k=fprop; else ours_k=FlashBackward cudnn_k=bprop; fi
  "$ncu" --metrics "$metrics" -k "regex:$ours_k" -c 1 "$bin/kernel_bench" 2 "$row" auto \
    > "$out/ours_${row}_$pass.txt" 2>&1 || { echo "# ours $row $pass: ncu failed (see $out)" >&2; status=1; }
  "$ncu" --metrics "$metrics" -k "regex:$cudnn_k" -c 1 "$python" "$here/torch_sdpa_bench.py" 1 "$row" \
    > "$out/cudnn_${row}_$pass.txt" 2>&1 || { echo "# cuDNN $row $pass: ncu failed (see $out)" >&2; status=1; }
  awk -F= -v row="$row" -v pass="$pass" '
    FNR == 1 { side++ }
    $1 == "kernel" { name[side] = substr($0, 8); next }
    { if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } value[side, $1] = $2 }
    END {
      printf "# %s %s: ours %s | cuDNN %s\n", row, pass, name[1] == "" ? "(no launch)" : name[1],
             name[2] == "" ? "(no launch)" : name[2]
      print "metric,ours,cudnn,ours/cudnn"
      for (i = 1; i <= n; ++i) {
        m = order[i]; label = m
        sub(/^smsp__average_warps_issue_stalled_/, "stall_", label)
        sub(/_per_issue_active\.ratio$/, "", label)
        a = value[1, m]; b = value[2, m]
        ratio = (a != "" && b != "" && b + 0 != 0) ? sprintf("%.3f", a / b) : "-"
        printf "%s,%s,%s,%s\n", label, a == "" ? "-" : a, b == "" ? "-" : b, ratio
      }
    }' <(parse "$out/ours_${row}_$pass.txt") <(parse "$out/cudnn_${row}_$pass.txt")
done
exit $status
