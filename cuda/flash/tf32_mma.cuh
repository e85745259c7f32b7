// 3xTF32 on mma.sync m16n8k8 (sm_80 and later), the fp32 mma.sync kernels'
// pieces: every product a_lo b_hi + a_hi b_lo + a_hi b_hi of operands split
// by SplitTf32 (mma_primitives.cuh), accurate to fp32; and the cp.async
// load of fp32 tiles into rows of Tr::kStride floats (kHeadDim + 4: the
// scalar fragment loads of rows g or 2t, columns t or g hit 32 banks).
#ifndef RINGATTN_CUDA_FLASH_TF32_MMA_CUH_
#define RINGATTN_CUDA_FLASH_TF32_MMA_CUH_

#include <cstdint>

#include "cuda/flash/mma_primitives.cuh"

namespace ringattn::cuda::flash {

__device__ __forceinline__ void MmaTf32(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                        uint32_t b1) {
  asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
      "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// c[j] += a * b[j] to fp32 accuracy for kN n8 blocks, from split operands
// (b[j] = {b0_hi, b1_hi, b0_lo, b1_lo}); the small terms first. Term-major
// order keeps kN independent mma between two that share an accumulator
// (ncu: dependent mma chains were the top stall).
template <int kN>
__device__ __forceinline__ void Mma3xTf32(float (&c)[kN][4], const uint32_t (&a_hi)[4],
                                          const uint32_t (&a_lo)[4], const uint32_t (&b)[kN][4]) {
#pragma unroll
  for (int j = 0; j < kN; ++j) MmaTf32(c[j], a_lo, b[j][0], b[j][1]);
#pragma unroll
  for (int j = 0; j < kN; ++j) MmaTf32(c[j], a_hi, b[j][2], b[j][3]);
#pragma unroll
  for (int j = 0; j < kN; ++j) MmaTf32(c[j], a_hi, b[j][0], b[j][1]);
}

// b = {x0_hi, x1_hi, x0_lo, x1_lo}: a B fragment pair (b0 = x0, b1 = x1)
// split for Mma3xTf32.
__device__ __forceinline__ void SplitPair(float x0, float x1, uint32_t (&b)[4]) {
  SplitTf32(x0, b[0], b[2]);
  SplitTf32(x1, b[1], b[3]);
}

// The split B fragments of kN n8 blocks from first_block on: b0 from the
// row at r0 (the thread's k position t), b1 from the row `stride` floats
// further (t + 4), column 8 block + g of each (r0 at the thread's column g).
template <int kN>
__device__ __forceinline__ void SplitRowPairs(const float* r0, int stride, int first_block,
                                              uint32_t (&frag)[kN][4]) {
#pragma unroll
  for (int i = 0; i < kN; ++i) {
    const int col = (first_block + i) * 8;
    SplitPair(r0[col], r0[stride + col], frag[i]);
  }
}

// kRows rows (those >= valid zero-filled) of kHeadDim floats, `stride`
// floats apart in global memory, into a tile with rows of Tr::kStride.
template <typename Tr, int kRows>
__device__ __forceinline__ void LoadF32Tile(float* tile, const float* global, int64_t stride,
                                            int valid) {
  constexpr int kChunks = Tr::kHeadDim / 4;  // 16-byte chunks per row
  constexpr int kRowStep = Tr::kThreads / kChunks;
  static_assert(kRows % kRowStep == 0, "whole chunk rows per thread");
  const int row = threadIdx.x / kChunks, col = (threadIdx.x % kChunks) * 4;
#pragma unroll
  for (int i = 0; i < kRows / kRowStep; ++i) {
    const int r = row + i * kRowStep;
    const bool ok = r < valid;
    CpAsync16(tile + r * Tr::kStride + col, ok ? global + r * stride + col : global, ok);
  }
}

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_TF32_MMA_CUH_
