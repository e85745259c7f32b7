#include "cuda/ring_backend.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/fresh_regions.h"
#include "core/layout.h"
#include "core/mask.h"
#include "core/status_macros.h"
#include "cuda/backward_delta.h"
#include "cuda/device.h"
#include "cuda/element_type.h"
#include "cuda/flash/backward.h"
#include "cuda/flash/forward.h"
#include "cuda/forward_block.h"
#include "cuda/gpu_timeline.h"
#include "cuda/kernel_choice.h"
#include "cuda/kernel_preload.h"
#include "cuda/ring_kernels.h"

namespace ringattn::cuda {
namespace {

// A result buffer of the caller's: the conversions write it 16 bytes at a
// time where it is aligned so, else an element at a time, so its address
// must be a multiple of its element's size (a misaligned store would stop
// the kernel and leave the context unusable).
absl::Status CheckElementAligned(const char* name, const void* p, int64_t element_bytes) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  if (address % element_bytes == 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(name, " starts at 0x", absl::Hex(address), ", not a multiple of its ",
                   element_bytes, "-byte elements; expected an element-aligned GPU buffer"));
}

// Bytes allocated now and at most.
struct MemoryMeter {
  int64_t current = 0;
  int64_t peak = 0;
};

// Device (or managed) memory, freed with the object, counted by a meter.
class DeviceMemory {
 public:
  DeviceMemory() = default;
  explicit DeviceMemory(MemoryMeter* meter) : meter_(meter) {}
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  ~DeviceMemory() { Free(); }

  absl::Status Allocate(int64_t bytes, bool managed = false) {
    Free();
    void* p = nullptr;
    const cudaError_t e = managed ? cudaMallocManaged(&p, std::max<int64_t>(bytes, 1))
                                  : cudaMalloc(&p, std::max<int64_t>(bytes, 1));
    if (e != cudaSuccess) {
      cudaGetLastError();  // not left for a later launch's check to report as its own
      return absl::ResourceExhaustedError(absl::StrCat("allocating ", bytes, " bytes of ",
                                                       managed ? "managed" : "device",
                                                       " memory: ", cudaGetErrorString(e)));
    }
    data_ = p;
    bytes_ = bytes;
    if (meter_ != nullptr) {
      meter_->current += bytes;
      meter_->peak = std::max(meter_->peak, meter_->current);
    }
    return absl::OkStatus();
  }
  // Keeps the block when it holds exactly `bytes` (another pass reuses
  // it); allocates otherwise.
  absl::Status Resize(int64_t bytes) {
    if (data_ != nullptr && bytes_ == bytes) return absl::OkStatus();
    return Allocate(bytes);
  }
  void Free() {
    if (data_ != nullptr) {
      cudaFree(data_);
      if (meter_ != nullptr) meter_->current -= bytes_;
    }
    data_ = nullptr;
    bytes_ = 0;
  }
  void set_meter(MemoryMeter* meter) { meter_ = meter; }
  template <typename T = void>
  T* get() const {
    return static_cast<T*>(data_);
  }
  int64_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  int64_t bytes_ = 0;
  MemoryMeter* meter_ = nullptr;
};

absl::Status Check(cudaError_t e, const char* what) {
  return e == cudaSuccess ? absl::OkStatus() : CudaStatus(e, what);
}

DeviceRun RunOf(const PositionRun& r) {
  return {r.base, r.length, r.stride, r.group, r.group_stride};
}

// `regions` as a launch's cells, if there are at most kMaxCellRegions.
bool ToCellRegions(const std::vector<Region>& regions, CellRegions& out) {
  if (regions.size() > static_cast<size_t>(kMaxCellRegions)) return false;
  out.count = static_cast<int>(regions.size());
  for (int k = 0; k < out.count; ++k) {
    const Region& r = regions[k];
    out.rect[k] = {r.row_begin, r.row_end, r.head_begin, r.head_end};
  }
  return true;
}

class Backend final : public CudaRingBackend {
 public:
  Backend(const Schedule& schedule, int rank, const AttentionShape& shape, double softmax_scale,
          DType dtype, ElementType type, const CudaBackendOptions& options)
      : mask_(schedule.mask()),
        dtype_(dtype),
        type_(type),
        managed_(options.memory == RingBufferMemory::kManaged),
        device_(options.device),
        synchronous_(options.synchronous),
        fresh_writes_(options.fresh_writes),
        timeline_(options.timeline),
        all_gather_(schedule.pattern() != CommPattern::kRingPass),
        ring_size_(schedule.layout().ring_size()),
        kv_heads_per_step_(schedule.pattern() == CommPattern::kRingPass
                               ? shape.num_kv_heads
                               : shape.num_kv_heads / schedule.num_steps()),
        shape_(shape),
        scale_(softmax_scale),
        stream_(options.stream),
        owns_stream_(options.stream == nullptr),
        final_memory_(options.final_memory) {
    local_ = schedule.layout().RankShapeOf(rank, shape);
    for (DeviceMemory* m : {&q_, &k_, &v_, &state_o_, &out_, &state_lse_, &key_limit_, &dout_,
                            &delta_, &dq_, &dk_, &dv_}) {
      m->set_meter(&meter_);
    }
  }
  ~Backend() override {
    if (final_memory_ != nullptr) *final_memory_ = memory();
    if (stream_ != nullptr && owns_stream_) {
      cudaSetDevice(device_);
      cudaStreamDestroy(stream_);
    }
  }

  absl::Status Init(const HostRankInputs& in) {
    RETURN_IF_ERROR(Check(cudaSetDevice(device_), "selecting the device"));
    if (owns_stream_) {
      RETURN_IF_ERROR(
          Check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "creating a stream"));
    }
    RETURN_IF_ERROR(CopyInputs(in));
    RETURN_IF_ERROR(state_o_.Allocate(QElements() * 4));
    RETURN_IF_ERROR(state_lse_.Allocate(StatElements() * 4));
    std::vector<int64_t> limits(local_.batch);
    for (int64_t b = 0; b < local_.batch; ++b) limits[b] = mask_.KeyLimit(local_.batch_offset + b);
    RETURN_IF_ERROR(key_limit_.Allocate(local_.batch * 8));
    RETURN_IF_ERROR(Copy(key_limit_.get(), limits.data(), local_.batch * 8, "copying key limits",
                         kIntoOwnBuffer));
    return ResetState();
  }

  int64_t KvElements(int64_t head_begin, int64_t head_end) const override {
    return local_.packed_kv_elements(head_begin, head_end);
  }
  DType kv_dtype() const override { return dtype_; }
  DType grad_dtype() const override { return DType::kFloat32; }

  // The state is reset when the forward starts, not here: a backward from
  // a given forward result (SetForwardResult: RingAttention's backward_from,
  // the Python functions' every backward) overwrites LSE and reads the given
  // O, so zeroing the fp32 O it never reads cost it 4 bytes a query element
  // (9 us at 2048 tokens, h32 d128, on an H200; 32 us at 8192).
  absl::Status Reload(const HostRankInputs& in) override {
    RETURN_IF_ERROR(CheckReloadInputs(local_, dtype_, in));
    RETURN_IF_ERROR(Device());
    RETURN_IF_ERROR(CopyInputs(in));
    ForgetPasses();
    state_reset_pending_ = true;
    return absl::OkStatus();
  }

  absl::Status Restart() override {
    RETURN_IF_ERROR(Device());
    ForgetPasses();
    return ResetState();
  }
  int device() const override { return device_; }
  cudaStream_t stream() const override { return stream_; }
  MemoryReport memory() const override {
    const int64_t elem = DTypeBytes(dtype_);
    const int64_t q = QElements(), kv = KvFullElements(1), stats = StatElements();
    // A visiting buffer: K and V of the heads one step carries, from
    // ring_size ranks for all-gather.
    const int64_t visiting = 2 * (all_gather_ ? ring_size_ : 1) * local_.batch * local_.rows *
                             kv_heads_per_step_ * shape_.head_dim;
    int64_t theory = (q + 2 * kv) * elem + out_.bytes() + 4 * (q + stats) + 2 * visiting * elem;
    if (backward_done_) {
      theory += q * elem + 4 * stats + 4 * (q + (all_gather_ ? 2 * kv : 0)) +
                4 * (all_gather_ ? visiting + visiting / ring_size_ : 3 * visiting);
    }
    return {meter_.peak, theory};
  }

  absl::StatusOr<absl::Span<uint8_t>> Buffer(int slot, int64_t bytes) override {
    DeviceMemory& m = buffers_[slot];
    m.set_meter(&meter_);
    if (m.bytes() < bytes || m.get() == nullptr) {
      RETURN_IF_ERROR(Device());
      RETURN_IF_ERROR(m.Allocate(bytes, managed_));
    }
    return absl::MakeSpan(m.get<uint8_t>(), bytes);
  }

  absl::Status Accumulate(absl::Span<uint8_t> dst, absl::Span<const uint8_t> src) override {
    if (dst.size() != src.size() || dst.size() % 4 != 0) {
      return absl::InvalidArgumentError(absl::StrCat("accumulate ", src.size(), " bytes into ",
                                                     dst.size(),
                                                     "; expected equal sizes of float32 elements"));
    }
    RETURN_IF_ERROR(Device());
    float* to = reinterpret_cast<float*>(dst.data());
    const float* from = reinterpret_cast<const float*>(src.data());
    if (unwritten_.has_value()) {  // the last backward step left rows for this sum to set
      const UnwrittenRows rows = *std::exchange(unwritten_, std::nullopt);
      if (rows.buffer != to) {
        return absl::FailedPreconditionError(
            "a backward step left dK/dV rows for the next accumulate into its buffer, but the "
            "accumulate goes into another buffer");
      }
      return Finish(LaunchPackedCellsF32(rows.shape, rows.regions, to, from, stream_),
                    "accumulating dK/dV");
    }
    return Finish(LaunchAddF32(to, from, static_cast<int64_t>(dst.size() / 4), stream_),
                  "accumulating dK/dV");
  }

  // K and V as the kernels read them (the caller's tensors in place, or
  // this backend's copies): dense (batch, rows, every kv head, head_dim),
  // the layout of a packed block's halves. Only with device ring buffers (a
  // device communicator): a host communicator's managed buffers are read by
  // the host, which device memory is not.
  std::optional<OwnKvSpans> OwnKv() const override {
    if (managed_) return std::nullopt;
    const size_t bytes = KvBytes(0, shape_.num_kv_heads) / 2;
    return OwnKvSpans{absl::Span<const uint8_t>(static_cast<const uint8_t*>(k_in_), bytes),
                      absl::Span<const uint8_t>(static_cast<const uint8_t*>(v_in_), bytes)};
  }

  absl::Status PackKv(int64_t head_begin, int64_t head_end, absl::Span<uint8_t> out) override {
    if (head_begin < 0 || head_end > shape_.num_kv_heads || head_begin >= head_end ||
        static_cast<int64_t>(out.size()) != KvBytes(head_begin, head_end)) {
      return absl::InvalidArgumentError(
          absl::StrCat("K/V pack of kv heads [", head_begin, ", ", head_end, ") into ", out.size(),
                       " bytes; expected ", KvBytes(head_begin, head_end)));
    }
    RETURN_IF_ERROR(Device());
    // Rows of (batch * rows) tokens: heads [begin, end) of each, K then V.
    const int64_t elem = DTypeBytes(dtype_), d = shape_.head_dim;
    const int64_t width = (head_end - head_begin) * d * elem;
    const int64_t src_pitch = shape_.num_kv_heads * d * elem;
    const int64_t half = out.size() / 2;
    for (int i = 0; i < 2; ++i) {
      const uint8_t* src =
          static_cast<const uint8_t*>(i == 0 ? k_in_ : v_in_) + head_begin * d * elem;
      RETURN_IF_ERROR(Check(LaunchCopyRows(out.data() + i * half, width, src, src_pitch, width,
                                           local_.batch * local_.rows, stream_),
                            "packing K/V"));
    }
    return Finish(cudaSuccess, "packing K/V");
  }

  absl::Status ForwardStep(absl::Span<const BlockTask> tasks, const KvBlock& kv) override {
    RETURN_IF_ERROR(CheckVisiting(kv));
    RETURN_IF_ERROR(ResetStateIfPending());
    for (const BlockTask& task : tasks) {
      RETURN_IF_ERROR(ForEachShard(task, kv, [&](const ForwardBlockArgs& shard, int64_t) {
        // The first launch on these state rows since the reset writes them
        // without reading them (a pass's first step; later shards merge).
        ForwardBlockArgs a = shard;
        a.state_fresh = fresh_writes_ && fresh_state_.TouchState(task);
        RETURN_IF_ERROR(Check(LaunchForward(a, stream_), "the forward kernel"));
        return Mark("the forward kernel");
      }));
    }
    return Finish(cudaSuccess, "a forward step");
  }

  // The pass's O stays in the fp32 state (the backward's D = rowsum(dO * O)
  // reads it there); it is converted to the input dtype only when a caller
  // asks: WriteOutputs straight into the caller's buffer, Out() through
  // out_; after SetForwardResult both give the given O back, as the CPU
  // backend does, until the backward has read it. (Converting here into
  // out_ and copying out_ in WriteOutputs cost every forward pass 4 + 2
  // bytes a query element and every caller's outputs 2 + 2 more.)
  absl::Status FinishForward() override {
    RETURN_IF_ERROR(Device());
    RETURN_IF_ERROR(ResetStateIfPending());  // a pass with no steps on this rank's rows
    forward_done_ = true;
    return Finish(cudaSuccess, "finishing the forward");
  }

  absl::Status SetDout(absl::Span<const uint8_t> dout) override {
    const int64_t bytes = QElements() * DTypeBytes(dtype_);
    if (static_cast<int64_t>(dout.size()) != bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("dout has ", dout.size(), " bytes; expected ", bytes, " (like q)"));
    }
    RETURN_IF_ERROR(Device());
    if (DeviceMemoryAt(dout.data())) {  // read in place (see the header)
      dout_in_ = dout.data();
      return absl::OkStatus();
    }
    RETURN_IF_ERROR(dout_.Resize(bytes));
    dout_in_ = dout_.get();
    return Copy(dout_.get(), dout.data(), bytes, "copying dout to the device", kIntoOwnBuffer);
  }

  // The forward's O (in the input dtype), which the backward's
  // D = rowsum(dO * O) reads as it is (GPU memory read in place on the
  // stream, like the inputs; host memory copied), and its LSE. One backward
  // reads it: a later one needs another forward or forward result.
  absl::Status SetForwardResult(absl::Span<const uint8_t> out,
                                absl::Span<const float> lse) override {
    const int64_t bytes = QElements() * DTypeBytes(dtype_);
    if (static_cast<int64_t>(out.size()) != bytes ||
        static_cast<int64_t>(lse.size()) != StatElements()) {
      return absl::InvalidArgumentError(
          absl::StrCat("forward result of ", out.size(), " bytes of out and ", lse.size(),
                       " lse values; expected ", bytes, " and ", StatElements(), " (like q)"));
    }
    RETURN_IF_ERROR(Device());
    const void* o = out.data();
    if (!DeviceMemoryAt(o)) {
      RETURN_IF_ERROR(out_.Resize(bytes));
      RETURN_IF_ERROR(Copy(out_.get(), o, bytes, "copying out to the device", kIntoOwnBuffer));
      o = out_.get();
    }
    saved_out_ = o;
    // LSE likewise: GPU memory read in place (the backward kernels read it
    // as the state's, same layout), host memory copied into the state. The
    // copy in place of GPU memory was a call of the host's between the
    // forward's end and the backward's first launch, which the GPU waited
    // for (fifty-second session, bench/trace_gaps.py).
    if (DeviceMemoryAt(lse.data())) {
      saved_lse_ = lse.data();
    } else {
      RETURN_IF_ERROR(
          Copy(state_lse_.get(), lse.data(), lse.size() * 4, "copying lse", kIntoOwnBuffer));
      saved_lse_ = nullptr;
    }
    state_reset_pending_ = false;  // LSE is the given one whole; O the given one
    fresh_state_.TouchAll();       // the state's LSE is the given one until a reset
    forward_done_ = true;
    return absl::OkStatus();
  }

  absl::Status StartBackward() override {
    if (!forward_done_) {
      return absl::FailedPreconditionError("backward needs the forward's output: run the forward");
    }
    if (dout_in_ == nullptr) {
      return absl::FailedPreconditionError("backward needs dout: call SetDout");
    }
    RETURN_IF_ERROR(Device());
    own_dkv_ = nullptr;
    // D (written whole below), and the gradients the kernels add into,
    // zeroed: dQ by D's launch as it reads the same rows, and for
    // all-gather the full dK, dV in one launch (a ring pass's dK/dV arrive
    // whole, AddOwnDkv: no full buffers).
    RETURN_IF_ERROR(delta_.Resize(StatElements() * 4));
    RETURN_IF_ERROR(dq_.Resize(QElements() * 4));
    if (all_gather_) {
      const int64_t elements = KvFullElements(1);
      RETURN_IF_ERROR(dk_.Resize(elements * 4));
      RETURN_IF_ERROR(dv_.Resize(elements * 4));
      const FillJob zeros[] = {{dk_.get<float>(), 0.0f, elements},
                               {dv_.get<float>(), 0.0f, elements}};
      RETURN_IF_ERROR(Check(LaunchFillsF32(zeros, 2, stream_), "zeroing gradients"));
      RETURN_IF_ERROR(Mark("zeroing gradients"));
    }
    backward_done_ = true;
    // O of this backend's forward (the fp32 state) or the given result.
    const bool saved = saved_out_ != nullptr;
    const cudaError_t e = LaunchBackwardDelta(
        type_, dout_in_, saved ? type_ : ElementType::kFloat32, saved ? saved_out_ : state_o_.get(),
        delta_.get<float>(), local_.batch, local_.rows, shape_.num_heads, shape_.head_dim, stream_,
        dq_.get<float>());
    if (saved) forward_done_ = false;  // the caller's O is not kept
    saved_out_ = nullptr;
    return Finish(e, "D = rowsum(dO * O)");
  }

  absl::Status BackwardStep(absl::Span<const BlockTask> tasks, const KvBlock& kv,
                            absl::Span<uint8_t> dkv, UnwrittenDkv unwritten) override {
    unwritten_.reset();
    if (static_cast<int64_t>(dkv.size()) != kv.ranks * GradBytes(kv.head_begin, kv.head_end)) {
      return absl::InvalidArgumentError(
          absl::StrCat("dK/dV buffer has ", dkv.size(), " bytes; expected ",
                       kv.ranks * GradBytes(kv.head_begin, kv.head_end)));
    }
    RETURN_IF_ERROR(CheckVisiting(kv));
    // The kernels accumulate straight into the step's buffer: it has the
    // visiting K/V's packed layout (shards of K then V), in fp32; the first
    // launch on each of its rows may store them (key_grads_fresh). What the
    // launches leave other than on a zeroed buffer (FindUnstoredCells) is
    // zeroed first: cells a launch adds to before any stores them, and
    // cells no launch reaches -- unless the partial sum accumulated next
    // sets those (kSetByNextAccumulate: a zigzag step on an earlier rank's
    // block leaves half its rows so). Nothing is zeroed where the stores
    // cover the buffer (one launch of the whole block at ring size 1, a
    // zigzag step of the full block, ... without GQA). The whole buffer's
    // memset is 8 bytes a key element (16 us a step at 2048 tokens h32
    // d128 on an H200, 60 us at 8192).
    float* dkv_f32 = reinterpret_cast<float*>(dkv.data());
    FreshRegions fresh;  // the step's rows written so far
    const int64_t shard_elements = local_.packed_kv_elements(kv.head_begin, kv.head_end);
    std::vector<BackwardBlockArgs> launches;
    std::vector<RegionWrite> writes;
    for (const BlockTask& task : tasks) {
      RETURN_IF_ERROR(ForEachShard(task, kv, [&](const ForwardBlockArgs& a, int64_t shard_offset) {
        BackwardBlockArgs args;
        // Rows of the visiting block: its shards one after another.
        const int64_t row = shard_offset / shard_elements * local_.rows + a.k_row;
        const int64_t row_end = row + a.k_pos.length;
        args.key_grads_fresh =
            fresh_writes_ && fresh.Touch(row, row_end, task.kv_head_begin, task.kv_head_end);
        args.task = a;
        args.dout = dout_in_;
        args.lse = ForwardLse();
        args.delta = delta_.get<float>();
        args.dq = dq_.get<float>();
        args.dk = dkv_f32 + shard_offset;
        args.dv = args.dk + shard_elements / 2;
        launches.push_back(args);
        writes.push_back(
            {row, row_end, task.kv_head_begin, task.kv_head_end, BackwardStoresEveryKeyRow(args)});
        return absl::OkStatus();
      }));
    }
    const RegionWrite whole{0, kv.ranks * local_.rows, kv.head_begin, kv.head_end, false};
    const PackedKvShape shape = PackedShape(kv.ranks, kv.head_begin, kv.head_end);
    DkvZeroing plan =
        PlanDkvZeroing(writes, whole, unwritten == UnwrittenDkv::kSetByNextAccumulate);
    if (!plan.left.empty()) {
      unwritten_ = UnwrittenRows{dkv_f32, shape};
      if (!ToCellRegions(plan.left, unwritten_->regions)) {  // too many: zeroed, then added
        unwritten_.reset();
        plan.zero.insert(plan.zero.end(), plan.left.begin(), plan.left.end());
      }
    }
    RETURN_IF_ERROR(ZeroDkvCells(dkv, shape, plan.zero, whole));
    for (const BackwardBlockArgs& args : launches) {
      RETURN_IF_ERROR(Check(LaunchBackward(args, stream_), "the backward kernel"));
    }
    return Finish(cudaSuccess, "a backward step");
  }

  absl::Status AddOwnDkv(int64_t head_begin, int64_t head_end,
                         absl::Span<const uint8_t> dkv) override {
    if (static_cast<int64_t>(dkv.size()) != GradBytes(head_begin, head_end)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "own dK/dV has ", dkv.size(), " bytes; expected ", GradBytes(head_begin, head_end)));
    }
    RETURN_IF_ERROR(Device());
    if (!all_gather_) {
      // A ring pass: the finished sum of every kv head, whose halves are dK
      // and dV as they are; read from there when the results are written.
      own_dkv_ = reinterpret_cast<const float*>(dkv.data());
      return absl::OkStatus();
    }
    return Finish(LaunchPackedAddF32(PackedShape(1, head_begin, head_end), false,
                                     const_cast<float*>(reinterpret_cast<const float*>(dkv.data())),
                                     dk_.get<float>(), dv_.get<float>(), stream_),
                  "adding the own dK/dV");
  }

  absl::StatusOr<std::vector<uint8_t>> Out() override {
    if (!forward_done_) return absl::FailedPreconditionError("no forward pass has run");
    RETURN_IF_ERROR(Device());
    std::vector<uint8_t> host(QElements() * DTypeBytes(dtype_));
    RETURN_IF_ERROR(out_.Resize(host.size()));
    RETURN_IF_ERROR(WriteO(out_.get()));
    RETURN_IF_ERROR(Copy(host.data(), out_.get(), host.size(), "copying O to the host"));
    return host;
  }
  absl::StatusOr<std::vector<float>> Lse() override {
    if (!forward_done_) return absl::FailedPreconditionError("no forward pass has run");
    RETURN_IF_ERROR(Device());
    std::vector<float> lse(StatElements());
    RETURN_IF_ERROR(Copy(lse.data(), ForwardLse(), lse.size() * 4, "copying LSE to the host"));
    return lse;
  }
  absl::Status WriteOutputs(void* out, float* lse) override {
    if (!forward_done_) return absl::FailedPreconditionError("no forward pass has run");
    if (out == nullptr || lse == nullptr) {
      return absl::InvalidArgumentError("out and lse must be GPU buffers, not NULL");
    }
    RETURN_IF_ERROR(CheckElementAligned("out", out, DTypeBytes(dtype_)));
    RETURN_IF_ERROR(CheckElementAligned("lse", lse, sizeof(float)));
    RETURN_IF_ERROR(Device());
    if (saved_out_ == nullptr) {  // O in the fp32 state: converted beside LSE's copy, one launch
      const ConvertJob jobs[] = {{state_o_.get<float>(), out, QElements(), type_},
                                 {ForwardLse(), lse, StatElements()}};
      return Finish(LaunchConvertsF32(jobs, 2, stream_), "writing O and LSE");
    }
    RETURN_IF_ERROR(WriteO(out));
    if (lse == ForwardLse()) return Finish(cudaSuccess, "copying LSE");
    return Finish(
        cudaMemcpyAsync(lse, ForwardLse(), StatElements() * 4, cudaMemcpyDefault, stream_),
        "copying LSE");
  }
  absl::Status WriteGrads(void* dq, void* dk, void* dv) override {
    RETURN_IF_ERROR(CheckGradsDone());
    if (dq == nullptr || dk == nullptr || dv == nullptr) {
      return absl::InvalidArgumentError("dq, dk and dv must be GPU buffers, not NULL");
    }
    for (const auto& [name, p] : {std::pair{"dq", dq}, {"dk", dk}, {"dv", dv}}) {
      RETURN_IF_ERROR(CheckElementAligned(name, p, DTypeBytes(dtype_)));
    }
    RETURN_IF_ERROR(Device());
    const ConvertJob jobs[] = {{dq_.get<float>(), dq, QElements(), type_},
                               {DkF32(), dk, KvFullElements(1), type_},
                               {DvF32(), dv, KvFullElements(1), type_}};
    return Finish(LaunchConvertsF32(jobs, 3, stream_),
                  "converting the gradients to the input dtype");
  }
  absl::StatusOr<std::vector<uint8_t>> Dq() override { return Grad(dq_.get<float>(), QElements()); }
  absl::StatusOr<std::vector<uint8_t>> Dk() override { return Grad(DkF32(), KvFullElements(1)); }
  absl::StatusOr<std::vector<uint8_t>> Dv() override { return Grad(DvF32(), KvFullElements(1)); }

 private:
  int64_t QElements() const { return local_.q_elements(); }
  int64_t StatElements() const { return local_.stat_elements(); }
  // K or V of all kv heads over `ranks` shards: (batch, ranks * rows, heads, d).
  int64_t KvFullElements(int ranks) const { return local_.kv_elements(ranks); }
  PackedKvShape PackedShape(int ranks, int64_t head_begin, int64_t head_end) const {
    return {local_.batch, local_.rows, ranks,          shape_.num_kv_heads,
            head_begin,   head_end,    shape_.head_dim};
  }

  absl::Status Device() { return Check(cudaSetDevice(device_), "selecting the device"); }
  // O in the input dtype into `to` (device memory; Out's and WriteOutputs'
  // one source): this backend's forward's, converted from the fp32 state,
  // or SetForwardResult's, as the CPU backend gives it back (until the
  // backward has read it; already in out_ when it came from host memory).
  absl::Status WriteO(void* to) {
    if (saved_out_ == nullptr) {
      return Check(LaunchConvertF32(type_, state_o_.get<float>(), to, QElements(), stream_),
                   "converting O to the input dtype");
    }
    if (saved_out_ == to) return absl::OkStatus();
    return Check(cudaMemcpyAsync(to, saved_out_, QElements() * DTypeBytes(dtype_),
                                 cudaMemcpyDefault, stream_),
                 "copying the given O");
  }

  // Checks `e`, then waits for the stream: the work of a call is finished
  // when it returns (see the header).
  absl::Status Finish(cudaError_t e, const char* what) {
    if (e != cudaSuccess) return CudaStatus(e, what);
    RETURN_IF_ERROR(Mark(what));
    if (!synchronous_) return Check(cudaGetLastError(), what);
    return Check(cudaStreamSynchronize(stream_), what);
  }
  // The timeline's mark after the work enqueued so far (without one: nothing).
  absl::Status Mark(const char* what) {
    return timeline_ == nullptr ? absl::OkStatus() : timeline_->Mark(stream_, what);
  }
  // Waits for the stream whatever the mode (before the host reads).
  absl::Status Sync(const char* what) { return Check(cudaStreamSynchronize(stream_), what); }

  // Copies on the backend's stream, and waits unless both sides are device
  // memory (which the stream orders). A plain cudaMemcpy from pageable
  // memory may return before its DMA lands, and the legacy stream it runs
  // on does not order our non-blocking stream_. kIntoOwnBuffer: dst is one
  // of this backend's buffers (device memory; not asked again).
  enum Destination { kAnywhere, kIntoOwnBuffer };
  absl::Status Copy(void* dst, const void* src, size_t bytes, const char* what,
                    Destination to = kAnywhere) {
    RETURN_IF_ERROR(Check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_), what));
    if ((to == kIntoOwnBuffer || DeviceMemoryAt(dst)) && DeviceMemoryAt(src)) {
      return Finish(cudaSuccess, what);
    }
    return Sync(what);
  }
  static bool DeviceMemoryAt(const void* p) {
    return PointerAttributes(p).type == cudaMemoryTypeDevice;
  }

  // The inputs the kernels read: GPU tensors in place (RankInputs::device:
  // they stay valid and unchanged until the backward is done), host ones
  // copied into the backend's buffers.
  absl::Status CopyInputs(const HostRankInputs& in) {
    const int64_t elem = DTypeBytes(dtype_);
    for (auto [memory, bytes, from, to] :
         {std::tuple{&q_, QElements() * elem, in.q.data(), &q_in_},
          std::tuple{&k_, KvFullElements(1) * elem, in.k.data(), &k_in_},
          std::tuple{&v_, KvFullElements(1) * elem, in.v.data(), &v_in_}}) {
      if (in.device) {
        *to = from;
        continue;
      }
      RETURN_IF_ERROR(memory->Resize(bytes));
      RETURN_IF_ERROR(
          Copy(memory->get(), from, bytes, "copying an input to the device", kIntoOwnBuffer));
      *to = memory->get();
    }
    return absl::OkStatus();
  }

  // A new pass: nothing run on the inputs yet.
  void ForgetPasses() {
    unwritten_.reset();
    forward_done_ = false;
    backward_done_ = false;
    saved_out_ = nullptr;
    saved_lse_ = nullptr;
    own_dkv_ = nullptr;
  }
  // The LSE of the forward the backward runs from: SetForwardResult's in
  // GPU memory, read in place until the next pass or forward, else the
  // state's.
  const float* ForwardLse() const {
    return saved_lse_ != nullptr ? saved_lse_ : state_lse_.get<float>();
  }

  // LSE to -inf and O to 0 in one launch.
  absl::Status ResetState() { return Finish(LaunchStateReset(), "initializing the state"); }
  // Reload's reset, enqueued before a forward call's work (whose Finish waits for both).
  absl::Status ResetStateIfPending() {
    if (!state_reset_pending_) return absl::OkStatus();
    RETURN_IF_ERROR(Check(LaunchStateReset(), "initializing the state"));
    return Mark("initializing the state");
  }
  cudaError_t LaunchStateReset() {
    state_reset_pending_ = false;
    saved_lse_ = nullptr;  // the forward writes the state's
    fresh_state_.Reset();
    const FillJob jobs[] = {
        {state_lse_.get<float>(), -std::numeric_limits<float>::infinity(), StatElements()},
        {state_o_.get<float>(), 0.0f, QElements()}};
    return LaunchFillsF32(jobs, 2, stream_);
  }

  // Zeroes `cells` (disjoint) of a step's dK/dV buffer of `shape`, which
  // spans `whole`: by one memset where they are the whole buffer or more
  // rectangles than a launch takes, else by a launch over the cells.
  absl::Status ZeroDkvCells(absl::Span<uint8_t> dkv, const PackedKvShape& shape,
                            const std::vector<Region>& cells, const RegionWrite& whole) {
    if (cells.empty()) return absl::OkStatus();
    CellRegions regions;
    const bool all =
        CellCount(cells) == (whole.row_end - whole.row_begin) * (whole.head_end - whole.head_begin);
    const cudaError_t e =
        !all && ToCellRegions(cells, regions)
            ? LaunchPackedCellsF32(shape, regions, reinterpret_cast<float*>(dkv.data()), nullptr,
                                   stream_)
            : cudaMemsetAsync(dkv.data(), 0, dkv.size(), stream_);
    RETURN_IF_ERROR(Check(e, "zeroing the step's dK/dV"));
    return Mark("zeroing the step's dK/dV");
  }

  absl::Status CheckVisiting(const KvBlock& kv) {
    RETURN_IF_ERROR(ValidateVisitingBlock(kv, shape_.num_kv_heads, *this));
    return Device();
  }

  // Calls fn(args, element offset of the shard) for the part of `task` in
  // each shard of the visiting block: the kernels read K/V (and write
  // dK/dV) in place, in the packed layout the ring sends, one shard of
  // (batch, rows, heads of the block, head_dim) at a time. No unpacking.
  template <typename Fn>
  absl::Status ForEachShard(const BlockTask& task, const KvBlock& kv, Fn fn) const {
    const int64_t elem = DTypeBytes(dtype_);
    const int64_t shard_elements = local_.packed_kv_elements(kv.head_begin, kv.head_end);
    for (int64_t shard = task.k_row / local_.rows; shard < kv.ranks; ++shard) {
      const int64_t lo = std::max(task.k_row, shard * local_.rows);
      const int64_t hi = std::min(task.k_end(), (shard + 1) * local_.rows);
      if (lo >= hi) break;
      BlockTask part = task;
      part.k_row = lo - shard * local_.rows;
      part.k = task.k.Sub(lo - task.k_row, hi - task.k_row);
      ForwardBlockArgs a = Args(part, kv);
      const int64_t offset = shard * shard_elements;
      a.k = kv.data.data() + offset * elem;
      a.v = kv.v.empty() ? kv.data.data() + (offset + shard_elements / 2) * elem : kv.v.data();
      RETURN_IF_ERROR(fn(a, offset));
    }
    return absl::OkStatus();
  }

  ForwardBlockArgs Args(const BlockTask& task, const KvBlock& kv) const {
    ForwardBlockArgs a;
    a.dtype = type_;
    a.q = q_in_;
    a.state_o = state_o_.get<float>();
    a.state_lse = state_lse_.get<float>();
    a.batch = local_.batch;
    a.q_rows = local_.rows;
    a.k_rows = local_.rows;
    a.num_heads = shape_.num_heads;
    a.num_kv_heads = shape_.num_kv_heads;
    a.head_dim = shape_.head_dim;
    a.q_row = task.q_row;
    a.k_row = task.k_row;
    a.q_pos = RunOf(task.q);
    a.k_pos = RunOf(task.k);
    a.kv_head_begin = task.kv_head_begin;
    a.kv_head_end = task.kv_head_end;
    a.kv_head_offset = kv.head_begin;
    a.kv_buffer_heads = kv.head_end - kv.head_begin;
    a.min_delta = mask_.min_delta();
    a.max_delta = mask_.max_delta();
    a.key_limit = key_limit_.get<int64_t>();
    const auto [doc_begin, doc_end] = mask_.DocumentBounds(task.q.first());
    a.doc_begin = doc_begin;
    a.doc_end = doc_end;
    a.softmax_scale = static_cast<float>(scale_);
    return a;
  }

  // The fp32 dK and dV after a backward: a ring pass's own sum (its halves),
  // or the full buffers all-gather's groups were added into.
  const float* DkF32() const { return own_dkv_ != nullptr ? own_dkv_ : dk_.get<float>(); }
  const float* DvF32() const {
    return own_dkv_ != nullptr ? own_dkv_ + KvFullElements(1) : dv_.get<float>();
  }

  absl::StatusOr<std::vector<uint8_t>> Converted(const float* f32, int64_t elements) {
    RETURN_IF_ERROR(Device());
    DeviceMemory out(&meter_);  // O (or a gradient) in the input dtype
    const int64_t bytes = elements * DTypeBytes(dtype_);
    RETURN_IF_ERROR(out.Allocate(bytes));
    RETURN_IF_ERROR(Finish(LaunchConvertF32(type_, f32, out.get(), elements, stream_),
                           "converting a result to the input dtype"));
    std::vector<uint8_t> host(bytes);
    RETURN_IF_ERROR(Copy(host.data(), out.get(), bytes, "copying a result to the host"));
    return host;
  }
  absl::Status CheckGradsDone() const {
    if (!backward_done_) return absl::FailedPreconditionError("no backward pass has run");
    if (!all_gather_ && own_dkv_ == nullptr) {
      return absl::FailedPreconditionError("the backward pass did not finish (no dK/dV arrived)");
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<uint8_t>> Grad(const float* g, int64_t elements) {
    RETURN_IF_ERROR(CheckGradsDone());
    return Converted(g, elements);
  }

  const Mask& mask_;
  const DType dtype_;
  const ElementType type_;
  const bool managed_;
  const int device_;
  const bool synchronous_;
  const bool fresh_writes_;      // CudaBackendOptions::fresh_writes
  GpuTimeline* const timeline_;  // CudaBackendOptions::timeline (not owned; may be null)
  const bool all_gather_;
  const int ring_size_;
  const int64_t kv_heads_per_step_;
  const AttentionShape shape_;
  const double scale_;
  RankShape local_;
  cudaStream_t stream_ = nullptr;
  const bool owns_stream_;
  MemoryReport* const final_memory_;
  MemoryMeter meter_;
  DeviceMemory q_, k_, v_, state_o_, out_, state_lse_, key_limit_, dout_;
  // Which state rows (local rows x kv heads) forward launches have written
  // since ResetState.
  FreshRegions fresh_state_;
  const void *q_in_ = nullptr, *k_in_ = nullptr, *v_in_ = nullptr;  // CopyInputs
  const void* dout_in_ = nullptr;                                   // SetDout
  DeviceMemory delta_, dq_, dk_, dv_;
  std::map<int, DeviceMemory> buffers_;
  bool forward_done_ = false;
  bool backward_done_ = false;
  // Reload's state reset, left for the forward's first step (ResetStateIfPending).
  bool state_reset_pending_ = false;
  // SetForwardResult's O, until the backward's D has read it.
  const void* saved_out_ = nullptr;
  // SetForwardResult's LSE when it is GPU memory (ForwardLse).
  const float* saved_lse_ = nullptr;
  // A ring pass's finished dK/dV (packed: dK then dV, every kv head) in a
  // ring buffer, valid until the next backward.
  const float* own_dkv_ = nullptr;
  // The rows of a backward step's dK/dV buffer that it left for the next
  // Accumulate into it to set (UnwrittenDkv::kSetByNextAccumulate).
  struct UnwrittenRows {
    float* buffer;
    PackedKvShape shape;
    CellRegions regions;
  };
  std::optional<UnwrittenRows> unwritten_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<CudaRingBackend>> CudaRingBackend::Create(
    const Schedule& schedule, int rank, const AttentionShape& shape, double softmax_scale,
    const HostRankInputs& inputs, const CudaBackendOptions& options) {
  const int device = options.device;
  const Layout& layout = schedule.layout();
  RETURN_IF_ERROR(layout.CheckRank(rank));
  RETURN_IF_ERROR(schedule.CheckShape(shape));
  RETURN_IF_ERROR(ValidateSoftmaxScale(softmax_scale));
  ASSIGN_OR_RETURN(ElementType type, ElementTypeOf(inputs.dtype));
  RETURN_IF_ERROR(CheckRankInputBytes(layout.RankShapeOf(rank, shape), inputs));
  ASSIGN_OR_RETURN(int devices, DeviceCount());
  if (device < 0 || device >= devices) {
    return absl::InvalidArgumentError(
        absl::StrCat("device ", device, " does not exist; expected 0..", devices - 1));
  }
  // Before the first launch: no kernel of ours may load lazily beside a
  // pass's NCCL kernel (cuda/kernel_preload.h).
  RETURN_IF_ERROR(PreloadKernels(device).status());
  auto backend =
      std::make_unique<Backend>(schedule, rank, shape, softmax_scale, inputs.dtype, type, options);
  RETURN_IF_ERROR(backend->Init(inputs));
  return std::unique_ptr<CudaRingBackend>(std::move(backend));
}

RankBackendFactory CudaBackendFactory(PlacementFn placement) {
  return [placement](const Schedule& schedule, int rank, const AttentionShape& shape, double scale,
                     const RankInputs& inputs) -> absl::StatusOr<std::unique_ptr<RankBackend>> {
    ASSIGN_OR_RETURN(
        std::unique_ptr<CudaRingBackend> backend,
        CudaRingBackend::Create(schedule, rank, shape, scale, inputs, placement(rank)));
    return std::unique_ptr<RankBackend>(std::move(backend));
  };
}

RankBackendFactory CudaBackendFactory(int devices) {
  return [devices](const Schedule& schedule, int rank, const AttentionShape& shape, double scale,
                   const RankInputs& inputs) -> absl::StatusOr<std::unique_ptr<RankBackend>> {
    ASSIGN_OR_RETURN(int visible, DeviceCount());
    if (devices > visible) {
      return absl::InvalidArgumentError(
          absl::StrCat(devices, " GPUs asked for; this machine has ", visible));
    }
    const int n = devices > 0 ? devices : visible;
    CudaBackendOptions options;
    options.device = rank % n;
    options.memory = RingBufferMemory::kManaged;
    return CudaBackendFactory([options](int) { return options; })(schedule, rank, shape, scale,
                                                                  inputs);
  };
}

}  // namespace ringattn::cuda
