#!/usr/bin/env bash
# Device binaries of kernel candidates, built here for a GPU machine without
# Bazel (docs/KERNEL_BENCH.md): each candidate is HEAD with the diffs of
# some commits applied (a candidate lands as a commit followed by its
# revert, so a fresh checkout still holds it), built as every build is
# (.bazelrc's -c opt, the targets' own link options) and xz-packed into
# OUT_DIR/NAME/, the folder a device call
# carries and unpacks (`xz -d`), with a REV file saying what it holds.
#   bench/build_candidates.sh OUT_DIR NAME=[REV[+REV...]]...
# NAME= (no revision) is HEAD itself. The working tree must be clean (no
# changes to tracked files): each candidate's diffs are applied in place
# with `git cherry-pick -n` (incremental builds) and the tree is reset to
# HEAD after it, also when a build or an apply fails. BAZEL names the build
# command (./bazelw by default); CANDIDATE_TARGETS the targets (default:
# flash_test, kernel_bench, ring_backend_test, ring_kernels_test).
set -euo pipefail
usage="usage: bench/build_candidates.sh OUT_DIR NAME=[REV[+REV...]]..."
out=${1:?$usage}
shift
(($# > 0)) || { echo "$usage" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd)  # OUT_DIR as given, before the move to the tree's top
cd "$(git rev-parse --show-toplevel)"
bazel=${BAZEL:-./bazelw}
read -r -a targets <<< "${CANDIDATE_TARGETS:-//cuda/flash:flash_test //bench:kernel_bench //cuda:ring_backend_test //cuda:ring_kernels_test}"
for spec in "$@"; do
  [[ $spec =~ ^[A-Za-z0-9_.-]+=([0-9A-Za-z_./~^-]+(\+[0-9A-Za-z_./~^-]+)*)?$ ]] ||
    { echo "a candidate is NAME=[REV[+REV...]], not: $spec" >&2; exit 2; }
  revs=${spec#*=}
  for rev in ${revs//+/ }; do
    git rev-parse -q --verify "$rev^{commit}" > /dev/null ||
      { echo "$spec: no commit $rev" >&2; exit 2; }
  done
done
git diff --quiet HEAD -- ||
  { echo "the working tree has changes to tracked files: commit or stash them first" >&2; exit 2; }
head=$(git rev-parse --short HEAD)
restore() { git reset -q --hard HEAD; }
trap restore EXIT
for spec in "$@"; do
  name=${spec%%=*}
  revs=${spec#*=}
  for rev in ${revs//+/ }; do
    git cherry-pick -n "$rev" > /dev/null 2>&1 ||
      { echo "$name: $rev does not apply on $head" >&2; exit 1; }
  done
  echo "== $name: $head${revs:+ + ${revs//+/ + }}" >&2
  "$bazel" build "${targets[@]}" >&2 ||
    { echo "$name: the build failed" >&2; exit 1; }
  rm -rf "${out:?}/$name"
  mkdir -p "$out/$name"
  {
    echo "$head${revs:+ + ${revs//+/ + }}"
    git diff --stat HEAD | tail -1
  } > "$out/$name/REV"
  for target in "${targets[@]}"; do
    path=${target#//}
    path="bazel-bin/${path/://}"
    [[ -f $path ]] || { echo "$name: $target built no file $path" >&2; exit 1; }
    xz -T2 -3 -c "$path" > "$out/$name/$(basename "$path").xz"
    echo "$(basename "$path") $(sha256sum < "$path" | cut -c1-16)" >> "$out/$name/REV"
  done
  restore
  echo "$out/$name: $(du -sh "$out/$name" | cut -f1)"
done
