// Building blocks of the Hopper (sm_90a) kernels: tiles in the layout
// wgmma reads from shared memory (128-byte swizzle), their descriptors, and
// the fences and waits of asynchronous warpgroup MMAs.
#ifndef RINGATTN_CUDA_FLASH_HOPPER_PRIMITIVES_CUH_
#define RINGATTN_CUDA_FLASH_HOPPER_PRIMITIVES_CUH_

#include <cstdint>

#include "cuda/flash/mma_primitives.cuh"
#include "cuda/flash/wgmma_ops.cuh"

// Defined in the sm_90a pass only: kernel bodies with wgmma are compiled
// there and empty elsewhere (the launchers check the device first).
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define RINGATTN_WGMMA 1
#endif

namespace ringattn::cuda::flash {

// Shared-memory matrix descriptor of a tile in the 128-byte-swizzle layout
// (rows of 64 elements = 128 bytes, 8-row atoms of 1024 bytes, 1024-byte
// aligned; wider rows are split into column blocks of 64 elements).
// K-major operands step 1024 bytes between 8-row groups (SBO); N-major ones
// also step `lbo` bytes between 64-column blocks.
__device__ __forceinline__ uint64_t SwizzledDescriptor(uint32_t address, uint32_t lbo) {
  return static_cast<uint64_t>((address & 0x3FFFF) >> 4) | static_cast<uint64_t>(lbo >> 4) << 16 |
         static_cast<uint64_t>(1024 >> 4) << 32 | 1ull << 62;
}

// The descriptor of `offset` bytes past the address of descriptor `base`.
// The start address (bits 0-13, in 16-byte units) of any shared-memory
// address fits its field, so the offset adds to the low word without a
// carry: a tile's descriptors are its base's plus constants, one add a
// wgmma, where SwizzledDescriptor of each address masks, shifts and ors
// again (three more instructions before each wgmma).
__device__ __forceinline__ uint64_t DescriptorPlus(uint64_t base, uint32_t offset) {
  return (base & ~0xFFFFFFFFull) | (static_cast<uint32_t>(base) + (offset >> 4));
}

// Byte offset of 16-byte chunk `c` of row `row` in a kRows-row tile of that
// layout.
template <int kRows>
__device__ __forceinline__ uint32_t SwizzledChunk(int row, int c) {
  return (c / 8) * kRows * 128 + row * 128 + (((c % 8) ^ (row % 8)) << 4);
}

// Copies kRows rows (those >= valid zero-filled) of kHeadDim elements,
// `stride` elements apart in global memory, into a tile of that layout.
// A thread copies one chunk column every kRowStep rows (a multiple of 8:
// the same swizzle, compile-time offsets).
template <int kHeadDim, int kRows, int kThreads, typename T>
__device__ __forceinline__ void LoadSwizzledTile(uint32_t tile, const T* global, int64_t stride,
                                                 int valid) {
  constexpr int kChunks = kHeadDim / 8;
  constexpr int kRowStep = kThreads / kChunks;
  static_assert(kRowStep % 8 == 0 && kRows % kRowStep == 0, "chunk rows");
  const int row = threadIdx.x / kChunks, c = threadIdx.x % kChunks;
  const uint32_t dst = tile + SwizzledChunk<kRows>(row, c);
  const T* src = global + row * stride + c * 8;
  const int64_t step = kRowStep * stride;
#pragma unroll
  for (int i = 0; i < kRows / kRowStep; ++i) {
    const bool ok = row + i * kRowStep < valid;
    CpAsync16(dst + i * kRowStep * 128, ok ? src : global, ok);
    src += step;
  }
}

// The thread's warpgroup (threadIdx.x / 128) as lane 0 has it: ptxas then
// knows it is the same in every lane and keeps it, and the descriptors
// built from it, in uniform registers, so that a wgmma takes them without
// moves from vector registers (CUTLASS broadcasts it the same way). Every
// lane of the warp calls it.
__device__ __forceinline__ int WarpgroupIndex() {
  return __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x / 128), 0);
}

// The first of the two rows (r and r + 8) of a warpgroup's m64 wgmma
// accumulator that this thread holds: warp w of the warpgroup holds rows
// [16 w, 16 w + 16).
__device__ __forceinline__ int AccumulatorRow() {
  return (threadIdx.x / 32 % 4) * 16 + threadIdx.x % 32 / 4;
}

__device__ __forceinline__ void WgmmaFence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void WgmmaCommit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int kPending>
__device__ __forceinline__ void WgmmaWait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
}
// Keeps the compiler from moving accesses of wgmma accumulators across the
// fences and waits above.
template <int kN>
__device__ __forceinline__ void FenceRegisters(float (&r)[kN]) {
#pragma unroll
  for (int i = 0; i < kN; ++i) asm volatile("" : "+f"(r[i])::"memory");
}
// fp32 values at a shared-memory address.
__device__ __forceinline__ void StoreShared(uint32_t address, float x) {
  asm volatile("st.shared.f32 [%0], %1;\n" ::"r"(address), "f"(x) : "memory");
}
__device__ __forceinline__ void StoreShared2(uint32_t address, float x, float y) {
  asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" ::"r"(address), "f"(x), "f"(y) : "memory");
}
__device__ __forceinline__ float2 LoadShared2(uint32_t address) {
  float2 v;
  asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];\n"
               : "=f"(v.x), "=f"(v.y)
               : "r"(address)
               : "memory");
  return v;
}

// Four 8x8 matrices of 16-bit elements to shared memory, each thread's
// register j holding its two elements of matrix j in the m16n8 accumulator
// layout (row lane / 4, columns 2 (lane % 4) + {0, 1}); lane l gives the
// address of row l % 8 of matrix l / 8 (16 bytes).
__device__ __forceinline__ void StoreMatrices(uint32_t address, const uint32_t (&r)[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(address),
               "r"(r[0]), "r"(r[1]), "r"(r[2]), "r"(r[3])
               : "memory");
}
// Orders this thread's generic-proxy (cp.async) shared-memory writes before
// later wgmma reads of them (with a barrier after it).
__device__ __forceinline__ void FenceProxyAsync() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// acc = X Y^T as one wgmma group (committed; the caller fences first): the
// warpgroup's 64 rows of X from row x_base of a kXRows-row tile, and all
// kYRows rows of Y, both K-major (kHeadDim columns in 64-column blocks) in
// the 128-byte swizzle.
template <ElementType E, int kHeadDim, int kXRows, int kYRows>
__device__ __forceinline__ void IssueRowsTimesRowsT(float (&acc)[kYRows / 2], uint32_t x_tile,
                                                    int x_base, uint32_t y_tile) {
  // From d128 up, X's descriptors come from one 32-bit base per call, their
  // high word a constant: x_base is per warpgroup, so they live in vector
  // registers, and hoisted out of a loop as invariants they took two
  // registers per k step (at d256, 32 registers that spilled in the
  // forward's consumers; the d128 backward's ping-pong spilled without it).
  // At d64 the hoisted descriptors fit and the d64 forward is 7 % faster
  // with them (the d64 loop keeps its own form: written as the d128 one
  // without the pin, its PTX changes) -- but for the d64 forward's 192-row
  // Q (three consumer warpgroups at 160 registers), where hoisted they
  // spilled 200 / 264 bytes, pinned 152 / 180 (most of it the producer's).
  if constexpr (kHeadDim >= 128 || kXRows > 128) {
    uint32_t x_low = static_cast<uint32_t>(SwizzledDescriptor(x_tile + x_base * 128, 16));
    asm volatile("" : "+r"(x_low));
    const uint64_t x = (SwizzledDescriptor(0, 16) & ~0xFFFFFFFFull) | x_low;
    const uint64_t y = SwizzledDescriptor(y_tile, 16);
#pragma unroll
    for (int kk = 0; kk < kHeadDim / 16; ++kk) {
      const uint32_t col = (kk % 4) * 32;
      Wgmma<E>::template SS<kYRows>(acc, DescriptorPlus(x, (kk / 4) * kXRows * 128 + col),
                                    DescriptorPlus(y, (kk / 4) * kYRows * 128 + col), kk > 0);
    }
  } else {
#pragma unroll
    for (int kk = 0; kk < kHeadDim / 16; ++kk) {
      const uint32_t col = (kk % 4) * 32;
      Wgmma<E>::template SS<kYRows>(
          acc, SwizzledDescriptor(x_tile + (kk / 4) * kXRows * 128 + x_base * 128 + col, 16),
          SwizzledDescriptor(y_tile + (kk / 4) * kYRows * 128 + col, 16), kk > 0);
    }
  }
  WgmmaCommit();
}

// acc += A B over kSteps k16 steps, as products of the wgmma group being
// issued (no fence, no commit): A from registers (a[kk]: the A fragment of
// step kk), B N-major in the 128-byte swizzle (step kk's 16 rows at
// b_tile + kk * 2 KB; 64-column blocks b_rows rows apart). From N = 128
// the descriptors are the tile's plus constants (the d128 / d256 rows 0.3-
// 3 % faster, docs/KERNEL_BENCH.md); at N = 64 each is built whole, as
// before: the d64 forward was 1.6 % slower with the shorter form.
template <ElementType E, int N, int kSteps>
__device__ __forceinline__ void IssueRegistersTimesNMajor(float (&acc)[N / 2],
                                                          const uint32_t (&a)[kSteps][4],
                                                          uint32_t b_tile, int b_rows) {
  const uint64_t b = SwizzledDescriptor(b_tile, b_rows * 128);
#pragma unroll
  for (int kk = 0; kk < kSteps; ++kk) {
    const uint64_t desc = N >= 128 ? DescriptorPlus(b, kk * 16 * 128)
                                   : SwizzledDescriptor(b_tile + kk * 16 * 128, b_rows * 128);
    Wgmma<E>::template RS<N>(acc, a[kk], desc, 1);
  }
}

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_HOPPER_PRIMITIVES_CUH_
