// Device communicators (GPU tests; they skip with a message elsewhere) and
// the launcher environment (runs everywhere).
#include "comm/cuda_communicator.h"

#include <cuda_runtime.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "comm/launch_env.h"
#include "comm/nccl_communicator.h"
#include "comm/thread_communicator.h"
#include "core/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringattn::comm {
namespace {

using ::testing::HasSubstr;

int Devices() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

// Streams for `world` ranks, rank r on device r % devices.
struct Ranks {
  Ranks(int world, int devices) {
    for (int r = 0; r < world; ++r) {
      cudaStream_t s = nullptr;
      cudaSetDevice(r % devices);
      cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
      placements.push_back({r % devices, s});
    }
  }
  ~Ranks() {
    for (const CudaPlacement& p : placements) {
      cudaSetDevice(p.device);
      cudaStreamDestroy(p.stream);
    }
  }
  std::vector<CudaPlacement> placements;
};

using MakeWorld =
    std::function<std::vector<Communicator*>(const std::vector<CudaPlacement>&, absl::Duration)>;

// Runs fn(rank, comm) on a thread per rank; returns the statuses.
std::vector<absl::Status> OnThreads(
    const std::vector<Communicator*>& comms, const std::vector<CudaPlacement>& placements,
    const std::function<absl::Status(int, Communicator&, cudaStream_t)>& fn) {
  std::vector<absl::Status> statuses(comms.size());
  std::vector<std::thread> threads;
  for (size_t r = 0; r < comms.size(); ++r) {
    threads.emplace_back([&, r] {
      cudaSetDevice(placements[r].device);
      statuses[r] = fn(static_cast<int>(r), *comms[r], placements[r].stream);
    });
  }
  for (std::thread& t : threads) t.join();
  return statuses;
}

// A ring pass of device buffers (batched send/recv), an all-gather, a
// reduce-scatter and a host-memory exchange, all checked on the host.
void ExerciseWorld(const std::vector<Communicator*>& comms,
                   const std::vector<CudaPlacement>& placements) {
  const int world = static_cast<int>(comms.size());
  constexpr int kN = 1 << 16;
  const auto statuses = OnThreads(
      comms, placements, [&](int r, Communicator& c, cudaStream_t stream) -> absl::Status {
        std::vector<float> mine(kN), host(kN * world);
        for (int i = 0; i < kN; ++i) mine[i] = r * 1000.0f + i % 97;
        float *send = nullptr, *recv = nullptr, *gathered = nullptr, *reduced = nullptr;
        cudaMalloc(&send, kN * 4);
        cudaMalloc(&recv, kN * 4);
        cudaMalloc(&gathered, kN * 4 * world);
        cudaMalloc(&reduced, kN * 4 / world);
        cudaMemcpyAsync(send, mine.data(), kN * 4, cudaMemcpyHostToDevice, stream);
        const auto bytes = [](float* p, size_t n) {
          return absl::Span<uint8_t>(reinterpret_cast<uint8_t*>(p), n * 4);
        };
        std::vector<std::unique_ptr<Communicator::Request>> requests;
        c.StartBatch();
        requests.push_back(c.Send((r + 1) % world, kTagKv, bytes(send, kN)));
        requests.push_back(c.Recv((r + world - 1) % world, kTagKv, bytes(recv, kN)));
        c.EndBatch();
        RETURN_IF_ERROR(WaitAll(requests));
        std::vector<int> group(world);
        for (int i = 0; i < world; ++i) group[i] = i;
        RETURN_IF_ERROR(
            c.StartAllGather(group, bytes(send, kN), bytes(gathered, kN * world))->Wait());
        RETURN_IF_ERROR(c.ReduceScatterSum(group, absl::Span<const float>(send, kN),
                                           absl::Span<float>(reduced, kN / world)));
        RETURN_IF_ERROR(c.Synchronize());
        std::vector<float> got(kN), all(kN * world), sum(kN / world);
        cudaMemcpy(got.data(), recv, kN * 4, cudaMemcpyDeviceToHost);
        cudaMemcpy(all.data(), gathered, kN * 4 * world, cudaMemcpyDeviceToHost);
        cudaMemcpy(sum.data(), reduced, kN * 4 / world, cudaMemcpyDeviceToHost);
        cudaFree(send);
        cudaFree(recv);
        cudaFree(gathered);
        cudaFree(reduced);
        const int prev = (r + world - 1) % world;
        for (int i = 0; i < kN; ++i) {
          if (got[i] != prev * 1000.0f + i % 97) {
            return absl::InternalError(absl::StrCat("ring value ", i, ": ", got[i]));
          }
        }
        for (int j = 0; j < world; ++j) {
          for (int i = 0; i < kN; ++i) {
            if (all[j * kN + i] != j * 1000.0f + i % 97) {
              return absl::InternalError(
                  absl::StrCat("gathered ", j, "/", i, ": ", all[j * kN + i]));
            }
          }
        }
        for (int i = 0; i < kN / world; ++i) {
          float expect = 0;
          for (int j = 0; j < world; ++j) expect += j * 1000.0f + (r * (kN / world) + i) % 97;
          if (sum[i] != expect) {
            return absl::InternalError(absl::StrCat("reduced ", i, ": ", sum[i], " vs ", expect));
          }
        }
        // Host memory: the host reads the bytes right after Wait.
        std::vector<int> token(1, r), tokens(world, -1);
        RETURN_IF_ERROR(c.AllGather(
            group, absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(token.data()), 4),
            absl::Span<uint8_t>(reinterpret_cast<uint8_t*>(tokens.data()), 4 * world)));
        for (int j = 0; j < world; ++j) {
          if (tokens[j] != j) return absl::InternalError(absl::StrCat("host token ", j));
        }
        return absl::OkStatus();
      });
  for (int r = 0; r < world; ++r)
    EXPECT_TRUE(statuses[r].ok()) << "rank " << r << ": " << statuses[r];
}

// One pass of rank `c` with rank 1: kExchangeBytes sent from `buffer` and
// received into it in one batch, then the pass's end (Synchronize).
constexpr int64_t kExchangeBytes = 4096;
absl::Status ExchangeWithRank1(Communicator& c, float* buffer) {
  std::vector<std::unique_ptr<Communicator::Request>> requests;
  const absl::Span<uint8_t> bytes(reinterpret_cast<uint8_t*>(buffer), kExchangeBytes);
  c.StartBatch();
  requests.push_back(c.Send(1, kTagKv, bytes));
  requests.push_back(c.Recv(1, kTagKv, bytes));
  c.EndBatch();
  const absl::Status s = WaitAll(requests);
  return s.ok() ? c.Synchronize() : s;
}

// Rank 0 and 1 exchange with each other.
absl::Status ExchangeWithRank1Or0(Communicator& c, float* buffer) {
  std::vector<std::unique_ptr<Communicator::Request>> requests;
  const absl::Span<uint8_t> bytes(reinterpret_cast<uint8_t*>(buffer), kExchangeBytes);
  const int peer = 1 - c.rank();
  c.StartBatch();
  requests.push_back(c.Send(peer, kTagKv, bytes));
  requests.push_back(c.Recv(peer, kTagKv, bytes));
  c.EndBatch();
  const absl::Status s = WaitAll(requests);
  return s.ok() ? c.Synchronize() : s;
}

// Rank 1 leaves without a word (after one exchange with rank 0 where
// `exchange_first`: the ranks connected); rank 0's exchange fails within
// the timeout.
void SilentPeerFails(const std::vector<Communicator*>& comms,
                     const std::vector<CudaPlacement>& placements, bool exchange_first = false) {
  const absl::Time start = absl::Now();
  const auto statuses =
      OnThreads(comms, placements, [&](int r, Communicator& c, cudaStream_t) -> absl::Status {
        float* buffer = nullptr;
        cudaMalloc(&buffer, kExchangeBytes);
        absl::Status s;
        if (exchange_first) s = ExchangeWithRank1Or0(c, buffer);
        if (s.ok() && r == 0) s = ExchangeWithRank1(c, buffer);
        cudaFree(buffer);
        return s;
      });
  EXPECT_TRUE(statuses[1].ok()) << statuses[1];
  EXPECT_FALSE(statuses[0].ok());
  EXPECT_TRUE(absl::IsDeadlineExceeded(statuses[0]) || absl::IsAborted(statuses[0])) << statuses[0];
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
}

TEST(DeviceCopyWorldTest, VirtualRanksOnOneGpuExchange) {
  if (Devices() == 0) GTEST_SKIP() << "no CUDA device";
  for (int world : {2, 4}) {
    Ranks ranks(world, 1);
    auto w = DeviceCopyWorld::Create(ranks.placements, absl::Seconds(60));
    ASSERT_TRUE(w.ok()) << w.status();
    std::vector<Communicator*> comms;
    for (int r = 0; r < world; ++r) comms.push_back(&(*w)->rank(r));
    ExerciseWorld(comms, ranks.placements);
  }
}

TEST(DeviceCopyWorldTest, SilentPeerGivesDeadlineExceeded) {
  if (Devices() == 0) GTEST_SKIP() << "no CUDA device";
  Ranks ranks(2, 1);
  auto w = DeviceCopyWorld::Create(ranks.placements, absl::Seconds(2));
  ASSERT_TRUE(w.ok()) << w.status();
  SilentPeerFails({&(*w)->rank(0), &(*w)->rank(1)}, ranks.placements);
}

// Work that holds a stream for `seconds` (a host function).
void HoldStream(cudaStream_t stream, double seconds) {
  static double held;
  held = seconds;
  ASSERT_EQ(
      cudaLaunchHostFunc(
          stream,
          [](void* s) {
            std::this_thread::sleep_for(std::chrono::duration<double>(*static_cast<double*>(s)));
          },
          &held),
      cudaSuccess);
}

// Two virtual ranks on one GPU (skips without one). Start: rank 0, with
// the given timeout, defers its synchronization and its stream is held for
// `hold_s` seconds from `start_`.
class DeferredSynchronizeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Devices() == 0) GTEST_SKIP() << "no CUDA device";
  }
  // False (the failure reported) when the world cannot be made.
  bool Start(absl::Duration timeout, double hold_s) {
    ranks_.emplace(2, 1);
    auto w = DeviceCopyWorld::Create(ranks_->placements, timeout);
    if (!w.ok()) {
      ADD_FAILURE() << w.status();
      return false;
    }
    world_ = *std::move(w);
    comm().SetDeferredSynchronize(true);
    HoldStream(stream(), hold_s);
    start_ = absl::Now();
    return true;
  }
  CudaCommunicator& comm() { return static_cast<CudaCommunicator&>(world_->rank(0)); }
  cudaStream_t stream() const { return ranks_->placements[0].stream; }
  absl::Duration Elapsed() const { return absl::Now() - start_; }

  std::optional<Ranks> ranks_;  // outlives the world bound to its streams
  std::unique_ptr<DeviceCopyWorld> world_;
  absl::Time start_;
};

// Deferred synchronization returns at once; at most kPassesAhead passes are
// outstanding (the next Synchronize waits for the oldest); once the work is
// done, passes go on.
TEST_F(DeferredSynchronizeTest, RunsAheadAtMostTwoPasses) {
  ASSERT_TRUE(Start(absl::Seconds(60), 1.0));
  for (size_t i = 0; i < CudaCommunicator::kPassesAhead; ++i) {
    ASSERT_TRUE(comm().Synchronize().ok());
  }
  EXPECT_LT(Elapsed(), absl::Milliseconds(500));
  ASSERT_TRUE(comm().Synchronize().ok());  // the third waits for the first
  EXPECT_GE(Elapsed(), absl::Milliseconds(900));
  ASSERT_EQ(cudaStreamSynchronize(stream()), cudaSuccess);
  EXPECT_TRUE(comm().Synchronize().ok());
}

// A pass that does not complete within the timeout: the call that ended it
// has returned, the watchdog aborts the world, and the rank's next call
// (and its peers') fail, naming the deadline.
TEST_F(DeferredSynchronizeTest, ReportsAStuckPassAtTheNextCall) {
  ASSERT_TRUE(Start(absl::Milliseconds(500), 2.0));
  ASSERT_TRUE(comm().Synchronize().ok());
  EXPECT_LT(Elapsed(), absl::Milliseconds(300));
  absl::SleepFor(absl::Milliseconds(1200));  // past the timeout: the watchdog aborted
  const absl::Status next = comm().Synchronize();
  EXPECT_TRUE(absl::IsAborted(next)) << next;
  EXPECT_THAT(next.message(), HasSubstr("did not complete within 500ms"));
  EXPECT_TRUE(absl::IsAborted(comm().WaitForPasses()));  // the explicit check says so too
  std::vector<std::unique_ptr<Communicator::Request>> requests;
  float* buffer = nullptr;
  ASSERT_EQ(cudaMalloc(&buffer, 64), cudaSuccess);
  requests.push_back(world_->rank(1).Recv(0, kTagKv, {reinterpret_cast<uint8_t*>(buffer), 64}));
  EXPECT_TRUE(absl::IsAborted(requests[0]->Wait()));  // the peer knows at once
  ASSERT_EQ(cudaStreamSynchronize(stream()), cudaSuccess);
  cudaFree(buffer);
}

// An NCCL world whose ranks issue their groups as RINGATTN_NCCL_ISSUE says.
absl::StatusOr<std::unique_ptr<NcclWorld>> NcclWorldIssuing(const char* issue, const Ranks& ranks,
                                                            absl::Duration timeout) {
  setenv("RINGATTN_NCCL_ISSUE", issue, 1);
  auto w = NcclWorld::Create(ranks.placements, timeout);
  unsetenv("RINGATTN_NCCL_ISSUE");
  return w;
}

TEST(NcclWorldTest, TwoGpusExchange) {
  if (Devices() < 2) GTEST_SKIP() << "needs two CUDA devices";
  for (const char* issue : {"nonblocking", "blocking"}) {
    SCOPED_TRACE(issue);
    Ranks ranks(2, 2);
    auto w = NcclWorldIssuing(issue, ranks, absl::Seconds(60));
    ASSERT_TRUE(w.ok()) << w.status();
    ExerciseWorld({&(*w)->rank(0), &(*w)->rank(1)}, ranks.placements);
  }
}

TEST(NcclWorldTest, SilentPeerGivesAnErrorNotAHang) {
  if (Devices() < 2) GTEST_SKIP() << "needs two CUDA devices";
  Ranks ranks(2, 2);
  auto w = NcclWorld::Create(ranks.placements, absl::Seconds(3));
  ASSERT_TRUE(w.ok()) << w.status();
  SilentPeerFails({&(*w)->rank(0), &(*w)->rank(1)}, ranks.placements);
}

// A peer silent after the ranks exchanged once: rank 0's second exchange
// (with RINGATTN_NCCL_ISSUE=blocking on the blocking communicator,
// connected to the peer at creation) enqueues without waiting for the
// peer; the transfer's wait fails within the timeout and the abort ends it.
// The same with every group non-blocking.
TEST(NcclWorldTest, PeerSilentAfterConnectingGivesAnErrorNotAHang) {
  if (Devices() < 2) GTEST_SKIP() << "needs two CUDA devices";
  for (const char* issue : {"blocking", "nonblocking"}) {
    SCOPED_TRACE(issue);
    Ranks ranks(2, 2);
    auto w = NcclWorldIssuing(issue, ranks, absl::Seconds(3));
    ASSERT_TRUE(w.ok()) << w.status();
    SilentPeerFails({&(*w)->rank(0), &(*w)->rank(1)}, ranks.placements, /*exchange_first=*/true);
  }
}

TEST(NcclIssueTest, NonBlockingUnlessTheEnvironmentSaysBlocking) {
  EXPECT_EQ(*NcclIssueFromEnv(nullptr), NcclIssue::kNonBlocking);
  EXPECT_EQ(*NcclIssueFromEnv(""), NcclIssue::kNonBlocking);
  EXPECT_EQ(*NcclIssueFromEnv("blocking"), NcclIssue::kBlocking);
  EXPECT_EQ(*NcclIssueFromEnv("nonblocking"), NcclIssue::kNonBlocking);
  const absl::StatusOr<NcclIssue> bad = NcclIssueFromEnv("fast");
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status()));
  EXPECT_THAT(bad.status().message(), HasSubstr("expected blocking or nonblocking"));
  const auto w = NcclWorldIssuing("fast", Ranks(1, 1), absl::Seconds(1));
  EXPECT_TRUE(absl::IsInvalidArgument(w.status())) << w.status();
  EXPECT_THAT(w.status().message(), HasSubstr("RINGATTN_NCCL_ISSUE is 'fast'"));
}

// Deferred synchronization over NCCL: rank 0's pass with a silent peer
// returns at once; the watchdog aborts NCCL after the timeout, so the
// stream drains (no hang) and the next call fails.
TEST(NcclWorldTest, DeferredPassWithASilentPeerDrainsAndFailsTheNextCall) {
  if (Devices() < 2) GTEST_SKIP() << "needs two CUDA devices";
  Ranks ranks(2, 2);
  auto w = NcclWorld::Create(ranks.placements, absl::Seconds(3));
  ASSERT_TRUE(w.ok()) << w.status();
  auto& c = static_cast<CudaCommunicator&>((*w)->rank(0));
  c.SetDeferredSynchronize(true);
  cudaSetDevice(ranks.placements[0].device);
  float* buffer = nullptr;
  ASSERT_EQ(cudaMalloc(&buffer, kExchangeBytes), cudaSuccess);
  const absl::Time start = absl::Now();
  absl::Status s = ExchangeWithRank1(c, buffer);
  if (s.ok()) {  // enqueued: the host went on
    EXPECT_LT(absl::Now() - start, absl::Seconds(2));
    cudaStreamSynchronize(ranks.placements[0].stream);  // drains once the watchdog aborted
    s = c.Synchronize();
  }
  EXPECT_TRUE(absl::IsDeadlineExceeded(s) || absl::IsAborted(s)) << s;
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  cudaFree(buffer);
}

// The plain NCCL ring ring_bench prints beside its own hop: every rank's
// bytes arrive at the next (checked inside), in a positive time.
TEST(NcclWorldTest, PlainRingMovesEveryRanksBytes) {
  if (Devices() < 2) GTEST_SKIP() << "needs two CUDA devices";
  Ranks ranks(2, 2);
  auto w = NcclWorld::Create(ranks.placements, absl::Seconds(60));
  ASSERT_TRUE(w.ok()) << w.status();
  std::vector<double> seconds(2, 0);
  const auto statuses =
      OnThreads({&(*w)->rank(0), &(*w)->rank(1)}, ranks.placements,
                [&](int r, Communicator& c, cudaStream_t) -> absl::Status {
                  ASSIGN_OR_RETURN(seconds[r], NcclPlainRingSeconds(c, 1 << 20, 3));
                  return absl::OkStatus();
                });
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(statuses[r].ok()) << statuses[r];
    EXPECT_GT(seconds[r], 0);
  }
}

// Another communicator is refused (no GPU needed).
TEST(NcclPlainRingTest, NeedsAnNcclCommunicator) {
  ThreadWorld threads(2, absl::Seconds(1));
  const absl::StatusOr<double> s = NcclPlainRingSeconds(threads.rank(0), 1024, 3);
  EXPECT_TRUE(absl::IsInvalidArgument(s.status())) << s.status();
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("needs an NCCL communicator"));
}

TEST(NcclSelfGroupIssueTest, RejectsBadInputAndTimesAGroupOnOneGpu) {
  for (const auto& [parts, bytes, rounds] :
       {std::tuple{0, 1024, 3}, std::tuple{4, 2, 3}, std::tuple{1, 1024, 0}}) {
    const absl::StatusOr<double> s = NcclSelfGroupIssueSeconds(0, false, parts, bytes, rounds);
    EXPECT_TRUE(absl::IsInvalidArgument(s.status())) << s.status();
    EXPECT_THAT(std::string(s.status().message()), HasSubstr("expected parts, rounds >= 1"));
  }
  if (Devices() == 0) GTEST_SKIP() << "no CUDA device";
  for (const bool blocking : {false, true}) {
    const absl::StatusOr<double> s = NcclSelfGroupIssueSeconds(0, blocking, 2, 1 << 20, 5);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_GT(*s, 0);
    EXPECT_LT(*s, 1.0) << "seconds to enqueue one group";
  }
}

TEST(NcclSelfHopBesideTest, RejectsBadInputAndTimesAHopBesideWorkOnOneGpu) {
  const absl::StatusOr<SelfHopTimes> bad = NcclSelfHopBeside(0, 0, false, nullptr, 3);
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status())) << bad.status();
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("expected bytes and rounds >= 1"));
  if (Devices() == 0) GTEST_SKIP() << "no CUDA device";
  void* scratch = nullptr;
  ASSERT_EQ(cudaMalloc(&scratch, 1 << 20), cudaSuccess);
  const auto work = [scratch](cudaStream_t stream) {
    return cudaMemsetAsync(scratch, 0, 1 << 20, stream);
  };
  for (const bool work_first : {false, true}) {
    const absl::StatusOr<SelfHopTimes> t = NcclSelfHopBeside(0, 1 << 20, work_first, work, 3);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_GT(t->hop_ms, 0);
    EXPECT_GT(t->work_ms, 0);
  }
  cudaFree(scratch);
}

TEST(NcclWorldTest, RejectsTwoRanksOnOneGpu) {
  Ranks ranks(0, 1);
  cudaStream_t fake = reinterpret_cast<cudaStream_t>(1);
  auto w = NcclWorld::Create({{0, fake}, {0, fake}}, absl::Seconds(1));
  EXPECT_THAT(w.status().message(), HasSubstr("two ranks on device 0"));
}

TEST(LaunchEnvironmentTest, ReadsTorchrunThenSlurm) {
  for (const char* v :
       {"RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"}) {
    unsetenv(v);
  }
  EXPECT_TRUE(absl::IsNotFound(LaunchEnvironmentFromEnv().status()));
  setenv("SLURM_PROCID", "3", 1);
  setenv("SLURM_NTASKS", "8", 1);
  setenv("SLURM_LOCALID", "1", 1);
  absl::StatusOr<LaunchEnvironment> env = LaunchEnvironmentFromEnv();
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->rank, 3);
  EXPECT_EQ(env->world, 8);
  EXPECT_EQ(env->local_rank, 1);
  setenv("RANK", "1", 1);
  setenv("WORLD_SIZE", "2", 1);
  env = LaunchEnvironmentFromEnv();  // torchrun's wins
  ASSERT_TRUE(env.ok());
  EXPECT_EQ(env->rank, 1);
  EXPECT_EQ(env->world, 2);
  EXPECT_EQ(env->local_rank, 1);  // no LOCAL_RANK: the rank
  setenv("RANK", "2", 1);
  EXPECT_THAT(LaunchEnvironmentFromEnv().status().message(), HasSubstr("expected 0 <= rank"));
  setenv("RANK", "x", 1);
  EXPECT_THAT(LaunchEnvironmentFromEnv().status().message(), HasSubstr("not an integer"));
}

TEST(NcclChunkSizeTest, RingsOfThreeOrMoreGetSmallChunksUnlessTheUserChose) {
  EXPECT_EQ(NcclChunkSizeDefault(4, nullptr), "131072");
  EXPECT_EQ(NcclChunkSizeDefault(8, nullptr), "131072");
  EXPECT_EQ(NcclChunkSizeDefault(2, nullptr), "");   // NCCL's default, 281 GB/s
  EXPECT_EQ(NcclChunkSizeDefault(4, "524288"), "");  // the user's value stays
}

}  // namespace
}  // namespace ringattn::comm
