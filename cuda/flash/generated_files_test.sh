#!/usr/bin/env bash
# Fails when a checked-in generated file differs from what generate.py
# writes (fix: python3 cuda/flash/generate.py).
set -euo pipefail
exec python3 cuda/flash/generate.py --check --root=.
