// Blocked attention: computes one block task of a schedule (local Q rows
// against rows of a visiting K/V buffer) and merges its online-softmax state
// into the rank's running output, tile by tile, as a flash-attention kernel
// does. This is the CPU backend's kernel and the oracle's blocked form.
#ifndef RINGATTN_CPU_REFERENCE_BLOCKED_ATTENTION_H_
#define RINGATTN_CPU_REFERENCE_BLOCKED_ATTENTION_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "core/mask.h"
#include "core/schedule.h"
#include "core/shapes.h"
#include "cpu_reference/attention.h"

namespace ringattn::cpu {

// What every block task of one rank shares.
struct BlockProblem {
  int64_t batch = 1;         // local batch rows
  int64_t batch_offset = 0;  // global batch row of local row 0
  int64_t q_rows = 0;        // rows of the local Q (and of the state)
  int64_t k_rows = 0;        // rows of the visiting K/V buffer
  int64_t num_heads = 1;
  int64_t num_kv_heads = 1;
  int64_t head_dim = 0;
  double softmax_scale = 0;
  const Mask* mask = nullptr;  // over global positions and batch rows
};

// Computes `task` and merges it into `state`, an output of q_rows rows
// (EmptyOutput before the first task). q: (batch, q_rows, num_heads,
// head_dim); k, v: (batch, k_rows, num_kv_heads, head_dim).
// Errors: InvalidArgument if the problem is inconsistent, a tensor does not
// fit its buffer, or the task's rows or heads lie outside the tensors.
template <typename T>
absl::Status BlockForward(const BlockTask& task, const BlockProblem& problem, TensorRef<const T> q,
                          TensorRef<const T> k, TensorRef<const T> v, AttentionOutput<T>* state);

// rowsum(dout * out) per (batch, head, row): the D of the backward pass.
// out and dout are dense (batch, rows, heads, head_dim).
template <typename T>
std::vector<T> BackwardDelta(absl::Span<const T> out, absl::Span<const T> dout, int64_t batch,
                             int64_t rows, int64_t heads, int64_t head_dim);

// Accumulates the gradients of `task`: dq (like q) += ..., and dk, dv (like
// the visiting k, v) += .... lse and delta are (batch, num_heads, q_rows):
// the final forward LSE and BackwardDelta.
// Errors: as BlockForward, plus lse, delta or a gradient of the wrong size.
template <typename T>
absl::Status BlockBackward(const BlockTask& task, const BlockProblem& problem, TensorRef<const T> q,
                           TensorRef<const T> k, TensorRef<const T> v, TensorRef<const T> dout,
                           absl::Span<const T> lse, absl::Span<const T> delta, TensorRef<T> dq,
                           TensorRef<T> dk, TensorRef<T> dv);

}  // namespace ringattn::cpu

#endif  // RINGATTN_CPU_REFERENCE_BLOCKED_ATTENTION_H_
