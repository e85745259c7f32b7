// GPU test (skips without a device): the ring driver over W virtual ranks on
// one GPU (one host thread each, ring buffers in managed memory moved by the
// thread communicator) with the CUDA backend equals the same ring on the CPU
// backend, forward (O, LSE) and backward (dQ, dK, dV), for every layout.
// float32 inputs (the correctness-first kernels, fp32 math): within 1e-5
// relative. bfloat16 inputs (the tensor-core kernels round P and dS to
// bf16 as FlashAttention does): within 2e-2 norm-relative.
#include "cuda/ring_backend.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "comm/cuda_communicator.h"
#include "comm/nccl_communicator.h"
#include "comm/thread_communicator.h"
#include "core/dtype_convert.h"
#include "core/layout.h"
#include "core/mask.h"
#include "core/ring_driver.h"
#include "core/schedule.h"
#include "core/status_macros.h"
#include "cpu_reference/attention.h"
#include "cpu_reference/cpu_backend.h"
#include "cuda/device.h"
#include "cuda/device_test_util.h"
#include "cuda/flash/forward.h"
#include "cuda/gpu_timeline.h"
#include "gtest/gtest.h"
#include "ringattn.h"
#include "tests/test_util.h"

namespace ringattn::cuda {
namespace {

using ::ringattn::testing::MaxRelError;
using ::ringattn::testing::RandomNormal;

struct RankResult {
  std::vector<uint8_t> out, dq, dk, dv;
  std::vector<float> lse;
};

// How the ranks run: the CPU backend, or CUDA backends moved by the host
// thread communicator (managed memory, synchronous), by device copies
// (asynchronous: compute and copies overlap) or by NCCL (one GPU each).
// kDeviceCopyMerged: kDeviceCopy with CudaBackendOptions::fresh_writes off.
enum class Mode { kCpu, kManagedThreads, kDeviceCopy, kDeviceCopyMerged, kNccl };

// Forward, backward and the results of one rank.
absl::Status RankBody(const Schedule& schedule, Communicator& comm, RankBackend& backend,
                      const std::vector<uint8_t>& dout, RankResult& res) {
  ASSIGN_OR_RETURN(RingRunStats fwd, RunRingForward(schedule, comm, backend));
  RETURN_IF_ERROR(backend.SetDout(dout));
  if (auto st = RunRingBackward(schedule, comm, backend, {.forward_kv = fwd.last_kv}); !st.ok()) {
    return st.status();
  }
  for (auto [dst, get] :
       {std::pair{&res.out, &RankBackend::Out}, std::pair{&res.dq, &RankBackend::Dq},
        std::pair{&res.dk, &RankBackend::Dk}, std::pair{&res.dv, &RankBackend::Dv}}) {
    ASSIGN_OR_RETURN(std::vector<uint8_t> x, (backend.*get)());
    *dst = std::move(x);
  }
  ASSIGN_OR_RETURN(std::vector<float> lse, backend.Lse());
  res.lse = std::move(lse);
  return absl::OkStatus();
}

// timelines: with device copies or NCCL, rank r marks its GPU work on
// (*timelines)[r] (CudaBackendOptions::timeline).
std::vector<RankResult> RunRing(const Schedule& schedule, const AttentionShape& s, DType dtype,
                                const std::vector<std::vector<uint8_t>>& q,
                                const std::vector<std::vector<uint8_t>>& k,
                                const std::vector<std::vector<uint8_t>>& v,
                                const std::vector<std::vector<uint8_t>>& dout, Mode mode,
                                std::vector<std::unique_ptr<GpuTimeline>>* timelines = nullptr) {
  const int world = schedule.layout().world();
  std::vector<RankResult> results(world);
  const double scale = DefaultSoftmaxScale(s.head_dim);
  const auto inputs = [&](int r) { return RankInputs{dtype, q[r], k[r], v[r]}; };
  if (mode == Mode::kCpu || mode == Mode::kManagedThreads) {
    const auto statuses =
        comm::ThreadWorld::Run(world, absl::Seconds(120), [&](Communicator& comm) -> absl::Status {
          const int r = comm.rank();
          absl::StatusOr<std::unique_ptr<RankBackend>> backend =
              mode == Mode::kCpu
                  ? CpuBackendFactory()(schedule, r, s, scale, inputs(r))
                  : CudaBackendFactory([](int) {
                      return CudaBackendOptions{.memory = RingBufferMemory::kManaged};
                    })(schedule, r, s, scale, inputs(r));
          if (!backend.ok()) return backend.status();
          return RankBody(schedule, comm, **backend, dout[r], results[r]);
        });
    for (int r = 0; r < world; ++r) {
      EXPECT_TRUE(statuses[r].ok()) << "rank " << r << ": " << statuses[r];
    }
    return results;
  }
  const int gpus = *DeviceCount();
  std::vector<comm::CudaPlacement> placements;
  for (int r = 0; r < world; ++r) {
    const int device = mode == Mode::kNccl ? r % gpus : 0;
    cudaStream_t stream = nullptr;
    cudaSetDevice(device);
    EXPECT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
    placements.push_back({device, stream});
  }
  std::unique_ptr<comm::DeviceCopyWorld> copies;
  std::unique_ptr<comm::NcclWorld> nccl;
  std::vector<Communicator*> comms;
  if (mode == Mode::kNccl) {
    absl::StatusOr<std::unique_ptr<comm::NcclWorld>> w =
        comm::NcclWorld::Create(placements, absl::Seconds(120));
    EXPECT_TRUE(w.ok()) << w.status();
    if (!w.ok()) return results;
    nccl = *std::move(w);
    for (int r = 0; r < world; ++r) comms.push_back(&nccl->rank(r));
  } else {
    absl::StatusOr<std::unique_ptr<comm::DeviceCopyWorld>> w =
        comm::DeviceCopyWorld::Create(placements, absl::Seconds(120));
    EXPECT_TRUE(w.ok()) << w.status();
    if (!w.ok()) return results;
    copies = *std::move(w);
    for (int r = 0; r < world; ++r) comms.push_back(&copies->rank(r));
  }
  std::vector<absl::Status> statuses(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      cudaSetDevice(placements[r].device);
      CudaBackendOptions o{.device = placements[r].device,
                           .stream = placements[r].stream,
                           .synchronous = false,
                           .fresh_writes = mode != Mode::kDeviceCopyMerged,
                           .timeline = timelines != nullptr ? (*timelines)[r].get() : nullptr};
      absl::StatusOr<std::unique_ptr<CudaRingBackend>> backend =
          CudaRingBackend::Create(schedule, r, s, scale, inputs(r), o);
      statuses[r] = backend.ok() ? RankBody(schedule, *comms[r], **backend, dout[r], results[r])
                                 : backend.status();
      if (!statuses[r].ok()) comms[r]->Abort(statuses[r]);
    });
  }
  for (std::thread& t : threads) t.join();
  for (int r = 0; r < world; ++r) {
    EXPECT_TRUE(statuses[r].ok()) << "rank " << r << ": " << statuses[r];
  }
  copies.reset();
  nccl.reset();
  for (const comm::CudaPlacement& p : placements) {
    cudaSetDevice(p.device);
    cudaStreamDestroy(p.stream);
  }
  return results;
}

// n N(0, 1) values in `dtype`'s bytes (seeded).
std::vector<uint8_t> RandomBytes(DType dtype, int64_t n, uint32_t seed) {
  return EncodeAll<double>(dtype, RandomNormal<double>(n, seed));
}

// A whole problem's random q, k, v and dO of shape `s` in `dtype`, drawn
// from seeds `seed` to `seed` + 3 in that order.
struct RandomInputs {
  RandomInputs(DType dtype, const AttentionShape& s, uint32_t seed)
      : dtype(dtype),
        q(RandomBytes(dtype, s.q_elements(), seed)),
        k(RandomBytes(dtype, s.kv_elements(), seed + 1)),
        v(RandomBytes(dtype, s.kv_elements(), seed + 2)),
        dout(RandomBytes(dtype, s.q_elements(), seed + 3)) {}
  // q, k, v as one rank's inputs.
  RankInputs rank() const { return {dtype, q, k, v}; }
  DType dtype;
  std::vector<uint8_t> q, k, v, dout;
};

// The causal schedule of `kind` on a world of one rank.
absl::StatusOr<Schedule> OneRankSchedule(LayoutKind kind, const AttentionShape& s) {
  return Schedule::Build({.kind = kind, .world = 1}, {.causal = true}, s);
}

// One pass (forward, or backward) of `backend` on a world of one rank.
absl::Status RunOneRankPass(const Schedule& schedule, RingBackend& backend, bool backward) {
  return comm::ThreadWorld::Run(1, absl::Seconds(60), [&](Communicator& comm) {
    return (backward ? RunRingBackward(schedule, comm, backend, {})
                     : RunRingForward(schedule, comm, backend))
        .status();
  })[0];
}

// How many of each label `timeline` marked since it was last read.
absl::StatusOr<std::vector<int>> MarkCounts(GpuTimeline& timeline,
                                            const std::vector<std::string>& labels) {
  ASSIGN_OR_RETURN(std::vector<GpuTimeline::Entry> entries, timeline.Read());
  std::vector<int> counts;
  for (const std::string& label : labels) {
    counts.push_back(static_cast<int>(std::count_if(
        entries.begin(), entries.end(), [&](const auto& e) { return e.label == label; })));
  }
  return counts;
}

double NormRel(const std::vector<double>& x, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    num += (x[i] - ref[i]) * (x[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

void Check(const LayoutSpec& spec, const MaskSpec& mask, const AttentionShape& s, DType dtype,
           Mode mode = Mode::kManagedThreads, Mode reference = Mode::kCpu) {
  SCOPED_TRACE(absl::StrCat(LayoutKindName(spec.kind), " W=", spec.world, " ", DTypeName(dtype),
                            " d", s.head_dim, " causal=", mask.causal));
  absl::StatusOr<Schedule> built = Schedule::Build(spec, mask, s);
  ASSERT_TRUE(built.ok()) << built.status();
  const Schedule& schedule = *built;
  const Layout& layout = schedule.layout();
  const auto shard = [&](int64_t n, uint32_t seed, int64_t token) {
    const std::vector<uint8_t> bytes = RandomBytes(dtype, n, seed);
    return *layout.Shard(absl::Span<const uint8_t>(bytes), token * DTypeBytes(dtype));
  };
  const auto q = shard(s.q_elements(), 1, s.num_heads * s.head_dim);
  const auto k = shard(s.kv_elements(), 2, s.num_kv_heads * s.head_dim);
  const auto v = shard(s.kv_elements(), 3, s.num_kv_heads * s.head_dim);
  const auto dout = shard(s.q_elements(), 4, s.num_heads * s.head_dim);
  const std::vector<RankResult> gpu = RunRing(schedule, s, dtype, q, k, v, dout, mode);
  const std::vector<RankResult> cpu = RunRing(schedule, s, dtype, q, k, v, dout, reference);
  const auto decode = [&](const std::vector<uint8_t>& x) { return DecodeAll<double>(dtype, x); };
  for (int r = 0; r < layout.world(); ++r) {
    SCOPED_TRACE(absl::StrCat("rank ", r));
    const char* names[] = {"out", "dq", "dk", "dv"};
    const std::vector<uint8_t> RankResult::*fields[] = {&RankResult::out, &RankResult::dq,
                                                        &RankResult::dk, &RankResult::dv};
    for (int i = 0; i < 4; ++i) {
      const std::vector<double> a = decode(gpu[r].*fields[i]), b = decode(cpu[r].*fields[i]);
      ASSERT_EQ(a.size(), b.size()) << names[i];
      if (dtype == DType::kFloat32) {
        EXPECT_LE(MaxRelError(a, b), 1e-5) << names[i];
      } else {
        EXPECT_LE(NormRel(a, b), 2e-2) << names[i];
      }
    }
    ASSERT_EQ(gpu[r].lse.size(), cpu[r].lse.size());
    double lse_error = 0;
    for (size_t i = 0; i < gpu[r].lse.size(); ++i) {
      if (std::isinf(cpu[r].lse[i])) {
        EXPECT_EQ(gpu[r].lse[i], cpu[r].lse[i]);
        continue;
      }
      lse_error = std::max(lse_error, double{std::abs(gpu[r].lse[i] - cpu[r].lse[i])});
    }
    EXPECT_LE(lse_error, dtype == DType::kFloat32 ? 1e-4 : 1e-2);
  }
}

struct Case {
  LayoutSpec layout;
  MaskSpec mask;
  AttentionShape shape;
  DType dtype;
};

std::vector<Case> Cases() {
  const AttentionShape s{1, 512, 512, 4, 2, 128};
  const MaskSpec causal{.causal = true};
  std::vector<Case> cases;
  for (DType dtype : {DType::kFloat32, DType::kBFloat16}) {
    cases.push_back({{.kind = LayoutKind::kRing, .world = 2}, causal, s, dtype});
    cases.push_back({{.kind = LayoutKind::kZigzag, .world = 4}, causal, s, dtype});
    cases.push_back(
        {{.kind = LayoutKind::kStripe, .world = 4, .stripe_width = 16}, causal, s, dtype});
    cases.push_back(
        {{.kind = LayoutKind::kLlama3, .world = 4, .kv_heads_per_group = 1}, causal, s, dtype});
  }
  // llama3 with rings of one (each rank its own batch row, every head at
  // once on its own K/V, not a step per group), and one rank with documents.
  for (DType dtype : {DType::kFloat32, DType::kBFloat16}) {
    cases.push_back(
        {{.kind = LayoutKind::kLlama3, .world = 2, .ring_size = 1, .kv_heads_per_group = 1},
         causal,
         {2, 512, 512, 4, 2, 128},
         dtype});
  }
  cases.push_back({{.kind = LayoutKind::kLlama3, .world = 1, .kv_heads_per_group = 1},
                   {.causal = true, .cu_seqlens = {0, 1, 17, 200, 201, 463, 509}},
                   {1, 509, 509, 4, 2, 128},
                   DType::kBFloat16});
  // Without GQA (the warp-specialized backward then stores fresh dK/dV rows
  // and a step whose launches store every row skips its zeroing): zigzag,
  // and a ring with a window whose off-diagonal blocks have key tiles no
  // query meets.
  cases.push_back({{.kind = LayoutKind::kZigzag, .world = 4},
                   causal,
                   {1, 512, 512, 4, 4, 128},
                   DType::kBFloat16});
  cases.push_back({{.kind = LayoutKind::kRing, .world = 2},
                   {.causal = true, .window_left = 100},
                   {1, 512, 512, 4, 4, 64},
                   DType::kBFloat16});
  // Non-causal with a sliding window, GQA 4:1, head_dim 64, batch 2, W = 8.
  cases.push_back({{.kind = LayoutKind::kZigzag, .world = 8},
                   {.window_left = 100, .window_right = 20},
                   {2, 512, 512, 4, 1, 64},
                   DType::kBFloat16});
  // Documents (varlen).
  cases.push_back({{.kind = LayoutKind::kZigzag, .world = 4},
                   {.causal = true, .cu_seqlens = {0, 128, 256, 512}},
                   s,
                   DType::kBFloat16});
  // Documents of any length (uneven shards with padding rows, issue #18),
  // and the balanced layout (one long document split, short ones whole).
  const std::vector<int64_t> uneven = {0, 1, 17, 200, 201, 463, 509};
  const AttentionShape u{1, 509, 509, 4, 2, 128};
  for (LayoutKind kind :
       {LayoutKind::kZigzag, LayoutKind::kStripe, LayoutKind::kLlama3, LayoutKind::kBalanced}) {
    for (DType dtype : {DType::kFloat32, DType::kBFloat16}) {
      cases.push_back(
          {{.kind = kind, .world = 3}, {.causal = true, .cu_seqlens = uneven}, u, dtype});
    }
  }
  return cases;
}

TEST(CudaRingBackendTest, CasesAreValidSchedules) {  // runs without a GPU too
  for (const Case& c : Cases()) {
    absl::StatusOr<Schedule> schedule = Schedule::Build(c.layout, c.mask, c.shape);
    EXPECT_TRUE(schedule.ok()) << LayoutKindName(c.layout.kind) << ": " << schedule.status();
  }
}

TEST(CudaRingBackendTest, VirtualRanksMatchTheCpuRing) {
  if (absl::StatusOr<int> n = DeviceCount(); !n.ok()) {
    GTEST_SKIP() << "no CUDA device: " << n.status().message();
  }
  for (const Case& c : Cases()) Check(c.layout, c.mask, c.shape, c.dtype);
}

// A backward from the forward's out and lse (RingAttention::LoadForward:
// the CUDA backend's SetForwardResult) on a RingAttention that did not run
// the forward gives the gradients of the one that did: fp32 to 1e-6 (D
// reads the given fp32 O, equal to the state; the rest is the order of the
// backward's atomic adds), bf16 within the kernel's error (D from the
// rounded O instead of the fp32 state).
TEST(CudaRingBackendTest, BackwardFromAGivenForwardMatchesTheRingsOwn) {
  if (absl::StatusOr<int> n = DeviceCount(); !n.ok()) {
    GTEST_SKIP() << "no CUDA device: " << n.status().message();
  }
  const AttentionShape s{1, 256, 256, 4, 2, 64};
  const LayoutSpec spec{.kind = LayoutKind::kZigzag, .world = 2};
  const MaskSpec mask{.causal = true};
  const absl::StatusOr<Schedule> schedule = Schedule::Build(spec, mask, s);
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  const Layout& layout = schedule->layout();
  const int64_t rows = layout.local_seqlen();
  for (DType dtype : {DType::kFloat32, DType::kBFloat16}) {
    SCOPED_TRACE(DTypeName(dtype));
    const auto shard = [&](int64_t n, uint32_t seed, int64_t heads) {
      const std::vector<uint8_t> bytes = RandomBytes(dtype, n, seed);
      return *layout.Shard(absl::Span<const uint8_t>(bytes),
                           heads * s.head_dim * DTypeBytes(dtype));
    };
    const auto q = shard(s.q_elements(), 1, s.num_heads),
               k = shard(s.kv_elements(), 2, s.num_kv_heads),
               v = shard(s.kv_elements(), 3, s.num_kv_heads),
               dout = shard(s.q_elements(), 4, s.num_heads);
    RingAttentionConfig config;
    config.layout = spec;
    config.mask = mask;
    config.backend = CudaBackendFactory(
        [](int) { return CudaBackendOptions{.memory = RingBufferMemory::kManaged}; });
    std::vector<RankGrads> own(2), given(2);
    const auto statuses =
        comm::ThreadWorld::Run(2, absl::Seconds(120), [&](Communicator& comm) -> absl::Status {
          const int r = comm.rank();
          const auto tensor = [&](const std::vector<uint8_t>& x, int64_t heads) {
            return DenseRankTensor(dtype, x, rows, heads, s.head_dim);
          };
          ASSIGN_OR_RETURN(std::unique_ptr<RingAttention> first,
                           RingAttention::Create(comm, config, s));
          ASSIGN_OR_RETURN(RankForward forward,
                           first->Forward(tensor(q[r], s.num_heads), tensor(k[r], s.num_kv_heads),
                                          tensor(v[r], s.num_kv_heads)));
          ASSIGN_OR_RETURN(own[r], first->Backward(tensor(dout[r], s.num_heads)));
          ASSIGN_OR_RETURN(std::unique_ptr<RingAttention> second,
                           RingAttention::Create(comm, config, s));
          ASSIGN_OR_RETURN(
              given[r],
              second->Backward(tensor(q[r], s.num_heads), tensor(k[r], s.num_kv_heads),
                               tensor(v[r], s.num_kv_heads), tensor(forward.out, s.num_heads),
                               forward.lse, tensor(dout[r], s.num_heads)));
          return absl::OkStatus();
        });
    for (int r = 0; r < 2; ++r) {
      ASSERT_TRUE(statuses[r].ok()) << "rank " << r << ": " << statuses[r];
      for (auto field : {&RankGrads::dq, &RankGrads::dk, &RankGrads::dv}) {
        const std::vector<double> a = DecodeAll<double>(dtype, given[r].*field),
                                  b = DecodeAll<double>(dtype, own[r].*field);
        if (dtype == DType::kFloat32) {
          EXPECT_LE(MaxRelError(a, b), 1e-6) << "rank " << r;
        } else {
          EXPECT_LE(NormRel(a, b), 1e-2) << "rank " << r;
        }
      }
    }
  }
}

// A forward's O leaves the fp32 state only when a caller asks: WriteOutputs
// converts it straight into the caller's device buffer (the same bytes as
// Out()), the backend holds no O in the input dtype until Out() made one
// (its memory report counts it from then); after a reset there is no O to
// give, and after a given forward result both give the given O back (as
// the CPU backend does).
TEST(CudaRingBackendTest, OutputsLeaveTheStateWhenAsked) {
  if (absl::StatusOr<int> n = DeviceCount(); !n.ok()) {
    GTEST_SKIP() << "no CUDA device: " << n.status().message();
  }
  const AttentionShape s{1, 192, 192, 4, 2, 64};
  const absl::StatusOr<Schedule> schedule = OneRankSchedule(LayoutKind::kRing, s);
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  const DType dtype = DType::kBFloat16;
  const RandomInputs in(dtype, s, 1);
  absl::StatusOr<std::unique_ptr<CudaRingBackend>> backend =
      CudaRingBackend::Create(*schedule, 0, s, DefaultSoftmaxScale(s.head_dim), in.rank());
  ASSERT_TRUE(backend.ok()) << backend.status();
  CudaRingBackend& b = **backend;
  const int64_t out_bytes = s.q_elements() * 2, lse_count = s.batch * s.num_heads * s.seqlen_q;
  EXPECT_EQ(b.Out().status().code(), absl::StatusCode::kFailedPrecondition);
  const absl::Status status = RunOneRankPass(*schedule, b, /*backward=*/false);
  ASSERT_TRUE(status.ok()) << status;
  const MemoryReport before = b.memory();

  uint8_t* out = testing::ToDevice(std::vector<uint8_t>(out_bytes, 0));
  float* lse = testing::ToDevice(std::vector<float>(lse_count, 0.0f));
  ASSERT_TRUE(b.WriteOutputs(out, lse).ok());
  const std::vector<uint8_t> written = testing::ToHost(out, out_bytes);
  const std::vector<float> written_lse = testing::ToHost(lse, lse_count);
  EXPECT_EQ(b.memory().theoretical, before.theoretical) << "WriteOutputs holds no O of its own";
  absl::StatusOr<std::vector<uint8_t>> host = b.Out();
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_EQ(*host, written);
  EXPECT_EQ(*b.Lse(), written_lse);
  EXPECT_EQ(b.memory().theoretical, before.theoretical + out_bytes) << "Out()'s O counted";
  const std::vector<double> o = DecodeAll<double>(dtype, written);
  EXPECT_GT(*std::max_element(o.begin(), o.end()), 0.1) << "O was written";

  ASSERT_TRUE(b.Restart().ok());
  EXPECT_EQ(b.Out().status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(b.WriteOutputs(out, lse).code(), absl::StatusCode::kFailedPrecondition);
  std::vector<uint8_t> given = *host;
  given[0] ^= 1;  // not the forward's O
  ASSERT_TRUE(b.SetForwardResult(given, written_lse).ok());
  ASSERT_TRUE(b.WriteOutputs(out, lse).ok());
  EXPECT_EQ(testing::ToHost(out, out_bytes), given);
  EXPECT_EQ(*b.Out(), given);
  EXPECT_EQ(b.WriteOutputs(nullptr, lse).code(), absl::StatusCode::kInvalidArgument);
  cudaFree(out);
  cudaFree(lse);
}

// Reload leaves the state reset to the forward's first step: a forward
// after new inputs starts from a reset state (its O equals a fresh
// backend's, not merged with the last pass's), and a backward from a given
// forward result launches no reset (it reads the given O and overwrites
// LSE; zeroing the fp32 O cost it 4 bytes a query element). The given
// result in GPU memory is read in place (no copy of LSE on the timeline; a
// forward after the next Reload gives its own LSE, not the given buffer's),
// in host memory copied; the backward's dQ is zeroed by D's launch, no fill
// of its own: the gradients equal the fresh backend's either way.
TEST(CudaRingBackendTest, ReloadLeavesTheStateResetToTheForward) {
  if (absl::StatusOr<int> n = DeviceCount(); !n.ok()) {
    GTEST_SKIP() << "no CUDA device: " << n.status().message();
  }
  const AttentionShape s{1, 256, 256, 4, 2, 64};
  const absl::StatusOr<Schedule> schedule = OneRankSchedule(LayoutKind::kZigzag, s);
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  const DType dtype = DType::kBFloat16;
  // The first inputs' dO is not used; the backward's is the second's.
  const RandomInputs first(dtype, s, 1), second(dtype, s, 4);
  const std::vector<uint8_t>& dout = second.dout;
  GpuTimeline timeline;
  const double scale = DefaultSoftmaxScale(s.head_dim);
  absl::StatusOr<std::unique_ptr<CudaRingBackend>> reloaded =
      CudaRingBackend::Create(*schedule, 0, s, scale, first.rank(), {.timeline = &timeline});
  absl::StatusOr<std::unique_ptr<CudaRingBackend>> fresh =
      CudaRingBackend::Create(*schedule, 0, s, scale, second.rank());
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  const auto forward = [&](CudaRingBackend& b) -> absl::StatusOr<std::vector<uint8_t>> {
    RETURN_IF_ERROR(RunOneRankPass(*schedule, b, /*backward=*/false));
    return b.Out();
  };
  const std::string kReset = "initializing the state", kLseCopy = "copying lse",
                    kGradZeros = "zeroing gradients";
  ASSERT_TRUE(forward(**reloaded).ok());
  ASSERT_TRUE(timeline.Read().ok());
  ASSERT_TRUE((*reloaded)->Reload(second.rank()).ok());
  const absl::StatusOr<std::vector<uint8_t>> got = forward(**reloaded), want = forward(**fresh);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(want.ok()) << want.status();
  EXPECT_EQ(*got, *want) << "the forward after Reload starts from a reset state";
  EXPECT_EQ(*MarkCounts(timeline, {kReset}), std::vector<int>{1}) << "one reset, in the forward";

  const absl::StatusOr<std::vector<float>> lse = (*fresh)->Lse();
  ASSERT_TRUE(lse.ok()) << lse.status();
  ASSERT_TRUE((*fresh)->SetDout(dout).ok());
  const absl::Status own = RunOneRankPass(*schedule, **fresh, /*backward=*/true);
  ASSERT_TRUE(own.ok()) << own;
  for (const bool on_gpu : {false, true}) {
    SCOPED_TRACE(on_gpu ? "the forward result in GPU memory" : "in host memory");
    uint8_t* gpu_out = on_gpu ? testing::ToDevice(*want) : nullptr;
    float* gpu_lse = on_gpu ? testing::ToDevice(*lse) : nullptr;
    const absl::Span<const uint8_t> given_out =
        on_gpu ? absl::MakeConstSpan(gpu_out, want->size()) : absl::MakeConstSpan(*want);
    const absl::Span<const float> given_lse =
        on_gpu ? absl::MakeConstSpan(gpu_lse, lse->size()) : absl::MakeConstSpan(*lse);
    ASSERT_TRUE((*reloaded)->Reload(second.rank()).ok());
    ASSERT_TRUE((*reloaded)->SetForwardResult(given_out, given_lse).ok());
    const absl::StatusOr<std::vector<float>> read_lse = (*reloaded)->Lse();
    ASSERT_TRUE(read_lse.ok()) << read_lse.status();
    EXPECT_EQ(*read_lse, *lse) << "LSE is the given one";
    ASSERT_TRUE((*reloaded)->SetDout(dout).ok());
    const absl::Status from_given = RunOneRankPass(*schedule, **reloaded, /*backward=*/true);
    ASSERT_TRUE(from_given.ok()) << from_given;
    // (A copy from the host synchronizes and marks nothing; from GPU memory
    // it was a stream-ordered copy, marked.)
    EXPECT_EQ(*MarkCounts(timeline, {kReset, kLseCopy, kGradZeros}), (std::vector<int>{0, 0, 0}))
        << "a backward from a given forward result resets nothing, copies no LSE on the "
           "stream, and zeroes dQ inside D's launch";
    for (auto grad : {&RankBackend::Dq, &RankBackend::Dk, &RankBackend::Dv}) {
      const absl::StatusOr<std::vector<uint8_t>> a = ((**reloaded).*grad)(),
                                                 b = ((**fresh).*grad)();
      ASSERT_TRUE(a.ok() && b.ok());
      EXPECT_LE(NormRel(DecodeAll<double>(dtype, *a), DecodeAll<double>(dtype, *b)), 1e-2);
    }
    if (on_gpu) {
      // The given buffer is not the state: a later forward's LSE is its own.
      ASSERT_EQ(cudaMemset(gpu_lse, 0, lse->size() * sizeof(float)), cudaSuccess);
      ASSERT_TRUE((*reloaded)->Reload(second.rank()).ok());
      ASSERT_TRUE(forward(**reloaded).ok());
      EXPECT_EQ(*(*reloaded)->Lse(), *lse);
    }
    cudaFree(gpu_out);
    cudaFree(gpu_lse);
  }
}

// A backward step whose launches store every row of its dK/dV buffer (ring
// size 1: one causal task over the block; bf16 d64 without GQA, on Hopper's
// warp-specialized kernel) is not zeroed first; with fresh writes off (every
// launch adds) or GQA it is. The gradients are the same.
TEST(CudaRingBackendTest, BackwardStepsThatStoreEveryRowAreNotZeroed) {
  if (absl::StatusOr<int> n = DeviceCount(); !n.ok()) {
    GTEST_SKIP() << "no CUDA device: " << n.status().message();
  }
  const DType dtype = DType::kBFloat16;
  for (const int64_t kv_heads : {4, 2}) {
    const AttentionShape s{1, 256, 256, 4, kv_heads, 64};
    SCOPED_TRACE(absl::StrCat("kv heads ", kv_heads));
    const absl::StatusOr<Schedule> schedule = OneRankSchedule(LayoutKind::kZigzag, s);
    ASSERT_TRUE(schedule.ok()) << schedule.status();
    const RandomInputs in(dtype, s, 1);
    std::vector<std::vector<double>> grads[2];
    int zeroings[2] = {0, 0};
    for (const bool fresh : {true, false}) {
      GpuTimeline timeline;
      absl::StatusOr<std::unique_ptr<CudaRingBackend>> backend =
          CudaRingBackend::Create(*schedule, 0, s, DefaultSoftmaxScale(s.head_dim), in.rank(),
                                  {.fresh_writes = fresh, .timeline = &timeline});
      ASSERT_TRUE(backend.ok()) << backend.status();
      ASSERT_TRUE(RunOneRankPass(*schedule, **backend, /*backward=*/false).ok());
      ASSERT_TRUE((*backend)->SetDout(in.dout).ok());
      ASSERT_TRUE(RunOneRankPass(*schedule, **backend, /*backward=*/true).ok());
      const absl::StatusOr<std::vector<int>> counts =
          MarkCounts(timeline, {"zeroing the step's dK/dV"});
      ASSERT_TRUE(counts.ok()) << counts.status();
      zeroings[fresh] = (*counts)[0];
      for (auto grad : {&RankBackend::Dq, &RankBackend::Dk, &RankBackend::Dv}) {
        const absl::StatusOr<std::vector<uint8_t>> g = ((**backend).*grad)();
        ASSERT_TRUE(g.ok()) << g.status();
        grads[fresh].push_back(DecodeAll<double>(dtype, *g));
      }
    }
    EXPECT_EQ(zeroings[false], 1);
    EXPECT_EQ(zeroings[true], kv_heads == s.num_heads && flash::HopperDevice() ? 0 : 1);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(grads[true][i], grads[false][i]) << "gradient " << i;
  }
}

// zigzag at W = 4 (virtual ranks, device copies), bf16 d64 without GQA:
// on Hopper (whose backward stores every row it has) rank 0 zeroes no
// step's dK/dV (its every step meets the whole block), rank 3 only its
// first (an earlier rank's block, whose unwritten half no partial sum
// sets); its next two such steps leave that half to the arriving sum. With
// every launch adding (other GPUs) each of the four steps zeroes.
TEST(CudaRingBackendTest, ZigzagZeroesUnwrittenRowsOnlyWhereNoSumArrives) {
  if (absl::StatusOr<int> n = DeviceCount(); !n.ok()) {
    GTEST_SKIP() << "no CUDA device: " << n.status().message();
  }
  const DType dtype = DType::kBFloat16;
  const AttentionShape s{1, 1024, 1024, 4, 4, 64};
  const absl::StatusOr<Schedule> schedule =
      Schedule::Build({.kind = LayoutKind::kZigzag, .world = 4}, {.causal = true}, s);
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  std::vector<std::vector<uint8_t>> q, k, v, dout;
  for (int r = 0; r < 4; ++r) {
    q.push_back(RandomBytes(dtype, s.q_elements() / 4, 10 + r));
    k.push_back(RandomBytes(dtype, s.kv_elements() / 4, 20 + r));
    v.push_back(RandomBytes(dtype, s.kv_elements() / 4, 30 + r));
    dout.push_back(RandomBytes(dtype, s.q_elements() / 4, 40 + r));
  }
  std::vector<std::unique_ptr<GpuTimeline>> timelines;
  for (int r = 0; r < 4; ++r) timelines.push_back(std::make_unique<GpuTimeline>());
  RunRing(*schedule, s, dtype, q, k, v, dout, Mode::kDeviceCopy, &timelines);
  std::vector<int> zeroings;
  for (int r = 0; r < 4; ++r) {
    const absl::StatusOr<std::vector<int>> counts =
        MarkCounts(*timelines[r], {"zeroing the step's dK/dV"});
    ASSERT_TRUE(counts.ok()) << counts.status();
    zeroings.push_back((*counts)[0]);
  }
  if (flash::HopperDevice()) {
    EXPECT_EQ(zeroings[0], 0);
    EXPECT_EQ(zeroings[3], 1);
  } else {
    EXPECT_EQ(zeroings, (std::vector<int>{4, 4, 4, 4}));
  }
}

TEST(CudaRingBackendTest, BadInputsAreErrors) {
  const AttentionShape s{1, 64, 64, 2, 1, 64};
  const Schedule schedule = *Schedule::Build({.kind = LayoutKind::kRing, .world = 2}, {}, s);
  std::vector<uint8_t> q(32 * 2 * 64 * 8), kv(32 * 64 * 8);
  // float64 is CPU-only; checked before any device is touched.
  absl::StatusOr<std::unique_ptr<CudaRingBackend>> b =
      CudaRingBackend::Create(schedule, 0, s, 0.125, {DType::kFloat64, q, kv, kv});
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(b.status().message().find("float64"), std::string::npos) << b.status();
  // Wrong byte sizes.
  std::vector<uint8_t> small(10);
  b = CudaRingBackend::Create(schedule, 0, s, 0.125, {DType::kFloat32, small, small, small});
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(b.status().message().find("q has 10 bytes"), std::string::npos) << b.status();
  // A rank outside the world.
  b = CudaRingBackend::Create(schedule, 5, s, 0.125, {DType::kFloat32, q, kv, kv});
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ringattn::cuda

namespace ringattn::cuda {
namespace {

// The same cases with device communicators: asynchronous backends whose
// compute overlaps the copies (events order them), W virtual ranks on GPU 0.
TEST(CudaRingBackendTest, DeviceCopyRanksMatchTheCpuRing) {
  if (absl::StatusOr<int> n = DeviceCount(); !n.ok()) {
    GTEST_SKIP() << "no CUDA device: " << n.status().message();
  }
  for (const Case& c : Cases()) Check(c.layout, c.mask, c.shape, c.dtype, Mode::kDeviceCopy);
}

// Global tensors of one problem (input dtype) and, decoded, the fp64 oracle's
// outputs on the full sequence.
struct Problem {
  AttentionShape shape;
  MaskSpec mask;
  DType dtype;
  std::vector<uint8_t> q, k, v, dout;
  std::vector<double> out, dq, dk, dv;
};

Problem MakeProblem(const AttentionShape& s, const MaskSpec& mask_spec, DType dtype) {
  Problem p{s, mask_spec, dtype};
  RandomInputs in(dtype, s, 11);
  p.q = std::move(in.q);
  p.k = std::move(in.k);
  p.v = std::move(in.v);
  p.dout = std::move(in.dout);
  const auto decode = [&](const std::vector<uint8_t>& x) { return DecodeAll<double>(dtype, x); };
  const std::vector<double> q = decode(p.q), k = decode(p.k), v = decode(p.v),
                            dout = decode(p.dout);
  const Mask mask = *Mask::Create(mask_spec, s.batch, s.seqlen_q, s.seqlen_k);
  const double scale = DefaultSoftmaxScale(s.head_dim);
  const TensorStrides qs = DenseStrides(s.seqlen_q, s.num_heads, s.head_dim);
  const TensorStrides ks = DenseStrides(s.seqlen_k, s.num_kv_heads, s.head_dim);
  cpu::AttentionOutput<double> fwd =
      *cpu::NaiveForward<double>(s, {q, qs}, {k, ks}, {v, ks}, mask, scale);
  cpu::AttentionGrads<double> grads = *cpu::NaiveBackward<double>(
      s, {q, qs}, {k, ks}, {v, ks}, {fwd.out, qs}, fwd.lse, {dout, qs}, mask, scale);
  p.out = std::move(fwd.out);
  p.dq = std::move(grads.dq);
  p.dk = std::move(grads.dk);
  p.dv = std::move(grads.dv);
  return p;
}

// Norm-relative errors of out, dq, dk, dv of `spec` (device-copy virtual
// ranks on GPU 0, gathered back to the full sequence) against the oracle.
std::array<double, 4> RingErrors(const LayoutSpec& spec, const Problem& p) {
  const AttentionShape& s = p.shape;
  absl::StatusOr<Schedule> schedule = Schedule::Build(spec, p.mask, s);
  EXPECT_TRUE(schedule.ok()) << schedule.status();
  if (!schedule.ok()) return {};
  const Layout& layout = schedule->layout();
  const int64_t elem = DTypeBytes(p.dtype);
  const int64_t q_token = s.num_heads * s.head_dim * elem;
  const int64_t kv_token = s.num_kv_heads * s.head_dim * elem;
  const auto shard = [&](const std::vector<uint8_t>& x, int64_t token) {
    return *layout.Shard(absl::Span<const uint8_t>(x), token);
  };
  const std::vector<RankResult> ranks =
      RunRing(*schedule, s, p.dtype, shard(p.q, q_token), shard(p.k, kv_token),
              shard(p.v, kv_token), shard(p.dout, q_token), Mode::kDeviceCopy);
  std::array<double, 4> errors{};
  const std::vector<uint8_t> RankResult::*fields[] = {&RankResult::out, &RankResult::dq,
                                                      &RankResult::dk, &RankResult::dv};
  const std::vector<double>* want[] = {&p.out, &p.dq, &p.dk, &p.dv};
  for (int i = 0; i < 4; ++i) {
    std::vector<std::vector<uint8_t>> shards;
    for (const RankResult& r : ranks) shards.push_back(r.*fields[i]);
    absl::StatusOr<std::vector<uint8_t>> global =
        layout.Unshard(shards, i < 2 ? q_token : kv_token);
    EXPECT_TRUE(global.ok()) << global.status();
    if (!global.ok()) return {};
    errors[i] = NormRel(DecodeAll<double>(p.dtype, *global), *want[i]);
  }
  return errors;
}

// Every launch merging into the state and adding into dK/dV
// (CudaBackendOptions::fresh_writes off, ring_bench --fresh_writes=false)
// gives what the fresh writes of a pass's first launches give.
TEST(CudaRingBackendTest, MergedWritesMatchFreshOnes) {
  if (absl::StatusOr<int> n = DeviceCount(); !n.ok()) {
    GTEST_SKIP() << "no CUDA device: " << n.status().message();
  }
  for (const Case& c : Cases()) {
    Check(c.layout, c.mask, c.shape, c.dtype, Mode::kDeviceCopy, Mode::kDeviceCopyMerged);
  }
}

// bf16 and fp16: every layout's ring error against the fp64 oracle on the
// full sequence is at most 1.05x the error of one kernel call on the same
// sequence (a ring of one rank), forward and backward, W = 2, 4, 8 virtual
// ranks, a ring size below W, and documents (varlen).
TEST(CudaRingBackendTest, LowPrecisionRingErrorIsTheOneKernelError) {
  if (absl::StatusOr<int> n = DeviceCount(); !n.ok()) {
    GTEST_SKIP() << "no CUDA device: " << n.status().message();
  }
  struct Study {
    AttentionShape shape;
    MaskSpec mask;
    std::vector<LayoutSpec> layouts;
  };
  const std::vector<Study> studies = {
      {{2, 1024, 1024, 4, 2, 128},
       {.causal = true},
       {{.kind = LayoutKind::kRing, .world = 2},
        {.kind = LayoutKind::kRing, .world = 8},
        {.kind = LayoutKind::kZigzag, .world = 2},
        {.kind = LayoutKind::kZigzag, .world = 4},
        {.kind = LayoutKind::kZigzag, .world = 8},
        {.kind = LayoutKind::kZigzag, .world = 8, .ring_size = 4},
        {.kind = LayoutKind::kStripe, .world = 4, .stripe_width = 16},
        {.kind = LayoutKind::kStripe, .world = 8, .stripe_width = 1},
        {.kind = LayoutKind::kLlama3, .world = 4, .kv_heads_per_group = 1},
        {.kind = LayoutKind::kLlama3, .world = 8}}},
      {{1, 1024, 1024, 4, 2, 128},
       {.causal = true, .cu_seqlens = {0, 128, 512, 1024}},
       {{.kind = LayoutKind::kRing, .world = 4},
        {.kind = LayoutKind::kZigzag, .world = 4},
        {.kind = LayoutKind::kLlama3, .world = 8, .kv_heads_per_group = 1}}},
  };
  const char* names[] = {"out", "dq", "dk", "dv"};
  for (DType dtype : {DType::kBFloat16, DType::kFloat16}) {
    for (const Study& study : studies) {
      const Problem p = MakeProblem(study.shape, study.mask, dtype);
      const std::array<double, 4> one = RingErrors({.kind = LayoutKind::kRing, .world = 1}, p);
      for (const LayoutSpec& spec : study.layouts) {
        SCOPED_TRACE(absl::StrCat(DTypeName(dtype), " ", LayoutKindName(spec.kind),
                                  " W=", spec.world, " R=", spec.ring_size,
                                  p.mask.cu_seqlens.empty() ? "" : " varlen"));
        const std::array<double, 4> ring = RingErrors(spec, p);
        for (int i = 0; i < 4; ++i) {
          EXPECT_GT(one[i], 0) << names[i];
          EXPECT_LE(ring[i], 1.05 * one[i]) << names[i] << ": one call " << one[i];
          std::printf("%s %s W=%d R=%d%s %s: ring %.4e one call %.4e (%.3fx)\n",
                      std::string(DTypeName(dtype)).c_str(),
                      std::string(LayoutKindName(spec.kind)).c_str(), spec.world, spec.ring_size,
                      p.mask.cu_seqlens.empty() ? "" : " varlen", names[i], ring[i], one[i],
                      ring[i] / one[i]);
        }
      }
    }
  }
}

// NCCL on two GPUs (one thread each) equals the virtual-rank run on one GPU.
TEST(CudaRingBackendTest, NcclOnTwoGpusMatchesVirtualRanks) {
  absl::StatusOr<int> n = DeviceCount();
  if (!n.ok() || *n < 2) GTEST_SKIP() << "needs two CUDA devices";
  const AttentionShape s{1, 512, 512, 4, 2, 128};
  for (DType dtype : {DType::kFloat32, DType::kBFloat16}) {
    for (LayoutKind kind :
         {LayoutKind::kRing, LayoutKind::kZigzag, LayoutKind::kStripe, LayoutKind::kLlama3}) {
      LayoutSpec spec{.kind = kind, .world = 2};
      if (kind == LayoutKind::kLlama3) spec.kv_heads_per_group = 1;
      Check(spec, {.causal = true}, s, dtype, Mode::kNccl, Mode::kDeviceCopy);
    }
  }
}

}  // namespace
}  // namespace ringattn::cuda
