#!/usr/bin/env bash
# The ringattn binary: the README's plan command works, bad input is a clear
# error with a non-zero exit, never a crash.
set -u
bin="cli/ringattn"
fail=0
expect() {  # expect <description> <want exit code> <want substring> -- args
  local what="$1" code="$2" want="$3"; shift 4
  local out rc
  out=$("$bin" "$@" 2>&1); rc=$?
  if [[ $rc -ne $code || "$out" != *"$want"* ]]; then
    echo "FAIL: $what: exit $rc (want $code), output:"; echo "$out" | head -20
    fail=1
  else
    echo "ok: $what"
  fi
}
expect "default plan" 0 "lockstep efficiency" -- plan --seqlen=4096
expect "comparison" 0 "stripe  world 8" -- plan --layout=all --seqlen=4096
expect "varlen" 0 "documents" -- plan --layout=zigzag --world=2 --seqlen=64 --cu_seqlens=0,16,64
expect "indivisible seqlen" 1 "seqlen 1000 is not divisible by 2*ring_size = 16 (zigzag)" -- plan --seqlen=1000
expect "bad cu_seqlens" 1 "cu_seqlens ends at 60; expected the total token count 64" -- plan --world=2 --seqlen=64 --cu_seqlens=0,16,60
expect "bad heads" 1 "num_heads 32 is not a multiple of num_kv_heads 5" -- plan --num_kv_heads=5
expect "negative window" 1 "window_left is -4" -- plan --window_left=-4
expect "no subcommand" 2 "expected one subcommand" --
expect "unknown subcommand" 2 "got fly" -- fly
exit $fail
