#!/usr/bin/env bash
# ringattn's NCCL groups issued on the non-blocking communicator (the
# default) and on the blocking one (RINGATTN_NCCL_ISSUE=blocking,
# comm/nccl_communicator.h), one ring_bench process per GPU under torchrun,
# --timeline, the same flags, one after the other; then the comparison:
#   bench/nccl_issue_ab.sh DIR OUT [ring_bench flags]   (DIR holds ring_bench)
#   bench/nccl_issue_ab.sh --compare A.txt B.txt        (two ring_bench logs)
# The comparison prints each log's hop issue line, then per row and pass the
# measured ms of A and B and B / A, and the host ms at which the pass's
# first kernel was enqueued (the --timeline "ring" line; "-" without one).
set -u
compare() {
  local a="$1" b="$2" f
  for f in "$a" "$b"; do
    [[ -r "$f" ]] || { echo "nccl_issue_ab.sh: cannot read $f" >&2; return 1; }
    echo "$(basename "$f"): $(grep -m1 '^hop issue' "$f" || echo '(no hop issue line)')"
  done
  awk '
    # A row: name, pass, ..., measured ms, sim ms, error (ring_bench.sh reads $(NF-2)).
    FNR == 1 { file++ }
    ($2 == "fwd" || $2 == "fwd+bwd") && NF > 6 && $(NF-2) ~ /^[0-9.]+$/ {
      key = $1 " " $2
      if (!(key in seen)) { seen[key] = 1; order[++n] = key }
      ms[file, key] = $(NF-2)
    }
    # --timeline: "timeline: ROW PASS ring[ (one document set)]: start ...; the
    # forward kernel G (H); ...": H of the first such line of the row and pass.
    $1 == "timeline:" && $4 ~ /^ring/ && !((file, $2 " " $3) in first) {
      key = $2 " " $3
      if (match($0, /kernel [0-9.]+ \([0-9.]+\)/)) {
        s = substr($0, RSTART, RLENGTH)
        sub(/.*\(/, "", s); sub(/\)/, "", s)
        first[file, key] = s
      }
    }
    END {
      if (n == 0) { print "nccl_issue_ab.sh: no rows in either log" > "/dev/stderr"; exit 1 }
      printf "%-16s %-8s %10s %10s %7s %12s %12s\n", "row", "pass", "A ms", "B ms", "B / A",
             "A 1st kernel", "B 1st kernel"
      for (i = 1; i <= n; i++) {
        key = order[i]; split(key, k, " ")
        a = ms[1, key]; b = ms[2, key]
        r = (a != "" && b != "" && a > 0) ? sprintf("%.3f", b / a) : "-"
        printf "%-16s %-8s %10s %10s %7s %12s %12s\n", k[1], k[2], (a == "" ? "-" : a),
               (b == "" ? "-" : b), r, (first[1, key] == "" ? "-" : first[1, key]),
               (first[2, key] == "" ? "-" : first[2, key])
      }
    }' "$a" "$b"
}
if [[ "${1:-}" == --compare ]]; then
  [[ $# -eq 3 ]] || { echo "usage: nccl_issue_ab.sh --compare A.txt B.txt" >&2; exit 2; }
  compare "$2" "$3"
  exit
fi
[[ $# -ge 2 ]] || { echo "usage: nccl_issue_ab.sh DIR OUT [ring_bench flags]" >&2; exit 2; }
dir="$1"; out="$2"; shift 2
[[ -x "$dir/ring_bench" ]] || { echo "nccl_issue_ab.sh: no ring_bench in $dir" >&2; exit 2; }
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
[[ "$gpus" -ge 2 ]] || { echo "nccl_issue_ab.sh: needs two GPUs or more (nvidia-smi lists $gpus)" >&2; exit 2; }
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0
for issue in nonblocking blocking; do
  rm -f "$out/nccl_$issue.id"
  RINGATTN_NCCL_ISSUE=$issue torchrun --nproc_per_node="$gpus" --no-python "$dir/ring_bench" \
    --comm=nccl_env --nccl_id_file="$out/nccl_$issue.id" --timeline "$@" 2>&1 \
    | grep -v "^W[0-9]" > "$out/ring_bench_$issue.txt"
done
compare "$out/ring_bench_nonblocking.txt" "$out/ring_bench_blocking.txt" | tee "$out/compare.txt"
