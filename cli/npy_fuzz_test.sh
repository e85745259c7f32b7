#!/usr/bin/env bash
# Builds the .npy parser with libFuzzer (clang) and fuzzes it for a short
# while from a seed corpus; a crash or sanitizer report fails the test.
# Longer runs: NPY_FUZZ_SECONDS=600 bazel test //cli:npy_fuzz_test.
set -euo pipefail
seconds="${NPY_FUZZ_SECONDS:-15}"
work="${TEST_TMPDIR:-$(mktemp -d)}"
libs=$(ls /usr/lib/x86_64-linux-gnu/libabsl_*.a)
clang++ -std=c++17 -O1 -g -I. -fsanitize=fuzzer,address,undefined \
  cli/npy_fuzz.cc cli/npy.cc -o "$work/npy_fuzz" \
  -Wl,--start-group $libs -Wl,--end-group -lpthread
mkdir -p "$work/corpus"
# Seeds: a valid file per dtype and header version, and broken ones.
printf '\x93NUMPY\x01\x00\x46\x00{'"'"'descr'"'"': '"'"'<f4'"'"', '"'"'fortran_order'"'"': False, '"'"'shape'"'"': (2, 1), }       \n' > "$work/corpus/f4"
head -c 8 /dev/zero >> "$work/corpus/f4"
printf '\x93NUMPY\x02\x00\x3c\x00\x00\x00{'"'"'descr'"'"': '"'"'<i8'"'"', '"'"'fortran_order'"'"': False, '"'"'shape'"'"': (1,), }\n' > "$work/corpus/i8v2"
head -c 8 /dev/zero >> "$work/corpus/i8v2"
printf '\x93NUMPY\x01\x00\xff\xff{' > "$work/corpus/long"
"$work/npy_fuzz" -max_total_time="$seconds" -rss_limit_mb=1024 \
  -artifact_prefix="$work/" "$work/corpus" 2>&1 | tail -5
echo "npy fuzzing: ${seconds}s clean"
