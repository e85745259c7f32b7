#include "comm/thread_communicator.h"

#include <numeric>

#include "absl/time/clock.h"
#include "core/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringattn::comm {
namespace {

using ::testing::HasSubstr;

absl::Span<uint8_t> Bytes(std::vector<float>& x) {
  return {reinterpret_cast<uint8_t*>(x.data()), x.size() * 4};
}

TEST(ThreadCommunicatorTest, RingPassAndCollectives) {
  const int world = 4;
  const auto statuses =
      ThreadWorld::Run(world, absl::Seconds(10), [&](Communicator& c) -> absl::Status {
        const int next = (c.rank() + 1) % world, prev = (c.rank() + world - 1) % world;
        // Three ring passes in a row keep their order.
        std::vector<float> mine(5, static_cast<float>(c.rank()));
        for (int step = 0; step < 3; ++step) {
          std::vector<float> got(5);
          auto send = c.Send(next, kTagKv, Bytes(mine));
          auto recv = c.Recv(prev, kTagKv, Bytes(got));
          RETURN_IF_ERROR(recv->Wait());
          RETURN_IF_ERROR(send->Wait());
          const float want = static_cast<float>((c.rank() - step - 1 + 3 * world) % world);
          if (got[4] != want)
            return absl::InternalError(absl::StrCat("got ", got[4], " want ", want));
          mine = got;
        }
        std::vector<int> group(world);
        std::iota(group.begin(), group.end(), 0);
        std::vector<float> one = {static_cast<float>(c.rank()) * 10};
        std::vector<float> all(world);
        RETURN_IF_ERROR(c.AllGather(group, Bytes(one), Bytes(all)));
        for (int i = 0; i < world; ++i) {
          if (all[i] != 10.0f * i) return absl::InternalError("all-gather");
        }
        std::vector<float> contrib(world * 2);
        for (int i = 0; i < world * 2; ++i) contrib[i] = static_cast<float>(c.rank() + i);
        std::vector<float> sum(2);
        RETURN_IF_ERROR(c.ReduceScatterSum(group, contrib, absl::MakeSpan(sum)));
        // sum over ranks r of (r + 2*me + j) = 6 + 4*(2*me + j)
        for (int j = 0; j < 2; ++j) {
          if (sum[j] != 6.0f + 4.0f * (2 * c.rank() + j))
            return absl::InternalError("reduce-scatter");
        }
        return c.Barrier(group);
      });
  for (const absl::Status& s : statuses) EXPECT_TRUE(s.ok()) << s;
}

TEST(ThreadCommunicatorTest, AFailingRankMakesEveryRankFailFast) {
  const absl::Time start = absl::Now();
  const auto statuses = ThreadWorld::Run(4, absl::Seconds(30), [](Communicator& c) -> absl::Status {
    if (c.rank() == 2) return absl::InternalError("injected failure");
    std::vector<float> x(3);
    return c.Recv((c.rank() + 3) % 4, kTagKv, Bytes(x))->Wait();
  });
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));  // not the 30 s timeout
  EXPECT_THAT(statuses[2].message(), HasSubstr("injected failure"));
  for (int r : {0, 1, 3}) {
    EXPECT_EQ(statuses[r].code(), absl::StatusCode::kAborted) << statuses[r];
    EXPECT_THAT(statuses[r].message(), HasSubstr("rank 2 aborted: injected failure"));
  }
}

TEST(ThreadCommunicatorTest, ASilentRankTimesOut) {
  const absl::Time start = absl::Now();
  const auto statuses =
      ThreadWorld::Run(3, absl::Milliseconds(300), [](Communicator& c) -> absl::Status {
        if (c.rank() == 0) return absl::OkStatus();  // leaves without sending
        std::vector<float> x(3);
        return c.Recv(0, kTagKv, Bytes(x))->Wait();
      });
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_TRUE(statuses[0].ok());
  for (int r : {1, 2}) {
    EXPECT_EQ(statuses[r].code(), absl::StatusCode::kDeadlineExceeded) << statuses[r];
    EXPECT_THAT(statuses[r].message(), HasSubstr("from rank 0"));
  }
}

TEST(ThreadCommunicatorTest, BadArguments) {
  ThreadWorld world(2, absl::Seconds(1));
  std::vector<float> x(2), y(3);
  EXPECT_THAT(world.rank(0).Send(5, kTagKv, Bytes(x))->Wait().message(),
              HasSubstr("peer 5 is outside [0, world = 2)"));
  const std::vector<int> group = {1};
  EXPECT_THAT(world.rank(0).AllGather(group, Bytes(x), Bytes(y)).message(),
              HasSubstr("rank 0 is not in the collective's group"));
}

}  // namespace
}  // namespace ringattn::comm
