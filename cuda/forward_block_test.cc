// GPU test (the GPU part skips without a device): every block task of a
// rank, run by the forward kernel into the fp32 state on the GPU and then by
// the backward kernel into fp32 dQ and per-step dK/dV, equals the CPU
// blocked kernel in double on the same (dtype-rounded) inputs, within 1e-5.
#include "cuda/forward_block.h"

#include <cuda_runtime.h>

#include <vector>

#include "core/dtype_convert.h"
#include "core/layout.h"
#include "core/mask.h"
#include "core/schedule.h"
#include "cpu_reference/blocked_attention.h"
#include "cuda/backward_delta.h"
#include "cuda/device.h"
#include "cuda/device_test_util.h"
#include "cuda/element_type.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace ringattn::cuda {
namespace {

using ::ringattn::cuda::testing::ToDevice;
using ::ringattn::testing::MaxRelError;
using ::ringattn::testing::RandomNormal;

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
  SCOPED_TRACE(
      absl::StrCat(LayoutKindName(c.layout.kind), " d", c.head_dim, " ", DTypeName(c.dtype)));
  const Layout layout = *Layout::Create(c.layout, s.batch, s.seqlen_q);
  const Mask mask = *Mask::Create(c.mask, s.batch, s.seqlen_q, s.seqlen_k);
  const Schedule schedule = *Schedule::Create(layout, mask, s.num_kv_heads);
  const auto round = [&](std::vector<double> x) {
    return DecodeAll<double>(c.dtype, EncodeAll<double>(c.dtype, absl::MakeConstSpan(x)));
  };
  const std::vector<double> q = round(RandomNormal<double>(s.q_elements(), 1));
  const std::vector<double> k = round(RandomNormal<double>(s.kv_elements(), 2));
  const std::vector<double> v = round(RandomNormal<double>(s.kv_elements(), 3));
  const auto q_shards = *layout.Shard(absl::MakeConstSpan(q), s.num_heads * s.head_dim);
  const auto k_shards = *layout.Shard(absl::MakeConstSpan(k), s.num_kv_heads * s.head_dim);
  const auto v_shards = *layout.Shard(absl::MakeConstSpan(v), s.num_kv_heads * s.head_dim);
  const ElementType type = ElementTypeOf(c.dtype).value();
  const auto device_input = [&](const std::vector<double>& x) {
    return ToDevice(EncodeAll<double>(c.dtype, absl::MakeConstSpan(x)));
  };
  const double scale = DefaultSoftmaxScale(s.head_dim);
  const int64_t rows = layout.local_seqlen();
  const std::vector<double> dout = round(RandomNormal<double>(s.q_elements(), 4));
  const auto dout_shards = *layout.Shard(absl::MakeConstSpan(dout), s.num_heads * s.head_dim);
  // The kernel arguments of `task` over device tensors of one rank.
  const auto TaskArgs = [&](const BlockTask& task, const void* d_q, const void* d_k,
                            const void* d_v, float* d_o, float* d_lse, const int64_t* d_limits) {
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
    return a;
  };
  const TensorStrides qs = DenseStrides(rows, s.num_heads, s.head_dim);
  const TensorStrides ks = DenseStrides(rows, s.num_kv_heads, s.head_dim);
  for (int rank = 0; rank < layout.world(); ++rank) {
    const cpu::BlockProblem problem{layout.local_batch(),
                                    layout.BatchRange(rank).first,
                                    rows,
                                    rows,
                                    s.num_heads,
                                    s.num_kv_heads,
                                    s.head_dim,
                                    scale,
                                    &mask};
    // The CPU reference first, then the same tasks on the GPU.
    cpu::AttentionOutput<double> want =
        cpu::EmptyOutput<double>(layout.local_batch(), rows, s.num_heads, s.head_dim);
    for (int step = 0; step < schedule.num_steps(); ++step) {
      const int source = schedule.KvSource(rank, step);
      const std::vector<BlockTask> tasks = *schedule.Tasks(rank, step);
      for (const BlockTask& task : tasks) {
        const absl::Status cpu =
            cpu::BlockForward<double>(task, problem, {q_shards[rank], qs}, {k_shards[source], ks},
                                      {v_shards[source], ks}, &want);
        ASSERT_TRUE(cpu.ok()) << cpu;
      }
    }
    // Backward on the CPU: dQ at home; dK/dV per step (the visiting shard).
    const std::vector<double> dout_shard = dout_shards[rank];
    const std::vector<double> delta = cpu::BackwardDelta<double>(
        want.out, dout_shard, layout.local_batch(), rows, s.num_heads, s.head_dim);
    std::vector<double> want_dq(q_shards[rank].size(), 0.0);
    std::vector<std::vector<double>> want_dk(schedule.num_steps()), want_dv(schedule.num_steps());
    for (int step = 0; step < schedule.num_steps(); ++step) {
      const int source = schedule.KvSource(rank, step);
      want_dk[step].assign(k_shards[source].size(), 0.0);
      want_dv[step].assign(k_shards[source].size(), 0.0);
      const std::vector<BlockTask> tasks = *schedule.Tasks(rank, step);
      for (const BlockTask& task : tasks) {
        const absl::Status cpu = cpu::BlockBackward<double>(
            task, problem, {q_shards[rank], qs}, {k_shards[source], ks}, {v_shards[source], ks},
            {dout_shard, qs}, want.lse, delta, {absl::MakeSpan(want_dq), qs},
            {absl::MakeSpan(want_dk[step]), ks}, {absl::MakeSpan(want_dv[step]), ks});
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
        const ForwardBlockArgs a = TaskArgs(task, d_q, d_k, d_v, d_o, d_lse, d_limits);
        ASSERT_EQ(LaunchForwardBlock(a, nullptr), cudaSuccess);
      }
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      cudaFree(d_k);
      cudaFree(d_v);
    }
    cudaMemcpy(o.data(), d_o, o.size() * 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(lse.data(), d_lse, lse.size() * 4, cudaMemcpyDeviceToHost);
    EXPECT_LE(MaxRelError(o, want.out), 1e-5) << "rank " << rank;
    EXPECT_LE(MaxRelError(lse, want.lse), 1e-5) << "rank " << rank;

    // Backward on the GPU from its own fp32 state.
    uint8_t* d_dout = device_input(dout_shard);
    float* d_delta = ToDevice(std::vector<float>(lse.size()));
    float* d_dq = ToDevice(std::vector<float>(q_shards[rank].size()));
    ASSERT_EQ(LaunchBackwardDelta(type, d_dout, ElementType::kFloat32, d_o, d_delta,
                                  layout.local_batch(), rows, s.num_heads, s.head_dim, nullptr),
              cudaSuccess);
    for (int step = 0; step < schedule.num_steps(); ++step) {
      const int source = schedule.KvSource(rank, step);
      uint8_t* d_k = device_input(k_shards[source]);
      uint8_t* d_v = device_input(v_shards[source]);
      float* d_dk = ToDevice(std::vector<float>(k_shards[source].size()));
      float* d_dv = ToDevice(std::vector<float>(k_shards[source].size()));
      const std::vector<BlockTask> tasks = *schedule.Tasks(rank, step);
      for (const BlockTask& task : tasks) {
        BackwardBlockArgs a;
        a.task = TaskArgs(task, d_q, d_k, d_v, d_o, d_lse, d_limits);
        a.dout = d_dout;
        a.lse = d_lse;
        a.delta = d_delta;
        a.dq = d_dq;
        a.dk = d_dk;
        a.dv = d_dv;
        ASSERT_EQ(LaunchBackwardBlock(a, nullptr), cudaSuccess);
      }
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      std::vector<float> dk(k_shards[source].size()), dv(dk.size());
      cudaMemcpy(dk.data(), d_dk, dk.size() * 4, cudaMemcpyDeviceToHost);
      cudaMemcpy(dv.data(), d_dv, dv.size() * 4, cudaMemcpyDeviceToHost);
      EXPECT_LE(MaxRelError(dk, want_dk[step]), 1e-5) << "rank " << rank << " step " << step;
      EXPECT_LE(MaxRelError(dv, want_dv[step]), 1e-5) << "rank " << rank << " step " << step;
      for (void* p : {static_cast<void*>(d_k), static_cast<void*>(d_v), static_cast<void*>(d_dk),
                      static_cast<void*>(d_dv)}) {
        cudaFree(p);
      }
    }
    std::vector<float> dq(q_shards[rank].size());
    cudaMemcpy(dq.data(), d_dq, dq.size() * 4, cudaMemcpyDeviceToHost);
    EXPECT_LE(MaxRelError(dq, want_dq), 1e-5) << "rank " << rank;
    for (void* p : {static_cast<void*>(d_o), static_cast<void*>(d_lse), static_cast<void*>(d_q),
                    static_cast<void*>(d_limits), static_cast<void*>(d_dout),
                    static_cast<void*>(d_delta), static_cast<void*>(d_dq)}) {
      cudaFree(p);
    }
  }
}

TEST(ForwardBlockTest, ForwardAndBackwardMatchTheCpuBlockedKernel) {
  // The CPU reference runs everywhere; the GPU part skips without a device.
  for (int64_t d : {64, 128, 256}) {
    Check({{.kind = LayoutKind::kZigzag, .world = 4}, {.causal = true}, d, DType::kFloat32});
  }
  Check({{.kind = LayoutKind::kStripe, .world = 4, .stripe_width = 2},
         {.causal = true, .window_left = 20, .key_lengths = {90, 61}},
         64,
         DType::kBFloat16});
  Check({{.kind = LayoutKind::kRing, .world = 3},
         {.window_left = 9, .window_right = 5},
         128,
         DType::kFloat16});
  Check({{.kind = LayoutKind::kLlama3, .world = 1}, {.causal = true}, 64, DType::kFloat32});
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
