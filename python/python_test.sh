#!/usr/bin/env bash
# Runs a Python test of the package against the built libringattn.so, with
# Debian's python3 (python3-numpy, which ./bazelw installs).
#   python/python_test.sh SCRIPT.py [ARGS...]
set -euo pipefail
lib=python/libringattn.so
# Under --config=asan|ubsan the library needs its sanitizer runtime loaded
# first (python3 itself is not instrumented; its own leaks are not ours).
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
export RINGATTN_LIB="$lib" PYTHONPATH=python  # ringattn/ and test_util.py
exec /usr/bin/python3 "$@"
