// Warp-level building blocks of the tensor-core kernels (sm_80 and later):
// cp.async tile loads, ldmatrix, mma.sync m16n8k16 with fp32 accumulation,
// and the XOR swizzle that keeps ldmatrix free of bank conflicts.
//
// Fragment layouts of mma.m16n8k16 (g = lane / 4, t = lane % 4):
//   A 16x16: a0 (row g, cols 2t..2t+1), a1 (row g+8), a2 (row g, cols 2t+8..),
//            a3 (row g+8, cols 2t+8..)
//   B 16x8:  b0 (k 2t..2t+1, col g), b1 (k 2t+8..2t+9, col g)
//   C 16x8:  c0 c1 (row g, cols 2t, 2t+1), c2 c3 (row g+8, cols 2t, 2t+1)
#ifndef RINGATTN_CUDA_FLASH_MMA_PRIMITIVES_CUH_
#define RINGATTN_CUDA_FLASH_MMA_PRIMITIVES_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "cuda/kernel_args.h"

namespace ringattn::cuda::flash {

template <ElementType E>
struct Element;
template <>
struct Element<ElementType::kFloat16> {
  using T = __half;
  static __device__ __forceinline__ uint32_t Pack(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
  static __device__ __forceinline__ float2 Unpack(uint32_t x) {
    return __half22float2(*reinterpret_cast<const __half2*>(&x));
  }
};
template <>
struct Element<ElementType::kBFloat16> {
  using T = __nv_bfloat16;
  static __device__ __forceinline__ uint32_t Pack(float lo, float hi) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
  static __device__ __forceinline__ float2 Unpack(uint32_t x) {
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&x));
  }
};

// fp32 inputs (the 3xTF32 kernel): only the output type is used.
template <>
struct Element<ElementType::kFloat32> {
  using T = float;
};

// c += a * b, fp32 accumulators.
template <ElementType E>
__device__ __forceinline__ void Mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                    uint32_t b1) {
  if constexpr (E == ElementType::kBFloat16) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// k16 step kk of row tile m of accumulators s (n8 blocks j in the C layout)
// as an A fragment: two n8 blocks of C are one k16 step of A (how P = exp(S)
// feeds the next product without leaving registers).
template <ElementType E, int kMT, int kNB>
__device__ __forceinline__ void PackP(const float (&s)[kMT][kNB][4], int m, int kk,
                                      uint32_t (&pa)[4]) {
  pa[0] = Element<E>::Pack(s[m][2 * kk][0], s[m][2 * kk][1]);
  pa[1] = Element<E>::Pack(s[m][2 * kk][2], s[m][2 * kk][3]);
  pa[2] = Element<E>::Pack(s[m][2 * kk + 1][0], s[m][2 * kk + 1][1]);
  pa[3] = Element<E>::Pack(s[m][2 * kk + 1][2], s[m][2 * kk + 1][3]);
}

// x = hi + lo with both in tf32 (lo carries the 13 bits tf32 drops): the
// split of the 3xTF32 products a_lo b_hi + a_hi b_lo + a_hi b_hi, which
// match fp32 FMA math (the dropped a_lo b_lo is ~2^-22 of the product).
__device__ __forceinline__ void SplitTf32(float x, uint32_t& hi, uint32_t& lo) {
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(hi) : "f"(x));
  const float rest = x - __uint_as_float(hi);
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(lo) : "f"(rest));
}

__device__ __forceinline__ void SplitFragment(const float (&x)[4], uint32_t (&hi)[4],
                                              uint32_t (&lo)[4]) {
#pragma unroll
  for (int i = 0; i < 4; ++i) SplitTf32(x[i], hi[i], lo[i]);
}

// The split tf32 A fragment (m16n8k8) of rows g and g + 8, columns t and
// t + 4 of a row-major fp32 tile, from the thread's element (g, t) at r0
// (rows `stride` floats apart).
__device__ __forceinline__ void SplitRowFragment(const float* r0, int stride, uint32_t (&hi)[4],
                                                 uint32_t (&lo)[4]) {
  SplitFragment({r0[0], r0[8 * stride], r0[4], r0[8 * stride + 4]}, hi, lo);
}

// The split tf32 A fragment of k8 step j from the thread's accumulators x of
// n8 block j (m16n8 layout: columns 2t and 2t + 1 become fragment columns t
// and t + 4, so the B operand takes its k rows 2t and 2t + 1 for them, e.g.
// a B tile storing each 8-row block in the order 0, 2, 4, 6, 1, 3, 5, 7).
__device__ __forceinline__ void SplitAccumulatorFragment(const float (&x)[4], uint32_t (&hi)[4],
                                                         uint32_t (&lo)[4]) {
  SplitFragment({x[0], x[2], x[1], x[3]}, hi, lo);
}

__device__ __forceinline__ uint32_t SharedAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// ldmatrix from a 32-bit shared-memory address.
__device__ __forceinline__ void LdMatrixX4(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

__device__ __forceinline__ void LdMatrixX4Trans(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

// 16 bytes global -> shared, asynchronously; zero-filled when !valid.
__device__ __forceinline__ void CpAsync16(void* shared, const void* global, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(SharedAddress(shared)),
               "l"(global), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void CpAsync16(uint32_t shared_address, const void* global, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address), "l"(global),
               "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int kPending>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

// Offset (in elements) of element (row, col) of a shared tile with
// kHeadDim 2-byte columns, col a multiple of 8: 16-byte chunks are
// XOR-swizzled by row % 8, so the 8 rows an ldmatrix reads hit 8 distinct
// bank groups.
template <int kHeadDim>
__device__ __forceinline__ int Swizzle(int row, int col) {
  return row * kHeadDim + ((((col >> 3) ^ (row & 7))) << 3) + (col & 7);
}

// log2(e): the kernels exponentiate in base 2, scores scaled by
// softmax_scale * kLog2e.
constexpr float kLog2e = 1.4426950408889634f;

// A row's LSE as the backwards use it: in log2 units, and +inf for a row
// that met no key (LSE -inf), so that its P = 2^(S - LSE) is 0.
__device__ __forceinline__ float BackwardLse(float lse) {
  return lse == -INFINITY ? INFINITY : lse * kLog2e;
}

// 2^x by the special function unit (ex2.approx: relative error ~2^-22;
// 2^-inf = 0).
__device__ __forceinline__ float FastExp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// ldmatrix addresses into a swizzled tile without per-access arithmetic.
// The 8 rows one ldmatrix reads start at a multiple of 8, so their swizzle
// key row % 8 is lane % 8, and column chunk 2 * kk + c (c the lane's half,
// 0 or 1) lands at ((kk / 4) * 8 + ((2 * (kk % 4) + c) ^ (lane % 8))) * 8:
// four per-thread bases (kk % 4) plus compile-time offsets.
template <int kHeadDim>
struct SwizzledFragments {
  uint32_t base[4];  // byte addresses, for kk % 4 = 0..3

  // `row` is the lane's row in the tile at offset 0, `half` its chunk.
  __device__ __forceinline__ SwizzledFragments(const void* tile, int row, int half) {
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      base[q] = SharedAddress(tile) + 2 * (row * kHeadDim + (((2 * q + half) ^ (lane % 8)) << 3));
    }
  }
  // The address for rows + row_offset (a multiple of 8) and k16 step
  // `step`; both are compile-time constants once the caller's loops unroll.
  __device__ __forceinline__ uint32_t At(int row_offset, int step, uint32_t extra = 0) const {
    return base[step % 4] + extra + 2 * (row_offset * kHeadDim + (step / 4) * 64);
  }
};

// *p += (x, y) atomically: one vector atomic on sm_90, two scalar ones before.
__device__ __forceinline__ void AtomicAdd2(float* p, float x, float y) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  atomicAdd(reinterpret_cast<float2*>(p), make_float2(x, y));
#else
  atomicAdd(p, x);
  atomicAdd(p + 1, y);
#endif
}

__device__ __forceinline__ float WarpQuadMax(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float WarpQuadSum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_MMA_PRIMITIVES_CUH_
