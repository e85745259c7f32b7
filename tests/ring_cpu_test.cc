// The ring end to end on CPU threads: every layout x W x mask x GQA, forward
// and backward, against the fp64 oracle. float inputs: <= 1e-5 relative.
// bf16/fp16 inputs: the ring's error is no worse than 1.05x that of one
// blocked call over the whole sequence (the fp32 state never rounds).
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "comm/thread_communicator.h"
#include "core/dtype_convert.h"
#include "core/layout.h"
#include "core/status_macros.h"
#include "cpu_reference/attention.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ringattn.h"
#include "tests/test_util.h"

namespace ringattn {
namespace {

using ::ringattn::testing::MaxRelError;
using ::ringattn::testing::RandomNormal;

using Case = ::ringattn::testing::RingCase;

std::vector<uint8_t> Encode(DType dtype, const std::vector<double>& x) {
  return EncodeAll<double>(dtype, x);
}

std::vector<double> Decode(DType dtype, const std::vector<uint8_t>& x) {
  return DecodeAll<double>(dtype, x);
}

struct Result {
  std::vector<double> out, lse, dq, dk, dv;
};

// Runs forward and backward on `layout.world` threads; returns global
// results decoded to double.
Result RunRing(const Case& c, DType dtype, const std::vector<double>& q,
               const std::vector<double>& k, const std::vector<double>& v,
               const std::vector<double>& dout) {
  const AttentionShape& s = c.shape;
  const Layout layout = *Layout::Create(c.layout, s.batch, s.seqlen_q, c.mask.cu_seqlens);
  const int64_t elem = DTypeBytes(dtype);
  const int64_t q_token = s.num_heads * s.head_dim * elem;
  const int64_t kv_token = s.num_kv_heads * s.head_dim * elem;
  const auto shard = [&](const std::vector<double>& x, int64_t token) {
    const std::vector<uint8_t> bytes = Encode(dtype, x);
    return *layout.Shard(absl::Span<const uint8_t>(bytes), token);
  };
  const auto qs = shard(q, q_token), ks = shard(k, kv_token), vs = shard(v, kv_token),
             dos = shard(dout, q_token);
  const int world = c.layout.world;
  std::vector<std::vector<uint8_t>> out(world), dq(world), dk(world), dv(world);
  std::vector<std::vector<float>> lse(world);
  const int64_t rows = layout.local_seqlen();
  const auto statuses =
      comm::ThreadWorld::Run(world, absl::Seconds(60), [&](Communicator& comm) -> absl::Status {
        const int r = comm.rank();
        RingAttentionConfig config{c.layout, c.mask, 0};
        ASSIGN_OR_RETURN(std::unique_ptr<RingAttention> attention,
                         RingAttention::Create(comm, config, s));
        if ((attention)->PositionIds() != *layout.PositionIds(r)) {
          return absl::InternalError("position ids differ from the layout's");
        }
        ASSIGN_OR_RETURN(
            RankForward fwd,
            (attention)->Forward(DenseRankTensor(dtype, qs[r], rows, s.num_heads, s.head_dim),
                                 DenseRankTensor(dtype, ks[r], rows, s.num_kv_heads, s.head_dim),
                                 DenseRankTensor(dtype, vs[r], rows, s.num_kv_heads, s.head_dim)));
        ASSIGN_OR_RETURN(RankGrads grads, (attention)->Backward(DenseRankTensor(
                                              dtype, dos[r], rows, s.num_heads, s.head_dim)));
        out[r] = fwd.out;
        lse[r] = SwapMiddleAxes<float>(fwd.lse, layout.local_batch(), s.num_heads, rows);
        dq[r] = grads.dq;
        dk[r] = grads.dk;
        dv[r] = grads.dv;
        return absl::OkStatus();
      });
  for (const absl::Status& st : statuses) EXPECT_TRUE(st.ok()) << st;
  Result result;
  result.out = Decode(dtype, *layout.Unshard(out, q_token));
  result.dq = Decode(dtype, *layout.Unshard(dq, q_token));
  result.dk = Decode(dtype, *layout.Unshard(dk, kv_token));
  result.dv = Decode(dtype, *layout.Unshard(dv, kv_token));
  const std::vector<float> lse_tokens = *layout.Unshard(lse, s.num_heads);
  const std::vector<float> lse_global =
      SwapMiddleAxes<float>(lse_tokens, s.batch, s.seqlen_q, s.num_heads);
  result.lse.assign(lse_global.begin(), lse_global.end());
  return result;
}

struct Oracle {
  std::vector<double> q, k, v, dout;
  Result exact;
};

// Random inputs (rounded to `dtype`) and the fp64 oracle on them.
Oracle MakeOracle(const Case& c, DType dtype, uint32_t seed) {
  const AttentionShape& s = c.shape;
  Oracle o;
  for (auto [x, n, offset] :
       {std::tuple{&o.q, s.q_elements(), 0}, std::tuple{&o.k, s.kv_elements(), 1},
        std::tuple{&o.v, s.kv_elements(), 2}, std::tuple{&o.dout, s.q_elements(), 3}}) {
    *x = Decode(dtype, Encode(dtype, RandomNormal<double>(n, seed + offset)));
  }
  const Mask mask = *Mask::Create(c.mask, s.batch, s.seqlen_q, s.seqlen_k);
  const TensorStrides qs = DenseStrides(s.seqlen_q, s.num_heads, s.head_dim);
  const TensorStrides ks = DenseStrides(s.seqlen_k, s.num_kv_heads, s.head_dim);
  const double scale = DefaultSoftmaxScale(s.head_dim);
  const cpu::AttentionOutput<double> fwd =
      *cpu::NaiveForward<double>(s, {o.q, qs}, {o.k, ks}, {o.v, ks}, mask, scale);
  const cpu::AttentionGrads<double> grads = *cpu::NaiveBackward<double>(
      s, {o.q, qs}, {o.k, ks}, {o.v, ks}, {fwd.out, qs}, fwd.lse, {o.dout, qs}, mask, scale);
  o.exact = {fwd.out, fwd.lse, grads.dq, grads.dk, grads.dv};
  return o;
}

std::vector<double> Errors(const Result& got, const Result& want) {
  return {MaxRelError(got.out, want.out), MaxRelError(got.lse, want.lse),
          MaxRelError(got.dq, want.dq), MaxRelError(got.dk, want.dk), MaxRelError(got.dv, want.dv)};
}

void CheckFloat(const Case& c) {
  SCOPED_TRACE(c.Name());
  const Oracle o = MakeOracle(c, DType::kFloat32, 17);
  const Result ring = RunRing(c, DType::kFloat32, o.q, o.k, o.v, o.dout);
  const char* names[] = {"out", "lse", "dq", "dk", "dv"};
  const std::vector<double> errors = Errors(ring, o.exact);
  for (int i = 0; i < 5; ++i) EXPECT_LE(errors[i], 1e-5) << names[i];
}

std::vector<int64_t> Documents(int64_t total, int64_t unit, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int64_t> cu = {0};
  while (cu.back() < total) {
    std::uniform_int_distribution<int64_t> pick(1, 3);
    cu.push_back(std::min(total, cu.back() + pick(rng) * unit));
  }
  return cu;
}

int64_t DocumentUnit(LayoutKind kind, int world) {
  return kind == LayoutKind::kZigzag ? 2 * world : kind == LayoutKind::kRing ? world : 5;
}

TEST(RingCpuTest, EveryLayoutWorldAndMaskMatchesTheOracle) {
  for (LayoutKind kind : {LayoutKind::kRing, LayoutKind::kZigzag, LayoutKind::kStripe,
                          LayoutKind::kLlama3, LayoutKind::kBalanced}) {
    for (int world : {1, 2, 3, 4, 8}) {
      for (const MaskSpec& mask :
           {MaskSpec{.causal = true}, MaskSpec{}, MaskSpec{.causal = true, .window_left = 7},
            MaskSpec{.window_left = 4, .window_right = 9, .key_lengths = {41, 30}}}) {
        CheckFloat({{.kind = kind, .world = world}, {2, 48, 48, 4, 2, 8}, mask});
      }
      const int64_t total = 16 * world;
      CheckFloat(
          {{.kind = kind, .world = world},
           {1, total, total, 4, 1, 8},
           {.causal = true, .cu_seqlens = Documents(total, DocumentUnit(kind, world), world)}});
    }
  }
}

// Packed documents of any length (lognormal mixes of 1..S tokens, one-token
// documents, totals that do not divide by W; shards padded to the longest):
// forward and backward equal the fp64 oracle on every real token.
TEST(RingCpuTest, VarlenDocumentsOfAnyLengthMatchTheOracle) {
  std::mt19937 rng(5);
  for (LayoutKind kind : {LayoutKind::kRing, LayoutKind::kZigzag, LayoutKind::kStripe,
                          LayoutKind::kLlama3, LayoutKind::kBalanced}) {
    for (int world : {1, 2, 3, 4, 8}) {
      const int64_t total = 13 * world + 5;
      const std::vector<int64_t> cu = testing::RandomDocuments(total, 4, total, &rng);
      for (const MaskSpec& mask : {MaskSpec{.causal = true, .cu_seqlens = cu},
                                   MaskSpec{.causal = true, .window_left = 3, .cu_seqlens = cu}}) {
        CheckFloat({{.kind = kind, .world = world}, {1, total, total, 4, 2, 8}, mask});
      }
    }
  }
  // Stripes of 3 tokens: documents' last stripes shorter than the width.
  for (int world : {2, 3}) {
    const int64_t total = 29 * world + 4;
    const std::vector<int64_t> cu = testing::RandomDocuments(total, 4, total, &rng);
    CheckFloat({{.kind = LayoutKind::kStripe, .world = world, .stripe_width = 3},
                {1, total, total, 4, 2, 8},
                {.causal = true, .cu_seqlens = cu}});
  }
}

// Many short documents: the balanced layout keeps each whole on one rank,
// and the ring runs one step, passing nothing.
TEST(RingCpuTest, BalancedShortDocumentsStayHomeInOneStep) {
  std::mt19937 rng(9);
  const std::vector<int64_t> cu = testing::RandomDocuments(1200, 6, 16, &rng);
  const int64_t total = cu.back();
  for (int world : {2, 4}) {
    const LayoutSpec spec{.kind = LayoutKind::kBalanced, .world = world};
    const Layout layout = *Layout::Create(spec, 1, total, cu);
    ASSERT_TRUE(layout.documents_local()) << "W=" << world;
    const Mask mask = *Mask::Create({.causal = true, .cu_seqlens = cu}, 1, total, total);
    EXPECT_EQ(Schedule::Create(layout, mask, 1)->num_steps(), 1);
    CheckFloat({spec, {1, total, total, 2, 1, 8}, {.causal = true, .cu_seqlens = cu}});
  }
}

TEST(RingCpuTest, RingSizeStripesAndHeadGroups) {
  for (LayoutKind kind :
       {LayoutKind::kRing, LayoutKind::kZigzag, LayoutKind::kStripe, LayoutKind::kLlama3}) {
    CheckFloat(
        {{.kind = kind, .world = 4, .ring_size = 2}, {2, 32, 32, 2, 2, 8}, {.causal = true}});
  }
  CheckFloat({{.kind = LayoutKind::kStripe, .world = 4, .stripe_width = 4},
              {1, 64, 64, 2, 1, 16},
              {.causal = true}});
  CheckFloat({{.kind = LayoutKind::kLlama3, .world = 4, .kv_heads_per_group = 1},
              {1, 32, 32, 6, 3, 8},
              {.causal = true}});
  // Rings of one rank (the step's dK/dV is the rank's own sum: added home
  // without a reduce-scatter), one head group a step; and zigzag's two
  // chunks fused into one run.
  for (const LayoutSpec& spec :
       {LayoutSpec{.kind = LayoutKind::kLlama3, .world = 1, .kv_heads_per_group = 1},
        LayoutSpec{
            .kind = LayoutKind::kLlama3, .world = 2, .ring_size = 1, .kv_heads_per_group = 1},
        LayoutSpec{.kind = LayoutKind::kZigzag, .world = 2, .ring_size = 1}}) {
    CheckFloat({spec, {2, 32, 32, 6, 3, 8}, {.causal = true}});
  }
}

TEST(RingCpuTest, HalfPrecisionErrorIsThatOfOneCall) {
  for (DType dtype : {DType::kBFloat16, DType::kFloat16}) {
    for (LayoutKind kind :
         {LayoutKind::kRing, LayoutKind::kZigzag, LayoutKind::kStripe, LayoutKind::kLlama3}) {
      for (int world : {4, 8}) {
        const Case c{{.kind = kind, .world = world}, {1, 128, 128, 4, 2, 16}, {.causal = true}};
        SCOPED_TRACE(absl::StrCat(c.Name(), " ", DTypeName(dtype)));
        const Oracle o = MakeOracle(c, dtype, 29);
        const Result ring = RunRing(c, dtype, o.q, o.k, o.v, o.dout);
        Case single = c;
        single.layout = {.kind = LayoutKind::kRing, .world = 1};
        const Result one = RunRing(single, dtype, o.q, o.k, o.v, o.dout);
        const std::vector<double> ring_errors = Errors(ring, o.exact);
        const std::vector<double> one_errors = Errors(one, o.exact);
        const char* names[] = {"out", "lse", "dq", "dk", "dv"};
        for (int i = 0; i < 5; ++i) {
          EXPECT_LE(ring_errors[i], 1.05 * one_errors[i] + 1e-7)
              << names[i] << ": ring " << ring_errors[i] << " one call " << one_errors[i];
        }
      }
    }
  }
}

TEST(RingCpuTest, PackedInputsAndBadInput) {
  // kv-packed k/v: the API reads any strides.
  const AttentionShape s{1, 32, 32, 4, 2, 8};
  const Case c{{.kind = LayoutKind::kZigzag, .world = 2}, s, {.causal = true}};
  const Oracle o = MakeOracle(c, DType::kFloat32, 3);
  const Layout layout = *Layout::Create(c.layout, 1, 32);
  const std::vector<uint8_t> qb = Encode(DType::kFloat32, o.q);
  std::vector<double> kv(2 * o.k.size());
  for (int64_t t = 0; t < 32; ++t)
    for (int64_t i = 0; i < 16; ++i) {
      kv[(t * 2 + 0) * 16 + i] = o.k[t * 16 + i];
      kv[(t * 2 + 1) * 16 + i] = o.v[t * 16 + i];
    }
  const std::vector<uint8_t> kvb = Encode(DType::kFloat32, kv);
  const auto q_shards = *layout.Shard(absl::Span<const uint8_t>(qb), 4 * 8 * 4);
  const auto kv_shards = *layout.Shard(absl::Span<const uint8_t>(kvb), 2 * 2 * 8 * 4);
  const QkvStrides packed = *PackedStrides({1, 16, 16, 4, 2, 8}, QkvPacking::kKvPacked);
  std::vector<std::vector<uint8_t>> out(2);
  auto statuses =
      comm::ThreadWorld::Run(2, absl::Seconds(30), [&](Communicator& comm) -> absl::Status {
        const int r = comm.rank();
        ASSIGN_OR_RETURN(
            RankForward fwd,
            RingFlashAttnFunc(comm, LayoutKind::kZigzag, s,
                              DenseRankTensor(DType::kFloat32, q_shards[r], 16, 4, 8),
                              {DType::kFloat32, kv_shards[r], packed.k},
                              {DType::kFloat32, kv_shards[r], packed.v}, {.causal = true}));
        out[r] = fwd.out;
        return absl::OkStatus();
      });
  for (const absl::Status& st : statuses) ASSERT_TRUE(st.ok()) << st;
  EXPECT_LE(MaxRelError(Decode(DType::kFloat32, *layout.Unshard(out, 4 * 8 * 4)), o.exact.out),
            1e-5);

  // One rank passes a short k: it gets the error, the other an abort.
  statuses = comm::ThreadWorld::Run(2, absl::Seconds(30), [&](Communicator& comm) -> absl::Status {
    const int r = comm.rank();
    const absl::Span<const uint8_t> k =
        r == 1 ? absl::Span<const uint8_t>(kv_shards[r]).subspan(0, 100)
               : absl::Span<const uint8_t>(kv_shards[r]);
    return RingFlashAttnFunc(comm, LayoutKind::kZigzag, s,
                             DenseRankTensor(DType::kFloat32, q_shards[r], 16, 4, 8),
                             {DType::kFloat32, k, packed.k},
                             {DType::kFloat32, kv_shards[r], packed.v}, {.causal = true})
        .status();
  });
  EXPECT_THAT(statuses[1].message(), ::testing::HasSubstr("k needs"));
  EXPECT_EQ(statuses[0].code(), absl::StatusCode::kAborted) << statuses[0];

  // GPU tensors (RankTensor::device) beside host ones, to the CPU backend,
  // and a GPU dO after a host forward: errors saying where the memory is,
  // never a read of it.
  statuses = comm::ThreadWorld::Run(2, absl::Seconds(30), [&](Communicator& comm) -> absl::Status {
    const int r = comm.rank();
    RankTensor q = DenseRankTensor(DType::kFloat32, q_shards[r], 16, 4, 8);
    q.device = r == 1;
    return RingFlashAttnFunc(comm, LayoutKind::kZigzag, s, q,
                             {DType::kFloat32, kv_shards[r], packed.k},
                             {DType::kFloat32, kv_shards[r], packed.v}, {.causal = true})
        .status();
  });
  EXPECT_THAT(statuses[1].message(), ::testing::HasSubstr("k is in host memory; expected GPU"));
  EXPECT_EQ(statuses[0].code(), absl::StatusCode::kAborted) << statuses[0];
  const std::vector<uint8_t> kv_dense(32 * 2 * 8 * 4);
  for (const bool device_inputs : {true, false}) {
    statuses =
        comm::ThreadWorld::Run(1, absl::Seconds(30), [&](Communicator& comm) -> absl::Status {
          RingAttentionConfig config;
          config.layout = {.kind = LayoutKind::kRing, .world = 1};
          ASSIGN_OR_RETURN(std::unique_ptr<RingAttention> ring,
                           RingAttention::Create(comm, config, s));
          RankTensor q = DenseRankTensor(DType::kFloat32, qb, 32, 4, 8);
          RankTensor kv = DenseRankTensor(DType::kFloat32, kv_dense, 32, 2, 8);
          q.device = kv.device = device_inputs;
          RETURN_IF_ERROR(ring->Forward(q, kv, kv).status());
          RankTensor dout = q;
          dout.device = true;
          return ring->Backward(dout).status();
        });
    EXPECT_THAT(statuses[0].message(),
                ::testing::HasSubstr(device_inputs ? "the CPU backend takes host memory"
                                                   : "dout is in GPU memory; expected host"));
  }
}

}  // namespace
}  // namespace ringattn

namespace ringattn {
namespace {

// One RingAttention over several passes: the second pass reloads the same
// backend with new inputs (RankBackend::Reload) and writes into the
// caller's buffers (ForwardInto / BackwardInto); its results equal a fresh
// RingAttention's on those inputs, byte for byte.
TEST(RingCpuTest, AnotherPassReloadsTheBackendAndWritesIntoBuffers) {
  const AttentionShape s{1, 32, 32, 4, 2, 8};
  const int64_t q_bytes = 32 * 4 * 8 * 4, kv_bytes = 32 * 2 * 8 * 4;
  const auto tensor = [](const std::vector<uint8_t>& b, int64_t heads) {
    return DenseRankTensor(DType::kFloat32, b, 32, heads, 8);
  };
  // q, k, v, dout of the first pass, then of the second.
  std::vector<std::vector<uint8_t>> inputs;
  uint32_t seed = 1;
  for (int64_t bytes :
       {q_bytes, kv_bytes, kv_bytes, q_bytes, q_bytes, kv_bytes, kv_bytes, q_bytes}) {
    inputs.push_back(Encode(DType::kFloat32, RandomNormal<double>(bytes / 4, seed++)));
  }
  const auto statuses =
      comm::ThreadWorld::Run(1, absl::Seconds(30), [&](Communicator& comm) -> absl::Status {
        RingAttentionConfig config;
        config.layout = {.kind = LayoutKind::kZigzag, .world = 1};
        config.mask.causal = true;
        ASSIGN_OR_RETURN(std::unique_ptr<RingAttention> kept,
                         RingAttention::Create(comm, config, s));
        ASSIGN_OR_RETURN(std::unique_ptr<RingAttention> fresh,
                         RingAttention::Create(comm, config, s));
        RETURN_IF_ERROR(
            kept->Forward(tensor(inputs[0], 4), tensor(inputs[1], 2), tensor(inputs[2], 2))
                .status());
        RETURN_IF_ERROR(kept->Backward(tensor(inputs[3], 4)).status());
        std::vector<uint8_t> out(q_bytes), dq(q_bytes), dk(kv_bytes), dv(kv_bytes);
        std::vector<float> lse(4 * 32);
        RETURN_IF_ERROR(kept->ForwardInto(tensor(inputs[4], 4), tensor(inputs[5], 2),
                                          tensor(inputs[6], 2), out.data(), lse.data())
                            .status());
        RETURN_IF_ERROR(
            kept->BackwardInto(tensor(inputs[7], 4), dq.data(), dk.data(), dv.data()).status());
        ASSIGN_OR_RETURN(
            const RankForward want,
            fresh->Forward(tensor(inputs[4], 4), tensor(inputs[5], 2), tensor(inputs[6], 2)));
        ASSIGN_OR_RETURN(const RankGrads grads, fresh->Backward(tensor(inputs[7], 4)));
        EXPECT_EQ(out, want.out);
        EXPECT_EQ(lse, want.lse);
        EXPECT_EQ(dq, grads.dq);
        EXPECT_EQ(dk, grads.dk);
        EXPECT_EQ(dv, grads.dv);
        return absl::OkStatus();
      });
  ASSERT_TRUE(statuses[0].ok()) << statuses[0];
}

// The three ring-pass backward orders give the same gradients (fp64, up to
// summation order): ending on the rank's own block with the forward's last
// K/V still in the backend (the default through RingAttention), ending on
// it after fetching that block, and the classic order that starts on the
// own block and sends every finished sum home after the last step.
TEST(RingCpuTest, BackwardOrdersAgree) {
  struct Variant {
    bool use_forward_kv, own_block_first;
  };
  const Variant variants[] = {{true, false}, {false, false}, {true, true}};
  for (LayoutKind kind : {LayoutKind::kRing, LayoutKind::kZigzag, LayoutKind::kStripe}) {
    for (int world : {1, 2, 3, 4}) {
      const AttentionShape s{2, 48, 48, 4, 2, 16};
      const LayoutSpec spec{.kind = kind, .world = world};
      SCOPED_TRACE(absl::StrCat(LayoutKindName(kind), " W=", world));
      absl::StatusOr<Schedule> schedule = Schedule::Build(spec, {.causal = true}, s);
      ASSERT_TRUE(schedule.ok()) << schedule.status();
      const Layout& layout = schedule->layout();
      const auto shard = [&](int64_t n, uint32_t seed, int64_t token) {
        const std::vector<uint8_t> bytes = Encode(DType::kFloat64, RandomNormal<double>(n, seed));
        return *layout.Shard(absl::Span<const uint8_t>(bytes), token * 8);
      };
      const auto q = shard(s.q_elements(), 1, s.num_heads * s.head_dim);
      const auto k = shard(s.kv_elements(), 2, s.num_kv_heads * s.head_dim);
      const auto v = shard(s.kv_elements(), 3, s.num_kv_heads * s.head_dim);
      const auto dout = shard(s.q_elements(), 4, s.num_heads * s.head_dim);
      std::vector<std::vector<std::vector<double>>> grads;  // variant, rank, dq dk dv
      for (const Variant& variant : variants) {
        std::vector<std::vector<double>> ranks(world);
        const auto statuses = comm::ThreadWorld::Run(
            world, absl::Seconds(60), [&](Communicator& comm) -> absl::Status {
              const int r = comm.rank();
              ASSIGN_OR_RETURN(std::unique_ptr<RankBackend> backend,
                               CpuBackendFactory()(*schedule, r, s, DefaultSoftmaxScale(s.head_dim),
                                                   {DType::kFloat64, q[r], k[r], v[r]}));
              ASSIGN_OR_RETURN(RingRunStats fwd, RunRingForward(*schedule, comm, *backend));
              RETURN_IF_ERROR((backend)->SetDout(dout[r]));
              BackwardOptions options;
              options.forward_kv = variant.use_forward_kv ? fwd.last_kv : std::nullopt;
              options.own_block_first = variant.own_block_first;
              ASSIGN_OR_RETURN(RingRunStats bwd,
                               RunRingBackward(*schedule, comm, *backend, options));
              for (auto get : {&RankBackend::Dq, &RankBackend::Dk, &RankBackend::Dv}) {
                ASSIGN_OR_RETURN(std::vector<uint8_t> g, ((*backend).*get)());
                const std::vector<double> d = Decode(DType::kFloat64, g);
                ranks[r].insert(ranks[r].end(), d.begin(), d.end());
              }
              return absl::OkStatus();
            });
        for (const absl::Status& st : statuses) ASSERT_TRUE(st.ok()) << st;
        grads.push_back(std::move(ranks));
      }
      for (size_t i = 1; i < grads.size(); ++i) {
        for (int r = 0; r < world; ++r) {
          EXPECT_LE(MaxRelError(grads[i][r], grads[0][r]), 1e-12)
              << "variant " << i << " rank " << r;
        }
      }
    }
  }
}

}  // namespace
}  // namespace ringattn
