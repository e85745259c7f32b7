#!/usr/bin/env bash
# Fails, listing the files, when a C++/CUDA source differs from what
# clang-format makes of it. Fix: clang-format -i FILE...
set -uo pipefail
if ! command -v clang-format >/dev/null; then
  echo "clang-format not found (./bazelw installs it: Debian package clang-format)" >&2
  exit 1
fi
files=$(find -L . \( -name '*.cc' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) \
          -not -path './external/*' -not -name 'wgmma_ops.cuh' | sort)
count=$(echo "$files" | grep -c .)
if [[ $count -lt 100 ]]; then
  echo "found only $count sources in the runfiles; expected the whole tree" >&2
  exit 1
fi
bad=()
for f in $files; do
  clang-format --style=file:.clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("${f#./}")
done
if ((${#bad[@]})); then
  printf 'not formatted (clang-format -i): %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "$count files formatted"
