#!/usr/bin/env bash
# bench/ncu_compare.sh with a stand-in ncu printing ncu's layout: the
# kernels asked for per pass (ours by name, cuDNN's fprop / bprop), each
# metric's two values and ratio, times in us from ms, sectors and bytes
# from Msector and Mbyte, thousands separators,
# a side without a launch, and the errors for bad arguments.
set -euo pipefail
script="$(dirname "$0")/ncu_compare.sh"
source "$(dirname "$0")/test_helpers.sh"  # $work, fail, expect_error
mkdir -p "$work/bin"
printf '#!/bin/sh\nexit 0\n' > "$work/bin/kernel_bench"
chmod +x "$work/bin/kernel_bench"
cat > "$work/ncu" <<'STANDIN'
#!/usr/bin/env bash
# Arguments: --metrics M -k regex:K -c 1 COMMAND...
k=${4#regex:}
echo "$k $*" >> "$NCU_LOG"
echo "==PROF== Connected to process 1"
echo "row,impl,pass,ms,tflops"
case $k in
  FlashForward) name="void FlashForwardWarpSpecializedKernel<2, 128>(ForwardBlockArgs) (132, 1, 1)x(384, 1, 1), Context 1, Stream 7"; t="us 392.77"; n=108,900,703 ;;
  fprop) name="cudnn_fprop_kernel (132, 1, 1)x(384, 1, 1), Context 1, Stream 7"; t="us 371.65"; n=100,944,044 ;;
  FlashBackward) name="void FlashBackwardWarpSpecializedKernel<2, 128>(BackwardBlockArgs) (128, 32, 16)x(384, 1, 1), Context 1"; t="ms 1.27"; n=2,000 ;;
  *) exit 0 ;;  # bprop: no launch
esac
echo "  $name"
echo "    Section: Command line profiler metrics"
echo "    ---------------------------------------------------- ----------- ------------"
echo "    Metric Name                                          Metric Unit Metric Value"
echo "    gpu__time_duration.sum                               $t"
echo "    smsp__inst_executed.sum                              inst $n"
fabric="sector 11,518,773" dram="Mbyte 402.76"
[[ $k == FlashForward ]] && fabric="Msector 16.69" dram="Mbyte 491.64"
echo "    lts__t_sectors_srcunit_ltcfabric.sum                 $fabric"
echo "    dram__bytes_read.sum                                 $dram"
wait=1.60
[[ $k == fprop ]] && wait=0.80
echo "    smsp__average_warps_issue_stalled_wait_per_issue_active.ratio inst $wait"
STANDIN
chmod +x "$work/ncu"
export NCU="$work/ncu" NCU_LOG="$work/log" PYTHON=python3
out=$("$script" "$work/bin" "$work/out" bf16_row)
fail_log="$work/log"
grep -qx '# bf16_row fwd: ours void FlashForwardWarpSpecializedKernel<2, 128>(ForwardBlockArgs) (132, 1, 1)x(384, 1, 1) | cuDNN cudnn_fprop_kernel (132, 1, 1)x(384, 1, 1)' <<< "$out" || fail "fwd names"
grep -qx 'gpu__time_duration.sum,392.77,371.65,1.057' <<< "$out" || fail "fwd time"
grep -qx 'smsp__inst_executed.sum,108900703,100944044,1.079' <<< "$out" || fail "fwd instructions"
grep -qx 'stall_wait,1.60,0.80,2.000' <<< "$out" || fail "fwd stall"
grep -qx 'lts__t_sectors_srcunit_ltcfabric.sum,16690000,11518773,1.449' <<< "$out" || fail "fwd fabric sectors (Msector scaled)"
grep -qx 'dram__bytes_read.sum,491640000,402760000,1.221' <<< "$out" || fail "fwd DRAM bytes (Mbyte scaled)"
grep -qx '# bf16_row bwd: ours void FlashBackwardWarpSpecializedKernel<2, 128>(BackwardBlockArgs) (128, 32, 16)x(384, 1, 1) | cuDNN (no launch)' <<< "$out" || fail "bwd names"
grep -qx 'gpu__time_duration.sum,1270,-,-' <<< "$out" || fail "bwd time in us, no cuDNN side"
# The kernels asked for, and our binary run on the row with kAuto's kernels.
grep -q "^FlashForward .* -c 1 $work/bin/kernel_bench 2 bf16_row auto$" "$work/log" || fail "our fwd command"
grep -q "^fprop .* -c 1 python3 .*torch_sdpa_bench.py 1 bf16_row$" "$work/log" || fail "cuDNN fwd command"
grep -q "^bprop " "$work/log" || fail "cuDNN bwd kernel"
[[ -s "$work/out/ours_bf16_row_fwd.txt" && -s "$work/out/cudnn_bf16_row_fwd.txt" ]] || fail "outputs kept"
# One pass only.
: > "$work/log"
out=$("$script" "$work/bin" "$work/out" bf16_row bwd)
grep -q '# bf16_row fwd' <<< "$out" && fail "fwd run when only bwd asked for"
[[ $(wc -l < "$work/log") == 2 ]] || fail "two ncu runs for one pass"
# Errors.
expect_error "pass both" "PASS must be fwd or bwd" "$script" "$work/bin" "$work/out" bf16_row both
expect_error "missing binary" "no executable $work/none/kernel_bench" "$script" "$work/none" "$work/out" bf16_row
expect_error "bad row" "ROW must be a kernel_bench row name" "$script" "$work/bin" "$work/out" 'a;b'
expect_error "missing arguments" "" "$script" "$work/bin"
echo PASS
