// Tile shapes of the tensor-core kernels, checked at compile time.
#ifndef RINGATTN_CUDA_FLASH_TRAITS_H_
#define RINGATTN_CUDA_FLASH_TRAITS_H_

namespace ringattn::cuda::flash {

// Forward: a CTA of kWarps warps owns kBlockM = 16 * kWarps query rows (16
// per warp, one m16 row of mma tiles); key/value tiles of kBlockN rows are
// double-buffered in shared memory by cp.async.
template <int kHeadDim_>
struct ForwardTraits {
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kWarps = 8;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kBlockM = 16 * kWarps;
  static constexpr int kBlockN = kHeadDim <= 128 ? 64 : 32;
  // Q's A-fragments stay in registers for the whole key loop up to d128;
  // at d256 they would crowd out the accumulators, so they are re-read.
  static constexpr bool kQInRegisters = kHeadDim <= 128;
  static constexpr int kMinBlocksPerSm = 1;
  static constexpr int kElementBytes = 2;
  static constexpr int kQElements = kBlockM * kHeadDim;
  static constexpr int kKvElements = kBlockN * kHeadDim;  // one K or V tile
  static constexpr int kSharedBytes =
      (kQElements + 4 * kKvElements) * kElementBytes;  // Q, 2 x (K, V)

  static_assert(kHeadDim == 64 || kHeadDim == 128 || kHeadDim == 256,
                "head dims 64, 128, 256");
  static_assert(kBlockN % 16 == 0, "keys in k16 steps of the P*V product");
  static_assert(kHeadDim / 8 >= 8, "the swizzle permutes 8 chunks of a row");
  static_assert((kBlockM * kHeadDim / 8) % kThreads == 0, "Q chunks per thread");
  static_assert((kBlockN * kHeadDim / 8) % kThreads == 0, "K/V chunks per thread");
  static_assert(kSharedBytes <= 227 * 1024, "shared memory of one SM");
};

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_TRAITS_H_
