// The settle before a sustained benchmark line (kernel_bench's
// KERNEL_BENCH_SETTLE; bench/torch_sdpa_bench.py's settle() is its twin):
// untimed back-to-back calls for a number of wall-clock seconds, then the
// rate they reached, from which the timed line is sized.
//
// Why wall-clock seconds and the rate reached: under the power cap the
// board's power is averaged over about a second and a line's averaged
// power reaches the cap 1-1.5 s after its first call, the clock falling
// meanwhile from where the work before it had left it (traced on an H200
// in the forty-second session, docs/KERNEL_BENCH.md). A settle counted in
// calls from one call's time lasted more or less than asked depending on
// the clock that one call ran at, and so did the timed line.
#ifndef RINGATTN_BENCH_SETTLE_H_
#define RINGATTN_BENCH_SETTLE_H_

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>

namespace ringattn::bench {

// What Settle needs of the device: three events in a stream (slots 0 and
// 1 behind alternate batches, slot 2 the mark before the timed half).
//   void Record(int slot);        record the slot behind the work launched so far
//   void Synchronize(int slot);   wait until the slot's work is done
//   float ElapsedMs(int from, int to);   device time between two recorded
//                                 slots, both done
// CUDA events in kernel_bench.cc; host clocks in settle_test.cc.
inline constexpr int kSettleMark = 2;

// Calls `launch` back to back for `seconds` of wall-clock time, about
// 20 ms of calls (sized by `one_ms`, one call's time before the settle)
// always queued behind those running so that the device never waits for
// the host; waits for them and returns the ms per call over the second
// half (the rate at the clock the cap holds by then). With `seconds` <= 0
// nothing runs and `one_ms` comes back (no settle, the method of the
// tables before the forty-first session). A settle shorter than two
// batches returns the rate over all of it.
template <typename Launch, typename Events>
float Settle(Launch&& launch, Events& events, double seconds, float one_ms) {
  if (seconds <= 0) return one_ms;
  using Clock = std::chrono::steady_clock;
  const auto begin = Clock::now();
  const auto half = begin + std::chrono::duration<double>(seconds / 2);
  const auto end = begin + std::chrono::duration<double>(seconds);
  const int64_t batch = std::max<int64_t>(1, std::llround(20.0 / std::max(one_ms, 1e-3f)));
  events.Record(kSettleMark);
  int64_t calls_after_mark = 0, batches = 0;
  for (bool marked = false;; ++batches) {
    for (int64_t i = 0; i < batch; ++i) launch();
    calls_after_mark += batch;
    events.Record(static_cast<int>(batches % 2));
    if (batches > 0) events.Synchronize(static_cast<int>((batches - 1) % 2));  // one batch queued
    const auto now = Clock::now();
    if (now >= end) break;
    if (!marked && now >= half) {  // the second half's calls start behind this batch
      events.Record(kSettleMark);
      marked = true;
      calls_after_mark = 0;
    }
  }
  const int last = static_cast<int>(batches % 2);
  events.Synchronize(last);
  const float ms = events.ElapsedMs(kSettleMark, last);
  return calls_after_mark > 0 && ms > 0 ? ms / static_cast<float>(calls_after_mark) : one_ms;
}

// The timed calls of a line of `seconds` at `ms_per_call` (at least one).
inline int64_t SustainedCalls(double seconds, float ms_per_call) {
  return std::max<int64_t>(
      1, static_cast<int64_t>(std::ceil(seconds * 1e3 / std::max(ms_per_call, 1e-3f))));
}

// The untimed passes before a line of ring passes of about `pass_s`
// seconds each (ring_bench --settle_s): kWarmupPasses (its warm-up before
// settling existed), or about `settle_s` seconds of them, at most 100,000. A count,
// not a clock, because every rank of a ring must run the same passes;
// ring_bench sizes `pass_s` from its --gpu table's prediction, the same
// in every process.
inline constexpr int kWarmupPasses = 3;
inline int SettlePasses(double settle_s, double pass_s) {
  if (!(settle_s > 0) || !(pass_s > 0)) return kWarmupPasses;
  return static_cast<int>(std::clamp(std::ceil(settle_s / pass_s), double{kWarmupPasses}, 1e5));
}

}  // namespace ringattn::bench

#endif  // RINGATTN_BENCH_SETTLE_H_
