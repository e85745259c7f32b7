// A schedule run serially in one thread: every rank's block tasks computed
// on the K/V its schedule says it holds (the source rank's shard for ring
// passes, the ring's gathered K/V for llama3), states merged in fp of T.
// No communication happens; the result is what the distributed ring must
// produce, so it is the blocked oracle for layouts and schedules.
#ifndef RINGATTN_CPU_REFERENCE_SERIAL_RING_H_
#define RINGATTN_CPU_REFERENCE_SERIAL_RING_H_

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/schedule.h"
#include "core/shapes.h"
#include "cpu_reference/attention.h"

namespace ringattn::cpu {

// Forward over dense global q (batch, seqlen, num_heads, head_dim) and k, v
// (batch, seqlen, num_kv_heads, head_dim); returns out and lse in global
// order. Errors: InvalidArgument if the shape does not match the schedule
// (batch, seqlen_q == seqlen_k == layout seqlen, num_kv_heads) or a buffer
// has the wrong size.
template <typename T>
absl::StatusOr<AttentionOutput<T>> SerialRingForward(const Schedule& schedule,
                                                     const AttentionShape& shape,
                                                     absl::Span<const T> q, absl::Span<const T> k,
                                                     absl::Span<const T> v, double softmax_scale);

// Backward of SerialRingForward given its out and lse and dout (like q).
template <typename T>
absl::StatusOr<AttentionGrads<T>> SerialRingBackward(
    const Schedule& schedule, const AttentionShape& shape, absl::Span<const T> q,
    absl::Span<const T> k, absl::Span<const T> v, absl::Span<const T> out, absl::Span<const T> lse,
    absl::Span<const T> dout, double softmax_scale);

}  // namespace ringattn::cpu

#endif  // RINGATTN_CPU_REFERENCE_SERIAL_RING_H_
