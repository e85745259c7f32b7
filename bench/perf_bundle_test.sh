#!/usr/bin/env bash
# bench/perf_bundle.sh: the bundle unpacks elsewhere and its perf runs
# through the packed loader and libraries (the system's perf out of PATH).
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bench/perf_bundle.sh "$tmp/perf.tar" > "$tmp/log"
grep -q "perf_bundle: $tmp/perf.tar" "$tmp/log"
mkdir "$tmp/unpacked"
tar -C "$tmp/unpacked" -xf "$tmp/perf.tar"
test -x "$tmp/unpacked/perf"
ls "$tmp/unpacked/lib" | grep -q '^ld-linux'
version=$(env -i PATH=/nonexistent "$tmp/unpacked/perf" --version)
[[ $version == "perf version "* ]] || { echo "FAIL: perf --version printed '$version'"; exit 1; }
# Every library perf loads is in the bundle: nothing resolves outside it.
missing=$(env -i "$tmp/unpacked/lib/$(ls "$tmp/unpacked/lib" | grep '^ld-linux')" --list \
            --library-path "$tmp/unpacked/lib" "$tmp/unpacked/lib/perf.bin" | grep -v "$tmp/unpacked" \
            | grep -v -e linux-vdso -e '^\s*/lib64/ld-linux' || true)
[[ -z $missing ]] || { echo "FAIL: resolved outside the bundle: $missing"; exit 1; }
echo "PASS: $version from the bundle"
