// The warp-specialized pipeline of the Hopper (sm_90a) kernels: mbarriers
// (a producer's arrive with expected bytes, the tensor copy engine's
// completion, consumers' releases, phase-parity waits), TMA tile loads
// (cp.async.bulk.tensor from a tensor map passed as a __grid_constant__
// kernel parameter), named barriers between warpgroups, and setmaxnreg.
//
// A pipeline of kStages slots is walked by a running count i: slot
// i % kStages, phase (i / kStages) & 1. Consumers wait on the slot's `full`
// barrier with the phase's parity; the producer waits on its `empty`
// barrier with the opposite parity, so a fresh (never-completed) barrier
// lets the first kStages loads through.
#ifndef RINGATTN_CUDA_FLASH_HOPPER_PIPELINE_CUH_
#define RINGATTN_CUDA_FLASH_HOPPER_PIPELINE_CUH_

#include <cuda.h>

#include <cstdint>

namespace ringattn::cuda::flash {

__device__ __forceinline__ void MbarrierInit(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
// Makes barrier initialization visible to the copy engine (before a
// __syncthreads()).
__device__ __forceinline__ void FenceBarrierInit() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// The producer's arrival: the phase completes once `bytes` more bytes have
// landed (complete_tx by the copies that name this barrier).
__device__ __forceinline__ void MbarrierArriveExpectTx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void MbarrierArrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// Waits until the phase of parity `parity` has completed: one try, then
// tries that let the thread sleep until the phase completes (the
// suspend-time hint: the hardware wakes it on the barrier's completion, or
// after kMbarrierSleepNs at the latest) instead of polling, as cuDNN's
// kernels do. Under ncu's source counters our polling producer and
// scheduler threads executed 24 M of the b16 forward's 128 M warp
// instructions; outside the profiler far fewer, and the rates did not move
// (thirty-first session): sleeping keeps idle threads out of the issue
// slots and out of the profiles. A wait that outlasts any legitimate
// one (10 s by the global timer, read once the first try has failed) traps,
// so a broken pipeline fails the launch instead of hanging the GPU. The loop
// is PTX so that its registers live only while the thread waits.
constexpr uint32_t kMbarrierSleepNs = 10000000;
__device__ __forceinline__ void MbarrierWait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      ".reg .u64 start, now;\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
      "@p bra DONE;\n"
      "mov.u64 start, %%globaltimer;\n"
      "SLEEP:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1, %2;\n"
      "@p bra DONE;\n"
      "mov.u64 now, %%globaltimer;\n"
      "sub.u64 now, now, start;\n"
      "setp.lt.u64 p, now, 10000000000;\n"
      "@p bra SLEEP;\n"
      "trap;\n"
      "DONE:\n"
      "}\n" ::"r"(bar),
      "r"(parity), "n"(kMbarrierSleepNs)
      : "memory");
}

// A 4-d box of `map` at element coordinates (c0, c1, c2, c3) into shared
// memory at `dst`, completing on `bar`.
__device__ __forceinline__ void TmaLoad4d(uint32_t dst, const CUtensorMap* map, uint32_t bar,
                                          int c0, int c1, int c2, int c3) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes "
      "[%0], [%1, {%2, %3, %4, %5}], [%6];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar)
      : "memory");
}
// Rows [row, row + kRows) of one (head, batch) of a tensor with kColumns
// two-byte columns into the tile at `dst`: one box per 64-column block,
// the blocks kRows x 128 bytes apart (wgmma's 128-byte swizzle), all
// completing on `bar`.
template <int kColumns, int kRows>
__device__ __forceinline__ void TmaLoadRows(uint32_t dst, const CUtensorMap* map, uint32_t bar,
                                            int row, int head, int batch) {
#pragma unroll
  for (int c = 0; c < kColumns / 64; ++c) {
    TmaLoad4d(dst + c * kRows * 128, map, bar, c * 64, row, head, batch);
  }
}
// The same rows of two tensors of one layout (Q and dO, K and V), their
// boxes issued in turn.
template <int kColumns, int kRows>
__device__ __forceinline__ void TmaLoadRowPairs(uint32_t dst0, const CUtensorMap* map0,
                                                uint32_t dst1, const CUtensorMap* map1,
                                                uint32_t bar, int row, int head, int batch) {
#pragma unroll
  for (int c = 0; c < kColumns / 64; ++c) {
    TmaLoad4d(dst0 + c * kRows * 128, map0, bar, c * 64, row, head, batch);
    TmaLoad4d(dst1 + c * kRows * 128, map1, bar, c * 64, row, head, batch);
  }
}
// An L2 cache policy for data a kernel touches once (the ring state's O
// tiles): evicted first, so that it does not push out the K and V tiles
// other CTAs read again.
__device__ __forceinline__ uint64_t EvictFirstPolicy() {
  uint64_t policy;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(policy));
  return policy;
}
// The same copy under an L2 cache policy.
__device__ __forceinline__ void TmaLoad4d(uint32_t dst, const CUtensorMap* map, uint32_t bar,
                                          int c0, int c1, int c2, int c3, uint64_t policy) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
      ".L2::cache_hint [%0], [%1, {%2, %3, %4, %5}], [%6], %7;\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar),
      "l"(policy)
      : "memory");
}
// shared memory at `src` added (fp32) to the 4-d box of `map` at element
// coordinates (c0, c1, c2, c3) by the copy engine (elements outside the
// tensor are skipped), in this thread's current bulk group.
__device__ __forceinline__ void TmaReduceAdd4d(const CUtensorMap* map, uint32_t src, int c0, int c1,
                                               int c2, int c3) {
  asm volatile(
      "cp.reduce.async.bulk.tensor.4d.global.shared::cta.add.tile.bulk_group "
      "[%0, {%2, %3, %4, %5}], [%1];\n" ::"l"(reinterpret_cast<uint64_t>(map)),
      "r"(src), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
      : "memory");
}
// shared memory at `src` (the 128-byte swizzle of `map`) copied to the 4-d
// box of `map` at element coordinates (c0, c1, c2, c3) by the copy engine
// (elements outside the tensor are dropped), in this thread's current bulk
// group.
__device__ __forceinline__ void TmaStore4d(const CUtensorMap* map, uint32_t src, int c0, int c1,
                                           int c2, int c3) {
  asm volatile(
      "cp.async.bulk.tensor.4d.global.shared::cta.tile.bulk_group "
      "[%0, {%2, %3, %4, %5}], [%1];\n" ::"l"(reinterpret_cast<uint64_t>(map)),
      "r"(src), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
      : "memory");
}
// The same copy under an L2 cache policy.
__device__ __forceinline__ void TmaStore4d(const CUtensorMap* map, uint32_t src, int c0, int c1,
                                           int c2, int c3, uint64_t policy) {
  asm volatile(
      "cp.async.bulk.tensor.4d.global.shared::cta.tile.bulk_group.L2::cache_hint "
      "[%0, {%2, %3, %4, %5}], [%1], %6;\n" ::"l"(reinterpret_cast<uint64_t>(map)),
      "r"(src), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "l"(policy)
      : "memory");
}
// The 4-d box of `map` at element coordinates (c0, c1, c2, c3) fetched
// into L2 by the copy engine (no shared memory, no barrier): a later
// reduction into it then finds its lines there.
__device__ __forceinline__ void TmaPrefetch4d(const CUtensorMap* map, int c0, int c1, int c2,
                                              int c3) {
  asm volatile("cp.async.bulk.prefetch.tensor.4d.L2.global.tile [%0, {%1, %2, %3, %4}];\n" ::"l"(
                   reinterpret_cast<uint64_t>(map)),
               "r"(c0), "r"(c1), "r"(c2), "r"(c3)
               : "memory");
}
// Bulk groups: close the current one; wait until all but the newest
// kPending have read their shared memory (WaitRead) or completed (Wait).
__device__ __forceinline__ void BulkCommit() {
  asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
}
template <int kPending>
__device__ __forceinline__ void BulkWaitRead() {
  asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(kPending) : "memory");
}
__device__ __forceinline__ void BulkWait() {
  asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
}
__device__ __forceinline__ void PrefetchTensorMap(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

// Named barrier `id` (1..15; 0 is __syncthreads) over `threads` threads:
// Sync waits for all of them, Arrive counts without waiting.
__device__ __forceinline__ void NamedBarrierSync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void NamedBarrierArrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// Moves registers between warpgroups (every warp of the warpgroup executes
// it; the kernel needs a register cap at entry: __launch_bounds__(n, 1)).
template <int kRegs>
__device__ __forceinline__ void SetMaxRegistersIncrease() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}
template <int kRegs>
__device__ __forceinline__ void SetMaxRegistersDecrease() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}

// Slot and phase parity of pipeline position i.
template <int kStages>
struct PipelineSlot {
  uint32_t stage, parity;
  __device__ __forceinline__ explicit PipelineSlot(uint32_t i)
      : stage(i % kStages), parity((i / kStages) & 1) {}
};

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_HOPPER_PIPELINE_CUH_
