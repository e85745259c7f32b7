// What the ring driver (core/ring_driver.h) needs of a compute backend, and
// the rank-level backend RingAttention drives (CPU: cpu::CpuRingBackend,
// GPU: cuda::CudaRingBackend, simulated: sim/).
#ifndef RINGATTN_CORE_RING_BACKEND_H_
#define RINGATTN_CORE_RING_BACKEND_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "core/dtype.h"
#include "core/layout.h"
#include "core/schedule.h"
#include "core/shapes.h"

namespace ringattn {

// A visiting K/V buffer: `ranks` packed shards back to back (1 for a ring
// pass; the ring size for all-gather, in ring-rank order), each holding
// K then V of kv heads [head_begin, head_end), (local_batch, local_seqlen,
// heads, head_dim) in the input dtype. Or, when `v` is set, the rank's own
// inputs unpacked (RingBackend::OwnKv): K in `data`, V in `v`, every kv
// head, one shard.
struct KvBlock {
  absl::Span<const uint8_t> data;
  int ranks = 1;
  int64_t head_begin = 0;
  int64_t head_end = 0;
  absl::Span<const uint8_t> v;
};

// What a backward step leaves in the rows of its dK/dV buffer that none of
// its tasks has.
enum class UnwrittenDkv {
  // Zeros: the buffer is the step's whole contribution (no partial sum
  // follows: a ring's first step, an all-gather step).
  kZeros,
  // Whatever they held: the partial sum that arrives during the step is
  // accumulated into the buffer next, and sets those rows instead of adding
  // to zeros (a zigzag step on an earlier rank's block has half its rows
  // so: their zeroing, a write of the half, and the add's read of it are
  // saved).
  kSetByNextAccumulate,
};

// What the ring needs of a compute backend holding one rank's shard.
class RingBackend {
 public:
  virtual ~RingBackend() = default;

  // Elements of this rank's packed K/V of kv heads [head_begin, head_end).
  virtual int64_t KvElements(int64_t head_begin, int64_t head_end) const = 0;
  // Element type of the packed K/V (the input dtype).
  virtual DType kv_dtype() const = 0;
  // Element type of dK/dV accumulators (float32, or float64 for an fp64
  // backend); they are laid out like the packed K/V.
  virtual DType grad_dtype() const = 0;

  int64_t KvBytes(int64_t head_begin, int64_t head_end) const {
    return KvElements(head_begin, head_end) * DTypeBytes(kv_dtype());
  }
  int64_t GradBytes(int64_t head_begin, int64_t head_end) const {
    return KvElements(head_begin, head_end) * DTypeBytes(grad_dtype());
  }
  // A buffer of `bytes` owned by the backend, kept between calls per slot
  // (host memory for CPU backends, device memory for GPU ones).
  virtual absl::StatusOr<absl::Span<uint8_t>> Buffer(int slot, int64_t bytes) = 0;
  // dst += src, element-wise in grad_dtype() (dK/dV partial sums); where
  // the last BackwardStep into dst left rows unwritten
  // (UnwrittenDkv::kSetByNextAccumulate), dst = src there.
  virtual absl::Status Accumulate(absl::Span<uint8_t> dst, absl::Span<const uint8_t> src) = 0;
  // Writes this rank's K/V of kv heads [head_begin, head_end) into `out`.
  virtual absl::Status PackKv(int64_t head_begin, int64_t head_end, absl::Span<uint8_t> out) = 0;
  // K and V of every kv head as the rank holds them.
  using OwnKvSpans = std::array<absl::Span<const uint8_t>, 2>;
  // This rank's K and V of every kv head, each laid out as a packed
  // block's halves, in the memory the backend computes in, if the backend
  // holds them so: a ring pass then computes on them and sends them as two
  // messages instead of packing them; nullopt: the ring packs (PackKv).
  // Every rank's backend must answer alike (one kind of backend): the
  // ring's messages depend on it.
  virtual std::optional<OwnKvSpans> OwnKv() const { return std::nullopt; }

  // Computes `tasks` against `kv` into the rank's fp32 (fp64) state.
  virtual absl::Status ForwardStep(absl::Span<const BlockTask> tasks, const KvBlock& kv) = 0;
  // Ends the forward pass: the state holds its O and LSE from here (the
  // CPU backend writes O in the input dtype now; the CUDA backend leaves
  // it in the fp32 state until Out() or WriteOutputs asks).
  virtual absl::Status FinishForward() = 0;

  // Prepares the backward pass (D = rowsum(dO * O)).
  virtual absl::Status StartBackward() = 0;
  // Accumulates dQ of `tasks` at home and writes their dK/dV, summed, into
  // `dkv` (laid out like `kv`, elements of grad_dtype(); a buffer from
  // Buffer(): what it held is overwritten, so a backend may store each
  // row's first contribution instead of adding it to zeros). Rows no task
  // has become zeros, or, with UnwrittenDkv::kSetByNextAccumulate, may be
  // left as they are for the next Accumulate into `dkv` to set.
  virtual absl::Status BackwardStep(absl::Span<const BlockTask> tasks, const KvBlock& kv,
                                    absl::Span<uint8_t> dkv, UnwrittenDkv unwritten) = 0;
  // Adds the completed dK/dV of this rank's kv heads [head_begin, head_end)
  // (one packed shard of grad_dtype()) to its gradients.
  virtual absl::Status AddOwnDkv(int64_t head_begin, int64_t head_end,
                                 absl::Span<const uint8_t> dkv) = 0;

  // Whether the driver times each step on the wall clock (RingRunStats);
  // a simulated backend, whose time is virtual, says no.
  virtual bool wall_clock_steps() const { return true; }
};

// Checks that a visiting block holds kv.ranks whole shards of a valid range
// of the problem's `num_kv_heads` kv heads, each backend.KvBytes(range)
// bytes. Errors: InvalidArgument saying what the block holds.
inline absl::Status ValidateVisitingBlock(const KvBlock& kv, int64_t num_kv_heads,
                                          const RingBackend& backend) {
  if (!kv.v.empty()) {
    const int64_t half = backend.KvBytes(0, num_kv_heads) / 2;
    if (kv.ranks != 1 || kv.head_begin != 0 || kv.head_end != num_kv_heads ||
        static_cast<int64_t>(kv.data.size()) != half || static_cast<int64_t>(kv.v.size()) != half) {
      return absl::InvalidArgumentError(
          absl::StrCat("own K/V of ", kv.data.size(), " and ", kv.v.size(), " bytes (", kv.ranks,
                       " shards, kv heads [", kv.head_begin, ", ", kv.head_end, ")); expected ",
                       half, " bytes each, one shard of all ", num_kv_heads, " kv heads"));
    }
    return absl::OkStatus();
  }
  if (kv.head_begin < 0 || kv.head_end > num_kv_heads || kv.head_begin >= kv.head_end ||
      kv.ranks < 1 ||
      static_cast<int64_t>(kv.data.size()) !=
          kv.ranks * backend.KvBytes(kv.head_begin, kv.head_end)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "visiting K/V of ", kv.data.size(), " bytes does not hold ", kv.ranks,
        " shards of kv heads [", kv.head_begin, ", ", kv.head_end, ") of ", num_kv_heads));
  }
  return absl::OkStatus();
}

// One rank's dense local tensors, (local_batch, local_seqlen, heads,
// head_dim) in `dtype`: what Layout::Shard gives. In host memory (copied by
// the backend), or with `device`, in the memory of the GPU a CUDA backend
// runs on, read in place: they must stay valid and unchanged until the
// backward pass is done.
struct RankInputs {
  DType dtype = DType::kFloat32;
  absl::Span<const uint8_t> q;
  absl::Span<const uint8_t> k;
  absl::Span<const uint8_t> v;
  bool device = false;
};

// A RingBackend that holds one rank's inputs and hands back its results in
// host memory: what RingAttention drives, on the CPU (cpu::CpuRingBackend)
// or a GPU (cuda::CudaRingBackend).
class RankBackend : public RingBackend {
 public:
  // dO (like q, in the input dtype), required before the backward pass;
  // in GPU memory, read in place until the backward pass is done.
  virtual absl::Status SetDout(absl::Span<const uint8_t> dout) = 0;
  // For a backward pass without a forward on this backend: the forward's
  // output (like q) and LSE (local_batch, num_heads, local_seqlen); a CUDA
  // backend reads either in GPU memory in place, until the backward pass is
  // done.
  virtual absl::Status SetForwardResult(absl::Span<const uint8_t> out,
                                        absl::Span<const float> lse) = 0;
  // After the forward: O in the input dtype and LSE in fp32.
  virtual absl::StatusOr<std::vector<uint8_t>> Out() = 0;
  virtual absl::StatusOr<std::vector<float>> Lse() = 0;
  // After the backward: dQ, dK, dV in the input dtype (like q, k, v).
  virtual absl::StatusOr<std::vector<uint8_t>> Dq() = 0;
  virtual absl::StatusOr<std::vector<uint8_t>> Dk() = 0;
  virtual absl::StatusOr<std::vector<uint8_t>> Dv() = 0;

  // New inputs of the same shape and dtype for another forward, reusing
  // every buffer (callers that run many passes: RingAttention, and so the
  // Python functions). Errors: InvalidArgument for other sizes or dtype.
  virtual absl::Status Reload(const RankInputs& inputs) = 0;

  // The results into the caller's dense buffers, in the memory the backend
  // computes in (host memory for the CPU backend; the GPU's for the CUDA
  // one, enqueued on its stream: torch CUDA tensors): O in the input dtype
  // and LSE in fp32 (local_batch, num_heads, local_seqlen), or dQ, dK, dV in
  // the input dtype. Errors: FailedPrecondition before the pass has run.
  virtual absl::Status WriteOutputs(void* out, float* lse) = 0;
  virtual absl::Status WriteGrads(void* dq, void* dk, void* dv) = 0;
};

// q, k and v of `inputs` hold the elements of a rank's `local` shape.
// Errors: InvalidArgument naming the tensor, the bytes seen and expected.
inline absl::Status CheckRankInputBytes(const RankShape& local, const RankInputs& inputs) {
  const int64_t elem = DTypeBytes(inputs.dtype);
  for (const auto& [name, bytes, elements] :
       {std::tuple{"q", inputs.q.size(), local.q_elements()},
        std::tuple{"k", inputs.k.size(), local.kv_elements()},
        std::tuple{"v", inputs.v.size(), local.kv_elements()}}) {
    if (static_cast<int64_t>(bytes) != elements * elem) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, " has ", bytes, " bytes; expected ", elements, " ", DTypeName(inputs.dtype),
          " elements (local_batch x local_seqlen x heads x head_dim)"));
    }
  }
  return absl::OkStatus();
}

// Inputs for another pass of a backend that holds `dtype`
// (RankBackend::Reload): that dtype, and the rank's sizes.
inline absl::Status CheckReloadInputs(const RankShape& local, DType dtype,
                                      const RankInputs& inputs) {
  if (inputs.dtype != dtype) {
    return absl::InvalidArgumentError(absl::StrCat("new inputs are ", DTypeName(inputs.dtype),
                                                   "; this backend holds ", DTypeName(dtype)));
  }
  return CheckRankInputBytes(local, inputs);
}

// Makes one rank's RankBackend from its schedule, rank, global shape,
// softmax scale and dense local inputs (RingAttentionConfig::backend).
using RankBackendFactory = std::function<absl::StatusOr<std::unique_ptr<RankBackend>>(
    const Schedule& schedule, int rank, const AttentionShape& shape, double softmax_scale,
    const RankInputs& inputs)>;

}  // namespace ringattn

#endif  // RINGATTN_CORE_RING_BACKEND_H_
