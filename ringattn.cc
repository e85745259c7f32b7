#include "ringattn.h"

#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "cpu_reference/cpu_backend.h"

namespace ringattn {
namespace {

// The dense bytes of a local tensor: a host tensor's copied into `store`
// (any strides); a GPU tensor's as they are (`device`: dense strides only,
// the backend reads them on the GPU).
absl::StatusOr<absl::Span<const uint8_t>> Dense(const char* what, const RankTensor& t, DType dtype,
                                                bool device, int64_t batch, int64_t seqlen,
                                                int64_t heads, int64_t head_dim,
                                                std::vector<uint8_t>* store) {
  if (t.dtype != dtype) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is ", DTypeName(t.dtype), "; expected ", DTypeName(dtype), " like q"));
  }
  if (t.device != device) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is in ", t.device ? "GPU" : "host",
                                                   " memory; expected ", device ? "GPU" : "host",
                                                   " memory like q"));
  }
  const int64_t elem = DTypeBytes(dtype);
  if (t.data.size() % elem != 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has ", t.data.size(),
                                                   " bytes, not a whole number of ",
                                                   DTypeName(dtype), " elements"));
  }
  RETURN_IF_ERROR(
      CheckTensorFits(what, t.data.size() / elem, t.strides, batch, seqlen, heads, head_dim));
  const int64_t bytes = batch * seqlen * heads * head_dim * elem;
  if (device) {
    const TensorStrides dense = DenseStrides(seqlen, heads, head_dim);
    if (t.strides.offset != 0 || (batch > 1 && t.strides.batch != dense.batch) ||
        (seqlen > 1 && t.strides.token != dense.token) ||
        (heads > 1 && t.strides.head != dense.head)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " in GPU memory has strides (offset ", t.strides.offset, ", batch ",
                       t.strides.batch, ", row ", t.strides.token, ", head ", t.strides.head,
                       "); expected a dense (batch, rows, heads, head_dim) tensor (batch ",
                       dense.batch, ", row ", dense.token, ", head ", dense.head, ")"));
    }
    const auto address = reinterpret_cast<uintptr_t>(t.data.data());
    if (address % kDeviceTensorAlignment != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " in GPU memory starts at 0x", absl::Hex(address), ", ",
          address % kDeviceTensorAlignment, " bytes past a multiple of ", kDeviceTensorAlignment,
          "; expected an aligned address (the kernels load it 16 bytes at a time; a view at "
          "an offset into a larger tensor may not be: copy it)"));
    }
    return t.data.subspan(0, bytes);
  }
  store->resize(bytes);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t s = 0; s < seqlen; ++s) {
      for (int64_t h = 0; h < heads; ++h) {
        std::memcpy(store->data() + ((b * seqlen + s) * heads + h) * head_dim * elem,
                    t.data.data() + t.strides.Index(b, s, h) * elem, head_dim * elem);
      }
    }
  }
  return absl::Span<const uint8_t>(*store);
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
  std::vector<uint8_t> dense[3];
  RankInputs inputs{q.dtype, {}, {}, {}, q.device};
  inputs_on_device_ = q.device;
  for (auto [name, t, heads, to, store] :
       {std::tuple{"q", &q, shape_.num_heads, &inputs.q, &dense[0]},
        std::tuple{"k", &k, shape_.num_kv_heads, &inputs.k, &dense[1]},
        std::tuple{"v", &v, shape_.num_kv_heads, &inputs.v, &dense[2]}}) {
    ASSIGN_OR_RETURN(*to, Dense(name, *t, q.dtype, q.device, b, s, heads, shape_.head_dim, store));
  }
  // Another pass in the same dtype keeps the backend and its buffers.
  if (backend_ != nullptr && backend_->kv_dtype() == inputs.dtype) {
    return backend_->Reload(inputs);
  }
  ASSIGN_OR_RETURN(std::unique_ptr<RankBackend> backend,
                   factory_(*schedule_, comm_.rank(), shape_, softmax_scale_, inputs));
  backend_ = std::move(backend);
  return absl::OkStatus();
}

absl::StatusOr<RingRunStats> RingAttention::RunForward(const RankTensor& q, const RankTensor& k,
                                                       const RankTensor& v) {
  if (absl::Status s = Load(q, k, v); !s.ok()) {
    comm_.Abort(s);
    return s;
  }
  ASSIGN_OR_RETURN(RingRunStats stats, RunRingForward(*schedule_, comm_, *backend_));
  forward_kv_ = stats.last_kv;
  return stats;
}

absl::StatusOr<RankForward> RingAttention::Forward(const RankTensor& q, const RankTensor& k,
                                                   const RankTensor& v) {
  ASSIGN_OR_RETURN(RingRunStats stats, RunForward(q, k, v));
  ASSIGN_OR_RETURN(std::vector<uint8_t> out, backend_->Out());
  ASSIGN_OR_RETURN(std::vector<float> lse, backend_->Lse());
  return RankForward{std::move(out), std::move(lse), stats};
}

absl::StatusOr<RingRunStats> RingAttention::ForwardInto(const RankTensor& q, const RankTensor& k,
                                                        const RankTensor& v, void* out,
                                                        float* lse) {
  ASSIGN_OR_RETURN(RingRunStats stats, RunForward(q, k, v));
  RETURN_IF_ERROR(backend_->WriteOutputs(out, lse));
  return stats;
}

absl::StatusOr<RingRunStats> RingAttention::RunBackward(const RankTensor& dout) {
  if (backend_ == nullptr) {
    return absl::FailedPreconditionError(
        "Backward(dout) needs a Forward on this RingAttention first");
  }
  const Layout& layout = schedule_->layout();
  std::vector<uint8_t> store;
  absl::StatusOr<absl::Span<const uint8_t>> dense =
      Dense("dout", dout, backend_->kv_dtype(), inputs_on_device_, layout.local_batch(),
            layout.local_seqlen(), shape_.num_heads, shape_.head_dim, &store);
  absl::Status status = dense.ok() ? backend_->SetDout(*dense) : dense.status();
  if (!status.ok()) {
    comm_.Abort(status);
    return status;
  }
  BackwardOptions options;
  options.forward_kv = forward_kv_;
  forward_kv_.reset();  // the backward reuses those buffers
  return RunRingBackward(*schedule_, comm_, *backend_, options);
}

absl::StatusOr<RankGrads> RingAttention::Backward(const RankTensor& dout) {
  ASSIGN_OR_RETURN(RingRunStats stats, RunBackward(dout));
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

absl::StatusOr<RingRunStats> RingAttention::BackwardInto(const RankTensor& dout, void* dq, void* dk,
                                                         void* dv) {
  ASSIGN_OR_RETURN(RingRunStats stats, RunBackward(dout));
  RETURN_IF_ERROR(backend_->WriteGrads(dq, dk, dv));
  return stats;
}

absl::Status RingAttention::LoadForward(const RankTensor& q, const RankTensor& k,
                                        const RankTensor& v, const RankTensor& out,
                                        absl::Span<const float> lse) {
  absl::Status status = Load(q, k, v);
  if (status.ok()) {
    const Layout& layout = schedule_->layout();
    std::vector<uint8_t> store;
    absl::StatusOr<absl::Span<const uint8_t>> dense =
        Dense("out", out, q.dtype, q.device, layout.local_batch(), layout.local_seqlen(),
              shape_.num_heads, shape_.head_dim, &store);
    status = dense.ok() ? backend_->SetForwardResult(*dense, lse) : dense.status();
  }
  if (!status.ok()) comm_.Abort(status);
  return status;
}

absl::StatusOr<RankGrads> RingAttention::Backward(const RankTensor& q, const RankTensor& k,
                                                  const RankTensor& v, const RankTensor& out,
                                                  absl::Span<const float> lse,
                                                  const RankTensor& dout) {
  RETURN_IF_ERROR(LoadForward(q, k, v, out, lse));
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
