#include "sim/fibers.h"

#include <deque>
#include <functional>
#include <vector>

#include "gtest/gtest.h"

namespace ringattn::sim::internal {
namespace {

// A ring of `n` fibers; each of `steps` steps sends a token to its
// neighbour (`step_dir` = +1: the next rank, -1: the previous) and waits
// for the one from the other side: the dependency of the ring driver.
struct Ring {
  explicit Ring(int n) : fibers(n), boxes(n), waiting(n, false) {}
  void Send(int to, int value) {
    boxes[to].push_back(value);
    if (waiting[to]) {
      waiting[to] = false;
      fibers.Wake(to);
    }
  }
  int Receive(int self) {
    while (boxes[self].empty()) {
      waiting[self] = true;
      fibers.Park();
    }
    const int v = boxes[self].front();
    boxes[self].pop_front();
    return v;
  }
  Fibers fibers;
  std::vector<std::deque<int>> boxes;
  std::vector<bool> waiting;
};

void RunRing(int n, int steps, int dir, int64_t* resumes) {
  Ring ring(n);
  std::vector<long> sums(n, 0);
  const absl::Status status = ring.fibers.Run(
      [&](int r) {
        for (int t = 0; t < steps; ++t) {
          ring.Send((r + dir + n) % n, r * 1000 + t);
          const int v = ring.Receive(r);
          EXPECT_EQ(v, ((r - dir + n) % n) * 1000 + t);  // in order
          sums[r] += v;
        }
      },
      [](absl::Span<const int>) { FAIL() << "a correct ring never stalls"; });
  ASSERT_TRUE(status.ok()) << status;
  for (int r = 0; r < n; ++r) {
    const long from = (r - dir + n) % n;
    EXPECT_EQ(sums[r], steps * from * 1000 + long{steps} * (steps - 1) / 2);
  }
  *resumes = ring.fibers.resumes();
}

TEST(FibersTest, RingsInBothDirectionsSwitchPerRankNotPerStep) {
  for (int dir : {+1, -1}) {
    int64_t resumes = 0;
    RunRing(512, 512, dir, &resumes);
    // The sweeps resume each rank a few times, not once per step (262144).
    EXPECT_LE(resumes, 4 * 512) << "direction " << dir;
  }
}

TEST(FibersTest, AStallIsReportedAtOnceAndTheWokenFibersFinish) {
  Ring ring(4);
  std::vector<int> stalled;
  bool aborted = false;
  int finished = 0;
  const absl::Status status = ring.fibers.Run(
      [&](int r) {
        if (r == 2) {  // rank 2 never sends
          ++finished;
          return;
        }
        while (ring.boxes[r].empty() && !aborted) {
          ring.waiting[r] = true;
          ring.fibers.Park();
        }
        ++finished;
      },
      [&](absl::Span<const int> parked) {
        stalled.assign(parked.begin(), parked.end());
        aborted = true;
        for (int r : parked) ring.fibers.Wake(r);
      });
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(stalled, (std::vector<int>{0, 1, 3}));
  EXPECT_EQ(finished, 4);
}

TEST(FibersTest, AStallNobodyWakesIsAnError) {
  Fibers fibers(3);
  const absl::Status status = fibers.Run(
      [&](int r) {
        if (r == 1) fibers.Park();
      },
      [](absl::Span<const int>) {});
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_NE(status.message().find("1 simulated ranks wait forever"), std::string::npos) << status;
}

TEST(FibersTest, DeepStacksFit) {
  // The default stack holds frames far deeper than the ring driver's.
  Fibers fibers(2);
  std::vector<int> depth(2, 0);
  std::function<int(int)> recurse = [&](int n) -> int {
    volatile char frame[512];
    frame[0] = static_cast<char>(n);
    return n == 0 ? frame[0] : recurse(n - 1) + 1;
  };
  ASSERT_TRUE(
      fibers.Run([&](int r) { depth[r] = recurse(200); }, [](absl::Span<const int>) {}).ok());
  EXPECT_EQ(depth, (std::vector<int>{200, 200}));
}

}  // namespace
}  // namespace ringattn::sim::internal
