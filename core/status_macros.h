// The one way ringattn propagates errors:
//   RETURN_IF_ERROR(DoThing());                 // returns its Status unless OK
//   ASSIGN_OR_RETURN(Tasks tasks, MakeTasks());  // declares the value, or returns
// Both work in functions returning absl::Status or absl::StatusOr<T>.
#ifndef RINGATTN_CORE_STATUS_MACROS_H_
#define RINGATTN_CORE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define RETURN_IF_ERROR(expr)                                               \
  do {                                                                      \
    if (::absl::Status ringattn_status_ = (expr); !ringattn_status_.ok()) { \
      return ringattn_status_;                                              \
    }                                                                       \
  } while (false)

#define RINGATTN_STATUS_CONCAT_(a, b) a##b
#define RINGATTN_STATUS_CONCAT(a, b) RINGATTN_STATUS_CONCAT_(a, b)

#define ASSIGN_OR_RETURN(lhs, rexpr) \
  RINGATTN_ASSIGN_OR_RETURN_(RINGATTN_STATUS_CONCAT(ringattn_status_or_, __LINE__), lhs, rexpr)

#define RINGATTN_ASSIGN_OR_RETURN_(statusor, lhs, rexpr)   \
  auto statusor = (rexpr);                                 \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // RINGATTN_CORE_STATUS_MACROS_H_
