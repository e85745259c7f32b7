// The fp32 forward on tensor cores, accurate to fp32 (3xTF32): every fp32
// operand x is split into x_hi = tf32(x) and x_lo = tf32(x - x_hi), and a
// product is a_lo b_hi + a_hi b_lo + a_hi b_hi on mma.sync m16n8k8 tf32
// with fp32 accumulation; the dropped a_lo b_lo is ~2^-22 of the product,
// so results match fp32 FMA math (the test holds it to 1e-5 of the fp64
// oracle), not TF32's 2^-11. Same scheme as the fp16/bf16 kernel
// (forward_kernel.cuh): a warp owns 16 query rows, K/V tiles are
// double-buffered by cp.async, masks/softmax/epilogue are forward_common's.
//
// Fragments of m16n8k8 tf32 (g = lane / 4, t = lane % 4): A a0 (row g,
// col t), a1 (row g+8, col t), a2 (row g, col t+4), a3 (row g+8, col t+4);
// B b0 (k t, col g), b1 (k t+4, col g); C as m16n8k16's. Tiles sit in
// shared memory with rows of kHeadDim + 4 floats, so the 32 lanes' scalar
// fragment loads (rows g or 2t, columns t or g) hit 32 distinct banks.
// P feeds O += P V from its C layout directly: lane t holds keys 2t and
// 2t+1 of each n8 block, which become A's columns t and t+4 when V's rows
// are read in the same order (rows 2t and 2t+1 for b0 and b1).
// Included by forward_f32.cu.
#ifndef RINGATTN_CUDA_FLASH_FORWARD_F32_KERNEL_CUH_
#define RINGATTN_CUDA_FLASH_FORWARD_F32_KERNEL_CUH_

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "cuda/flash/forward_common.cuh"
#include "cuda/flash/launch.cuh"
#include "cuda/flash/mma_primitives.cuh"
#include "cuda/flash/tf32_mma.cuh"
#include "cuda/flash/traits.h"
#include "cuda/kernel_args.h"

namespace ringattn::cuda::flash {

// Splits a tile of kRows rows in shared memory once, for all warps: x's
// slot gets hi (tf32 bits), the same slot of `lo` gets lo. Four warps read
// each K/V element; splitting it once instead of per fragment load saves
// three quarters of the conversion work (the ALU pipe is the next limit
// after the tensor pipe).
template <typename Tr, int kRows>
__device__ __forceinline__ void SplitTile(float* tile, float* lo) {
  constexpr int kChunks = Tr::kHeadDim / 4;
  for (int i = threadIdx.x; i < kRows * kChunks; i += Tr::kThreads) {
    const int offset = (i / kChunks) * Tr::kStride + (i % kChunks) * 4;
    float4 x = *reinterpret_cast<const float4*>(tile + offset);
    uint32_t h[4], l[4];
    SplitTf32(x.x, h[0], l[0]);
    SplitTf32(x.y, h[1], l[1]);
    SplitTf32(x.z, h[2], l[2]);
    SplitTf32(x.w, h[3], l[3]);
    *reinterpret_cast<uint4*>(tile + offset) = make_uint4(h[0], h[1], h[2], h[3]);
    *reinterpret_cast<uint4*>(lo + offset) = make_uint4(l[0], l[1], l[2], l[3]);
  }
}

template <int kHeadDim>
__global__ void __launch_bounds__(F32ForwardTraits<kHeadDim>::kThreads,
                                  F32ForwardTraits<kHeadDim>::kMinBlocksPerSm)
    FlashForwardF32Kernel(const ForwardBlockArgs a) {
  using Tr = F32ForwardTraits<kHeadDim>;
  constexpr int kBlockM = Tr::kBlockM, kBlockN = Tr::kBlockN, kStride = Tr::kStride;
  constexpr int kNBlocks = kBlockN / 8;   // n8 tiles of S per warp
  constexpr int kDBlocks = kHeadDim / 8;  // n8 tiles of O per warp
  extern __shared__ __align__(128) unsigned char shared_raw[];
  float* s_q = reinterpret_cast<float*>(shared_raw);
  float* s_k = s_q + Tr::kQFloats;  // [2][kBlockN][kStride], hi after the split
  float* s_v = s_k + 2 * Tr::kKvFloats;
  float* s_k_lo = s_v + 2 * Tr::kKvFloats;  // the current tile's lo parts
  float* s_v_lo = s_k_lo + Tr::kKvFloats;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const QueryTileTask<float, kHeadDim, kBlockM, kBlockN> task(a);
  const int64_t b = task.b, h = task.h;
  const KeyTileRange& tiles = task.tiles;
  const int n_begin = tiles.n_begin, n_end = tiles.n_end;
  const int row0 = warp * 16 + g;  // the thread's rows: row0 and row0 + 8
  const float scale_log2 = a.softmax_scale * kLog2e;

  float acc[1][kDBlocks][4];
  float row_max[1][2] = {{-INFINITY, -INFINITY}}, row_sum[1][2] = {{0.f, 0.f}};
#pragma unroll
  for (int i = 0; i < kDBlocks; ++i)
    acc[0][i][0] = acc[0][i][1] = acc[0][i][2] = acc[0][i][3] = 0.f;

  if (n_begin < n_end) {
    LoadF32Tile<Tr, kBlockM>(s_q, task.q, task.q_stride, task.q_valid);
    const int64_t k_first = static_cast<int64_t>(n_begin) * kBlockN;
    const int valid = static_cast<int>(min64(kBlockN, task.k_len - k_first));
    LoadF32Tile<Tr, kBlockN>(s_k, task.k + k_first * task.kv_stride, task.kv_stride, valid);
    LoadF32Tile<Tr, kBlockN>(s_v, task.v + k_first * task.kv_stride, task.kv_stride, valid);
    CpAsyncCommit();
  }
  const int q_frag = row0 * kStride + t;

  for (int n = n_begin; n < n_end; ++n) {
    const int buffer = (n - n_begin) & 1;
    if (n + 1 < n_end) {
      const int64_t k1 = static_cast<int64_t>(n + 1) * kBlockN;
      const int valid = static_cast<int>(min64(kBlockN, task.k_len - k1));
      LoadF32Tile<Tr, kBlockN>(s_k + (buffer ^ 1) * Tr::kKvFloats, task.k + k1 * task.kv_stride,
                               task.kv_stride, valid);
      LoadF32Tile<Tr, kBlockN>(s_v + (buffer ^ 1) * Tr::kKvFloats, task.v + k1 * task.kv_stride,
                               task.kv_stride, valid);
    }
    CpAsyncCommit();
    CpAsyncWait<1>();
    __syncthreads();
    float* k_tile = s_k + buffer * Tr::kKvFloats;
    float* v_tile = s_v + buffer * Tr::kKvFloats;
    SplitTile<Tr, kBlockN>(k_tile, s_k_lo);
    SplitTile<Tr, kBlockN>(v_tile, s_v_lo);
    __syncthreads();

    // S = Q K^T. The k8 loop stays rolled: unrolled, the kernel overflows
    // the instruction cache (ncu: "no instruction" was the top stall).
    float s[1][kNBlocks][4];
#pragma unroll
    for (int j = 0; j < kNBlocks; ++j) s[0][j][0] = s[0][j][1] = s[0][j][2] = s[0][j][3] = 0.f;
    const float* q = s_q + q_frag;
    const int k_frag = g * kStride + t;
    const uint32_t* k_hi = reinterpret_cast<const uint32_t*>(k_tile) + k_frag;
    const uint32_t* k_lo = reinterpret_cast<const uint32_t*>(s_k_lo) + k_frag;
#pragma unroll 1
    for (int kk = 0; kk < kHeadDim / 8; ++kk) {
      const int c = 8 * kk;
      // Q is split per use: a lo copy in shared memory would cost the
      // third CTA per SM that hides the mma latency.
      uint32_t a_hi[4], a_lo[4];
      SplitRowFragment(q + c, kStride, a_hi, a_lo);
      uint32_t kb[kNBlocks][4];
#pragma unroll
      for (int j = 0; j < kNBlocks; ++j) {
        const int o = j * 8 * kStride + c;
        kb[j][0] = k_hi[o];
        kb[j][1] = k_hi[o + 4];
        kb[j][2] = k_lo[o];
        kb[j][3] = k_lo[o + 4];
      }
      Mma3xTf32(s[0], a_hi, a_lo, kb);
    }

    if (tiles.NeedsMask(n)) {
      MaskScores(s, a, b, task.q0 + row0, static_cast<int64_t>(n) * kBlockN);
    }
    float rescale[1][2];
    SoftmaxStep(s, row_max, row_sum, scale_log2, rescale);
    RescaleRows(acc, rescale);

    // O += P V, key block j as one k8 step (keys 2t, 2t+1 as columns t, t+4).
    const int v_frag = 2 * t * kStride + g;
    const uint32_t* v_hi = reinterpret_cast<const uint32_t*>(v_tile) + v_frag;
    const uint32_t* v_lo = reinterpret_cast<const uint32_t*>(s_v_lo) + v_frag;
#pragma unroll
    for (int j = 0; j < kNBlocks; ++j) {
      uint32_t a_hi[4], a_lo[4];
      SplitAccumulatorFragment(s[0][j], a_hi, a_lo);
      uint32_t vb[kDBlocks][4];
#pragma unroll
      for (int i = 0; i < kDBlocks; ++i) {
        const int o = 8 * j * kStride + 8 * i;
        vb[i][0] = v_hi[o];
        vb[i][1] = v_hi[o + kStride];
        vb[i][2] = v_lo[o];
        vb[i][3] = v_lo[o + kStride];
      }
      Mma3xTf32(acc[0], a_hi, a_lo, vb);
    }
    __syncthreads();  // every warp is done with `buffer` and the lo tiles
  }

  StoreBlockResult<ElementType::kFloat32, kHeadDim>(acc, row_max, row_sum, a, b, h, task.q0,
                                                    task.q_valid, row0);
}

template <int kHeadDim>
cudaError_t LaunchFlashForwardF32Kernel(const ForwardBlockArgs& a, cudaStream_t stream) {
  using Tr = F32ForwardTraits<kHeadDim>;
  return LaunchKernel(FlashForwardF32Kernel<kHeadDim>, TaskGrid(a, a.q_pos.length, Tr::kBlockM),
                      Tr::kThreads, Tr::kSharedBytes, stream, a);
}

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_FORWARD_F32_KERNEL_CUH_
