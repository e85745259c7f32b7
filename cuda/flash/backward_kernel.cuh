// The tensor-core backward kernel (FlashAttention-2 scheme on mma.sync):
// one CTA per (key tile, query head, batch row). See BackwardTraits for the
// split. dK and dV of the CTA's keys are added to the fp32 buffers that
// travel the ring (atomically where GQA heads share them), dQ to the fp32 dQ
// with atomics. Included by one .cu per head dim (backward_d64.cu, ...).
#ifndef RINGATTN_CUDA_FLASH_BACKWARD_KERNEL_CUH_
#define RINGATTN_CUDA_FLASH_BACKWARD_KERNEL_CUH_

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "cuda/flash/block_mask.cuh"
#include "cuda/flash/forward_kernel.cuh"
#include "cuda/flash/launch.cuh"
#include "cuda/flash/mma_primitives.cuh"
#include "cuda/flash/traits.h"
#include "cuda/kernel_args.h"

namespace ringattn::cuda::flash {

template <ElementType E, int kHeadDim>
__global__ void __launch_bounds__(BackwardTraits<kHeadDim>::kThreads, 1)
    FlashBackwardKernel(const BackwardBlockArgs args) {
  using Tr = BackwardTraits<kHeadDim>;
  using T = typename Element<E>::T;
  const ForwardBlockArgs& a = args.task;
  constexpr int kBlockM = Tr::kBlockM, kBlockN = Tr::kBlockN;
  constexpr int kSubM = Tr::kSubM;
  constexpr int kSubBlocks = kSubM / 8;   // n8 tiles of S^T (queries)
  constexpr int kDBlocks = kHeadDim / 8;  // n8 tiles of dK, dV
  constexpr int kDSteps = kHeadDim / 16;  // k16 steps over the head dim
  constexpr int kDsStride = kBlockM + 8;  // dS^T rows, padded: no bank conflicts
  extern __shared__ __align__(128) unsigned char shared_raw[];
  T* s_k = reinterpret_cast<T*>(shared_raw);
  T* s_v = s_k + Tr::kKvElements;
  T* s_q = s_v + Tr::kKvElements;                                       // [2][kBlockM][kHeadDim]
  T* s_do = s_q + 2 * Tr::kQElements;                                   // [2][kBlockM][kHeadDim]
  T* s_ds = s_do + 2 * Tr::kQElements;                                  // [kBlockN][kDsStride]
  float* s_lse = reinterpret_cast<float*>(s_ds + kBlockN * kDsStride);  // [2][kBlockM]
  float* s_delta = s_lse + 2 * kBlockM;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const KeyTileTask<T, kHeadDim, kBlockN, kBlockM> task(args);
  const int64_t b = task.b, h = task.h;
  const KeyTileQueries& tiles = task.tiles;
  const int m_begin = tiles.m_begin, m_end = tiles.m_end;
  if (m_begin >= m_end) return;  // no allowed pair: nothing to add

  const auto load_q_tile = [&](int m, int buffer) {
    const int64_t row = static_cast<int64_t>(m) * kBlockM;
    const int valid = static_cast<int>(min64(kBlockM, task.q_len - row));
    LoadTile<kHeadDim, kBlockM, Tr::kThreads>(s_q + buffer * Tr::kQElements,
                                              task.q + row * task.q_stride, task.q_stride, valid);
    LoadTile<kHeadDim, kBlockM, Tr::kThreads>(
        s_do + buffer * Tr::kQElements, task.dout + row * task.q_stride, task.q_stride, valid);
  };
  LoadTile<kHeadDim, kBlockN, Tr::kThreads>(s_k, static_cast<const T*>(a.k) + task.kv_offset0,
                                            task.kv_stride, task.k_valid);
  LoadTile<kHeadDim, kBlockN, Tr::kThreads>(s_v, static_cast<const T*>(a.v) + task.kv_offset0,
                                            task.kv_stride, task.k_valid);
  load_q_tile(m_begin, 0);
  CpAsyncCommit();

  const float scale_log2 = a.softmax_scale * kLog2e;
  float dk[kDBlocks][4], dv[kDBlocks][4];
#pragma unroll
  for (int i = 0; i < kDBlocks; ++i) {
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[i][e] = dv[i][e] = 0.f;
  }

  const int lane_row = (lane % 8) + ((lane / 8) % 2) * 8;  // A / trans-B pattern
  const int key_row = (lane % 8) + (lane / 16) * 8;        // non-trans-B pattern
  const SwizzledFragments<kHeadDim> k_a(s_k, warp * 16 + lane_row, lane / 16);
  const SwizzledFragments<kHeadDim> v_a(s_v, warp * 16 + lane_row, lane / 16);
  const SwizzledFragments<kHeadDim> q_b(s_q, key_row, (lane / 8) % 2);
  const SwizzledFragments<kHeadDim> do_b(s_do, key_row, (lane / 8) % 2);
  const SwizzledFragments<kHeadDim> q_bt(s_q, lane_row, lane / 16);
  const SwizzledFragments<kHeadDim> do_bt(s_do, lane_row, lane / 16);
  const SwizzledFragments<kHeadDim> k_bt(s_k, lane_row, lane / 16);

  for (int m = m_begin; m < m_end; ++m) {
    const int buffer = (m - m_begin) & 1;
    if (m + 1 < m_end) load_q_tile(m + 1, buffer ^ 1);
    CpAsyncCommit();
    const int64_t q_first = static_cast<int64_t>(m) * kBlockM;
    // A tile that needs the mask: the query columns each of the thread's
    // two keys sees (one range each).
    const bool full = !tiles.NeedsMask(m);
    int col_begin[2] = {0, 0}, col_end[2] = {0, 0};
    if (!full) {
      KeyQueryColumns(a, b, warp * 16 + lane / 4, task.k_valid, task.k0, q_first, kBlockM,
                      col_begin, col_end);
    }
    for (int r = threadIdx.x; r < kBlockM; r += Tr::kThreads) {
      // Rows past the end get LSE +inf: P = 0 there.
      const bool ok = q_first + r < task.q_len;
      const float lse = ok ? args.lse[task.stat0 + q_first + r] : INFINITY;
      s_lse[buffer * kBlockM + r] = BackwardLse(lse);
      s_delta[buffer * kBlockM + r] = ok ? args.delta[task.stat0 + q_first + r] : 0.f;
    }
    CpAsyncWait<1>();
    __syncthreads();
    const uint32_t q_offset = buffer * Tr::kQElements * 2;  // bytes

    // Sub-tiles of kSubM queries (a runtime loop: one copy of the code).
#pragma unroll 1
    for (int qs = 0; qs < kBlockM; qs += kSubM) {
      // S^T = K Q^T: the warp's 16 keys x kSubM queries.
      float p[kSubBlocks][4];
#pragma unroll
      for (int j = 0; j < kSubBlocks; ++j) p[j][0] = p[j][1] = p[j][2] = p[j][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < kDSteps; ++kk) {
        uint32_t ka[4];
        LdMatrixX4(ka, k_a.At(0, kk));
#pragma unroll
        for (int j = 0; j < kSubBlocks; j += 2) {
          uint32_t qb[4];
          LdMatrixX4(qb, q_b.At(qs + j * 8, kk, q_offset));
          Mma<E>(p[j], ka, qb[0], qb[1]);
          Mma<E>(p[j + 1], ka, qb[2], qb[3]);
        }
      }
      // P^T = exp(S^T * scale - LSE), masked pairs 0.
#pragma unroll
      for (int j = 0; j < kSubBlocks; ++j) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int col = qs + j * 8 + (lane % 4) * 2 + e;
          const float lse = s_lse[buffer * kBlockM + col];
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            float x = FastExp2(fmaf(p[j][2 * half + e], scale_log2, -lse));
            const int rel = qs + j * 8 + e;  // col, less the lane's offset
            if (!full && (rel < col_begin[half] || rel >= col_end[half])) x = 0.f;
            p[j][2 * half + e] = x;
          }
        }
      }
      // dV += P^T dO.
#pragma unroll
      for (int kk = 0; kk < kSubM / 16; ++kk) {
        const uint32_t pa[4] = {Element<E>::Pack(p[2 * kk][0], p[2 * kk][1]),
                                Element<E>::Pack(p[2 * kk][2], p[2 * kk][3]),
                                Element<E>::Pack(p[2 * kk + 1][0], p[2 * kk + 1][1]),
                                Element<E>::Pack(p[2 * kk + 1][2], p[2 * kk + 1][3])};
#pragma unroll
        for (int i = 0; i < kDBlocks; i += 2) {
          uint32_t ob[4];
          LdMatrixX4Trans(ob, do_bt.At(qs + kk * 16, i / 2, q_offset));
          Mma<E>(dv[i], pa, ob[0], ob[1]);
          Mma<E>(dv[i + 1], pa, ob[2], ob[3]);
        }
      }
      // dP^T = V dO^T, then dS^T = P^T (dP^T - D).
      float ds[kSubBlocks][4];
#pragma unroll
      for (int j = 0; j < kSubBlocks; ++j) ds[j][0] = ds[j][1] = ds[j][2] = ds[j][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < kDSteps; ++kk) {
        uint32_t va[4];
        LdMatrixX4(va, v_a.At(0, kk));
#pragma unroll
        for (int j = 0; j < kSubBlocks; j += 2) {
          uint32_t ob[4];
          LdMatrixX4(ob, do_b.At(qs + j * 8, kk, q_offset));
          Mma<E>(ds[j], va, ob[0], ob[1]);
          Mma<E>(ds[j + 1], va, ob[2], ob[3]);
        }
      }
#pragma unroll
      for (int j = 0; j < kSubBlocks; ++j) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float delta = s_delta[buffer * kBlockM + qs + j * 8 + (lane % 4) * 2 + e];
          ds[j][e] = p[j][e] * (ds[j][e] - delta);
          ds[j][2 + e] = p[j][2 + e] * (ds[j][2 + e] - delta);
        }
      }
      // dK += dS^T Q (scaled at the end); dS^T to shared memory for dQ.
#pragma unroll
      for (int kk = 0; kk < kSubM / 16; ++kk) {
        const uint32_t da[4] = {Element<E>::Pack(ds[2 * kk][0], ds[2 * kk][1]),
                                Element<E>::Pack(ds[2 * kk][2], ds[2 * kk][3]),
                                Element<E>::Pack(ds[2 * kk + 1][0], ds[2 * kk + 1][1]),
                                Element<E>::Pack(ds[2 * kk + 1][2], ds[2 * kk + 1][3])};
        const int key = warp * 16 + lane / 4, col = qs + kk * 16 + (lane % 4) * 2;
        uint32_t* row0 = reinterpret_cast<uint32_t*>(s_ds + key * kDsStride + col);
        uint32_t* row8 = reinterpret_cast<uint32_t*>(s_ds + (key + 8) * kDsStride + col);
        row0[0] = da[0];
        row8[0] = da[1];
        row0[4] = da[2];  // + 8 columns
        row8[4] = da[3];
#pragma unroll
        for (int i = 0; i < kDBlocks; i += 2) {
          uint32_t qb[4];
          LdMatrixX4Trans(qb, q_bt.At(qs + kk * 16, i / 2, q_offset));
          Mma<E>(dk[i], da, qb[0], qb[1]);
          Mma<E>(dk[i + 1], da, qb[2], qb[3]);
        }
      }
    }
    __syncthreads();  // dS^T complete

    // dQ (kBlockM x kHeadDim) += dS K * scale: warp w takes 16 rows and
    // kHeadDim / kColGroups columns.
    {
      constexpr int kRowGroups = kBlockM / 16;
      constexpr int kColGroups = Tr::kWarps / kRowGroups;
      constexpr int kCols = kHeadDim / kColGroups;
      static_assert(kCols % 16 == 0, "dQ columns per warp");
      const int row_base = (warp % kRowGroups) * 16;
      const int col_base = (warp / kRowGroups) * kCols;
      float dq[kCols / 8][4];
#pragma unroll
      for (int i = 0; i < kCols / 8; ++i) dq[i][0] = dq[i][1] = dq[i][2] = dq[i][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < kBlockN / 16; ++kk) {
        uint32_t da[4];
        // dS[q][key] from dS^T[key][q]: transposed loads of 8x8 blocks.
        const int key = kk * 16 + key_row;
        const int col = row_base + ((lane / 8) % 2) * 8;
        LdMatrixX4Trans(da, SharedAddress(s_ds + key * kDsStride + col));
#pragma unroll
        for (int i = 0; i < kCols / 8; i += 2) {
          uint32_t kb[4];
          LdMatrixX4Trans(kb, k_bt.At(kk * 16, (col_base + i * 8) / 16));
          Mma<E>(dq[i], da, kb[0], kb[1]);
          Mma<E>(dq[i + 1], da, kb[2], kb[3]);
        }
      }
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int64_t row = q_first + row_base + lane / 4 + 8 * half;
        if (row >= task.q_len) continue;
        float* out = args.dq + task.q_offset0 + row * task.q_stride + col_base + (lane % 4) * 2;
#pragma unroll
        for (int i = 0; i < kCols / 8; ++i) {
          AtomicAdd2(out + i * 8, dq[i][2 * half] * a.softmax_scale,
                     dq[i][2 * half + 1] * a.softmax_scale);
        }
      }
    }
    __syncthreads();  // s_ds and this buffer are free for the next tile
  }

  // dK (scaled) and dV of the warp's keys into the travelling fp32 buffers.
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int key = warp * 16 + lane / 4 + 8 * half;
    if (key >= task.k_valid) continue;
    const int64_t offset = task.kv_offset0 + key * task.kv_stride + (lane % 4) * 2;
    float* out_k = args.dk + offset;
    float* out_v = args.dv + offset;
#pragma unroll
    for (int i = 0; i < kDBlocks; ++i) {
      const float k_x = dk[i][2 * half] * a.softmax_scale;
      const float k_y = dk[i][2 * half + 1] * a.softmax_scale;
      if (task.group == 1) {  // this CTA alone adds to these rows in this launch
        float2* pk = reinterpret_cast<float2*>(out_k + i * 8);
        float2* pv = reinterpret_cast<float2*>(out_v + i * 8);
        const float2 ok = *pk, ov = *pv;
        *pk = make_float2(ok.x + k_x, ok.y + k_y);
        *pv = make_float2(ov.x + dv[i][2 * half], ov.y + dv[i][2 * half + 1]);
      } else {
        AtomicAdd2(out_k + i * 8, k_x, k_y);
        AtomicAdd2(out_v + i * 8, dv[i][2 * half], dv[i][2 * half + 1]);
      }
    }
  }
}

template <ElementType E, int kHeadDim>
cudaError_t LaunchFlashBackwardKernel(const BackwardBlockArgs& args, cudaStream_t stream) {
  using Tr = BackwardTraits<kHeadDim>;
  const ForwardBlockArgs& a = args.task;
  return LaunchKernel(FlashBackwardKernel<E, kHeadDim>, TaskGrid(a, a.k_pos.length, Tr::kBlockN),
                      Tr::kThreads, Tr::kSharedBytes, stream, args);
}

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_BACKWARD_KERNEL_CUH_
