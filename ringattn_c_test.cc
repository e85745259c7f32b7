// The C ABI end to end: W ranks on W threads of this process, each through
// ringattn_c.h only; outputs and gradients against the fp64 oracle, and
// bad arguments as error codes with messages.
#include "ringattn_c.h"

#include <cuda_runtime_api.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "comm/thread_communicator.h"
#include "core/mask.h"
#include "cpu_reference/attention.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/c_abi_test_util.h"
#include "tests/test_util.h"

namespace ringattn {
namespace {

using ::ringattn::testing::CTransport;
using ::ringattn::testing::HaveGpu;
using ::ringattn::testing::MaxRelError;
using ::ringattn::testing::NcclWorldOfOne;
using ::ringattn::testing::RandomNormal;
using ::testing::HasSubstr;

struct Problem {
  ringattn_layout layout;
  int world;
  int64_t seqlen, num_heads, num_kv_heads, head_dim;
  bool causal;
  int64_t window_left;
  std::vector<int64_t> cu_seqlens;
  // One transport world per rank (ringattn_transport_world_create) over a
  // C++ ThreadWorld, as a process group would carry it, instead of the
  // threads world.
  bool transport = false;
};

// Global dense tensors (1, seqlen, heads, head_dim) of one problem.
struct Global {
  std::vector<float> q, k, v, dout, out, lse, dq, dk, dv;
};

ringattn_tensor Local(const std::vector<float>& x, int64_t rows, int64_t heads, int64_t dim) {
  return {x.data(),
          static_cast<int64_t>(x.size() * sizeof(float)),
          RINGATTN_FLOAT32,
          0,
          rows * heads * dim,
          heads * dim,
          dim};
}

// Runs every rank through the C ABI and gathers O, LSE, dQ, dK, dV.
void RunRing(const Problem& p, Global* g) {
  const int64_t s = p.seqlen, d = p.head_dim, hq = p.num_heads, hk = p.num_kv_heads;
  ringattn_world* world = nullptr;
  ASSERT_EQ(ringattn_threads_world_create(p.world, 60.0, &world), RINGATTN_OK)
      << ringattn_last_error();
  ringattn_config c{};
  c.layout = p.layout;
  c.world = p.world;
  c.causal = p.causal;
  c.window_left = p.window_left;
  c.window_right = -1;
  c.cu_seqlens = p.cu_seqlens.empty() ? nullptr : p.cu_seqlens.data();
  c.num_cu_seqlens = static_cast<int64_t>(p.cu_seqlens.size());
  c.batch = 1;
  c.seqlen = s;
  c.num_heads = hq;
  c.num_kv_heads = hk;
  c.head_dim = d;
  g->out.assign(s * hq * d, 0);
  g->lse.assign(hq * s, 0);
  g->dq.assign(s * hq * d, 0);
  g->dk.assign(s * hk * d, 0);
  g->dv.assign(s * hk * d, 0);
  std::vector<std::string> errors(p.world);
  std::vector<std::thread> threads;
  comm::ThreadWorld network(p.world, absl::Seconds(60));
  for (int r = 0; r < p.world; ++r) {
    threads.emplace_back([&, r] {
      // The rank's own world over the transport, or the shared threads world.
      CTransport transport{&network.rank(r)};
      const ringattn_transport callbacks = transport.Callbacks();
      ringattn_world* rank_world = world;
      if (p.transport &&
          ringattn_transport_world_create(p.world, r, &callbacks, &rank_world) != RINGATTN_OK) {
        errors[r] = ringattn_last_error();
        return;
      }
      const std::unique_ptr<ringattn_world, void (*)(ringattn_world*)> own(
          p.transport ? rank_world : nullptr, ringattn_world_destroy);
      ringattn_ring* ring = nullptr;
      if (ringattn_ring_create(rank_world, r, &c, &ring) != RINGATTN_OK) {
        errors[r] = ringattn_last_error();
        return;
      }
      const int64_t rows = ringattn_ring_local_seqlen(ring);
      std::vector<int64_t> ids(rows);
      ringattn_ring_position_ids(ring, ids.data(), rows);
      // Shard: local row i holds global position ids[i] (-1: padding, zeros).
      const auto shard = [&](const std::vector<float>& x, int64_t heads) {
        std::vector<float> local(rows * heads * d, 0);
        for (int64_t i = 0; i < rows; ++i) {
          if (ids[i] < 0) continue;
          std::copy_n(&x[ids[i] * heads * d], heads * d, &local[i * heads * d]);
        }
        return local;
      };
      const std::vector<float> q = shard(g->q, hq), k = shard(g->k, hk), v = shard(g->v, hk),
                               dout = shard(g->dout, hq);
      const ringattn_tensor tq = Local(q, rows, hq, d), tk = Local(k, rows, hk, d),
                            tv = Local(v, rows, hk, d), tdout = Local(dout, rows, hq, d);
      std::vector<float> out(rows * hq * d), lse(hq * rows), dq(rows * hq * d), dk(rows * hk * d),
          dv(rows * hk * d);
      const auto bytes = [](const std::vector<float>& x) {
        return static_cast<int64_t>(x.size() * sizeof(float));
      };
      if (ringattn_forward(ring, &tq, &tk, &tv, out.data(), bytes(out), lse.data(),
                           static_cast<int64_t>(lse.size())) != RINGATTN_OK ||
          ringattn_backward(ring, &tdout, dq.data(), bytes(dq), dk.data(), bytes(dk), dv.data(),
                            bytes(dv)) != RINGATTN_OK) {
        errors[r] = ringattn_last_error();
        ringattn_ring_destroy(ring);
        return;
      }
      for (int64_t i = 0; i < rows; ++i) {  // unshard
        if (ids[i] < 0) continue;
        std::copy_n(&out[i * hq * d], hq * d, &g->out[ids[i] * hq * d]);
        std::copy_n(&dq[i * hq * d], hq * d, &g->dq[ids[i] * hq * d]);
        std::copy_n(&dk[i * hk * d], hk * d, &g->dk[ids[i] * hk * d]);
        std::copy_n(&dv[i * hk * d], hk * d, &g->dv[ids[i] * hk * d]);
        for (int64_t h = 0; h < hq; ++h) g->lse[h * s + ids[i]] = lse[h * rows + i];
      }
      ringattn_ring_destroy(ring);
    });
  }
  for (std::thread& t : threads) t.join();
  ringattn_world_destroy(world);
  for (int r = 0; r < p.world; ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
}

void CheckAgainstOracle(const Problem& p) {
  SCOPED_TRACE(::testing::Message() << "layout " << p.layout << " W=" << p.world);
  const int64_t s = p.seqlen, d = p.head_dim;
  const AttentionShape shape{1, s, s, p.num_heads, p.num_kv_heads, d};
  Global g;
  g.q = RandomNormal<float>(s * p.num_heads * d, 1);
  g.k = RandomNormal<float>(s * p.num_kv_heads * d, 2);
  g.v = RandomNormal<float>(s * p.num_kv_heads * d, 3);
  g.dout = RandomNormal<float>(s * p.num_heads * d, 4);
  RunRing(p, &g);
  const std::vector<double> q(g.q.begin(), g.q.end()), k(g.k.begin(), g.k.end()),
      v(g.v.begin(), g.v.end()), dout(g.dout.begin(), g.dout.end());
  const Mask mask = *Mask::Create(
      {.causal = p.causal, .window_left = p.window_left, .cu_seqlens = p.cu_seqlens}, 1, s, s);
  const TensorStrides qs = DenseStrides(s, p.num_heads, d), ks = DenseStrides(s, p.num_kv_heads, d);
  const double scale = 1 / std::sqrt(static_cast<double>(d));
  const cpu::AttentionOutput<double> o =
      *cpu::NaiveForward<double>(shape, {q, qs}, {k, ks}, {v, ks}, mask, scale);
  const cpu::AttentionGrads<double> grads = *cpu::NaiveBackward<double>(
      shape, {q, qs}, {k, ks}, {v, ks}, {o.out, qs}, o.lse, {dout, qs}, mask, scale);
  EXPECT_LE(MaxRelError(g.out, o.out), 1e-5);
  EXPECT_LE(MaxRelError(g.lse, o.lse), 1e-5);
  EXPECT_LE(MaxRelError(g.dq, grads.dq), 1e-5);
  EXPECT_LE(MaxRelError(g.dk, grads.dk), 1e-5);
  EXPECT_LE(MaxRelError(g.dv, grads.dv), 1e-5);
}

TEST(RingattnCTest, EveryLayoutMatchesTheOracle) {
  CheckAgainstOracle({RINGATTN_LAYOUT_ZIGZAG, 4, 64, 4, 2, 16, true, -1, {}});
  CheckAgainstOracle({RINGATTN_LAYOUT_RING, 2, 48, 2, 2, 8, false, -1, {}});
  CheckAgainstOracle({RINGATTN_LAYOUT_STRIPE, 4, 64, 2, 1, 8, true, 9, {}});
  CheckAgainstOracle({RINGATTN_LAYOUT_LLAMA3, 2, 40, 4, 2, 8, true, -1, {0, 7, 30, 40}});
  // Documents of any length: uneven shards with padding rows.
  CheckAgainstOracle({RINGATTN_LAYOUT_BALANCED, 3, 101, 2, 1, 8, true, -1, {0, 1, 40, 41, 101}});
  CheckAgainstOracle({RINGATTN_LAYOUT_ZIGZAG, 3, 101, 2, 2, 8, true, 5, {0, 1, 40, 41, 101}});
}

// One world per rank over a transport the caller implements (here C++
// communicators; in Python a torch.distributed process group).
TEST(RingattnCTest, TransportWorldsMatchTheOracle) {
  CheckAgainstOracle({RINGATTN_LAYOUT_ZIGZAG, 4, 64, 4, 2, 16, true, -1, {}, true});
  CheckAgainstOracle({RINGATTN_LAYOUT_LLAMA3, 2, 40, 4, 2, 8, true, -1, {0, 7, 30, 40}, true});
  CheckAgainstOracle(
      {RINGATTN_LAYOUT_STRIPE, 3, 101, 2, 1, 8, true, -1, {0, 1, 40, 41, 101}, true});
}

// A rank whose forward fails aborts through the transport: its peers fail
// at once with its reason instead of waiting out the timeout.
TEST(RingattnCTest, TransportFailureReachesThePeers) {
  constexpr int kWorld = 3;
  comm::ThreadWorld network(kWorld, absl::Seconds(60));
  ringattn_config c{};
  c.layout = RINGATTN_LAYOUT_RING;
  c.world = kWorld;
  c.causal = 1;
  c.window_left = c.window_right = -1;
  c.batch = 1;
  c.seqlen = 24;
  c.num_heads = c.num_kv_heads = 1;
  c.head_dim = 4;
  std::vector<std::string> errors(kWorld);
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int r = 0; r < kWorld; ++r) {
    threads.emplace_back([&, r] {
      CTransport transport{&network.rank(r)};
      const ringattn_transport callbacks = transport.Callbacks();
      ringattn_world* world = nullptr;
      ringattn_ring* ring = nullptr;
      ASSERT_EQ(ringattn_transport_world_create(kWorld, r, &callbacks, &world), RINGATTN_OK);
      ASSERT_EQ(ringattn_ring_create(world, r, &c, &ring), RINGATTN_OK) << ringattn_last_error();
      std::vector<float> x(8 * 4, 1.f), out(8 * 4), lse(8);
      ringattn_tensor t{x.data(), static_cast<int64_t>(x.size() * 4), RINGATTN_FLOAT32, 0, 32, 4,
                        4};
      ringattn_tensor bad = t;
      bad.bytes = 4;  // rank 1's q is too small
      if (ringattn_forward(ring, r == 1 ? &bad : &t, &t, &t, out.data(), 128, lse.data(), 8) !=
          RINGATTN_OK) {
        errors[r] = ringattn_last_error();
      }
      ringattn_ring_destroy(ring);
      ringattn_world_destroy(world);
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_THAT(errors[1], HasSubstr("q"));
  for (int r : {0, 2}) EXPECT_THAT(errors[r], HasSubstr("q needs 32 elements")) << "rank " << r;
}

// Ranks that describe different problems get an error naming the field,
// before any attention message (whose sizes would not match).
TEST(RingattnCTest, RanksWithDifferentProblemsAreErrors) {
  constexpr int kWorld = 2;
  ringattn_world* world = nullptr;
  ASSERT_EQ(ringattn_threads_world_create(kWorld, 10.0, &world), RINGATTN_OK);
  std::vector<std::string> errors(kWorld);
  std::vector<std::thread> threads;
  for (int r = 0; r < kWorld; ++r) {
    threads.emplace_back([&, r] {
      ringattn_config c{};
      c.layout = RINGATTN_LAYOUT_RING;
      c.world = kWorld;
      c.window_left = c.window_right = -1;
      c.batch = 1;
      c.seqlen = r == 0 ? 16 : 10;  // rank 1 has 5 rows, not 8
      c.num_heads = c.num_kv_heads = 1;
      c.head_dim = 4;
      ringattn_ring* ring = nullptr;
      ASSERT_EQ(ringattn_ring_create(world, r, &c, &ring), RINGATTN_OK);
      const int64_t rows = c.seqlen / kWorld;
      std::vector<float> x(rows * 4, 1.f), out(rows * 4), lse(rows);
      const ringattn_tensor t{x.data(), rows * 16, RINGATTN_FLOAT32, 0, rows * 4, 4, 4};
      // The first rank to see the difference fails it; the other may
      // instead get its abort, which carries the same reason.
      EXPECT_NE(ringattn_forward(ring, &t, &t, &t, out.data(), rows * 16, lse.data(), rows),
                RINGATTN_OK);
      errors[r] = ringattn_last_error();
      ringattn_ring_destroy(ring);
    });
  }
  for (std::thread& t : threads) t.join();
  ringattn_world_destroy(world);
  for (const std::string& error : errors) {
    EXPECT_THAT(error,
                ::testing::AnyOf(HasSubstr("problem differs from rank 0's in seqlen (10 vs 16)"),
                                 HasSubstr("problem differs from rank 1's in seqlen (16 vs 10)")));
  }
}

// A one-head, 16-token, d8 problem of `layout` over `world` ranks.
ringattn_config SmallConfig(ringattn_layout layout, int world) {
  ringattn_config c{};
  c.layout = layout;
  c.world = world;
  c.batch = 1;
  c.seqlen = 16;
  c.num_heads = c.num_kv_heads = 1;
  c.head_dim = 8;
  c.window_left = c.window_right = -1;
  return c;
}

// A one-rank causal problem of `seqlen` tokens, `heads` query and
// `kv_heads` key/value heads of `head_dim`.
ringattn_config OneRankConfig(ringattn_layout layout, int64_t seqlen, int64_t heads,
                              int64_t kv_heads, int64_t head_dim) {
  ringattn_config c = SmallConfig(layout, 1);
  c.causal = 1;
  c.seqlen = seqlen;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = head_dim;
  return c;
}

TEST(RingattnCTest, BadArgumentsAreErrorsWithMessages) {
  ringattn_world* world = nullptr;
  const ringattn_transport no_wait{nullptr, CTransport::Send, CTransport::Recv, nullptr, nullptr};
  EXPECT_EQ(ringattn_transport_world_create(2, 0, &no_wait, &world), RINGATTN_INVALID_ARGUMENT);
  EXPECT_THAT(ringattn_last_error(), HasSubstr("wait must not be NULL"));
  ringattn_transport ok = no_wait;
  ok.wait = CTransport::Wait;
  EXPECT_EQ(ringattn_transport_world_create(2, 2, &ok, &world), RINGATTN_INVALID_ARGUMENT);
  EXPECT_THAT(ringattn_last_error(), HasSubstr("rank 2 is outside [0, world = 2)"));
  EXPECT_EQ(ringattn_threads_world_create(0, 1.0, &world), RINGATTN_INVALID_ARGUMENT);
  EXPECT_THAT(ringattn_last_error(), HasSubstr("world is 0; expected 1 to 8192"));
  EXPECT_EQ(ringattn_threads_world_create(2, NAN, &world), RINGATTN_INVALID_ARGUMENT);
  ASSERT_EQ(ringattn_threads_world_create(1, 5.0, &world), RINGATTN_OK);
  EXPECT_STREQ(ringattn_last_error(), "");
  ringattn_config c = SmallConfig(RINGATTN_LAYOUT_ZIGZAG, 2);  // the world has 1
  ringattn_ring* ring = nullptr;
  EXPECT_EQ(ringattn_ring_create(world, 0, &c, &ring), RINGATTN_INVALID_ARGUMENT);
  EXPECT_THAT(ringattn_last_error(), HasSubstr("world"));
  c.world = 1;
  EXPECT_EQ(ringattn_ring_create(world, 1, &c, &ring), RINGATTN_INVALID_ARGUMENT);
  EXPECT_THAT(ringattn_last_error(), HasSubstr("rank 1 is outside [0, world = 1)"));
  c.layout = static_cast<ringattn_layout>(9);
  EXPECT_EQ(ringattn_ring_create(world, 0, &c, &ring), RINGATTN_INVALID_ARGUMENT);
  EXPECT_THAT(ringattn_last_error(), HasSubstr("layout 9 is unknown"));
  c.layout = RINGATTN_LAYOUT_RING;
  c.num_cu_seqlens = 3;  // and no pointer
  EXPECT_EQ(ringattn_ring_create(world, 0, &c, &ring), RINGATTN_INVALID_ARGUMENT);
  EXPECT_THAT(ringattn_last_error(), HasSubstr("cu_seqlens: 3 entries at NULL"));
  c.num_cu_seqlens = 0;
  ASSERT_EQ(ringattn_ring_create(world, 0, &c, &ring), RINGATTN_OK) << ringattn_last_error();
  const std::vector<float> x(16 * 8, 1.0f);
  ringattn_tensor t = Local(x, 16, 1, 8);
  std::vector<float> out(16 * 8), lse(16);
  EXPECT_EQ(ringattn_forward(ring, &t, nullptr, &t, out.data(), 16 * 8 * 4, lse.data(), 16),
            RINGATTN_INVALID_ARGUMENT);
  EXPECT_THAT(ringattn_last_error(), HasSubstr("k is missing"));
  t.dtype = static_cast<ringattn_dtype>(7);
  EXPECT_EQ(ringattn_forward(ring, &t, &t, &t, out.data(), 16 * 8 * 4, lse.data(), 16),
            RINGATTN_INVALID_ARGUMENT);
  EXPECT_THAT(ringattn_last_error(), HasSubstr("dtype 7 is unknown"));
  t.dtype = RINGATTN_FLOAT32;
  t.bytes = 100;  // smaller than the tensor
  EXPECT_EQ(ringattn_forward(ring, &t, &t, &t, out.data(), 16 * 8 * 4, lse.data(), 16),
            RINGATTN_INVALID_ARGUMENT);
  t.bytes = 16 * 8 * 4;
  EXPECT_EQ(ringattn_forward(ring, &t, &t, &t, out.data(), 4, lse.data(), 16),
            RINGATTN_INVALID_ARGUMENT);
  EXPECT_THAT(ringattn_last_error(), HasSubstr("out has room for 4 bytes; expected 512"));
  ringattn_ring_destroy(ring);
  ringattn_world_destroy(world);
}

TEST(RingattnCTest, CpuRingsRefuseCudaCallsAndNcclChecksItsArguments) {
  uint8_t id[RINGATTN_NCCL_ID_BYTES] = {};
  EXPECT_EQ(ringattn_nccl_unique_id(id, 5), RINGATTN_INVALID_ARGUMENT);
  EXPECT_THAT(ringattn_last_error(), HasSubstr("id has room for 5 bytes; expected"));
  ringattn_world* world = nullptr;
  EXPECT_EQ(ringattn_nccl_world_create(2, 0, id, RINGATTN_NCCL_ID_BYTES, 4096, 5.0, &world),
            RINGATTN_INVALID_ARGUMENT);
  EXPECT_THAT(ringattn_last_error(), HasSubstr("device 4096 does not exist"));
  EXPECT_EQ(ringattn_nccl_world_create(2, 2, id, RINGATTN_NCCL_ID_BYTES, 0, 5.0, &world),
            RINGATTN_INVALID_ARGUMENT);
  EXPECT_THAT(ringattn_last_error(), HasSubstr("rank 2 is outside [0, world = 2)"));
  ASSERT_EQ(ringattn_threads_world_create(1, 5.0, &world), RINGATTN_OK);
  const ringattn_config c = SmallConfig(RINGATTN_LAYOUT_RING, 1);
  ringattn_ring* ring = nullptr;
  ASSERT_EQ(ringattn_ring_create(world, 0, &c, &ring), RINGATTN_OK) << ringattn_last_error();
  EXPECT_EQ(ringattn_ring_device(ring), -1);
  EXPECT_EQ(ringattn_ring_set_stream(ring, nullptr), RINGATTN_FAILED_PRECONDITION);
  EXPECT_THAT(ringattn_last_error(), HasSubstr("runs the CPU backend"));
  EXPECT_EQ(ringattn_world_set_async_passes(world, 1), RINGATTN_FAILED_PRECONDITION);
  EXPECT_THAT(ringattn_last_error(), HasSubstr("asynchronous passes are for NCCL worlds"));
  EXPECT_EQ(ringattn_world_set_async_passes(nullptr, 1), RINGATTN_INVALID_ARGUMENT);
  EXPECT_EQ(ringattn_world_synchronize(world), RINGATTN_OK);  // CPU passes end with their work
  EXPECT_EQ(ringattn_world_synchronize(nullptr), RINGATTN_INVALID_ARGUMENT);
  ringattn_ring_destroy(ring);
  ringattn_world_destroy(world);
}

// A GPU ring through the C ABI: a one-rank NCCL world on GPU 0, float32
// tensors in device memory, ordered with a stream of the caller's; O, LSE,
// dQ, dK, dV against the fp64 oracle, and host pointers refused.
TEST(RingattnCTest, NcclWorldRunsTheCudaBackendOnDeviceTensors) {
  if (!HaveGpu()) GTEST_SKIP() << "no GPU";
  ringattn_world* world = NcclWorldOfOne(60.0);
  ASSERT_NE(world, nullptr);
  const int64_t s = 256, hq = 4, hk = 2, d = 64;
  const ringattn_config c = OneRankConfig(RINGATTN_LAYOUT_ZIGZAG, s, hq, hk, d);
  ringattn_ring* ring = nullptr;
  ASSERT_EQ(ringattn_ring_create(world, 0, &c, &ring), RINGATTN_OK) << ringattn_last_error();
  EXPECT_EQ(ringattn_ring_device(ring), 0);
  std::vector<int64_t> ids(s);
  ASSERT_EQ(ringattn_ring_position_ids(ring, ids.data(), s), RINGATTN_OK);
  const std::vector<float> q = RandomNormal<float>(s * hq * d, 1),
                           k = RandomNormal<float>(s * hk * d, 2),
                           v = RandomNormal<float>(s * hk * d, 3),
                           dout = RandomNormal<float>(s * hq * d, 4);
  // Local row i is global position ids[i] (one rank: a permutation).
  const auto local = [&](const std::vector<float>& x, int64_t heads) {
    std::vector<float> y(x.size());
    for (int64_t i = 0; i < s; ++i) {
      std::copy_n(&x[ids[i] * heads * d], heads * d, &y[i * heads * d]);
    }
    return y;
  };
  const auto to_device = [](const std::vector<float>& x) {
    void* p = nullptr;
    EXPECT_EQ(cudaMalloc(&p, x.size() * 4), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(p, x.data(), x.size() * 4, cudaMemcpyHostToDevice), cudaSuccess);
    return p;
  };
  // Inputs, then outputs (filled with inputs' bytes: they must be overwritten).
  void* const gq = to_device(local(q, hq));
  void* const gk = to_device(local(k, hk));
  void* const gv = to_device(local(v, hk));
  void* const gdout = to_device(local(dout, hq));
  void* const gout = to_device(q);
  void* const gdq = to_device(q);
  void* const gdk = to_device(k);
  void* const gdv = to_device(k);
  float* const glse = static_cast<float*>(to_device(std::vector<float>(hq * s)));
  const auto tensor = [&](void* p, int64_t heads) {
    return ringattn_tensor{p, s * heads * d * 4, RINGATTN_FLOAT32, 0, s * heads * d, heads * d, d};
  };
  const ringattn_tensor tq = tensor(gq, hq), tk = tensor(gk, hk), tv = tensor(gv, hk),
                        tdout = tensor(gdout, hq);
  // Host memory is refused by name.
  const ringattn_tensor host_q{q.data(), s * hq * d * 4, RINGATTN_FLOAT32, 0, s * hq * d, hq * d,
                               d};
  EXPECT_EQ(ringattn_forward(ring, &host_q, &tk, &tv, gout, s * hq * d * 4, glse, hq * s),
            RINGATTN_INVALID_ARGUMENT);
  EXPECT_THAT(ringattn_last_error(), HasSubstr("q is host memory; this ring runs on GPU 0"));
  ringattn_ring_destroy(ring);  // the failed call aborted the world's ring
  ringattn_world_destroy(world);
  world = NcclWorldOfOne(60.0);
  ASSERT_NE(world, nullptr);
  ASSERT_EQ(ringattn_ring_create(world, 0, &c, &ring), RINGATTN_OK) << ringattn_last_error();
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  ASSERT_EQ(ringattn_ring_set_stream(ring, stream), RINGATTN_OK);
  // A forward and backward on the caller's stream, finished.
  const auto pass = [&] {
    ASSERT_EQ(ringattn_forward(ring, &tq, &tk, &tv, gout, s * hq * d * 4, glse, hq * s),
              RINGATTN_OK)
        << ringattn_last_error();
    ASSERT_EQ(ringattn_backward(ring, &tdout, gdq, s * hq * d * 4, gdk, s * hk * d * 4, gdv,
                                s * hk * d * 4),
              RINGATTN_OK)
        << ringattn_last_error();
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  };
  pass();
  // Back to global order.
  const auto global = [&](void* p, int64_t heads) {
    std::vector<float> y(s * heads * d), x(s * heads * d);
    EXPECT_EQ(cudaMemcpy(y.data(), p, y.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    for (int64_t i = 0; i < s; ++i)
      std::copy_n(&y[i * heads * d], heads * d, &x[ids[i] * heads * d]);
    return x;
  };
  std::vector<float> lse_local(hq * s), lse(hq * s);
  ASSERT_EQ(cudaMemcpy(lse_local.data(), glse, lse.size() * 4, cudaMemcpyDeviceToHost),
            cudaSuccess);
  for (int64_t h = 0; h < hq; ++h) {
    for (int64_t i = 0; i < s; ++i) lse[h * s + ids[i]] = lse_local[h * s + i];
  }
  const AttentionShape shape{1, s, s, hq, hk, d};
  const std::vector<double> q64(q.begin(), q.end()), k64(k.begin(), k.end()),
      v64(v.begin(), v.end()), dout64(dout.begin(), dout.end());
  const Mask mask = *Mask::Create({.causal = true}, 1, s, s);
  const TensorStrides qs = DenseStrides(s, hq, d), ks = DenseStrides(s, hk, d);
  const double scale = 1 / std::sqrt(static_cast<double>(d));
  const cpu::AttentionOutput<double> o =
      *cpu::NaiveForward<double>(shape, {q64, qs}, {k64, ks}, {v64, ks}, mask, scale);
  const cpu::AttentionGrads<double> grads = *cpu::NaiveBackward<double>(
      shape, {q64, qs}, {k64, ks}, {v64, ks}, {o.out, qs}, o.lse, {dout64, qs}, mask, scale);
  EXPECT_LE(MaxRelError(global(gout, hq), o.out), 1e-5);
  EXPECT_LE(MaxRelError(lse, o.lse), 1e-4);
  EXPECT_LE(MaxRelError(global(gdq, hq), grads.dq), 1e-5);
  EXPECT_LE(MaxRelError(global(gdk, hk), grads.dk), 1e-5);
  EXPECT_LE(MaxRelError(global(gdv, hk), grads.dv), 1e-5);
  // Another pass on the same ring (its inputs reloaded, its state reset)
  // gives the same results, also with asynchronous passes (the stream
  // synchronized by the caller).
  const std::vector<float> out1 = global(gout, hq), dk1 = global(gdk, hk);
  ASSERT_EQ(cudaMemset(gout, 0, s * hq * d * 4), cudaSuccess);
  ASSERT_EQ(cudaMemset(gdk, 0, s * hk * d * 4), cudaSuccess);
  EXPECT_EQ(ringattn_world_set_async_passes(world, 2), RINGATTN_INVALID_ARGUMENT);
  EXPECT_THAT(ringattn_last_error(), HasSubstr("async is 2; expected 0 or 1"));
  ASSERT_EQ(ringattn_world_set_async_passes(world, 1), RINGATTN_OK) << ringattn_last_error();
  pass();  // (the backward is enqueued while the forward may still run)
  EXPECT_EQ(ringattn_world_synchronize(world), RINGATTN_OK) << ringattn_last_error();
  // (the same up to the order of the backward's atomic adds)
  EXPECT_LE(MaxRelError(global(gout, hq), out1), 1e-6);
  EXPECT_LE(MaxRelError(global(gdk, hk), dk1), 1e-6);
  // The backward from the saved forward (q, k, v, out, lse) on another ring
  // of the same problem: the same gradients, without the forward's ring.
  const std::vector<float> dq1 = global(gdq, hq), dv1 = global(gdv, hk);
  ringattn_ring* other = nullptr;
  ASSERT_EQ(ringattn_ring_create(world, 0, &c, &other), RINGATTN_OK) << ringattn_last_error();
  ASSERT_EQ(ringattn_ring_set_stream(other, stream), RINGATTN_OK);
  const ringattn_tensor tout = tensor(gout, hq);
  const std::vector<float> host_lse(hq * s);
  EXPECT_EQ(ringattn_backward_from(other, &tq, &tk, &tv, &tout, host_lse.data(), hq * s, &tdout,
                                   gdq, s * hq * d * 4, gdk, s * hk * d * 4, gdv, s * hk * d * 4),
            RINGATTN_INVALID_ARGUMENT);
  EXPECT_THAT(ringattn_last_error(), HasSubstr("lse is host memory; this ring runs on GPU 0"));
  ringattn_ring_destroy(other);  // the failed call aborted the world: a new one
  ringattn_ring_destroy(ring);
  ringattn_world_destroy(world);
  world = NcclWorldOfOne(60.0);
  ASSERT_NE(world, nullptr);
  ASSERT_EQ(ringattn_ring_create(world, 0, &c, &ring), RINGATTN_OK) << ringattn_last_error();
  ASSERT_EQ(ringattn_ring_set_stream(ring, stream), RINGATTN_OK);
  ASSERT_EQ(cudaMemset(gdq, 0, s * hq * d * 4), cudaSuccess);
  ASSERT_EQ(cudaMemset(gdk, 0, s * hk * d * 4), cudaSuccess);
  ASSERT_EQ(cudaMemset(gdv, 0, s * hk * d * 4), cudaSuccess);
  ASSERT_EQ(ringattn_backward_from(ring, &tq, &tk, &tv, &tout, glse, hq * s, &tdout, gdq,
                                   s * hq * d * 4, gdk, s * hk * d * 4, gdv, s * hk * d * 4),
            RINGATTN_OK)
      << ringattn_last_error();
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  EXPECT_LE(MaxRelError(global(gdq, hq), dq1), 1e-6);
  EXPECT_LE(MaxRelError(global(gdk, hk), dk1), 1e-6);
  EXPECT_LE(MaxRelError(global(gdv, hk), dv1), 1e-6);
  ringattn_ring_destroy(ring);
  ringattn_world_destroy(world);
  cudaStreamDestroy(stream);
  for (void* p : {gq, gk, gv, gdout, gout, gdq, gdk, gdv, static_cast<void*>(glse)}) cudaFree(p);
}

// Misaligned GPU buffers are refused by name before any kernel reads or
// writes them (a misaligned load or store would stop the kernel and leave
// the context unusable): a tensor 4 bytes past a 16-byte boundary (a view
// at an offset into a larger allocation), an output between elements; then
// a pass on the same GPU still runs and matches the aligned one.
TEST(RingattnCTest, NcclWorldRefusesMisalignedDeviceBuffers) {
  if (!HaveGpu()) GTEST_SKIP() << "no GPU";
  const int64_t s = 128, h = 2, d = 64, n = s * h * d;
  const ringattn_config c = OneRankConfig(RINGATTN_LAYOUT_RING, s, h, h, d);
  const std::vector<float> x = RandomNormal<float>(n, 5);
  char* base = nullptr;  // room for a tensor at +16 and one at +4
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&base), (2 * n + 16) * 4), cudaSuccess);
  float* const aligned = reinterpret_cast<float*>(base + 16);
  float* const misaligned = reinterpret_cast<float*>(base + (n + 4) * 4 + 4);  // 4 past 16
  ASSERT_EQ(cudaMemcpy(aligned, x.data(), n * 4, cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(misaligned, x.data(), n * 4, cudaMemcpyHostToDevice), cudaSuccess);
  char* outputs = nullptr;  // O, LSE, dQ, dK, dV, each at a 256-byte boundary
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&outputs), 5 * (n * 4 + 256)), cudaSuccess);
  const auto output = [&](int i) { return outputs + i * (n * 4 + 256); };
  const auto tensor = [&](const float* p) {
    return ringattn_tensor{p, n * 4, RINGATTN_FLOAT32, 0, n, h * d, d};
  };
  const ringattn_tensor good = tensor(aligned), bad = tensor(misaligned);
  // One world per call that fails: a failed pass aborts its world.
  const auto run = [&](const ringattn_tensor& q, void* out, float* lse, void* dq) {
    ringattn_world* world = NcclWorldOfOne(60.0);
    ringattn_ring* ring = nullptr;
    EXPECT_EQ(ringattn_ring_create(world, 0, &c, &ring), RINGATTN_OK) << ringattn_last_error();
    ringattn_status status = ringattn_forward(ring, &q, &good, &good, out, n * 4, lse, h * s);
    std::string error = ringattn_last_error();
    if (status == RINGATTN_OK) {
      status = ringattn_backward(ring, &good, dq, n * 4, output(3), n * 4, output(4), n * 4);
      error = ringattn_last_error();
    }
    EXPECT_EQ(ringattn_world_synchronize(world),
              status == RINGATTN_OK ? RINGATTN_OK : RINGATTN_ABORTED);
    ringattn_ring_destroy(ring);
    ringattn_world_destroy(world);
    return std::pair{status, error};
  };
  float* const lse = reinterpret_cast<float*>(output(1));
  auto [status, error] = run(bad, output(0), lse, output(2));
  EXPECT_EQ(status, RINGATTN_INVALID_ARGUMENT);
  EXPECT_THAT(error, HasSubstr("q in GPU memory starts at 0x"));
  EXPECT_THAT(error, HasSubstr("4 bytes past a multiple of 16; expected an aligned address"));
  std::tie(status, error) = run(good, output(0) + 2, lse, output(2));
  EXPECT_EQ(status, RINGATTN_INVALID_ARGUMENT);
  EXPECT_THAT(error, HasSubstr("not a multiple of its 4-byte elements"));
  EXPECT_THAT(error, HasSubstr("out starts at 0x"));
  std::tie(status, error) = run(good, output(0), lse, output(2) + 1);
  EXPECT_EQ(status, RINGATTN_INVALID_ARGUMENT);
  EXPECT_THAT(error, HasSubstr("dq starts at 0x"));
  // The GPU is still usable, and an aligned pass gives finite results.
  std::tie(status, error) = run(good, output(0), lse, output(2));
  EXPECT_EQ(status, RINGATTN_OK) << error;
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<float> out(n);
  ASSERT_EQ(cudaMemcpy(out.data(), output(0), n * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  for (float v : out) ASSERT_TRUE(std::isfinite(v));
  cudaFree(base);
  cudaFree(outputs);
}

// GPU memory runs out: the pass fails with RINGATTN_RESOURCE_EXHAUSTED
// naming the allocation, and once memory is free again a new world's pass
// runs (the failed cudaMalloc's error is not left for a later launch's
// check to report as its own).
TEST(RingattnCTest, NcclWorldOutOfGpuMemoryIsAnErrorThenRuns) {
  if (!HaveGpu()) GTEST_SKIP() << "no GPU";
  const int64_t s = 8192, h = 32, d = 128, n = s * h * d;  // bf16: 64 MiB a tensor
  const ringattn_config c = OneRankConfig(RINGATTN_LAYOUT_ZIGZAG, s, h, h, d);
  void* x = nullptr;  // q, k, v and dO (zeros), then O, dQ, dK, dV
  ASSERT_EQ(cudaMalloc(&x, 8 * n * 2), cudaSuccess);
  ASSERT_EQ(cudaMemset(x, 0, 8 * n * 2), cudaSuccess);
  char* const base = static_cast<char*>(x);
  float* lse = nullptr;
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&lse), h * s * 4), cudaSuccess);
  const ringattn_tensor t{base, n * 2, RINGATTN_BFLOAT16, 0, n, h * d, d};
  // A pass on a new world and ring; `squeeze` runs before the forward (NCCL
  // needs GPU memory of its own to make the world).
  const auto pass = [&](const auto& squeeze) -> std::pair<ringattn_status, std::string> {
    ringattn_world* world = NcclWorldOfOne(60.0);
    ringattn_ring* ring = nullptr;
    EXPECT_EQ(ringattn_ring_create(world, 0, &c, &ring), RINGATTN_OK) << ringattn_last_error();
    squeeze();
    ringattn_status status =
        ringattn_forward(ring, &t, &t, &t, base + 4 * n * 2, n * 2, lse, h * s);
    if (status == RINGATTN_OK) {
      status = ringattn_backward(ring, &t, base + 5 * n * 2, n * 2, base + 6 * n * 2, n * 2,
                                 base + 7 * n * 2, n * 2);
    }
    const std::string error = ringattn_last_error();
    if (status == RINGATTN_OK) {
      EXPECT_EQ(ringattn_world_synchronize(world), RINGATTN_OK);
    }
    ringattn_ring_destroy(ring);
    ringattn_world_destroy(world);
    return {status, error};
  };
  // All but 32 MiB of the GPU taken: the backend's fp32 O (128 MiB) cannot fit.
  void* blob = nullptr;
  const auto take_the_gpu = [&] {
    size_t free_bytes = 0, total = 0;
    ASSERT_EQ(cudaMemGetInfo(&free_bytes, &total), cudaSuccess);
    for (size_t take = free_bytes - (size_t{32} << 20); take > (size_t{1} << 30);
         take -= size_t{64} << 20) {
      if (cudaMalloc(&blob, take) == cudaSuccess) break;
      cudaGetLastError();
    }
  };
  const auto [status, error] = pass(take_the_gpu);
  ASSERT_NE(blob, nullptr);
  EXPECT_EQ(status, RINGATTN_RESOURCE_EXHAUSTED) << error;
  EXPECT_THAT(error, HasSubstr("bytes of device memory"));
  ASSERT_EQ(cudaFree(blob), cudaSuccess);
  const auto [again, again_error] = pass([] {});
  EXPECT_EQ(again, RINGATTN_OK) << again_error;
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  cudaFree(x);
  cudaFree(lse);
}

}  // namespace
}  // namespace ringattn
