#!/usr/bin/env bash
# The varlen layouts side by side at W = 8 on 65536 tokens (8192 per rank,
# 32 query / 8 kv heads, d128, causal, bf16): ring-flash-attention's four
# document sets and lognormal random mixes. Per layout: block tasks, rank
# FLOP imbalance and lockstep efficiency (`ringattn plan`), and the
# simulated fwd+bwd iteration on the h200 calibration (`ringattn sim`).
#   bench/layout_compare.sh [RINGATTN_BINARY]     (default bazel-bin/cli/ringattn)
set -euo pipefail
R=${1:-bazel-bin/cli/ringattn}
shape="--world=8 --seqlen=65536 --num_heads=32 --num_kv_heads=8"
sets=("seed 1 doc:0,65536" "seed 3 docs:0,2048,61184,65536" "seed 2 docs:0,32768,65536"
      "seed 5 docs:0,24832,50432,63232,64512,65536")
for median in 64 512 2048 8192; do
  cu=$(python3 -c "
import math, random
random.seed($median)
cu = [0]
while cu[-1] < 65536:
    n = max(1, min(65536, round(math.exp(random.gauss(math.log($median), 1.0)))))
    cu.append(min(65536, cu[-1] + n))
print(','.join(map(str, cu)))")
  sets+=("lognormal median $median, $(($(tr -cd , <<<"$cu" | wc -c))) docs:$cu")
done
echo "| documents | layout | block tasks | rank imbalance | lockstep eff. | sim fwd+bwd ms | sim eff. |"
echo "|---|---|---|---|---|---|---|"
for entry in "${sets[@]}"; do
  name=${entry%%:*}; cu=${entry#*:}
  plan=$("$R" plan --layout=all $shape --cu_seqlens="$cu")
  for layout in zigzag stripe llama3 balanced; do
    read -r tasks imbalance lockstep < <(awk -v l="$layout" '$1 == l {print $7, $13, $NF}' <<<"$plan")
    extra=""; [[ $layout == llama3 ]] && extra="--kv_heads_per_group=4"
    read -r ms eff < <("$R" sim --layout=$layout $shape --cu_seqlens="$cu" $extra |
                       awk 'NR == 2 {print $2, $11}')
    echo "| $name | $layout | $tasks | $imbalance | $lockstep | $ms | ${eff%,} |"
  done
done
