// GPU test (skips without a device): every block task of a rank, run by the
// forward kernel into the fp32 state on the GPU, equals the CPU blocked
// kernel in double on the same (dtype-rounded) inputs, within 1e-5.
#include "cuda/forward_block.h"

#include <cuda_runtime.h>

#include <vector>

#include "core/layout.h"
#include "core/mask.h"
#include "core/schedule.h"
#include "cpu_reference/blocked_attention.h"
#include "cpu_reference/internal/convert.h"
#include "cuda/device.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace ringattn::cuda {
namespace {

using ::ringattn::testing::MaxRelError;
using ::ringattn::testing::RandomNormal;

template <typename T>
T* ToDevice(const std::vector<T>& x) {
  T* d = nullptr;
  EXPECT_EQ(cudaMalloc(&d, std::max<size_t>(x.size(), 1) * sizeof(T)), cudaSuccess);
  cudaMemcpy(d, x.data(), x.size() * sizeof(T), cudaMemcpyHostToDevice);
  return d;
}

DeviceRun Run(const PositionRun& r) {
  return {r.base, r.length, r.stride, r.group, r.group_stride};
}

struct Case {
  LayoutSpec layout;
  MaskSpec mask;
  int64_t head_dim;
  DType dtype;
};

void Check(const Case& c) {
  const AttentionShape s{2, 96, 96, 4, 2, c.head_dim};
  SCOPED_TRACE(absl::StrCat(LayoutKindName(c.layout.kind), " d", c.head_dim, " ",
                            DTypeName(c.dtype)));
  const Layout layout = *Layout::Create(c.layout, s.batch, s.seqlen_q);
  const Mask mask = *Mask::Create(c.mask, s.batch, s.seqlen_q, s.seqlen_k);
  const Schedule schedule = *Schedule::Create(layout, mask, s.num_kv_heads);
  const auto round = [&](std::vector<double> x) {
    return cpu::internal::DecodeAll<double>(
        c.dtype, cpu::internal::EncodeAll<double>(c.dtype, absl::MakeConstSpan(x)));
  };
  const std::vector<double> q = round(RandomNormal<double>(s.q_elements(), 1));
  const std::vector<double> k = round(RandomNormal<double>(s.kv_elements(), 2));
  const std::vector<double> v = round(RandomNormal<double>(s.kv_elements(), 3));
  const auto q_shards = *layout.Shard(absl::MakeConstSpan(q), s.num_heads * s.head_dim);
  const auto k_shards = *layout.Shard(absl::MakeConstSpan(k), s.num_kv_heads * s.head_dim);
  const auto v_shards = *layout.Shard(absl::MakeConstSpan(v), s.num_kv_heads * s.head_dim);
  const ElementType type = c.dtype == DType::kBFloat16  ? ElementType::kBFloat16
                           : c.dtype == DType::kFloat16 ? ElementType::kFloat16
                                                        : ElementType::kFloat32;
  const auto device_input = [&](const std::vector<double>& x) {
    return ToDevice(cpu::internal::EncodeAll<double>(c.dtype, absl::MakeConstSpan(x)));
  };
  const double scale = DefaultSoftmaxScale(s.head_dim);
  const int64_t rows = layout.local_seqlen();
  const TensorStrides qs = DenseStrides(rows, s.num_heads, s.head_dim);
  const TensorStrides ks = DenseStrides(rows, s.num_kv_heads, s.head_dim);
  for (int rank = 0; rank < layout.world(); ++rank) {
    const cpu::BlockProblem problem{layout.local_batch(),
                                    layout.BatchRange(rank).first,
                                    rows, rows, s.num_heads, s.num_kv_heads,
                                    s.head_dim, scale, &mask};
    // The CPU reference first, then the same tasks on the GPU.
    cpu::AttentionOutput<double> want =
        cpu::EmptyOutput<double>(layout.local_batch(), rows, s.num_heads, s.head_dim);
    for (int step = 0; step < schedule.num_steps(); ++step) {
      const int source = schedule.KvSource(rank, step);
      const std::vector<BlockTask> tasks = *schedule.Tasks(rank, step);
      for (const BlockTask& task : tasks) {
        const absl::Status cpu = cpu::BlockForward<double>(
            task, problem, {q_shards[rank], qs}, {k_shards[source], ks},
            {v_shards[source], ks}, &want);
        ASSERT_TRUE(cpu.ok()) << cpu;
      }
    }
    if (!DeviceCount().ok()) continue;
    std::vector<float> o(want.out.size(), 0.f), lse(want.lse.size(), -INFINITY);
    float* d_o = ToDevice(o);
    float* d_lse = ToDevice(lse);
    uint8_t* d_q = device_input(q_shards[rank]);
    std::vector<int64_t> limits;
    for (int64_t b = 0; b < layout.local_batch(); ++b) {
      limits.push_back(mask.KeyLimit(layout.BatchRange(rank).first + b));
    }
    int64_t* d_limits = ToDevice(limits);
    for (int step = 0; step < schedule.num_steps(); ++step) {
      const int source = schedule.KvSource(rank, step);
      uint8_t* d_k = device_input(k_shards[source]);
      uint8_t* d_v = device_input(v_shards[source]);
      const std::vector<BlockTask> tasks = *schedule.Tasks(rank, step);
      for (const BlockTask& task : tasks) {
        ForwardBlockArgs a;
        a.dtype = type;
        a.q = d_q;
        a.k = d_k;
        a.v = d_v;
        a.state_o = d_o;
        a.state_lse = d_lse;
        a.batch = layout.local_batch();
        a.q_rows = a.k_rows = rows;
        a.num_heads = s.num_heads;
        a.num_kv_heads = s.num_kv_heads;
        a.head_dim = s.head_dim;
        a.q_row = task.q_row;
        a.k_row = task.k_row;
        a.q_pos = Run(task.q);
        a.k_pos = Run(task.k);
        a.kv_head_begin = task.kv_head_begin;
        a.kv_head_end = task.kv_head_end;
        a.min_delta = mask.min_delta();
        a.max_delta = mask.max_delta();
        a.key_limit = d_limits;
        const auto [doc_begin, doc_end] = mask.DocumentBounds(task.q.first());
        a.doc_begin = doc_begin;
        a.doc_end = doc_end;
        a.softmax_scale = static_cast<float>(scale);
        ASSERT_EQ(LaunchForwardBlock(a, nullptr), cudaSuccess);
      }
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      cudaFree(d_k);
      cudaFree(d_v);
    }
    cudaMemcpy(o.data(), d_o, o.size() * 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(lse.data(), d_lse, lse.size() * 4, cudaMemcpyDeviceToHost);
    for (void* p : {static_cast<void*>(d_o), static_cast<void*>(d_lse),
                    static_cast<void*>(d_q), static_cast<void*>(d_limits)}) {
      cudaFree(p);
    }
    EXPECT_LE(MaxRelError(o, want.out), 1e-5) << "rank " << rank;
    EXPECT_LE(MaxRelError(lse, want.lse), 1e-5) << "rank " << rank;
  }
}

TEST(ForwardBlockTest, MatchesTheCpuBlockedKernel) {
  // The CPU reference runs everywhere; the GPU part skips without a device.
  for (int64_t d : {64, 128, 256}) {
    Check({{.kind = LayoutKind::kZigzag, .world = 4}, {.causal = true}, d,
           DType::kFloat32});
  }
  Check({{.kind = LayoutKind::kStripe, .world = 4, .stripe_width = 2},
         {.causal = true, .window_left = 20, .key_lengths = {90, 61}}, 64,
         DType::kBFloat16});
  Check({{.kind = LayoutKind::kRing, .world = 3},
         {.window_left = 9, .window_right = 5}, 128, DType::kFloat16});
  Check({{.kind = LayoutKind::kLlama3, .world = 1}, {.causal = true}, 64,
         DType::kFloat32});
  if (absl::StatusOr<int> n = DeviceCount(); !n.ok()) {
    GTEST_SKIP() << "GPU part skipped: " << n.status().message();
  }
}

TEST(ForwardBlockTest, RejectsBadArguments) {
  ForwardBlockArgs a;
  a.head_dim = 512;
  a.num_heads = a.num_kv_heads = 1;
  a.kv_head_end = 1;
  EXPECT_EQ(LaunchForwardBlock(a, nullptr), cudaErrorInvalidValue);
}

}  // namespace
}  // namespace ringattn::cuda
