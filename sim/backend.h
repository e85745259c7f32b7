// The simulated backend: a RingBackend whose steps cost the calibration's
// time for their block tasks (counted exactly from the allowed pairs) on
// the rank's virtual clock, and whose buffers are only sizes (the peak
// memory report). Private to the simulator.
#ifndef RINGATTN_SIM_BACKEND_H_
#define RINGATTN_SIM_BACKEND_H_

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/fresh_regions.h"
#include "core/plan.h"
#include "core/ring_backend.h"
#include "core/schedule.h"
#include "core/status_macros.h"
#include "sim/network.h"
#include "sim/simulator.h"
#include "sim/tile_fill.h"

namespace ringattn::sim::internal {

// The cost of one block task for all batch rows and query heads.
struct TaskCost {
  double flops = 0;
  double seconds = 0;
};

// `batch` is the rank's batch rows [first, second) (Layout::BatchRange).
// merges_state: a forward task on state rows an earlier task of its pass
// wrote (Calibration::merged_state_factor; false for backward tasks).
TaskCost CostOf(const BlockTask& task, const Mask& mask, std::pair<int64_t, int64_t> batch,
                const SimOptions& o, bool backward, bool merges_state = false) {
  const AttentionShape& s = o.shape;
  const auto [b0, b1] = batch;
  const double pairs = CountAllowedPairs(task, mask, b0, b1);
  const double heads =
      static_cast<double>(s.group_size() * (task.kv_head_end - task.kv_head_begin));
  const double flops = 4.0 * pairs * heads * s.head_dim * (backward ? 2.5 : 1.0);
  const double density = static_cast<double>(pairs) / ((b1 - b0) * task.q.length * task.k.length);
  const bool strided = !task.q.contiguous() || !task.k.contiguous();
  // The table's rate at its own heads, scaled by how this launch's tiles
  // fill the SMs beside a launch of the calibration's heads: ringattn's
  // kernels' tiles and orders (ring-flash-attention's FlashAttention
  // kernels have others, not modelled: 1).
  LaunchGpu gpu;
  gpu.sms = static_cast<int>(o.calibration.sms);
  gpu.l2_bytes = static_cast<int64_t>(o.calibration.l2_mb * (1 << 20));
  gpu.element_bytes = DTypeBytes(o.dtype);
  gpu.group = s.group_size();
  const double fill =
      o.seed_implementation
          ? 1.0
          : FillRatio(task, mask, b0, b1, static_cast<int64_t>(heads), backward, s.head_dim, gpu,
                      static_cast<int64_t>(o.calibration.rate_heads));
  // A causal factor below the calibration's measured block sides: scaled
  // as this model's tiles scale it (ringattn's kernels only).
  const double factor_scale =
      o.seed_implementation || density >= 1
          ? 1.0
          : CausalFactorScale(o.calibration, backward,
                              std::sqrt(static_cast<double>(task.q.length) * task.k.length),
                              s.head_dim, static_cast<int64_t>(heads), gpu);
  const double rate = 1e12 *
                      o.calibration.Tflops(backward, s.head_dim, task.q.length, task.k.length,
                                           density, factor_scale) *
                      fill * (strided ? o.calibration.StridedFactor(backward) : 1.0) *
                      (merges_state ? o.calibration.MergedStateFactor() : 1.0);
  // Never below the least time a kernel takes (Calibration::MinKernelUs; 0:
  // none): a few tiles' start, wave and tail. ring-flash-attention's
  // kernels are not ringattn's: not applied to its model.
  const double floor = o.seed_implementation ? 0 : 1e-6 * o.calibration.MinKernelUs(backward);
  // The steps its tiles round up to, over what the calibration's blocks of
  // its side did (ringattn's tiles only).
  const double rounding =
      o.seed_implementation
          ? 1.0
          : TileRounding(task, mask, b0, backward, s.head_dim,
                         o.calibration.CurveOf(backward, s.head_dim), b1 - b0 == 1 ? pairs : -1);
  return {flops,
          std::max(flops / rate * rounding + 1e-6 * o.calibration.LaunchUs(backward), floor)};
}

class SimBackend : public RingBackend {
 public:
  SimBackend(const Schedule& schedule, int rank, const SimOptions& options, RankClock* clock)
      : schedule_(schedule), rank_(rank), o_(options), clock_(clock) {
    local_ = schedule.layout().RankShapeOf(rank, o_.shape);
    batch_ = schedule.layout().BatchRange(rank);
    const int64_t q_elements = local_.q_elements();
    const int64_t e = DTypeBytes(o_.dtype);
    // q, k, v, O in the input dtype; the fp32 state O and LSE.
    base_bytes_ = (2 * q_elements + 2 * local_.kv_elements()) * e + 4 * q_elements +
                  4 * local_.stat_elements();
  }

  int64_t KvElements(int64_t head_begin, int64_t head_end) const override {
    return local_.packed_kv_elements(head_begin, head_end);
  }
  DType kv_dtype() const override { return o_.dtype; }
  DType grad_dtype() const override { return DType::kFloat32; }
  absl::StatusOr<absl::Span<uint8_t>> Buffer(int slot, int64_t bytes) override {
    slots_[slot] = std::max(slots_[slot], bytes);
    static uint8_t placeholder;  // never read or written
    return absl::Span<uint8_t>(&placeholder, bytes);
  }
  // dst += src, 12 bytes an element; 8 (a copy) in the cells the last
  // backward step left for the sum to set.
  absl::Status Accumulate(absl::Span<uint8_t> dst, absl::Span<const uint8_t>) override {
    Memory("add partial dK/dV", static_cast<int64_t>(dst.size()) * 3 - set_by_sum_bytes_);
    set_by_sum_bytes_ = 0;
    return absl::OkStatus();
  }
  // As the CUDA backend on device ring buffers: a ring pass computes on the
  // rank's own K and V and sends them as they are (no pack since
  // 2026-12-01).
  std::optional<OwnKvSpans> OwnKv() const override {
    static const uint8_t placeholder = 0;  // never read
    const size_t half = static_cast<size_t>(KvBytes(0, o_.shape.num_kv_heads) / 2);
    return OwnKvSpans{absl::Span<const uint8_t>(&placeholder, half),
                      absl::Span<const uint8_t>(&placeholder, half)};
  }
  // The CUDA backend's (all-gather only, then): K, then V, copied into the all-gather's buffer on
  // the compute stream (a launch each, read and written once).
  // ring-flash-attention's model charges its own copies (SeedPasses).
  absl::Status PackKv(int64_t, int64_t, absl::Span<uint8_t> out) override {
    if (o_.seed_implementation) return absl::OkStatus();
    for (int half = 0; half < 2; ++half) {
      Memory("pack K/V", static_cast<int64_t>(out.size()));  // = 2 x the half's bytes
    }
    return absl::OkStatus();
  }

  absl::Status ForwardStep(absl::Span<const BlockTask> tasks, const KvBlock& kv) override {
    Run(tasks, false);
    if (o_.seed_implementation) SeedPasses(tasks, kv, false, forward_step_);
    ++forward_step_;
    return absl::OkStatus();
  }
  absl::Status FinishForward() override {
    // Calibration::forward_o_bytes: 0 today (O stays in the fp32 state).
    if (o_.calibration.forward_o_bytes > 0) {
      Memory("write O", static_cast<int64_t>(o_.calibration.forward_o_bytes * local_.q_elements()));
    }
    return absl::OkStatus();
  }
  absl::Status StartBackward() override {
    backward_bytes_ = local_.q_elements() * (DTypeBytes(o_.dtype) + 4) +
                      2 * 4 * KvElements(0, o_.shape.num_kv_heads) / 2;
    Memory("D = rowsum(dO * O)", local_.q_elements() * 2 * DTypeBytes(o_.dtype));
    return absl::OkStatus();
  }
  // The CUDA backend's: the cells of the step's buffer its tasks' launches
  // leave other than on zeros (FindUnstoredCells; its first launch on a row
  // stores it with Calibration::stored_dkv_steps: the warp-specialized
  // backward, fp16/bf16 at d64/d128, no GQA) zeroed, but for the unwritten
  // ones a partial sum that follows sets (Calibration::
  // partial_sum_sets_dkv_rows; without it, the whole buffer zeroed where
  // any cell needs it; not modelled: the backend's whole-buffer memset
  // where the cells make more than 8 rectangles) -- then the tasks.
  absl::Status BackwardStep(absl::Span<const BlockTask> tasks, const KvBlock& kv,
                            absl::Span<uint8_t> dkv, UnwrittenDkv unwritten) override {
    const bool stores = o_.calibration.stored_dkv_steps != 0 && !o_.seed_implementation &&
                        o_.dtype != DType::kFloat32 &&
                        (o_.shape.head_dim == 64 || o_.shape.head_dim == 128) &&
                        o_.shape.num_heads == o_.shape.num_kv_heads;
    FreshRegions fresh;
    std::vector<RegionWrite> writes;
    for (const BlockTask& task : tasks) {
      const bool first =
          fresh.Touch(task.k_row, task.k_end(), task.kv_head_begin, task.kv_head_end);
      writes.push_back(
          {task.k_row, task.k_end(), task.kv_head_begin, task.kv_head_end, stores && first});
    }
    const RegionWrite whole{0, kv.ranks * local_.rows, kv.head_begin, kv.head_end, false};
    const bool sum_sets = o_.calibration.partial_sum_sets_dkv_rows != 0;
    const DkvZeroing plan =
        PlanDkvZeroing(writes, whole, sum_sets && unwritten == UnwrittenDkv::kSetByNextAccumulate);
    set_by_sum_bytes_ = CellBytes(plan.left);
    // Before partial_sum_sets_dkv_rows: the whole buffer where any cell needed it.
    const int64_t zero =
        sum_sets || plan.zero.empty() ? CellBytes(plan.zero) : static_cast<int64_t>(dkv.size());
    if (zero > 0) Memory("zero dK/dV", zero);
    Run(tasks, true);
    if (o_.seed_implementation) SeedPasses(tasks, kv, true, backward_step_);
    ++backward_step_;
    return absl::OkStatus();
  }
  // A ring pass's finished sum is the rank's dK/dV (cost
  // ring_pass_dkv_home_bytes per element: 0 today); all-gather adds each
  // group's reduced share into full fp32 buffers.
  absl::Status AddOwnDkv(int64_t head_begin, int64_t head_end, absl::Span<const uint8_t>) override {
    const double bytes_per_element = schedule_.pattern() == CommPattern::kRingPass
                                         ? o_.calibration.ring_pass_dkv_home_bytes
                                         : 4 + 4 + 2;
    if (bytes_per_element > 0) {
      Memory("dK/dV home",
             static_cast<int64_t>(bytes_per_element * KvElements(head_begin, head_end)));
    }
    return absl::OkStatus();
  }

  bool wall_clock_steps() const override { return false; }

  // SimOptions::outputs (nothing without it), as the CUDA backend does
  // them, a launch each: ResetState fills LSE and zeroes the fp32 O;
  // WriteOutputs converts the fp32 O into the caller's buffer (input dtype)
  // beside LSE's copy (before 2026-12-03, forward_o_bytes > 0: copied the
  // pass's own converted O, then LSE, a launch each); WriteGrads converts
  // fp32 dQ, dK, dV to the input dtype. (Before 2026-12-04 each fill and
  // conversion was a launch of its own: 7 where there are 3.)
  void ResetState() {
    fresh_state_.Reset();
    if (!o_.outputs) return;
    Memory("reset LSE and O", 4 * local_.stat_elements() + 4 * local_.q_elements());
  }
  void WriteOutputs() {
    if (!o_.outputs) return;
    const int64_t e = DTypeBytes(o_.dtype);
    if (o_.calibration.forward_o_bytes > 0) {
      Memory("copy O out", 2 * local_.q_elements() * e);
      Memory("copy LSE out", 2 * 4 * local_.stat_elements());
      return;
    }
    Memory("O to the input dtype, LSE out",
           local_.q_elements() * (4 + e) + 2 * 4 * local_.stat_elements());
  }
  void WriteGrads() {
    if (!o_.outputs) return;
    const int64_t e = DTypeBytes(o_.dtype);
    Memory("dQ, dK, dV to the input dtype",
           (local_.q_elements() + 2 * local_.kv_elements()) * (4 + e));
  }
  // What a ringattn pass costs besides its tasks and memory passes
  // (Calibration::pass_overhead_us_fwd / _bwd), the GPU idle;
  // ring-flash-attention's model has its host syncs instead.
  // The host starts the pass with the GPU (RankClock::host).
  void PassOverhead(bool backward) {
    const double us =
        backward ? o_.calibration.pass_overhead_us_bwd : o_.calibration.pass_overhead_us_fwd;
    if (!o_.seed_implementation && us > 0) {
      Elapse(1e-6 * us, backward ? "pass overhead bwd" : "pass overhead fwd",
             [] { return std::string(); });
    }
    clock_->host = clock_->now;
  }

  int64_t peak_bytes() const {
    int64_t total = base_bytes_ + backward_bytes_;
    for (const auto& [slot, bytes] : slots_) total += bytes;
    return total;
  }

 private:
  void Run(absl::Span<const BlockTask> tasks, bool backward) {
    for (const BlockTask& task : tasks) {
      // As the CUDA backend marks its launches: the first forward task on
      // its state rows since the reset writes them fresh.
      const bool merges = !backward && !fresh_state_.TouchState(task);
      const TaskCost cost = CostOf(task, schedule_.mask(), batch_, o_, backward, merges);
      Busy(cost.seconds, backward ? "bwd block" : "fwd block", [&] {
        return absl::StrFormat(
            "\"q\": \"%s\", \"k\": \"%s\", \"kv_heads\": \"[%d, %d)\", "
            "\"GFLOP\": %.3f",
            task.q.DebugString(), task.k.DebugString(), task.kv_head_begin, task.kv_head_end,
            cost.flops * 1e-9);
      });
      ++clock_->tasks;
    }
  }
  // ring-flash-attention's work around the kernel call of one step, as its
  // code does it (ring_flash_attn/{ring,zigzag_ring,stripe}_flash_attn.py,
  // zigzag_ring_flash_attn_varlen.py, llama3_flash_attn_varlen.py, utils.py),
  // in bytes through HBM per element of q (Q) or of k + v (KV), each kind of
  // op timed alone on one GPU (below):
  //   merge O (update_out_and_lse) of every step after the first, which
  //     casts; zigzag, step > rank: only the second half of q computes and
  //     its O, LSE are a slice, merged and written back; varlen gathers the
  //     half by a boolean index (out[half_index1]) and scatters it back;
  //     stripe, step > rank: q[:, 1:] against k[:, :-1], a shifted slice
  //   zigzag varlen, 0 < step <= rank: k[half_index0], v[half_index0]
  //     gather the first halves (r2 w2 per element of the half)
  //   backward: dq += block_dq (fp32 += bf16), dk = block_dk + dk; zigzag
  //     adds half of dK/dV (step <= rank) or of dQ (step > rank); varlen
  //     zigzag through boolean indices
  //   llama3: no merge (one call per head group over all gathered keys);
  //     backward copies each group's K/V into a contiguous buffer and its
  //     dK/dV out of one (r2 w2 each, 8 B per element)
  // Boolean-mask indexing with the seed's host-side masks copies the index
  // to the GPU with a blocking copy, so the host waits for the GPU, and the
  // GPU idles while the host dispatches the next ops: host_sync_us each.
  // Steps without tasks (the contiguous ring, causal, past the diagonal)
  // do nothing in the seed.
  void SeedPasses(absl::Span<const BlockTask> tasks, const KvBlock& kv, bool backward, int step) {
    if (tasks.empty()) return;
    const Layout& layout = schedule_.layout();
    const int r = layout.RingRank(rank_);
    const bool varlen = layout.varlen();
    const int64_t q = local_.q_elements();
    const int64_t all_kv = KvElements(0, o_.shape.num_kv_heads);
    // HBM bytes per element (at hbm_GBps) of the seed's eager ops, measured
    // one at a time by bench/seed_step_replay.py on an H100 (torch 2.11,
    // whose TorchScript fuser fuses the merge: 15 B, not the 38 B of its
    // ops unfused), bf16 8192 x 32 x 128:
    constexpr double kMerge = 15.1;         // O, LSE of all rows
    constexpr double kMergeHalf = 32.6;     // a half of the rows + write-back, per element of it
    constexpr double kMergeShifted = 30.8;  // rows 1: + write-back (stripe)
    constexpr double kAddQ = 13.9;          // dq += bf16 block (slice or not)
    constexpr double kAddKv = 16.0;         // dk = bf16 block + dk
    constexpr double kAddKvSlice = 15.2;    // dk[:, :-1] += (stripe), dk[:, :half] += (zigzag)
    constexpr double kCast = 6;             // the first step's fp32 casts
    double bytes = 0;
    int syncs = 0;
    switch (layout.kind()) {
      case LayoutKind::kBalanced:  // not ring-flash-attention's (Simulate refuses it)
        break;
      case LayoutKind::kLlama3:
        if (backward) bytes = 8.0 * KvElements(kv.head_begin, kv.head_end);
        break;
      case LayoutKind::kRing:
        bytes = step == 0  ? kCast * (q + (backward ? all_kv : 0))
                : backward ? kAddQ * q + kAddKv * all_kv
                           : kMerge * q;
        break;
      case LayoutKind::kStripe:
        bytes = step == 0  ? kCast * (q + (backward ? all_kv : 0))
                : backward ? kAddQ * q + (step > r ? kAddKvSlice : kAddKv) * all_kv
                           : (step > r ? kMergeShifted : kMerge) * q;
        break;
      case LayoutKind::kZigzag:
        if (step == 0) {
          bytes = kCast * (q + (backward ? all_kv : 0));
        } else if (step <= r) {
          bytes = backward ? kAddQ * q + kAddKvSlice * all_kv / 2 : kMerge * q;
          if (varlen) {
            bytes += 2.0 * all_kv;  // k[half_index0], v[half_index0]
            syncs += 2;
            if (backward) syncs += 2;  // dk[half_index0] +=, dv alike
          }
        } else {
          // varlen gathers the half by a boolean index (out[half_index1]:
          // 8 B more per element; not measured)
          bytes =
              backward ? kAddQ * q / 2 + kAddKv * all_kv : (kMergeHalf + (varlen ? 8 : 0)) * q / 2;
          if (varlen) syncs += backward ? 1 : 4;  // out, lse: gather, scatter
        }
        break;
    }
    if (bytes > 0) {
      Memory(backward ? "seed: merge dQ dK dV" : "seed: merge O", static_cast<int64_t>(bytes));
    }
    if (syncs > 0) {
      Busy(syncs * 1e-6 * o_.calibration.host_sync_us, "seed: host syncs",
           [&] { return absl::StrCat("\"syncs\": ", syncs); });
      clock_->host = std::max(clock_->host, clock_->now);  // it waited for the GPU
    }
  }
  // Bytes of fp32 dK and dV in `regions` of a visiting block's rows x kv
  // heads.
  int64_t CellBytes(absl::Span<const Region> regions) const {
    return 2 * 4 * CellCount(regions) * local_.batch * o_.shape.head_dim;
  }
  void Memory(const char* what, int64_t bytes) {
    Busy(bytes / (1e9 * o_.calibration.hbm_gbps) + 1e-6 * o_.calibration.launch_us, what,
         [&] { return absl::StrCat("\"bytes\": ", bytes); });
  }
  // The rank's clock moves on by `seconds` (traced as `name`, args() the
  // event's JSON body); Busy: with the GPU at work, once the host has
  // enqueued it.
  template <typename Args>
  void Elapse(double seconds, const char* name, Args&& args) {
    if (clock_->trace) {
      clock_->events.push_back({clock_->now, clock_->now + seconds, 0, name, args()});
    }
    clock_->now += seconds;
  }
  // Busy work stretched where the rank's ring hops run beside it
  // (Calibration::hop_sm_share).
  template <typename Args>
  void Busy(double seconds, const char* name, Args&& args) {
    clock_->WaitForHost();
    seconds = clock_->BesideHops(seconds, o_.calibration.hop_sm_share);
    Elapse(seconds, name, args);
    clock_->compute += seconds;
  }

  const Schedule& schedule_;
  FreshRegions fresh_state_;  // the forward pass's state rows written (ResetState)
  int rank_;
  const SimOptions& o_;
  RankClock* clock_;
  RankShape local_;
  std::pair<int64_t, int64_t> batch_;
  int64_t base_bytes_ = 0, backward_bytes_ = 0;
  int forward_step_ = 0, backward_step_ = 0;
  // Bytes of the cells the last backward step left for Accumulate to set.
  int64_t set_by_sum_bytes_ = 0;
  std::map<int, int64_t> slots_;
};

}  // namespace ringattn::sim::internal

#endif  // RINGATTN_SIM_BACKEND_H_
