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

#include "core/lse_math.h"
#include "cuda/flash/block_mask.cuh"
#include "cuda/flash/mma_primitives.cuh"
#include "cuda/flash/traits.h"
#include "cuda/forward_block.h"

namespace ringattn::cuda::flash {

// Copies `rows` rows (those < valid zero-filled otherwise) of kHeadDim
// elements, `stride` elements apart in global memory, into a swizzled tile.
template <int kHeadDim, int kRows, int kThreads, typename T>
__device__ __forceinline__ void LoadTile(T* tile, const T* global, int64_t stride,
                                         int valid) {
  constexpr int kChunks = kHeadDim / 8;
#pragma unroll
  for (int i = 0; i < kRows * kChunks / kThreads; ++i) {
    const int chunk = threadIdx.x + i * kThreads;
    const int row = chunk / kChunks, col = (chunk % kChunks) * 8;
    const bool ok = row < valid;
    CpAsync16(tile + Swizzle<kHeadDim>(row, col),
              global + (ok ? row * stride + col : 0), ok);
  }
}

template <ElementType E, int kHeadDim>
__global__ void __launch_bounds__(ForwardTraits<kHeadDim>::kThreads,
                                  ForwardTraits<kHeadDim>::kMinBlocksPerSm)
    FlashForwardKernel(const ForwardBlockArgs a) {
  using Tr = ForwardTraits<kHeadDim>;
  using T = typename Element<E>::T;
  constexpr int kBlockM = Tr::kBlockM, kBlockN = Tr::kBlockN;
  constexpr int kNBlocks = kBlockN / 8;     // n8 tiles of S per warp
  constexpr int kDBlocks = kHeadDim / 8;    // n8 tiles of O per warp
  constexpr int kDSteps = kHeadDim / 16;    // k16 steps of Q*K^T
  extern __shared__ __align__(128) unsigned char shared_raw[];
  T* s_q = reinterpret_cast<T*>(shared_raw);
  T* s_k = s_q + Tr::kQElements;            // [2][kBlockN][kHeadDim]
  T* s_v = s_k + 2 * Tr::kKvElements;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t q_len = a.q_pos.length, k_len = a.k_pos.length;
  const int m_tile = gridDim.x - 1 - blockIdx.x;  // heavy causal tiles first
  const int64_t q0 = static_cast<int64_t>(m_tile) * kBlockM;
  const int q_valid = static_cast<int>(min64(kBlockM, q_len - q0));
  const int64_t group = a.num_heads / a.num_kv_heads;
  const int64_t h = a.kv_head_begin * group + blockIdx.y;
  const int64_t kv_head = h / group;
  const int64_t b = blockIdx.z;
  const int64_t q_stride = a.num_heads * kHeadDim;
  const int64_t kv_stride = a.num_kv_heads * kHeadDim;
  const T* g_q = static_cast<const T*>(a.q) +
                 ((b * a.q_rows + a.q_row + q0) * a.num_heads + h) * kHeadDim;
  const T* g_k = static_cast<const T*>(a.k) +
                 ((b * a.k_rows + a.k_row) * a.num_kv_heads + kv_head) * kHeadDim;
  const T* g_v = static_cast<const T*>(a.v) +
                 ((b * a.k_rows + a.k_row) * a.num_kv_heads + kv_head) * kHeadDim;

  const TaskMask mask = TaskMask::Of(a, b);
  const RunTiles q_tiles{a.q_pos, kBlockM};
  const RunTiles k_tiles{a.k_pos, kBlockN};
  const int64_t q_lo = q_tiles.First(m_tile), q_hi = q_tiles.Last(m_tile);
  int n_begin, n_end;
  k_tiles.Range(mask.KeyLow(q_lo), mask.KeyHigh(q_hi), &n_begin, &n_end);

  // This thread's two rows (g and g + 8 of the warp's 16) and positions.
  const int row0 = warp * 16 + lane / 4;
  const int64_t pos0 = PositionAt(a.q_pos, q0 + row0);
  const int64_t pos1 = PositionAt(a.q_pos, q0 + row0 + 8);
  const float scale_log2 = a.softmax_scale * 1.4426950408889634f;

  float acc[kDBlocks][4];
#pragma unroll
  for (int i = 0; i < kDBlocks; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
  float max0 = -INFINITY, max1 = -INFINITY;  // running max, scaled log2 units
  float sum0 = 0.f, sum1 = 0.f;              // this thread's partial row sums

  if (n_begin < n_end) {
    LoadTile<kHeadDim, kBlockM, Tr::kThreads>(s_q, g_q, q_stride, q_valid);
    const int first_valid = static_cast<int>(
        min64(kBlockN, k_len - static_cast<int64_t>(n_begin) * kBlockN));
    LoadTile<kHeadDim, kBlockN, Tr::kThreads>(
        s_k, g_k + static_cast<int64_t>(n_begin) * kBlockN * kv_stride, kv_stride, first_valid);
    LoadTile<kHeadDim, kBlockN, Tr::kThreads>(
        s_v, g_v + static_cast<int64_t>(n_begin) * kBlockN * kv_stride, kv_stride, first_valid);
    CpAsyncCommit();
  }
  uint32_t q_frag[Tr::kQInRegisters ? kDSteps : 1][4];

  for (int n = n_begin; n < n_end; ++n) {
    const int buffer = (n - n_begin) & 1;
    if (n + 1 < n_end) {
      const int64_t k1 = static_cast<int64_t>(n + 1) * kBlockN;
      const int valid = static_cast<int>(min64(kBlockN, k_len - k1));
      LoadTile<kHeadDim, kBlockN, Tr::kThreads>(
          s_k + (buffer ^ 1) * Tr::kKvElements, g_k + k1 * kv_stride, kv_stride, valid);
      LoadTile<kHeadDim, kBlockN, Tr::kThreads>(
          s_v + (buffer ^ 1) * Tr::kKvElements, g_v + k1 * kv_stride, kv_stride, valid);
    }
    CpAsyncCommit();
    CpAsyncWait<1>();
    __syncthreads();
    const T* k_tile = s_k + buffer * Tr::kKvElements;
    const T* v_tile = s_v + buffer * Tr::kKvElements;

    if constexpr (Tr::kQInRegisters) {
      if (n == n_begin) {
#pragma unroll
        for (int kk = 0; kk < kDSteps; ++kk) {
          const int r = warp * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
          LdMatrixX4(q_frag[kk], s_q + Swizzle<kHeadDim>(r, kk * 16 + (lane / 16) * 8));
        }
      }
    }

    // S = Q K^T for the warp's 16 rows and the tile's kBlockN keys.
    float s[kNBlocks][4];
#pragma unroll
    for (int j = 0; j < kNBlocks; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < kDSteps; ++kk) {
      uint32_t qa[4];
      if constexpr (Tr::kQInRegisters) {
#pragma unroll
        for (int i = 0; i < 4; ++i) qa[i] = q_frag[kk][i];
      } else {
        const int r = warp * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
        LdMatrixX4(qa, s_q + Swizzle<kHeadDim>(r, kk * 16 + (lane / 16) * 8));
      }
#pragma unroll
      for (int j = 0; j < kNBlocks; j += 2) {
        uint32_t kb[4];
        const int key = j * 8 + (lane % 8) + (lane / 16) * 8;
        LdMatrixX4(kb, k_tile + Swizzle<kHeadDim>(key, kk * 16 + ((lane / 8) % 2) * 8));
        Mma<E>(s[j], qa, kb[0], kb[1]);
        Mma<E>(s[j + 1], qa, kb[2], kb[3]);
      }
    }

    // Element-wise mask where the tile is not entirely allowed.
    const int64_t k_first = static_cast<int64_t>(n) * kBlockN;
    if (!k_tiles.Full(n) ||
        !mask.AllAllowed(q_lo, q_hi, k_tiles.First(n), k_tiles.Last(n))) {
#pragma unroll
      for (int j = 0; j < kNBlocks; ++j) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int64_t key = k_first + j * 8 + (lane % 4) * 2 + e;
          const bool valid = key < k_len;
          const int64_t kp = PositionAt(a.k_pos, key);
          if (!valid || !mask.Allowed(pos0, kp)) s[j][e] = -INFINITY;
          if (!valid || !mask.Allowed(pos1, kp)) s[j][2 + e] = -INFINITY;
        }
      }
    }

    // Online softmax (FlashAttention-2: row sums stay per thread until the end).
    float tile_max0 = -INFINITY, tile_max1 = -INFINITY;
#pragma unroll
    for (int j = 0; j < kNBlocks; ++j) {
      tile_max0 = fmaxf(tile_max0, fmaxf(s[j][0], s[j][1]));
      tile_max1 = fmaxf(tile_max1, fmaxf(s[j][2], s[j][3]));
    }
    const float new_max0 = fmaxf(max0, WarpQuadMax(tile_max0) * scale_log2);
    const float new_max1 = fmaxf(max1, WarpQuadMax(tile_max1) * scale_log2);
    // A row with no allowed key yet keeps max -inf: subtract 0 instead.
    const float ref0 = new_max0 == -INFINITY ? 0.f : new_max0;
    const float ref1 = new_max1 == -INFINITY ? 0.f : new_max1;
    const float rescale0 = FastExp2(max0 - ref0), rescale1 = FastExp2(max1 - ref1);
    max0 = new_max0;
    max1 = new_max1;
    sum0 *= rescale0;
    sum1 *= rescale1;
#pragma unroll
    for (int i = 0; i < kDBlocks; ++i) {
      acc[i][0] *= rescale0;
      acc[i][1] *= rescale0;
      acc[i][2] *= rescale1;
      acc[i][3] *= rescale1;
    }
#pragma unroll
    for (int j = 0; j < kNBlocks; ++j) {
      s[j][0] = FastExp2(fmaf(s[j][0], scale_log2, -ref0));
      s[j][1] = FastExp2(fmaf(s[j][1], scale_log2, -ref0));
      s[j][2] = FastExp2(fmaf(s[j][2], scale_log2, -ref1));
      s[j][3] = FastExp2(fmaf(s[j][3], scale_log2, -ref1));
      sum0 += s[j][0] + s[j][1];
      sum1 += s[j][2] + s[j][3];
    }

    // O += P V: P's accumulators are already in A-fragment order.
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      const uint32_t pa[4] = {Element<E>::Pack(s[2 * kk][0], s[2 * kk][1]),
                              Element<E>::Pack(s[2 * kk][2], s[2 * kk][3]),
                              Element<E>::Pack(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              Element<E>::Pack(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int i = 0; i < kDBlocks; i += 2) {
        uint32_t vb[4];
        const int key = kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
        LdMatrixX4Trans(vb, v_tile + Swizzle<kHeadDim>(key, i * 8 + (lane / 16) * 8));
        Mma<E>(acc[i], pa, vb[0], vb[1]);
        Mma<E>(acc[i + 1], pa, vb[2], vb[3]);
      }
    }
    __syncthreads();  // every warp is done with `buffer` before it refills
  }

  // Epilogue: the block's rows as (O_b, LSE_b), written or merged.
  sum0 = WarpQuadSum(sum0);
  sum1 = WarpQuadSum(sum1);
  constexpr float kLn2 = 0.6931471805599453f;
  // Every lane reads the state's LSE of its rows before any lane writes it.
  float old_lse[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int64_t t = a.q_row + q0 + row0 + half * 8;
    old_lse[half] = a.out == nullptr && row0 + half * 8 < q_valid
                        ? a.state_lse[(b * a.num_heads + h) * a.q_rows + t]
                        : -INFINITY;
  }
  __syncwarp();
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int row = row0 + half * 8;
    if (row >= q_valid) continue;
    const float sum = half ? sum1 : sum0;
    const float lse_b = sum > 0.f ? ((half ? max1 : max0) + log2f(sum)) * kLn2 : -INFINITY;
    const float inv = sum > 0.f ? 1.f / sum : 0.f;
    const int64_t t = a.q_row + q0 + row;
    float* lse = a.state_lse + (b * a.num_heads + h) * a.q_rows + t;
    const int64_t o_offset = ((b * a.q_rows + t) * a.num_heads + h) * kHeadDim;
    const int col = (lane % 4) * 2;
    if (a.out != nullptr) {
      T* out = static_cast<T*>(a.out) + o_offset;
#pragma unroll
      for (int i = 0; i < kDBlocks; ++i) {
        *reinterpret_cast<uint32_t*>(out + i * 8 + col) =
            Element<E>::Pack(acc[i][2 * half] * inv, acc[i][2 * half + 1] * inv);
      }
      if (lane % 4 == 0) *lse = lse_b;
      continue;
    }
    if (sum == 0.f) continue;  // no allowed key: the state is unchanged
    const LseMerge<float> m = MergeLse(old_lse[half], lse_b);
    float* o = a.state_o + o_offset;
    const float new_scale = m.new_scale * inv;
#pragma unroll
    for (int i = 0; i < kDBlocks; ++i) {
      float2* p = reinterpret_cast<float2*>(o + i * 8 + col);
      const float2 old = m.old_scale == 0.f ? make_float2(0.f, 0.f) : *p;
      *p = make_float2(old.x * m.old_scale + acc[i][2 * half] * new_scale,
                       old.y * m.old_scale + acc[i][2 * half + 1] * new_scale);
    }
    if (lane % 4 == 0) *lse = m.lse;
  }
}

template <ElementType E, int kHeadDim>
cudaError_t LaunchFlashForwardKernel(const ForwardBlockArgs& a, cudaStream_t stream) {
  using Tr = ForwardTraits<kHeadDim>;
  const auto kernel = FlashForwardKernel<E, kHeadDim>;
  if (const cudaError_t e = cudaFuncSetAttribute(
          kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Tr::kSharedBytes);
      e != cudaSuccess) {
    return e;
  }
  const int64_t group = a.num_heads / a.num_kv_heads;
  const dim3 grid(
      static_cast<unsigned>((a.q_pos.length + Tr::kBlockM - 1) / Tr::kBlockM),
      static_cast<unsigned>((a.kv_head_end - a.kv_head_begin) * group),
      static_cast<unsigned>(a.batch));
  kernel<<<grid, Tr::kThreads, Tr::kSharedBytes, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_FORWARD_KERNEL_CUH_
