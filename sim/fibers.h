// Cooperative fibers on the calling thread: the simulator runs every
// simulated rank's real ring driver on a fiber of its own, and a fiber
// switches away only where its driver would block (a receive whose message
// has not been sent yet). Nothing waits on wall-clock time and no OS thread
// per rank is made: when no fiber can run while some are parked, the
// simulation is stuck (a message that is never sent), which Run reports at
// once through `on_stall`.
//
// Stacks are mapped lazily (untouched pages cost no memory) with a guard
// page below each, so an overflow faults instead of corrupting a neighbour.
// AddressSanitizer and ThreadSanitizer are told of every switch.
#ifndef RINGATTN_SIM_FIBERS_H_
#define RINGATTN_SIM_FIBERS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/types/span.h"

namespace ringattn::sim::internal {

class Fibers {
 public:
  // `count` fibers, each with a stack of `stack_bytes` (rounded up to pages).
  explicit Fibers(int count, size_t stack_bytes = kDefaultStackBytes);
  ~Fibers();
  Fibers(const Fibers&) = delete;
  Fibers& operator=(const Fibers&) = delete;

  // Runs body(i) for every fiber i until every body has returned, in sweeps
  // over the ids (ascending and descending in turn) that resume each ready
  // fiber until it parks. Whenever
  // no fiber is runnable while some are parked, calls on_stall(parked ids),
  // which must wake them (after making their waits fail); if it wakes none,
  // Run returns Internal and leaves those fibers unfinished.
  absl::Status Run(absl::FunctionRef<void(int)> body,
                   absl::FunctionRef<void(absl::Span<const int>)> on_stall);

  // Inside fiber current(): switches away until some fiber calls Wake(id).
  void Park();
  // Makes parked fiber `id` runnable; nothing if it is not parked.
  void Wake(int id);
  int current() const { return current_; }
  // Switches into fibers so far (the scheduling's cost).
  int64_t resumes() const { return resumes_; }

  static constexpr size_t kDefaultStackBytes = size_t{256} << 10;

 private:
  struct Fiber;
  static void Entry();
  absl::Status Resume(int id);
  void SwitchToFiber(Fiber& f);
  void SwitchToScheduler(bool finished);

  std::vector<std::unique_ptr<Fiber>> fibers_;
  std::vector<char> ready_;  // by id: runnable (new, or woken)
  size_t stack_bytes_;
  int current_ = -1;
  int unfinished_ = 0;
  int64_t resumes_ = 0;
  absl::FunctionRef<void(int)>* body_ = nullptr;
  struct Scheduler;
  std::unique_ptr<Scheduler> scheduler_;
};

}  // namespace ringattn::sim::internal

#endif  // RINGATTN_SIM_FIBERS_H_
