#include "core/fresh_regions.h"

#include <gtest/gtest.h>

namespace ringattn {
namespace {

TEST(FreshRegionsTest, AFirstTouchIsFreshAndAnOverlappingOneIsNot) {
  FreshRegions regions;
  EXPECT_TRUE(regions.Touch(0, 512, 0, 8));
  EXPECT_FALSE(regions.Touch(0, 512, 0, 8));    // the same rows again (a second shard)
  EXPECT_FALSE(regions.Touch(256, 768, 4, 6));  // overlaps in rows and heads
  EXPECT_TRUE(regions.Touch(768, 1024, 0, 8));  // rows after every earlier one
  EXPECT_TRUE(regions.Touch(0, 512, 8, 16));    // other heads
  EXPECT_TRUE(regions.Touch(512, 768, 8, 16));  // rows and heads no one wrote
  EXPECT_FALSE(regions.Touch(767, 769, 7, 9));  // a corner of two earlier ones
}

TEST(FreshRegionsTest, EdgesDoNotOverlap) {
  FreshRegions regions;
  EXPECT_TRUE(regions.Touch(0, 100, 0, 4));
  EXPECT_TRUE(regions.Touch(100, 200, 0, 4));
  EXPECT_TRUE(regions.Touch(0, 200, 4, 8));
  EXPECT_FALSE(regions.Touch(99, 101, 3, 5));
}

TEST(FreshRegionsTest, ResetMakesEverythingFreshAndTouchAllNothing) {
  FreshRegions regions;
  EXPECT_TRUE(regions.Touch(0, 10, 0, 1));
  regions.Reset();
  EXPECT_TRUE(regions.Touch(0, 10, 0, 1));
  regions.TouchAll();
  EXPECT_FALSE(regions.Touch(10, 20, 0, 1));
  EXPECT_FALSE(regions.Touch(100, 200, 5, 6));
  regions.Reset();
  EXPECT_TRUE(regions.Touch(100, 200, 5, 6));
}

TEST(FreshRegionsTest, EmptyRectanglesAreNotFresh) {
  FreshRegions regions;
  EXPECT_FALSE(regions.Touch(5, 5, 0, 4));
  EXPECT_FALSE(regions.Touch(0, 4, 2, 2));
  EXPECT_TRUE(regions.Touch(0, 4, 0, 4));
}

TEST(FreshRegionsTest, TouchStateMarksATasksQueryRowsAndKvHeads) {
  FreshRegions regions;
  BlockTask task;
  task.q_row = 100;
  task.q.length = 50;
  task.kv_head_begin = 2;
  task.kv_head_end = 4;
  EXPECT_TRUE(regions.TouchState(task));
  EXPECT_FALSE(regions.TouchState(task));       // a second shard of the task
  EXPECT_FALSE(regions.Touch(149, 150, 3, 4));  // its last row, its last kv head
  EXPECT_TRUE(regions.Touch(150, 151, 2, 4));   // the row after it
  EXPECT_TRUE(regions.Touch(100, 150, 4, 5));   // the kv head after it
}

// Whether writes leave an accumulator of unknown contents as they would a
// zeroed one (no cells found): a step of two tasks that store the whole
// buffer between them, one after another or side by side in heads; an add
// after its rows were stored; an add before (or without) a store; a part
// of the buffer no store reached.
TEST(FindUnstoredCellsTest, NoneWhereStoresCoverTheWholeBeforeAnyAdd) {
  const auto StoresCoverBeforeAdds = [](absl::Span<const RegionWrite> writes,
                                        const RegionWrite& whole) {
    return FindUnstoredCells(writes, whole).empty();
  };
  const RegionWrite whole{0, 1024, 0, 8, false};
  EXPECT_TRUE(StoresCoverBeforeAdds({{0, 512, 0, 8, true}, {512, 1024, 0, 8, true}}, whole));
  EXPECT_TRUE(StoresCoverBeforeAdds({{0, 1024, 0, 4, true}, {0, 1024, 4, 8, true}}, whole));
  EXPECT_TRUE(StoresCoverBeforeAdds(
      {{0, 1024, 0, 8, true}, {100, 300, 2, 3, false}, {0, 1024, 0, 8, false}}, whole));
  EXPECT_FALSE(StoresCoverBeforeAdds({{0, 512, 0, 8, false}, {0, 1024, 0, 8, true}}, whole));
  EXPECT_FALSE(StoresCoverBeforeAdds(
      {{0, 512, 0, 8, true}, {256, 768, 0, 8, false}, {512, 1024, 0, 8, true}}, whole));
  EXPECT_FALSE(StoresCoverBeforeAdds({{0, 1000, 0, 8, true}}, whole));  // rows 1000.. unwritten
  EXPECT_FALSE(StoresCoverBeforeAdds({{0, 1024, 0, 7, true}}, whole));  // head 7 unwritten
  EXPECT_FALSE(StoresCoverBeforeAdds({}, whole));
  // Empty writes write nothing; an empty whole needs nothing.
  EXPECT_TRUE(StoresCoverBeforeAdds({{0, 0, 0, 8, false}, {0, 1024, 0, 8, true}}, whole));
  EXPECT_TRUE(StoresCoverBeforeAdds({}, {5, 5, 0, 8, false}));
}

// The cells to zero first and the cells no write reaches, as rectangles:
// a zigzag step on an earlier rank's block (the first half of the rows
// stored, the second unwritten), an add before a store, heads split between
// tasks, and bands merged where they match.
TEST(FindUnstoredCellsTest, NamesTheCellsAddedFirstAndTheCellsUnwritten) {
  const RegionWrite whole{0, 1024, 0, 8, false};
  UnstoredCells cells = FindUnstoredCells({{0, 512, 0, 8, true}}, whole);
  EXPECT_TRUE(cells.added_first.empty());
  EXPECT_EQ(cells.unwritten, (std::vector<Region>{{512, 1024, 0, 8}}));

  cells = FindUnstoredCells({{0, 512, 0, 8, false}, {0, 1024, 0, 8, true}}, whole);
  EXPECT_EQ(cells.added_first, (std::vector<Region>{{0, 512, 0, 8}}));
  EXPECT_TRUE(cells.unwritten.empty());

  // Heads 0-3 stored over every row, heads 4-7 only over rows 0-99 and
  // 900-1023: the middle of heads 4-7 unwritten; an add to rows 200-299 of
  // head 0 after its store changes nothing.
  cells = FindUnstoredCells({{0, 1024, 0, 4, true},
                             {0, 100, 4, 8, true},
                             {900, 1024, 4, 8, true},
                             {200, 300, 0, 1, false}},
                            whole);
  EXPECT_TRUE(cells.added_first.empty());
  EXPECT_EQ(cells.unwritten, (std::vector<Region>{{100, 900, 4, 8}}));

  // Two unwritten runs in one band: heads 2 and 5-7 of rows 0-511.
  cells = FindUnstoredCells({{0, 1024, 0, 2, true},
                             {0, 1024, 3, 5, true},
                             {512, 1024, 2, 3, true},
                             {512, 1024, 5, 8, true}},
                            whole);
  EXPECT_EQ(cells.unwritten, (std::vector<Region>{{0, 512, 2, 3}, {0, 512, 5, 8}}));

  // Nothing written: the whole; a write beyond `whole` counts where it overlaps.
  cells = FindUnstoredCells({}, whole);
  EXPECT_EQ(cells.unwritten, (std::vector<Region>{{0, 1024, 0, 8}}));
  cells = FindUnstoredCells({{512, 2048, 0, 16, true}}, whole);
  EXPECT_EQ(cells.unwritten, (std::vector<Region>{{0, 512, 0, 8}}));
  EXPECT_TRUE(FindUnstoredCells({{0, 1024, 0, 8, true}}, whole).empty());
  EXPECT_TRUE(FindUnstoredCells({}, {5, 5, 0, 8, false}).empty());
}

// The backward step's plan: without a sum to follow every unstored cell is
// zeroed; with one, the unwritten cells are left to it and only the cells
// added to first are zeroed; stores that cover the buffer need neither.
TEST(PlanDkvZeroingTest, LeavesUnwrittenCellsOnlyToASumThatFollows) {
  const RegionWrite whole{0, 1024, 0, 8, false};
  const std::vector<RegionWrite> half{{0, 256, 0, 8, false}, {0, 512, 0, 8, true}};
  DkvZeroing plan = PlanDkvZeroing(half, whole, /*sum_follows=*/false);
  EXPECT_EQ(plan.zero, (std::vector<Region>{{0, 256, 0, 8}, {512, 1024, 0, 8}}));
  EXPECT_TRUE(plan.left.empty());
  plan = PlanDkvZeroing(half, whole, /*sum_follows=*/true);
  EXPECT_EQ(plan.zero, (std::vector<Region>{{0, 256, 0, 8}}));
  EXPECT_EQ(plan.left, (std::vector<Region>{{512, 1024, 0, 8}}));
  EXPECT_EQ(CellCount(plan.zero) + CellCount(plan.left), 768 * 8);
  for (const bool sum_follows : {false, true}) {
    plan = PlanDkvZeroing({{0, 1024, 0, 8, true}}, whole, sum_follows);
    EXPECT_TRUE(plan.zero.empty() && plan.left.empty());
  }
}

}  // namespace
}  // namespace ringattn
