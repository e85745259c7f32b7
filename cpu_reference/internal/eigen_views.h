// Eigen views of (batch, token, head, head_dim) tensors: the rows of one
// head over consecutive tokens form a row-major (tokens, head_dim) matrix
// with the token stride as outer stride.
#ifndef RINGATTN_CPU_REFERENCE_INTERNAL_EIGEN_VIEWS_H_
#define RINGATTN_CPU_REFERENCE_INTERNAL_EIGEN_VIEWS_H_

#include <cstdint>

#include "Eigen/Core"
#include "core/shapes.h"

namespace ringattn::cpu::internal {

template <typename T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <typename T>
using ConstRows = Eigen::Map<const RowMatrix<T>, 0, Eigen::OuterStride<>>;

template <typename T>
using Rows = Eigen::Map<RowMatrix<T>, 0, Eigen::OuterStride<>>;

// Tokens [first, first + count) of head `head` in batch row `b`.
template <typename T>
ConstRows<T> HeadRows(const TensorRef<const T>& t, int64_t b, int64_t first, int64_t count,
                      int64_t head, int64_t head_dim) {
  return ConstRows<T>(t.Row(b, first, head), count, head_dim,
                      Eigen::OuterStride<>(t.strides.token));
}

template <typename T>
Rows<T> HeadRows(const TensorRef<T>& t, int64_t b, int64_t first, int64_t count, int64_t head,
                 int64_t head_dim) {
  return Rows<T>(t.Row(b, first, head), count, head_dim, Eigen::OuterStride<>(t.strides.token));
}

}  // namespace ringattn::cpu::internal

#endif  // RINGATTN_CPU_REFERENCE_INTERNAL_EIGEN_VIEWS_H_
