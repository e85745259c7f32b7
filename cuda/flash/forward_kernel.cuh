// The tensor-core forward kernel (FlashAttention-2 scheme on mma.sync):
// one CTA per (query tile, head, batch row); each warp owns 16 query rows and
// walks the key tiles of the task that are not fully masked, with the next
// K/V tile in flight (cp.async) while the current one is multiplied. The
// block result is merged into the fp32 ring state (O, LSE) in the epilogue,
// or, with args.out set, written as O in the input dtype with its LSE.
// Included by one .cu per head dim (forward_d64.cu, ...).
#ifndef RINGATTN_CUDA_FLASH_FORWARD_KERNEL_CUH_
#define RINGATTN_CUDA_FLASH_FORWARD_KERNEL_CUH_

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "cuda/flash/forward_common.cuh"
#include "cuda/flash/launch.cuh"
#include "cuda/flash/mma_primitives.cuh"
#include "cuda/flash/traits.h"
#include "cuda/kernel_args.h"

namespace ringattn::cuda::flash {

// Copies kRows rows (those >= valid zero-filled) of kHeadDim elements,
// `stride` elements apart in global memory, into a swizzled tile. A thread
// copies one 16-byte chunk column every kRowStep rows; kRowStep is a
// multiple of 8, so the swizzle is the same for all of a thread's chunks and
// their shared addresses differ by compile-time offsets.
template <int kHeadDim, int kRows, int kThreads, typename T>
__device__ __forceinline__ void LoadTile(T* tile, const T* global, int64_t stride, int valid) {
  constexpr int kChunks = kHeadDim / 8;
  constexpr int kRowStep = kThreads / kChunks;
  static_assert(kRowStep % 8 == 0 && kRows % kRowStep == 0, "chunk rows");
  const int row = threadIdx.x / kChunks, col = (threadIdx.x % kChunks) * 8;
  T* dst = tile + Swizzle<kHeadDim>(row, col);
  const T* src = global + row * stride + col;
  const int64_t step = kRowStep * stride;
#pragma unroll
  for (int i = 0; i < kRows / kRowStep; ++i) {
    const bool ok = row + i * kRowStep < valid;
    CpAsync16(dst + i * kRowStep * kHeadDim, ok ? src : global, ok);
    src += step;
  }
}

template <ElementType E, int kHeadDim>
__global__ void __launch_bounds__(ForwardTraits<kHeadDim>::kThreads,
                                  ForwardTraits<kHeadDim>::kMinBlocksPerSm)
    FlashForwardKernel(const ForwardBlockArgs a) {
  using Tr = ForwardTraits<kHeadDim>;
  using T = typename Element<E>::T;
  constexpr int kBlockM = Tr::kBlockM, kBlockN = Tr::kBlockN;
  constexpr int kSubN = Tr::kSubN;
  constexpr int kNBlocks = kSubN / 8;     // n8 tiles of S per warp
  constexpr int kDBlocks = kHeadDim / 8;  // n8 tiles of O per warp
  constexpr int kDSteps = kHeadDim / 16;  // k16 steps of Q*K^T
  extern __shared__ __align__(128) unsigned char shared_raw[];
  T* s_q = reinterpret_cast<T*>(shared_raw);
  T* s_k = s_q + Tr::kQElements;  // [2][kBlockN][kHeadDim]
  T* s_v = s_k + 2 * Tr::kKvElements;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const QueryTileTask<T, kHeadDim, kBlockM, kBlockN> task(a);
  const int64_t b = task.b, h = task.h;
  const KeyTileRange& tiles = task.tiles;
  const int n_begin = tiles.n_begin, n_end = tiles.n_end;

  // This thread's rows: g and g + 8 of each of the warp's kMTiles m16 tiles.
  constexpr int kMT = Tr::kMTiles;
  const int row0 = warp * 16 * kMT + lane / 4;  // + 16 * m + 8 * half
  const float scale_log2 = a.softmax_scale * kLog2e;

  float acc[kMT][kDBlocks][4];
  float row_max[kMT][2], row_sum[kMT][2];  // max in scaled log2 units; sums per thread
#pragma unroll
  for (int m = 0; m < kMT; ++m) {
#pragma unroll
    for (int i = 0; i < kDBlocks; ++i) {
      acc[m][i][0] = acc[m][i][1] = acc[m][i][2] = acc[m][i][3] = 0.f;
    }
    row_max[m][0] = row_max[m][1] = -INFINITY;
    row_sum[m][0] = row_sum[m][1] = 0.f;
  }

  if (n_begin < n_end) {
    LoadTile<kHeadDim, kBlockM, Tr::kThreads>(s_q, task.q, task.q_stride, task.q_valid);
    const int first_valid =
        static_cast<int>(min64(kBlockN, task.k_len - static_cast<int64_t>(n_begin) * kBlockN));
    LoadTile<kHeadDim, kBlockN, Tr::kThreads>(
        s_k, task.k + static_cast<int64_t>(n_begin) * kBlockN * task.kv_stride, task.kv_stride,
        first_valid);
    LoadTile<kHeadDim, kBlockN, Tr::kThreads>(
        s_v, task.v + static_cast<int64_t>(n_begin) * kBlockN * task.kv_stride, task.kv_stride,
        first_valid);
    CpAsyncCommit();
  }

  const int lane_row = (lane % 8) + ((lane / 8) % 2) * 8;  // A / V^T fragments
  const SwizzledFragments<kHeadDim> q_frags(s_q, warp * 16 * kMT + lane_row, lane / 16);
  const SwizzledFragments<kHeadDim> k_frags(s_k, (lane % 8) + (lane / 16) * 8, (lane / 8) % 2);
  const SwizzledFragments<kHeadDim> v_frags(s_v, lane_row, lane / 16);

  for (int n = n_begin; n < n_end; ++n) {
    const int buffer = (n - n_begin) & 1;
    const uint32_t kv_offset = buffer * Tr::kKvElements * 2;  // bytes
    if (n + 1 < n_end) {
      const int64_t k1 = static_cast<int64_t>(n + 1) * kBlockN;
      const int valid = static_cast<int>(min64(kBlockN, task.k_len - k1));
      LoadTile<kHeadDim, kBlockN, Tr::kThreads>(s_k + (buffer ^ 1) * Tr::kKvElements,
                                                task.k + k1 * task.kv_stride, task.kv_stride,
                                                valid);
      LoadTile<kHeadDim, kBlockN, Tr::kThreads>(s_v + (buffer ^ 1) * Tr::kKvElements,
                                                task.v + k1 * task.kv_stride, task.kv_stride,
                                                valid);
    }
    CpAsyncCommit();
    CpAsyncWait<1>();
    __syncthreads();

    // Sub-tiles of kSubN keys: S of a whole tile would not fit in registers
    // beside O, and the loads and barriers stay per kBlockN tile.
#pragma unroll 1
    for (int sub = 0; sub < kBlockN / kSubN; ++sub) {
      // S = Q K^T for the warp's rows and the tile's kBlockN keys.
      float s[kMT][kNBlocks][4];
#pragma unroll
      for (int m = 0; m < kMT; ++m) {
#pragma unroll
        for (int j = 0; j < kNBlocks; ++j) s[m][j][0] = s[m][j][1] = s[m][j][2] = s[m][j][3] = 0.f;
      }
#pragma unroll
      for (int kk = 0; kk < kDSteps; ++kk) {
        uint32_t qa[kMT][4];
#pragma unroll
        for (int m = 0; m < kMT; ++m) {
          LdMatrixX4(qa[m], q_frags.At(16 * m, kk));
        }
#pragma unroll
        for (int j = 0; j < kNBlocks; j += 2) {
          uint32_t kb[4];
          LdMatrixX4(kb, k_frags.At(sub * kSubN + j * 8, kk, kv_offset));
#pragma unroll
          for (int m = 0; m < kMT; ++m) {
            Mma<E>(s[m][j], qa[m], kb[0], kb[1]);
            Mma<E>(s[m][j + 1], qa[m], kb[2], kb[3]);
          }
        }
      }

      // Element-wise mask where the tile is not entirely allowed.
      if (tiles.NeedsMask(n)) {
        MaskScores(s, a, b, task.q0 + row0, static_cast<int64_t>(n) * kBlockN + sub * kSubN);
      }

      float rescale[kMT][2];
      SoftmaxStep(s, row_max, row_sum, scale_log2, rescale);
      RescaleRows(acc, rescale);

      // O += P V: P's accumulators are already in A-fragment order.
#pragma unroll
      for (int kk = 0; kk < kSubN / 16; ++kk) {
        uint32_t pa[kMT][4];
#pragma unroll
        for (int m = 0; m < kMT; ++m) PackP<E>(s, m, kk, pa[m]);
#pragma unroll
        for (int i = 0; i < kDBlocks; i += 2) {
          uint32_t vb[4];
          LdMatrixX4Trans(vb, v_frags.At(sub * kSubN + kk * 16, i / 2, kv_offset));
#pragma unroll
          for (int m = 0; m < kMT; ++m) {
            Mma<E>(acc[m][i], pa[m], vb[0], vb[1]);
            Mma<E>(acc[m][i + 1], pa[m], vb[2], vb[3]);
          }
        }
      }
    }
    __syncthreads();  // every warp is done with `buffer` before it refills
  }

  StoreBlockResult<E, kHeadDim>(acc, row_max, row_sum, a, b, h, task.q0, task.q_valid, row0);
}

template <ElementType E, int kHeadDim>
cudaError_t LaunchFlashForwardKernel(const ForwardBlockArgs& a, cudaStream_t stream) {
  using Tr = ForwardTraits<kHeadDim>;
  return LaunchKernel(FlashForwardKernel<E, kHeadDim>, TaskGrid(a, a.q_pos.length, Tr::kBlockM),
                      Tr::kThreads, Tr::kSharedBytes, stream, a);
}

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_FORWARD_KERNEL_CUH_
