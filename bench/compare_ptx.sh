#!/usr/bin/env bash
# Proves a host-side or refactoring change left the CUDA kernels alone:
# compiles every cuda/*.cu and cuda/flash/*.cu to PTX for compute_80 and
# compute_90a, in the working tree and at BASE_REV, and compares them (no
# line info; comments and the hash-based names of internal-linkage and
# anonymous-namespace symbols normalized, as they follow the file's text).
#   bench/compare_ptx.sh BASE_REV      prints "same" or "DIFF" per file; exit 1 on any DIFF
set -euo pipefail
base_rev=${1:?usage: bench/compare_ptx.sh BASE_REV}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/base" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git worktree add -q --detach "$tmp/base" "$base_rev"

ptx() {  # ptx TREE OUT
  local tree=$1 out=$2
  mkdir -p "$out"
  (cd "$tree" && ls cuda/*.cu cuda/flash/*.cu) | while read -r f; do
    for arch in 80 90a; do echo "$f $arch"; done
  done | xargs -P "$(nproc)" -n 2 bash -c '
    n=$(echo "$0" | tr / _).$1
    cd "'"$tree"'"
    /usr/local/cuda/bin/nvcc -std=c++17 -O3 --expt-relaxed-constexpr -I. -arch=compute_$1 \
      -ptx "$0" -o "'"$out"'/$n.raw"
    sed -E "s/_INTERNAL_[0-9a-f]+_/_INTERNAL_X_/g; s/_GLOBAL__N__[0-9a-f]+_/_GLOBAL__N__X_/g; s/_cu_[0-9a-f]{8}_[0-9]+/_cu_X_/g" \
      "'"$out"'/$n.raw" | grep -v "^\s*//" > "'"$out"'/$n.ptx"'
}
ptx "$PWD" "$tmp/head"
ptx "$tmp/base" "$tmp/base_ptx"
status=0
for f in "$tmp"/head/*.ptx; do
  name=$(basename "$f" .ptx)
  if cmp -s "$f" "$tmp/base_ptx/$name.ptx"; then
    echo "same  $name"
  else
    echo "DIFF  $name"
    status=1
  fi
done
exit $status
