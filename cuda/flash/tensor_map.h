// Tensor maps (TMA descriptors) of the Hopper kernels' operands, encoded on
// the host by the driver's cuTensorMapEncodeTiled (reached through
// cudaGetDriverEntryPointByVersion: no link against libcuda) and cached.
#ifndef RINGATTN_CUDA_FLASH_TENSOR_MAP_H_
#define RINGATTN_CUDA_FLASH_TENSOR_MAP_H_

#include <cuda.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <initializer_list>
#include <utility>

#include "cuda/kernel_args.h"

namespace ringattn::cuda::flash {

// A 4-d view (columns, rows, heads, batch) of an fp16, bf16 or fp32 tensor:
// `base` points at (row 0, head 0, column 0) of batch row 0; `row_stride`,
// `head_stride` and `batch_stride` are in elements (column stride 1).
struct TileView {
  const void* base = nullptr;
  ElementType dtype = ElementType::kBFloat16;
  int64_t columns = 0, rows = 0, heads = 0, batch = 0;
  int64_t row_stride = 0, head_stride = 0, batch_stride = 0;
  // The box one copy moves: 128 bytes of columns (one row of the 128-byte
  // swizzle: 64 fp16/bf16 or 32 fp32 elements) by box_rows rows.
  int box_rows = 0;
};

// The views of a block task's tensors, row 0 at the task's first row (so
// rows past the task's length read as zeros, and writes there are
// dropped): a tensor laid out like q (q, dout; out; dq in fp32) over the
// task's query rows, and one laid out like k (k, v; dk, dv in fp32) over its key rows, in
// boxes of box_rows rows.
TileView QueryRowsView(const ForwardBlockArgs& a, const void* tensor, ElementType dtype,
                       int box_rows);
TileView KeyRowsView(const ForwardBlockArgs& a, const void* tensor, ElementType dtype,
                     int box_rows);

// Encodes the view with the 128-byte swizzle (the layout wgmma reads) and
// zero fill outside it (rows past `rows` read as 0). Identical views share
// one encoding (a small per-thread cache). cudaErrorNotSupported when the
// driver lacks the entry point or rejects the view (unaligned base or
// strides, dims out of range).
cudaError_t EncodeTileMap(const TileView& view, CUtensorMap* map);
// A launch's maps: each view into its map in turn; the first error.
cudaError_t EncodeTileMaps(std::initializer_list<std::pair<TileView, CUtensorMap*>> maps);

// The TMA's global addresses are 16-byte aligned.
inline bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_TENSOR_MAP_H_
