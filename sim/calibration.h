// Calibrated costs for the simulator: attention kernel rates (TFLOP/s as a
// function of block size and head_dim, forward and backward), launch
// overhead, HBM bandwidth and link bandwidths/latencies.
//
// Text format (one setting per line, '#' comments):
//   gpu h800
//   launch_us 6
//   launch_us_bwd 9          # a backward task's kernel (absent: launch_us)
//   hbm_GBps 3350
//   link_GBps 200            # NVLink, per direction, per GPU (0: none measured, a
//                            # one-GPU run's; refused for a ring of several ranks)
//   collective_GBps 300      # all-gather / reduce-scatter: a rank's bytes to
//                            # all peers together (0: to each at link_GBps in turn)
//   link_latency_us 12
//   internode_GBps 25        # per GPU across nodes
//   internode_latency_us 25
//   host_sync_us 20          # GPU idle after a host synchronization
//   partial_block_factor 0.9 # rate of a causal (half-density) block vs a full one
//   partial_block_factor_bwd 0.96  # the same for the backward (default: as fwd)
//   strided_block_factor 0.85   # rate of a strided (stripe) block vs a contiguous one of
//   strided_block_factor_bwd 0.9 # the same density (0 or absent: 1), fwd / bwd
//   merged_state_factor 0.99 # rate of a forward task on state rows its pass wrote
//                            # before vs the first one's (0 or absent: 1)
//   ring_pass_dkv_home_bytes 0   # bytes per dK/dV element when a ring pass's sum comes home
//   forward_o_bytes 0        # bytes per query element a forward pass's end moves for O
//   fused_slices 1           # 1: the schedule fuses slices that follow on (0: before)
//   llama3_ring_of_one_whole 1  # 1: llama3's ring of one is one all-head step (0: before)
//   stored_dkv_steps 1          # 1: backward steps that store every dK/dV row skip its zeroing
//   partial_sum_sets_dkv_rows 1 # 1: a step zeroes only the dK/dV cells it needs zeroed; the
//                               # partial sum sets its unwritten rows (0: before)
//   hop_sm_share 0.1         # the share of a kernel's rate a ring hop beside it takes
//                            # (0 <= share < 1; 0 or absent: none)
//   pass_overhead_us_fwd 16  # what a forward / backward pass costs besides its tasks
//   pass_overhead_us_bwd 80  # and memory passes (host preparation, the end-of-pass sync)
//   hop_issue_us 50          # the host's time to issue a batch of one transfer each way /
//   hop_issue_us_kv 60       # of two or more (0 or absent: none; ring_bench's "hop issue")
//   min_kernel_us_fwd 9.6    # the least time a task's kernel takes, fwd / bwd (0 or
//   min_kernel_us_bwd 13.5   # absent: none; ring_bench's 128-token block by events)
//   rate_heads 32            # (batch row, query head) pairs the rates were measured at
//                            # (0 or absent: a launch's fill is not modelled)
//   sms 132                  # the SMs a kernel's tiles fill (sim/tile_fill.h)
//   l2_MB 50                 # the L2 the forward's tile sections fit half of
//   rate fwd 128 8192 361    # pass, head_dim, block side (tokens), TFLOP/s
//   partial fwd 4096 0.87    # partial_block_factor at a causal block's side
//                            # (pass, side, factor; any number per pass)
// Every number is finite and 0 or of magnitude 1e-9 to 1e12 (a denormal
// rate or factor would make every time inf); head dims are whole numbers.
// Rates are for full (unmasked) square blocks; between block sides the
// rate is interpolated linearly in log(side), beyond them held; a block of
// rows_q x rows_k uses side sqrt(rows_q * rows_k); head dims without a row
// use the nearest head_dim's curve.
#ifndef RINGATTN_SIM_CALIBRATION_H_
#define RINGATTN_SIM_CALIBRATION_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ringattn::sim {

class Calibration {
 public:
  // The tables shipped for "h100", "h200", "h800", "a100".
  // Errors: InvalidArgument listing the known GPUs.
  static absl::StatusOr<Calibration> Builtin(absl::string_view gpu);
  // The shipped table for a device named `device_name` (as CUDA names it,
  // e.g. "NVIDIA H200"): the table whose name (h100, h200, h800, a100) it
  // holds, case-insensitively. Errors: NotFound naming the device and the
  // tables to choose from instead.
  static absl::StatusOr<std::string> BuiltinNameOfDevice(absl::string_view device_name);
  // Parses the text format. Errors: InvalidArgument naming the line.
  static absl::StatusOr<Calibration> Parse(absl::string_view text);
  static absl::StatusOr<Calibration> Load(const std::string& path);
  std::string Serialize() const;

  // TFLOP/s of a block of rows_q x rows_k for `head_dim` whose mask allows
  // the fraction `density` of its pairs. A cut block runs slower per FLOP
  // (diagonal tiles do masked work, rows have unequal work): a causal block
  // (density <= 1/2) at partial_block_factor x the full rate, between 1/2
  // and 1 linearly towards the full rate (a block mostly full, as the last
  // rank's in llama3, runs nearly like a full one). `factor_scale`
  // multiplies the causal / full factor (sim/tile_fill.h's
  // CausalFactorScale: a side beyond the measured ones).
  double Tflops(bool backward, int64_t head_dim, int64_t rows_q, int64_t rows_k, double density,
                double factor_scale = 1.0) const;
  // The full-block curve Tflops reads for (pass, head_dim): (side, TFLOP/s)
  // points, sorted by side (the nearest head_dim's; the table must have one).
  const std::vector<std::pair<double, double>>& CurveOf(bool backward, int64_t head_dim) const;
  // Makes the full-block curve of (pass, head_dim) pass through `measured`
  // (block side, TFLOP/s of a full block) and keep its shape elsewhere:
  // every point is scaled by the measured / modelled ratio, interpolated in
  // log(side) between measured sides and held beyond them. Starts from the
  // nearest head_dim's curve when this one has none. Errors:
  // InvalidArgument for an empty list or a side or rate <= 0.
  absl::Status FitCurve(bool backward, int64_t head_dim,
                        std::vector<std::pair<double, double>> measured);
  double PartialFactor(bool backward) const {
    return backward && partial_block_factor_bwd > 0 ? partial_block_factor_bwd
                                                    : partial_block_factor;
  }
  // The factor at a block of `side` tokens: partial_by_side[pass]
  // interpolated in log(side) and held beyond its ends; PartialFactor
  // where the pass has none.
  double PartialFactorAt(bool backward, double side) const;

  std::string gpu = "custom";
  // A kernel's fixed cost (launch, start, tail) beside its FLOPs: every
  // task's and memory pass's kernel; a backward task's is launch_us_bwd
  // when that is set (>= 0; -1: launch_us). ring_bench
  // --calibration_task_cost measures both from 128-token passes of one and
  // of three tasks.
  double launch_us = 5;
  double launch_us_bwd = -1;
  double LaunchUs(bool backward) const {
    return backward && launch_us_bwd >= 0 ? launch_us_bwd : launch_us;
  }
  double hbm_gbps = 3350;
  double link_gbps = 200;
  // What one rank sends to all its node's peers together per second in an
  // all-gather or reduce-scatter (NVSwitch: peers on separate links);
  // 0: each peer's share at link_gbps, one after another.
  double collective_gbps = 0;
  double link_latency_us = 10;
  double internode_gbps = 25;
  double internode_latency_us = 25;
  double partial_block_factor = 0.9;
  double partial_block_factor_bwd = 0;  // 0: partial_block_factor
  // Rate of a task whose positions are strided (stripe layouts) relative to
  // a contiguous task of the same density; 0: 1. bwd 0: as fwd.
  double strided_block_factor = 0;
  double strided_block_factor_bwd = 0;
  double StridedFactor(bool backward) const {
    const double f =
        backward && strided_block_factor_bwd > 0 ? strided_block_factor_bwd : strided_block_factor;
    return f > 0 ? f : 1.0;
  }
  // Rate of a forward task whose state rows an earlier task of its pass
  // wrote (it merges into them) relative to the first on those rows, which
  // writes them fresh (the CUDA backend's state_fresh, since 2026-12-02;
  // ring_bench's calibration passes are all first: W = 1). 0: 1.
  double merged_state_factor = 0;
  double MergedStateFactor() const { return merged_state_factor > 0 ? merged_state_factor : 1.0; }
  // HBM bytes per dK/dV element (fp32, both halves) when a ring pass's
  // finished sum comes home: 0, ringattn's CUDA backend since 2026-12-01
  // (the sum is the rank's dK/dV where it is); ring_bench runs before that
  // added it into zeroed full fp32 buffers (10, their replays set it).
  // All-gather's home add is charged regardless (it still adds).
  double ring_pass_dkv_home_bytes = 0;
  // HBM bytes per query element the end of a forward pass moves for O: 0,
  // ringattn's CUDA backend since 2026-12-03 (O stays in the fp32 state
  // until a caller asks; WriteOutputs converts it straight into the
  // caller's buffer, 4 + dtype bytes); ring_bench runs before that
  // converted it into a buffer of the backend's own after every pass (4 +
  // 2 for their bf16: their replays set 6) and WriteOutputs copied it.
  double forward_o_bytes = 0;
  // 1: ringattn's schedule fuses a rank's slices that follow on in rows and
  // positions into one run (ScheduleOptions::fuse_adjacent_slices, since
  // 2026-12-03: zigzag at ring size 1 is one task a step, not three; the
  // last rank's middle chunks one run); 0: ring_bench runs before that cut
  // a task per pair of the layout's slices (their replays set it).
  double fused_slices = 1;
  // 1: llama3 with a ring of one runs as one ring step over every head
  // (ScheduleOptions::llama3_ring_of_one_whole, since 2026-12-03's
  // forty-eighth session); 0: a step per head group, its K/V packed
  // (ring_bench runs before that; their replays set it).
  double llama3_ring_of_one_whole = 1;
  // 1: a backward step whose launches store every row of its dK/dV buffer
  // before any adds skips the buffer's zeroing (the CUDA backend since
  // 2026-12-04's fifty-second session, on Hopper: the warp-specialized
  // kernel stores fresh rows, zeros where no query meets a key tile; the
  // model applies it to fp16/bf16 at d64/d128 without GQA); 0: every step
  // zeroed (ring_bench runs before that, and A100's mma.sync kernel, which
  // adds; their replays set it).
  double stored_dkv_steps = 1;
  // 1: a backward step zeroes only the cells of its dK/dV buffer that its
  // launches add to before storing and, where no partial sum follows, the
  // cells no launch reaches; where one follows (every ring step but the
  // first) the sum's accumulate sets those, a copy of 8 bytes an element
  // instead of an add of 12 (the CUDA backend since 2026-12-04's
  // fifty-third session: a zigzag step on an earlier rank's block leaves
  // half its rows so); 0: the whole buffer zeroed where any cell needs it
  // (ring_bench runs before that; their replays set it).
  double partial_sum_sets_dkv_rows = 1;
  // The share of the attention kernels' rate a ring hop in flight takes
  // from its rank (NCCL's send/recv kernel holds SMs for the hop's length;
  // copy engines would take none): while a rank's send is on the link, its
  // GPU work runs at (1 - share) of the rate. ring_bench measures it on
  // NCCL rings (a full block's forward kernel alone and beside a hop of the
  // ring's bytes, in turn: the time it gains over the hop's). 0: none (the
  // built-in tables, one-GPU runs and logs before the fifty-fourth
  // session). At most just under 1.
  double hop_sm_share = 0;
  // What a ringattn pass costs besides its tasks' kernels and memory passes
  // (the host's preparation and launches of the pass, the synchronize that
  // ends it), once per forward and once per backward pass of a rank, the
  // GPU idle: ring_bench measures it on a 128-token pass (a few
  // microseconds of kernels) and takes it out of the block rates, which
  // carried it once per measured block while a pass of many tasks pays it
  // once. 0: not measured (logs before 2026-12-01's seventeenth session;
  // their rates carry it).
  double pass_overhead_us_fwd = 0;
  double pass_overhead_us_bwd = 0;
  // The host's time to issue one batch of a ring step's transfers (NCCL:
  // from the group's start to its end's return; ring_bench's "hop issue"
  // line, measured at the ring's hop bytes, the slowest rank's median):
  // hop_issue_us_kv for a batch of two or more sends (the forward's first
  // step sends K and V apart; a backward step its partial dK/dV beside the
  // block), hop_issue_us for one. Nothing behind the batch is enqueued
  // until it returns, so the GPU idles for it where it has no work queued:
  // at a pass's first step, and at every step whose kernels are shorter
  // than the issue (small blocks). NCCL 2.28's non-blocking groups took
  // 50-136 us on one H200, blocking ones 8-19 (2026-12-04). 0: not
  // measured (the built-in tables, logs before the fifty-eighth session).
  double hop_issue_us = 0;
  double hop_issue_us_kv = 0;
  double HopIssueUs(int sends) const { return sends >= 2 ? hop_issue_us_kv : hop_issue_us; }
  // The least time a task's kernel takes, forward / backward: a kernel of
  // a few tiles (a short document's) takes its start, one wave of tiles and
  // its tail whatever its FLOPs (in a pass of documents, 40- and 32-token
  // documents' kernels took 10-11 us back to back on an H200), where the
  // rates plus launch_us charge ~5 us. ring_bench --calibration_events
  // times its 128-token causal block by events, back to back (since the
  // forty-ninth session: 9.5-11 / 13.5-15.5 us). 0: no floor (tables and
  // logs before).
  double min_kernel_us_fwd = 0;
  double min_kernel_us_bwd = 0;
  double MinKernelUs(bool backward) const {
    return backward ? min_kernel_us_bwd : min_kernel_us_fwd;
  }
  // The (batch row, query head) pairs of the launches the rates were
  // measured on (ring_bench: its heads, batch 1; the shipped tables: 32
  // heads). A task over another count runs at the rate x how much better or
  // worse its tiles fill `sms` SMs (sim/tile_fill.h: FillRatio): a llama3
  // head group, a few heads, a batch. 0: not modelled (tables before
  // 2026-12-03's forty-eighth session).
  double rate_heads = 0;
  double sms = 132;
  double l2_mb = 50;
  // The GPU's idle time after the host waits for it (PyTorch eager: the
  // wait's round trip plus dispatching the next op; used for the seed's
  // implementation, whose boolean-mask indexing synchronizes).
  double host_sync_us = 20;
  // partial_by_side[pass] = sorted (causal block side, causal / full rate
  // factor): ring_bench --calibration_events measures it at each side of
  // the full-block sweep (a causal block's factor grows with its side:
  // 0.73 at 1024 tokens to 0.87-0.89 at 4-8k forward on H200, 2026-12-03),
  // where one factor taken at the run's tokens was applied to the half-size
  // diagonal blocks of zigzag and to the documents' smaller ones. Empty:
  // the one factor.
  std::vector<std::pair<double, double>> partial_by_side[2];
  // rates[pass][head_dim] = sorted (block side, TFLOP/s); pass 0 fwd, 1 bwd.
  std::map<int64_t, std::vector<std::pair<double, double>>> rates[2];
};

// The value of `points` (sorted by side, non-empty) at `side`: linear in
// log(side) between points, held beyond the first and the last.
double InterpolateInLogSide(const std::vector<std::pair<double, double>>& points, double side);

}  // namespace ringattn::sim

#endif  // RINGATTN_SIM_CALIBRATION_H_
