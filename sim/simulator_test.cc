#include "sim/simulator.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "core/plan.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringattn::sim {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A flat rate, free launches and (unless asked) free links: pure FLOPs.
Calibration Flat(double link_gbps = 1e12, double latency_us = 0) {
  absl::StatusOr<Calibration> c = Calibration::Parse(absl::StrCat(
      "gpu flat\nlaunch_us 0\npartial_block_factor 1\nlink_GBps ", link_gbps, "\nlink_latency_us ",
      latency_us, "\ninternode_GBps 1\nrate fwd 128 1 100\nrate bwd 128 1 100\n"));
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

SimOptions Options(LayoutKind kind, int world, int64_t seqlen) {
  SimOptions o;
  o.layout = {.kind = kind, .world = world};
  o.mask = {.causal = true};
  o.shape = {1, seqlen, seqlen, 8, 8, 128};
  o.backward = false;
  o.calibration = Flat();
  return o;
}

// The ranks' FLOPs in the same schedule: mean / max is the efficiency of a
// compute-only ring with nothing to wait for.
double FlopBalance(const SimOptions& o) {
  const Layout layout = *Layout::Create(o.layout, 1, o.shape.seqlen_q);
  const Schedule schedule = *Schedule::Create(
      layout, *Mask::Create(o.mask, 1, o.shape.seqlen_q, o.shape.seqlen_q), o.shape.num_kv_heads);
  const PlanReport plan = *BuildPlan(schedule, o.shape);
  double max = 0;
  for (int r = 0; r < plan.world; ++r) max = std::max(max, plan.RankFlops(r));
  return plan.TotalFlops() / plan.world / max;
}

TEST(SimulatorTest, ComputeOnlyCausalRingIsAsImbalancedAsItsFlops) {
  for (int world : {2, 4, 8}) {
    const SimOptions o = Options(LayoutKind::kRing, world, 8192);
    const SimResult r = *Simulate(o);
    // Rank r does r full blocks and a diagonal: W / (2W - 1) for large blocks
    // (the diagonal costs half a block; (W+1)/(2W) if it cost a full one).
    EXPECT_NEAR(r.efficiency, FlopBalance(o), 0.01 * FlopBalance(o));
    EXPECT_NEAR(r.efficiency, world / (2.0 * world - 1), 0.01);
  }
}

// A kernel's fixed cost: launch_us for every forward task and memory pass,
// launch_us_bwd (when set) for every backward task instead.
TEST(SimulatorTest, BackwardTasksPayTheirOwnLaunchCost) {
  SimOptions o = Options(LayoutKind::kZigzag, /*world=*/1, 2048);
  o.backward = true;
  o.calibration.fused_slices = 0;  // zigzag's three pieces, as before 2026-12-03
  o.calibration.launch_us = 0;
  const SimResult none = *Simulate(o);
  o.calibration.launch_us = 1;
  const SimResult forward_launches = *Simulate(o);
  // Zigzag at W = 1: three tasks, each a forward and a backward kernel.
  o.calibration.launch_us_bwd = 11;
  const SimResult charged = *Simulate(o);
  EXPECT_NEAR(charged.forward_s, forward_launches.forward_s, 1e-12);
  EXPECT_NEAR((charged.iteration_s - charged.forward_s) -
                  (forward_launches.iteration_s - forward_launches.forward_s),
              3 * 10e-6, 1e-12);
  EXPECT_GT(forward_launches.forward_s - none.forward_s, 3e-6 - 1e-12);
  EXPECT_EQ(Calibration::Parse(o.calibration.Serialize())->launch_us_bwd, 11);
  EXPECT_EQ(o.calibration.LaunchUs(false), 1);
  o.calibration.launch_us_bwd = 0;
  EXPECT_EQ(o.calibration.LaunchUs(true), 0);
  o.calibration.launch_us_bwd = -1;
  EXPECT_EQ(o.calibration.LaunchUs(true), 1) << "-1: the forward's";
}

// A pass's fixed cost is charged once per forward and once per backward
// pass of each rank, not per task or step: the iteration grows by exactly
// that; ring-flash-attention's model (host syncs of its own) is not charged.
TEST(SimulatorTest, PassOverheadIsChargedOncePerPass) {
  for (int world : {1, 4}) {
    SCOPED_TRACE(world);
    SimOptions o = Options(LayoutKind::kZigzag, world, 8192);
    o.backward = true;
    const SimResult plain = *Simulate(o);
    o.calibration.pass_overhead_us_fwd = 30;
    o.calibration.pass_overhead_us_bwd = 70;
    const SimResult charged = *Simulate(o);
    EXPECT_NEAR(charged.forward_s - plain.forward_s, 30e-6, 1e-12);
    EXPECT_NEAR(charged.iteration_s - plain.iteration_s, 100e-6, 1e-12);
    EXPECT_EQ(Calibration::Parse(o.calibration.Serialize())->pass_overhead_us_bwd, 70);
    o.seed_implementation = true;
    const double seed_charged = Simulate(o)->iteration_s;
    o.calibration.pass_overhead_us_fwd = o.calibration.pass_overhead_us_bwd = 0;
    EXPECT_DOUBLE_EQ(Simulate(o)->iteration_s, seed_charged);
  }
}

// Calibration::min_kernel_us_*: a task's kernel takes at least that long
// (two 40-token documents' kernels), a long one as before; not applied to
// ring-flash-attention's model; kept by Serialize / Parse.
TEST(SimulatorTest, AKernelTakesAtLeastTheLeastKernelTime) {
  SimOptions o = Options(LayoutKind::kZigzag, 1, 8192);
  o.calibration = *Calibration::Builtin("h200");
  o.backward = true;
  o.mask.cu_seqlens = {0, 8112, 8152, 8192};
  SimOptions short_doc = Options(LayoutKind::kZigzag, 1, 40);
  short_doc.calibration = o.calibration;
  short_doc.backward = false;
  const double forward = *KernelSeconds(short_doc);
  short_doc.backward = true;
  const double backward = *KernelSeconds(short_doc) - forward;
  ASSERT_LT(forward, 10e-6);
  ASSERT_LT(backward, 14e-6);
  const double without = Simulate(o)->iteration_s;
  SimOptions dense = Options(LayoutKind::kZigzag, 1, 8192);
  dense.calibration = o.calibration;
  dense.backward = true;
  const double dense_without = Simulate(dense)->iteration_s;
  for (SimOptions* x : {&o, &dense}) {
    x->calibration.min_kernel_us_fwd = 10;
    x->calibration.min_kernel_us_bwd = 14;
  }
  EXPECT_NEAR(Simulate(o)->iteration_s - without, 2 * (10e-6 - forward) + 2 * (14e-6 - backward),
              1e-12);
  EXPECT_DOUBLE_EQ(Simulate(dense)->iteration_s, dense_without) << "its kernel is longer";
  const Calibration parsed = *Calibration::Parse(o.calibration.Serialize());
  EXPECT_EQ(parsed.MinKernelUs(false), 10);
  EXPECT_EQ(parsed.MinKernelUs(true), 14);
  o.seed_implementation = true;
  const double seed_with = Simulate(o)->iteration_s;
  o.calibration.min_kernel_us_fwd = o.calibration.min_kernel_us_bwd = 0;
  EXPECT_DOUBLE_EQ(Simulate(o)->iteration_s, seed_with);
}

// Balanced to within the backward's dK/dV zeroing. A zigzag rank's steps
// either store every row of the visiting block (its query half against the
// whole block: nothing zeroed) or half of them (its whole queries against
// the block's first half), and rank 0 has only the first kind, rank W - 1
// only the second. Zeroing that half's whole buffer there left zigzag at
// 0.987 at W = 8 (Calibration::partial_sum_sets_dkv_rows = 0); the half
// left for the arriving partial sum to set, zeroed only on the first step,
// 0.994 (stripe 0.999 either way). With every step's launches adding
// (stored_dkv_steps = 0) and the whole buffer zeroed, every rank zeroes
// alike.
TEST(SimulatorTest, ZigzagAndStripeAreBalanced) {
  for (LayoutKind kind : {LayoutKind::kZigzag, LayoutKind::kStripe}) {
    SimOptions o = Options(kind, 8, 8192);
    o.backward = true;
    EXPECT_GT(Simulate(o)->efficiency, 0.99) << LayoutKindName(kind);
    o.calibration.stored_dkv_steps = 0;
    o.calibration.partial_sum_sets_dkv_rows = 0;
    EXPECT_GT(Simulate(o)->efficiency, 0.99) << LayoutKindName(kind);
  }
}

// A ring hop beside the kernels takes Calibration::hop_sm_share of their
// rate while it is in flight (NCCL's send/recv kernel holds SMs). Zigzag at
// W = 2 sends one K/V hop in the forward, beside its first step, which
// outlasts it: the forward grows by the share x the hop's time, exactly.
// With links so slow that the hop outlasts the slowed step, the second
// step waits for the arrival either way: the forward does not move. At
// W = 1 there is no hop.
TEST(SimulatorTest, AHopBesideTheKernelsTakesItsShareOfTheirRate) {
  SimOptions o = Options(LayoutKind::kZigzag, 2, 16384);
  o.calibration = Flat(/*link_gbps=*/100);
  const double kv_bytes = 2.0 * 8192 * 8 * 128 * 2;  // K and V of a rank, bf16
  const double plain = Simulate(o)->forward_s;
  o.calibration.hop_sm_share = 0.25;
  EXPECT_NEAR(Simulate(o)->forward_s - plain, 0.25 * kv_bytes / 100e9, 1e-12);
  o.calibration.link_gbps = 5;  // a 6.7 ms hop beside a 1.4 ms step
  const double slow_link = Simulate(o)->forward_s;
  o.calibration.hop_sm_share = 0;
  EXPECT_NEAR(Simulate(o)->forward_s, slow_link, 1e-12);
  o.calibration.hop_sm_share = 0.25;
  EXPECT_EQ(Calibration::Parse(o.calibration.Serialize())->hop_sm_share, 0.25);
  o.calibration.hop_sm_share = 1;  // no rate left: refused
  EXPECT_THAT(std::string(Calibration::Parse(o.calibration.Serialize()).status().message()),
              HasSubstr("hop_sm_share 1: expected 0 <= share < 1"));
  SimOptions one = Options(LayoutKind::kZigzag, 1, 16384);
  const double alone = Simulate(one)->iteration_s;
  one.calibration.hop_sm_share = 0.25;
  EXPECT_DOUBLE_EQ(Simulate(one)->iteration_s, alone);
}

// Calibration::hop_issue_us_kv / _us: the host issues a step's transfers
// before it enqueues what follows them, so the GPU idles for the issue
// where it has nothing queued. Zigzag at W = 2: the forward's first step
// (K and V apart: the _kv time) waits for it once, the second step's issue
// runs beside the first step's kernels. A ring of 256-token blocks at W = 4
// is host-bound: its three issues (60 + 25 + 25 us) outlast its kernels
// (~3 us each), so the forward takes them plus its last step's kernels. A
// ring of one sends nothing: unchanged. Kept by Serialize / Parse.
TEST(SimulatorTest, TheHostsIssueOfTransfersDelaysWhatFollowsThem) {
  SimOptions o = Options(LayoutKind::kZigzag, 2, 16384);
  const double plain = Simulate(o)->forward_s;
  o.calibration.hop_issue_us_kv = 60;
  o.calibration.hop_issue_us = 25;
  o.trace = true;
  const SimResult issued = *Simulate(o);
  EXPECT_NEAR(issued.forward_s - plain, 60e-6, 1e-12);
  EXPECT_THAT(issued.trace_json, HasSubstr("waiting for the host's issue of transfers"));
  EXPECT_NEAR(issued.ranks[0].exposed_comm_s, 60e-6, 1e-12);

  SimOptions small = Options(LayoutKind::kRing, 4, 1024);
  const double small_plain = Simulate(small)->forward_s;
  EXPECT_LT(small_plain, 20e-6);
  small.calibration.hop_issue_us_kv = 60;
  small.calibration.hop_issue_us = 25;
  const double host_bound = Simulate(small)->forward_s;
  EXPECT_GE(host_bound, 110e-6);
  EXPECT_LT(host_bound, 110e-6 + small_plain);

  SimOptions one = Options(LayoutKind::kZigzag, 1, 16384);
  one.backward = true;
  const double alone = Simulate(one)->iteration_s;
  one.calibration.hop_issue_us_kv = one.calibration.hop_issue_us = 60;
  EXPECT_DOUBLE_EQ(Simulate(one)->iteration_s, alone);

  // ring-flash-attention's varlen zigzag synchronizes the host in its
  // steps (boolean-mask indexing): each issue after such a sync starts from
  // the GPU's time, so its forward grows by more than its first issue.
  SimOptions seed = Options(LayoutKind::kZigzag, 4, 16384);
  seed.seed_implementation = true;
  seed.mask.cu_seqlens = {0, 16384};
  const double seed_plain = Simulate(seed)->forward_s;
  seed.calibration.hop_issue_us_kv = seed.calibration.hop_issue_us = 60;
  EXPECT_GT(Simulate(seed)->forward_s - seed_plain, 100e-6);

  const Calibration parsed = *Calibration::Parse(o.calibration.Serialize());
  EXPECT_EQ(parsed.hop_issue_us_kv, 60);
  EXPECT_EQ(parsed.hop_issue_us, 25);
  EXPECT_EQ(parsed.HopIssueUs(1), 25);
  EXPECT_EQ(parsed.HopIssueUs(2), 60);
}

// The zigzag backward's steps on an earlier rank's block leave the block's
// second half unwritten; the partial sum that arrives sets it (a copy
// instead of an add, no zeroing) on every step but the first, which zeroes
// that half only: the iteration at W = 8 is 2.6 % shorter, and as short as
// stripe's (within 0.1 %), whose steps store every row. At W = 1 nothing
// changes (one step of the whole block).
// The memory passes a backward charges each rank, from the trace: the
// bytes of each "zero dK/dV" and "add partial dK/dV" event, by rank.
struct DkvPasses {
  std::vector<std::vector<int64_t>> zeroed, added;
};
DkvPasses DkvPassesOf(const SimOptions& o) {
  SimOptions traced = o;
  traced.trace = true;
  const absl::StatusOr<SimResult> r = Simulate(traced);
  EXPECT_TRUE(r.ok()) << r.status();
  DkvPasses passes{std::vector<std::vector<int64_t>>(o.layout.world),
                   std::vector<std::vector<int64_t>>(o.layout.world)};
  if (!r.ok()) return passes;
  for (absl::string_view line : absl::StrSplit(r->trace_json, '\n')) {
    const bool zero = absl::StrContains(line, "\"name\": \"zero dK/dV\"");
    if (!zero && !absl::StrContains(line, "\"name\": \"add partial dK/dV\"")) continue;
    int rank = -1;
    int64_t bytes = -1;
    const auto after = [&](absl::string_view key) {
      const size_t at = line.find(key);
      return at == absl::string_view::npos ? absl::string_view() : line.substr(at + key.size());
    };
    const absl::string_view pid = after("\"pid\": "), b = after("\"bytes\": ");
    EXPECT_TRUE(absl::SimpleAtoi(pid.substr(0, pid.find(',')), &rank)) << line;
    EXPECT_TRUE(absl::SimpleAtoi(b.substr(0, b.find('}')), &bytes)) << line;
    if (rank >= 0 && rank < o.layout.world)
      (zero ? passes.zeroed : passes.added)[rank].push_back(bytes);
  }
  return passes;
}

// zigzag's backward at W = 4 (own block last): rank 0's every step is on a
// later rank's block (its second chunk meets the whole block: every row
// stored) and never zeroes; rank 3's three non-own steps are on earlier
// ranks' blocks (the block's second half unwritten): the first, with no
// partial sum arriving, zeroes that half; the next two leave it to the sum,
// whose add copies there (3 x the buffer less the half). Without
// partial_sum_sets_dkv_rows rank 3 zeroed its whole buffer on all three.
TEST(SimulatorTest, ZigzagsUnwrittenHalvesAreZeroedOnlyWhereNoSumArrives) {
  SimOptions o = Options(LayoutKind::kZigzag, 4, 8192);
  o.backward = true;
  const int64_t buffer = 2 * 4 * (8192 / 4) * o.shape.num_kv_heads * o.shape.head_dim;  // dK, dV
  const DkvPasses set = DkvPassesOf(o);
  EXPECT_TRUE(set.zeroed[0].empty());
  EXPECT_EQ(set.zeroed[3], (std::vector<int64_t>{buffer / 2}));
  EXPECT_EQ(set.added[3],
            (std::vector<int64_t>{3 * buffer - buffer / 2, 3 * buffer - buffer / 2, 3 * buffer}));
  EXPECT_EQ(set.added[0], (std::vector<int64_t>{3 * buffer, 3 * buffer, 3 * buffer}));
  o.calibration.partial_sum_sets_dkv_rows = 0;
  const DkvPasses zeroed = DkvPassesOf(o);
  EXPECT_TRUE(zeroed.zeroed[0].empty());
  EXPECT_EQ(zeroed.zeroed[3], (std::vector<int64_t>{buffer, buffer, buffer}));
  EXPECT_EQ(zeroed.added[3], (std::vector<int64_t>{3 * buffer, 3 * buffer, 3 * buffer}));
}

TEST(SimulatorTest, UnwrittenDkvRowsAreSetByThePartialSum) {
  const auto iteration = [](LayoutKind kind, int world, double partial_sum_sets) {
    SimOptions o = Options(kind, world, 8192);
    o.backward = true;
    o.calibration.partial_sum_sets_dkv_rows = partial_sum_sets;
    return Simulate(o)->iteration_s;
  };
  const double zigzag_set = iteration(LayoutKind::kZigzag, 8, 1);
  const double zigzag_zeroed = iteration(LayoutKind::kZigzag, 8, 0);
  EXPECT_LT(zigzag_set, 0.98 * zigzag_zeroed);
  EXPECT_NEAR(zigzag_set / iteration(LayoutKind::kStripe, 8, 1), 1.0, 1e-3);
  EXPECT_DOUBLE_EQ(iteration(LayoutKind::kStripe, 8, 1), iteration(LayoutKind::kStripe, 8, 0));
  EXPECT_DOUBLE_EQ(iteration(LayoutKind::kZigzag, 1, 1), iteration(LayoutKind::kZigzag, 1, 0));
}

// A backward step whose tasks store every row of its dK/dV buffer (ring
// size 1: one causal task over the whole block; fp16/bf16 at d64/d128
// without GQA) skips the buffer's zeroing: the iteration is shorter by
// that memory pass (bytes / HBM bandwidth + a launch); with GQA, fp32,
// d256 or stored_dkv_steps = 0 the step zeroes as before.
TEST(SimulatorTest, StoredDkvStepsSkipTheZeroing) {
  SimOptions o = Options(LayoutKind::kZigzag, 1, 4096);
  o.backward = true;
  const double stored = Simulate(o)->iteration_s;
  SimOptions zeroed = o;
  zeroed.calibration.stored_dkv_steps = 0;
  const double dkv_bytes = 2.0 * 4 * o.shape.kv_elements();  // dK and dV, fp32
  EXPECT_NEAR(Simulate(zeroed)->iteration_s - stored,
              dkv_bytes / (1e9 * o.calibration.hbm_gbps) + 1e-6 * o.calibration.launch_us, 1e-9);
  SimOptions gqa = o;
  gqa.shape.num_kv_heads = o.shape.num_heads / 4;
  SimOptions gqa_zeroed = gqa;
  gqa_zeroed.calibration.stored_dkv_steps = 0;
  EXPECT_DOUBLE_EQ(Simulate(gqa)->iteration_s, Simulate(gqa_zeroed)->iteration_s);
}

TEST(SimulatorTest, CommBoundRingTakesBytesOverBandwidthPerStep) {
  SimOptions o = Options(LayoutKind::kRing, 4, 4096);
  o.calibration = Flat(/*link_gbps=*/10, /*latency_us=*/50);
  o.calibration.rates[0][128] = {{1, 1e9}};  // compute is free
  const SimResult r = *Simulate(o);
  // K and V of 1024 tokens x 8 heads x 128 x bf16, three hops.
  const double bytes = 2.0 * 1024 * 8 * 128 * 2;
  const double step = bytes / 10e9 + 50e-6;
  EXPECT_NEAR(r.forward_s, 3 * step, 0.01 * 3 * step);
  for (const RankSummary& s : r.ranks) EXPECT_GT(s.exposed_comm_s, 2.9 * step);
}

TEST(SimulatorTest, DeterministicTraces) {
  SimOptions o = Options(LayoutKind::kZigzag, 8, 4096);
  o.backward = true;
  o.trace = true;
  o.calibration = *Calibration::Builtin("h800");
  const SimResult a = *Simulate(o);
  const SimResult b = *Simulate(o);
  EXPECT_EQ(a.trace_json, b.trace_json);
  EXPECT_EQ(a.iteration_s, b.iteration_s);
  EXPECT_THAT(a.trace_json, HasSubstr("\"name\": \"fwd block\""));
  EXPECT_THAT(a.trace_json, HasSubstr("\"name\": \"dK/dV to 1\""));
  EXPECT_GT(a.ranks[0].peak_bytes, 0);
}

TEST(SimulatorTest, Llama3AndMultiNode) {
  SimOptions o = Options(LayoutKind::kLlama3, 8, 8192);
  o.layout.kv_heads_per_group = 2;
  o.backward = true;
  o.calibration = *Calibration::Builtin("h100");
  o.gpus_per_node = 4;
  const SimResult r = *Simulate(o);
  EXPECT_GT(r.iteration_s, 0);
  o.gpus_per_node = 3;
  EXPECT_THAT(Simulate(o).status().message(), HasSubstr("gpus_per_node 3 does not divide world 8"));
}

// With a collective bandwidth, an all-gather's sends to the node's peers
// share it instead of taking the link one peer after another.
TEST(SimulatorTest, CollectiveBandwidthSpeedsTheAllGather) {
  SimOptions o;
  o.layout = {.kind = LayoutKind::kLlama3, .world = 4, .kv_heads_per_group = 1};
  o.mask = {.causal = true};
  o.shape = {1, 4096, 4096, 8, 8, 128};
  o.backward = false;
  o.calibration = *Calibration::Builtin("h200");
  o.calibration.link_gbps = 10;  // slow links: the gathers set the pace
  const double serial = Simulate(o)->iteration_s;
  o.calibration.collective_gbps = 10;  // the same total: the same time
  EXPECT_NEAR(Simulate(o)->iteration_s, serial, 1e-12);
  o.calibration.collective_gbps = 30;
  EXPECT_LT(Simulate(o)->iteration_s, 0.6 * serial);
  EXPECT_EQ(Calibration::Parse(o.calibration.Serialize())->collective_gbps, 30);
}

// A strided-block factor slows the stripe layout's tasks (all strided) and
// leaves contiguous layouts alone.
TEST(SimulatorTest, StridedBlockFactorSlowsStripeTasksOnly) {
  SimOptions o;
  o.layout = {.kind = LayoutKind::kStripe, .world = 4};
  o.mask = {.causal = true};
  o.shape = {1, 65536, 65536, 8, 8, 128};
  o.backward = false;
  o.calibration = *Calibration::Builtin("h200");
  o.calibration.link_gbps = 1e6;  // compute sets the pace
  const SimResult plain = *Simulate(o);
  o.calibration.strided_block_factor = 0.5;
  const SimResult slow = *Simulate(o);
  EXPECT_NEAR(slow.ranks[0].compute_s / plain.ranks[0].compute_s, 2.0, 0.05);
  o.layout.kind = LayoutKind::kZigzag;
  const double zigzag = Simulate(o)->iteration_s;
  o.calibration.strided_block_factor = 0;
  EXPECT_EQ(Simulate(o)->iteration_s, zigzag);
  o.calibration.strided_block_factor_bwd = 0.8;
  EXPECT_EQ(Calibration::Parse(o.calibration.Serialize())->strided_block_factor_bwd, 0.8);
}

// A forward task on state rows its pass already wrote runs at
// merged_state_factor x the rate (the first on them writes them fresh, as
// ring_bench's W = 1 calibration passes do); backward tasks do not change.
TEST(SimulatorTest, MergedStateFactorSlowsForwardTasksAfterTheFirstOnTheirRows) {
  SimOptions o = Options(LayoutKind::kRing, /*world=*/2, 8192);
  o.mask = {};  // full: each rank's two steps have a block of the same FLOPs
  const SimResult plain = *Simulate(o);
  o.calibration.merged_state_factor = 0.5;
  const SimResult merged = *Simulate(o);
  // Step 0 (fresh) t, step 1 (merges) 2 t instead of t: a 4096-token block
  // of 8 heads at 100 TFLOP/s more (the memory passes unchanged).
  const double t = 4.0 * 4096 * 4096 * 8 * 128 / 100e12;
  EXPECT_NEAR(merged.ranks[0].compute_s - plain.ranks[0].compute_s, t, 1e-9);
  EXPECT_NEAR(merged.forward_s - plain.forward_s, t, 1e-9);
  o.backward = true;
  const SimResult merged_fb = *Simulate(o);
  o.calibration.merged_state_factor = 0;  // 0: 1
  const SimResult plain_fb = *Simulate(o);
  EXPECT_NEAR(merged_fb.iteration_s - merged_fb.forward_s,
              plain_fb.iteration_s - plain_fb.forward_s, 1e-9);
  EXPECT_NEAR(plain_fb.forward_s, plain.forward_s, 1e-12);
  // One task per rank at W = 1: nothing merges.
  SimOptions one = Options(LayoutKind::kRing, /*world=*/1, 8192);
  const double alone = Simulate(one)->iteration_s;
  one.calibration.merged_state_factor = 0.5;
  EXPECT_EQ(Simulate(one)->iteration_s, alone);
  EXPECT_EQ(Calibration::Parse(o.calibration.Serialize())->merged_state_factor, 0);
  o.calibration.merged_state_factor = 0.97;
  EXPECT_EQ(Calibration::Parse(o.calibration.Serialize())->merged_state_factor, 0.97);
}

// A ring pass's returning dK/dV costs ring_pass_dkv_home_bytes per element
// (0 today: the sum is used where it is); all-gather's home add is charged
// whatever it says.
TEST(SimulatorTest, RingPassDkvHomeCostsItsBytesAndAllGatherAlways) {
  SimOptions o = Options(LayoutKind::kZigzag, 4, 16384);
  o.backward = true;
  o.calibration = *Calibration::Builtin("h200");
  const double today = Simulate(o)->ranks[0].compute_s;
  o.calibration.ring_pass_dkv_home_bytes = 10;
  const double added = Simulate(o)->ranks[0].compute_s;
  // Rank 0's K and V (4096 tokens, 8 heads, d128) at 10 B per element.
  const double bytes = 10.0 * 2 * 4096 * 8 * 128;
  EXPECT_NEAR(added - today,
              bytes / (1e9 * o.calibration.hbm_gbps) + 1e-6 * o.calibration.launch_us, 1e-9);
  EXPECT_EQ(Calibration::Parse(o.calibration.Serialize())->ring_pass_dkv_home_bytes, 10);
  o.layout = {.kind = LayoutKind::kLlama3, .world = 4, .kv_heads_per_group = 4};
  const double gathered = Simulate(o)->ranks[0].compute_s;
  o.calibration.ring_pass_dkv_home_bytes = 0;
  EXPECT_EQ(Simulate(o)->ranks[0].compute_s, gathered);
}

// SimOptions::outputs adds the caller's results as the CUDA backend makes
// them: 3 launches of memory passes (the state reset; O converted from the
// fp32 state straight into the caller's buffer beside LSE's copy; dQ, dK,
// dV converted).
TEST(SimulatorTest, OutputsAddTheResetAndTheResultsInTheInputDtype) {
  SimOptions o = Options(LayoutKind::kZigzag, 4, 16384);
  o.shape.num_kv_heads = 2;
  o.backward = true;
  o.calibration = *Calibration::Builtin("h200");
  const SimResult plain = *Simulate(o);
  o.outputs = true;
  const SimResult with = *Simulate(o);
  // Rank 0: 4096 tokens, 8 query heads, 2 kv heads, d128, bf16.
  const double q = 4096.0 * 8 * 128, kv = 4096.0 * 2 * 128, stats = 4096.0 * 8;
  const double bytes = 4 * stats + 4 * q +              // reset LSE, O
                       (4 + 2) * q + 2 * 4 * stats +    // O to bf16, copy LSE out
                       (4 + 2) * q + 2 * (4 + 2) * kv;  // dQ, dK, dV to bf16
  EXPECT_NEAR(with.ranks[0].compute_s - plain.ranks[0].compute_s,
              bytes / (1e9 * o.calibration.hbm_gbps) + 3e-6 * o.calibration.launch_us, 1e-9);
  EXPECT_GT(with.iteration_s, plain.iteration_s);
  // Before 2026-12-03 (forward_o_bytes 6: replays of older ring_bench
  // logs) every forward pass converted O into the backend's own buffer, and
  // the outputs copied it, then LSE: 6 bytes a query element more without
  // outputs, and with them the copy (2 + 2) instead of the conversion
  // (4 + 2) and two launches more (the pass's own conversion, LSE's copy).
  SimOptions old = o;
  old.calibration.forward_o_bytes = 6;
  old.outputs = false;
  EXPECT_NEAR(Simulate(old)->ranks[0].compute_s - plain.ranks[0].compute_s,
              6 * q / (1e9 * o.calibration.hbm_gbps) + 1e-6 * o.calibration.launch_us, 1e-9);
  old.outputs = true;
  EXPECT_NEAR(Simulate(old)->ranks[0].compute_s - with.ranks[0].compute_s,
              (6 * q - 2 * q) / (1e9 * o.calibration.hbm_gbps) + 2e-6 * o.calibration.launch_us,
              1e-9);
  EXPECT_EQ(Calibration::Parse(old.calibration.Serialize())->forward_o_bytes, 6);
  EXPECT_EQ(Calibration::Parse(o.calibration.Serialize())->forward_o_bytes, 0);
  o.seed_implementation = true;  // ring-flash-attention's results are not modelled
  EXPECT_THAT(std::string(Simulate(o).status().message()), HasSubstr("ringattn's own results"));
}

TEST(SimulatorTest, SeedImplementationAddsItsPassesAndHostSyncs) {
  SimOptions o = Options(LayoutKind::kZigzag, 4, 8192);
  o.mask.cu_seqlens = {0, 4096, 8192};
  o.backward = true;
  o.trace = true;
  o.calibration.hbm_gbps = 1000;
  o.calibration.host_sync_us = 100;
  const SimResult ours = *Simulate(o);
  o.seed_implementation = true;
  const SimResult seed = *Simulate(o);
  EXPECT_THAT(seed.trace_json, HasSubstr("\"name\": \"seed: merge O\""));
  EXPECT_THAT(seed.trace_json, HasSubstr("\"name\": \"seed: host syncs\""));
  EXPECT_THAT(ours.trace_json, Not(HasSubstr("seed:")));
  // At steps 1..3, ring rank r gathers K/V halves when step <= r (2 syncs
  // forward, 4 backward) and the second half of O otherwise (4 forward,
  // 1 backward): ranks 0..3 sync 15, 16, 17 and 18 times.
  int syncs = 0;
  for (size_t at = 0; (at = seed.trace_json.find("\"syncs\": ", at)) != std::string::npos;) {
    at += 9;
    syncs += std::stoi(seed.trace_json.substr(at));
  }
  EXPECT_EQ(syncs, 15 + 16 + 17 + 18);
  EXPECT_GT(seed.iteration_s, ours.iteration_s + 15 * 100e-6);
}

// ring-flash-attention's transfers start only when the step's kernels have
// drained (NCCL on a normal-priority stream; bench/stream_starvation.py):
// each K/V hop of the forward is exposed whole, where ours hides it.
TEST(SimulatorTest, SeedTransfersWaitForTheStepsKernels) {
  SimOptions o = Options(LayoutKind::kZigzag, 4, 8192);
  o.calibration = Flat(/*link_gbps=*/200, /*latency_us=*/5);
  o.calibration.hbm_gbps = 1e9;  // the seed's merges cost nothing here
  const SimResult ours = *Simulate(o);
  o.seed_implementation = true;
  const SimResult seed = *Simulate(o);
  // K and V of 2048 tokens, 8 heads, d128, bf16.
  const double hop_s = 2.0 * 2048 * 8 * 128 * 2 / 200e9 + 5e-6;
  EXPECT_LT(ours.ranks[0].exposed_comm_s, 0.05 * hop_s);
  EXPECT_NEAR(seed.iteration_s - ours.iteration_s, 3 * hop_s, 0.02 * 3 * hop_s);
}

TEST(CalibrationTest, CutBlocksSlowDownWithTheirMaskedShare) {
  Calibration c = Flat();
  c.partial_block_factor = 0.8;
  EXPECT_NEAR(c.Tflops(false, 128, 64, 64, 1.0), 100, 1e-9);
  EXPECT_NEAR(c.Tflops(false, 128, 64, 64, 0.5), 80, 1e-9);
  EXPECT_NEAR(c.Tflops(false, 128, 64, 64, 0.25), 80, 1e-9);
  EXPECT_NEAR(c.Tflops(false, 128, 64, 64, 0.75), 90, 1e-9);
  EXPECT_NEAR(c.Tflops(true, 128, 64, 64, 0.5), 80, 1e-9);  // backward: as forward
  c.partial_block_factor_bwd = 0.95;
  EXPECT_NEAR(c.Tflops(true, 128, 64, 64, 0.5), 95, 1e-9);
  EXPECT_NEAR(c.Tflops(false, 128, 64, 64, 0.5), 80, 1e-9);
  const Calibration back = *Calibration::Parse(c.Serialize());
  EXPECT_NEAR(back.Tflops(true, 128, 64, 64, 0.5), 95, 1e-9);
}

// The factor per causal block side: interpolated in log(side), held
// beyond the ends, per pass (the backward without its own: its one
// factor), written and read back; bad lines are errors.
TEST(CalibrationTest, PartialFactorBySideFollowsTheBlocksSide) {
  Calibration c = Flat();
  c.partial_block_factor = 0.8;
  c.partial_by_side[0] = {{1024, 0.7}, {4096, 0.9}};
  EXPECT_NEAR(c.PartialFactorAt(false, 1024), 0.7, 1e-12);
  EXPECT_NEAR(c.PartialFactorAt(false, 2048), 0.8, 1e-12);  // halfway in log(side)
  EXPECT_NEAR(c.PartialFactorAt(false, 512), 0.7, 1e-12);
  EXPECT_NEAR(c.PartialFactorAt(false, 16384), 0.9, 1e-12);
  EXPECT_NEAR(c.PartialFactorAt(true, 2048), 0.8, 1e-12) << "no backward points: the one factor";
  EXPECT_NEAR(c.Tflops(false, 128, 2048, 2048, 0.5), 80, 1e-9);
  EXPECT_NEAR(c.Tflops(false, 128, 4096, 4096, 0.5), 90, 1e-9);
  EXPECT_NEAR(c.Tflops(false, 128, 4096, 4096, 0.75), 95, 1e-9);  // towards the full rate
  EXPECT_NEAR(c.Tflops(false, 128, 4096, 4096, 1.0), 100, 1e-9);
  // A scaled factor (sim/tile_fill.h CausalFactorScale): 0.9 x 0.5, and
  // half way to the full rate at density 0.75; a full block has none.
  EXPECT_NEAR(c.Tflops(false, 128, 4096, 4096, 0.5, 0.5), 45, 1e-9);
  EXPECT_NEAR(c.Tflops(false, 128, 4096, 4096, 0.75, 0.5), 72.5, 1e-9);
  EXPECT_NEAR(c.Tflops(false, 128, 4096, 4096, 1.0, 0.5), 100, 1e-9);
  const Calibration back = *Calibration::Parse(c.Serialize());
  ASSERT_EQ(back.partial_by_side[0].size(), 2u);
  EXPECT_TRUE(back.partial_by_side[1].empty());
  EXPECT_NEAR(back.Tflops(false, 128, 2048, 2048, 0.5), 80, 1e-9);
  const Calibration parsed = *Calibration::Parse(
      absl::StrCat(c.Serialize(), "partial bwd 8192 0.95\npartial bwd 2048 0.75\n"));
  EXPECT_NEAR(parsed.PartialFactorAt(true, 4096), 0.85, 1e-12) << "sorted on reading";
  EXPECT_THAT(Calibration::Parse("partial fwd 4096").status().message(),
              HasSubstr("expected 'partial fwd|bwd TOKENS FACTOR'"));
  EXPECT_THAT(Calibration::Parse("partial up 4096 0.8").status().message(),
              HasSubstr("expected 'partial fwd|bwd TOKENS FACTOR'"));
  EXPECT_THAT(Calibration::Parse("partial fwd 4096 0").status().message(),
              HasSubstr("positive numbers"));
}

// A launch over fewer heads than the calibration's fills the SMs as its
// tiles do (sim/tile_fill.h): llama3's head groups of 8 of 32 heads at
// 2048 tokens a rank run slower per FLOP than the all-head launches the
// rates came from; all heads, or a calibration without rate_heads, no
// change; the seed's implementation (FlashAttention's kernels) is not
// modelled.
TEST(SimulatorTest, HeadGroupLaunchesFillTheSmsAsTheirTilesDo) {
  SimOptions o = Options(LayoutKind::kLlama3, /*world=*/2, 4096);
  o.shape = {1, 4096, 4096, 32, 32, 128};
  o.backward = true;
  const auto iteration = [&](int64_t per_group, double rate_heads, bool seed = false) {
    SimOptions x = o;
    x.layout.kv_heads_per_group = per_group;
    x.calibration.rate_heads = rate_heads;
    x.seed_implementation = seed;
    const absl::StatusOr<SimResult> r = Simulate(x);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->iteration_s : 0.0;
  };
  const double unmodelled = iteration(8, 0);
  const double groups = iteration(8, 32);
  EXPECT_GT(groups, 1.1 * unmodelled);
  EXPECT_LT(groups, 1.5 * unmodelled);
  EXPECT_DOUBLE_EQ(iteration(0, 32), iteration(0, 0));
  EXPECT_DOUBLE_EQ(iteration(8, 32, true), iteration(8, 0, true));
  // Fewer heads in the calibration than in the launch: faster.
  EXPECT_LT(iteration(0, 8), iteration(0, 0));
}

TEST(CalibrationTest, LaunchFillSettingsAreReadWrittenAndChecked) {
  const Calibration c =
      *Calibration::Parse(absl::StrCat(Flat().Serialize(), "rate_heads 16\nsms 108\nl2_MB 40\n"));
  EXPECT_DOUBLE_EQ(c.rate_heads, 16);
  EXPECT_DOUBLE_EQ(c.sms, 108);
  EXPECT_DOUBLE_EQ(c.l2_mb, 40);
  const Calibration back = *Calibration::Parse(c.Serialize());
  EXPECT_DOUBLE_EQ(back.rate_heads, 16);
  EXPECT_DOUBLE_EQ(back.sms, 108);
  EXPECT_DOUBLE_EQ(back.l2_mb, 40);
  EXPECT_DOUBLE_EQ(Calibration::Builtin("h200")->rate_heads, 32);
  EXPECT_DOUBLE_EQ(Calibration::Builtin("a100")->sms, 108);
  EXPECT_DOUBLE_EQ(Flat().rate_heads, 0) << "a table without the line: not modelled";
  for (const char* bad : {"sms 0", "sms 1.5", "rate_heads 2.5"}) {
    EXPECT_THAT(Calibration::Parse(absl::StrCat(Flat().Serialize(), bad, "\n")).status().message(),
                HasSubstr("expected whole numbers"))
        << bad;
  }
}

// zigzag's diagonal blocks are half a rank's tokens: with the factor per
// side they run at the half-size block's factor, not the rank's.
TEST(SimulatorTest, ZigzagDiagonalBlocksTakeTheirOwnSidesFactor) {
  SimOptions o;
  o.backward = false;  // the forward's factor
  o.layout = {.kind = LayoutKind::kZigzag, .world = 1};
  o.mask.causal = true;
  o.shape = {1, 16384, 16384, 32, 32, 128};
  o.calibration = *Calibration::Builtin("h200");
  o.calibration.partial_block_factor = 1.0;  // as measured at 16384 tokens
  o.calibration.fused_slices = 0;            // the two chunks as pieces (before 2026-12-03)
  const double one_factor = Simulate(o)->iteration_s;
  o.calibration.partial_by_side[0] = {{8192, 0.88}, {16384, 1.0}};
  const double by_side = Simulate(o)->iteration_s;
  // The two causal 8192 halves (half the FLOPs) now at 0.88: their time
  // grows by 1 / 0.88, the full block's not.
  EXPECT_GT(by_side, one_factor * 1.04);
  EXPECT_LT(by_side, one_factor * 1.09);
  // The ring's one causal 16384 block: unchanged.
  o.layout.kind = LayoutKind::kRing;
  const double ring_by_side = Simulate(o)->iteration_s;
  o.calibration.partial_by_side[0].clear();
  EXPECT_NEAR(Simulate(o)->iteration_s, ring_by_side, 1e-12);
  // Today's schedule fuses zigzag's two chunks at W = 1: the ring's one
  // causal block, whatever the per-side factors.
  o.layout.kind = LayoutKind::kZigzag;
  o.calibration.fused_slices = 1;
  o.calibration.partial_by_side[0] = {{8192, 0.88}, {16384, 1.0}};
  EXPECT_NEAR(Simulate(o)->iteration_s, ring_by_side, 1e-12);
  EXPECT_EQ(Simulate(o)->tasks, 1);
}

TEST(CalibrationTest, FitCurvePassesThroughMeasuredPointsAndKeepsTheShape) {
  Calibration c = *Calibration::Builtin("h100");
  const double before_2k = c.Tflops(false, 128, 2048, 2048, 1.0);
  const double before_4k = c.Tflops(false, 128, 4096, 4096, 1.0);
  const double before_8k = c.Tflops(false, 128, 8192, 8192, 1.0);
  const double before_16k = c.Tflops(false, 128, 16384, 16384, 1.0);
  ASSERT_TRUE(c.FitCurve(false, 128, {{8192, 400}, {4096, 300}}).ok());
  EXPECT_NEAR(c.Tflops(false, 128, 4096, 4096, 1.0), 300, 1e-9);
  EXPECT_NEAR(c.Tflops(false, 128, 8192, 8192, 1.0), 400, 1e-9);
  EXPECT_GT(c.Tflops(false, 128, 4096, 8192, 1.0), 300);  // between them
  EXPECT_LT(c.Tflops(false, 128, 4096, 8192, 1.0), 400);
  // Beyond the measured sides the shape is kept: scaled by the end ratios.
  EXPECT_NEAR(c.Tflops(false, 128, 2048, 2048, 1.0), before_2k * 300 / before_4k, 1e-6);
  EXPECT_NEAR(c.Tflops(false, 128, 16384, 16384, 1.0), before_16k * 400 / before_8k, 1e-6);
  // The backward curve is untouched; bad points are errors.
  EXPECT_NEAR(c.Tflops(true, 128, 8192, 8192, 1.0),
              Calibration::Builtin("h100")->Tflops(true, 128, 8192, 8192, 1.0), 1e-9);
  EXPECT_THAT(c.FitCurve(false, 128, {}).message(), HasSubstr("no measured points"));
  EXPECT_THAT(c.FitCurve(false, 128, {{0, 3}}).message(), HasSubstr("expected side and rate > 0"));
  // A head_dim without a curve starts from the nearest one.
  ASSERT_TRUE(c.FitCurve(true, 96, {{8192, 250}}).ok());
  EXPECT_NEAR(c.Tflops(true, 96, 8192, 8192, 1.0), 250, 1e-9);
}

TEST(CalibrationTest, RoundTripsAndRejectsBadLines) {
  const Calibration h200 = *Calibration::Builtin("h200");
  const Calibration back = *Calibration::Parse(h200.Serialize());
  EXPECT_NEAR(back.Tflops(false, 128, 8192, 8192, 0.5), h200.Tflops(false, 128, 8192, 8192, 0.5),
              1e-6);
  EXPECT_NEAR(h200.Tflops(false, 128, 8192, 8192, 0.5), 631.8, 0.5);
  EXPECT_LT(h200.Tflops(false, 128, 1024, 1024, 1.0), h200.Tflops(false, 128, 4096, 4096, 1.0));
  // Head dims per pass, as measured: the d256 backward (the column-split
  // dK/dV kernel and the dQ pass) at 0.681 of d128, its forward at 1.035;
  // d64 0.864 / 0.739.
  const auto relative = [&](bool backward, int64_t d) {
    return h200.Tflops(backward, d, 8192, 8192, 0.5) / h200.Tflops(backward, 128, 8192, 8192, 0.5);
  };
  EXPECT_NEAR(relative(true, 256), 0.681, 1e-3);
  EXPECT_NEAR(relative(false, 256), 1.035, 1e-3);
  EXPECT_NEAR(relative(true, 64), 0.864, 1e-3);
  EXPECT_NEAR(relative(false, 64), 0.739, 1e-3);
  EXPECT_NEAR(back.Tflops(true, 256, 8192, 8192, 0.5), h200.Tflops(true, 256, 8192, 8192, 0.5),
              1e-6);
  EXPECT_THAT(Calibration::Parse("rate fwd 128 x 3").status().message(),
              HasSubstr("calibration line 1 'rate fwd 128 x 3'"));
  EXPECT_THAT(Calibration::Parse("speed 3").status().message(), HasSubstr("unknown key"));
  // Not a finite number: refused, never carried into the predictions (inf
  // times; a NaN least kernel time that std::max would drop silently).
  for (const char* line :
       {"min_kernel_us_fwd nan", "launch_us inf", "hbm_GBps -inf", "rate fwd 128 4096 inf",
        "rate fwd nan 4096 300", "rate fwd 0 4096 300", "partial bwd 4096 nan"}) {
    EXPECT_FALSE(Calibration::Parse(line).ok()) << line;
  }
  EXPECT_THAT(Calibration::Parse("min_kernel_us_bwd nan").status().message(),
              HasSubstr("a finite number >= 0"));
  // Out of range (a denormal rate or factor made every time inf; a head dim
  // of 1e308 was cast to int64), found by //sim:parse_fuzz_test.
  for (const char* line :
       {"merged_state_factor 1e-320", "rate fwd 128 4096 1e-320", "launch_us 1e13",
        "rate fwd 1e308 4096 300", "rate fwd 64.5 4096 300", "partial fwd 4096 1e-12"}) {
    EXPECT_FALSE(Calibration::Parse(line).ok()) << line;
  }
  EXPECT_THAT(Calibration::Parse("merged_state_factor 1e-320").status().message(),
              HasSubstr("0 or of magnitude 1e-9 to 1e12"));
  EXPECT_THAT(Calibration::Builtin("v100").status().message(), HasSubstr("unknown gpu 'v100'"));
}

// link_GBps 0 is a calibration from one GPU (no link measured): it parses
// and predicts one rank, and a ring of several ranks is refused by name
// instead of predicting inf.
TEST(CalibrationTest, NoLinkPredictsOneRankAndRefusesARing) {
  Calibration c = Flat();
  c.link_gbps = 0;
  const absl::StatusOr<Calibration> back = Calibration::Parse(c.Serialize());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->link_gbps, 0);
  SimOptions one = Options(LayoutKind::kZigzag, 1, 1024);
  one.calibration = c;
  ASSERT_TRUE(Simulate(one).ok());
  SimOptions two = Options(LayoutKind::kZigzag, 2, 1024);
  two.calibration = c;
  EXPECT_THAT(Simulate(two).status().message(),
              HasSubstr("a ring of 2 ranks needs positive, finite link bandwidths"));
}

// ring_bench starts from the table of the GPU it runs on (CUDA's device
// name), not H100's on every machine: H200's HBM is 4.8 TB/s, not 3.35.
TEST(CalibrationTest, TheTableOfADeviceComesFromItsName) {
  EXPECT_EQ(*Calibration::BuiltinNameOfDevice("NVIDIA H200"), "h200");
  EXPECT_EQ(*Calibration::BuiltinNameOfDevice("NVIDIA H100 80GB HBM3"), "h100");
  EXPECT_EQ(*Calibration::BuiltinNameOfDevice("NVIDIA H800"), "h800");
  EXPECT_EQ(*Calibration::BuiltinNameOfDevice("NVIDIA A100-SXM4-80GB"), "a100");
  EXPECT_EQ(Calibration::Builtin(*Calibration::BuiltinNameOfDevice("NVIDIA H200"))->hbm_gbps, 4800);
  const absl::Status unknown = Calibration::BuiltinNameOfDevice("Tesla V100-SXM2-32GB").status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(unknown.message(), HasSubstr("no calibration table for the device 'Tesla V100"));
  EXPECT_THAT(unknown.message(), HasSubstr("h100, h200, h800 or a100"));
}

// KernelSeconds is the forward's kernels alone only with backward = false
// (SimOptions' default is true: ring_bench's first use of it for the
// 128-token pass read the backward as 0); the backward costs at least the
// forward again (2.5x its FLOPs, its own launch).
TEST(SimulatorTest, KernelSecondsAddsTheBackwardWhenAsked) {
  EXPECT_TRUE(SimOptions().backward);
  SimOptions o = Options(LayoutKind::kRing, 1, 128);
  o.calibration = *Calibration::Builtin("h200");
  o.backward = true;
  const double both = *KernelSeconds(o);
  o.backward = false;
  const double forward = *KernelSeconds(o);
  EXPECT_GT(forward, 1e-6 * o.calibration.LaunchUs(false));
  EXPECT_GT(both - forward, forward) << forward << " " << both;
}

// A block's kernel is charged the steps its tiles round up to (over what
// the calibration's blocks of its side did): a 776-token causal block at
// d128 makes the 28 steps of an 896-token one (7 query tiles of 128), a
// 768-token one 21.
TEST(SimulatorTest, ABlockCostsTheStepsItsTilesRoundUpTo) {
  const auto kernel_s = [](int64_t tokens) {
    SimOptions o = Options(LayoutKind::kRing, /*world=*/1, tokens);
    o.shape = {1, tokens, tokens, 32, 32, 128};
    o.calibration = *Calibration::Builtin("h200");
    const absl::StatusOr<double> s = KernelSeconds(o);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *s : 0.0;
  };
  const double t768 = kernel_s(768), t776 = kernel_s(776), t896 = kernel_s(896);
  EXPECT_NEAR(t776 / t896, 1.0, 0.05);
  EXPECT_GT(t776 / t768, 1.15);  // FLOPs alone: (776 / 768)^2 = 1.02
}

}  // namespace
}  // namespace ringattn::sim
