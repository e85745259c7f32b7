#include "core/schedule.h"

#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace ringattn {
namespace {

using ::testing::HasSubstr;

struct Case {
  LayoutSpec layout;
  int64_t batch = 1;
  int64_t seqlen = 0;
  MaskSpec mask;
  int64_t num_kv_heads = 2;

  std::string Name() const {
    return absl::StrCat(
        LayoutKindName(layout.kind), " W=", layout.world, " R=", layout.ring_size,
        " w=", layout.stripe_width, " seqlen=", seqlen, " batch=", batch, " causal=", mask.causal,
        " window=(", mask.window_left, ",", mask.window_right, ") docs=", mask.cu_seqlens.size(),
        " padded=", !mask.key_lengths.empty(), " groups=", layout.kv_heads_per_group);
  }
};

// Random document lengths, each a multiple of `unit`, summing to `total`.
std::vector<int64_t> RandomDocuments(int64_t total, int64_t unit, std::mt19937* rng) {
  std::vector<int64_t> cu = {0};
  while (cu.back() < total) {
    const int64_t units_left = (total - cu.back()) / unit;
    std::uniform_int_distribution<int64_t> pick(0, std::min<int64_t>(units_left, 5));
    cu.push_back(cu.back() + pick(*rng) * unit);
    if (cu.size() > 6) cu.back() = total;
  }
  return cu;
}

// The global positions of the rows of the K/V buffer `rank` visits at `step`.
std::vector<int64_t> VisitingPositions(const Schedule& schedule, int rank, int step) {
  const Layout& layout = schedule.layout();
  if (schedule.pattern() == CommPattern::kRingPass) {
    return *layout.PositionIds(schedule.KvSource(rank, step));
  }
  std::vector<int64_t> all;
  for (int r = 0; r < layout.ring_size(); ++r) {
    const std::vector<int64_t> ids = *layout.PositionIds(layout.RankOf(layout.RingOf(rank), r));
    all.insert(all.end(), ids.begin(), ids.end());
  }
  return all;
}

// Over all ranks and steps, every allowed (batch, q, k, kv head) is covered
// exactly once, no disallowed one is covered, task rows carry the positions
// the layout puts there, and every emitted task has an allowed pair.
void CheckCoverage(const Case& c) {
  SCOPED_TRACE(c.Name());
  absl::StatusOr<Layout> layout = Layout::Create(c.layout, c.batch, c.seqlen, c.mask.cu_seqlens);
  ASSERT_TRUE(layout.ok()) << layout.status();
  absl::StatusOr<Mask> mask = Mask::Create(c.mask, c.batch, c.seqlen, c.seqlen);
  ASSERT_TRUE(mask.ok()) << mask.status();
  absl::StatusOr<Schedule> schedule = Schedule::Create(*layout, *mask, c.num_kv_heads);
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  const int64_t s = c.seqlen;
  std::vector<int> covered(c.batch * s * s * c.num_kv_heads, 0);
  for (int rank = 0; rank < layout->world(); ++rank) {
    const std::vector<int64_t> q_ids = *layout->PositionIds(rank);
    const auto [b0, b1] = layout->BatchRange(rank);
    for (int step = 0; step < schedule->num_steps(); ++step) {
      const std::vector<int64_t> k_ids = VisitingPositions(*schedule, rank, step);
      absl::StatusOr<std::vector<BlockTask>> tasks = schedule->Tasks(rank, step);
      ASSERT_TRUE(tasks.ok()) << tasks.status();
      for (const BlockTask& task : *tasks) {
        int64_t allowed_pairs = 0;
        for (int64_t i = 0; i < task.q.length; ++i) {
          ASSERT_EQ(task.q.At(i), q_ids.at(task.q_row + i)) << task.DebugString();
        }
        for (int64_t j = 0; j < task.k.length; ++j) {
          ASSERT_EQ(task.k.At(j), k_ids.at(task.k_row + j)) << task.DebugString();
        }
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t pairs = CountAllowedPairs(task, *mask, b);
          int64_t counted = 0;
          for (int64_t i = 0; i < task.q.length; ++i) {
            for (int64_t j = 0; j < task.k.length; ++j) {
              const int64_t q = task.q.At(i), k = task.k.At(j);
              if (!mask->Allowed(b, q, k)) continue;
              ++counted;
              for (int64_t h = task.kv_head_begin; h < task.kv_head_end; ++h) {
                ++covered[((b * s + q) * s + k) * c.num_kv_heads + h];
              }
            }
          }
          EXPECT_EQ(pairs, counted);
          allowed_pairs += counted;
        }
        EXPECT_GT(allowed_pairs, 0) << "fully masked task " << task.DebugString();
      }
    }
  }
  int64_t errors = 0;
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t q = 0; q < s; ++q) {
      for (int64_t k = 0; k < s; ++k) {
        for (int64_t h = 0; h < c.num_kv_heads; ++h) {
          const int expected = mask->Allowed(b, q, k) ? 1 : 0;
          const int got = covered[((b * s + q) * s + k) * c.num_kv_heads + h];
          if (got != expected && ++errors < 5) {
            ADD_FAILURE() << "batch " << b << " q " << q << " k " << k << " head " << h
                          << " covered " << got << " times; expected " << expected;
          }
        }
      }
    }
  }
  EXPECT_EQ(errors, 0);
}

std::vector<MaskSpec> Masks(int64_t batch, int64_t seqlen) {
  std::vector<MaskSpec> masks = {
      {},
      {.causal = true},
      {.window_left = 5, .window_right = 3},
      {.causal = true, .window_left = 7},
      {.window_left = 0, .window_right = -1},
  };
  MaskSpec padded{.causal = true};
  for (int64_t b = 0; b < batch; ++b) padded.key_lengths.push_back(seqlen - 7 * b - 3);
  masks.push_back(padded);
  return masks;
}

TEST(ScheduleTest, CoversEveryAllowedPairExactlyOnce) {
  for (LayoutKind kind : {LayoutKind::kRing, LayoutKind::kZigzag, LayoutKind::kStripe,
                          LayoutKind::kLlama3, LayoutKind::kBalanced}) {
    for (int world : {1, 2, 3, 4, 8}) {
      for (int64_t seqlen : {48, 96}) {
        for (const MaskSpec& mask : Masks(2, seqlen)) {
          Case c{
              .layout = {.kind = kind, .world = world}, .batch = 2, .seqlen = seqlen, .mask = mask};
          CheckCoverage(c);
          if (kind == LayoutKind::kStripe && seqlen % (2 * world) == 0) {
            c.layout.stripe_width = 2;
            CheckCoverage(c);
          }
        }
      }
    }
  }
}

// Documents whose lengths split evenly, and (issue #18) documents of any
// length (lognormal mixes of 1..S tokens, totals that do not divide by W):
// every allowed pair exactly once, and no task on a padding row
// (VisitingPositions would give -1 there).
TEST(ScheduleTest, VarlenCoversEveryAllowedPairExactlyOnce) {
  std::mt19937 rng(7), any_length_rng(3);
  for (LayoutKind kind : {LayoutKind::kRing, LayoutKind::kZigzag, LayoutKind::kStripe,
                          LayoutKind::kLlama3, LayoutKind::kBalanced}) {
    for (int world : {1, 2, 3, 4, 8}) {
      std::vector<std::pair<std::vector<int64_t>, std::vector<MaskSpec>>> sets;
      for (int trial = 0; trial < 3; ++trial) {
        const int64_t unit = kind == LayoutKind::kZigzag ? 2 * world
                             : kind == LayoutKind::kRing ? world
                                                         : 1;
        sets.push_back(
            {RandomDocuments(24 * world, unit, &rng),
             {MaskSpec{}, MaskSpec{.causal = true}, MaskSpec{.causal = true, .window_left = 4}}});
      }
      for (int trial = 0; trial < 4; ++trial) {
        const int64_t total = 7 + 23 * trial + world;
        sets.push_back({testing::RandomDocuments(total, 5, total, &any_length_rng),
                        {MaskSpec{.causal = true}, MaskSpec{.causal = true, .window_left = 3},
                         MaskSpec{.window_left = 2, .window_right = 4}}});
      }
      for (const auto& [cu, masks] : sets) {
        for (MaskSpec mask : masks) {
          mask.cu_seqlens = cu;
          CheckCoverage({.layout = {.kind = kind, .world = world},
                         .batch = 1,
                         .seqlen = cu.back(),
                         .mask = mask});
          if (kind == LayoutKind::kStripe && cu.back() >= 3 * world) {  // wider stripes too
            CheckCoverage({.layout = {.kind = kind, .world = world, .stripe_width = 3},
                           .batch = 1,
                           .seqlen = cu.back(),
                           .mask = mask});
          }
        }
      }
    }
  }
}

// Thousands of short documents: a query slice is paired only with the key
// slices it can see (binary search), so building every step's tasks takes
// well under a second (pairing every slice with every other took minutes
// at 20,000 documents); the tasks still hold every causal pair once.
TEST(ScheduleTest, ManyShortDocumentsScheduleFast) {
  std::vector<int64_t> cu;
  for (int64_t pos = 0; pos <= 200000; pos += 10) cu.push_back(pos);
  const int64_t expected = 20000 * 55;  // 10-token documents: 10 * 11 / 2 causal pairs each
  for (LayoutKind kind : {LayoutKind::kZigzag, LayoutKind::kStripe, LayoutKind::kRing}) {
    const absl::StatusOr<Schedule> schedule =
        Schedule::Build({.kind = kind, .world = 8}, {.causal = true, .cu_seqlens = cu},
                        {1, 200000, 200000, 1, 1, 8});
    ASSERT_TRUE(schedule.ok()) << schedule.status();
    const Mask mask = *Mask::Create({.causal = true, .cu_seqlens = cu}, 1, 200000, 200000);
    int64_t pairs = 0;
    std::vector<BlockTask> tasks;
    for (int rank = 0; rank < 8; ++rank) {
      for (int step = 0; step < schedule->num_steps(); ++step) {
        ASSERT_TRUE(schedule->TasksInto(rank, step, &tasks).ok());
        for (const BlockTask& task : tasks) pairs += CountAllowedPairs(task, mask, 0);
      }
    }
    EXPECT_EQ(pairs, expected) << LayoutKindName(kind);
  }
}

TEST(ScheduleTest, RingSizeSmallerThanWorldAndHeadGroups) {
  for (LayoutKind kind :
       {LayoutKind::kRing, LayoutKind::kZigzag, LayoutKind::kStripe, LayoutKind::kLlama3}) {
    CheckCoverage({.layout = {.kind = kind, .world = 8, .ring_size = 4},
                   .batch = 4,
                   .seqlen = 32,
                   .mask = {.causal = true}});
    CheckCoverage({.layout = {.kind = kind, .world = 4, .ring_size = 2},
                   .batch = 2,
                   .seqlen = 16,
                   .mask = {.key_lengths = {13, 9}}});
  }
  CheckCoverage({.layout = {.kind = LayoutKind::kLlama3, .world = 4, .kv_heads_per_group = 1},
                 .batch = 1,
                 .seqlen = 32,
                 .mask = {.causal = true},
                 .num_kv_heads = 4});
}

TEST(ScheduleTest, RingStepsAndSources) {
  const Layout layout = *Layout::Create({.kind = LayoutKind::kZigzag, .world = 4}, 1, 32);
  const Schedule schedule =
      *Schedule::Create(layout, *Mask::Create({.causal = true}, 1, 32, 32), 1);
  EXPECT_EQ(schedule.num_steps(), 4);
  EXPECT_EQ(schedule.pattern(), CommPattern::kRingPass);
  EXPECT_EQ(schedule.KvSource(1, 2), 3);
  EXPECT_EQ(schedule.NextRank(3), 0);
  EXPECT_EQ(schedule.PrevRank(0), 3);
  // Zigzag under a causal mask: a source below the rank contributes its
  // first chunk to both local chunks; a source above contributes both of its
  // chunks to the second local chunk only.
  const std::vector<BlockTask> below = *schedule.Tasks(2, 1);  // source 1
  ASSERT_EQ(below.size(), 2u);
  for (const BlockTask& t : below) EXPECT_EQ(t.k, PositionRun::Contiguous(4, 4));
  const std::vector<BlockTask> above = *schedule.Tasks(1, 3);  // source 2
  ASSERT_EQ(above.size(), 2u);
  for (const BlockTask& t : above) EXPECT_EQ(t.q, PositionRun::Contiguous(24, 4));
  // The last rank's chunks, 3 and 4, follow on in rows and positions: one
  // run of keys, one task where two pieces would be.
  const std::vector<BlockTask> middle = *schedule.Tasks(1, 2);  // source 3
  ASSERT_EQ(middle.size(), 1u);
  EXPECT_EQ(middle[0].q_row, 4);
  EXPECT_EQ(middle[0].q, PositionRun::Contiguous(24, 4));
  EXPECT_EQ(middle[0].k_row, 0);
  EXPECT_EQ(middle[0].k, PositionRun::Contiguous(12, 8));
  const std::vector<BlockTask> own = *schedule.Tasks(3, 0);
  ASSERT_EQ(own.size(), 1u);
  EXPECT_EQ(own[0].q, PositionRun::Contiguous(12, 8));
  EXPECT_EQ(own[0].k, PositionRun::Contiguous(12, 8));
}

// At ring size 1 a rank holds the whole sequence in order whatever the
// layout: one causal task a step (and one per document with documents),
// as the contiguous ring has, not zigzag's three pieces per chunk pair.
TEST(ScheduleTest, OneRankRingIsOneTaskPerDocument) {
  for (const LayoutKind kind : {LayoutKind::kRing, LayoutKind::kZigzag, LayoutKind::kStripe}) {
    SCOPED_TRACE(static_cast<int>(kind));
    const Layout layout = *Layout::Create({.kind = kind, .world = 1}, 2, 64);
    const Schedule schedule =
        *Schedule::Create(layout, *Mask::Create({.causal = true}, 2, 64, 64), 2);
    const std::vector<BlockTask> tasks = *schedule.Tasks(0, 0);
    ASSERT_EQ(tasks.size(), 1u);
    EXPECT_EQ(tasks[0].q, PositionRun::Contiguous(0, 64));
    EXPECT_EQ(tasks[0].k, PositionRun::Contiguous(0, 64));
  }
  const std::vector<int64_t> cu_seqlens = {0, 24, 40, 64};
  const Layout varlen =
      *Layout::Create({.kind = LayoutKind::kZigzag, .world = 1}, 1, 64, cu_seqlens);
  const Schedule schedule = *Schedule::Create(
      varlen, *Mask::Create({.causal = true, .cu_seqlens = cu_seqlens}, 1, 64, 64), 1);
  const std::vector<BlockTask> tasks = *schedule.Tasks(0, 0);
  ASSERT_EQ(tasks.size(), 3u);
  for (size_t i = 0; i < tasks.size(); ++i) {
    const int64_t begin = cu_seqlens[i], length = cu_seqlens[i + 1] - begin;
    EXPECT_EQ(tasks[i].q, PositionRun::Contiguous(begin, length));
    EXPECT_EQ(tasks[i].k, PositionRun::Contiguous(begin, length));
    EXPECT_EQ(tasks[i].q_row, begin);
  }
}

TEST(ScheduleTest, Llama3TrimsTheGatheredKeysToTheCausalPrefix) {
  const Layout layout =
      *Layout::Create({.kind = LayoutKind::kLlama3, .world = 4, .kv_heads_per_group = 2}, 1, 32);
  const Schedule schedule =
      *Schedule::Create(layout, *Mask::Create({.causal = true}, 1, 32, 32), 4);
  EXPECT_EQ(schedule.pattern(), CommPattern::kAllGather);
  EXPECT_EQ(schedule.num_steps(), 2);
  const std::vector<BlockTask> tasks = *schedule.Tasks(1, 1);
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0].k, PositionRun::Contiguous(0, 16));
  EXPECT_EQ(tasks[0].kv_head_begin, 2);
  EXPECT_EQ(tasks[0].kv_head_end, 4);
}

// A ring of one gathers nothing: llama3 there is one ring step over every
// head on the rank's own K/V (each rank of W = 2 rings of one its own batch
// row), the head groups as before only when asked.
TEST(ScheduleTest, Llama3RingOfOneIsOneStepOverEveryHead) {
  const Mask mask = *Mask::Create({.causal = true}, 2, 32, 32);
  const Layout layout = *Layout::Create(
      {.kind = LayoutKind::kLlama3, .world = 2, .ring_size = 1, .kv_heads_per_group = 2}, 2, 32);
  const Schedule whole = *Schedule::Create(layout, mask, 4);
  EXPECT_EQ(whole.pattern(), CommPattern::kRingPass);
  EXPECT_EQ(whole.num_steps(), 1);
  for (int rank : {0, 1}) {
    EXPECT_EQ(whole.KvSource(rank, 0), rank);
    const std::vector<BlockTask> tasks = *whole.Tasks(rank, 0);
    ASSERT_EQ(tasks.size(), 1u);
    EXPECT_EQ(tasks[0].q, PositionRun::Contiguous(0, 32));
    EXPECT_EQ(tasks[0].k, PositionRun::Contiguous(0, 32));
    EXPECT_EQ(tasks[0].kv_head_begin, 0);
    EXPECT_EQ(tasks[0].kv_head_end, 4);
  }
  const Schedule groups = *Schedule::Create(layout, mask, 4, {.llama3_ring_of_one_whole = false});
  EXPECT_EQ(groups.pattern(), CommPattern::kAllGather);
  EXPECT_EQ(groups.num_steps(), 2);
  EXPECT_EQ(groups.Tasks(0, 1)->at(0).kv_head_begin, 2);
  // A group that does not divide the heads is still an error.
  EXPECT_FALSE(Schedule::Create(layout, mask, 3).ok());
}

// Stripes' runs (strided, or groups of a width on one period) are counted
// in O(width), not per row: the same counts as pair by pair, for random
// runs, windows and key limits.
TEST(ScheduleTest, StripedPairCountsMatchPairByPair) {
  std::mt19937 rng(7);
  const auto uniform = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  for (int trial = 0; trial < 3000; ++trial) {
    const int64_t width = uniform(1, 4);
    const int64_t period = width * uniform(1, 5);
    const auto run = [&](int64_t base, int64_t length) {
      return width == 1 ? PositionRun::Strided(base, length, period)
                        : PositionRun::Grouped(base, length, width, period);
    };
    const PositionRun q = run(uniform(0, 20), uniform(1, 24));
    const PositionRun k = run(uniform(0, 20), uniform(1, 24));
    const int64_t seqlen = std::max(q.last(), k.last()) + 1;
    MaskSpec spec;
    spec.causal = uniform(0, 1) == 1;
    spec.window_left = uniform(-1, 12);
    if (!spec.causal) spec.window_right = uniform(-1, 12);
    if (uniform(0, 1) == 1) spec.key_lengths = {uniform(0, seqlen)};
    absl::StatusOr<Mask> mask = Mask::Create(spec, 1, seqlen, seqlen);
    ASSERT_TRUE(mask.ok()) << mask.status();
    const BlockTask task{0, q, 0, k, 0, 1};
    int64_t counted = 0;
    for (int64_t i = 0; i < q.length; ++i) {
      for (int64_t j = 0; j < k.length; ++j) counted += mask->Allowed(0, q.At(i), k.At(j));
    }
    ASSERT_EQ(CountAllowedPairs(task, *mask, 0), counted)
        << task.DebugString() << " " << mask->DebugString();
  }
}

TEST(ScheduleTest, Errors) {
  const Layout layout = *Layout::Create({.world = 2}, 1, 8);
  const Mask mask = *Mask::Create({}, 1, 8, 8);
  EXPECT_THAT(Schedule::Create(layout, *Mask::Create({}, 1, 8, 10), 1).status().message(),
              HasSubstr("ring schedules shard one sequence"));
  const Layout llama3 =
      *Layout::Create({.kind = LayoutKind::kLlama3, .world = 2, .kv_heads_per_group = 3}, 1, 8);
  EXPECT_THAT(Schedule::Create(llama3, mask, 4).status().message(),
              HasSubstr("kv_heads_per_group 3 does not divide num_kv_heads 4"));
  const Schedule schedule = *Schedule::Create(layout, mask, 1);
  EXPECT_THAT(schedule.Tasks(2, 0).status().message(),
              HasSubstr("rank 2 is outside [0, world = 2)"));
  EXPECT_THAT(schedule.Tasks(0, 2).status().message(),
              HasSubstr("step 2 is outside [0, num_steps = 2)"));
}

}  // namespace
}  // namespace ringattn
