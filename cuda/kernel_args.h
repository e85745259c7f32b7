// The arguments every attention kernel of a block task takes (the
// correctness-first kernels in cuda/forward_block.h and the tensor-core
// kernels in cuda/flash/): element types, position runs, the forward's
// task (inputs, fp32 ring state or one-call output, mask) and the
// backward's additions.
#ifndef RINGATTN_CUDA_KERNEL_ARGS_H_
#define RINGATTN_CUDA_KERNEL_ARGS_H_

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>

namespace ringattn::cuda {

enum class ElementType : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

__host__ __device__ inline int64_t ElementBytes(ElementType t) {
  return t == ElementType::kFloat32 ? 4 : 2;
}

// pos(i) = base + (i / group) * group_stride + (i % group) * stride
struct DeviceRun {
  int64_t base = 0;
  int64_t length = 0;
  int64_t stride = 1;
  int64_t group = 1;
  int64_t group_stride = 1;
};

struct ForwardBlockArgs {
  ElementType dtype = ElementType::kFloat32;
  const void* q = nullptr;  // (batch, q_rows, num_heads, head_dim)
  // (batch, k_rows, KvBufferHeads(), head_dim): kv heads [kv_head_offset,
  // kv_head_offset + KvBufferHeads()) of every key row (all kv heads by
  // default; one head group of an all-gather step otherwise).
  const void* k = nullptr;
  const void* v = nullptr;
  float* state_o = nullptr;    // (batch, q_rows, num_heads, head_dim) fp32
  float* state_lse = nullptr;  // (batch, num_heads, q_rows) fp32
  int64_t batch = 0, q_rows = 0, k_rows = 0;
  int64_t num_heads = 0, num_kv_heads = 0, head_dim = 0;
  // The task.
  int64_t q_row = 0, k_row = 0;
  DeviceRun q_pos, k_pos;
  int64_t kv_head_begin = 0, kv_head_end = 0;
  // The kv heads the k/v (and backward dk/dv) buffers hold; 0: num_kv_heads.
  int64_t kv_buffer_heads = 0, kv_head_offset = 0;
  // The mask: min_delta <= k - q <= max_delta, k < key_limit[b] (nullptr:
  // no padding), and k in [doc_begin, doc_end) (the task's document).
  int64_t min_delta = 0, max_delta = 0;
  const int64_t* key_limit = nullptr;  // device, per local batch row
  int64_t doc_begin = 0, doc_end = 0;
  float softmax_scale = 1;
  // Optional: when set, the kernel writes the block's normalized O in the
  // input dtype here (laid out like q) and its LSE to state_lse, instead of
  // merging into the state: one-call attention, no ring.
  void* out = nullptr;
  // The task's state rows still hold the reset value (O = 0, LSE = -inf:
  // no task of the pass has touched them yet), so a kernel may write them
  // without reading them first. A hint: kernels that merge anyway are as
  // correct (the warp-specialized d128 forward skips the state's copy in).
  bool state_fresh = false;
};

// One block of `rows` queries against the same `rows` keys, both at
// positions 0 .., every head of `batch` rows, causal (query i sees keys <=
// i) or full, softmax scale 1 / sqrt(head_dim): the single-GPU block the
// benchmarks time (bench/kernel_bench.cc, ring_bench's kernel-only
// calibration). The tensors are the caller's to set.
inline ForwardBlockArgs DenseBlockArgs(ElementType dtype, int64_t batch, int64_t rows,
                                       int64_t num_heads, int64_t num_kv_heads, int64_t head_dim,
                                       bool causal) {
  constexpr int64_t kFar = int64_t{1} << 60;
  ForwardBlockArgs a;
  a.dtype = dtype;
  a.batch = batch;
  a.q_rows = a.k_rows = rows;
  a.num_heads = num_heads;
  a.num_kv_heads = num_kv_heads;
  a.head_dim = head_dim;
  a.q_pos = a.k_pos = {0, rows, 1, rows, rows};
  a.kv_head_end = num_kv_heads;
  a.min_delta = -kFar;
  a.max_delta = causal ? 0 : kFar;
  a.doc_end = rows;
  a.softmax_scale = 1.f / std::sqrt(static_cast<float>(head_dim));
  return a;
}

// A DenseBlockArgs block placed as a stripe ring step's at `stride` (the
// ring's W): query i at position stride * i, key j at stride * j + 1 (the
// next rank's tokens), one document over the stride * rows positions; with
// a causal mask rows (rows - 1) / 2 pairs are allowed.
inline void PlaceAsStripeStep(ForwardBlockArgs& a, int64_t rows, int64_t stride) {
  a.q_pos = {0, rows, stride, rows, stride * rows};
  a.k_pos = {1, rows, stride, rows, stride * rows};
  a.doc_end = stride * rows;
}

__host__ __device__ inline int64_t KvBufferHeads(const ForwardBlockArgs& a) {
  return a.kv_buffer_heads > 0 ? a.kv_buffer_heads : a.num_kv_heads;
}

// Element offset of (batch b, key row, kv head, 0) in the k/v buffers.
__host__ __device__ inline int64_t KvOffset(const ForwardBlockArgs& a, int64_t b, int64_t row,
                                            int64_t kv_head) {
  return ((b * a.k_rows + row) * KvBufferHeads(a) + kv_head - a.kv_head_offset) * a.head_dim;
}

// The backward of one block task: accumulates dQ (fp32, like q) and the
// task's dK, dV into fp32 accumulators laid out like k, v (the buffers that
// travel the ring), from dO (input dtype), the final LSE and
// D = rowsum(dO * O) (fp32, (batch, num_heads, q_rows)). Same position and
// mask fields as the forward. Correctness-first: one thread per key row,
// atomics into dQ and (across GQA heads) dK/dV.
struct BackwardBlockArgs {
  ForwardBlockArgs task;       // q, k, v, shapes, positions, mask, scale
  const void* dout = nullptr;  // like q, input dtype
  const float* lse = nullptr;
  const float* delta = nullptr;
  float* dq = nullptr;  // (batch, q_rows, num_heads, head_dim)
  float* dk = nullptr;  // laid out like task.k (KvOffset)
  float* dv = nullptr;
  // The task's dK/dV rows hold zeros (no launch since the buffer was
  // zeroed has written them), so a kernel whose CTAs own their key rows
  // (no GQA) may store them instead of adding. A hint, like
  // ForwardBlockArgs::state_fresh (the warp-specialized backward takes it).
  bool key_grads_fresh = false;
};

}  // namespace ringattn::cuda

#endif  // RINGATTN_CUDA_KERNEL_ARGS_H_
