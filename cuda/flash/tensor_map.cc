#include "cuda/flash/tensor_map.h"

#include <cudaTypedefs.h>

#include <array>
#include <cstring>

namespace ringattn::cuda::flash {
namespace {

PFN_cuTensorMapEncodeTiled_v12000 EncodeFunction() {
  static const PFN_cuTensorMapEncodeTiled_v12000 function = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault,
                                         &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      return static_cast<PFN_cuTensorMapEncodeTiled_v12000>(nullptr);
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return function;
}

bool SameView(const TileView& x, const TileView& y) {
  return x.base == y.base && x.dtype == y.dtype && x.columns == y.columns && x.rows == y.rows &&
         x.heads == y.heads && x.batch == y.batch && x.row_stride == y.row_stride &&
         x.head_stride == y.head_stride && x.batch_stride == y.batch_stride &&
         x.box_rows == y.box_rows;
}

struct CachedMap {
  TileView view;
  CUtensorMap map;
};

}  // namespace

TileView QueryRowsView(const ForwardBlockArgs& a, const void* tensor, ElementType dtype,
                       int box_rows) {
  const int64_t element = ElementBytes(dtype);
  const int64_t d = a.head_dim;
  return {static_cast<const char*>(tensor) + a.q_row * a.num_heads * d * element,
          dtype,
          d,
          a.q_pos.length,
          a.num_heads,
          a.batch,
          a.num_heads * d,
          d,
          a.q_rows * a.num_heads * d,
          box_rows};
}

TileView KeyRowsView(const ForwardBlockArgs& a, const void* tensor, ElementType dtype,
                     int box_rows) {
  const int64_t heads = KvBufferHeads(a), d = a.head_dim;
  return {static_cast<const char*>(tensor) + a.k_row * heads * d * ElementBytes(dtype),
          dtype,
          d,
          a.k_pos.length,
          heads,
          a.batch,
          heads * d,
          d,
          a.k_rows * heads * d,
          box_rows};
}

cudaError_t EncodeTileMap(const TileView& view, CUtensorMap* map) {
  // A ring step launches with the same few views over and over (Q, K, V of
  // each buffer; the backward's dO, dQ, dK, dV too): the last kEntries
  // encodings are kept, oldest replaced.
  constexpr int kEntries = 32;
  thread_local std::array<CachedMap, kEntries> cache{};
  thread_local int next = 0, used = 0;
  for (int i = 0; i < used; ++i) {
    if (SameView(cache[i].view, view)) {
      *map = cache[i].map;
      return cudaSuccess;
    }
  }
  const PFN_cuTensorMapEncodeTiled_v12000 encode = EncodeFunction();
  if (encode == nullptr) return cudaErrorNotSupported;
  const int64_t element = ElementBytes(view.dtype);
  const cuuint64_t dims[4] = {
      static_cast<cuuint64_t>(view.columns), static_cast<cuuint64_t>(view.rows),
      static_cast<cuuint64_t>(view.heads), static_cast<cuuint64_t>(view.batch)};
  const cuuint64_t strides[3] = {static_cast<cuuint64_t>(view.row_stride * element),
                                 static_cast<cuuint64_t>(view.head_stride * element),
                                 static_cast<cuuint64_t>(view.batch_stride * element)};
  const cuuint32_t box[4] = {static_cast<cuuint32_t>(128 / element),
                             static_cast<cuuint32_t>(view.box_rows), 1, 1};
  const cuuint32_t element_strides[4] = {1, 1, 1, 1};
  CUtensorMap encoded;
  const CUtensorMapDataType type =
      view.dtype == ElementType::kFloat32    ? CU_TENSOR_MAP_DATA_TYPE_FLOAT32
      : view.dtype == ElementType::kBFloat16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                             : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  if (encode(&encoded, type, 4, const_cast<void*>(view.base), dims, strides, box, element_strides,
             CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
             CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
             CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) != CUDA_SUCCESS) {
    return cudaErrorNotSupported;
  }
  cache[next] = {view, encoded};
  next = (next + 1) % kEntries;
  if (used < kEntries) ++used;
  *map = encoded;
  return cudaSuccess;
}

cudaError_t EncodeTileMaps(std::initializer_list<std::pair<TileView, CUtensorMap*>> maps) {
  for (const auto& [view, map] : maps) {
    if (const cudaError_t e = EncodeTileMap(view, map); e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

}  // namespace ringattn::cuda::flash
