// Tensor shapes and memory layouts as FlashAttention uses them.
//
//   q    (batch, seqlen_q, num_heads,    head_dim)
//   k, v (batch, seqlen_k, num_kv_heads, head_dim)
//   lse  (batch, num_heads, seqlen_q)     fp32
//
// GQA/MQA: num_heads is a multiple of num_kv_heads; query head h reads
// kv head h / (num_heads / num_kv_heads). Packed forms keep q, k and v in one
// buffer: kv-packed (batch, seqlen_k, 2, num_kv_heads, head_dim) and
// qkv-packed (batch, seqlen, 3, num_heads, head_dim).
#ifndef RINGATTN_CORE_SHAPES_H_
#define RINGATTN_CORE_SHAPES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace ringattn {

// The largest head_dim any backend supports; backends may accept fewer
// (ValidateHeadDim).
inline constexpr int64_t kMaxHeadDim = 256;
// The most elements one tensor (q, k, v or o) may hold: 2^40, far beyond any
// memory, and low enough that byte and FLOP totals cannot overflow int64.
inline constexpr int64_t kMaxTensorElements = int64_t{1} << 40;
// The longest sequence: positions below 2^31 keep every count of allowed
// (query, key) pairs of one batch row exact in int64 (at most 2^62, and
// their partial sums below 2^63).
inline constexpr int64_t kMaxSeqlen = int64_t{1} << 31;

struct AttentionShape {
  int64_t batch = 1;
  int64_t seqlen_q = 0;
  int64_t seqlen_k = 0;
  int64_t num_heads = 1;
  int64_t num_kv_heads = 1;
  int64_t head_dim = 0;

  // Query heads per kv head (the GQA group size).
  int64_t group_size() const { return num_heads / num_kv_heads; }
  int64_t q_elements() const { return batch * seqlen_q * num_heads * head_dim; }
  int64_t kv_elements() const { return batch * seqlen_k * num_kv_heads * head_dim; }
  int64_t lse_elements() const { return batch * num_heads * seqlen_q; }
  std::string DebugString() const;
};

// Checks that every size is positive, num_heads is a multiple of
// num_kv_heads and head_dim is in [1, kMaxHeadDim].
// Errors: InvalidArgument naming the value seen and the value expected.
absl::Status ValidateShape(const AttentionShape& shape);

// 1 / sqrt(head_dim), the scale FlashAttention uses by default.
double DefaultSoftmaxScale(int64_t head_dim);

// Checks that a softmax scale is finite and positive.
// Errors: InvalidArgument naming the value.
absl::Status ValidateSoftmaxScale(double softmax_scale);

// Checks that head_dim is one of `supported` (e.g. a kernel's instantiations).
// Errors: InvalidArgument listing the supported values.
absl::Status ValidateHeadDim(int64_t head_dim, std::initializer_list<int64_t> supported);

// Element strides of a (batch, token, head, head_dim) tensor inside its
// buffer; head_dim is always contiguous (stride 1). `offset` is the index of
// element (0, 0, 0, 0).
struct TensorStrides {
  int64_t offset = 0;
  int64_t batch = 0;
  int64_t token = 0;
  int64_t head = 0;

  int64_t Index(int64_t b, int64_t t, int64_t h) const {
    return offset + b * batch + t * token + h * head;
  }
};

// Strides of a dense (batch, seqlen, heads, head_dim) tensor.
TensorStrides DenseStrides(int64_t seqlen, int64_t heads, int64_t head_dim);

// A strided view of a (batch, token, head, head_dim) tensor in `data`.
template <typename T>
struct TensorRef {
  absl::Span<T> data;
  TensorStrides strides;

  T* Row(int64_t b, int64_t t, int64_t h) const { return data.data() + strides.Index(b, t, h); }
};

// Checks that a (batch, seqlen, heads, head_dim) tensor with `strides` lies
// inside a buffer of `size` elements.
// Errors: InvalidArgument naming `what`, the size needed and the size seen.
absl::Status CheckTensorFits(const char* what, int64_t size, const TensorStrides& strides,
                             int64_t batch, int64_t seqlen, int64_t heads, int64_t head_dim);

// (batch, a, b) -> (batch, b, a): LSE is (batch, heads, seqlen), shards
// and layouts are token-major (batch, seqlen, heads).
template <typename T>
std::vector<T> SwapMiddleAxes(absl::Span<const T> x, int64_t batch, int64_t a, int64_t b) {
  std::vector<T> y(x.size());
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t i = 0; i < a; ++i) {
      for (int64_t j = 0; j < b; ++j) y[(n * b + j) * a + i] = x[(n * a + i) * b + j];
    }
  }
  return y;
}

enum class QkvPacking {
  kSeparate,   // q, k, v: three buffers
  kKvPacked,   // q; kv (batch, seqlen_k, 2, num_kv_heads, head_dim)
  kQkvPacked,  // qkv (batch, seqlen, 3, num_heads, head_dim)
};

// Where q, k and v live: for packed forms k and v share one buffer (and q too
// for qkv-packed), distinguished by offset.
struct QkvStrides {
  TensorStrides q;
  TensorStrides k;
  TensorStrides v;
};

// Returns the strides of q, k and v for `packing`.
// Errors: InvalidArgument if the shape is invalid, or for kQkvPacked if
// seqlen_q != seqlen_k or num_heads != num_kv_heads (one buffer holds all).
absl::StatusOr<QkvStrides> PackedStrides(const AttentionShape& shape, QkvPacking packing);

}  // namespace ringattn

#endif  // RINGATTN_CORE_SHAPES_H_
