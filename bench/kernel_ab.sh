#!/usr/bin/env bash
# Kernel_bench builds alternated on the same GPU in one command, the way
# every kernel change is judged (docs/KERNEL_BENCH.md): A, B, A, B, ... per
# row (A, B, C, ... with more builds: one command measures several
# variants against one baseline, which then runs once per repeat instead of
# once per variant), so that clock and temperature drift fall on all alike.
# Each repeat starts with the next build in turn (A B, B A, A B, ...; A B
# C, B C A, C A B with three): the build timed first in a row read about
# 1 % apart from the same build timed second on one row's backward lines
# (docs/KERNEL_BENCH.md, thirty-seventh session), and the rotation puts
# that place on every build alike (an even REPEATS for two builds).
#   bench/kernel_ab.sh A_DIR B_DIR[,C_DIR,...] REPEATS ROW...   (each DIR holds kernel_bench)
# Prints which directory each letter is, every run as CSV
# (`variant,repeat,row,impl,pass,ms,tflops`, our kernels' rows only), then
# per row and pass the TFLOP/s of each repeat per variant and each
# variant's median over A's. ROW: a kernel_bench row name
# (bench/kernel_bench.cc), e.g. bf16_b16_s1024_h32_d128_causal. Only kAuto's
# kernels are timed (`kernel_bench 10 ROW auto`); KERNEL_AB_KERNELS=all
# times every kernel by name too, KERNEL_AB_KERNELS=forward only kAuto's
# forward lines (a forward kernel's A/B in less than half the time);
# KERNEL_AB_ITERATIONS=N times N calls a line instead of 10 (100: mostly
# under the GPU's power cap, as a training loop runs; docs/KERNEL_BENCH.md,
# twenty-ninth session);
# KERNEL_AB_SECONDS=S runs each line back to back for at least S seconds
# (kernel_bench's KERNEL_BENCH_SECONDS: the sustained, power-capped rate)
# and adds a second table of GFLOP per joule from NVML's energy counter,
# each variant's median over A's (what a kernel costs under the cap), and a
# third of the mean SM clock while each line ran (where the cap takes it).
# Each such line first settles for KERNEL_BENCH_SETTLE seconds (kernel_bench's,
# passed through; default 3 s of wall-clock time, 0: none, as before the
# forty-first session).
# Stopped by SIGTERM (a `timeout` around it) or SIGINT, it lets the line
# being timed finish, prints the tables of the runs so far and exits 143
# (130).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
usage="usage: bench/kernel_ab.sh A_DIR B_DIR[,C_DIR,...] REPEATS ROW..."
a=${1:?$usage}
others=${2:?$usage}
repeats=${3:?$usage}
shift 3
[[ $# -gt 0 ]] || { echo "$usage" >&2; exit 2; }
IFS=, read -r -a dirs <<< "$others"
dirs=("$a" "${dirs[@]}")
letters=(A B C D E F G H)
(( ${#dirs[@]} <= ${#letters[@]} )) || { echo "at most ${#letters[@]} builds" >&2; exit 2; }
for dir in "${dirs[@]}"; do
  [[ -x "$dir/kernel_bench" ]] || { echo "no executable $dir/kernel_bench" >&2; exit 2; }
done
[[ "$repeats" =~ ^[1-9][0-9]*$ ]] || { echo "REPEATS must be a positive integer: $repeats" >&2; exit 2; }
iterations=${KERNEL_AB_ITERATIONS:-10}
[[ "$iterations" =~ ^[1-9][0-9]*$ ]] || { echo "KERNEL_AB_ITERATIONS must be a positive integer: $iterations" >&2; exit 2; }
seconds=${KERNEL_AB_SECONDS:-}
if [[ -n "$seconds" ]]; then
  [[ "$seconds" =~ ^[0-9]+([.][0-9]+)?$ ]] && awk -v s="$seconds" 'BEGIN { exit !(s > 0 && s <= 3600) }' ||
    { echo "KERNEL_AB_SECONDS must be seconds in (0, 3600]: $seconds" >&2; exit 2; }
  export KERNEL_BENCH_SECONDS="$seconds"
else
  unset KERNEL_BENCH_SECONDS
fi
for i in "${!dirs[@]}"; do echo "# ${letters[i]} = ${dirs[i]}"; done
runs=$(mktemp)
trap 'rm -f "$runs"' EXIT
stop=""
trap 'stop=143' TERM
trap 'stop=130' INT
for ((rep = 1; rep <= repeats; ++rep)); do
  for row in "$@"; do
    for ((k = 0; k < ${#dirs[@]}; ++k)); do
      i=$(( (k + rep - 1) % ${#dirs[@]} ))
      "${dirs[i]}/kernel_bench" "$iterations" "$row" "${KERNEL_AB_KERNELS:-auto}" | awk -F, -v v="${letters[i]}" -v r="$rep" \
        'NR > 1 && $2 ~ /^ringattn/ { print v "," r "," $0 }' | tee -a "$runs" || [[ -n $stop ]]
      [[ -z $stop ]] || break 3
    done
  done
done
echo
[[ -z $stop ]] || echo "# stopped by a signal in repeat $rep of $repeats: the tables hold the runs so far"
variants=$(IFS=,; echo "${letters[*]:0:${#dirs[@]}}")
# One table: per row and pass each repeat's VALUE per variant, then each
# variant's median over A's. VALUE: tflops, gflop_per_joule (the call's
# GFLOP, TFLOP/s x ms, over its joules) or sm_mhz (the mean SM clock).
table() {
  local value=$1 label=$2 header="row,impl,pass"
  for v in ${variants//,/ }; do header+=",$v $label (each repeat)"; done
  for v in ${variants//,/ }; do [[ $v == A ]] || header+=",$v/A (medians)"; done
  echo "$header"
  sort -t, -k3,3 -k4,4 -k5,5 -k1,1 -k2,2n "$runs" | awk -F, -v variants="$variants" -v value="$value" "$(< "$here/table_functions.awk")"'
    {
      key = $3 "," $4 "," $5
      if (!(key in seen)) { seen[key] = 1; order[++n] = key }
      if (value == "tflops") x = $7
      else if (value == "sm_mhz") x = $9 > 0 ? sprintf("%.0f", $9) : ""
      else x = $8 > 0 ? sprintf("%.1f", gflop_per_joule($6, $7, $8)) : ""
      if (x != "") all[key, $1] = all[key, $1] (all[key, $1] == "" ? "" : " ") x
    }
    END {
      nv = split(variants, v, ",")
      for (i = 1; i <= n; ++i) {
        k = order[i]
        line = k
        for (j = 1; j <= nv; ++j) line = line "," all[k, v[j]]
        for (j = 2; j <= nv; ++j) {
          ratio = "-"
          if (all[k, "A"] != "" && all[k, v[j]] != "") {
            ratio = sprintf("%.3f", median(all[k, v[j]]) / median(all[k, "A"]))
          }
          line = line "," ratio
        }
        print line
      }
    }'
}
table tflops "TFLOP/s"
if [[ -n "$seconds" ]]; then
  echo
  table gflop_per_joule "GFLOP/J"
  echo
  table sm_mhz "SM MHz"
fi
[[ -z $stop ]] || exit "$stop"
