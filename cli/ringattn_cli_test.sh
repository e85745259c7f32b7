#!/usr/bin/env bash
# The ringattn binary: the README's commands work, outputs round-trip
# through .npy, and bad input is a clear error with a non-zero exit, never a
# crash or a hang.
set -u
bin="cli/ringattn"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
fail=0
expect() {  # expect <description> <want exit code> <want substring> -- args
  local what="$1" code="$2" want="$3"; shift 4
  local out rc
  # Each command within 120 s (RINGATTN_CLI_TIMEOUT_S: more under TSan).
  out=$(timeout "${RINGATTN_CLI_TIMEOUT_S:-120}" "$bin" "$@" 2>&1); rc=$?
  if [[ $rc -ne $code || "$out" != *"$want"* ]]; then
    echo "FAIL: $what: exit $rc (want $code, text '$want'), output:"; echo "$out" | head -30
    fail=1
  else
    echo "ok: $what"
  fi
  last="$out"
}
# Every max-rel error that --check printed is at most $1.
errors_below() {
  echo "$last" | awk -v bound="$1" '
    /^  (out|lse|dq|dk|dv) / { n++; if ($3 + 0 > bound + 0) { bad = 1; print "error " $0 } }
    END { exit (n == 5 && !bad) ? 0 : 1 }' || { echo "FAIL: errors above $1"; fail=1; }
}

expect "default plan" 0 "lockstep efficiency" -- plan --seqlen=4096
expect "plan comparison" 0 "stripe  world 8" -- plan --layout=all --seqlen=4096
expect "plan varlen" 0 "documents" -- plan --layout=zigzag --world=2 --seqlen=64 --cu_seqlens=0,16,64
# Documents of any length (issue #18) and the balanced layout.
expect "varlen zigzag, any lengths" 0 "check against the fp64 oracle" -- run --random --layout=zigzag --world=4 --seqlen=256 --cu_seqlens=0,17,100,101,256 --check
errors_below 1e-5
expect "varlen ring, any lengths" 0 "check against the fp64 oracle" -- run --random --layout=ring --world=2 --seqlen=2048 --cu_seqlens=0,17,700,701,2048 --check
errors_below 1e-5
expect "balanced run" 0 "check against the fp64 oracle" -- run --random --layout=balanced --world=3 --seqlen=301 --cu_seqlens=0,1,5,90,91,150,301 --check
errors_below 1e-5
expect "plan all varlen lists balanced" 0 "balanced world 8" -- plan --layout=all --seqlen=65536 --cu_seqlens=0,2048,61184,65536
expect "plan auto" 0 "layout auto: zigzag (simulated fwd+bwd on h200" -- plan --layout=auto --seqlen=65536 --num_kv_heads=8
expect "run auto" 0 "layout auto: " -- run --random --layout=auto --world=4 --seqlen=256 --cu_seqlens=0,10,40,45,90,130,131,200,256 --check
errors_below 1e-5
expect "plan indivisible seqlen" 1 "seqlen 1000 is not divisible by 2*ring_size = 16 (zigzag)" -- plan --seqlen=1000
expect "plan bad cu_seqlens" 1 "cu_seqlens ends at 60; expected the total token count 64" -- plan --world=2 --seqlen=64 --cu_seqlens=0,16,60
expect "plan bad heads" 1 "num_heads 32 is not a multiple of num_kv_heads 5" -- plan --num_kv_heads=5
expect "plan negative window" 1 "window_left is -4" -- plan --window_left=-4
expect "no subcommand" 2 "expected one subcommand" --
expect "unknown subcommand" 2 "got fly" -- fly
# Each subcommand owns the flags of its files (cli/subcommands.h).
for f in problem compute run sim; do
  expect "--help lists cli/${f}_flags.cc" 1 "Flags from cli/${f}_flags.cc" -- --help
done
expect "a sim flag on plan" 1 "--gpu does not apply to \`plan\`" -- plan --gpu=h100
expect "a run flag on sim" 1 "--check, --q do not apply to \`sim\`" -- sim --q=x.npy --check
expect "a compute flag on plan" 1 "--dtype does not apply to \`plan\`" -- plan --dtype=float16
# The simulator's ranks are fibers: 2048 ranks (4.2 M block tasks) take
# about a second and no wall-clock waits (it took 7 s with a thread per rank).
# (Efficiency: the ideal, compute alone, over the iteration, which the hops
# set here: 59.6 % until the backward steps whose tasks store every dK/dV row
# skipped their zeroing, fifty-second session; 49.7 % until the steps on
# blocks no query meets left their rows for the arriving partial sum to set,
# fifty-third; the iteration 51.973 -> 51.968 ms.)
expect "sim of 2048 ranks" 0 "efficiency 39.8%, 4196352 block tasks" -- sim --world=2048 --seqlen=4096 --layout=ring
# Planning and simulation cost O(tasks): a huge batch is one row's count
# times the rows; documents of a 2^31-token sequence need no per-token table;
# pair counts stay exact up to 2^31 tokens (they wrapped past 2^32 before).
expect "plan of 2^36 batch rows" 0 "total    37383.4 GFLOP" -- plan --batch=68719476736 --seqlen=16 --num_heads=1 --head_dim=1
# (zigzag at W = 8: 240 tasks since the last rank's middle chunks are one
# run, 2026-12-03; 272 before)
expect "sim of 2^36 batch rows" 0 "240 block tasks" -- sim --batch=68719476736 --seqlen=16 --num_heads=1 --head_dim=1
expect "plan of 2^31 tokens, exact FLOPs" 0 "total 9223372041.1 GFLOP" -- plan --seqlen=2147483648 --num_heads=1 --head_dim=1
expect "plan of 2^31 tokens in documents" 0 "total 4611686022.7 GFLOP" -- plan --world=2 --seqlen=2147483648 --num_heads=1 --head_dim=1 --cu_seqlens=0,1073741824,2147483648
expect "seqlen above 2^31" 1 "seqlen_q is 4294967296; expected at most 2^31" -- plan --seqlen=4294967296 --num_heads=1 --head_dim=1
expect "stripe plan of 2^30 tokens (O(width), not O(tokens))" 0 "total 18446744090.9 GFLOP" -- plan --layout=stripe --seqlen=1073741824 --num_heads=1 --head_dim=8

# run: the README's default, then every layout with GQA and a window.
expect "default run" 0 "check against the fp64 oracle" -- run --random --check --seqlen=256
errors_below 1e-5
for layout in ring zigzag stripe llama3; do
  expect "run $layout GQA window" 0 "backward" -- run --random --check --layout=$layout \
    --world=4 --seqlen=128 --num_heads=4 --num_kv_heads=2 --head_dim=16 --window_left=20
  errors_below 1e-5
done
expect "run varlen zigzag" 0 "3 documents" -- run --random --check --layout=zigzag --world=2 \
  --seqlen=96 --cu_seqlens=0,32,40,96 --num_heads=2 --head_dim=16
errors_below 1e-5

# --backend=cuda: every layout on virtual ranks where a GPU is, a clear
# error where none is.
expect "run bad backend" 1 "--backend is 'tpu'; expected cpu or cuda" -- run --random --backend=tpu
expect "run negative gpus" 1 "--gpus is -1" -- run --random --backend=cuda --gpus=-1
expect "run bad comm" 1 "--comm is 'ib'; expected one of auto, threads" -- run --random --comm=ib
expect "run device comm on cpu" 1 "--comm=device moves device buffers; expected --backend=cuda" \
  -- run --random --comm=device
expect "run nccl_env without a launcher" 1 "no launcher environment" -- run --random --backend=cuda --comm=nccl_env
if nvidia-smi -L > /dev/null 2>&1; then
  for layout in ring zigzag stripe llama3; do
    for comm in threads device; do
      expect "run cuda $layout $comm" 0 "backward" -- run --random --check --backend=cuda \
        --comm=$comm --layout=$layout --world=4 --seqlen=512 --num_heads=4 --num_kv_heads=2 \
        --head_dim=64
      errors_below 1e-5
    done
  done
else
  expect "run cuda without a GPU" 1 "no usable CUDA device" -- run --random --backend=cuda
fi

# .npy round trip: write O, use it as q, k, v and dO of a second run.
expect "run writes npy" 0 "forward" -- run --random --seqlen=64 --num_heads=2 --head_dim=16 \
  --world=2 --out="$tmp/x.npy" --lse="$tmp/lse.npy" --dq="$tmp/dq.npy"
for f in x lse dq; do [[ -s "$tmp/$f.npy" ]] || { echo "FAIL: $f.npy missing"; fail=1; }; done
expect "run reads npy" 0 "check against" -- run --q="$tmp/x.npy" --k="$tmp/x.npy" --v="$tmp/x.npy" \
  --do="$tmp/x.npy" --world=2 --check --out="$tmp/o2.npy" --dk="$tmp/dk2.npy"
errors_below 1e-5
head -c 300 "$tmp/x.npy" > "$tmp/short.npy"
expect "truncated npy" 1 "short.npy: data has" -- run --q="$tmp/short.npy" --k="$tmp/x.npy" --v="$tmp/x.npy" --world=2
expect "mismatched k" 1 "lse.npy: shape" -- run --q="$tmp/x.npy" --k="$tmp/lse.npy" --v="$tmp/lse.npy" --world=2
expect "missing file" 1 "nope.npy: cannot open" -- run --q="$tmp/nope.npy" --k="$tmp/x.npy" --v="$tmp/x.npy"
expect "no inputs" 1 "run needs --q, --k and --v" -- run
rm -f "$tmp/never.npy"
expect "gradient without backward" 1 "no backward pass" -- run --q="$tmp/x.npy" --k="$tmp/x.npy" \
  --v="$tmp/x.npy" --world=2 --out="$tmp/never.npy" --dq="$tmp/never_dq.npy"
[[ -e "$tmp/never.npy" ]] && { echo "FAIL: an output was written although the run failed"; fail=1; }
# A NaN where the oracle is finite is an infinite error, not 0 (#21):
# the kernels' fp32 scale overflows, the fp64 oracle's does not.
expect "check sees NaN" 0 "check against" -- run --random --world=2 --seqlen=64 --num_heads=2 \
  --head_dim=16 --softmax_scale=1e300 --check
if ! echo "$last" | grep -qE '^  dq +inf +inf'; then
  echo "FAIL: a NaN dq printed a finite error:"; echo "$last" | tail -8; fail=1
fi
# An empty cu_seqlens .npy is an error, not varlen silently off (#21).
printf '\x93NUMPY\x01\x00\x46\x00{'"'"'descr'"'"': '"'"'<i8'"'"', '"'"'fortran_order'"'"': False, '"'"'shape'"'"': (0,), }            \n' \
  > "$tmp/empty_cu.npy"
expect "empty cu_seqlens npy" 1 "expected at least 2" -- run --random --world=2 --seqlen=64 \
  --cu_seqlens="$tmp/empty_cu.npy"
# Flags that were accepted and ignored, or misleading (#21).
expect "fault rank outside the world" 1 "expected -1 (none) or a rank in [0, 2)" -- run --random \
  --world=2 --seqlen=64 --inject_fault_rank=7
expect "silent fault alone" 1 "expected --world >= 2" -- run --random --world=1 --seqlen=64 \
  --inject_fault_rank=0 --inject_fault=silent --out="$tmp/never.npy"
[[ -e "$tmp/never.npy" ]] && { echo "FAIL: a refused run wrote its output"; fail=1; }
for t in inf nan 0 -5; do
  expect "timeout $t" 1 "expected a positive, finite number of seconds" -- run --random \
    --world=2 --seqlen=64 --timeout_s=$t
done
expect "sim nodes 0" 1 "expected nodes >= 1" -- sim --nodes=0
expect "sim negative link" 1 "--link_GBps is -1" -- sim --link_GBps=-1
expect "sim nan latency" 1 "--link_latency_us is nan" -- sim --link_latency_us=nan
expect "sim negative issue" 1 "--hop_issue_us is -2" -- sim --hop_issue_us=-2
expect "sim share of 1" 1 "--hop_sm_share is 1; expected 0 <= share < 1" -- sim --hop_sm_share=1
expect "sim outputs with the seed model" 1 "outputs models ringattn's own results" -- sim --outputs --model=ring-flash-attention
expect "sim with the outputs" 0 "efficiency" -- sim --outputs --world=4 --seqlen=8192 --layout=zigzag
expect "usage names sim" 2 "plan|run|sim" --
# Sizes whose products overflowed, and limits checked after threads
# started (#21): each is an error before anything is allocated.
expect "stripe width overflow" 1 "exceeds seqlen" -- plan --layout=stripe \
  --stripe_width=2305843009213693952
expect "heads overflow" 1 "expected at most 2^40" -- run --random --world=2 --seqlen=64 \
  --num_heads=4611686018427387904 --num_kv_heads=1 --head_dim=16
expect "batch overflow" 1 "expected at most 2^40" -- run --random --world=2 --seqlen=64 \
  --batch=1152921504606846976 --num_heads=1 --head_dim=16
expect "world beyond the limit" 1 "expected 1 to 8192" -- run --random --world=40000 --seqlen=64
expect "indivisible before threads" 1 "not divisible" -- run --random --world=8000 --seqlen=64
expect "sim world beyond the limit" 1 "expected 1 to 8192" -- sim --world=2147483647
expect "sweep world out of range" 1 "out of range" -- sim --sweep_worlds=4294967300 \
  --sweep_csv="$tmp/s.csv"
for link in nan inf -5 0; do
  expect "sweep link $link" 1 "not a positive finite number" -- sim --sweep_link_GBps=200,$link \
    --sweep_csv="$tmp/s.csv"
done
# Outputs all or nothing, checked before the run (#21).
mkdir -p "$tmp/outs" && rm -f "$tmp/outs/"*
expect "same output twice" 1 "name the same file" -- run --random --world=2 --seqlen=64 \
  --out="$tmp/outs/x.npy" --lse="$tmp/outs/x.npy"
expect "output folder missing" 1 "is not writable" -- run --random --world=2 --seqlen=64 \
  --out="$tmp/outs/o.npy" --lse="$tmp/outs/nowhere/l.npy"
expect "gradient without backward" 1 "--dq=$tmp/outs/d.npy asks for a gradient" -- run --random \
  --world=2 --seqlen=64 --nobackward --dq="$tmp/outs/d.npy"
expect "device node kept" 1 "is not a regular file" -- run --random --world=2 --seqlen=64 \
  --out=/dev/null
expect "sim plot folder missing" 1 "is not writable" -- sim --sweep_csv="$tmp/outs/s.csv" \
  --plot=/nonexistent/p.png
if [[ -n "$(ls -A "$tmp/outs")" ]]; then
  echo "FAIL: refused runs left files: $(ls "$tmp/outs")"; fail=1
fi
# A binary file given as a calibration is quoted printably (#21).
printf '\x93NUMPY\x01\x00\xff\xfe\x00\x01binary\n' > "$tmp/binary.cal"
expect "binary calibration" 1 "calibration line 1" -- sim --calibration="$tmp/binary.cal"
if echo "$last" | LC_ALL=C grep -q '[^[:print:][:space:]]'; then
  echo "FAIL: the error printed raw bytes"; fail=1
fi
# Every flag is used or rejected (#21).
expect "run flag on plan" 1 "--timeout_s does not apply to \`plan\`" -- plan --timeout_s=5
expect "plan --out" 1 "--out does not apply" -- plan --out="$tmp/never.npy"
expect "kv heads per group on zigzag" 1 "applies to the llama3 layout" -- run --random --world=2 \
  --seqlen=64 --layout=zigzag --kv_heads_per_group=1
expect "window_right under causal" 1 "does not apply under --causal" -- run --random --world=2 \
  --seqlen=64 --window_right=3
expect "random and files" 1 "expected either --random" -- run --random --q="$tmp/x.npy" --world=2
expect "bf16 run" 0 "bfloat16 inputs" -- run --random --dtype=bfloat16 --check --seqlen=128 --world=4
expect "mpi without MPI" 1 "built without MPI" -- run --random --comm=mpi
expect "world mismatch of layout" 1 "not divisible" -- run --random --seqlen=100 --world=8

# sim: summary, trace, seed table, a sweep with CSV and plot.
expect "sim summary" 0 "efficiency" -- sim --layout=zigzag --world=8 --seqlen=65536 \
  --trace="$tmp/trace.json"
grep -q '"traceEvents"' "$tmp/trace.json" || { echo "FAIL: no trace"; fail=1; }
expect "sim two nodes" 0 "iteration" -- sim --layout=ring --world=8 --nodes=2 --seqlen=65536
# 1024 tokens a rank, kv 8: the host's issue of each step's transfers and the
# hop's share of the kernels, where the table has none (0.954 ms without).
expect "sim with the hop's issue and share" 0 "iteration 1.328 ms (forward 0.488 ms)" -- sim \
  --layout=zigzag --world=8 --seqlen=8192 --num_kv_heads=8 --hop_issue_us=60 --hop_sm_share=0.3
expect "sim seed table" 0 "zigzag_ring          fwd+bwd    90.2%" -- sim --ring_flash_attention_table --gpu=h800
expect "sim sweep" 0 "runs written" -- sim --sweep_csv="$tmp/sweep.csv" --sweep_worlds=2,4,8 \
  --sweep_layouts=ring,zigzag --seqlen=8192 --plot="$tmp/sweep.png"
[[ $(wc -l < "$tmp/sweep.csv") -eq 7 && -s "$tmp/sweep.png" ]] || { echo "FAIL: sweep outputs"; fail=1; }
expect "sim unknown gpu" 1 "unknown gpu 'v100'" -- sim --gpu=v100
expect "sim bad calibration" 1 "cannot open" -- sim --calibration="$tmp/none.txt"
expect "sim bad nodes" 1 "--nodes 3 does not divide world 8" -- sim --nodes=3

expect "check too large" 1 "--check builds the full 65536 x 65536" -- run --random --check \
  --seqlen=65536 --num_heads=1 --head_dim=8
expect "tensor too large" 1 "the CPU run takes at most" -- run --random --seqlen=1048576 \
  --num_heads=64 --head_dim=256
expect "sim world too large" 1 "expected 1 to 8192" -- sim --layout=ring --world=16384 --seqlen=16384

# Faults: a failing rank ends every rank at once; a silent one times out.
expect "injected failure" 1 "injected failure on rank 2" -- run --random --seqlen=256 --world=4 \
  --inject_fault_rank=2 --timeout_s=60
expect "silent rank" 1 "which did not answer" -- run --random --seqlen=256 --world=4 \
  --layout=ring --inject_fault_rank=0 --inject_fault=silent --timeout_s=1
expect "silent rank after the forward" 1 "which did not answer" -- run --random --seqlen=256 \
  --world=4 --layout=ring --inject_fault_rank=0 --inject_fault=silent_after_forward --timeout_s=1
expect "silent after a forward, no backward" 1 "expected a run with one" -- run --random \
  --world=2 --seqlen=64 --inject_fault_rank=0 --inject_fault=silent_after_forward --backward=false
exit $fail
