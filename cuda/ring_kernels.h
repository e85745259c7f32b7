// Element-wise kernels of the CUDA ring backend: fills, fp32 accumulation of
// the travelling dK/dV, fp32 <-> input dtype conversion (results; a
// backward's given O), the row copy that packs a rank's K/V heads, and fp32
// adds between a rank's packed dK/dV heads (the layout the ring sends) and
// its full (batch, rows, num_kv_heads, head_dim) gradients.
#ifndef RINGATTN_CUDA_RING_KERNELS_H_
#define RINGATTN_CUDA_RING_KERNELS_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/kernel_args.h"

namespace ringattn::cuda {

// dst[i] += src[i], i < n.
cudaError_t LaunchAddF32(float* dst, const float* src, int64_t n, cudaStream_t stream);

// dst[i] = value, i < n (the LSE state's -inf, without a host copy).
cudaError_t LaunchFillF32(float* dst, float value, int64_t n, cudaStream_t stream);

// dst[i] = src[i] rounded to `dtype` (float32: a copy), i < n.
cudaError_t LaunchConvertF32(ElementType dtype, const float* src, void* dst, int64_t n,
                             cudaStream_t stream);

// Up to kMaxElementJobs fills or conversions in one launch: a pass's start
// (LSE to -inf, O to 0) and end (O converted, LSE copied; dQ, dK, dV
// converted) took a launch each, a few microseconds of host time apiece
// on a pass of small blocks. Jobs with n <= 0 are skipped.
constexpr int kMaxElementJobs = 3;
struct FillJob {
  float* dst = nullptr;
  float value = 0;
  int64_t n = 0;
};
// dst[i] = value, i < n, for each job.
cudaError_t LaunchFillsF32(const FillJob* jobs, int count, cudaStream_t stream);
struct ConvertJob {
  const float* src = nullptr;
  void* dst = nullptr;
  int64_t n = 0;
  ElementType dtype = ElementType::kFloat32;
};
// dst[i] = src[i] rounded to the job's dtype (float32: a copy), i < n, for
// each job.
cudaError_t LaunchConvertsF32(const ConvertJob* jobs, int count, cudaStream_t stream);

// `rows` rows of `width` bytes from src (rows `src_pitch` bytes apart) to
// dst (`dst_pitch` apart), device to device, as cudaMemcpy2DAsync does: by
// a kernel of 16-byte moves where every pointer, pitch and the width are
// multiples of 16 (cudaMemcpy2DAsync moved llama3's K/V pack at 1.5 TB/s,
// such a kernel at 3.3-4.6 TB/s on an H200), else by cudaMemcpy2DAsync.
cudaError_t LaunchCopyRows(void* dst, int64_t dst_pitch, const void* src, int64_t src_pitch,
                           int64_t width, int64_t rows, cudaStream_t stream);

// The packed layout: `ranks` shards back to back, each K then V of kv heads
// [head_begin, head_end) as (batch, rows, heads, head_dim). The full layout:
// K and V as (batch, ranks * rows, num_kv_heads, head_dim), the shards in
// order along the sequence.
struct PackedKvShape {
  int64_t batch = 0, rows = 0, ranks = 1;
  int64_t num_kv_heads = 0, head_begin = 0, head_end = 0, head_dim = 0;
  int64_t PackedElements() const {
    return 2 * ranks * batch * rows * (head_end - head_begin) * head_dim;
  }
};

// fp32 adds between the layouts: to_packed, packed += full (a step's dK/dV
// into the travelling sums); else full += packed (the completed sums of
// this rank's own heads into its gradients).
cudaError_t LaunchPackedAddF32(const PackedKvShape& shape, bool to_packed, float* packed,
                               float* full_k, float* full_v, cudaStream_t stream);

// Rectangles of a packed buffer's cells: packed rows [row_begin, row_end)
// (row: shard * rows + token) x kv heads [head_begin, head_end) (absolute
// kv heads, within the shape's head range), in K and V and every batch.
constexpr int kMaxCellRegions = 8;
struct CellRegions {
  struct Rect {
    int64_t row_begin, row_end, head_begin, head_end;
  } rect[kMaxCellRegions];
  int count = 0;
};

// On a packed buffer of `shape` (dst, and src alike): with src, dst = src in
// the cells of `regions` and dst += src in the others (a partial dK/dV sum
// accumulated into a step's buffer whose unwritten rows it sets); without
// (src null), dst = 0 in the cells of `regions`, the others untouched (the
// cells a step's first launches add to). A line of a token's heads per
// CTA, its row tested once.
cudaError_t LaunchPackedCellsF32(const PackedKvShape& shape, const CellRegions& regions, float* dst,
                                 const float* src, cudaStream_t stream);

}  // namespace ringattn::cuda

#endif  // RINGATTN_CUDA_RING_KERNELS_H_
