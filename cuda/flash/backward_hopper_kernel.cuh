// The Hopper backward kernel (sm_90a, wgmma): one CTA per (key tile of 128,
// query head, batch row), two warpgroups of 64 keys each, walking the query
// tiles (64 rows; Q, dO, LSE and D double-buffered by cp.async) that hold an
// allowed pair. Per tile, warpgroup w:
//   S^T = K_w Q^T and dP^T = V_w dO^T   (wgmma from shared memory)
//   P^T = exp(S^T scale - LSE), dS^T = P^T (dP^T - D)   (registers)
//   dV_w += P^T dO, dK_w += dS^T Q      (P^T, dS^T from registers)
//   dS^T -> shared memory, then dQ += dS K (both warpgroups' dS^T) and the
//   fp32 dQ is updated with atomics.
// dK and dV stay in registers until the CTA's last tile and are added to
// the fp32 buffers that travel the ring. Included by backward_hopper_d<D>.cu.
#ifndef RINGATTN_CUDA_FLASH_BACKWARD_HOPPER_KERNEL_CUH_
#define RINGATTN_CUDA_FLASH_BACKWARD_HOPPER_KERNEL_CUH_

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "cuda/flash/block_mask.cuh"
#include "cuda/flash/hopper_primitives.cuh"
#include "cuda/flash/mma_primitives.cuh"
#include "cuda/flash/traits.h"
#include "cuda/flash/wgmma_ops.cuh"
#include "cuda/kernel_args.h"

namespace ringattn::cuda::flash {

template <ElementType E, int kHeadDim>
__global__ void __launch_bounds__(HopperBackwardTraits<kHeadDim>::kThreads, 1)
    FlashBackwardHopperKernel(const BackwardBlockArgs args) {
#ifdef RINGATTN_WGMMA
  using Tr = HopperBackwardTraits<kHeadDim>;
  using T = typename Element<E>::T;
  using Mma = Wgmma<E>;
  const ForwardBlockArgs& a = args.task;
  constexpr int kBlockM = Tr::kBlockM, kBlockN = Tr::kBlockN;
  constexpr int kMB = kBlockM / 8;  // n8 blocks of S^T (queries)
  constexpr int kDB = kHeadDim / 8;
  extern __shared__ __align__(1024) unsigned char shared_raw[];
  const uint32_t s_k = (SharedAddress(shared_raw) + 1023) & ~1023u;
  const uint32_t s_v = s_k + Tr::kKvBytes;
  const uint32_t s_q = s_v + Tr::kKvBytes;       // [2][kBlockM][kHeadDim]
  const uint32_t s_do = s_q + 2 * Tr::kQBytes;   // [2][kBlockM][kHeadDim]
  const uint32_t s_ds = s_do + 2 * Tr::kQBytes;  // dS^T [kBlockN][kBlockM]
  float* s_lse =
      reinterpret_cast<float*>(shared_raw + (s_ds + Tr::kDsBytes - SharedAddress(shared_raw)));
  float* s_delta = s_lse + 2 * kBlockM;  // both [2][kBlockM]

  const int warpgroup = threadIdx.x / 128, lane = threadIdx.x % 32;
  const int64_t q_len = a.q_pos.length, k_len = a.k_pos.length;
  const int n_tile = blockIdx.x;
  const int64_t k0 = static_cast<int64_t>(n_tile) * kBlockN;
  const int k_valid = static_cast<int>(min64(kBlockN, k_len - k0));
  const int64_t group = a.num_heads / a.num_kv_heads;
  const int64_t h = a.kv_head_begin * group + blockIdx.y;
  const int64_t kv_head = h / group;
  const int64_t b = blockIdx.z;
  const int64_t q_stride = a.num_heads * kHeadDim;
  const int64_t kv_stride = KvBufferHeads(a) * kHeadDim;
  const int64_t kv_offset0 = KvOffset(a, b, a.k_row + k0, kv_head);
  const int64_t q_offset0 = ((b * a.q_rows + a.q_row) * a.num_heads + h) * kHeadDim;
  const T* g_q = static_cast<const T*>(a.q) + q_offset0;
  const T* g_do = static_cast<const T*>(args.dout) + q_offset0;
  const int64_t stat0 = (b * a.num_heads + h) * a.q_rows + a.q_row;

  // Query tiles [m_begin, m_end) hold an allowed pair; [full_begin, full_end)
  // only allowed pairs (and the key tile is whole).
  int m_begin, m_end, full_begin, full_end;
  {
    const TaskMask mask = TaskMask::Of(a, b);
    const RunTiles q_tiles{a.q_pos, kBlockM};
    const RunTiles k_tiles{a.k_pos, kBlockN};
    const int64_t k_lo = k_tiles.First(n_tile), k_hi = k_tiles.Last(n_tile);
    q_tiles.Range(mask.QueryLow(k_lo), mask.QueryHigh(k_lo, k_hi), &m_begin, &m_end);
    FullQueryTileRange(mask, q_tiles, k_lo, k_hi, &full_begin, &full_end);
    if (!k_tiles.Full(n_tile)) full_begin = full_end = 0;
  }
  if (m_begin >= m_end) return;  // no allowed pair: nothing to add

  const auto load_q_tile = [&](int m, int buffer) {
    const int64_t row = static_cast<int64_t>(m) * kBlockM;
    const int valid = static_cast<int>(min64(kBlockM, q_len - row));
    LoadSwizzledTile<kHeadDim, kBlockM, Tr::kThreads>(s_q + buffer * Tr::kQBytes,
                                                      g_q + row * q_stride, q_stride, valid);
    LoadSwizzledTile<kHeadDim, kBlockM, Tr::kThreads>(s_do + buffer * Tr::kQBytes,
                                                      g_do + row * q_stride, q_stride, valid);
  };
  LoadSwizzledTile<kHeadDim, kBlockN, Tr::kThreads>(s_k, static_cast<const T*>(a.k) + kv_offset0,
                                                    kv_stride, k_valid);
  LoadSwizzledTile<kHeadDim, kBlockN, Tr::kThreads>(s_v, static_cast<const T*>(a.v) + kv_offset0,
                                                    kv_stride, k_valid);
  load_q_tile(m_begin, 0);
  CpAsyncCommit();

  const float scale_log2 = a.softmax_scale * 1.4426950408889634f;
  constexpr float kLog2e = 1.4426950408889634f;
  // Accumulators, flat as wgmma names them: [n8 block][4] in the m16n8 layout.
  float dk[kHeadDim / 2], dv[kHeadDim / 2];
#pragma unroll
  for (int i = 0; i < kHeadDim / 2; ++i) dk[i] = dv[i] = 0.f;
  // The warpgroup's keys: rows key0 and key0 + 8 of this thread.
  const int key_base = warpgroup * 64;
  const int key0 = key_base + (threadIdx.x / 32 % 4) * 16 + lane / 4;

  // LSE (log2 units) and D of query tile m's rows: thread r < kBlockM loads
  // row r; rows past the end get LSE +inf, so P = 0 there. Tile m + 1's are
  // loaded at the top of iteration m and stored at its end, so the global
  // latency hides behind the tile's work.
  static_assert(kBlockM <= Tr::kThreads, "a thread per query row");
  float next_lse = INFINITY, next_delta = 0.f;
  const auto load_stats = [&](int m) {
    const int64_t row = static_cast<int64_t>(m) * kBlockM + threadIdx.x;
    if (threadIdx.x < kBlockM && row < q_len) {
      next_lse = args.lse[stat0 + row];
      next_delta = args.delta[stat0 + row];
    } else {
      next_lse = INFINITY;
      next_delta = 0.f;
    }
  };
  const auto store_stats = [&](int buffer) {
    if (threadIdx.x < kBlockM) {
      s_lse[buffer * kBlockM + threadIdx.x] = next_lse == -INFINITY ? INFINITY : next_lse * kLog2e;
      s_delta[buffer * kBlockM + threadIdx.x] = next_delta;
    }
  };
  load_stats(m_begin);
  store_stats(0);

  for (int m = m_begin; m < m_end; ++m) {
    const int buffer = (m - m_begin) & 1;
    if (m + 1 < m_end) {
      load_q_tile(m + 1, buffer ^ 1);
      load_stats(m + 1);
    }
    CpAsyncCommit();
    const int64_t q_first = static_cast<int64_t>(m) * kBlockM;
    CpAsyncWait<1>();
    FenceProxyAsync();
    __syncthreads();
    const uint32_t q_tile = s_q + buffer * Tr::kQBytes;
    const uint32_t do_tile = s_do + buffer * Tr::kQBytes;

    // S^T = K_w Q^T, then dP^T = V_w dO^T (two groups: P^T is computed
    // while dP^T is multiplied).
    float s[kBlockM / 2], dp[kBlockM / 2];
    WgmmaFence();
#pragma unroll
    for (int kk = 0; kk < kHeadDim / 16; ++kk) {
      const uint32_t col = (kk % 4) * 32;
      Mma::template SS<kBlockM>(
          s, SwizzledDescriptor(s_k + (kk / 4) * kBlockN * 128 + key_base * 128 + col, 16),
          SwizzledDescriptor(q_tile + (kk / 4) * kBlockM * 128 + col, 16), kk > 0);
    }
    WgmmaCommit();
#pragma unroll
    for (int kk = 0; kk < kHeadDim / 16; ++kk) {
      const uint32_t col = (kk % 4) * 32;
      Mma::template SS<kBlockM>(
          dp, SwizzledDescriptor(s_v + (kk / 4) * kBlockN * 128 + key_base * 128 + col, 16),
          SwizzledDescriptor(do_tile + (kk / 4) * kBlockM * 128 + col, 16), kk > 0);
    }
    WgmmaCommit();
    WgmmaWait<1>();
    FenceRegisters(s);

    // P^T = exp(S^T * scale - LSE), masked pairs 0. The mask of a partial
    // tile is computed in a rolled loop as one bit per element (bit 4 j +
    // 2 half + e): unrolled position math overflowed the instruction cache.
    static_assert(kMB * 4 <= 32, "one bit per element of S^T");
    uint32_t allowed = ~0u;
    if (m < full_begin || m >= full_end) {
      const TaskMask mask = TaskMask::Of(a, b);
      allowed = 0;
#pragma unroll 1
      for (int bit = 0; bit < kMB * 4; ++bit) {
        const int col = (bit / 4) * 8 + (lane % 4) * 2 + bit % 2;
        const int key = key0 + 8 * ((bit / 2) % 2);
        const bool ok =
            key < k_valid && q_first + col < q_len &&
            mask.Allowed(PositionAt(a.q_pos, q_first + col), PositionAt(a.k_pos, k0 + key));
        allowed |= static_cast<uint32_t>(ok) << bit;
      }
    }
    auto& p3 = *reinterpret_cast<float(*)[1][kMB][4]>(s);
#pragma unroll
    for (int j = 0; j < kMB; ++j) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int col = j * 8 + (lane % 4) * 2 + e;
        const float lse = s_lse[buffer * kBlockM + col];
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const float x = FastExp2(fmaf(p3[0][j][2 * half + e], scale_log2, -lse));
          p3[0][j][2 * half + e] = (allowed >> (4 * j + 2 * half + e)) & 1u ? x : 0.f;
        }
      }
    }
    uint32_t p16[kBlockM / 16][4];
#pragma unroll
    for (int kk = 0; kk < kBlockM / 16; ++kk) PackP<E>(p3, 0, kk, p16[kk]);

    // dS^T = P^T (dP^T - D).
    WgmmaWait<0>();
    FenceRegisters(dp);
    auto& ds3 = *reinterpret_cast<float(*)[1][kMB][4]>(dp);
#pragma unroll
    for (int j = 0; j < kMB; ++j) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const float delta = s_delta[buffer * kBlockM + j * 8 + (lane % 4) * 2 + e];
        ds3[0][j][e] = p3[0][j][e] * (ds3[0][j][e] - delta);
        ds3[0][j][2 + e] = p3[0][j][2 + e] * (ds3[0][j][2 + e] - delta);
      }
    }
    uint32_t ds16[kBlockM / 16][4];
#pragma unroll
    for (int kk = 0; kk < kBlockM / 16; ++kk) PackP<E>(ds3, 0, kk, ds16[kk]);

    // dV += P^T dO and dK += dS^T Q (dO and Q N-major: 64-column blocks
    // kBlockM rows apart).
    WgmmaFence();
#pragma unroll
    for (int kk = 0; kk < kBlockM / 16; ++kk) {
      Mma::template RS<kHeadDim>(dv, p16[kk],
                                 SwizzledDescriptor(do_tile + kk * 16 * 128, kBlockM * 128), 1);
    }
#pragma unroll
    for (int kk = 0; kk < kBlockM / 16; ++kk) {
      Mma::template RS<kHeadDim>(dk, ds16[kk],
                                 SwizzledDescriptor(q_tile + kk * 16 * 128, kBlockM * 128), 1);
    }
    WgmmaCommit();

    // dS^T to shared memory in the swizzled layout (rows of kBlockM = 64
    // queries, one 16-byte chunk per n8 block) for dQ's wgmma.
#pragma unroll
    for (int kk = 0; kk < kBlockM / 16; ++kk) {
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int key = key0 + 8 * (r % 2), chunk = 2 * kk + r / 2;
        const uint32_t address = s_ds + key * 128 + ((chunk ^ (key % 8)) << 4) + (lane % 4) * 4;
        asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(address), "r"(ds16[kk][r]));
      }
    }
    FenceProxyAsync();
    __syncthreads();  // dS^T of both warpgroups

    // dQ (kBlockM x kHeadDim) += dS K * scale: dS (M-major: dS^T's rows) and
    // K (N-major). Warpgroup w takes 64 columns over all keys (d128) or all
    // 64 columns over its own keys (d64).
    {
      constexpr bool kSplitKeys = kHeadDim == 64;
      constexpr int kKeys = kSplitKeys ? 64 : kBlockN;
      const int key_begin = kSplitKeys ? key_base : 0;
      const int col_begin = kSplitKeys ? 0 : warpgroup * 64;
      float dq[32];
      WgmmaFence();
#pragma unroll
      for (int kk = 0; kk < kKeys / 16; ++kk) {
        const uint32_t key = key_begin + kk * 16;
        Mma::SS64T(
            dq, SwizzledDescriptor(s_ds + key * 128, kBlockN * 128),
            SwizzledDescriptor(s_k + (col_begin / 64) * kBlockN * 128 + key * 128, kBlockN * 128),
            kk > 0);
      }
      WgmmaCommit();
      WgmmaWait<0>();  // dQ, and dV / dK above
      FenceRegisters(dq);
      FenceRegisters(dk);
      FenceRegisters(dv);
      const int row0 = (threadIdx.x / 32 % 4) * 16 + lane / 4;
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int64_t row = q_first + row0 + 8 * half;
        if (row >= q_len) continue;
        float* out = args.dq + q_offset0 + row * q_stride + col_begin + (lane % 4) * 2;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          AtomicAdd2(out + j * 8, dq[4 * j + 2 * half] * a.softmax_scale,
                     dq[4 * j + 2 * half + 1] * a.softmax_scale);
        }
      }
    }
    store_stats(buffer ^ 1);  // tile m + 1's, loaded at the top
    __syncthreads();          // s_ds and this buffer are free for the next tile
  }

  // dK (scaled) and dV of the thread's keys into the travelling fp32 buffers.
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int key = key0 + 8 * half;
    if (key >= k_valid) continue;
    const int64_t offset = kv_offset0 + key * kv_stride + (lane % 4) * 2;
    float* out_k = args.dk + offset;
    float* out_v = args.dv + offset;
#pragma unroll
    for (int i = 0; i < kDB; ++i) {
      const float k_x = dk[4 * i + 2 * half] * a.softmax_scale;
      const float k_y = dk[4 * i + 2 * half + 1] * a.softmax_scale;
      const float v_x = dv[4 * i + 2 * half], v_y = dv[4 * i + 2 * half + 1];
      if (group == 1) {  // this CTA alone adds to these rows in this launch
        float2* pk = reinterpret_cast<float2*>(out_k + i * 8);
        float2* pv = reinterpret_cast<float2*>(out_v + i * 8);
        const float2 ok = *pk, ov = *pv;
        *pk = make_float2(ok.x + k_x, ok.y + k_y);
        *pv = make_float2(ov.x + v_x, ov.y + v_y);
      } else {
        AtomicAdd2(out_k + i * 8, k_x, k_y);
        AtomicAdd2(out_v + i * 8, v_x, v_y);
      }
    }
  }
#endif  // RINGATTN_WGMMA
}

template <ElementType E, int kHeadDim>
cudaError_t LaunchFlashBackwardHopperKernel(const BackwardBlockArgs& args, cudaStream_t stream) {
  using Tr = HopperBackwardTraits<kHeadDim>;
  const ForwardBlockArgs& a = args.task;
  const auto kernel = FlashBackwardHopperKernel<E, kHeadDim>;
  if (const cudaError_t e = cudaFuncSetAttribute(
          kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Tr::kSharedBytes);
      e != cudaSuccess) {
    return e;
  }
  const int64_t group = a.num_heads / a.num_kv_heads;
  const dim3 grid(static_cast<unsigned>((a.k_pos.length + Tr::kBlockN - 1) / Tr::kBlockN),
                  static_cast<unsigned>((a.kv_head_end - a.kv_head_begin) * group),
                  static_cast<unsigned>(a.batch));
  kernel<<<grid, Tr::kThreads, Tr::kSharedBytes, stream>>>(args);
  return cudaGetLastError();
}

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_BACKWARD_HOPPER_KERNEL_CUH_
