// The C ABI over ringattn.h (see ringattn_c.h). No exception and no C++
// type leaves this file.
#include "ringattn_c.h"

#include <cuda_runtime_api.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <exception>
#include <iterator>
#include <memory>
#include <new>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "comm/cuda_communicator.h"
#include "comm/nccl_communicator.h"
#include "comm/thread_communicator.h"
#include "core/mutex.h"
#include "core/status_macros.h"
#include "cuda/device.h"
#include "cuda/ring_backend.h"
#include "ringattn.h"

struct ringattn_world {
  // Either W ranks as threads of this process, or this process's one rank
  // over a caller's transport or NCCL.
  std::unique_ptr<ringattn::comm::ThreadWorld> threads;
  std::unique_ptr<ringattn::Communicator> single;
  // NCCL: the GPU, and the compute stream its rings share (the one the
  // communicator orders its transfers with).
  int device = -1;
  cudaStream_t stream = nullptr;
  int size() const { return threads ? threads->world() : single->world(); }
  // The NCCL rank's communicator; null for CPU worlds.
  ringattn::comm::CudaCommunicator* gpu() const {
    return dynamic_cast<ringattn::comm::CudaCommunicator*>(single.get());
  }
  ~ringattn_world() {
    single.reset();  // before the stream it is bound to
    if (stream != nullptr) {
      cudaSetDevice(device);
      cudaStreamDestroy(stream);
    }
  }
};

struct ringattn_ring {
  std::unique_ptr<ringattn::RingAttention> attention;
  ringattn::Communicator* comm = nullptr;  // the world's, for aborts
  // The problem as this rank described it, compared with every other
  // rank's before the first forward.
  std::vector<int64_t> fingerprint;
  bool same_problem_checked = false;
  // GPU rings: the device, the world's compute stream, the caller's stream
  // and an event handing work between the two.
  int device = -1;
  cudaStream_t compute = nullptr;
  cudaStream_t caller = nullptr;
  cudaEvent_t handoff = nullptr;
  int64_t num_heads = 0, num_kv_heads = 0, head_dim = 0;
  ~ringattn_ring() {
    if (handoff != nullptr) {
      cudaSetDevice(device);
      cudaEventDestroy(handoff);
    }
  }
};

namespace {

using ringattn::DType;

// One rank's Communicator over a caller's ringattn_transport. Each
// transfer is a handle of the transport, waited exactly once (by Wait, or
// by the request's destructor).
class TransportCommunicator : public ringattn::Communicator {
 public:
  TransportCommunicator(int world, int rank, const ringattn_transport& transport)
      : world_(world), rank_(rank), transport_(transport) {}

  int rank() const override { return rank_; }
  int world() const override { return world_; }

  std::unique_ptr<Request> Send(int peer, int tag, absl::Span<const uint8_t> data) override {
    return Start("send to", peer, [&](char* error, int64_t size) {
      return transport_.start_send(transport_.user, peer, tag, data.data(),
                                   static_cast<int64_t>(data.size()), error, size);
    });
  }
  std::unique_ptr<Request> Recv(int peer, int tag, absl::Span<uint8_t> data) override {
    return Start("receive from", peer, [&](char* error, int64_t size) {
      return transport_.start_recv(transport_.user, peer, tag, data.data(),
                                   static_cast<int64_t>(data.size()), error, size);
    });
  }
  void Abort(const absl::Status& reason) override {
    {
      ringattn::MutexLock lock(&mu_);
      if (!aborted_.ok()) return;
      aborted_ = reason;
    }
    if (transport_.abort != nullptr) {
      transport_.abort(transport_.user, std::string(reason.message()).c_str());
    }
  }

 private:
  static constexpr int64_t kErrorBytes = 1024;

  class TransportRequest : public Request {
   public:
    TransportRequest(TransportCommunicator* comm, int64_t handle, std::string what)
        : comm_(comm), handle_(handle), what_(std::move(what)) {}
    ~TransportRequest() override { std::ignore = Wait(); }
    absl::Status Wait() override {
      if (waited_) return status_;
      waited_ = true;
      char error[kErrorBytes] = "";
      const ringattn_transport& t = comm_->transport_;
      if (t.wait(t.user, handle_, error, kErrorBytes) != 0) {
        const absl::Status aborted = comm_->aborted();
        status_ = !aborted.ok() ? aborted : comm_->Failed(what_, error);
      }
      return status_;
    }

   private:
    TransportCommunicator* comm_;
    int64_t handle_;
    std::string what_;
    bool waited_ = false;
    absl::Status status_;
  };

  template <typename StartFn>
  std::unique_ptr<Request> Start(const char* verb, int peer, StartFn start) {
    if (peer < 0 || peer >= world_) {
      return ringattn::DoneRequest(absl::InvalidArgumentError(
          absl::StrCat("peer ", peer, " is outside [0, world = ", world_, ")")));
    }
    if (absl::Status aborted = this->aborted(); !aborted.ok()) {
      return ringattn::DoneRequest(aborted);
    }
    const std::string what = absl::StrCat(verb, " rank ", peer);
    char error[kErrorBytes] = "";
    const int64_t handle = start(error, kErrorBytes);
    if (handle < 0) return ringattn::DoneRequest(Failed(what, error));
    return std::make_unique<TransportRequest>(this, handle, what);
  }

  absl::Status aborted() const {
    ringattn::MutexLock lock(&mu_);
    return aborted_;
  }

  // A transfer `what` that the transport failed, with its reason: the world
  // is aborted at once, before the pass drains its other transfers (two
  // ranks whose sends both failed each waited for the other's data until
  // the transport's timeout).
  absl::Status Failed(const std::string& what, char* error) {
    error[kErrorBytes - 1] = '\0';
    const absl::Status status = absl::UnavailableError(
        absl::StrCat("rank ", rank_, ": transport ", what, ": ",
                     error[0] != '\0' ? error : "(the transport gave no reason)"));
    Abort(status);
    return status;
  }

  const int world_, rank_;
  const ringattn_transport transport_;
  mutable ringattn::Mutex mu_;
  absl::Status aborted_ ABSL_GUARDED_BY(mu_);
};

thread_local std::string last_error;

ringattn_status Fail(const absl::Status& status) {
  last_error = std::string(status.message());
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      return RINGATTN_INVALID_ARGUMENT;
    case absl::StatusCode::kDeadlineExceeded:
      return RINGATTN_DEADLINE_EXCEEDED;
    case absl::StatusCode::kResourceExhausted:
      return RINGATTN_RESOURCE_EXHAUSTED;
    case absl::StatusCode::kFailedPrecondition:
      return RINGATTN_FAILED_PRECONDITION;
    case absl::StatusCode::kAborted:
      return RINGATTN_ABORTED;
    case absl::StatusCode::kInternal:
      return RINGATTN_INTERNAL;
    case absl::StatusCode::kUnavailable:
      return RINGATTN_UNAVAILABLE;
    default:
      return RINGATTN_OTHER_ERROR;
  }
}

// Runs `body` (returning absl::Status), turning exceptions into errors.
template <typename Body>
ringattn_status Guard(Body&& body) {
  last_error.clear();
  try {
    const absl::Status status = body();
    return status.ok() ? RINGATTN_OK : Fail(status);
  } catch (const std::bad_alloc&) {
    return Fail(absl::ResourceExhaustedError("out of memory"));
  } catch (const std::exception& e) {
    return Fail(absl::InternalError(absl::StrCat("unexpected exception: ", e.what())));
  }
}

// A C enum field as the int the caller stored: C lets it hold any int,
// while reading an out-of-range value as the C++ enum type is undefined.
template <typename Enum>
int RawEnum(const Enum& e) {
  static_assert(sizeof(Enum) == sizeof(int), "C enums are ints");
  int value;
  std::memcpy(&value, &e, sizeof value);
  return value;
}

absl::StatusOr<DType> DTypeOf(int dtype) {
  switch (dtype) {
    case RINGATTN_FLOAT32:
      return DType::kFloat32;
    case RINGATTN_FLOAT64:
      return DType::kFloat64;
    case RINGATTN_FLOAT16:
      return DType::kFloat16;
    case RINGATTN_BFLOAT16:
      return DType::kBFloat16;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("dtype ", dtype,
                   " is unknown; expected RINGATTN_FLOAT32 (0), FLOAT64 (1), "
                   "FLOAT16 (2) or BFLOAT16 (3)"));
}

absl::StatusOr<ringattn::LayoutKind> LayoutOf(int layout) {
  switch (layout) {
    case RINGATTN_LAYOUT_RING:
      return ringattn::LayoutKind::kRing;
    case RINGATTN_LAYOUT_ZIGZAG:
      return ringattn::LayoutKind::kZigzag;
    case RINGATTN_LAYOUT_STRIPE:
      return ringattn::LayoutKind::kStripe;
    case RINGATTN_LAYOUT_LLAMA3:
      return ringattn::LayoutKind::kLlama3;
    case RINGATTN_LAYOUT_BALANCED:
      return ringattn::LayoutKind::kBalanced;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("layout ", layout, " is unknown; expected 0 to 4"));
}

absl::StatusOr<ringattn::RankTensor> TensorOf(const char* name, const ringattn_tensor* t) {
  if (t == nullptr || t->data == nullptr || t->bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " is missing (a NULL tensor, data pointer, or negative size)"));
  }
  ringattn::RankTensor r;
  ASSIGN_OR_RETURN(r.dtype, DTypeOf(RawEnum(t->dtype)));
  r.data = absl::Span<const uint8_t>(static_cast<const uint8_t*>(t->data), t->bytes);
  r.strides = {t->offset, t->batch_stride, t->row_stride, t->head_stride};
  return r;
}

// Copies `from` into the caller's buffer of `bytes`, which must match.
template <typename T>
absl::Status CopyOut(const char* name, const std::vector<T>& from, void* to, int64_t bytes) {
  const int64_t need = static_cast<int64_t>(from.size() * sizeof(T));
  if (to == nullptr || bytes != need) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " has room for ", bytes, " bytes; expected ", need, " (dense, local)"));
  }
  std::memcpy(to, from.data(), need);
  return absl::OkStatus();
}

// The fields of a config every rank must agree on; `hashed` ones are
// compared as hashes (the scale's bits, the lists), so a mismatch names
// them without values.
struct FingerprintField {
  const char* name;
  bool hashed;
};
constexpr FingerprintField kFingerprintFields[] = {{"layout", false},
                                                   {"world", false},
                                                   {"ring_size", false},
                                                   {"stripe_width", false},
                                                   {"kv_heads_per_group", false},
                                                   {"causal", false},
                                                   {"window_left", false},
                                                   {"window_right", false},
                                                   {"batch", false},
                                                   {"seqlen", false},
                                                   {"num_heads", false},
                                                   {"num_kv_heads", false},
                                                   {"head_dim", false},
                                                   {"softmax_scale", true},
                                                   {"cu_seqlens", true},
                                                   {"key_lengths", true}};
using Fingerprint = std::array<int64_t, std::size(kFingerprintFields)>;

// FNV-1a of a list (0 for none).
int64_t HashOf(const int64_t* values, int64_t count) {
  if (count <= 0) return 0;
  uint64_t h = 1469598103934665603ull;
  for (int64_t i = 0; i < count; ++i) {
    h = (h ^ static_cast<uint64_t>(values[i])) * 1099511628211ull;
  }
  return static_cast<int64_t>(h);
}

Fingerprint FingerprintOf(const ringattn_config& c, ringattn::LayoutKind layout) {
  int64_t scale_bits;
  std::memcpy(&scale_bits, &c.softmax_scale, sizeof scale_bits);
  return {static_cast<int64_t>(layout),
          c.world,
          c.ring_size,
          c.stripe_width == 0 ? 1 : c.stripe_width,
          c.kv_heads_per_group,
          c.causal != 0,
          c.window_left,
          c.window_right,
          c.batch,
          c.seqlen,
          c.num_heads,
          c.num_kv_heads,
          c.head_dim,
          scale_bits,
          HashOf(c.cu_seqlens, c.num_cu_seqlens),
          HashOf(c.key_lengths, c.num_key_lengths)};
}

// Every rank's problem is this rank's (one all-gather of the fingerprints,
// before the first forward): ranks that disagree would exchange messages
// of different sizes, which some transports (gloo) answer by killing the
// process.
absl::Status CheckSameProblem(ringattn_ring* ring) {
  if (ring->same_problem_checked) return absl::OkStatus();
  const int world = ring->comm->world(), me = ring->comm->rank();
  constexpr size_t n = std::tuple_size_v<Fingerprint>;
  std::vector<int> group(world);
  for (int r = 0; r < world; ++r) group[r] = r;
  std::vector<int64_t> all(n * world);
  RETURN_IF_ERROR(ring->comm->AllGather(
      group, {reinterpret_cast<const uint8_t*>(ring->fingerprint.data()), n * sizeof(int64_t)},
      {reinterpret_cast<uint8_t*>(all.data()), all.size() * sizeof(int64_t)}));
  for (int r = 0; r < world; ++r) {
    for (size_t f = 0; f < n; ++f) {
      if (all[r * n + f] == ring->fingerprint[f]) continue;
      const FingerprintField& field = kFingerprintFields[f];
      return absl::InvalidArgumentError(absl::StrCat(
          "rank ", r, "'s problem differs from rank ", me, "'s in ", field.name,
          field.hashed ? "" : absl::StrCat(" (", all[r * n + f], " vs ", ring->fingerprint[f], ")"),
          "; every rank must describe the same global problem"));
    }
  }
  ring->same_problem_checked = true;
  return absl::OkStatus();
}

absl::Status CudaCheck(cudaError_t e, const char* what) {
  if (e != cudaSuccess) cudaGetLastError();  // a later launch check must not see it
  return ringattn::cuda::CudaStatus(e, what);
}

// `p` (a tensor or output of `name`) is memory of GPU `device`.
absl::Status CheckOnDevice(const char* name, const void* p, int device) {
  if (p == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " is NULL; expected memory of GPU ", device));
  }
  const cudaPointerAttributes attr = ringattn::cuda::PointerAttributes(p);
  const bool gpu = attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged;
  if (!gpu || attr.device != device) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " is ", gpu ? absl::StrCat("memory of GPU ", attr.device) : "host memory",
        "; this ring runs on GPU ", device, " and expects its tensors there"));
  }
  return absl::OkStatus();
}

// Work enqueued on `later` after this call runs after the work enqueued on
// `first` before it.
absl::Status Order(ringattn_ring* ring, cudaStream_t first, cudaStream_t later) {
  if (first == later) return absl::OkStatus();
  RETURN_IF_ERROR(CudaCheck(cudaEventRecord(ring->handoff, first), "recording a stream event"));
  return CudaCheck(cudaStreamWaitEvent(later, ring->handoff, 0), "waiting for a stream event");
}

// The bytes of `count` elements of `element_bytes` that a caller gave room
// for in `name` (a count of LSE values, of position ids).
// Errors: InvalidArgument for a negative count or one whose bytes overflow.
absl::StatusOr<int64_t> BytesOfCount(const char* name, int64_t count, int64_t element_bytes) {
  int64_t bytes = 0;
  if (count < 0 || __builtin_mul_overflow(count, element_bytes, &bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(name, " has room for ", count,
                                                   " elements; expected a count from 0 to ",
                                                   INT64_MAX / element_bytes));
  }
  return bytes;
}

absl::Status CheckBytes(const char* name, int64_t have, int64_t need) {
  if (have == need) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(name, " has room for ", have, " bytes; expected ", need, " (dense, local)"));
}

// A GPU ring's pass: its tensors and buffers on its GPU (`buffers`: name,
// pointer, bytes it has, bytes it needs), the compute stream after the
// caller's, then `run`, then the caller's stream after the compute stream.
struct DeviceInput {
  const char* name;
  ringattn::RankTensor* tensor;
};
// A raw GPU buffer the pass writes (an output) or reads (a given LSE).
struct DeviceBuffer {
  const char* name;
  const void* data;
  int64_t bytes, need;
};
template <typename Run>
absl::Status RunOnDevice(ringattn_ring* ring, const std::vector<DeviceInput>& inputs,
                         const std::vector<DeviceBuffer>& buffers, Run run) {
  for (const DeviceInput& in : inputs) {
    RETURN_IF_ERROR(CheckOnDevice(in.name, in.tensor->data.data(), ring->device));
    in.tensor->device = true;
  }
  for (const DeviceBuffer& buffer : buffers) {
    RETURN_IF_ERROR(CheckBytes(buffer.name, buffer.bytes, buffer.need));
    RETURN_IF_ERROR(CheckOnDevice(buffer.name, buffer.data, ring->device));
  }
  RETURN_IF_ERROR(CudaCheck(cudaSetDevice(ring->device), "selecting the ring's GPU"));
  RETURN_IF_ERROR(Order(ring, ring->caller, ring->compute));
  RETURN_IF_ERROR(run());
  return Order(ring, ring->compute, ring->caller);
}

absl::Status CheckWorld(int32_t world) {
  if (world >= 1 && world <= ringattn::kMaxWorld) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("world is ", world, "; expected 1 to ", ringattn::kMaxWorld));
}
absl::Status CheckRank(int32_t rank, int32_t world) {
  if (rank >= 0 && rank < world) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("rank ", rank, " is outside [0, world = ", world, ")"));
}
absl::Status CheckTimeout(double timeout_s) {
  if (timeout_s > 0 && timeout_s <= 1e9) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("timeout_s is ", timeout_s, "; expected a positive, finite number of seconds"));
}

// A failed pass fails the world: its peers stop waiting for this rank.
ringattn_status AbortOnFailure(ringattn_ring* ring, ringattn_status status) {
  if (status != RINGATTN_OK && ring != nullptr) {
    const std::string why = last_error;
    ringattn_ring_abort(ring, why.c_str());
    last_error = why;
  }
  return status;
}

// Rows of a rank's local tensors (local_batch x local_seqlen): q, O and dQ
// hold num_heads heads of each, k, v, dK and dV num_kv_heads, LSE num_heads
// values.
int64_t LocalRows(const ringattn_ring* ring) {
  const ringattn::Layout& layout = ring->attention->schedule().layout();
  return layout.local_batch() * layout.local_seqlen();
}

// A forward's inputs and results, for a backward on a ring that did not
// run it (ringattn_backward_from).
struct SavedForward {
  ringattn::RankTensor q, k, v, out;
  absl::Span<const float> lse;
};

// The backward of ringattn_backward (saved: null, after this ring's
// forward) and ringattn_backward_from: dQ, dK, dV into the caller's
// buffers, GPU rings on the GPU (the saved tensors and dO there too).
absl::Status Backward(ringattn_ring* ring, ringattn::RankTensor& dout, SavedForward* saved,
                      void* dq, int64_t dq_bytes, void* dk, int64_t dk_bytes, void* dv,
                      int64_t dv_bytes) {
  const auto load = [&] {
    return saved == nullptr
               ? absl::OkStatus()
               : ring->attention->LoadForward(saved->q, saved->k, saved->v, saved->out, saved->lse);
  };
  if (ring->device >= 0) {
    const int64_t rows = LocalRows(ring) * ring->head_dim * ringattn::DTypeBytes(dout.dtype);
    std::vector<DeviceInput> inputs = {{"dout", &dout}};
    std::vector<DeviceBuffer> buffers = {{"dq", dq, dq_bytes, rows * ring->num_heads},
                                         {"dk", dk, dk_bytes, rows * ring->num_kv_heads},
                                         {"dv", dv, dv_bytes, rows * ring->num_kv_heads}};
    if (saved != nullptr) {
      inputs.insert(inputs.end(),
                    {{"q", &saved->q}, {"k", &saved->k}, {"v", &saved->v}, {"out", &saved->out}});
      const int64_t lse_bytes = static_cast<int64_t>(saved->lse.size()) * 4;
      buffers.push_back({"lse", saved->lse.data(), lse_bytes, lse_bytes});
    }
    return RunOnDevice(ring, inputs, buffers, [&]() -> absl::Status {
      RETURN_IF_ERROR(load());
      return ring->attention->BackwardInto(dout, dq, dk, dv).status();
    });
  }
  RETURN_IF_ERROR(load());
  ASSIGN_OR_RETURN(ringattn::RankGrads grads, ring->attention->Backward(dout));
  RETURN_IF_ERROR(CopyOut("dq", grads.dq, dq, dq_bytes));
  RETURN_IF_ERROR(CopyOut("dk", grads.dk, dk, dk_bytes));
  return CopyOut("dv", grads.dv, dv, dv_bytes);
}

}  // namespace

extern "C" {

const char* ringattn_last_error(void) { return last_error.c_str(); }

ringattn_status ringattn_threads_world_create(int32_t world, double timeout_s,
                                              ringattn_world** out) {
  return Guard([&]() -> absl::Status {
    if (out == nullptr) return absl::InvalidArgumentError("out is NULL");
    RETURN_IF_ERROR(CheckWorld(world));
    RETURN_IF_ERROR(CheckTimeout(timeout_s));
    auto w = std::make_unique<ringattn_world>();
    w->threads = std::make_unique<ringattn::comm::ThreadWorld>(world, absl::Seconds(timeout_s));
    *out = w.release();
    return absl::OkStatus();
  });
}

ringattn_status ringattn_transport_world_create(int32_t world, int32_t rank,
                                                const ringattn_transport* transport,
                                                ringattn_world** out) {
  return Guard([&]() -> absl::Status {
    if (out == nullptr || transport == nullptr) {
      return absl::InvalidArgumentError("transport and out must not be NULL");
    }
    if (transport->start_send == nullptr || transport->start_recv == nullptr ||
        transport->wait == nullptr) {
      return absl::InvalidArgumentError(
          "the transport's start_send, start_recv and wait must not be NULL");
    }
    RETURN_IF_ERROR(CheckWorld(world));
    RETURN_IF_ERROR(CheckRank(rank, world));
    auto w = std::make_unique<ringattn_world>();
    w->single = std::make_unique<TransportCommunicator>(world, rank, *transport);
    *out = w.release();
    return absl::OkStatus();
  });
}

ringattn_status ringattn_nccl_unique_id(uint8_t* id, int64_t id_bytes) {
  return Guard([&]() -> absl::Status {
    if (id == nullptr || id_bytes != RINGATTN_NCCL_ID_BYTES) {
      return absl::InvalidArgumentError(absl::StrCat("id has room for ", id_bytes,
                                                     " bytes; expected RINGATTN_NCCL_ID_BYTES (",
                                                     RINGATTN_NCCL_ID_BYTES, ")"));
    }
    ASSIGN_OR_RETURN(const std::string unique, ringattn::comm::NewNcclUniqueId());
    RETURN_IF_ERROR(CheckBytes("id", id_bytes, static_cast<int64_t>(unique.size())));
    std::memcpy(id, unique.data(), unique.size());
    return absl::OkStatus();
  });
}

ringattn_status ringattn_nccl_world_create(int32_t world, int32_t rank, const uint8_t* id,
                                           int64_t id_bytes, int32_t device, double timeout_s,
                                           ringattn_world** out) {
  return Guard([&]() -> absl::Status {
    if (out == nullptr || id == nullptr) {
      return absl::InvalidArgumentError("id and out must not be NULL");
    }
    RETURN_IF_ERROR(CheckWorld(world));
    RETURN_IF_ERROR(CheckRank(rank, world));
    RETURN_IF_ERROR(CheckTimeout(timeout_s));
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess) {
      cudaGetLastError();
      devices = 0;
    }
    if (device < 0 || device >= devices) {
      return absl::InvalidArgumentError(
          absl::StrCat("device ", device, " does not exist; ", devices, " GPUs are visible"));
    }
    auto w = std::make_unique<ringattn_world>();
    w->device = device;
    RETURN_IF_ERROR(CudaCheck(cudaSetDevice(device), "selecting the GPU"));
    RETURN_IF_ERROR(CudaCheck(cudaStreamCreateWithFlags(&w->stream, cudaStreamNonBlocking),
                              "creating the compute stream"));
    ASSIGN_OR_RETURN(w->single,
                     ringattn::comm::CreateNcclCommunicatorWithId(
                         rank, world, {device, w->stream},
                         absl::string_view(reinterpret_cast<const char*>(id),
                                           static_cast<size_t>(std::max<int64_t>(id_bytes, 0))),
                         absl::Seconds(timeout_s)));
    *out = w.release();
    return absl::OkStatus();
  });
}

void ringattn_world_destroy(ringattn_world* world) { delete world; }

ringattn_status ringattn_world_synchronize(ringattn_world* world) {
  return Guard([&]() -> absl::Status {
    if (world == nullptr) return absl::InvalidArgumentError("world is NULL");
    return world->gpu() == nullptr ? absl::OkStatus() : world->gpu()->WaitForPasses();
  });
}

ringattn_status ringattn_world_set_async_passes(ringattn_world* world, int32_t async) {
  return Guard([&]() -> absl::Status {
    if (world == nullptr) return absl::InvalidArgumentError("world is NULL");
    if (world->gpu() == nullptr) {
      return absl::FailedPreconditionError(
          "this world runs the CPU backend, whose passes end with their work; asynchronous "
          "passes are for NCCL worlds");
    }
    if (async != 0 && async != 1) {
      return absl::InvalidArgumentError(absl::StrCat("async is ", async, "; expected 0 or 1"));
    }
    world->gpu()->SetDeferredSynchronize(async == 1);
    return absl::OkStatus();
  });
}

ringattn_status ringattn_ring_create(ringattn_world* world, int32_t rank, const ringattn_config* c,
                                     ringattn_ring** out) {
  return Guard([&]() -> absl::Status {
    if (world == nullptr || c == nullptr || out == nullptr) {
      return absl::InvalidArgumentError("world, config and out must not be NULL");
    }
    RETURN_IF_ERROR(CheckRank(rank, world->size()));
    if (world->single != nullptr && rank != world->single->rank()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "rank ", rank, ": this transport world holds rank ", world->single->rank(), " only"));
    }
    for (const auto& [name, pointer, count] :
         {std::tuple{"cu_seqlens", c->cu_seqlens, c->num_cu_seqlens},
          std::tuple{"key_lengths", c->key_lengths, c->num_key_lengths}}) {
      if (count < 0 || (count > 0 && pointer == nullptr)) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, ": ", count, " entries at ", pointer == nullptr ? "NULL" : "data",
                         "; expected a count >= 0 and, if positive, a pointer"));
      }
    }
    ringattn::RingAttentionConfig config;
    ASSIGN_OR_RETURN(config.layout.kind, LayoutOf(RawEnum(c->layout)));
    config.layout.world = c->world;
    config.layout.ring_size = c->ring_size;
    config.layout.stripe_width = c->stripe_width == 0 ? 1 : c->stripe_width;
    config.layout.kv_heads_per_group = c->kv_heads_per_group;
    config.mask.causal = c->causal != 0;
    config.mask.window_left = c->window_left;
    config.mask.window_right = c->window_right;
    config.mask.cu_seqlens.assign(c->cu_seqlens, c->cu_seqlens + c->num_cu_seqlens);
    config.mask.key_lengths.assign(c->key_lengths, c->key_lengths + c->num_key_lengths);
    config.softmax_scale = c->softmax_scale;
    const ringattn::AttentionShape shape{c->batch,     c->seqlen,       c->seqlen,
                                         c->num_heads, c->num_kv_heads, c->head_dim};
    auto ring = std::make_unique<ringattn_ring>();
    ring->comm = world->threads ? &world->threads->rank(rank) : world->single.get();
    if (world->device >= 0) {
      ringattn::cuda::CudaBackendOptions options;
      options.device = world->device;
      options.stream = world->stream;
      options.synchronous = false;  // NCCL orders transfers with the stream
      config.backend = ringattn::cuda::CudaBackendFactory([options](int) { return options; });
      ring->device = world->device;
      ring->compute = world->stream;
      RETURN_IF_ERROR(CudaCheck(cudaSetDevice(ring->device), "selecting the ring's GPU"));
      RETURN_IF_ERROR(CudaCheck(cudaEventCreateWithFlags(&ring->handoff, cudaEventDisableTiming),
                                "creating an event"));
    }
    ring->num_heads = c->num_heads;
    ring->num_kv_heads = c->num_kv_heads;
    ring->head_dim = c->head_dim;
    ASSIGN_OR_RETURN(ring->attention, ringattn::RingAttention::Create(*ring->comm, config, shape));
    const Fingerprint fingerprint = FingerprintOf(*c, config.layout.kind);
    ring->fingerprint.assign(fingerprint.begin(), fingerprint.end());
    *out = ring.release();
    return absl::OkStatus();
  });
}

void ringattn_ring_destroy(ringattn_ring* ring) { delete ring; }

void ringattn_ring_abort(ringattn_ring* ring, const char* reason) {
  if (ring == nullptr) return;
  ring->comm->Abort(absl::AbortedError(
      absl::StrCat("rank ", ring->comm->rank(), " failed: ", reason == nullptr ? "" : reason)));
}

int32_t ringattn_ring_device(const ringattn_ring* ring) {
  return ring == nullptr ? -1 : ring->device;
}

ringattn_status ringattn_ring_set_stream(ringattn_ring* ring, void* stream) {
  return Guard([&]() -> absl::Status {
    if (ring == nullptr) return absl::InvalidArgumentError("ring is NULL");
    if (ring->device < 0) {
      return absl::FailedPreconditionError(
          "this ring runs the CPU backend; a CUDA stream is for rings of an NCCL world");
    }
    ring->caller = static_cast<cudaStream_t>(stream);
    return absl::OkStatus();
  });
}

int64_t ringattn_ring_local_seqlen(const ringattn_ring* ring) {
  return ring == nullptr ? -1 : ring->attention->schedule().layout().local_seqlen();
}

int64_t ringattn_ring_local_batch(const ringattn_ring* ring) {
  return ring == nullptr ? -1 : ring->attention->schedule().layout().local_batch();
}

ringattn_status ringattn_ring_position_ids(const ringattn_ring* ring, int64_t* ids, int64_t count) {
  return Guard([&]() -> absl::Status {
    if (ring == nullptr) return absl::InvalidArgumentError("ring is NULL");
    const std::vector<int64_t> positions = ring->attention->PositionIds();
    ASSIGN_OR_RETURN(const int64_t bytes, BytesOfCount("ids", count, sizeof(int64_t)));
    return CopyOut("ids", positions, ids, bytes);
  });
}

ringattn_status ringattn_forward(ringattn_ring* ring, const ringattn_tensor* q,
                                 const ringattn_tensor* k, const ringattn_tensor* v, void* out,
                                 int64_t out_bytes, float* lse, int64_t lse_count) {
  return AbortOnFailure(
      ring, Guard([&]() -> absl::Status {
        if (ring == nullptr) return absl::InvalidArgumentError("ring is NULL");
        ASSIGN_OR_RETURN(ringattn::RankTensor tq, TensorOf("q", q));
        ASSIGN_OR_RETURN(ringattn::RankTensor tk, TensorOf("k", k));
        ASSIGN_OR_RETURN(ringattn::RankTensor tv, TensorOf("v", v));
        RETURN_IF_ERROR(CheckSameProblem(ring));
        ASSIGN_OR_RETURN(const int64_t lse_bytes, BytesOfCount("lse", lse_count, sizeof(float)));
        if (ring->device >= 0) {
          const int64_t stats = LocalRows(ring) * ring->num_heads;
          const int64_t out_need = stats * ring->head_dim * ringattn::DTypeBytes(tq.dtype);
          return RunOnDevice(
              ring, {{"q", &tq}, {"k", &tk}, {"v", &tv}},
              {{"out", out, out_bytes, out_need}, {"lse", lse, lse_bytes, stats * int64_t{4}}},
              [&] { return ring->attention->ForwardInto(tq, tk, tv, out, lse).status(); });
        }
        ASSIGN_OR_RETURN(ringattn::RankForward result, ring->attention->Forward(tq, tk, tv));
        RETURN_IF_ERROR(CopyOut("out", result.out, out, out_bytes));
        return CopyOut("lse", result.lse, lse, lse_bytes);
      }));
}

ringattn_status ringattn_backward(ringattn_ring* ring, const ringattn_tensor* dout, void* dq,
                                  int64_t dq_bytes, void* dk, int64_t dk_bytes, void* dv,
                                  int64_t dv_bytes) {
  return AbortOnFailure(ring, Guard([&]() -> absl::Status {
                          if (ring == nullptr) return absl::InvalidArgumentError("ring is NULL");
                          ASSIGN_OR_RETURN(ringattn::RankTensor tdout, TensorOf("dout", dout));
                          return Backward(ring, tdout, nullptr, dq, dq_bytes, dk, dk_bytes, dv,
                                          dv_bytes);
                        }));
}

ringattn_status ringattn_backward_from(ringattn_ring* ring, const ringattn_tensor* q,
                                       const ringattn_tensor* k, const ringattn_tensor* v,
                                       const ringattn_tensor* out, const float* lse,
                                       int64_t lse_count, const ringattn_tensor* dout, void* dq,
                                       int64_t dq_bytes, void* dk, int64_t dk_bytes, void* dv,
                                       int64_t dv_bytes) {
  return AbortOnFailure(
      ring, Guard([&]() -> absl::Status {
        if (ring == nullptr) return absl::InvalidArgumentError("ring is NULL");
        SavedForward saved;
        ASSIGN_OR_RETURN(saved.q, TensorOf("q", q));
        ASSIGN_OR_RETURN(saved.k, TensorOf("k", k));
        ASSIGN_OR_RETURN(saved.v, TensorOf("v", v));
        ASSIGN_OR_RETURN(saved.out, TensorOf("out", out));
        if (lse == nullptr) return absl::InvalidArgumentError("lse is NULL");
        const int64_t stats = LocalRows(ring) * ring->num_heads;
        ASSIGN_OR_RETURN(const int64_t lse_bytes, BytesOfCount("lse", lse_count, sizeof(float)));
        RETURN_IF_ERROR(CheckBytes("lse", lse_bytes, stats * int64_t{4}));
        saved.lse = absl::MakeConstSpan(lse, stats);
        ASSIGN_OR_RETURN(ringattn::RankTensor tdout, TensorOf("dout", dout));
        RETURN_IF_ERROR(CheckSameProblem(ring));
        return Backward(ring, tdout, &saved, dq, dq_bytes, dk, dk_bytes, dv, dv_bytes);
      }));
}

}  // extern "C"
