#!/usr/bin/env bash
# torchrun (one node) for a test, on a rendezvous port of its own: torch
# 1.13's --standalone always takes localhost:29400, so two runs at once (bazel
# runs tests in parallel) joined one rendezvous and one of them aborted.
#   python/torchrun_test.sh [torchrun flags] SCRIPT.py [ARGS...]
set -euo pipefail
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("localhost", 0)); print(s.getsockname()[1])')
# Each rank's redirected output goes to the test's outputs (outputs.zip).
export PYTHONFAULTHANDLER=1  # a rank that aborts prints where (in its stderr.log)
exec python/python_test.sh -m torch.distributed.run --nnodes=1 --rdzv_backend=c10d \
  --rdzv_endpoint="localhost:$port" --rdzv_id="ringattn-test-$port" \
  --log_dir="${TEST_UNDECLARED_OUTPUTS_DIR:-${TMPDIR:-/tmp}}/torchrun" "$@"
