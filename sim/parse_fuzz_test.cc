// Hostile text for the simulator's two file formats (a calibration file,
// `ringattn sim --calibration`; a ring_bench log, bench/ring_predict and the
// replay test): the measured logs in testdata/ and the calibrations they
// rebuild, mutated -- a number replaced by a boundary value (nan, inf,
// negative, zero, huge, tiny, not a number), a range of bytes deleted,
// repeated or overwritten, the text cut short -- and parsed. Every parse
// returns a value or an error naming what was wrong (run it under
// --config=asan / ubsan too); a calibration that parses serializes and
// parses back, and predicts a small problem to a finite, non-negative time
// or an error, within seconds.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "sim/bench_rows.h"
#include "sim/calibration.h"
#include "sim/ring_bench_log.h"

namespace ringattn::sim {
namespace {

constexpr const char* kLogs[] = {
    "2026-11-29_h200x4_ring_bench.txt",
    "2026-12-01_h200x2_ring_bench.txt",
    "2026-12-02_h200_virtual_ranks_ring_bench.txt",
    "2026-12-03_h200_w1_2048_ring_bench.txt",
    "2026-12-04_h200_w1_tiny_kernel_1536_h32kv8_d128_ring_bench.txt",
    // Its hop sweep; the test adds a "hop issue" line before it.
    "2026-12-04_h200x2_per_side_ring_bench.txt",
};
constexpr const char* kIssueLine =
    "hop issue (host time from StartBatch to the transfers enqueued, the GPU idle, median of 9, "
    "slowest rank): K and V apart (a forward's first step) 61.5 us, one message each way 49.0 us; "
    "NCCL groups: RINGATTN_NCCL_ISSUE=nonblocking\n";

constexpr const char* kNumbers[] = {"nan",
                                    "-nan",
                                    "inf",
                                    "-inf",
                                    "-1",
                                    "0",
                                    "-0",
                                    "1e308",
                                    "-1e308",
                                    "1e-320",
                                    "99999999999999999999999",
                                    "1e999",
                                    "0x10",
                                    "1,5",
                                    "",
                                    "."};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}
  size_t Pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }

  // `text` with one to three mutations.
  std::string Mutate(std::string text) {
    for (size_t m = 1 + Pick(3); m > 0 && !text.empty(); --m) {
      const size_t at = Pick(text.size());
      const size_t length = 1 + Pick(std::min<size_t>(64, text.size() - at));
      switch (Pick(6)) {
        case 0:
        case 1:
        case 2: {  // a number (the run of digits at or after `at`) replaced
          size_t begin = text.find_first_of("0123456789", at);
          if (begin == std::string::npos) break;
          while (begin > 0 && (std::isdigit(text[begin - 1]) || text[begin - 1] == '.')) --begin;
          size_t end = begin;
          while (end < text.size() && (std::isdigit(text[end]) || text[end] == '.')) ++end;
          text.replace(begin, end - begin, kNumbers[Pick(std::size(kNumbers))]);
          break;
        }
        case 3:
          text.erase(at, length);
          break;
        case 4:
          text.insert(at, text.substr(at, length));
          break;
        case 5:
          for (size_t i = at; i < at + length; ++i) text[i] = static_cast<char>(Pick(256));
          break;
      }
    }
    if (Pick(10) == 0) text.resize(Pick(text.size() + 1));
    return text;
  }

 private:
  std::mt19937_64 rng_;
};

// A small problem's prediction from `calibration`: a time or an error, fast.
void ExpectSanePrediction(const Calibration& calibration, const std::string& what) {
  static const BenchShape kSmall{
      .world = 2, .tokens = 512, .heads = 4, .kv_heads = 2, .head_dim = 64};
  for (const char* name : {"zigzag", "llama3"}) {
    const auto start = std::chrono::steady_clock::now();
    const absl::StatusOr<double> s =
        PredictBenchRow(calibration, *BenchRowNamed(name), kSmall, /*backward=*/true);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(seconds, 5.0) << what << ": " << name << "'s prediction took " << seconds << " s";
    if (s.ok()) {
      EXPECT_TRUE(std::isfinite(*s) && *s >= 0)
          << what << ": " << name << " predicted " << *s << " s from a calibration that parsed:\n"
          << calibration.Serialize();
    } else {
      EXPECT_FALSE(s.status().message().empty()) << what;
    }
  }
}

void CheckCalibrationText(const std::string& text, const std::string& what, int* parsed) {
  const absl::StatusOr<Calibration> c = Calibration::Parse(text);
  if (!c.ok()) {
    EXPECT_FALSE(c.status().message().empty()) << what;
    return;
  }
  ++*parsed;
  const absl::StatusOr<Calibration> again = Calibration::Parse(c->Serialize());
  ASSERT_TRUE(again.ok()) << what
                          << ": a parsed calibration does not parse back: " << again.status()
                          << "\n"
                          << c->Serialize();
  ExpectSanePrediction(*c, what);
}

TEST(ParseFuzzTest, MutatedLogsAndCalibrationsAreValuesOrErrors) {
  const char* env = std::getenv("RINGATTN_PARSE_FUZZ_CASES");
  const int cases = env != nullptr ? std::atoi(env) : 300;  // per seed text
  const char* seed = std::getenv("RINGATTN_PARSE_FUZZ_SEED");
  Mutator mutator(seed != nullptr ? std::strtoull(seed, nullptr, 10) : 20261204);
  int logs_parsed = 0, calibrations_parsed = 0, total = 0;
  for (const char* name : kLogs) {
    std::string log_text = ReadFile(std::string("sim/testdata/") + name);
    ASSERT_FALSE(log_text.empty()) << name;
    if (name == std::string(kLogs[std::size(kLogs) - 1])) log_text = kIssueLine + log_text;
    const absl::StatusOr<RingBenchLog> log = ParseRingBenchLog(log_text);
    ASSERT_TRUE(log.ok()) << name << ": " << log.status();
    const absl::StatusOr<Calibration> rebuilt = RebuildCalibration(*log);
    ASSERT_TRUE(rebuilt.ok()) << name << ": " << rebuilt.status();
    const std::string calibration_text = rebuilt->Serialize();
    // What ring_predict --calibration_out writes, `ringattn sim` reads.
    ASSERT_TRUE(Calibration::Parse(calibration_text).ok())
        << name << ": its calibration does not parse back: "
        << Calibration::Parse(calibration_text).status();
    for (int i = 0; i < cases; ++i) {
      const std::string what = std::string(name) + " mutation " + std::to_string(i);
      ++total;
      const absl::StatusOr<RingBenchLog> mutated = ParseRingBenchLog(mutator.Mutate(log_text));
      if (mutated.ok()) {
        ++logs_parsed;
        // At the log's shape, and at another (the links from its hop sweep).
        BenchShape other = mutated->shape;
        other.tokens = other.tokens > 1024 ? other.tokens / 4 : other.tokens * 4;
        for (const BenchShape& shape : {mutated->shape, other}) {
          const absl::StatusOr<Calibration> c = RebuildCalibrationFor(*mutated, shape);
          if (c.ok()) {
            ExpectSanePrediction(*c, what + " (log)");
          } else {
            EXPECT_FALSE(c.status().message().empty()) << what;
          }
        }
      } else {
        EXPECT_FALSE(mutated.status().message().empty()) << what;
      }
      CheckCalibrationText(mutator.Mutate(calibration_text), what + " (calibration)",
                           &calibrations_parsed);
      if (::testing::Test::HasFailure()) return;  // the first failing text, alone
    }
  }
  // The mutations are mild enough that some texts still parse (most of a
  // calibration is rate lines, which most replaced numbers make invalid).
  EXPECT_GT(logs_parsed, total / 4);
  EXPECT_GT(calibrations_parsed, total / 50);
  std::printf("%d mutated logs (%d parsed) and calibrations (%d parsed)\n", total, logs_parsed,
              calibrations_parsed);
}

}  // namespace
}  // namespace ringattn::sim
