// The exact CPU oracle: full-matrix attention forward and backward in Eigen,
// for T = float and double, with every mask rule, GQA/MQA and any softmax
// scale. Inputs are strided views (dense or packed, core/shapes.h); outputs
// are dense.
#ifndef RINGATTN_CPU_REFERENCE_ATTENTION_H_
#define RINGATTN_CPU_REFERENCE_ATTENTION_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/mask.h"
#include "core/shapes.h"

namespace ringattn::cpu {

// out (batch, seqlen_q, num_heads, head_dim), lse (batch, num_heads,
// seqlen_q). Rows with no allowed key: lse = -inf, out = 0.
template <typename T>
struct AttentionOutput {
  std::vector<T> out;
  std::vector<T> lse;
};

// dq like q, dk and dv like k (dense).
template <typename T>
struct AttentionGrads {
  std::vector<T> dq;
  std::vector<T> dk;
  std::vector<T> dv;
};

// An output of `rows` query rows in its empty state (out 0, lse -inf).
template <typename T>
AttentionOutput<T> EmptyOutput(int64_t batch, int64_t rows, int64_t heads, int64_t head_dim);

// softmax(scale * q k^T + mask) v, and the row log-sum-exp.
// Errors: InvalidArgument for an invalid shape or scale, a mask built for
// other sizes, or a tensor that does not fit its buffer.
template <typename T>
absl::StatusOr<AttentionOutput<T>> NaiveForward(const AttentionShape& shape, TensorRef<const T> q,
                                                TensorRef<const T> k, TensorRef<const T> v,
                                                const Mask& mask, double softmax_scale);

// Gradients of the forward with respect to q, k and v, given dout and the
// forward's out and lse. Errors: as NaiveForward, plus out, dout or lse of
// the wrong size.
template <typename T>
absl::StatusOr<AttentionGrads<T>> NaiveBackward(const AttentionShape& shape, TensorRef<const T> q,
                                                TensorRef<const T> k, TensorRef<const T> v,
                                                TensorRef<const T> out, absl::Span<const T> lse,
                                                TensorRef<const T> dout, const Mask& mask,
                                                double softmax_scale);

// Checks what NaiveForward checks of its arguments.
template <typename T>
absl::Status CheckForwardArgs(const AttentionShape& shape, const TensorRef<const T>& q,
                              const TensorRef<const T>& k, const TensorRef<const T>& v,
                              const Mask& mask, double softmax_scale);

}  // namespace ringattn::cpu

#endif  // RINGATTN_CPU_REFERENCE_ATTENTION_H_
