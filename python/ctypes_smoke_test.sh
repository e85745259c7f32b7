#!/usr/bin/env bash
set -euo pipefail
python3 python/ctypes_smoke.py python/libringattn.so
