// What the fp32 Hopper kernels (3xTF32 on wgmma tf32: every product
// a_lo b_hi + a_hi b_lo + a_hi b_hi, accurate to fp32) share: fp32 data goes
// global -> registers -> split into tf32 hi and lo -> shared memory, in the
// 128-byte swizzle of hopper_primitives.cuh (16-byte chunks of 4 floats, 8
// per 128-byte row, column blocks of 32 floats); tf32 wgmma reads K-major
// operands only, so an operand reduced over its rows is stored transposed.
// Only valid in sm_90a device code.
#ifndef RINGATTN_CUDA_FLASH_F32_HOPPER_COMMON_CUH_
#define RINGATTN_CUDA_FLASH_F32_HOPPER_COMMON_CUH_

#include <cstdint>

#include "cuda/flash/hopper_primitives.cuh"
#include "cuda/flash/mma_primitives.cuh"
#include "cuda/flash/wgmma_ops.cuh"

namespace ringattn::cuda::flash {

// Chunk `c` of row `row` of a row-major fp32 matrix (rows `stride` floats
// apart), or zeros for rows >= valid.
__device__ __forceinline__ float4 LoadF32Chunk(const float* rows, int64_t stride, int row, int c,
                                               int valid) {
  return row < valid
             ? __ldg(reinterpret_cast<const float4*>(rows + static_cast<int64_t>(row) * stride) + c)
             : make_float4(0.f, 0.f, 0.f, 0.f);
}

// Stores x's tf32 hi and lo parts at byte `offset` of the hi and lo tiles.
__device__ __forceinline__ void StoreSplitChunk(uint32_t hi_tile, uint32_t lo_tile, uint32_t offset,
                                                float4 x) {
  uint32_t h[4], l[4];
  SplitFragment({x.x, x.y, x.z, x.w}, h, l);
  asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(hi_tile + offset), "r"(h[0]),
               "r"(h[1]), "r"(h[2]), "r"(h[3])
               : "memory");
  asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(lo_tile + offset), "r"(l[0]),
               "r"(l[1]), "r"(l[2]), "r"(l[3])
               : "memory");
}

// Transposed store of a 4 x 4 block: x[i] is chunk `c` (columns 4c..4c+3)
// of source row i; column 4c + e becomes row 4c + e of a kRows-row tile,
// whose chunk `chunk` gets (x[0].e, x[1].e, x[2].e, x[3].e).
template <int kRows>
__device__ __forceinline__ void StoreSplitTransposed(uint32_t hi_tile, uint32_t lo_tile, int c,
                                                     int chunk, const float4 (&x)[4]) {
  StoreSplitChunk(hi_tile, lo_tile, SwizzledChunk<kRows>(4 * c, chunk),
                  make_float4(x[0].x, x[1].x, x[2].x, x[3].x));
  StoreSplitChunk(hi_tile, lo_tile, SwizzledChunk<kRows>(4 * c + 1, chunk),
                  make_float4(x[0].y, x[1].y, x[2].y, x[3].y));
  StoreSplitChunk(hi_tile, lo_tile, SwizzledChunk<kRows>(4 * c + 2, chunk),
                  make_float4(x[0].z, x[1].z, x[2].z, x[3].z));
  StoreSplitChunk(hi_tile, lo_tile, SwizzledChunk<kRows>(4 * c + 3, chunk),
                  make_float4(x[0].w, x[1].w, x[2].w, x[3].w));
}

// Descriptor of k8 step kk of a K-major fp32 tile of kRows rows (32 bytes a
// step, 4 steps per column block).
template <int kRows>
__device__ __forceinline__ uint64_t Tf32Step(uint32_t tile, int kk) {
  return SwizzledDescriptor(tile + (kk / 4) * kRows * 128 + (kk % 4) * 32, 16);
}

// acc (+ when accumulate) = A B^T over kSteps k8 steps to fp32 accuracy, the
// small terms first: A (the warpgroup's 64 rows) and B (N rows) K-major
// split tiles of kARows and N rows in shared memory.
template <int N, int kARows, int kSteps>
__device__ __forceinline__ void Tf32x3SS(float (&acc)[N / 2], uint32_t a_hi, uint32_t a_lo,
                                         uint32_t b_hi, uint32_t b_lo, bool accumulate) {
  using Mma = Wgmma<ElementType::kFloat32>;
#pragma unroll
  for (int kk = 0; kk < kSteps; ++kk) {
    Mma::template SS<N>(acc, Tf32Step<kARows>(a_lo, kk), Tf32Step<N>(b_hi, kk),
                        accumulate || kk > 0);
    Mma::template SS<N>(acc, Tf32Step<kARows>(a_hi, kk), Tf32Step<N>(b_lo, kk), 1);
    Mma::template SS<N>(acc, Tf32Step<kARows>(a_hi, kk), Tf32Step<N>(b_hi, kk), 1);
  }
}

// acc += A B^T over kSteps k8 steps to fp32 accuracy: A from registers
// (SplitAccumulatorFragment per step; unchanged until the group completes),
// B a K-major split tile of N rows.
template <int N, int kSteps>
__device__ __forceinline__ void Tf32x3RS(float (&acc)[N / 2], const uint32_t (&a_hi)[kSteps][4],
                                         const uint32_t (&a_lo)[kSteps][4], uint32_t b_hi,
                                         uint32_t b_lo) {
  using Mma = Wgmma<ElementType::kFloat32>;
#pragma unroll
  for (int kk = 0; kk < kSteps; ++kk) {
    Mma::template RS<N>(acc, a_lo[kk], Tf32Step<N>(b_hi, kk), 1);
    Mma::template RS<N>(acc, a_hi[kk], Tf32Step<N>(b_lo, kk), 1);
    Mma::template RS<N>(acc, a_hi[kk], Tf32Step<N>(b_hi, kk), 1);
  }
}

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_F32_HOPPER_COMMON_CUH_
