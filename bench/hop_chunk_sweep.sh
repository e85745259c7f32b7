#!/usr/bin/env bash
# The ring hop at 8 to 256 MiB per rank with each NCCL P2P chunk size
# (issue #19: the hop at the link's speed for every message size the ring
# sends), ours beside a plain NCCL ring of the same bytes: one
# `ring_bench --hop_only --hop_sweep` per chunk size, one process per GPU
# under torchrun (NCCL reads the chunk size once, at its first
# communicator), then the table:
#   bench/hop_chunk_sweep.sh DIR OUT [--nproc=N] [--chunks=LIST] [ring_bench flags]
#   bench/hop_chunk_sweep.sh --table LOG...        (ring_bench --hop_sweep logs)
# DIR holds ring_bench; LIST is comma-separated NCCL_P2P_NVL_CHUNKSIZE
# values in bytes, "ringattn" for the variable unset (what ringattn sets for
# the ring size, comm::NcclChunkSizeDefault: NCCL's own at 2 ranks, 131072
# at 3 or more); default ringattn,65536,131072,262144,524288,1048576.
# --nproc: ranks (default every GPU nvidia-smi lists; at least 2).
# The table: a line per log (its ranks, the chunk size NCCL read, GB/s ours /
# plain per size; then, where the log has them, the share of the kernels'
# rate a hop took and the other NCCL_* settings it ran under), then per
# size the log whose hop (ours) was fastest and whether it reached issue
# #19's 280 GB/s (from 32 MiB on). Another NCCL variable is swept by running
# this script under each of its values (e.g. NCCL_MAX_NCHANNELS=8 ...), one
# OUT each, then --table over all the logs.
set -uo pipefail
readonly TARGET_GBPS=280 TARGET_FROM_MIB=32
usage() {
  echo "usage: hop_chunk_sweep.sh DIR OUT [--nproc=N] [--chunks=LIST] [ring_bench flags]" >&2
  echo "       hop_chunk_sweep.sh --table LOG..." >&2
  exit 2
}
table() {
  local f
  for f in "$@"; do
    [[ -r "$f" ]] || { echo "hop_chunk_sweep.sh: cannot read $f" >&2; return 1; }
  done
  awk -v target="$TARGET_GBPS" -v from="$TARGET_FROM_MIB" '
    FNR == 1 { file++; name[file] = FILENAME; world[file] = "-"; chunk[file] = "-"; other[file] = "" }
    /^ring_bench: [0-9]+ x / { world[file] = $2 }
    # NCCL settings beside the chunk size (a sweep of another variable runs
    # this script under it) and what a hop leaves the kernels (--hop_only).
    /^NCCL environment: / {
      for (i = 3; i <= NF; i++) {
        if ($i !~ /^NCCL_(P2P_NVL_CHUNKSIZE|NVLS_ENABLE)=/) other[file] = other[file] " " $i
      }
    }
    /^hop share: / && match($0, /takes [0-9.]+ of its rate/) {
      share[file] = substr($0, RSTART + 6, RLENGTH - 6 - 12)
    }
    /^plain NCCL ring hop of / && match($0, /NCCL_P2P_NVL_CHUNKSIZE=[^ ]+/) {
      chunk[file] = substr($0, RSTART + 23, RLENGTH - 23)
      if (chunk[file] == "unset") chunk[file] = "nccl-default"
    }
    # "ring hop sweep (MiB per rank:GB/s ours/plain NCCL): 8:41.1/39.2 16:..."
    /^ring hop sweep / {
      swept[file] = 1
      sub(/^[^)]*\): */, "")
      for (i = 1; i <= NF; i++) {
        split($i, p, ":")
        mib = p[1] + 0
        if (!(mib in known)) { known[mib] = 1; sizes[++n] = mib }
        split(p[2], g, "/")
        ours[file, mib] = g[1]; plain[file, mib] = (2 in g) ? g[2] : "-"
      }
    }
    END {
      if (n == 0) { print "hop_chunk_sweep.sh: no ring hop sweep line in any log" > "/dev/stderr"; exit 1 }
      printf "%-3s %-13s", "W", "chunk"
      for (i = 1; i <= n; i++) printf " %13s", sizes[i] " MiB"
      printf "   (GB/s ours / plain NCCL)\n"
      for (f = 1; f <= file; f++) {
        printf "%-3s %-13s", world[f], chunk[f]
        for (i = 1; i <= n; i++) {
          m = sizes[i]
          printf " %13s", ((f, m) in ours) ? ours[f, m] "/" plain[f, m] : "-"
        }
        extra = ""
        if (f in share) extra = "hop share " share[f]
        if (other[f] != "") extra = extra (extra == "" ? "" : ",") other[f]
        sub(/^ /, "", extra)
        printf "%s%s\n", extra == "" ? "" : "   (" extra ")",
               (f in swept) ? "" : "   (no sweep: " name[f] ")"
      }
      for (i = 1; i <= n; i++) {
        m = sizes[i]; best = 0
        for (f = 1; f <= file; f++) {
          if ((f, m) in ours && (best == 0 || ours[f, m] + 0 > ours[best, m] + 0)) best = f
        }
        if (best == 0) continue
        verdict = m < from ? "" : (ours[best, m] + 0 >= target ? "  reaches " target " GB/s" \
                                                              : "  below " target " GB/s")
        printf "%s MiB: fastest with chunk %s%s (W = %s): %s GB/s%s\n", m, chunk[best], other[best],
               world[best], ours[best, m], verdict
      }
    }' "$@"
}
if [[ "${1:-}" == --table ]]; then
  shift
  [[ $# -ge 1 ]] || usage
  table "$@"
  exit
fi
[[ $# -ge 2 ]] || usage
dir="$1"; out="$2"; shift 2
[[ -x "$dir/ring_bench" ]] || { echo "hop_chunk_sweep.sh: no ring_bench in $dir" >&2; exit 2; }
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
nproc=$gpus
chunks="ringattn,65536,131072,262144,524288,1048576"
flags=()
for arg in "$@"; do
  case "$arg" in
    --nproc=*) nproc="${arg#--nproc=}" ;;
    --chunks=*) chunks="${arg#--chunks=}" ;;
    *) flags+=("$arg") ;;
  esac
done
[[ "$nproc" =~ ^[0-9]+$ && "$nproc" -ge 2 && "$nproc" -le "$gpus" ]] || {
  echo "hop_chunk_sweep.sh: --nproc is '$nproc'; expected 2 to the $gpus GPU(s) nvidia-smi lists" >&2
  exit 2
}
IFS=, read -r -a list <<< "$chunks"
[[ ${#list[@]} -ge 1 ]] || { echo "hop_chunk_sweep.sh: --chunks is empty" >&2; exit 2; }
for c in "${list[@]}"; do
  [[ "$c" == ringattn || "$c" =~ ^[1-9][0-9]*$ ]] || {
    echo "hop_chunk_sweep.sh: chunk size '$c'; expected bytes (a positive integer) or ringattn" >&2
    exit 2
  }
done
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0
logs=()
for c in "${list[@]}"; do
  log="$out/hop_chunk_$c.txt"
  rm -f "$out/hop_chunk_$c.id"
  if [[ "$c" == ringattn ]]; then
    setting=(-u NCCL_P2P_NVL_CHUNKSIZE)
  else
    setting=("NCCL_P2P_NVL_CHUNKSIZE=$c")
  fi
  env "${setting[@]}" torchrun --nproc_per_node="$nproc" --no-python "$dir/ring_bench" \
    --comm=nccl_env --nccl_id_file="$out/hop_chunk_$c.id" --hop_only --hop_sweep \
    ${flags[@]+"${flags[@]}"} 2>&1 | grep -v "^W[0-9]" > "$log"
  grep -q '^ring hop sweep ' "$log" ||
    { echo "hop_chunk_sweep.sh: chunk $c: no sweep; its log ends:" >&2; tail -n 5 "$log" >&2; }
  logs+=("$log")
done
table "${logs[@]}" | tee "$out/table.txt"
