#!/usr/bin/env bash
set -euo pipefail
lib=python/libringattn.so
# Under --config=asan|tsan the library needs its sanitizer runtime loaded
# first (Python itself is not instrumented; its own leaks are not ours).
runtime=$(ldd "$lib" | grep -oE '/[^ ]*lib(a|t|ub)san\.so[^ ]*' | head -1 || true)
if [[ "$runtime" == *libtsan* ]]; then
  # TSan cannot be preloaded into an uninstrumented interpreter (it crashes);
  # //:ringattn_c_test covers the ABI's threads under TSan.
  echo "skipped under ThreadSanitizer: $runtime cannot be preloaded into python3"
  exit 0
fi
if [[ -n "$runtime" ]]; then
  export LD_PRELOAD="$runtime" ASAN_OPTIONS=detect_leaks=0
fi
python3 python/ctypes_smoke.py "$lib"
