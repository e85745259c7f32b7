#include "sim/fibers.h"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"

#if defined(__SANITIZE_ADDRESS__)
#define RINGATTN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RINGATTN_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define RINGATTN_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RINGATTN_TSAN 1
#endif
#endif
#ifdef RINGATTN_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef RINGATTN_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace ringattn::sim::internal {
namespace {

thread_local Fibers* running_pool = nullptr;

size_t PageSize() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

}  // namespace

struct Fibers::Fiber {
  enum class State { kNew, kReady, kRunning, kParked, kDone } state = State::kNew;
  ucontext_t context;
  void* mapping = nullptr;  // guard page + stack
  size_t mapping_bytes = 0;
  void* asan_fake_stack = nullptr;
  void* tsan_fiber = nullptr;

  ~Fiber() { Unmap(); }
  void Unmap() {
    if (mapping != nullptr) munmap(mapping, mapping_bytes);
    mapping = nullptr;
  }
  char* stack_bottom() const { return static_cast<char*>(mapping) + PageSize(); }
  size_t stack_bytes() const { return mapping_bytes - PageSize(); }
};

// The scheduler's own context (the thread that called Run).
struct Fibers::Scheduler {
  ucontext_t context;
  const void* asan_stack_bottom = nullptr;
  size_t asan_stack_bytes = 0;
  void* asan_fake_stack = nullptr;
  void* tsan_fiber = nullptr;
};

Fibers::Fibers(int count, size_t stack_bytes)
    : stack_bytes_(stack_bytes), scheduler_(std::make_unique<Scheduler>()) {
#if defined(RINGATTN_ASAN) || defined(RINGATTN_TSAN)
  stack_bytes_ *= 4;  // instrumented frames are larger
#endif
  const size_t page = PageSize();
  stack_bytes_ = (stack_bytes_ + page - 1) / page * page;
  fibers_.reserve(count);
  for (int i = 0; i < count; ++i) fibers_.push_back(std::make_unique<Fiber>());
}

Fibers::~Fibers() {
#ifdef RINGATTN_TSAN
  for (auto& f : fibers_) {
    if (f->tsan_fiber != nullptr) __tsan_destroy_fiber(f->tsan_fiber);
  }
#endif
}

void Fibers::Entry() {
  Fibers* pool = running_pool;
#ifdef RINGATTN_ASAN
  // The first switch into this fiber: learn the scheduler's stack.
  __sanitizer_finish_switch_fiber(nullptr, &pool->scheduler_->asan_stack_bottom,
                                  &pool->scheduler_->asan_stack_bytes);
#endif
  (*pool->body_)(pool->current_);
  pool->SwitchToScheduler(/*finished=*/true);
}

void Fibers::SwitchToFiber(Fiber& f) {
#ifdef RINGATTN_ASAN
  __sanitizer_start_switch_fiber(&scheduler_->asan_fake_stack, f.stack_bottom(), f.stack_bytes());
#endif
#ifdef RINGATTN_TSAN
  __tsan_switch_to_fiber(f.tsan_fiber, 0);
#endif
  swapcontext(&scheduler_->context, &f.context);
#ifdef RINGATTN_ASAN
  __sanitizer_finish_switch_fiber(scheduler_->asan_fake_stack, nullptr, nullptr);
#endif
}

void Fibers::SwitchToScheduler(bool finished) {
  Fiber& f = *fibers_[current_];
#ifdef RINGATTN_ASAN
  // A finished fiber's fake stack is released (nullptr).
  __sanitizer_start_switch_fiber(finished ? nullptr : &f.asan_fake_stack,
                                 scheduler_->asan_stack_bottom, scheduler_->asan_stack_bytes);
#endif
#ifdef RINGATTN_TSAN
  __tsan_switch_to_fiber(scheduler_->tsan_fiber, 0);
#endif
  swapcontext(&f.context, &scheduler_->context);
  // Resumed (never after finishing).
#ifdef RINGATTN_ASAN
  __sanitizer_finish_switch_fiber(f.asan_fake_stack, &scheduler_->asan_stack_bottom,
                                  &scheduler_->asan_stack_bytes);
#endif
}

absl::Status Fibers::Run(absl::FunctionRef<void(int)> body,
                         absl::FunctionRef<void(absl::Span<const int>)> on_stall) {
  Fibers* const outer = running_pool;
  running_pool = this;
  body_ = &body;
#ifdef RINGATTN_TSAN
  scheduler_->tsan_fiber = __tsan_get_current_fiber();
#endif
  const int n = static_cast<int>(fibers_.size());
  unfinished_ = n;
  ready_.assign(n, 1);
  absl::Status status;
  // Sweeps over the ids, ascending and descending in turn, each running
  // every ready fiber (also those woken during the sweep) until it parks:
  // a ring whose messages go to the next rank finishes a pass in about two
  // ascending sweeps, one whose messages go to the previous rank in two
  // descending ones, where a fixed order would switch once per step.
  for (bool ascending = true; unfinished_ > 0 && status.ok(); ascending = !ascending) {
    bool ran = false;
    for (int k = 0; k < n && status.ok(); ++k) {
      const int id = ascending ? k : n - 1 - k;
      if (!ready_[id]) continue;
      ready_[id] = 0;
      ran = true;
      status = Resume(id);
    }
    if (ran || !status.ok()) continue;
    std::vector<int> parked;
    for (int i = 0; i < n; ++i) {
      if (fibers_[i]->state == Fiber::State::kParked) parked.push_back(i);
    }
    on_stall(parked);
    if (std::find(ready_.begin(), ready_.end(), 1) == ready_.end()) {
      status = absl::InternalError(
          absl::StrCat(parked.size(), " simulated ranks wait forever and were not woken"));
    }
  }
  ready_.clear();
  body_ = nullptr;
  running_pool = outer;
  return status;
}

absl::Status Fibers::Resume(int id) {
  Fiber& f = *fibers_[id];
  if (f.state == Fiber::State::kNew) {
    const size_t page = PageSize();
    f.mapping_bytes = stack_bytes_ + page;
    f.mapping = mmap(nullptr, f.mapping_bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (f.mapping == MAP_FAILED) {
      f.mapping = nullptr;
      return absl::ResourceExhaustedError(
          absl::StrCat("could not map a ", stack_bytes_, "-byte stack for simulated rank ", id));
    }
    mprotect(f.mapping, page, PROT_NONE);  // the guard page
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = f.stack_bottom();
    f.context.uc_stack.ss_size = f.stack_bytes();
    f.context.uc_link = nullptr;
    makecontext(&f.context, &Fibers::Entry, 0);
#ifdef RINGATTN_TSAN
    f.tsan_fiber = __tsan_create_fiber(0);
#endif
  }
  f.state = Fiber::State::kRunning;
  current_ = id;
  ++resumes_;
  SwitchToFiber(f);
  current_ = -1;
  if (f.state == Fiber::State::kRunning) {  // returned from its body
    f.state = Fiber::State::kDone;
    f.Unmap();
    --unfinished_;
  }
  return absl::OkStatus();
}

void Fibers::Park() {
  Fiber& f = *fibers_[current_];
  f.state = Fiber::State::kParked;
  const int self = current_;
  SwitchToScheduler(/*finished=*/false);
  current_ = self;
}

void Fibers::Wake(int id) {
  Fiber& f = *fibers_[id];
  if (f.state != Fiber::State::kParked) return;
  f.state = Fiber::State::kReady;
  ready_[id] = 1;
}

}  // namespace ringattn::sim::internal
