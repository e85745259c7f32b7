// Tile shapes of the tensor-core kernels, checked at compile time.
#ifndef RINGATTN_CUDA_FLASH_TRAITS_H_
#define RINGATTN_CUDA_FLASH_TRAITS_H_

namespace ringattn::cuda::flash {

// Forward: a CTA of kWarps warps owns kBlockM = 16 * kMTiles * kWarps query
// rows; each warp owns kMTiles m16 row tiles, so every K/V fragment read
// from shared memory feeds kMTiles mma (shared-memory traffic per FLOP is
// what bounds mma.sync kernels). Key/value tiles of kBlockN rows are
// double-buffered in shared memory by cp.async. Q's fragments are re-read
// from shared memory each key tile (registers go to the accumulators).
template <int kHeadDim_>
struct ForwardTraits {
  static constexpr int kHeadDim = kHeadDim_;
  // d256: two row tiles of O accumulators would not fit in 255 registers.
  static constexpr int kMTiles = kHeadDim <= 128 ? 2 : 1;
  static constexpr int kWarps = kHeadDim <= 128 ? 4 : 8;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kBlockM = 16 * kMTiles * kWarps;
  static constexpr int kBlockN = 64;
  // Keys per S sub-tile: 64 at d64, 32 above (O's accumulators need the room).
  static constexpr int kSubN = kHeadDim <= 64 ? 64 : 32;
  static constexpr int kMinBlocksPerSm = kHeadDim <= 128 ? 2 : 1;
  static constexpr int kElementBytes = 2;
  static constexpr int kQElements = kBlockM * kHeadDim;
  static constexpr int kKvElements = kBlockN * kHeadDim;  // one K or V tile
  static constexpr int kSharedBytes =
      (kQElements + 4 * kKvElements) * kElementBytes;  // Q, 2 x (K, V)

  static_assert(kHeadDim == 64 || kHeadDim == 128 || kHeadDim == 256, "head dims 64, 128, 256");
  static_assert(kSubN % 16 == 0, "keys in k16 steps of the P*V product");
  static_assert(kBlockN % kSubN == 0, "whole sub-tiles per tile");
  static_assert(kHeadDim / 8 >= 8, "the swizzle permutes 8 chunks of a row");
  static_assert((kBlockM * kHeadDim / 8) % kThreads == 0, "Q chunks per thread");
  static_assert((kBlockN * kHeadDim / 8) % kThreads == 0, "K/V chunks per thread");
  static_assert(kSharedBytes <= 227 * 1024, "shared memory of one SM");
};

// fp32 forward (3xTF32 on mma.sync m16n8k8): warps of 16 query rows;
// K/V tiles of kBlockN keys double-buffered, split once into tf32 hi (in
// place) and lo parts (for the current tile); Q is split per use. Rows of
// kHeadDim + 4 floats in shared memory make the scalar fragment loads
// conflict-free. d64: four warps, 70 KB (three CTAs per SM: mma.sync tf32
// needs the warps to hide its latency); d128: eight warps, 169 KB (one).
template <int kHeadDim_>
struct F32ForwardTraits {
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kWarps = kHeadDim <= 64 ? 4 : 8;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kBlockM = 16 * kWarps;
  static constexpr int kBlockN = 32;
  static constexpr int kMinBlocksPerSm = kHeadDim <= 64 ? 3 : 1;
  static constexpr int kStride = kHeadDim + 4;  // floats per shared row
  static constexpr int kQFloats = kBlockM * kStride;
  static constexpr int kKvFloats = kBlockN * kStride;  // one K or V tile
  // Q, 2 x (K, V), K lo, V lo.
  static constexpr int kSharedBytes = (kQFloats + 6 * kKvFloats) * 4;

  static_assert(kHeadDim == 64 || kHeadDim == 128, "fp32 head dims 64, 128");
  static_assert(kStride % 32 == 4, "fragment loads over 32 distinct banks");
  static_assert(kBlockN % 8 == 0, "n8 blocks of S");
  static_assert(kMinBlocksPerSm * kSharedBytes <= 227 * 1024, "CTAs per SM");
};

// fp32 forward on sm_90a (3xTF32 on wgmma tf32), head_dims 64 and 128: two
// warpgroups of 64 query rows. Every operand sits split in
// shared memory as tf32 hi and lo tiles in the 128-byte swizzle (K-major:
// tf32 wgmma has no transposed operands, so V is stored transposed): Q
// (hi, lo) once, and stages of K (hi, lo) and V^T (hi, lo): at d64 two of
// 64 keys (192 KB), at d128 one of 32 keys (192 KB; Q's hi and lo take
// 128 KB), whose K and V are refilled half a tile apart. One CTA per SM.
template <int kHeadDim_>
struct F32HopperForwardTraits {
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kThreads = 256;
  static constexpr int kBlockM = 128;
  static constexpr int kBlockN = kHeadDim == 64 ? 64 : 32;
  static constexpr int kStages = kHeadDim == 64 ? 2 : 1;
  static constexpr int kQBytes = kBlockM * kHeadDim * 4;   // one of Q hi, Q lo
  static constexpr int kKvBytes = kBlockN * kHeadDim * 4;  // one of K hi, K lo, V^T hi, V^T lo
  static constexpr int kStageBytes = 4 * kKvBytes;
  static constexpr int kSharedBytes = 2 * kQBytes + kStages * kStageBytes + 1024;

  static_assert(kHeadDim == 64 || kHeadDim == 128, "fp32 wgmma head dims 64 and 128");
  static_assert(kSharedBytes <= 227 * 1024, "shared memory of one SM");
};

// The fp32 backwards add their register dK and dV to the fp32 buffers
// every kFlushTiles query tiles and start again from zero, so that no
// tensor-core accumulator takes more than kFlushTiles tiles' products:
// 3xTF32 makes three accumulations per k8 step, and over a 1024-query key
// tile (384 of them) dK and dV drifted to 1.1e-5 of their largest element
// from the float64 result (cuda_test; the fp32 FMA kernel: 2.6e-6), twice
// the drift of the same keys split into two tasks.
constexpr int kFlushTiles = 8;

// fp32 backward on mma.sync (3xTF32, sm_80 and later): warps of 16 keys,
// query tiles of 32 double-buffered, operands split per fragment load; rows
// of kHeadDim + 4 floats (dS^T: kBlockM + 4) keep the scalar fragment loads
// conflict-free. d64: four warps, 79 KB (two CTAs per SM); d128: eight
// warps, 217 KB (one).
template <int kHeadDim_>
struct F32BackwardTraits {
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kWarps = kHeadDim <= 64 ? 4 : 8;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kBlockN = 16 * kWarps;
  static constexpr int kBlockM = 32;
  static constexpr int kStride = kHeadDim + 4;   // floats per K, V, Q, dO row
  static constexpr int kDsStride = kBlockM + 4;  // floats per dS^T row
  static constexpr int kKvFloats = kBlockN * kStride;
  static constexpr int kQFloats = kBlockM * kStride;
  // K, V, 2 x (Q, dO), dS^T, 2 x (LSE, D).
  static constexpr int kSharedBytes =
      (2 * kKvFloats + 4 * kQFloats + kBlockN * kDsStride + 4 * kBlockM) * 4;

  static_assert(kHeadDim == 64 || kHeadDim == 128, "fp32 head dims 64, 128");
  static_assert(kStride % 32 == 4 && kDsStride % 32 == 4, "fragment loads over 32 banks");
  static_assert(kSharedBytes <= 227 * 1024, "shared memory of one SM");
};

// fp32 backward on sm_90a (3xTF32 on wgmma tf32), head_dim 64: one
// warpgroup per key tile of 64, query tiles of 32. tf32 wgmma reads K-major
// operands only, so Q, dO and K are each stored twice (as they are, and
// transposed), every operand split into hi and lo tiles: K, V, K^T of the
// CTA's keys (96 KB), Q, dO, Q^T, dO^T of one query tile (64 KB), dS
// (16 KB) -- one CTA per SM.
template <int kHeadDim_>
struct F32HopperBackwardTraits {
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kThreads = 128;
  static constexpr int kBlockN = 64;
  static constexpr int kBlockM = 32;
  static constexpr int kKvBytes = kBlockN * kHeadDim * 4;  // one of K, V, K^T (hi or lo)
  static constexpr int kQBytes = kBlockM * kHeadDim * 4;   // one of Q, dO, Q^T, dO^T (hi or lo)
  static constexpr int kDsBytes = kBlockM * kBlockN * 4;   // dS (hi or lo)
  static constexpr int kSharedBytes =
      6 * kKvBytes + 8 * kQBytes + 2 * kDsBytes + 2 * 4 * kBlockM + 1024;

  static_assert(kHeadDim == 64, "fp32 wgmma backward head dim 64");
  static_assert(kSharedBytes <= 227 * 1024, "shared memory of one SM");
};

// Hopper forward (wgmma): two warpgroups of 64 query rows each; key tiles
// of kBlockN rows (S of a tile is kBlockN / 2 registers per thread beside
// O's kHeadDim / 2), two stages of K and V. Tiles are
// 1024-byte aligned for the 128-byte swizzle (the extra 1 KB).
template <int kHeadDim_>
struct HopperForwardTraits {
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kThreads = 256;
  static constexpr int kBlockM = 128;
  static constexpr int kBlockN = kHeadDim == 128 ? 128 : 64;
  // d64: S, P and O fit in 128 registers, so two CTAs share an SM.
  static constexpr int kMinBlocksPerSm = kHeadDim == 64 ? 2 : 1;
  static constexpr int kQBytes = kBlockM * kHeadDim * 2;
  static constexpr int kKvBytes = kBlockN * kHeadDim * 2;  // one K or V tile
  static constexpr int kSharedBytes = kQBytes + 4 * kKvBytes + 1024;

  static_assert(kHeadDim == 64 || kHeadDim == 128 || kHeadDim == 256, "head dims 64, 128, 256");
  static_assert(kHeadDim / 2 + kBlockN / 2 <= 160, "accumulators within registers");
  static_assert(kSharedBytes <= 227 * 1024, "shared memory of one SM");
};

// The warp-specialized kernels' CTA: one producer warpgroup and
// kConsumers consumer warpgroups (two but in the d64 forward).
template <int kConsumers_ = 2>
struct WarpSpecializedCta {
  static constexpr int kConsumers = kConsumers_;
  static constexpr int kThreads = 128 * (kConsumers + 1);
  static constexpr int kEntryRegisters = 65536 / kThreads / 8 * 8;
};

// The register split of such a CTA when the producer keeps kProducer:
// setmaxnreg.inc takes registers only from those the CTA's producer gave
// back (it waits for them otherwise: a deadlock), so the two counts balance
// at the entry cap (65536 / kThreads: 168 with two consumers, 128 with
// three).
template <int kProducer, int kConsumers = 2>
struct WarpSpecializedRegisters {
  using Cta = WarpSpecializedCta<kConsumers>;
  static constexpr int kProducerRegisters = kProducer;
  static constexpr int kConsumerRegisters =
      Cta::kEntryRegisters + (Cta::kEntryRegisters - kProducer) / Cta::kConsumers / 8 * 8;
  static_assert(kProducer * 128 + kConsumerRegisters * 128 * Cta::kConsumers <=
                    Cta::kEntryRegisters * Cta::kThreads,
                "consumers take no more registers than the producer gives back");
  static_assert(kConsumerRegisters <= 256, "setmaxnreg range");
};

// Hopper warp-specialized forward (wgmma + TMA): one producer warpgroup
// (one thread issues the tensor copies) and kConsumers consumer
// warpgroups of 64 query rows each (most of the registers), so a CTA owns
// kBlockM = 64 * kConsumers rows. K and V tiles of kBlockN keys go through
// kStages-deep pipelines of their own; Q is single-buffered per tile. One
// CTA per SM (persistent). Tiles are 1024-byte aligned (the extra 1 KB);
// the mbarriers follow them.
template <int kHeadDim_>
struct WarpSpecializedForwardTraits {
  static constexpr int kHeadDim = kHeadDim_;
  // Three consumer warpgroups at d64 (FlashAttention-3's 192 x 128 tile):
  // a warpgroup's S and P V products are half d128's there while its
  // softmax is the same, so two warpgroups' products left the tensor cores
  // idle behind the other's softmax.
  static constexpr int kConsumers = kHeadDim == 64 ? 3 : 2;
  static constexpr int kThreads = WarpSpecializedCta<kConsumers>::kThreads;
  static constexpr int kBlockM = 64 * kConsumers;
  // d256: 80 keys (FlashAttention-3's d256 tile; 1.07-1.11x of 64 measured).
  static constexpr int kBlockN = kHeadDim == 256 ? 80 : 128;
  static constexpr int kStages = kHeadDim == 64 ? 4 : 2;
  // The producer asks for its next tile with the K this many key tiles
  // before the tile's end (1 would ask with the last K): 3 measured 1.007-
  // 1.015x of 1 on the b16 and s8192 forward rows, neutral on the others.
  static constexpr int kAskAhead = 3;
  // Masked key tiles past every row's lower bound (a causal diagonal) take
  // a step form that tests the upper bound alone, one compare an element:
  // b16 forward 1.003-1.005x at d128 (thirty-sixth session). Not at d64,
  // where that third form spilled 228 / 332 bytes against 152 / 180 and
  // lost 3.2 %.
  static constexpr bool kUpperBoundForm = kHeadDim != 64;
  // The producer's 64-bit tile-range arithmetic spills below 56 registers;
  // d256's O (128 registers) needs 240 in the consumers (a producer of 24
  // spills, off the critical path). At d64, 32 and 160 x 3 fill the
  // 512-thread CTA's 65536 (its producer spills too: 1.067x of two
  // consumers at 56 / 224 all the same, thirty-fifth session).
  using Registers =
      WarpSpecializedRegisters<kHeadDim == 256 ? 24 : (kConsumers == 3 ? 32 : 56), kConsumers>;
  static constexpr int kProducerRegisters = Registers::kProducerRegisters;
  static constexpr int kConsumerRegisters = Registers::kConsumerRegisters;
  static constexpr int kQBytes = kBlockM * kHeadDim * 2;
  static constexpr int kKvBytes = kBlockN * kHeadDim * 2;  // one K or V tile
  // The epilogue through shared memory and the TMA: the written O (in E)
  // out of an output tile where one fits beside the pipeline (d64, d128),
  // and at d128 the ring state's fp32 O tile copied in by the producer,
  // merged there and copied out (at d64 its 181 KB of shared memory cost
  // 4-5 % on both columns, measured). Otherwise from and to registers.
  static constexpr bool kOutputTile = kHeadDim <= 128;
  static constexpr bool kStateTile = kHeadDim == 128;
  static constexpr int kStateBytes = kBlockM * kHeadDim * 4;
  static constexpr int kOutputBytes =
      kStateTile ? kStateBytes : (kOutputTile ? kBlockM * kHeadDim * 2 : 0);
  // Q's full/empty, K's and V's per stage, the Q slot's tile (32 bytes),
  // the scheduler's slot: a tile (32 bytes), its full/empty barriers and
  // the producer's request for the next, and the state tile's full/empty.
  static constexpr int kBarrierBytes = 8 * (2 + 4 * kStages) + 32 + 32 + 32 + 16;
  static constexpr int kSharedBytes =
      1024 + kQBytes + 2 * kStages * kKvBytes + kOutputBytes + kBarrierBytes;

  static_assert(kHeadDim == 64 || kHeadDim == 128 || kHeadDim == 256, "head dims 64, 128, 256");
  static_assert(kHeadDim / 2 + kBlockN / 2 <= 192, "accumulators within registers");
  static_assert(kSharedBytes <= 227 * 1024, "shared memory of one SM");
};

// Hopper backward (wgmma): two warpgroups of 64 keys each (dK and dV in
// registers, kHeadDim / 2 each per thread), query tiles of 64 rows (S^T and
// dP^T 32 registers each), K and V single, Q and dO double-buffered, dS^T
// staged in shared memory for dQ; 1 KB for the 1024-byte alignment.
template <int kHeadDim_>
struct HopperBackwardTraits {
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kThreads = 256;
  static constexpr int kBlockN = 128;
  static constexpr int kBlockM = 64;
  static constexpr int kKvBytes = kBlockN * kHeadDim * 2;
  static constexpr int kQBytes = kBlockM * kHeadDim * 2;
  static constexpr int kDsBytes = kBlockN * kBlockM * 2;
  static constexpr int kSharedBytes =
      2 * kKvBytes + 4 * kQBytes + kDsBytes + 4 * 2 * 2 * kBlockM + 1024;

  static_assert(kHeadDim == 64 || kHeadDim == 128, "backward head dims 64, 128");
  static_assert(kBlockM == 64, "dS^T rows are one 128-byte swizzle row");
  static_assert(kSharedBytes <= 227 * 1024, "shared memory of one SM");
};

// Hopper backward for head_dim 256 (wgmma, cp.async): dK and dV of a key
// tile of 64 (2 x 64 x 256 fp32) do not fit one warpgroup's registers, so
// the two warpgroups split them by columns (128 each) and the query tile of
// 64 between S^T and dP^T (one each); P^T (handed over in fp32) and dS^T
// meet in shared memory. K, V, two stages of Q and dO, P^T, dS^T, fp32
// P^T, the mbarriers of the two Q / dO buffers (their TMA copies): 226 KB.
template <int kHeadDim_>
struct ColumnSplitBackwardTraits {
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kThreads = 256;
  static constexpr int kBlockN = 64;
  static constexpr int kBlockM = 64;
  static constexpr int kKvBytes = kBlockN * kHeadDim * 2;
  static constexpr int kQBytes = kBlockM * kHeadDim * 2;
  static constexpr int kScoreBytes = kBlockN * kBlockM * 2;     // P^T or dS^T
  static constexpr int kStatsBytes = 4 * 2 * 2 * kBlockM;       // LSE and D of two tiles
  static constexpr int kHandoverBytes = kBlockN * kBlockM * 4;  // P^T in fp32
  static constexpr int kBarrierBytes = 2 * 8;                   // the Q / dO buffers' mbarriers
  static constexpr int kSharedBytes = 2 * kKvBytes + 4 * kQBytes + 2 * kScoreBytes + kStatsBytes +
                                      kHandoverBytes + kBarrierBytes + 1024;

  static_assert(kHeadDim == 256, "the column split is for head_dim 256");
  static_assert(kBlockM == 64, "P^T and dS^T rows are one 128-byte swizzle row");
  static_assert(kSharedBytes <= 227 * 1024, "shared memory of one SM");
};

// The dQ pass of the head_dim 256 Hopper backward: two warpgroups of 64
// query rows, key tiles of 64; Q, dO, two stages of K, one V and their
// four mbarriers (TMA copies): 225 KB.
template <int kHeadDim_>
struct QueryGradsTraits {
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kThreads = 256;
  static constexpr int kBlockM = 128;
  static constexpr int kBlockN = 64;
  static constexpr int kQBytes = kBlockM * kHeadDim * 2;   // Q or dO
  static constexpr int kKvBytes = kBlockN * kHeadDim * 2;  // one K or V tile
  static constexpr int kBarrierBytes = 4 * 8;  // Q / dO, V and the two K stages' mbarriers
  static constexpr int kSharedBytes = 2 * kQBytes + 3 * kKvBytes + kBarrierBytes + 1024;

  static_assert(kHeadDim == 256, "the dQ pass is the head_dim 256 backward's");
  static_assert(kSharedBytes <= 227 * 1024, "shared memory of one SM");
};

// Warp-specialized Hopper backward: a producer warpgroup (one thread issues
// the TMA copies of K, V and of each query tile's Q and dO; one warp loads
// LSE and D; one warp adds the CTA's dQ tiles to global memory with TMA
// reductions) and two consumer warpgroups of 64 keys each. Query tiles of
// kBlockM rows (64 at d128; 128 at d64, where a 64-row tile is too little
// work per barrier) go through a kStages-deep pipeline. dS^T is
// double-buffered at d128 (the consumers' ping-pong) and single at d64
// (the consumers in step, a second barrier; the shared memory is taken by
// the larger tiles). dQ (kBlockM x kHeadDim, each consumer a 64 x 64 half
// of it: its columns at d128, its rows at d64) is staged in fp32,
// double-buffered, in boxes of 64 rows x 32 columns in the 128-byte swizzle
// (the layout the TMA reduction reads).
template <int kHeadDim_>
struct WarpSpecializedBackwardTraits {
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kConsumers = WarpSpecializedCta<>::kConsumers;
  static constexpr int kThreads = WarpSpecializedCta<>::kThreads;
  static constexpr int kBlockN = 64 * kConsumers;
  static constexpr int kBlockM = kHeadDim == 64 ? 128 : 64;
  static constexpr int kStages = 2;
  static constexpr int kDsBuffers = kHeadDim == 64 ? 1 : 2;
  using Registers = WarpSpecializedRegisters<24>;
  static constexpr int kProducerRegisters = Registers::kProducerRegisters;
  static constexpr int kConsumerRegisters = Registers::kConsumerRegisters;
  static constexpr int kKvBytes = kBlockN * kHeadDim * 2;  // K or V
  static constexpr int kQBytes = kBlockM * kHeadDim * 2;   // one Q or dO tile
  static constexpr int kDsBytes = kBlockN * kBlockM * 2;   // one dS^T buffer
  static constexpr int kDqBoxBytes = 64 * 128;             // 64 rows x 32 fp32 columns
  static constexpr int kDqTileBytes = kBlockM * kHeadDim * 4;
  static constexpr int kStatsBytes = kStages * 2 * kBlockM * 4;  // LSE and D
  // K/V's full, Q/dO's full and empty per stage, and (two dS^T buffers:
  // the consumers' ping-pong) dS^T's and the dQ staging's full and empty
  // per buffer.
  static constexpr int kBarrierBytes = 8 * (1 + 2 * kStages + (kDsBuffers == 2 ? 8 : 0));
  static constexpr int kSharedBytes = 1024 + 2 * kKvBytes + 2 * kStages * kQBytes +
                                      kDsBuffers * kDsBytes + 2 * kDqTileBytes + kStatsBytes +
                                      kBarrierBytes;

  static_assert(kHeadDim == 64 || kHeadDim == 128, "backward head dims 64, 128");
  static_assert(kBlockM * kHeadDim == 64 * 64 * kConsumers, "a 64 x 64 dQ block per consumer");
  static_assert(kBlockM % 32 == 0, "the stats warp loads kBlockM / 32 rows per lane");
  static_assert(kSharedBytes <= 227 * 1024, "shared memory of one SM");
};

// Backward: a CTA owns kBlockN = 16 * kWarps keys (16 per warp: the warp's
// dK and dV accumulators stay in registers) and walks the query tiles of
// kBlockM rows (Q, dO double-buffered by cp.async). Per tile each warp
// computes S^T, P^T, dV += P^T dO, dP^T, dS^T, dK += dS^T Q; dS goes through
// shared memory for dQ = dS K, added to the fp32 dQ with atomics.
template <int kHeadDim_>
struct BackwardTraits {
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kWarps = 8;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kBlockN = 16 * kWarps;
  // Query tiles of kBlockM rows are loaded (and dQ is computed) per
  // barrier; S^T, dP^T and dS^T run in sub-tiles of kSubM queries so that
  // their accumulators fit beside dK and dV.
  static constexpr int kBlockM = kHeadDim <= 64 ? 128 : 64;
  static constexpr int kSubM = kBlockM / 2;
  static constexpr int kKvElements = kBlockN * kHeadDim;       // K or V
  static constexpr int kQElements = kBlockM * kHeadDim;        // one Q or dO tile
  static constexpr int kDsElements = kBlockN * (kBlockM + 8);  // dS^T, padded rows
  static constexpr int kSharedBytes = 2 * (2 * kKvElements + 4 * kQElements + kDsElements) +
                                      4 * 2 * 2 * kBlockM;  // LSE and D, double-buffered

  static_assert(kHeadDim == 64 || kHeadDim == 128, "backward head dims 64, 128");
  static_assert(kSubM % 16 == 0 && kBlockM % kSubM == 0, "query sub-tiles");
  static_assert(kBlockM % 16 == 0 && kWarps % (kBlockM / 16) == 0, "dQ rows per warp");
  static_assert(kSharedBytes <= 227 * 1024, "shared memory of one SM");
};

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_TRAITS_H_
