#!/usr/bin/env bash
# Runs a Python test of the package against the built libringattn.so, with
# Debian's python3 (python3-numpy, which ./bazelw installs).
#   python/python_test.sh SCRIPT.py [ARGS...]
set -euo pipefail
lib=python/libringattn.so
source python/sanitizer_env.sh
export RINGATTN_LIB="$lib" PYTHONPATH=python  # ringattn/ and test_util.py
exec /usr/bin/python3 "$@"
