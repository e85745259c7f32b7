// The warp-specialized Hopper forward kernel (sm_90a), the FlashAttention-3
// scheme: a producer warpgroup whose one thread only issues TMA copies of
// Q, K and V into mbarrier pipelines, and two consumer warpgroups (three
// at d64; 64 query rows each) that get the registers (setmaxnreg) and only
// multiply:
//  - inside a warpgroup, S(n+1) = Q K(n+1)^T is issued together with
//    O += P(n) V(n), and the softmax of tile n+1 runs while P V runs;
//  - between the warpgroups, named barriers hand the tensor cores over in
//    turns (ping-pong): one warpgroup issues its GEMMs while the other runs
//    its softmax;
//  - the kernel is persistent: one CTA per SM takes (query tile, head,
//    batch) tiles heaviest first from a counter (tile_scheduler.cuh); a
//    scheduler thread takes and decodes each when the producer asks for it
//    (with the K kAskAhead key tiles before a tile's end), the producer
//    publishes each tile (and its key tiles) with its Q and loads the next
//    tile's Q and K while the consumers finish the last one;
//  - the epilogue goes through shared memory and the TMA where its tile
//    fits (forward_tma_epilogue.cuh): the written O at d64 and d128, the
//    fp32 ring state's O at d128, copied in by the producer.
// Masks, the softmax step and the register epilogue (d256, and the ring
// state at d64) are the other kernels' (forward_common.cuh). Included by
// forward_warp_specialized_d<D>.cu; an empty kernel outside sm_90a.
#ifndef RINGATTN_CUDA_FLASH_FORWARD_WARP_SPECIALIZED_KERNEL_CUH_
#define RINGATTN_CUDA_FLASH_FORWARD_WARP_SPECIALIZED_KERNEL_CUH_

#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <type_traits>
#include <utility>

#include "cuda/flash/forward.h"
#include "cuda/flash/forward_common.cuh"
#include "cuda/flash/forward_tma_epilogue.cuh"
#include "cuda/flash/hopper_pipeline.cuh"
#include "cuda/flash/hopper_primitives.cuh"
#include "cuda/flash/launch.cuh"
#include "cuda/flash/mma_primitives.cuh"
#include "cuda/flash/tensor_map.h"
#include "cuda/flash/tile_scheduler.cuh"
#include "cuda/flash/traits.h"
#include "cuda/flash/wgmma_ops.cuh"
#include "cuda/kernel_args.h"

namespace ringattn::cuda::flash {

// Shared memory of the kernel: tiles (1024-byte aligned), then mbarriers.
template <int kHeadDim>
struct WarpSpecializedForwardShared {
  using Tr = WarpSpecializedForwardTraits<kHeadDim>;
  uint32_t q, kv, output, barriers;
  __device__ __forceinline__ explicit WarpSpecializedForwardShared(uint32_t raw)
      : q((raw + 1023) & ~1023u),
        kv(q + Tr::kQBytes),
        output(kv + 2 * Tr::kStages * Tr::kKvBytes),
        barriers(output + Tr::kOutputBytes) {}
  __device__ __forceinline__ uint32_t K(uint32_t stage) const {
    return kv + stage * 2 * Tr::kKvBytes;
  }
  __device__ __forceinline__ uint32_t V(uint32_t stage) const { return K(stage) + Tr::kKvBytes; }
  __device__ __forceinline__ uint32_t QFull() const { return barriers; }
  __device__ __forceinline__ uint32_t QEmpty() const { return barriers + 8; }
  __device__ __forceinline__ uint32_t KFull(uint32_t s) const { return barriers + 16 + 8 * s; }
  __device__ __forceinline__ uint32_t KEmpty(uint32_t s) const {
    return KFull(s) + 8 * Tr::kStages;
  }
  __device__ __forceinline__ uint32_t VFull(uint32_t s) const {
    return KEmpty(s) + 8 * Tr::kStages;
  }
  __device__ __forceinline__ uint32_t VEmpty(uint32_t s) const {
    return VFull(s) + 8 * Tr::kStages;
  }
  // The tile whose Q the Q slot holds (PublishedTile), written before
  // QFull's arrival and read after its wait.
  __device__ __forceinline__ uint32_t Tile() const { return VEmpty(0) + 8 * Tr::kStages; }
  // The scheduler's slot: a tile (Scheduled) between the scheduler's
  // arrival on ScheduledFull and the producer's on ScheduledEmpty; the
  // producer asks for the next tile on NextWanted.
  __device__ __forceinline__ uint32_t Scheduled() const { return Tile() + 32; }
  __device__ __forceinline__ uint32_t ScheduledFull() const { return Tile() + 64; }
  __device__ __forceinline__ uint32_t ScheduledEmpty() const { return Tile() + 72; }
  __device__ __forceinline__ uint32_t NextWanted() const { return Tile() + 80; }
  // The ring state's O tile in `output` (kStateTile): copied in by the
  // producer (StateFull), free again once both warpgroups' copies out of
  // it have read it (StateEmpty).
  __device__ __forceinline__ uint32_t StateFull() const { return Tile() + 88; }
  __device__ __forceinline__ uint32_t StateEmpty() const { return Tile() + 96; }
  // Warpgroup w's 64 rows of the output tile.
  __device__ __forceinline__ uint32_t Slab(int w, int element_bytes) const {
    return output + w * 64 * kHeadDim * element_bytes;
  }
};

// Whether a launch merges into the ring state in the state tile (d128 and
// no written O: traits.h): the producer copies the state in, the consumers
// merge it there and copy it out (MergeStateTile).
template <int kHeadDim>
__host__ __device__ __forceinline__ bool MergesInStateTile(const ForwardBlockArgs& a) {
  return WarpSpecializedForwardTraits<kHeadDim>::kStateTile && a.out == nullptr;
}
// Whether a launch writes O through the output tile (d64, d128: traits.h;
// StoreOutputTile).
template <int kHeadDim>
__host__ __device__ __forceinline__ bool WritesOutputTile(const ForwardBlockArgs& a) {
  return WarpSpecializedForwardTraits<kHeadDim>::kOutputTile && a.out != nullptr;
}

// A tile as the producer publishes it with its Q: where it is and the key
// tiles it meets, so that the consumers do not decode it again (on short
// sequences the decoding took about 13 % of the consumers' issue slots).
// Heads and batch rows fit in int: a launch of 2^31 (head, batch) pairs
// would not fit in a GPU's memory. m < 0: no more tiles.
struct PublishedTile {
  int m, head, batch;
  KeyTileRange keys;
};

__device__ __forceinline__ void StorePublishedTile(uint32_t addr, const PublishedTile& t) {
  asm volatile("st.shared.v4.s32 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(t.m), "r"(t.head),
               "r"(t.batch), "r"(0)
               : "memory");
  asm volatile("st.shared.v4.s32 [%0], {%1, %2, %3, %4};\n" ::"r"(addr + 16), "r"(t.keys.n_begin),
               "r"(t.keys.n_end), "r"(t.keys.full_begin), "r"(t.keys.full_end)
               : "memory");
}
__device__ __forceinline__ PublishedTile LoadPublishedTile(uint32_t addr) {
  PublishedTile t;
  [[maybe_unused]] int unused;  // the slot's fourth word
  asm volatile("ld.shared.v4.s32 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(t.m), "=r"(t.head), "=r"(t.batch), "=r"(unused)
               : "r"(addr)
               : "memory");
  asm volatile("ld.shared.v4.s32 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(t.keys.n_begin), "=r"(t.keys.n_end), "=r"(t.keys.full_begin),
                 "=r"(t.keys.full_end)
               : "r"(addr + 16)
               : "memory");
  return t;
}

// The pool of this kernel's tile counters (one per translation unit, as
// each head dim's kernels are), and the stream each slot belongs to.
namespace {
__device__ TileCounter forward_tile_counters[kTileCounterSlots];

// The counter of `stream`'s launches (tile_scheduler.cuh), looked up once
// per (device, stream): a created stream belongs to one device, but the
// default streams (0, cudaStreamPerThread) have one handle on every device,
// and each device has its own copy of the pool. Errors:
// cudaErrorLaunchOutOfResources past kTileCounterSlots streams.
cudaError_t ForwardTileCounter(cudaStream_t stream, TileCounter** counter) {
  int device = 0;
  if (const cudaError_t e = cudaGetDevice(&device); e != cudaSuccess) return e;
  static std::mutex mu;
  static auto* const counters = new std::map<std::pair<int, cudaStream_t>, TileCounter*>();
  std::lock_guard<std::mutex> lock(mu);
  const std::pair<int, cudaStream_t> key{device, stream};
  if (const auto it = counters->find(key); it != counters->end()) {
    *counter = it->second;
    return cudaSuccess;
  }
  const int slot = static_cast<int>(counters->size());
  if (slot >= kTileCounterSlots) return cudaErrorLaunchOutOfResources;
  void* pool = nullptr;
  if (const cudaError_t e = cudaGetSymbolAddress(&pool, forward_tile_counters); e != cudaSuccess) {
    return e;
  }
  *counter = static_cast<TileCounter*>(pool) + slot;
  counters->emplace(key, *counter);
  return cudaSuccess;
}
}  // namespace

// Named barriers 1 to 3: consumer warpgroup w waits on 1 + w for its turn
// at the tensor cores and hands it over by arriving on the next one's, in
// a round (4 to 6 are the epilogue's: kOutputBarrier).
constexpr int kTurnBarrier = 1;

// The scheduler thread: takes the CTA's tiles (the dynamic order of
// tile_scheduler.cuh), the first at once and each next when the producer
// asks for it, decodes each (its key tiles) and leaves it in the slot for
// the producer: the counter's round trip and the 64-bit decoding, done by
// the producer between two tiles, kept the consumers of short tiles waiting
// for their next Q; taken further ahead (a queue of two), the tiles held by
// busy CTAs unbalanced the end of long rows (d256 -12 %). m = -1 at the end.
template <int kHeadDim>
__device__ __forceinline__ void ScheduleTiles(const ForwardBlockArgs& a,
                                              const WarpSpecializedForwardShared<kHeadDim>& sm,
                                              const HeavyFirstTileScheduler& scheduler,
                                              TileCounter* counter) {
  using Tr = WarpSpecializedForwardTraits<kHeadDim>;
  for (uint32_t taken = 0;; ++taken) {
    int64_t t = blockIdx.x;
    if (taken > 0) {
      MbarrierWait(sm.NextWanted(), (taken - 1) & 1);
      t = NextTile(counter);
    }
    PublishedTile published{-1, 0, 0, {}};
    if (t < scheduler.Count()) {
      const QueryTile tile = scheduler.At(t);
      published = {tile.m, static_cast<int>(tile.head), static_cast<int>(tile.batch),
                   KeyTileRange(a, tile.batch, tile.m, Tr::kBlockM, Tr::kBlockN)};
    }
    MbarrierWait(sm.ScheduledEmpty(), (taken & 1) ^ 1);
    StorePublishedTile(sm.Scheduled(), published);
    MbarrierArrive(sm.ScheduledFull());
    if (published.m < 0) break;
  }
  FinishTiles(counter);
}

// The producer thread: takes each tile from the scheduler's slot and
// publishes it in the Q slot (PublishedTile), then every copy, in the order
// the consumers use them (Q, K0, then K(n+1) before V(n)), each into the
// next free pipeline slot, and asks for the next tile with the K
// kAskAhead key tiles before the end (or the first). A
// tile without keys is published without copies; m = -1 tells the
// consumers to stop.
template <int kHeadDim>
__device__ __forceinline__ void ProduceTiles(const ForwardBlockArgs& a,
                                             const WarpSpecializedForwardShared<kHeadDim>& sm,
                                             const CUtensorMap* q_map, const CUtensorMap* k_map,
                                             const CUtensorMap* v_map, const CUtensorMap* o_map) {
  using Tr = WarpSpecializedForwardTraits<kHeadDim>;
  using Slot = PipelineSlot<Tr::kStages>;
  constexpr int kBlockM = Tr::kBlockM, kBlockN = Tr::kBlockN;
  PrefetchTensorMap(q_map);
  PrefetchTensorMap(k_map);
  PrefetchTensorMap(v_map);
  const bool copy_state = MergesInStateTile<kHeadDim>(a);
  if (copy_state) PrefetchTensorMap(o_map);
  const int64_t group = a.num_heads / a.num_kv_heads;
  uint32_t kv_count = 0, state_count = 0;
  for (uint32_t q_count = 0;; ++q_count) {
    MbarrierWait(sm.ScheduledFull(), q_count & 1);
    const PublishedTile tile = LoadPublishedTile(sm.Scheduled());
    MbarrierArrive(sm.ScheduledEmpty());
    MbarrierWait(sm.QEmpty(), (q_count & 1) ^ 1);
    StorePublishedTile(sm.Tile(), tile);
    const int n_begin = tile.keys.n_begin, n_end = tile.keys.n_end;
    if (tile.m < 0 || n_begin >= n_end) {
      MbarrierArrive(sm.QFull());
      if (tile.m < 0) break;
      MbarrierArrive(sm.NextWanted());
      continue;
    }
    const int64_t h = a.kv_head_begin * group + tile.head;
    const int head = static_cast<int>(h), batch = tile.batch;
    const int kv_head = static_cast<int>(h / group - a.kv_head_offset);
    const auto load_kv = [&](bool is_k, int n, uint32_t i) {
      const Slot slot(i);
      const uint32_t full = is_k ? sm.KFull(slot.stage) : sm.VFull(slot.stage);
      const uint32_t dst = is_k ? sm.K(slot.stage) : sm.V(slot.stage);
      MbarrierWait(is_k ? sm.KEmpty(slot.stage) : sm.VEmpty(slot.stage), slot.parity ^ 1);
      MbarrierArriveExpectTx(full, Tr::kKvBytes);
      TmaLoadRows<kHeadDim, kBlockN>(dst, is_k ? k_map : v_map, full, n * kBlockN, kv_head, batch);
    };
    MbarrierArriveExpectTx(sm.QFull(), Tr::kQBytes);
    TmaLoadRows<kHeadDim, kBlockM>(sm.q, q_map, sm.QFull(), tile.m * kBlockM, head, batch);
    // Asked early, the scheduler's round trip to the tile counter runs
    // under this tile's last key tiles (asked with the last K, b16's
    // producer waited for the next tile in 2.2 % of the kernel's samples
    // and its consumers for the next Q in 2.0 %: the thirty-first
    // session's profile).
    const int ask = max(n_begin, n_end - Tr::kAskAhead);
    load_kv(true, n_begin, kv_count);
    if (n_begin == ask) MbarrierArrive(sm.NextWanted());
    for (int n = n_begin; n < n_end; ++n, ++kv_count) {
      if (n + 1 < n_end) {
        load_kv(true, n + 1, kv_count + 1);
        if (n + 1 == ask) MbarrierArrive(sm.NextWanted());
      }
      load_kv(false, n, kv_count);
    }
    // The ring state's rows of the tile, once the last tile's are out
    // (a fresh state: nothing to copy, the slab only handed over).
    if (copy_state) {
      MbarrierWait(sm.StateEmpty(), (state_count++ & 1) ^ 1);
      if (a.state_fresh) {
        MbarrierArrive(sm.StateFull());
        continue;
      }
      MbarrierArriveExpectTx(sm.StateFull(), Tr::kStateBytes);
      const uint64_t evict_first = EvictFirstPolicy();
#pragma unroll
      for (int w = 0; w < Tr::kConsumers; ++w) {
#pragma unroll
        for (int c = 0; c < kHeadDim / 32; ++c) {
          TmaLoad4d(sm.Slab(w, 4) + c * 64 * 128, o_map, sm.StateFull(), c * 32,
                    tile.m * kBlockM + w * 64, head, batch, evict_first);
        }
      }
    }
  }
}

// A consumer warpgroup: for each tile, the mainloop over its key tiles
// (intra-warpgroup overlap, turns at the tensor cores), then the epilogue.
template <ElementType E, int kHeadDim>
__device__ __forceinline__ void ConsumeTiles(const ForwardBlockArgs& a,
                                             const WarpSpecializedForwardShared<kHeadDim>& sm,
                                             const CUtensorMap* o_map) {
  using Tr = WarpSpecializedForwardTraits<kHeadDim>;
  using Slot = PipelineSlot<Tr::kStages>;
  constexpr int kBlockM = Tr::kBlockM, kBlockN = Tr::kBlockN;
  constexpr int kNB = kBlockN / 8, kDB = kHeadDim / 8;
  const int warpgroup = WarpgroupIndex() - 1;
  const bool signals = threadIdx.x % 128 == 0;  // releases slots for the warpgroup
  const int row0 = warpgroup * 64 + AccumulatorRow();
  const float scale_log2 = a.softmax_scale * kLog2e;
  const int64_t group = a.num_heads / a.num_kv_heads;
  const bool merge_state = MergesInStateTile<kHeadDim>(a);
  const bool leader = threadIdx.x % 128 == 0;
  bool state_stored = false;  // the leader's last copy out of the state slab
  uint32_t state_count = 0;
  static_assert(kTurnBarrier + Tr::kConsumers <= kOutputBarrier,
                "turn and epilogue barriers apart");
  const int my_turn = kTurnBarrier + warpgroup;
  const int other_turn = kTurnBarrier + (warpgroup + 1) % Tr::kConsumers;
  // Warpgroup 0 goes first: the last one hands it the first turn.
  if (warpgroup == Tr::kConsumers - 1) NamedBarrierArrive(other_turn, 256);

  float o_flat[kHeadDim / 2], s_flat[kBlockN / 2];
  auto& o = *reinterpret_cast<float(*)[1][kDB][4]>(o_flat);
  auto& s = *reinterpret_cast<float(*)[1][kNB][4]>(s_flat);
  uint32_t p[kBlockN / 16][4];

  uint32_t kv_count = 0;
  for (uint32_t q_count = 0;; ++q_count) {
    // The next tile, as the producer published it in the Q slot.
    MbarrierWait(sm.QFull(), q_count & 1);
    const PublishedTile tile = LoadPublishedTile(sm.Tile());
    if (tile.m < 0) break;
    const int64_t b = tile.batch;
    const int64_t h = a.kv_head_begin * group + tile.head;
    const int64_t q0 = static_cast<int64_t>(tile.m) * kBlockM;
    const int q_valid = static_cast<int>(min64(kBlockM, a.q_pos.length - q0));
    const KeyTileRange& tiles = tile.keys;
    float row_max[1][2] = {{-INFINITY, -INFINITY}}, row_sum[1][2] = {{0.f, 0.f}};
    float old_lse[2];
#pragma unroll
    for (int i = 0; i < kHeadDim / 2; ++i) o_flat[i] = 0.f;

    if (tiles.n_begin < tiles.n_end) {
      // S = Q K^T for the warpgroup's 64 rows and the stage's kBlockN keys.
      const auto issue_s = [&](uint32_t stage) {
        WgmmaFence();
        IssueRowsTimesRowsT<E, kHeadDim, kBlockM, kBlockN>(s_flat, sm.q, warpgroup * 64,
                                                           sm.K(stage));
      };
      // O += P V (V N-major: 64-column blocks kBlockN rows apart).
      const auto issue_pv = [&](uint32_t stage) {
        WgmmaFence();
        IssueRegistersTimesNMajor<E, kHeadDim>(o_flat, p, sm.V(stage), kBlockN);
        WgmmaCommit();
      };
      // The columns of key tile n that the thread's rows may see (found
      // before its S is issued: the search's branches then join while no
      // product is in flight).
      const auto allowed = [&](int n, int(&begin)[1][2], int(&end)[1][2]) {
        AllowedColumns<1, kNB>(a, b, q0 + row0, static_cast<int64_t>(n) * kBlockN, begin, end);
      };
      // The scores of key tile n (masked outside [begin, end) by the bounds
      // `form` names) to probabilities, in place; rescale: the factors O's
      // rows need.
      const auto softmax = [&](auto form, const int(&begin)[1][2], const int(&end)[1][2],
                               float(&rescale)[1][2]) {
        constexpr MaskBounds kForm = decltype(form)::value;
        FenceRegisters(s_flat);
        if constexpr (kForm != MaskBounds::kNone) {
          MaskOutside<1, kNB, kForm == MaskBounds::kBoth>(s, begin, end);
        }
        SoftmaxStep(s, row_max, row_sum, scale_log2, rescale);
      };
      // P as the A operand of the next P V (once the last P V has read it).
      const auto pack_p = [&] {
#pragma unroll
        for (int kk = 0; kk < kBlockN / 16; ++kk) PackP<E>(s, 0, kk, p[kk]);
      };
      // One turn at the tensor cores: wait for it, issue, hand it over.
      const auto turn = [&](const auto& issue) {
        NamedBarrierSync(my_turn, 256);
        issue();
        NamedBarrierArrive(other_turn, 256);
      };
      const auto release = [&](uint32_t bar) {
        if (signals) MbarrierArrive(bar);
      };

      {
        const Slot first(kv_count);
        const bool first_masked = tiles.NeedsMask(tiles.n_begin);
        int begin[1][2] = {}, end[1][2] = {};
        if (first_masked) allowed(tiles.n_begin, begin, end);
        turn([&] {
          MbarrierWait(sm.KFull(first.stage), first.parity);
          issue_s(first.stage);
        });
        if (state_stored) {  // the state slab is free once the last copy out has read it
          BulkWaitRead<0>();
          MbarrierArrive(sm.StateEmpty());
          state_stored = false;
        }
        WgmmaWait<0>();
        release(sm.KEmpty(first.stage));
        if (tiles.n_begin + 1 == tiles.n_end) MbarrierArrive(sm.QEmpty());
        float rescale[1][2];
        if (first_masked) {
          softmax(MaskForm<MaskBounds::kBoth>{}, begin, end, rescale);
        } else {
          softmax(MaskForm<MaskBounds::kNone>{}, begin, end, rescale);
        }
        pack_p();
      }
      // One step: S of tile n + 1 beside P V of tile n, each form (its
      // MaskBounds) whole, so that no two paths join while P V is in flight:
      // at such a join ptxas waited for P V before the softmax instead of
      // after it (the step's overlap lost on every tile).
      const auto step = [&](int n, auto form) {
        const Slot now(kv_count), next(kv_count + 1);
        int begin[1][2] = {}, end[1][2] = {};
        if constexpr (decltype(form)::value != MaskBounds::kNone) allowed(n + 1, begin, end);
        turn([&] {
          MbarrierWait(sm.KFull(next.stage), next.parity);
          issue_s(next.stage);
          MbarrierWait(sm.VFull(now.stage), now.parity);
          issue_pv(now.stage);
        });
        float rescale[1][2];
        WgmmaWait<1>();  // S of tile n + 1, while P V of tile n runs
        release(sm.KEmpty(next.stage));
        if (n + 2 == tiles.n_end) MbarrierArrive(sm.QEmpty());
        // P of tile n is still being read by the P V product: the softmax
        // writes S in place, and P is packed only after the wait below.
        softmax(form, begin, end, rescale);
        WgmmaWait<0>();
        FenceRegisters(o_flat);
        release(sm.VEmpty(now.stage));
        RescaleRows(o, rescale);
        pack_p();
      };
      // The last tile's P V is peeled off so that every iteration issues the
      // same wgmma groups.
      for (int n = tiles.n_begin; n + 1 < tiles.n_end; ++n, ++kv_count) {
        if (!tiles.NeedsMask(n + 1)) {
          step(n, MaskForm<MaskBounds::kNone>{});
        } else if (Tr::kUpperBoundForm && tiles.LowerBoundFree(n + 1)) {
          step(n, MaskForm<MaskBounds::kUpper>{});
        } else {
          step(n, MaskForm<MaskBounds::kBoth>{});
        }
      }
      const Slot last(kv_count);
      if (merge_state) {  // read while the last P V waits for its turn and runs
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int row = row0 + 8 * half;
          old_lse[half] =
              row < q_valid && !a.state_fresh ? *StateLse(a, b, h, q0 + row) : -INFINITY;
        }
      }
      turn([&] {
        MbarrierWait(sm.VFull(last.stage), last.parity);
        issue_pv(last.stage);
      });
      WgmmaWait<0>();
      FenceRegisters(o_flat);
      release(sm.VEmpty(last.stage));
      ++kv_count;
    } else {
      MbarrierArrive(sm.QEmpty());  // a tile without keys: its slot is free at once
      if (merge_state) continue;    // nor a change to the state
    }
    // The epilogue (traits.h): at d128 the written O or the merged ring
    // state through the output tile (the register path not compiled in: it
    // cost spills), at d64 the written O through it, else from registers.
    const auto store_output = [&] {
      StoreOutputTile<E, kHeadDim>(o, row_max, row_sum, a, b, h, q0, q_valid, warpgroup,
                                   sm.Slab(warpgroup, 2), o_map);
    };
    if constexpr (Tr::kStateTile) {
      if (merge_state) {
        MergeStateTile<kHeadDim>(o, row_max, row_sum, old_lse, a, b, h, q0, q_valid, warpgroup,
                                 sm.Slab(warpgroup, 4), sm.StateFull(), state_count++ & 1, o_map);
        state_stored = leader;
      } else {
        store_output();
      }
    } else if (WritesOutputTile<kHeadDim>(a)) {
      store_output();
    } else {
      StoreBlockResult<E, kHeadDim>(o, row_max, row_sum, a, b, h, q0, q_valid, row0);
    }
  }
  if (warpgroup == 0) NamedBarrierSync(my_turn, 256);  // the last warpgroup's last hand-over
  // The last copies out of the slab finish before the CTA's shared memory goes.
  if (Tr::kOutputTile && leader) BulkWait();
}

template <ElementType E, int kHeadDim>
__global__ void __launch_bounds__(WarpSpecializedForwardTraits<kHeadDim>::kThreads, 1)
    FlashForwardWarpSpecializedKernel(const ForwardBlockArgs a,
                                      const HeavyFirstTileScheduler scheduler,
                                      TileCounter* const counter,
                                      const __grid_constant__ CUtensorMap q_map,
                                      const __grid_constant__ CUtensorMap k_map,
                                      const __grid_constant__ CUtensorMap v_map,
                                      const __grid_constant__ CUtensorMap o_map) {
#ifdef RINGATTN_WGMMA
  using Tr = WarpSpecializedForwardTraits<kHeadDim>;
  extern __shared__ __align__(1024) unsigned char shared_raw[];
  const WarpSpecializedForwardShared<kHeadDim> sm(SharedAddress(shared_raw));
  if (threadIdx.x == 0) {
    MbarrierInit(sm.QFull(), 1);
    // Every consumer thread releases the Q slot: each has read its tile
    // (and its Q) by then.
    MbarrierInit(sm.QEmpty(), 128 * Tr::kConsumers);
    for (int s = 0; s < Tr::kStages; ++s) {
      MbarrierInit(sm.KFull(s), 1);
      MbarrierInit(sm.KEmpty(s), Tr::kConsumers);
      MbarrierInit(sm.VFull(s), 1);
      MbarrierInit(sm.VEmpty(s), Tr::kConsumers);
    }
    MbarrierInit(sm.ScheduledFull(), 1);
    MbarrierInit(sm.ScheduledEmpty(), 1);
    MbarrierInit(sm.NextWanted(), 1);
    MbarrierInit(sm.StateFull(), 1);
    MbarrierInit(sm.StateEmpty(), Tr::kConsumers);  // each warpgroup's leader
    FenceBarrierInit();
  }
  __syncthreads();
  if (threadIdx.x < 128) {
    SetMaxRegistersDecrease<Tr::kProducerRegisters>();
    if (threadIdx.x == 0) {
      ProduceTiles<kHeadDim>(a, sm, &q_map, &k_map, &v_map, &o_map);
    } else if (threadIdx.x == 32) {
      ScheduleTiles<kHeadDim>(a, sm, scheduler, counter);
    }
  } else {
    SetMaxRegistersIncrease<Tr::kConsumerRegisters>();
    ConsumeTiles<E, kHeadDim>(a, sm, &o_map);
  }
#endif  // RINGATTN_WGMMA
}

template <ElementType E, int kHeadDim>
cudaError_t LaunchFlashForwardWarpSpecializedKernel(const ForwardBlockArgs& a,
                                                    cudaStream_t stream) {
  using Tr = WarpSpecializedForwardTraits<kHeadDim>;
  const int64_t q_len = a.q_pos.length;
  CUtensorMap q_map, k_map, v_map, o_map;
  if (const cudaError_t e = EncodeTileMaps({{QueryRowsView(a, a.q, E, Tr::kBlockM), &q_map},
                                            {KeyRowsView(a, a.k, E, Tr::kBlockN), &k_map},
                                            {KeyRowsView(a, a.v, E, Tr::kBlockN), &v_map}});
      e != cudaSuccess) {
    return e;
  }
  // The O the epilogue writes through the TMA: the output (StoreOutputTile)
  // or the ring state's (MergeStateTile).
  if (WritesOutputTile<kHeadDim>(a)) {
    if (const cudaError_t e = EncodeTileMap(QueryRowsView(a, a.out, E, 64), &o_map);
        e != cudaSuccess) {
      return e;
    }
  } else if (MergesInStateTile<kHeadDim>(a)) {
    const TileView view = QueryRowsView(a, a.state_o, ElementType::kFloat32, 64);
    if (const cudaError_t e = EncodeTileMap(view, &o_map); e != cudaSuccess) return e;
  } else {
    o_map = q_map;  // unused
  }
  DeviceFacts device;
  if (const cudaError_t e = CurrentDeviceFacts(&device); e != cudaSuccess) return e;
  const int sms = device.sms;
  const int64_t group = a.num_heads / a.num_kv_heads;
  const int64_t kv_head_bytes = 2 * a.k_pos.length * kHeadDim * ElementBytes(E);
  const HeavyFirstTileScheduler scheduler = WithSectionOverride(HeavyFirstTileScheduler::Sections(
      static_cast<int>((q_len + Tr::kBlockM - 1) / Tr::kBlockM),
      (a.kv_head_end - a.kv_head_begin) * group, a.batch, group, kv_head_bytes,
      L2SectionBudget(device.l2_bytes), sms, EveryPairAllowed(a)));
  const int64_t grid = std::min<int64_t>(scheduler.Count(), sms);
  TileCounter* counter = nullptr;
  if (const cudaError_t e = ForwardTileCounter(stream, &counter); e != cudaSuccess) return e;
  return LaunchKernel(FlashForwardWarpSpecializedKernel<E, kHeadDim>,
                      dim3(static_cast<unsigned>(grid)), Tr::kThreads, Tr::kSharedBytes, stream, a,
                      scheduler, counter, q_map, k_map, v_map, o_map);
}

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_FORWARD_WARP_SPECIALIZED_KERNEL_CUH_
