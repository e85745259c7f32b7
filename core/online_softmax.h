// The running online-softmax state of a set of query rows.
#ifndef RINGATTN_CORE_ONLINE_SOFTMAX_H_
#define RINGATTN_CORE_ONLINE_SOFTMAX_H_

#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "core/lse_math.h"

namespace ringattn {

// `rows` query rows of `head_dim` outputs each, with one LSE per row.
// Starts empty: O = 0 and LSE = -inf, the state of a row with no keys.
// Instantiated for float (the ring's state) and double (the oracle's).
template <typename T>
class SoftmaxState {
 public:
  SoftmaxState(int64_t rows, int64_t head_dim)
      : head_dim_(head_dim), o_(rows * head_dim, T(0)), lse_(rows, T(-INFINITY)) {}

  int64_t rows() const { return static_cast<int64_t>(lse_.size()); }
  int64_t head_dim() const { return head_dim_; }
  T* o(int64_t row) { return o_.data() + row * head_dim_; }
  const T* o(int64_t row) const { return o_.data() + row * head_dim_; }
  T& lse(int64_t row) { return lse_[row]; }
  T lse(int64_t row) const { return lse_[row]; }

  // Merges `block` row by row into this state.
  // Errors: InvalidArgument if the two states differ in rows or head_dim.
  absl::Status Merge(const SoftmaxState& block);

  // Merges one block row into `row`.
  void MergeRowFrom(int64_t row, const T* o_b, T lse_b) {
    MergeRow(o(row), &lse_[row], o_b, lse_b, static_cast<int>(head_dim_));
  }

 private:
  int64_t head_dim_;
  std::vector<T> o_;    // (rows, head_dim)
  std::vector<T> lse_;  // (rows)
};

extern template class SoftmaxState<float>;
extern template class SoftmaxState<double>;

}  // namespace ringattn

#endif  // RINGATTN_CORE_ONLINE_SOFTMAX_H_
