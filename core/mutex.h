// A mutex and condition variable the thread-safety analysis understands
// (ABSL_GUARDED_BY members, ABSL_EXCLUSIVE_LOCKS_REQUIRED functions), built
// on std::mutex so ThreadSanitizer sees every lock (Debian's libabsl is not
// built with TSan annotations: absl::Mutex there looks like no lock at all
// to TSan and every guarded access like a race).
#ifndef RINGATTN_CORE_MUTEX_H_
#define RINGATTN_CORE_MUTEX_H_

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"

namespace ringattn {

class ABSL_LOCKABLE Mutex {
 public:
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }

 private:
  friend class CondVar;
  std::mutex mu_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* mu_;
};

class CondVar {
 public:
  // Waits until `done()` holds or `timeout` has passed; returns done().
  // `mu` must be held; it is released while waiting.
  template <typename Predicate>
  bool WaitWithTimeout(Mutex* mu, absl::Duration timeout, Predicate done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    const bool result = cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout), done);
    lock.release();  // still held: the caller's lock owns it
    return result;
  }
  void NotifyOne() { cv_.notify_one(); }
  void NotifyAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace ringattn

#endif  // RINGATTN_CORE_MUTEX_H_
