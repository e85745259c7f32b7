#include "cpu_reference/cpu_backend.h"

#include <cstring>
#include <limits>
#include <map>

#include "absl/strings/str_cat.h"
#include "core/dtype_convert.h"
#include "core/status_macros.h"
#include "cpu_reference/attention.h"
#include "cpu_reference/blocked_attention.h"

namespace ringattn::cpu {
namespace {

absl::Status CheckBytes(const char* what, size_t bytes, int64_t elements, DType dtype) {
  if (static_cast<int64_t>(bytes) != elements * DTypeBytes(dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has ", bytes, " bytes; expected ",
                                                   elements, " ", DTypeName(dtype), " elements (",
                                                   elements * DTypeBytes(dtype), " bytes)"));
  }
  return absl::OkStatus();
}

// Inputs in host memory, which the CPU backend takes.
absl::Status CheckOnHost(const RankInputs& inputs) {
  if (inputs.device) {
    return absl::InvalidArgumentError(
        "the inputs are in GPU memory; the CPU backend takes host memory (run the CUDA backend, "
        "or copy the tensors to the host)");
  }
  return absl::OkStatus();
}

template <typename C>
std::vector<C> Upcast(DType dtype, absl::Span<const uint8_t> bytes) {
  return DecodeAll<C>(dtype, bytes);
}

template <typename C>
std::vector<uint8_t> Downcast(DType dtype, const std::vector<C>& values) {
  return EncodeAll<C>(dtype, values);
}

// C: the compute type (float or double).
template <typename C>
class Backend final : public CpuRingBackend {
 public:
  Backend(const Schedule& schedule, int rank, const AttentionShape& shape, double softmax_scale,
          const RankInputs& inputs)
      : mask_(&schedule.mask()), dtype_(inputs.dtype) {
    local_ = schedule.layout().RankShapeOf(rank, shape);
    problem_.batch = local_.batch;
    problem_.batch_offset = local_.batch_offset;
    problem_.q_rows = local_.rows;
    problem_.num_heads = local_.num_heads;
    problem_.num_kv_heads = local_.num_kv_heads;
    problem_.head_dim = local_.head_dim;
    problem_.softmax_scale = softmax_scale;
    problem_.mask = mask_;
    Load(inputs);
  }

  absl::Status Reload(const RankInputs& inputs) override {
    RETURN_IF_ERROR(CheckOnHost(inputs));
    RETURN_IF_ERROR(CheckReloadInputs(local_, dtype_, inputs));
    Load(inputs);
    return absl::OkStatus();
  }

  int64_t KvElements(int64_t head_begin, int64_t head_end) const override {
    return local_.packed_kv_elements(head_begin, head_end);
  }
  DType kv_dtype() const override { return dtype_; }
  DType grad_dtype() const override { return sizeof(C) == 8 ? DType::kFloat64 : DType::kFloat32; }

  absl::StatusOr<absl::Span<uint8_t>> Buffer(int slot, int64_t bytes) override {
    std::vector<uint8_t>& buffer = buffers_[slot];
    buffer.resize(bytes);
    return absl::MakeSpan(buffer);
  }

  absl::Status Accumulate(absl::Span<uint8_t> dst, absl::Span<const uint8_t> src) override {
    if (dst.size() != src.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("accumulate ", src.size(), " bytes into ", dst.size()));
    }
    C* d = reinterpret_cast<C*>(dst.data());
    const C* s = reinterpret_cast<const C*>(src.data());
    for (size_t i = 0; i < dst.size() / sizeof(C); ++i) d[i] += s[i];
    return absl::OkStatus();
  }

  // The inputs as they are: (batch, rows, every kv head, d) each, a packed
  // block's halves.
  std::optional<OwnKvSpans> OwnKv() const override {
    return OwnKvSpans{absl::MakeConstSpan(k_), absl::MakeConstSpan(v_)};
  }

  absl::Status PackKv(int64_t head_begin, int64_t head_end, absl::Span<uint8_t> out) override {
    if (static_cast<int64_t>(out.size()) != KvBytes(head_begin, head_end)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "K/V pack buffer has ", out.size(), " bytes; expected ", KvBytes(head_begin, head_end)));
    }
    const int64_t d = problem_.head_dim, heads = head_end - head_begin;
    const int64_t row_bytes = d * DTypeBytes(dtype_);
    const int64_t half = out.size() / 2;
    for (int64_t b = 0; b < problem_.batch; ++b) {
      for (int64_t t = 0; t < problem_.q_rows; ++t) {
        for (int64_t h = head_begin; h < head_end; ++h) {
          const int64_t src = ((b * problem_.q_rows + t) * problem_.num_kv_heads + h) * row_bytes;
          const int64_t dst = ((b * problem_.q_rows + t) * heads + (h - head_begin)) * row_bytes;
          std::memcpy(out.data() + dst, k_.data() + src, row_bytes);
          std::memcpy(out.data() + half + dst, v_.data() + src, row_bytes);
        }
      }
    }
    return absl::OkStatus();
  }

  absl::Status ForwardStep(absl::Span<const BlockTask> tasks, const KvBlock& kv) override {
    RETURN_IF_ERROR(UnpackVisiting(kv));
    const TensorRef<const C> q{q_, QStrides()};
    for (const BlockTask& task : tasks) {
      RETURN_IF_ERROR(BlockForward<C>(task, problem_, q, {visit_k_, VisitStrides()},
                                      {visit_v_, VisitStrides()}, &state_));
    }
    forward_done_ = false;
    return absl::OkStatus();
  }

  absl::Status FinishForward() override {
    out_ = Downcast<C>(dtype_, state_.out);
    lse_.assign(state_.lse.begin(), state_.lse.end());
    forward_done_ = true;
    return absl::OkStatus();
  }

  absl::Status SetDout(absl::Span<const uint8_t> dout) override {
    RETURN_IF_ERROR(CheckBytes("dout", dout.size(), q_.size(), dtype_));
    dout_ = Upcast<C>(dtype_, dout);
    return absl::OkStatus();
  }

  absl::Status SetForwardResult(absl::Span<const uint8_t> out,
                                absl::Span<const float> lse) override {
    RETURN_IF_ERROR(CheckBytes("out", out.size(), q_.size(), dtype_));
    if (lse.size() != state_.lse.size()) {
      return absl::InvalidArgumentError(absl::StrCat("lse has ", lse.size(),
                                                     " elements; expected local_batch x "
                                                     "num_heads x local_seqlen = ",
                                                     state_.lse.size()));
    }
    state_.out = Upcast<C>(dtype_, out);
    state_.lse.assign(lse.begin(), lse.end());
    return FinishForward();
  }

  const std::vector<uint8_t>& out() const override { return out_; }
  const std::vector<float>& lse() const override { return lse_; }

  absl::Status StartBackward() override {
    if (!forward_done_) {
      return absl::FailedPreconditionError(
          "backward needs the forward's output: run the forward on this "
          "backend or call SetForwardResult");
    }
    if (dout_.empty()) {
      return absl::FailedPreconditionError("backward needs dout: call SetDout");
    }
    delta_ = BackwardDelta<C>(state_.out, dout_, problem_.batch, problem_.q_rows,
                              problem_.num_heads, problem_.head_dim);
    dq_.assign(q_.size(), C(0));
    dk_.assign(k_.size() / DTypeBytes(dtype_), C(0));
    dv_.assign(dk_.size(), C(0));
    backward_done_ = true;
    return absl::OkStatus();
  }

  // Every row of dkv written, those no task has as zeros, whatever
  // `unwritten` allows (the copy out of visit_dk_ / visit_dv_ is one pass).
  absl::Status BackwardStep(absl::Span<const BlockTask> tasks, const KvBlock& kv,
                            absl::Span<uint8_t> dkv, UnwrittenDkv /*unwritten*/) override {
    RETURN_IF_ERROR(UnpackVisiting(kv));
    const int64_t visit_elements = static_cast<int64_t>(visit_k_.size());
    visit_dk_.assign(visit_elements, C(0));
    visit_dv_.assign(visit_elements, C(0));
    const TensorStrides qs = QStrides(), vs = VisitStrides();
    for (const BlockTask& task : tasks) {
      RETURN_IF_ERROR(BlockBackward<C>(task, problem_, {q_, qs}, {visit_k_, vs}, {visit_v_, vs},
                                       {dout_, qs}, state_.lse, delta_, {absl::MakeSpan(dq_), qs},
                                       {absl::MakeSpan(visit_dk_), vs},
                                       {absl::MakeSpan(visit_dv_), vs}));
    }
    // Into the step's buffer, laid out like the packed K/V.
    if (static_cast<int64_t>(dkv.size()) != kv.ranks * GradBytes(kv.head_begin, kv.head_end)) {
      return absl::InvalidArgumentError(
          absl::StrCat("dK/dV buffer has ", dkv.size(), " bytes; expected ",
                       kv.ranks * GradBytes(kv.head_begin, kv.head_end)));
    }
    std::memset(dkv.data(), 0, dkv.size());
    C* acc = reinterpret_cast<C*>(dkv.data());
    ForEachVisitingRow(kv, [&](int64_t packed_k, int64_t packed_v, int64_t visit) {
      for (int64_t i = 0; i < problem_.head_dim; ++i) {
        acc[packed_k + i] += visit_dk_[visit + i];
        acc[packed_v + i] += visit_dv_[visit + i];
      }
    });
    return absl::OkStatus();
  }

  absl::Status AddOwnDkv(int64_t head_begin, int64_t head_end,
                         absl::Span<const uint8_t> dkv) override {
    if (static_cast<int64_t>(dkv.size()) != GradBytes(head_begin, head_end)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "own dK/dV has ", dkv.size(), " bytes; expected ", GradBytes(head_begin, head_end)));
    }
    const C* grad = reinterpret_cast<const C*>(dkv.data());
    const int64_t d = problem_.head_dim, heads = head_end - head_begin;
    const int64_t half = dkv.size() / sizeof(C) / 2;
    for (int64_t b = 0; b < problem_.batch; ++b) {
      for (int64_t t = 0; t < problem_.q_rows; ++t) {
        for (int64_t h = head_begin; h < head_end; ++h) {
          const int64_t src = ((b * problem_.q_rows + t) * heads + (h - head_begin)) * d;
          const int64_t dst = ((b * problem_.q_rows + t) * problem_.num_kv_heads + h) * d;
          for (int64_t i = 0; i < d; ++i) {
            dk_[dst + i] += grad[src + i];
            dv_[dst + i] += grad[half + src + i];
          }
        }
      }
    }
    return absl::OkStatus();
  }

  absl::Status WriteOutputs(void* out, float* lse) override {
    if (!forward_done_) return absl::FailedPreconditionError("no forward pass has run");
    if (out == nullptr || lse == nullptr) {
      return absl::InvalidArgumentError("out and lse must be host buffers, not NULL");
    }
    std::memcpy(out, out_.data(), out_.size());
    std::memcpy(lse, lse_.data(), lse_.size() * sizeof(float));
    return absl::OkStatus();
  }
  absl::Status WriteGrads(void* dq, void* dk, void* dv) override {
    if (dq == nullptr || dk == nullptr || dv == nullptr) {
      return absl::InvalidArgumentError("dq, dk and dv must be host buffers, not NULL");
    }
    for (auto [to, grad] : {std::pair{dq, &dq_}, std::pair{dk, &dk_}, std::pair{dv, &dv_}}) {
      ASSIGN_OR_RETURN(const std::vector<uint8_t> bytes, Grad(*grad));
      std::memcpy(to, bytes.data(), bytes.size());
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<uint8_t>> dq() const override { return Grad(dq_); }
  absl::StatusOr<std::vector<uint8_t>> dk() const override { return Grad(dk_); }
  absl::StatusOr<std::vector<uint8_t>> dv() const override { return Grad(dv_); }

 private:
  // The pass's inputs, and a fresh state: no forward or backward has run.
  void Load(const RankInputs& inputs) {
    q_ = Upcast<C>(dtype_, inputs.q);
    k_.assign(inputs.k.begin(), inputs.k.end());
    v_.assign(inputs.v.begin(), inputs.v.end());
    state_ = EmptyOutput<C>(problem_.batch, problem_.q_rows, problem_.num_heads, problem_.head_dim);
    forward_done_ = backward_done_ = false;
    dout_.clear();
  }

  TensorStrides QStrides() const {
    return DenseStrides(problem_.q_rows, problem_.num_heads, problem_.head_dim);
  }
  TensorStrides VisitStrides() const {
    return DenseStrides(problem_.k_rows, problem_.num_kv_heads, problem_.head_dim);
  }

  absl::StatusOr<std::vector<uint8_t>> Grad(const std::vector<C>& g) const {
    if (!backward_done_) {
      return absl::FailedPreconditionError("no backward pass has run");
    }
    return Downcast<C>(dtype_, g);
  }

  // Calls fn(packed K offset, packed V offset, visiting offset), in
  // elements, for every (rank, batch, row, head) of `kv`. The visiting
  // tensors are (batch, ranks * rows, num_kv_heads, head_dim): the gathered
  // shards in ring-rank order are global order along the sequence.
  template <typename Fn>
  void ForEachVisitingRow(const KvBlock& kv, Fn&& fn) const {
    const int64_t d = problem_.head_dim, heads = kv.head_end - kv.head_begin;
    const int64_t rows = problem_.q_rows;
    const int64_t shard = KvElements(kv.head_begin, kv.head_end);
    for (int r = 0; r < kv.ranks; ++r) {
      for (int64_t b = 0; b < problem_.batch; ++b) {
        for (int64_t t = 0; t < rows; ++t) {
          for (int64_t h = kv.head_begin; h < kv.head_end; ++h) {
            const int64_t packed = r * shard + ((b * rows + t) * heads + (h - kv.head_begin)) * d;
            const int64_t visit =
                ((b * kv.ranks * rows + r * rows + t) * problem_.num_kv_heads + h) * d;
            fn(packed, packed + shard / 2, visit);
          }
        }
      }
    }
  }

  absl::Status UnpackVisiting(const KvBlock& kv) {
    RETURN_IF_ERROR(ValidateVisitingBlock(kv, problem_.num_kv_heads, *this));
    problem_.k_rows = kv.ranks * problem_.q_rows;
    const int64_t elements =
        problem_.batch * problem_.k_rows * problem_.num_kv_heads * problem_.head_dim;
    visit_k_.resize(elements);
    visit_v_.resize(elements);
    // An own block (kv.v set) holds V apart, at K's offsets.
    const uint8_t* v = kv.v.empty() ? kv.data.data() : kv.v.data();
    ForEachVisitingRow(kv, [&](int64_t packed_k, int64_t packed_v, int64_t visit) {
      const int64_t v_offset = kv.v.empty() ? packed_v : packed_k;
      for (int64_t i = 0; i < problem_.head_dim; ++i) {
        visit_k_[visit + i] = LoadElement<C>(dtype_, kv.data.data(), packed_k + i);
        visit_v_[visit + i] = LoadElement<C>(dtype_, v, v_offset + i);
      }
    });
    return absl::OkStatus();
  }

  const Mask* mask_;
  DType dtype_;
  RankShape local_;
  BlockProblem problem_;
  std::vector<C> q_;
  std::vector<uint8_t> k_, v_;  // input dtype, (batch, rows, kv heads, d)
  AttentionOutput<C> state_;
  std::vector<uint8_t> out_;
  std::vector<float> lse_;
  bool forward_done_ = false;
  bool backward_done_ = false;
  std::vector<C> dout_, delta_, dq_, dk_, dv_;
  std::vector<C> visit_k_, visit_v_, visit_dk_, visit_dv_;
  std::map<int, std::vector<uint8_t>> buffers_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<CpuRingBackend>> CpuRingBackend::Create(const Schedule& schedule,
                                                                       int rank,
                                                                       const AttentionShape& shape,
                                                                       double softmax_scale,
                                                                       const RankInputs& inputs) {
  const Layout& layout = schedule.layout();
  RETURN_IF_ERROR(layout.CheckRank(rank));
  RETURN_IF_ERROR(schedule.CheckShape(shape));
  RETURN_IF_ERROR(ValidateSoftmaxScale(softmax_scale));
  RETURN_IF_ERROR(CheckOnHost(inputs));
  RETURN_IF_ERROR(CheckRankInputBytes(layout.RankShapeOf(rank, shape), inputs));
  if (inputs.dtype == DType::kFloat64) {
    return std::unique_ptr<CpuRingBackend>(
        new Backend<double>(schedule, rank, shape, softmax_scale, inputs));
  }
  return std::unique_ptr<CpuRingBackend>(
      new Backend<float>(schedule, rank, shape, softmax_scale, inputs));
}

}  // namespace ringattn::cpu
