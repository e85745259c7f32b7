#!/usr/bin/env bash
# Hostile flags (#21): plan, run (CPU) and sim with every numeric, list and
# choice flag set in turn to 0, -1, 2^31, 2^62, 2^63-1, nan, inf, empty and
# garbage, on a small base problem. Each must exit 0 or 1 (never a signal,
# an abort or a timeout), say why when it exits 1, finish within 20 s, and
# leave no file behind when it fails.
set -u
bin="cli/ringattn"
work="${TEST_TMPDIR:-$(mktemp -d)}/flag_fuzz"
mkdir -p "$work"
values=(0 -1 2147483648 4611686018427387904 9223372036854775807 nan inf "" garbage)
declare -A base=(
  [plan]="--seqlen=256 --num_heads=2 --head_dim=16"
  [run]="--random --world=2 --seqlen=64 --num_heads=2 --head_dim=16"
  [sim]="--world=4 --seqlen=4096 --num_heads=4 --head_dim=64")
common="world ring_size stripe_width kv_heads_per_group batch seqlen num_heads num_kv_heads
        head_dim window_left window_right cu_seqlens key_lengths layout causal softmax_scale dtype"
declare -A only=(
  [plan]=""
  [run]="seed timeout_s gpus inject_fault_rank inject_fault backend comm check backward"
  [sim]="gpu nodes gpus_per_node link_GBps link_latency_us internode_GBps hop_issue_us
         hop_sm_share sweep_worlds
         sweep_tokens_per_rank sweep_ring_sizes sweep_link_GBps sweep_layouts")
cases=0 bad=0
for cmd in plan run sim; do
  for flag in $common ${only[$cmd]}; do
    for value in "${values[@]}"; do
      cases=$((cases + 1))
      outputs=()
      [[ $flag == sweep_* ]] && outputs=(--sweep_csv="$work/sweep.csv")
      [[ $cmd == run ]] && outputs=(--out="$work/o.npy" --lse="$work/lse.npy")
      start=$(date +%s%N)
      text=$(cd "$work" && timeout -k 5 60 "$OLDPWD/$bin" $cmd ${base[$cmd]} --$flag="$value" \
               "${outputs[@]}" 2>&1)
      rc=$?
      ms=$((($(date +%s%N) - start) / 1000000))
      why=""
      if [[ $rc -ne 0 && $rc -ne 1 ]]; then why="exit $rc"; fi
      if [[ $rc -eq 1 && -z "$text" ]]; then why="no message"; fi
      if [[ $ms -gt 20000 ]]; then why="$why ${ms} ms"; fi
      if [[ $rc -ne 0 && -n "$(ls -A "$work")" ]]; then why="$why left $(ls "$work")"; fi
      if [[ -n "$why" ]]; then
        echo "FAIL: $cmd --$flag='$value': $why: $(echo "$text" | tail -1 | cut -c1-200)"
        bad=$((bad + 1))
      fi
      rm -rf "${work:?}"/*
    done
  done
done
echo "$cases cases, $bad failed"
[[ $bad -eq 0 ]]
