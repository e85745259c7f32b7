// Replays measured bench/ring_bench tables (sim/testdata/: 2 x H200 and
// 4 x H200, one process per GPU, NCCL; one H200 at 2k-32k tokens, W = 1,
// device copies) through the simulator from the
// calibration measured in the same run, rebuilt from the line ring_bench
// printed (with today's model it reproduces the "sim ms" column ring_bench
// printed to 0.001 ms; shared/measurements/2026-11-29/h200x2_calibration.txt
// does not match its run's printed line, so it is not used), and holds the
// prediction error of every row: a later change that moves a
// prediction away from the measurement fails here (issue #19). Rows the
// model still misses by more than 5 % are listed with the error they have
// today; they may only get better.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sim/bench_rows.h"
#include "sim/calibration.h"
#include "sim/ring_bench_log.h"
#include "sim/tile_fill.h"

namespace ringattn::sim {
namespace {

// Rows the model misses today by more than 5 %: (file, row, pass) -> the
// error's size now (a bound: they may only get better).
const std::map<std::string, double>& KnownMisses() {
  static const auto* const misses = new std::map<std::string, double>{
      {"2026-11-29_h200x2 zigzag fwd+bwd", 0.070},
      {"2026-11-29_h200x2 stripe fwd", 0.056},
      {"2026-11-29_h200x4 zigzag fwd+bwd", 0.086},
      {"2026-11-29_h200x4 ring fwd+bwd", 0.055},
      {"2026-11-29_h200x4 llama3 fwd", 0.078},
      {"2026-11-29_h200x4 llama3 fwd+bwd", 0.147},
      // The all-gather's K/V pack charged (forty-seventh session: W = 1
      // llama3 forwards from -9 to -50 % to within -12 to +2 %) moved the
      // x4 llama3 rows and 2026-11-30's (logs before the all-gather was
      // measured: their model sends at the hop's rate, over-predicting)
      // 0.5-2.8 points further up; the x2 varlen llama3 rows came down.
      {"2026-11-29_h200x4 varlen_llama3 fwd", 0.075},
      {"2026-11-29_h200x4 varlen_llama3 fwd+bwd", 0.157},
      {"2026-11-30_h200x2 zigzag fwd+bwd", 0.060},
      {"2026-11-30_h200x2 stripe fwd", 0.136},
      {"2026-11-30_h200x2 llama3 fwd", 0.161},
      {"2026-11-30_h200x2 llama3 fwd+bwd", 0.090},
      // A launch's fill (forty-eighth session, sim/tile_fill.h): llama3's
      // 16-head launches of 64-128-step tiles end on a longer tail than the
      // calibration's 32 heads (0.97 of its fill on rank 1's 8192 x 16384
      // block); the x2 and x4 llama3 forwards, over-predicted already,
      // moved 0.6-2.9 points up (not measurable on one GPU).
      {"2026-12-01_h200x2 llama3 fwd", 0.077},
      {"2026-12-01_h200x2 stripe fwd", 0.076},
      {"2026-12-01_h200x2 stripe fwd+bwd", 0.052},
      {"2026-12-01_h200x2 varlen_zigzag fwd", 0.149},
      {"2026-12-01_h200x2 varlen_balanced fwd", 0.100},
      // 2 x H200 with the 610-630 TFLOP/s kernels (fifty-fourth session):
      // every row whose ring hop runs beside the attention kernels is
      // measured 3.5-19 % slower than the single-GPU calibration predicts;
      // llama3, whose all-gather the model charges apart, within 5.4 %.
      // Suspected: NCCL's send/recv kernel holds SMs for the hop's length
      // (docs/RING_BENCH.md, fifty-fourth section); not yet measured.
      {"2026-12-04_h200x2_settled ring fwd+bwd", 0.060},
      {"2026-12-04_h200x2_settled zigzag fwd", 0.094},
      {"2026-12-04_h200x2_settled zigzag fwd+bwd", 0.113},
      {"2026-12-04_h200x2_settled stripe fwd", 0.086},
      {"2026-12-04_h200x2_settled stripe fwd+bwd", 0.165},
      {"2026-12-04_h200x2_settled llama3 fwd", 0.054},
      {"2026-12-04_h200x2_settled varlen_ring fwd", 0.099},
      {"2026-12-04_h200x2_settled varlen_ring fwd+bwd", 0.101},
      {"2026-12-04_h200x2_settled varlen_zigzag fwd", 0.183},
      {"2026-12-04_h200x2_settled varlen_zigzag fwd+bwd", 0.148},
      {"2026-12-04_h200x2_settled varlen_llama3 fwd+bwd", 0.078},
      {"2026-12-04_h200x2_settled varlen_balanced fwd", 0.172},
      {"2026-12-04_h200x2_settled varlen_balanced fwd+bwd", 0.139},
      // Later the same session, the hop's share measured (0.216; applied):
      // zigzag's fwd+bwd from -11.2 to -4.4 %, the forwards still 6 % short
      // (and 7.5 % with device copies, which take no SMs). The 2048-token
      // forwards are 10-30 % short: ring_bench --timeline showed every NCCL
      // pass's first kernel enqueued 0.19 ms after its start (the host asleep
      // in the NCCL enqueue's poll, since mended, not yet re-measured). The
      // W = 1 fwd+bwd rows: the unsettled backward causal / full factor.
      // The fifty-seventh session's 2 x H200 table: llama3's forward (the
      // all-gather's 3.0 ms against zigzag's 2.0) and the documents'
      // forwards under-predicted as at W = 1 before the least kernel time.
      {"2026-12-04_h200x2_per_side llama3 fwd", 0.062},
      {"2026-12-04_h200x2_per_side varlen_zigzag fwd", 0.082},
      {"2026-12-04_h200x2_per_side_timeline varlen_zigzag fwd", 0.089},
      {"2026-12-04_h200x2_hop_share zigzag fwd", 0.064},
      {"2026-12-04_h200x2_hop_share stripe fwd", 0.063},
      {"2026-12-04_h200x2_hop_share stripe fwd+bwd", 0.091},
      {"2026-12-04_h200x2_hop_share varlen_ring fwd", 0.056},
      {"2026-12-04_h200x2_hop_share varlen_ring fwd+bwd", 0.056},
      {"2026-12-04_h200x2_hop_share varlen_zigzag fwd", 0.141},
      {"2026-12-04_h200x2_hop_share varlen_zigzag fwd+bwd", 0.095},
      {"2026-12-04_h200x2_hop_share varlen_llama3 fwd", 0.053},
      {"2026-12-04_h200x2_hop_share varlen_balanced fwd", 0.114},
      {"2026-12-04_h200x2_hop_share varlen_balanced fwd+bwd", 0.084},
      {"2026-12-04_h200x2_device_copies ring fwd+bwd", 0.054},
      {"2026-12-04_h200x2_device_copies zigzag fwd", 0.076},
      {"2026-12-04_h200x2_device_copies zigzag fwd+bwd", 0.077},
      {"2026-12-04_h200x2_device_copies stripe fwd", 0.100},
      {"2026-12-04_h200x2_device_copies stripe fwd+bwd", 0.150},
      {"2026-12-04_h200x2_device_copies varlen_zigzag fwd", 0.078},
      {"2026-12-04_h200x2_device_copies varlen_zigzag fwd+bwd", 0.088},
      {"2026-12-04_h200x2_kv8_8192 ring fwd+bwd", 0.051},
      {"2026-12-04_h200x2_kv8_8192 zigzag fwd", 0.064},
      {"2026-12-04_h200x2_kv8_8192 zigzag fwd+bwd", 0.066},
      {"2026-12-04_h200x2_kv8_8192 stripe fwd", 0.084},
      {"2026-12-04_h200x2_kv8_8192 stripe fwd+bwd", 0.138},
      {"2026-12-04_h200x2_kv8_8192 varlen_zigzag fwd", 0.149},
      {"2026-12-04_h200x2_kv8_8192 varlen_zigzag fwd+bwd", 0.117},
      {"2026-12-04_h200x2_kv8_8192 varlen_llama3 fwd", 0.063},
      {"2026-12-04_h200x2_2048 ring fwd", 0.106},
      {"2026-12-04_h200x2_2048 zigzag fwd", 0.210},
      {"2026-12-04_h200x2_2048 zigzag fwd+bwd", 0.070},
      {"2026-12-04_h200x2_2048 stripe fwd", 0.300},
      {"2026-12-04_h200x2_2048 llama3 fwd", 0.074},
      {"2026-12-04_h200x2_2048 llama3 fwd+bwd", 0.124},
      {"2026-12-04_h200x2_2048 varlen_zigzag fwd", 0.288},
      {"2026-12-04_h200x2_2048 varlen_zigzag fwd+bwd", 0.067},
      {"2026-12-04_h200x2_2048 varlen_llama3 fwd", 0.095},
      {"2026-12-04_h200x2_w1_8192 ring fwd+bwd", 0.075},
      {"2026-12-04_h200x2_w1_8192 zigzag fwd+bwd", 0.082},
      {"2026-12-04_h200x2_w1_8192 stripe fwd+bwd", 0.083},
      {"2026-12-04_h200x2_w1_8192 varlen_zigzag fwd+bwd", 0.128},
      // One H200, W = 1, 2k-32k tokens (forty-fifth session): 2-4k tokens
      // miss by 75-115 us a pass outside the kernels; zigzag's and the
      // documents' by the one causal / full factor (a log with the factor
      // per side predicts them within 5 % at 16k); llama3 by its pack.
      // The same after the pass's final wait stopped sleeping (forty-sixth
      // session; ring_bench --timeline): llama3's K/V pack and own dK/dV
      // add (uncharged at W = 1), the documents' many small launches, the
      // backward's D (charged at 4 of the 10 B a query element it moves).
      {"2026-12-03_h200_w1_poll_backoff_1024 ring fwd+bwd", 0.086},
      {"2026-12-03_h200_w1_poll_backoff_1024 zigzag fwd+bwd", 0.118},
      {"2026-12-03_h200_w1_poll_backoff_1024 llama3 fwd+bwd", 0.165},
      {"2026-12-03_h200_w1_poll_backoff_1024 varlen_zigzag fwd", 0.163},
      {"2026-12-03_h200_w1_poll_backoff_1024 varlen_zigzag fwd+bwd", 0.158},
      {"2026-12-03_h200_w1_poll_backoff_2048 ring fwd+bwd", 0.054},
      {"2026-12-03_h200_w1_poll_backoff_2048 zigzag fwd+bwd", 0.092},
      {"2026-12-03_h200_w1_poll_backoff_2048 llama3 fwd", 0.075},
      {"2026-12-03_h200_w1_poll_backoff_2048 llama3 fwd+bwd", 0.217},
      {"2026-12-03_h200_w1_poll_backoff_2048 varlen_zigzag fwd", 0.125},
      {"2026-12-03_h200_w1_poll_backoff_2048 varlen_zigzag fwd+bwd", 0.142},
      {"2026-12-03_h200_w1_poll_backoff_4096 llama3 fwd+bwd", 0.159},
      {"2026-12-03_h200_w1_poll_backoff_4096 varlen_zigzag fwd", 0.107},
      {"2026-12-03_h200_w1_poll_backoff_4096 varlen_zigzag fwd+bwd", 0.101},
      {"2026-12-03_h200_w1_poll_backoff_8192 ring fwd+bwd", 0.063},
      {"2026-12-03_h200_w1_poll_backoff_8192 zigzag fwd+bwd", 0.070},
      {"2026-12-03_h200_w1_poll_backoff_8192 llama3 fwd+bwd", 0.093},
      {"2026-12-03_h200_w1_poll_backoff_8192 varlen_zigzag fwd+bwd", 0.093},
      {"2026-12-03_h200_w1_poll_backoff_16384 zigzag fwd", 0.070},
      {"2026-12-03_h200_w1_poll_backoff_16384 llama3 fwd+bwd", 0.054},
      {"2026-12-03_h200_w1_poll_backoff_16384 varlen_zigzag fwd+bwd", 0.052},

      // Adjacent slices fused and a ring of one without a reduce-scatter
      // (forty-seventh session): llama3's backward at 1-4k tokens (its
      // head groups' backward launches fill the GPU less than the
      // calibration's all-head blocks), the documents at 1-2k, two ring
      // forwards off their own calibration by 6-7 %.
      {"2026-12-03_h200_w1_fused_1024 llama3 fwd", 0.067},
      {"2026-12-03_h200_w1_fused_1024 varlen_zigzag fwd+bwd", 0.066},
      {"2026-12-03_h200_w1_fused_2048 ring fwd", 0.069},
      {"2026-12-03_h200_w1_fused_2048 llama3 fwd+bwd", 0.084},
      {"2026-12-03_h200_w1_fused_2048 varlen_zigzag fwd+bwd", 0.068},
      {"2026-12-03_h200_w1_fused_16384 ring fwd", 0.063},
      {"2026-12-03_h200_w1_2048 ring fwd", 0.414},
      {"2026-12-03_h200_w1_2048 ring fwd+bwd", 0.163},
      {"2026-12-03_h200_w1_2048 zigzag fwd", 0.459},
      {"2026-12-03_h200_w1_2048 zigzag fwd+bwd", 0.113},
      {"2026-12-03_h200_w1_2048 llama3 fwd", 0.332},
      {"2026-12-03_h200_w1_2048 llama3 fwd+bwd", 0.233},
      {"2026-12-03_h200_w1_2048 varlen_zigzag fwd", 0.347},
      {"2026-12-03_h200_w1_2048 varlen_zigzag fwd+bwd", 0.190},
      {"2026-12-03_h200_w1_4096 ring fwd", 0.107},
      {"2026-12-03_h200_w1_4096 ring fwd+bwd", 0.078},
      {"2026-12-03_h200_w1_4096 zigzag fwd", 0.129},
      {"2026-12-03_h200_w1_4096 zigzag fwd+bwd", 0.156},
      {"2026-12-03_h200_w1_4096 llama3 fwd+bwd", 0.199},
      {"2026-12-03_h200_w1_4096 varlen_zigzag fwd", 0.291},
      {"2026-12-03_h200_w1_4096 varlen_zigzag fwd+bwd", 0.244},
      {"2026-12-03_h200_w1_8192 zigzag fwd+bwd", 0.148},
      {"2026-12-03_h200_w1_8192 llama3 fwd+bwd", 0.103},
      {"2026-12-03_h200_w1_8192 varlen_zigzag fwd", 0.113},
      {"2026-12-03_h200_w1_8192 varlen_zigzag fwd+bwd", 0.184},
      {"2026-12-03_h200_w1_16384 zigzag fwd", 0.112},
      {"2026-12-03_h200_w1_16384 llama3 fwd+bwd", 0.056},
      {"2026-12-03_h200_w1_16384 varlen_zigzag fwd", 0.111},
      {"2026-12-03_h200_w1_16384 varlen_zigzag fwd+bwd", 0.082},

      // The per-side factors in every run, no least kernel time (fifty-sixth
      // session): the documents at 1-2k tokens, their 16-400-token
      // documents charged at the rate; with the floor measured in every run
      // (OneH200KernelFloorInEveryRun) within 3.4 %.
      {"2026-12-04_h200_w1_per_side_1024_docs varlen_zigzag fwd", 0.101},
      {"2026-12-04_h200_w1_per_side_1024_docs varlen_zigzag fwd+bwd", 0.082},
      {"2026-12-04_h200_w1_per_side_1024_docs varlen_llama3 fwd", 0.101},
      {"2026-12-04_h200_w1_per_side_1024_docs varlen_llama3 fwd+bwd", 0.092},
      {"2026-12-04_h200_w1_per_side_2048_docs varlen_zigzag fwd", 0.089},
      // W = 1: varlen ring's schedule is varlen zigzag's (predicted alike);
      // measured 0.070 against varlen zigzag's 0.067 ms in the same run.
      {"2026-12-04_h200_w1_kernel_floor_1536kv8 varlen_ring fwd", 0.070},
      // A 0.12-ms pass (8 heads, d64): llama3's fwd+bwd at W = 1 is zigzag's
      // work (one causal block, whole), measured 0.119 against zigzag's 0.132
      // ms in the same run, the single-GPU baseline beside each 0.126-0.127.
      {"2026-12-04_h200_w1_kernel_floor_2048_h8kv2_d64 llama3 fwd+bwd", 0.104},

      // 4-64 heads at 1k-16k tokens (forty-eighth session; each log's own
      // calibration at its heads): the ring and zigzag forwards at 1-4k
      // tokens and few heads over-predicted (a 20-50 us pass whose fixed
      // costs the 128-token calibration pass sets), the documents under-
      // predicted as at 32 heads, llama3 within 6 % but at 2048 tokens
      // with 8 and 64 heads (a launch of fewer tiles than SMs runs each
      // faster than the fill counts them; not modelled).
      {"2026-12-03_h200_w1_heads_1024_h16 ring fwd", 0.061},
      {"2026-12-03_h200_w1_heads_1024_h16 zigzag fwd", 0.117},
      {"2026-12-03_h200_w1_heads_2048_h4 ring fwd", 0.143},
      {"2026-12-03_h200_w1_heads_2048_h4 ring fwd+bwd", 0.084},
      {"2026-12-03_h200_w1_heads_2048_h4 zigzag fwd", 0.143},
      {"2026-12-03_h200_w1_heads_2048_h4 zigzag fwd+bwd", 0.091},
      {"2026-12-03_h200_w1_heads_2048_h8 ring fwd", 0.107},
      {"2026-12-03_h200_w1_heads_2048_h8 zigzag fwd", 0.177},
      {"2026-12-03_h200_w1_heads_2048_h8 llama3 fwd", 0.083},
      {"2026-12-03_h200_w1_heads_2048_h8 varlen_zigzag fwd+bwd", 0.072},
      {"2026-12-03_h200_w1_heads_2048_h16 varlen_zigzag fwd+bwd", 0.078},
      {"2026-12-03_h200_w1_heads_2048_h64 ring fwd+bwd", 0.054},
      {"2026-12-03_h200_w1_heads_2048_h64 llama3 fwd+bwd", 0.091},
      {"2026-12-03_h200_w1_heads_2048_h64 varlen_zigzag fwd", 0.051},
      {"2026-12-03_h200_w1_heads_2048_h64 varlen_zigzag fwd+bwd", 0.081},
      {"2026-12-03_h200_w1_heads_4096_h4 ring fwd", 0.064},
      {"2026-12-03_h200_w1_heads_4096_h4 zigzag fwd", 0.110},
      {"2026-12-03_h200_w1_heads_4096_h4 varlen_zigzag fwd+bwd", 0.053},
      {"2026-12-03_h200_w1_heads_4096_h16 llama3 fwd", 0.053},
      {"2026-12-03_h200_w1_heads_4096_h16 llama3 fwd+bwd", 0.055},
      {"2026-12-03_h200_w1_heads_4096_h16 varlen_zigzag fwd", 0.055},
      {"2026-12-03_h200_w1_heads_4096_h16 varlen_zigzag fwd+bwd", 0.058},
      {"2026-12-03_h200_w1_heads_8192_h4 llama3 fwd", 0.059},
      {"2026-12-03_h200_w1_heads_8192_h4 varlen_zigzag fwd", 0.055},
      {"2026-12-03_h200_w1_heads_8192_h4 varlen_zigzag fwd+bwd", 0.068},
      {"2026-12-03_h200_w1_heads_8192_h8 llama3 fwd+bwd", 0.057},
      {"2026-12-03_h200_w1_heads_8192_h16 ring fwd", 0.051},
      {"2026-12-03_h200_w1_heads_8192_h16 zigzag fwd", 0.056},
      {"2026-12-03_h200_w1_heads_16384_h8 ring fwd", 0.063},
      {"2026-12-03_h200_w1_heads_16384_h8 zigzag fwd", 0.055},
      // Head dims 64 and 256, grouped-query heads (forty-eighth session):
      // the ring and zigzag forwards at 1-2k tokens over-predicted as
      // above, the documents under-predicted; llama3 at 1024 tokens d64 (a
      // pass of 0.27 ms whose launches wait on the host: the GPU span 2.7x
      // its kernels) and at d256 (its backward a key-tile kernel and a dQ
      // pass, modelled as one launch of key tiles).
      {"2026-12-03_h200_w1_shapes_1024_h8kv8_d64 zigzag fwd", 0.122},
      {"2026-12-03_h200_w1_shapes_1024_h8kv8_d64 llama3 fwd+bwd", 0.221},
      {"2026-12-03_h200_w1_shapes_2048_h8kv2_d64 zigzag fwd", 0.090},
      {"2026-12-03_h200_w1_shapes_4096_h4kv4_d64 zigzag fwd+bwd", 0.075},
      {"2026-12-03_h200_w1_shapes_2048_h8kv8_d256 ring fwd", 0.129},
      {"2026-12-03_h200_w1_shapes_2048_h8kv8_d256 zigzag fwd", 0.178},
      {"2026-12-03_h200_w1_shapes_2048_h8kv8_d256 llama3 fwd", 0.070},
      {"2026-12-03_h200_w1_shapes_2048_h8kv8_d256 llama3 fwd+bwd", 0.078},
      {"2026-12-03_h200_w1_shapes_8192_h8kv8_d256 llama3 fwd+bwd", 0.061},
      {"2026-12-03_h200_w1_shapes_2048_h32kv8_d128 ring fwd", 0.062},
      {"2026-12-03_h200_w1_shapes_2048_h32kv8_d128 varlen_zigzag fwd+bwd", 0.068},
      // llama3's ring of one whole (forty-eighth session): the documents at
      // 2048 tokens, as the other logs' (their per-task launches).
      {"2026-12-03_h200_w1_llama3_whole_2048 varlen_zigzag fwd+bwd", 0.067},
      {"2026-12-03_h200_w1_llama3_whole_2048 varlen_llama3 fwd+bwd", 0.064},
      // The 128-token pass's forward kernel timed by events (forty-ninth
      // session): every dense forward within 6 % (the old overhead put them
      // 4-15 % over), the fwd+bwd rows at 1-1.5k tokens 6-10 % under (not
      // explained; the backward's 128-token kernel is not taken out of its
      // overhead, bench/ring_bench.cc says why); the documents, with the
      // least kernel time (Calibration::min_kernel_us_*), 5-10 % under at
      // 1-3k tokens (without it 5-14 % at 1-4k).
      {"2026-12-04_h200_w1_tiny_kernel_1024_h16kv16_d128 ring fwd+bwd", 0.061},
      {"2026-12-04_h200_w1_tiny_kernel_1024_h16kv16_d128 llama3 fwd", 0.057},
      {"2026-12-04_h200_w1_tiny_kernel_1024_h16kv16_d128 llama3 fwd+bwd", 0.061},
      {"2026-12-04_h200_w1_tiny_kernel_1024_h8kv8_d64 ring fwd+bwd", 0.063},
      {"2026-12-04_h200_w1_tiny_kernel_1024_h8kv8_d64 zigzag fwd+bwd", 0.105},
      {"2026-12-04_h200_w1_tiny_kernel_1024_h8kv8_d64 llama3 fwd+bwd", 0.072},
      {"2026-12-04_h200_w1_tiny_kernel_1536_h32kv8_d128 llama3 fwd+bwd", 0.060},
      {"2026-12-04_h200_w1_tiny_kernel_1536_h32kv8_d128 varlen_zigzag fwd+bwd", 0.073},
      {"2026-12-04_h200_w1_tiny_kernel_2048_h16kv4_d64 zigzag fwd+bwd", 0.074},
      {"2026-12-04_h200_w1_tiny_kernel_3072_h8kv8_d128 ring fwd", 0.058},
      {"2026-12-04_h200_w1_tiny_kernel_3072_h8kv8_d128 varlen_zigzag fwd+bwd", 0.054},
      // The fifty-second and fifty-third sessions' code (stored dK/dV
      // steps, D zeroing dQ): the documents at 2048 tokens as before; at
      // 8192 tokens ring, zigzag and llama3 run the same GPU work at W = 1
      // (one launch over the whole block; llama3's ring of one as the
      // ring's) and measured 3.187-3.577 ms in one run, the clock under the
      // power cap moving between rows (their --timeline GPU spans in a
      // later call: minimum 3.155-3.160 ms for ring and llama3 alike,
      // medians 3.17-3.56): one prediction cannot be within 5 % of all three.
      {"2026-12-04_h200_w1_unwritten_dkv_2048_h32kv32_d128 varlen_zigzag fwd+bwd", 0.062},
      {"2026-12-04_h200_w1_unwritten_dkv_8192_h32kv32_d128 zigzag fwd+bwd", 0.052},
      {"2026-12-04_h200_w1_unwritten_dkv_8192_h32kv32_d128 llama3 fwd+bwd", 0.063},
      // Settled (ring_bench --settle_s=1): rows of the same work within
      // 1.6-2.6 % of each other, the model 3-7 % under every fwd+bwd row
      // (its forward within 3 %): at the clock the cap holds the ring's
      // backward runs slower than the settled back-to-back backward
      // launches the calibration times (not yet explained).
      {"2026-12-04_h200_w1_settled_8192_b zigzag fwd+bwd", 0.068},
      // The factor settled (fifty-fifth session): the documents without
      // the least kernel time (no --calibration_events); with it, the dense
      // forward at 2048 tokens over.
      {"2026-12-04_h200_w1_settled_factor_2048_h32kv32 varlen_zigzag fwd", 0.139},
      {"2026-12-04_h200_w1_settled_factor_2048_h32kv32 varlen_zigzag fwd+bwd", 0.140},
      {"2026-12-04_h200_w1_settled_factor_4096_h32kv8 varlen_zigzag fwd", 0.085},
      {"2026-12-04_h200_w1_settled_factor_4096_h32kv8 varlen_zigzag fwd+bwd", 0.074},
      {"2026-12-04_h200_w1_settled_events_2048_h32kv32 zigzag fwd", 0.103},
      // The steps' rounding (fifty-fifth session, sim/tile_fill.h
      // StepWaste): a task's kernel charged its tiles' rounded-up steps
      // over the calibration blocks' (a 776-token document at d128: 1.29x):
      // 154 rows nearer their measurement, 31 further, 26 known misses
      // within 5 % now (410 -> 435 of 617 rows); further: 2026-12-01's
      // varlen zigzag and balanced forwards at W = 2, over-predicted already
      // (+10.3 -> +14.9 %, +5.9 -> +10.0 %), and a d256 documents' forward.
      {"2026-12-03_h200_w1_shapes_2048_h8kv8_d256 varlen_zigzag fwd", 0.056},
      // Token counts from another run's calibration (OneH200OtherTokenCounts
      // FromOneCalibration): 38 of 86 rows outside 5 % (48 without the
      // causal / full factor's scale below the measured sides). Most miss
      // from their own run's calibration too (llama3's backward and the
      // documents at 1-4k tokens, as listed above; the forwards of 1-4k-token
      // passes by the pass's fixed costs); the 2048-token run from the
      // 16384-token one's misses by +6 to +9 % on every dense row where its
      // own is within 2 %: the 2048-token causal / full factor was measured
      // 0.802 / 0.709 there (the side sweep's, not settled) and 0.923 /
      // 0.758 at the 2048-token run's own tokens.
      {"from 2026-12-03_h200_w1_fused_8192: 2026-12-03_h200_w1_fused_1024 ring fwd", 0.057},
      {"from 2026-12-03_h200_w1_fused_8192: 2026-12-03_h200_w1_fused_1024 zigzag fwd", 0.080},
      {"from 2026-12-03_h200_w1_fused_8192: 2026-12-03_h200_w1_fused_1024 llama3 fwd", 0.082},
      {"from 2026-12-03_h200_w1_fused_8192: 2026-12-03_h200_w1_fused_1024 varlen_zigzag fwd+bwd",
       0.056},
      {"from 2026-12-03_h200_w1_fused_8192: 2026-12-03_h200_w1_fused_2048 ring fwd", 0.075},
      {"from 2026-12-03_h200_w1_fused_8192: 2026-12-03_h200_w1_fused_2048 llama3 fwd+bwd", 0.081},
      {"from 2026-12-03_h200_w1_fused_8192: 2026-12-03_h200_w1_fused_2048 varlen_zigzag fwd",
       0.059},
      {"from 2026-12-03_h200_w1_fused_8192: 2026-12-03_h200_w1_fused_2048 varlen_zigzag fwd+bwd",
       0.071},
      {"from 2026-12-03_h200_w1_fused_8192: 2026-12-03_h200_w1_fused_4096 ring fwd", 0.069},
      {"from 2026-12-03_h200_w1_fused_8192: 2026-12-03_h200_w1_fused_4096 zigzag fwd", 0.069},
      {"from 2026-12-03_h200_w1_fused_8192: 2026-12-03_h200_w1_fused_4096 llama3 fwd+bwd", 0.060},
      {"from 2026-12-03_h200_w1_fused_8192: 2026-12-03_h200_w1_fused_16384 ring fwd", 0.054},
      {"from 2026-12-03_h200_w1_poll_backoff_8192: 2026-12-03_h200_w1_poll_backoff_1024 ring "
       "fwd+bwd",
       0.067},
      {"from 2026-12-03_h200_w1_poll_backoff_8192: 2026-12-03_h200_w1_poll_backoff_1024 llama3 "
       "fwd+bwd",
       0.154},
      {"from 2026-12-03_h200_w1_poll_backoff_8192: 2026-12-03_h200_w1_poll_backoff_1024 "
       "varlen_zigzag fwd",
       0.274},
      {"from 2026-12-03_h200_w1_poll_backoff_8192: 2026-12-03_h200_w1_poll_backoff_1024 "
       "varlen_zigzag fwd+bwd",
       0.205},
      {"from 2026-12-03_h200_w1_poll_backoff_8192: 2026-12-03_h200_w1_poll_backoff_2048 zigzag "
       "fwd+bwd",
       0.069},
      {"from 2026-12-03_h200_w1_poll_backoff_8192: 2026-12-03_h200_w1_poll_backoff_2048 llama3 fwd",
       0.058},
      {"from 2026-12-03_h200_w1_poll_backoff_8192: 2026-12-03_h200_w1_poll_backoff_2048 llama3 "
       "fwd+bwd",
       0.194},
      {"from 2026-12-03_h200_w1_poll_backoff_8192: 2026-12-03_h200_w1_poll_backoff_2048 "
       "varlen_zigzag fwd",
       0.145},
      {"from 2026-12-03_h200_w1_poll_backoff_8192: 2026-12-03_h200_w1_poll_backoff_2048 "
       "varlen_zigzag fwd+bwd",
       0.105},
      {"from 2026-12-03_h200_w1_poll_backoff_8192: 2026-12-03_h200_w1_poll_backoff_4096 llama3 "
       "fwd+bwd",
       0.175},
      {"from 2026-12-03_h200_w1_poll_backoff_8192: 2026-12-03_h200_w1_poll_backoff_4096 "
       "varlen_zigzag fwd",
       0.098},
      {"from 2026-12-03_h200_w1_poll_backoff_8192: 2026-12-03_h200_w1_poll_backoff_4096 "
       "varlen_zigzag fwd+bwd",
       0.081},
      {"from 2026-12-03_h200_w1_poll_backoff_8192: 2026-12-03_h200_w1_poll_backoff_16384 ring fwd",
       0.060},
      {"from 2026-12-03_h200_w1_poll_backoff_8192: 2026-12-03_h200_w1_poll_backoff_16384 zigzag "
       "fwd",
       0.077},
      {"from 2026-12-03_h200_w1_poll_backoff_8192: 2026-12-03_h200_w1_poll_backoff_16384 llama3 "
       "fwd",
       0.052},
      {"from 2026-12-03_h200_w1_poll_backoff_8192: 2026-12-03_h200_w1_poll_backoff_16384 llama3 "
       "fwd+bwd",
       0.054},
      {"from 2026-12-03_h200_w1_poll_backoff_8192: 2026-12-03_h200_w1_poll_backoff_16384 "
       "varlen_zigzag fwd+bwd",
       0.075},
      {"from 2026-12-04_h200_w1_per_side_16384_docs: 2026-12-04_h200_w1_per_side_1024_docs zigzag "
       "fwd",
       0.090},
      {"from 2026-12-04_h200_w1_per_side_16384_docs: 2026-12-04_h200_w1_per_side_2048_docs ring "
       "fwd",
       0.086},
      {"from 2026-12-04_h200_w1_per_side_16384_docs: 2026-12-04_h200_w1_per_side_2048_docs ring "
       "fwd+bwd",
       0.074},
      {"from 2026-12-04_h200_w1_per_side_16384_docs: 2026-12-04_h200_w1_per_side_2048_docs zigzag "
       "fwd",
       0.073},
      {"from 2026-12-04_h200_w1_per_side_16384_docs: 2026-12-04_h200_w1_per_side_2048_docs zigzag "
       "fwd+bwd",
       0.077},
      {"from 2026-12-04_h200_w1_per_side_16384_docs: 2026-12-04_h200_w1_per_side_2048_docs stripe "
       "fwd",
       0.086},
      {"from 2026-12-04_h200_w1_per_side_16384_docs: 2026-12-04_h200_w1_per_side_2048_docs stripe "
       "fwd+bwd",
       0.065},
      {"from 2026-12-04_h200_w1_per_side_16384_docs: 2026-12-04_h200_w1_per_side_2048_docs llama3 "
       "fwd",
       0.086},
      {"from 2026-12-04_h200_w1_per_side_16384_docs: 2026-12-04_h200_w1_per_side_2048_docs llama3 "
       "fwd+bwd",
       0.059},
      // The 2 x H200 2048-token run from the same session's 8192-token one
      // (TwoH200sOtherTokenCountFromOneCalibration): every row short by the
      // ~0.18 ms that session's code slept in each NCCL group's issue, which
      // its logs do not measure (24-54 % short before the links were read
      // at the 32-MiB hop from the sweep).
      {"from 2026-12-04_h200x2_hop_share: 2026-12-04_h200x2_2048 ring fwd", 0.222},
      {"from 2026-12-04_h200x2_hop_share: 2026-12-04_h200x2_2048 ring fwd+bwd", 0.112},
      {"from 2026-12-04_h200x2_hop_share: 2026-12-04_h200x2_2048 zigzag fwd", 0.326},
      {"from 2026-12-04_h200x2_hop_share: 2026-12-04_h200x2_2048 zigzag fwd+bwd", 0.190},
      {"from 2026-12-04_h200x2_hop_share: 2026-12-04_h200x2_2048 stripe fwd", 0.426},
      {"from 2026-12-04_h200x2_hop_share: 2026-12-04_h200x2_2048 stripe fwd+bwd", 0.231},
      {"from 2026-12-04_h200x2_hop_share: 2026-12-04_h200x2_2048 llama3 fwd", 0.289},
      {"from 2026-12-04_h200x2_hop_share: 2026-12-04_h200x2_2048 llama3 fwd+bwd", 0.148},
      {"from 2026-12-04_h200x2_hop_share: 2026-12-04_h200x2_2048 varlen_zigzag fwd", 0.388},
      {"from 2026-12-04_h200x2_hop_share: 2026-12-04_h200x2_2048 varlen_zigzag fwd+bwd", 0.191},
      {"from 2026-12-04_h200x2_hop_share: 2026-12-04_h200x2_2048 varlen_llama3 fwd", 0.314},
  };
  return *misses;
}

// world: the log's ranks (the shared tables' 2 or 4 GPUs; 1 for the one-GPU
// runs at 2k-32k tokens); rows: how many it has at least. `calibrated`:
// another log of the same machine and shape but its tokens whose
// calibration predicts this one's rows (its known misses keyed "from
// CALIBRATED: NAME ROW PASS"); empty: the log's own.
void Replay(const std::string& name, int world = 0, size_t rows = 14,
            const std::string& calibrated = "") {
  SCOPED_TRACE(name);
  const absl::StatusOr<RingBenchLog> log =
      LoadRingBenchLog("sim/testdata/" + name + "_ring_bench.txt");
  ASSERT_TRUE(log.ok()) << log.status();
  if (world == 0) {
    ASSERT_GT(log->shape.world, 1);
  } else {
    ASSERT_EQ(log->shape.world, world);
  }
  ASSERT_GE(log->rows.size(), rows);
  absl::StatusOr<RingBenchLog> source = log;
  if (!calibrated.empty()) {
    source = LoadRingBenchLog("sim/testdata/" + calibrated + "_ring_bench.txt");
    ASSERT_TRUE(source.ok()) << source.status();
    ASSERT_EQ(source->shape.world, log->shape.world);
    ASSERT_EQ(source->shape.heads, log->shape.heads);
    ASSERT_EQ(source->shape.kv_heads, log->shape.kv_heads);
    ASSERT_EQ(source->shape.head_dim, log->shape.head_dim);
  }
  // The links at this log's hop bytes (the source's own at its own shape).
  const absl::StatusOr<Calibration> calibration = RebuildCalibrationFor(*source, log->shape);
  ASSERT_TRUE(calibration.ok()) << calibration.status();
  const std::string prefix = calibrated.empty() ? "" : "from " + calibrated + ": ";
  int within = 0;
  for (const MeasuredRow& m : log->rows) {
    const BenchRow* row = BenchRowNamed(m.row);
    ASSERT_NE(row, nullptr) << m.row;
    const absl::StatusOr<double> s =
        PredictBenchRow(*calibration, *row, log->shape, m.pass == "fwd+bwd");
    ASSERT_TRUE(s.ok()) << s.status();
    const double predicted_ms = 1e3 * *s;
    const double error = (predicted_ms - m.ms) / m.ms;
    const std::string key = prefix + name + " " + m.row + " " + m.pass;
    std::printf("%-42s measured %8.3f ms, predicted %8.3f ms (ring_bench printed %8.3f): %+.3f%%\n",
                key.c_str(), m.ms, predicted_ms, m.printed_sim_ms, 100 * error);
    if (std::abs(error) <= 0.05) ++within;
    const auto miss = KnownMisses().find(key);
    if (miss == KnownMisses().end()) {
      EXPECT_LE(std::abs(error), 0.05) << key;
    } else {
      EXPECT_LE(std::abs(error), miss->second) << key << ": a known miss got worse";
    }
  }
  std::printf("%s%s: %d of %zu rows within 5 %%\n", prefix.c_str(), name.c_str(), within,
              log->rows.size());
}

TEST(ReplayTest, TwoH200sOn2026_11_29) { Replay("2026-11-29_h200x2"); }

TEST(ReplayTest, FourH200sOn2026_11_29) { Replay("2026-11-29_h200x4"); }

// The 4 x H200 table's llama3 misses (+7.8 / +14.6 %, varlen llama3 +7.4 /
// +15.6 %) are its hop: NCCL's default 512 KiB chunks moved the 128 MiB hop
// at 158.8 GB/s there, and the model sends llama3's all-gather (not
// measured in that log) at the hop's rate. The same machine's second run
// with NCCL_P2P_NVL_CHUNKSIZE=131072 (what ringattn sets for rings of 3 or
// more since, comm::NcclChunkSizeDefault) moved it at 324.1 GB/s; its rows
// (shared/measurements/2026-11-29/h200x4_ring_chunksize.txt, --iters=3)
// predicted from the first run's calibration with that hop: llama3 +1.8 /
// +5.2 %, varlen llama3 -1.2 / +2.0 %; zigzag's fwd+bwd (+7.6 %, the
// backward of that era's kernels, as in the first run) and stripe's
// forward (-5.5 %) stay missed.
TEST(ReplayTest, FourH200sOn2026_11_29WithSmallChunks) {
  absl::StatusOr<RingBenchLog> log =
      LoadRingBenchLog("sim/testdata/2026-11-29_h200x4_ring_bench.txt");
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_EQ(log->shape.world, 4);
  log->hop_gbps = 324.1;
  const absl::StatusOr<Calibration> calibration = RebuildCalibration(*log);
  ASSERT_TRUE(calibration.ok()) << calibration.status();
  struct Measured {
    const char* row;
    bool backward;
    double ms, bound;  // the error's bound: 5 %, or a known miss's error now
  };
  for (const Measured& m :
       {Measured{"zigzag", false, 7.140, 0.05}, Measured{"zigzag", true, 26.476, 0.077},
        Measured{"stripe", false, 8.115, 0.056}, Measured{"stripe", true, 28.501, 0.05},
        Measured{"llama3", false, 11.685, 0.05}, Measured{"llama3", true, 42.843, 0.053},
        Measured{"varlen_llama3", false, 7.796, 0.05},
        Measured{"varlen_llama3", true, 28.984, 0.05}}) {
    const BenchRow* row = BenchRowNamed(m.row);
    ASSERT_NE(row, nullptr) << m.row;
    const absl::StatusOr<double> s = PredictBenchRow(*calibration, *row, log->shape, m.backward);
    ASSERT_TRUE(s.ok()) << s.status();
    const double error = (1e3 * *s - m.ms) / m.ms;
    std::printf(
        "2026-11-29_h200x4, 128 KiB chunks %-14s %-8s measured %8.3f ms, predicted %8.3f ms: "
        "%+.3f%%\n",
        m.row, m.backward ? "fwd+bwd" : "fwd", m.ms, 1e3 * *s, 100 * error);
    EXPECT_LE(std::abs(error), m.bound) << m.row << (m.backward ? " fwd+bwd" : " fwd");
  }
}

TEST(ReplayTest, TwoH200sOn2026_11_30WarpSpecializedKernels) { Replay("2026-11-30_h200x2"); }

// The dynamic forward tile order and the float4 ring kernels, with the
// all-gather measured (collective_gbps).
TEST(ReplayTest, TwoH200sOn2026_12_01DynamicTileOrder) { Replay("2026-12-01_h200x2"); }

// The fifty-fourth session's 2 x H200 table (build a9716b3, --settle_s=1):
// the kernels at 610-630 TFLOP/s, every row measured slower than the
// single-GPU calibration predicts (docs/RING_BENCH.md).
TEST(ReplayTest, TwoH200sOn2026_12_04Settled) { Replay("2026-12-04_h200x2_settled", 0, 16); }

// The same machine later in the session with ring_bench's hop share
// measured (Calibration::hop_sm_share 0.216 on the calibration line): the
// NCCL rows, the same rows with device copies (one process, copy engines:
// no SMs taken, hop 189 GB/s), GQA (kv 8), 2048 tokens a rank (the run was
// cut by its timeout after 11 rows) and the W = 1 rows on one of the two
// GPUs, whose fwd+bwd misses are the unsettled backward causal / full
// factor (1.083; with 0.966 settled they predict within 0.4 %).
TEST(ReplayTest, TwoH200sOn2026_12_04HopShare) { Replay("2026-12-04_h200x2_hop_share", 0, 16); }
TEST(ReplayTest, TwoH200sOn2026_12_04DeviceCopies) {
  Replay("2026-12-04_h200x2_device_copies", 0, 8);
}
TEST(ReplayTest, TwoH200sOn2026_12_04Kv8) { Replay("2026-12-04_h200x2_kv8_8192", 0, 12); }
TEST(ReplayTest, TwoH200sOn2026_12_04Tokens2048) { Replay("2026-12-04_h200x2_2048", 0, 11); }
TEST(ReplayTest, OneOfTwoH200sOn2026_12_04) { Replay("2026-12-04_h200x2_w1_8192", 1, 8); }

// The fifty-seventh session's 2 x H200 table (build f153c98: the per-side
// causal / full factors and the least kernel time measured in every run,
// WaitReady's backoff, every calibration measure settled), PyTorch CP in the
// same run, and the --timeline run of zigzag and varlen zigzag beside it:
// 17 of 20 rows within 5 % (the fifty-fourth session's settled table, the
// same shape on a build without these: 5 of 18).
TEST(ReplayTest, TwoH200sPerSideFactors) {
  Replay("2026-12-04_h200x2_per_side", 0, 16);
  Replay("2026-12-04_h200x2_per_side_timeline", 0, 4);
}

// The parser: what ring_bench prints today (with the all-gather measure)
// and bad input as errors.
// Shapes outside the shared tables (issue #19): one H200, W = 1, 2k-32k
// tokens per rank, rows ring, zigzag, llama3 and varlen zigzag, from the
// event-timed calibration on random inputs (forty-fifth session, call 3;
// docs/measurements/2026-12-03_h200_w1_events_calibration_random_inputs.txt).
TEST(ReplayTest, OneH200At2kTo32kTokens) {
  for (const char* tokens : {"2048", "4096", "8192", "16384", "32768"}) {
    Replay(absl::StrCat("2026-12-03_h200_w1_", tokens), 1, 8);
  }
}

// The same shapes after the pass's final wait stopped sleeping 50 us a
// poll (comm/poll_backoff.h; forty-sixth session), 1k-16k tokens, with the
// causal / full factor per block side and ring_bench --timeline's lines
// (docs/measurements/2026-12-03_h200_w1_poll_backoff.txt).
TEST(ReplayTest, OneH200At1kTo16kTokensPollBackoff) {
  for (const char* tokens : {"1024", "2048", "4096", "8192", "16384"}) {
    Replay(absl::StrCat("2026-12-03_h200_w1_poll_backoff_", tokens), 1, 8);
  }
}

// The same shapes with adjacent slices fused (zigzag at W = 1 one task a
// step, the documents one per document) and a ring of one adding llama3's
// dK/dV home without a reduce-scatter (forty-seventh session, HEAD's D),
// and one grouped-query log (32 query heads over 8 kv heads).
TEST(ReplayTest, OneH200At1kTo16kTokensFusedSlices) {
  for (const char* tokens : {"1024", "2048", "4096", "8192", "16384", "kv8_4096"}) {
    Replay(absl::StrCat("2026-12-03_h200_w1_fused_", tokens), 1, 8);
  }
}

// Token counts a calibration did not measure (issue #19: the model must
// hold on shapes it is not given): each one-H200 run's rows predicted from
// another run of the same call at other tokens -- the 8192-token run's
// calibration (block rates and causal / full factors at 1024-8192-token
// sides) for 1k-16k tokens, and the 16384-token run's (2048-16384) for
// 1k-32k. Below the smallest measured side the causal / full factor
// follows the tiles (sim/tile_fill.h CausalFactorScale; held before, it
// gave the 1024-token zigzag pass from 8192 tokens -14.3 / -8.5 % where
// it is 0.0 / -2.6 % now).
TEST(ReplayTest, OneH200OtherTokenCountsFromOneCalibration) {
  for (const char* family : {"fused", "poll_backoff"}) {
    for (const char* tokens : {"1024", "2048", "4096", "16384"}) {
      Replay(absl::StrCat("2026-12-03_h200_w1_", family, "_", tokens), 1, 8,
             absl::StrCat("2026-12-03_h200_w1_", family, "_8192"));
    }
  }
  for (const char* name : {"1024_docs", "2048_docs", "32768"}) {
    Replay(absl::StrCat("2026-12-04_h200_w1_per_side_", name), 1, 6,
           "2026-12-04_h200_w1_per_side_16384_docs");
  }
}

// 2 x H200, one session (2026-12-04, fifty-fourth): the 2048-token run
// predicted from the 8192-token run's calibration, its links at the
// 32-MiB hop from that run's hop sweep (RebuildCalibrationFor: 195.3 GB/s
// for the hop, 122.7 for the all-gather, where the 128-MiB hop's 281.1 and
// the 64-MiB all-gather's 214.1 made every row 24-54 % short). The rows
// miss short still: that session's code slept ~0.18 ms in every NCCL
// group's issue (its --timeline; since mended), which the log does not
// measure (its "hop issue" line came later); given as
// `ring_predict --hop_issue_us=180`, 8 of 11 rows come within 5 %.
TEST(ReplayTest, TwoH200sOtherTokenCountFromOneCalibration) {
  Replay("2026-12-04_h200x2_2048", 2, 11, "2026-12-04_h200x2_hop_share");
}

// The tiles' causal / full factor (sim/tile_fill.h ModelledCausalFactor,
// which carries the measured factor below the measured sides) against
// every factor per block side ring_bench measured in these logs (one H200
// and 2 x H200; 4-64 heads, d64-d256, 128-32768-token sides, GQA): the
// backward within 0.035 rms (0.028 at this commit), the forward within
// 0.08 (0.067: above the measured factors, by 0.05 on average over the
// side sweeps' points and 0.04 over the factors at each run's own tokens --
// likely a forward tile's fixed cost above the model's one step; the
// simulator uses the model's ratio below the measured sides, not its
// level).
TEST(ReplayTest, ModelledCausalFactorAgainstEveryMeasuredSide) {
  double squares[2] = {0, 0};
  int points[2] = {0, 0};
  for (const auto& entry : std::filesystem::directory_iterator("sim/testdata")) {
    const std::string path = entry.path().string();
    if (!absl::EndsWith(path, "_ring_bench.txt")) continue;
    const absl::StatusOr<RingBenchLog> log = LoadRingBenchLog(path);
    ASSERT_TRUE(log.ok()) << log.status();
    const absl::StatusOr<Calibration> c = RebuildCalibration(*log);
    ASSERT_TRUE(c.ok()) << c.status();
    LaunchGpu gpu;
    gpu.group = log->shape.heads / log->shape.kv_heads;
    for (const bool backward : {false, true}) {
      for (const auto& [side, measured] : c->partial_by_side[backward]) {
        const double modelled = ModelledCausalFactor(static_cast<int64_t>(side), backward,
                                                     log->shape.head_dim, log->shape.heads, gpu);
        squares[backward] += (modelled - measured) * (modelled - measured);
        ++points[backward];
      }
    }
  }
  ASSERT_GE(points[0], 200);
  ASSERT_GE(points[1], 200);
  const double rms[2] = {std::sqrt(squares[0] / points[0]), std::sqrt(squares[1] / points[1])};
  std::printf("modelled causal / full factor against %d / %d measured sides: rms %.4f / %.4f\n",
              points[0], points[1], rms[0], rms[1]);
  EXPECT_LE(rms[0], 0.08);
  EXPECT_LE(rms[1], 0.035);
}

// Heads outside the shared tables' 32 (forty-eighth session, HEAD's
// kernels): 4, 8, 16 and 64 heads at 1k-16k tokens, each log's calibration
// measured at its own heads. llama3 computes half the heads a step, whose
// launches fill the 132 SMs worse or better than the calibration's
// (sim/tile_fill.h; without it these llama3 rows missed by -17 to -39 %)
// (docs/measurements/2026-12-03_h200_w1_heads.txt).
TEST(ReplayTest, OneH200At4To64Heads) {
  for (const char* shape : {"1024_h16", "2048_h4", "2048_h8", "2048_h16", "2048_h64", "4096_h4",
                            "4096_h16", "8192_h4", "8192_h8", "8192_h16", "8192_h64", "16384_h8"}) {
    Replay(absl::StrCat("2026-12-03_h200_w1_heads_", shape), 1, 8);
  }
}

// Head dims 64 and 256 and grouped-query heads (8 over 2, 32 over 8) at
// 1k-16k tokens, few heads (forty-eighth session, after the fill was
// modelled; the model's tile shapes per head dim checked on logs it was
// not made from: llama3 mean |error| 16.4 -> 4.3 %)
// (docs/measurements/2026-12-03_h200_w1_heads.txt).
TEST(ReplayTest, OneH200HeadDimsAndGroupedQueryHeads) {
  for (const char* shape :
       {"1024_h8kv8_d64", "2048_h8kv2_d64", "4096_h4kv4_d64", "8192_h8kv2_d64", "2048_h8kv8_d256",
        "8192_h8kv8_d256", "2048_h32kv8_d128", "16384_h32kv8_d128"}) {
    Replay(absl::StrCat("2026-12-03_h200_w1_shapes_", shape), 1, 8);
  }
}

// llama3 with a ring of one as one ring step over every head (forty-eighth
// session, 0.56-0.91x the time of the head-group steps): the llama3 rows
// predicted as the ring's, varlen llama3 as varlen zigzag
// (docs/measurements/2026-12-03_h200_w1_llama3_ring_of_one.txt).
TEST(ReplayTest, OneH200Llama3RingOfOneWhole) {
  for (const char* tokens : {"2048", "8192"}) {
    Replay(absl::StrCat("2026-12-03_h200_w1_llama3_whole_", tokens), 1, 10);
  }
}

// The 128-token pass's forward kernel timed by events, its time (not the
// model's) out of the forward's pass overhead (forty-ninth session): 1k-16k
// tokens, 4-32 heads, d64 and d128, grouped-query heads, the backend's
// element-wise work in fewer launches
// (docs/measurements/2026-12-04_h200_w1_tiny_kernel.txt).
TEST(ReplayTest, OneH200TinyForwardKernelTimed) {
  for (const char* shape :
       {"1024_h16kv16_d128", "1024_h8kv8_d64", "1536_h32kv8_d128", "2048_h8kv8_d128",
        "2048_h16kv4_d64", "3072_h8kv8_d128", "4096_h4kv4_d128", "4096_h32kv8_d128",
        "8192_h32kv32_d128", "16384_h8kv8_d128"}) {
    Replay(absl::StrCat("2026-12-04_h200_w1_tiny_kernel_", shape), 1, 8);
  }
}

// The code of the fifty-second and fifty-third sessions: a backward step's
// dK/dV zeroing skipped where its launches store every row, D zeroing dQ
// in its launch, and (not run at W = 1: no partial sums) unwritten rows
// set by the arriving partial sum; 2k-8k tokens, d64 and d128,
// grouped-query heads (docs/measurements/2026-12-04_h200_w1_unwritten_dkv.txt).
// Every line and calibration block settled at the clock the power cap
// holds (ring_bench --settle_s=1, fifty-third session; two runs of the
// same build): the rows the unsettled runs measured 3.17-3.58 ms apart
// for the same work agree within 2.6 %
// (docs/measurements/2026-12-04_h200_w1_settle.txt).
TEST(ReplayTest, OneH200Settled) {
  for (const char* run : {"a", "b"})
    Replay(absl::StrCat("2026-12-04_h200_w1_settled_8192_", run), 1, 8);
}

// The causal / full factor's rounds settled too (fifty-fifth session,
// 2ee53d3's ring_bench): the backward's factor read 0.963 (unsettled runs
// 1.02-1.13), and every dense row at W = 1 is within 1 % (fwd+bwd within
// 0.5 %, where the unsettled factor put them 7-8 % under); the documents
// 3.9 / 4.4 % under.
TEST(ReplayTest, OneH200SettledFactor) { Replay("2026-12-04_h200_w1_settled_factor_8192", 1, 10); }

// The same method at other shapes (fifty-fifth session): every dense row
// at 1024, 2048, 4096 (kv 8) and 16384 tokens within 3.9 %; the documents under
// where the calibration has no least kernel time (measured only with
// --calibration_events), and with it (the events log) within 5.3 % while
// the dense forward at 2048 tokens goes 10 % over (the events' rates less
// launch_us plus the pass overhead charge a 2048-token pass's one kernel
// ~9 us more than its timeline shows).
TEST(ReplayTest, OneH200SettledFactorOtherShapes) {
  Replay("2026-12-04_h200_w1_settled_factor_1024_h32kv32", 1, 8);
  Replay("2026-12-04_h200_w1_settled_factor_2048_h32kv32", 1, 10);
  Replay("2026-12-04_h200_w1_settled_factor_4096_h32kv8", 1, 10);
  Replay("2026-12-04_h200_w1_settled_factor_16384_h32kv32", 1, 8);
  Replay("2026-12-04_h200_w1_settled_events_2048_h32kv32", 1, 4);
}

// The per-side causal / full factors measured in every run (fifty-sixth
// session, the fifty-fifth's ring_bench, never run on a GPU before): every
// dense row at 1k-32k tokens within 2.8 %, the documents at 4k-16k within
// 4.3 %, at 1-2k 8-10 % under (no least kernel time in these logs).
TEST(ReplayTest, OneH200PerSideFactors) {
  Replay("2026-12-04_h200_w1_per_side_1024_docs", 1, 6);
  Replay("2026-12-04_h200_w1_per_side_2048_docs", 1, 10);
  Replay("2026-12-04_h200_w1_per_side_4096kv8_docs", 1, 6);
  Replay("2026-12-04_h200_w1_per_side_16384_docs", 1, 6);
  Replay("2026-12-04_h200_w1_per_side_32768", 1, 6);
}

// The 128-token block's kernels timed by events in every run, the least
// time a task's kernel takes (fifty-sixth session): the documents at 1-2k
// tokens within 3.4 % (varlen ring at 1536 tokens -7 %: at W = 1 its
// schedule is varlen zigzag's, predicted alike and measured 0.067 ms).
TEST(ReplayTest, OneH200KernelFloorInEveryRun) {
  Replay("2026-12-04_h200_w1_kernel_floor_1024", 1, 5);
  Replay("2026-12-04_h200_w1_kernel_floor_2048", 1, 8);
  Replay("2026-12-04_h200_w1_kernel_floor_1536kv8", 1, 6);
  // Shapes of fewer heads at d64 (the 2048-token run hit its 130-s limit
  // before the documents).
  Replay("2026-12-04_h200_w1_kernel_floor_2048_h8kv2_d64", 1, 4);
  Replay("2026-12-04_h200_w1_kernel_floor_3072_h16kv16_d64", 1, 4);
}

// Shapes no earlier run measured, taken to test the model rather than to
// change it (sixty-first session, HEAD 80d74e5's binaries): GQA 4:1 at
// 3072 tokens (32 heads) and at 12288 (8 heads), every layout and the
// documents, each run's own calibration.
// (The 1536-token and d256 runs hit their call's time limit before their
// last rows; the 1536-token documents were run again alone.)
TEST(ReplayTest, OneH200HeldOutShapes) {
  Replay("2026-12-05_h200_w1_holdout_3072_h32kv8_d128", 1, 12);
  Replay("2026-12-05_h200_w1_holdout_12288_h8kv2_d128", 1, 12);
  Replay("2026-12-05_h200_w1_holdout_24576_h16kv4_d64", 1, 12);
  Replay("2026-12-05_h200_w1_holdout_6144_h16kv16_d256", 1, 11);
  Replay("2026-12-05_h200_w1_holdout_1536_h32kv32_d128", 1, 9);
  Replay("2026-12-05_h200_w1_holdout_1536_docs", 1, 6);
}

TEST(ReplayTest, OneH200StoredDkvStepsAndUnwrittenRows) {
  for (const char* shape :
       {"2048_h32kv32_d128", "4096_h16kv16_d64", "4096_h32kv8_d128", "8192_h32kv32_d128"}) {
    Replay(absl::StrCat("2026-12-04_h200_w1_unwritten_dkv_", shape), 1, 8);
  }
}

TEST(RingBenchLogTest, ParsesTheHeaderAndRejectsOtherText) {
  const std::string log =
      "ring_bench: 4 x NVIDIA H200, NCCL, one process per GPU, bf16 b1 4096 tokens/rank h16/4 "
      "d64 causal, median of 5 iterations; ring hop of 1048576 B: 300.5 GB/s; all-gather of "
      "524288 B per rank: 410.2 GB/s sent per rank\n"
      "calibration: our kernels, TFLOP/s: causal 4096 tokens fwd 300.0, bwd 250.0; full blocks "
      "(side:TFLOP/s) fwd 1024:200.0 4096:400.0; bwd 1024:150.0 4096:300.0; causal / full 0.800 "
      "fwd, 0.810 bwd; strided / contiguous 0.975 fwd, 0.985 bwd; merged / fresh state 0.940 "
      "fwd; ring pass dK/dV home 0 B/element; forward's O at its end 0 B/element; adjacent "
      "slices fused; llama3's ring of one whole; stored dK/dV steps unzeroed; unwritten dK/dV "
      "rows set by the partial sum; a hop beside the kernels takes 0.125 of their rate; a "
      "128-token pass 120.0 us fwd, 250.0 "
      "us fwd+bwd; pass overhead 16.5 / 80.25 us (fwd / bwd)\n"
      "zigzag         fwd          100.00     200.00 ringattn             50.0%       100.0      "
      "1.0 / 1.0          1.234     1.300   +5.3%\n";
  const absl::StatusOr<RingBenchLog> parsed = ParseRingBenchLog(log);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->shape.world, 4);
  EXPECT_FALSE(parsed->virtual_ranks);
  EXPECT_EQ(parsed->shape.tokens, 4096);
  EXPECT_EQ(parsed->shape.heads, 16);
  EXPECT_EQ(parsed->shape.kv_heads, 4);
  EXPECT_EQ(parsed->shape.head_dim, 64);
  EXPECT_DOUBLE_EQ(parsed->hop_gbps, 300.5);
  EXPECT_DOUBLE_EQ(parsed->all_gather_gbps, 410.2);
  ASSERT_EQ(parsed->rows.size(), 1u);
  EXPECT_DOUBLE_EQ(parsed->rows[0].ms, 1.234);
  const absl::StatusOr<Calibration> c = RebuildCalibration(*parsed);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ(c->collective_gbps, 410.2);
  EXPECT_DOUBLE_EQ(c->ring_pass_dkv_home_bytes, 0);
  EXPECT_DOUBLE_EQ(c->forward_o_bytes, 0);
  EXPECT_DOUBLE_EQ(c->fused_slices, 1);
  EXPECT_DOUBLE_EQ(c->llama3_ring_of_one_whole, 1);
  EXPECT_DOUBLE_EQ(c->stored_dkv_steps, 1);
  EXPECT_DOUBLE_EQ(c->partial_sum_sets_dkv_rows, 1);
  EXPECT_DOUBLE_EQ(c->hop_sm_share, 0.125);
  EXPECT_DOUBLE_EQ(c->rate_heads, 16) << "the run's heads";
  EXPECT_DOUBLE_EQ(c->partial_block_factor_bwd, 0.81);
  EXPECT_DOUBLE_EQ(c->strided_block_factor, 0.975);
  EXPECT_DOUBLE_EQ(c->strided_block_factor_bwd, 0.985);
  EXPECT_DOUBLE_EQ(c->MergedStateFactor(), 0.94);
  EXPECT_DOUBLE_EQ(c->pass_overhead_us_fwd, 16.5);
  EXPECT_DOUBLE_EQ(c->pass_overhead_us_bwd, 80.25);
  EXPECT_NEAR(c->Tflops(false, 64, 4096, 4096, 1.0), 400.0, 1e-6);
  EXPECT_DOUBLE_EQ(c->launch_us, 5) << "the run's builtin (h100)";
  EXPECT_DOUBLE_EQ(c->LaunchUs(true), 5);
  EXPECT_DOUBLE_EQ(c->hbm_gbps, 3350) << "a log without its table: h100's";
  // The calibration of the log with `tail` after its calibration line's
  // last clause (what later ring_bench versions or flags print there).
  const auto with_tail = [&](absl::string_view tail) -> absl::StatusOr<Calibration> {
    ASSIGN_OR_RETURN(const RingBenchLog tailed,
                     ParseRingBenchLog(absl::StrReplaceAll(
                         log, {{"(fwd / bwd)\n", absl::StrCat("(fwd / bwd)", tail, "\n")}})));
    return RebuildCalibration(tailed);
  };
  // The table the run started from (ring_bench takes the GPU's own).
  const absl::StatusOr<Calibration> h200_c = with_tail("; from the h200 table");
  ASSERT_TRUE(h200_c.ok()) << h200_c.status();
  EXPECT_DOUBLE_EQ(h200_c->hbm_gbps, 4800);
  EXPECT_DOUBLE_EQ(h200_c->pass_overhead_us_bwd, 80.25);
  EXPECT_NEAR(h200_c->Tflops(false, 64, 4096, 4096, 1.0), 400.0, 1e-6);
  // --calibration_task_cost: the measured per-kernel costs.
  const absl::StatusOr<Calibration> costed_c = with_tail(
      "; a 128-token pass of three tasks 150.0 us fwd, 300.0 us fwd+bwd; task cost 9.5 / "
      "14.25 us (fwd / bwd)");
  ASSERT_TRUE(costed_c.ok()) << costed_c.status();
  EXPECT_DOUBLE_EQ(costed_c->LaunchUs(false), 9.5);
  EXPECT_DOUBLE_EQ(costed_c->LaunchUs(true), 14.25);
  EXPECT_DOUBLE_EQ(costed_c->pass_overhead_us_bwd, 80.25);
  // --calibration_events: the causal / full factor per block side.
  const absl::StatusOr<Calibration> by_side_c = with_tail(
      "; a lone causal launch / back to back 0.955 fwd, 0.996 bwd; causal / full per "
      "block side fwd 1024:0.728 4096:0.870, bwd 1024:0.559 4096:0.822");
  ASSERT_TRUE(by_side_c.ok()) << by_side_c.status();
  EXPECT_DOUBLE_EQ(by_side_c->PartialFactorAt(false, 1024), 0.728);
  EXPECT_DOUBLE_EQ(by_side_c->PartialFactorAt(true, 4096), 0.822);
  EXPECT_NEAR(by_side_c->PartialFactorAt(false, 2048), (0.728 + 0.870) / 2, 1e-12);
  EXPECT_DOUBLE_EQ(by_side_c->partial_block_factor, 0.8) << "the one factor kept";
  EXPECT_TRUE(costed_c->partial_by_side[0].empty()) << "without the clause: none";
  // --calibration_events since the forty-ninth session: the 128-token
  // block's kernels by events, the least time a task's kernel takes.
  EXPECT_DOUBLE_EQ(c->min_kernel_us_fwd, 0) << "without the clause: no floor";
  const absl::StatusOr<RingBenchLog> timed_log = ParseRingBenchLog(absl::StrReplaceAll(
      log, {{"250.0 us fwd+bwd;",
             "250.0 us fwd+bwd (its kernels 9.6 / 13.5 us by events, the model's 5.3 / 5.8);"}}));
  ASSERT_TRUE(timed_log.ok()) << timed_log.status();
  const absl::StatusOr<Calibration> timed_c = RebuildCalibration(*timed_log);
  ASSERT_TRUE(timed_c.ok()) << timed_c.status();
  EXPECT_DOUBLE_EQ(timed_c->MinKernelUs(false), 9.6);
  EXPECT_DOUBLE_EQ(timed_c->MinKernelUs(true), 13.5);
  EXPECT_DOUBLE_EQ(timed_c->pass_overhead_us_fwd, 16.5) << "the printed overhead, as it is";
  const absl::StatusOr<RingBenchLog> bad_kernels = ParseRingBenchLog(absl::StrReplaceAll(
      log, {{"250.0 us fwd+bwd;", "250.0 us fwd+bwd (its kernels 9.6 / x us by events);"}}));
  ASSERT_TRUE(bad_kernels.ok()) << bad_kernels.status();
  EXPECT_THAT(std::string(RebuildCalibration(*bad_kernels).status().message()),
              ::testing::HasSubstr("(its kernels bwd is 'x'"));
  const absl::StatusOr<RingBenchLog> nan_kernels = ParseRingBenchLog(absl::StrReplaceAll(
      log, {{"250.0 us fwd+bwd;", "250.0 us fwd+bwd (its kernels nan / 13.5 us by events);"}}));
  ASSERT_TRUE(nan_kernels.ok()) << nan_kernels.status();
  EXPECT_THAT(std::string(RebuildCalibration(*nan_kernels).status().message()),
              ::testing::HasSubstr("expected a (finite) number"));
  EXPECT_THAT(
      std::string(
          with_tail("; causal / full per block side fwd 1024:x, bwd 1024:0.5").status().message()),
      ::testing::HasSubstr("causal / full factor is 'x'; expected a (finite) number"));
  // A log from before the fields: its code added the returning dK/dV, and
  // its rates carry the pass overhead.
  const std::string before =
      absl::StrReplaceAll(log, {{"; ring pass dK/dV home 0 B/element", ""},
                                {"; forward's O at its end 0 B/element", ""},
                                {"; adjacent slices fused", ""},
                                {"; llama3's ring of one whole", ""},
                                {"; stored dK/dV steps unzeroed", ""},
                                {"; unwritten dK/dV rows set by the partial sum", ""},
                                {"; a hop beside the kernels takes 0.125 of their rate", ""},
                                {"; strided / contiguous 0.975 fwd, 0.985 bwd", ""},
                                {"; merged / fresh state 0.940 fwd", ""},
                                {"; pass overhead 16.5 / 80.25 us (fwd / bwd)", ""}});
  const absl::StatusOr<RingBenchLog> old = ParseRingBenchLog(before);
  ASSERT_TRUE(old.ok()) << old.status();
  const absl::StatusOr<Calibration> old_c = RebuildCalibration(*old);
  ASSERT_TRUE(old_c.ok()) << old_c.status();
  EXPECT_DOUBLE_EQ(old_c->ring_pass_dkv_home_bytes, 10);
  EXPECT_DOUBLE_EQ(old_c->forward_o_bytes, 6) << "every forward converted O then";
  EXPECT_DOUBLE_EQ(old_c->fused_slices, 0) << "a task per pair of slices then";
  EXPECT_DOUBLE_EQ(old_c->llama3_ring_of_one_whole, 0) << "a step per head group then";
  EXPECT_DOUBLE_EQ(old_c->stored_dkv_steps, 0) << "every backward step zeroed then";
  EXPECT_DOUBLE_EQ(old_c->partial_sum_sets_dkv_rows, 0) << "a step's whole buffer zeroed then";
  EXPECT_DOUBLE_EQ(old_c->hop_sm_share, 0) << "no hop's share of the kernels then";
  EXPECT_DOUBLE_EQ(old_c->pass_overhead_us_fwd, 0);
  EXPECT_DOUBLE_EQ(old_c->StridedFactor(false), 1) << "not measured: the contiguous model";
  EXPECT_DOUBLE_EQ(old_c->MergedStateFactor(), 1) << "every forward launch merged then";
  EXPECT_DOUBLE_EQ(old_c->pass_overhead_us_bwd, 0);
  EXPECT_DOUBLE_EQ(c->hop_issue_us_kv, 0) << "no 'hop issue' line: none";
  // Multi-rank runs since the fifty-eighth session: the hop's issue on the
  // host, K and V apart / one message each way, before the header.
  const std::string issue_line =
      "hop issue (host time from StartBatch to the transfers enqueued, the GPU idle, median of "
      "9, slowest rank): K and V apart (a forward's first step) 61.5 us, one message each way "
      "49.0 us; NCCL groups: RINGATTN_NCCL_ISSUE=nonblocking\n";
  const absl::StatusOr<RingBenchLog> issued = ParseRingBenchLog(issue_line + log);
  ASSERT_TRUE(issued.ok()) << issued.status();
  EXPECT_DOUBLE_EQ(issued->hop_issue_us_kv, 61.5);
  EXPECT_DOUBLE_EQ(issued->hop_issue_us, 49.0);
  const absl::StatusOr<Calibration> issued_c = RebuildCalibration(*issued);
  ASSERT_TRUE(issued_c.ok()) << issued_c.status();
  EXPECT_DOUBLE_EQ(issued_c->HopIssueUs(2), 61.5);
  EXPECT_DOUBLE_EQ(issued_c->HopIssueUs(1), 49.0);
  EXPECT_THAT(std::string(ParseRingBenchLog(absl::StrReplaceAll(issue_line, {{"49.0", "x"}}) + log)
                              .status()
                              .message()),
              ::testing::HasSubstr("hop issue (one) is 'x'"));
  const absl::StatusOr<RingBenchLog> negative =
      ParseRingBenchLog(absl::StrReplaceAll(issue_line, {{"61.5", "-61.5"}}) + log);
  ASSERT_TRUE(negative.ok()) << negative.status();
  EXPECT_THAT(std::string(RebuildCalibration(*negative).status().message()),
              ::testing::HasSubstr("its calibration is out of range"));
  // Header numbers beyond what a run has (a cast of them would be undefined).
  for (const auto& [from, to] :
       std::vector<std::pair<std::string, std::string>>{{"b1 4096 tokens", "b1 1e30 tokens"},
                                                        {"b1 4096 tokens", "b1 4096.5 tokens"},
                                                        {"h16/4 d64", "h16/32 d64"},
                                                        {"4 x NVIDIA", "0 x NVIDIA"}}) {
    EXPECT_THAT(
        std::string(ParseRingBenchLog(absl::StrReplaceAll(log, {{from, to}})).status().message()),
        ::testing::HasSubstr("expected whole numbers from 1"))
        << to;
  }
  EXPECT_FALSE(ParseRingBenchLog("no ring_bench output here").ok());
  EXPECT_THAT(std::string(ParseRingBenchLog("ring_bench: x x y").status().message()),
              ::testing::HasSubstr("expected a (finite) number"));
}

// ring_bench --hop_sweep's line (ours / plain per size) and the links a
// prediction at another hop size takes from it (RebuildCalibrationFor):
// the line latency + bytes / bandwidth through the points from 32 MiB, at
// the shape's hop; the all-gather scaled by the line's rate at its bytes;
// at the log's own shape, or without a sweep, the log's own.
TEST(RingBenchLogTest, ReadsTheHopSweepAndTakesTheLinksAtOtherHopSizesFromIt) {
  const absl::StatusOr<RingBenchLog> log =
      LoadRingBenchLog("sim/testdata/2026-12-04_h200x2_per_side_ring_bench.txt");
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_EQ(log->hop_sweep.size(), 6u);
  EXPECT_EQ(log->hop_sweep.front(), (std::pair<double, double>{8, 93.5}));
  EXPECT_EQ(log->hop_sweep.back(), (std::pair<double, double>{256, 304.0}));
  EXPECT_EQ(HopBytes(log->shape), 134217728.0);
  const Calibration own = *RebuildCalibration(*log);
  const Calibration same = *RebuildCalibrationFor(*log, log->shape);
  EXPECT_EQ(same.link_gbps, own.link_gbps);
  EXPECT_EQ(same.collective_gbps, own.collective_gbps);
  BenchShape small = log->shape;
  small.tokens = 2048;  // a 32-MiB hop, a 16-MiB all-gather
  const Calibration at_32 = *RebuildCalibrationFor(*log, small);
  EXPECT_NEAR(at_32.link_gbps, 229.4, 0.03 * 229.4) << "the sweep's 32 MiB";
  EXPECT_LT(at_32.collective_gbps, 0.8 * own.collective_gbps);
  BenchShape large = log->shape;
  large.tokens = 16384;  // 256 MiB
  EXPECT_NEAR(RebuildCalibrationFor(*log, large)->link_gbps, 304.0, 0.03 * 304.0);
  EXPECT_EQ(RebuildCalibrationFor(*log, large)->hop_sm_share, own.hop_sm_share);
  // Without a sweep: the log's links at any shape.
  RingBenchLog unswept = *log;
  unswept.hop_sweep.clear();
  EXPECT_EQ(RebuildCalibrationFor(unswept, small)->link_gbps, own.link_gbps);
  // A sweep point that is not MiB:GB/s.
  const std::string text = absl::StrCat(
      "ring hop sweep (MiB per rank:GB/s ours/plain NCCL): 8:x/1.0\n",
      "ring_bench: 2 x NVIDIA H200, NCCL, bf16 b1 8192 tokens/rank h32/32 d128 causal, median of "
      "5 iterations; ring hop of 134217728 B: 280.0 GB/s\n",
      log->calibration_line, "\nzigzag fwd 1 1 ringattn 50.0% 1 1 / 1 1.0 1.0 +0.0%\n");
  EXPECT_THAT(std::string(ParseRingBenchLog(text).status().message()),
              ::testing::HasSubstr("hop sweep bandwidth is 'x'"));
  EXPECT_THAT(
      std::string(
          ParseRingBenchLog(absl::StrReplaceAll(text, {{"8:x/1.0", "0:5/1"}})).status().message()),
      ::testing::HasSubstr("expected MiB:GB/s, both positive"));
}

// A run of virtual ranks on one GPU (ring_bench --world=2 --comm=device,
// 2026-12-02): "device copies" before the heads, no simulator columns.
TEST(RingBenchLogTest, ParsesAVirtualRanksRun) {
  const absl::StatusOr<RingBenchLog> parsed =
      LoadRingBenchLog("sim/testdata/2026-12-02_h200_virtual_ranks_ring_bench.txt");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->virtual_ranks);
  EXPECT_EQ(parsed->shape.head_dim, 128);
  EXPECT_EQ(parsed->shape.kv_heads, 32);
  EXPECT_DOUBLE_EQ(parsed->hop_gbps, 826.5);
  ASSERT_EQ(parsed->rows.size(), 2u);
  EXPECT_DOUBLE_EQ(parsed->rows[0].ms, 3.761);
  EXPECT_DOUBLE_EQ(parsed->rows[0].printed_sim_ms, 0);
  const absl::StatusOr<Calibration> c = RebuildCalibration(*parsed);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_NEAR(c->Tflops(true, 128, 8192, 8192, 1.0), 533.0, 1e-6);
  EXPECT_DOUBLE_EQ(c->pass_overhead_us_bwd, 68.0);
  // Its hop's issue was of copies inside a GPU: not the link's.
  RingBenchLog issued = *parsed;
  issued.hop_issue_us_kv = issued.hop_issue_us = 20;
  EXPECT_EQ(RebuildCalibration(issued)->hop_issue_us_kv, 0);
}

}  // namespace
}  // namespace ringattn::sim
