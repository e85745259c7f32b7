#include "ringattn.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "cpu_reference/cpu_backend.h"

namespace ringattn {
namespace {

// Copies a strided local tensor into dense bytes.
absl::StatusOr<std::vector<uint8_t>> Densify(const char* what, const RankTensor& t, DType dtype,
                                             int64_t batch, int64_t seqlen, int64_t heads,
                                             int64_t head_dim) {
  if (t.dtype != dtype) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is ", DTypeName(t.dtype), "; expected ", DTypeName(dtype), " like q"));
  }
  const int64_t elem = DTypeBytes(dtype);
  if (t.data.size() % elem != 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has ", t.data.size(),
                                                   " bytes, not a whole number of ",
                                                   DTypeName(dtype), " elements"));
  }
  RETURN_IF_ERROR(
      CheckTensorFits(what, t.data.size() / elem, t.strides, batch, seqlen, heads, head_dim));
  std::vector<uint8_t> dense(batch * seqlen * heads * head_dim * elem);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t s = 0; s < seqlen; ++s) {
      for (int64_t h = 0; h < heads; ++h) {
        std::memcpy(dense.data() + ((b * seqlen + s) * heads + h) * head_dim * elem,
                    t.data.data() + t.strides.Index(b, s, h) * elem, head_dim * elem);
      }
    }
  }
  return dense;
}

}  // namespace

RankTensor DenseRankTensor(DType dtype, absl::Span<const uint8_t> data, int64_t local_seqlen,
                           int64_t heads, int64_t head_dim) {
  return {dtype, data, DenseStrides(local_seqlen, heads, head_dim)};
}

RankBackendFactory CpuBackendFactory() {
  return [](const Schedule& schedule, int rank, const AttentionShape& shape, double scale,
            const RankInputs& inputs) -> absl::StatusOr<std::unique_ptr<RankBackend>> {
    ASSIGN_OR_RETURN(std::unique_ptr<cpu::CpuRingBackend> backend,
                     cpu::CpuRingBackend::Create(schedule, rank, shape, scale, inputs));
    return std::unique_ptr<RankBackend>(std::move(backend));
  };
}

RingAttention::RingAttention(Communicator& comm, AttentionShape shape, double scale,
                             std::unique_ptr<Schedule> schedule, RankBackendFactory factory)
    : comm_(comm),
      shape_(shape),
      softmax_scale_(scale),
      schedule_(std::move(schedule)),
      factory_(factory ? std::move(factory) : CpuBackendFactory()) {}

RingAttention::~RingAttention() = default;

absl::StatusOr<std::unique_ptr<RingAttention>> RingAttention::Create(
    Communicator& comm, const RingAttentionConfig& config, const AttentionShape& shape) {
  RETURN_IF_ERROR(ValidateShape(shape));
  const double scale =
      config.softmax_scale == 0 ? DefaultSoftmaxScale(shape.head_dim) : config.softmax_scale;
  RETURN_IF_ERROR(ValidateSoftmaxScale(scale));
  if (config.layout.world != comm.world()) {
    return absl::InvalidArgumentError(absl::StrCat("layout world ", config.layout.world,
                                                   " differs from the "
                                                   "communicator's world ",
                                                   comm.world()));
  }
  if (shape.seqlen_q != shape.seqlen_k) {
    return absl::InvalidArgumentError(absl::StrCat("ring attention shards one sequence: seqlen_q ",
                                                   shape.seqlen_q, " != seqlen_k ",
                                                   shape.seqlen_k));
  }
  ASSIGN_OR_RETURN(Schedule schedule, Schedule::Build(config.layout, config.mask, shape));
  return std::unique_ptr<RingAttention>(new RingAttention(
      comm, shape, scale, std::make_unique<Schedule>(std::move(schedule)), config.backend));
}

std::vector<int64_t> RingAttention::PositionIds() const {
  return *schedule_->layout().PositionIds(comm_.rank());
}

absl::Status RingAttention::Load(const RankTensor& q, const RankTensor& k, const RankTensor& v) {
  forward_kv_.reset();  // a new backend holds no forward buffers
  const Layout& layout = schedule_->layout();
  const int64_t b = layout.local_batch(), s = layout.local_seqlen();
  ASSIGN_OR_RETURN(std::vector<uint8_t> dq,
                   Densify("q", q, q.dtype, b, s, shape_.num_heads, shape_.head_dim));
  ASSIGN_OR_RETURN(std::vector<uint8_t> dk,
                   Densify("k", k, q.dtype, b, s, shape_.num_kv_heads, shape_.head_dim));
  ASSIGN_OR_RETURN(std::vector<uint8_t> dv,
                   Densify("v", v, q.dtype, b, s, shape_.num_kv_heads, shape_.head_dim));
  ASSIGN_OR_RETURN(
      std::unique_ptr<RankBackend> backend,
      factory_(*schedule_, comm_.rank(), shape_, softmax_scale_, {q.dtype, dq, dk, dv}));
  backend_ = std::move(backend);
  return absl::OkStatus();
}

absl::StatusOr<RankForward> RingAttention::Forward(const RankTensor& q, const RankTensor& k,
                                                   const RankTensor& v) {
  if (absl::Status s = Load(q, k, v); !s.ok()) {
    comm_.Abort(s);
    return s;
  }
  ASSIGN_OR_RETURN(RingRunStats stats, RunRingForward(*schedule_, comm_, *backend_));
  forward_kv_ = stats.last_kv;
  ASSIGN_OR_RETURN(std::vector<uint8_t> out, backend_->Out());
  ASSIGN_OR_RETURN(std::vector<float> lse, backend_->Lse());
  return RankForward{std::move(out), std::move(lse), stats};
}

absl::StatusOr<RankGrads> RingAttention::Backward(const RankTensor& dout) {
  if (backend_ == nullptr) {
    return absl::FailedPreconditionError(
        "Backward(dout) needs a Forward on this RingAttention first");
  }
  const Layout& layout = schedule_->layout();
  absl::StatusOr<std::vector<uint8_t>> dense =
      Densify("dout", dout, backend_->kv_dtype(), layout.local_batch(), layout.local_seqlen(),
              shape_.num_heads, shape_.head_dim);
  absl::Status status = dense.ok() ? backend_->SetDout(*dense) : dense.status();
  if (!status.ok()) {
    comm_.Abort(status);
    return status;
  }
  BackwardOptions options;
  options.forward_kv = forward_kv_;
  forward_kv_.reset();  // the backward reuses those buffers
  ASSIGN_OR_RETURN(RingRunStats stats, RunRingBackward(*schedule_, comm_, *backend_, options));
  RankGrads grads;
  for (auto [dest, grad] :
       {std::pair{&grads.dq, backend_->Dq()}, std::pair{&grads.dk, backend_->Dk()},
        std::pair{&grads.dv, backend_->Dv()}}) {
    if (!grad.ok()) return grad.status();
    *dest = *std::move(grad);
  }
  grads.stats = stats;
  return grads;
}

absl::StatusOr<RankGrads> RingAttention::Backward(const RankTensor& q, const RankTensor& k,
                                                  const RankTensor& v, const RankTensor& out,
                                                  absl::Span<const float> lse,
                                                  const RankTensor& dout) {
  absl::Status status = Load(q, k, v);
  if (status.ok()) {
    const Layout& layout = schedule_->layout();
    absl::StatusOr<std::vector<uint8_t>> dense =
        Densify("out", out, q.dtype, layout.local_batch(), layout.local_seqlen(), shape_.num_heads,
                shape_.head_dim);
    status = dense.ok() ? backend_->SetForwardResult(*dense, lse) : dense.status();
  }
  if (!status.ok()) {
    comm_.Abort(status);
    return status;
  }
  return Backward(dout);
}

absl::StatusOr<RankForward> RingFlashAttnFunc(Communicator& comm, LayoutKind layout,
                                              const AttentionShape& shape, const RankTensor& q,
                                              const RankTensor& k, const RankTensor& v,
                                              const MaskSpec& mask, double softmax_scale) {
  RingAttentionConfig config;
  config.layout.kind = layout;
  config.layout.world = comm.world();
  config.mask = mask;
  config.softmax_scale = softmax_scale;
  absl::StatusOr<std::unique_ptr<RingAttention>> attention =
      RingAttention::Create(comm, config, shape);
  if (!attention.ok()) {
    comm.Abort(attention.status());
    return attention.status();
  }
  return (*attention)->Forward(q, k, v);
}

}  // namespace ringattn
