#include "cuda/state_merge.h"

#include "core/lse_math.h"

namespace ringattn::cuda {
namespace {

constexpr int kWarpsPerBlock = 4;

// One warp per (batch, token, head) row; lanes stride over head_dim.
__global__ void StateMergeKernel(StateMergeArgs args) {
  const int64_t rows = args.batch * args.seqlen * args.num_heads;
  const int64_t row =
      static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  const int64_t h = row % args.num_heads;
  const int64_t t = (row / args.num_heads) % args.seqlen;
  const int64_t b = row / (args.num_heads * args.seqlen);
  const int64_t stat = (b * args.num_heads + h) * args.seqlen + t;
  const float lse_block = args.lse_block[stat];
  if (lse_block == -INFINITY) return;  // the block saw no key for this row
  const LseMerge<float> m = MergeLse(args.lse[stat], lse_block);
  float* o = args.o + row * args.head_dim;
  const float* o_block = args.o_block + row * args.head_dim;
  for (int64_t i = lane; i < args.head_dim; i += 32) {
    // old_scale == 0 means the running row was empty (O = 0, LSE = -inf).
    o[i] = m.old_scale == 0.0f ? o_block[i] * m.new_scale
                               : o[i] * m.old_scale + o_block[i] * m.new_scale;
  }
  if (lane == 0) args.lse[stat] = m.lse;
}

}  // namespace

cudaError_t LaunchStateMerge(const StateMergeArgs& args, cudaStream_t stream) {
  const int64_t rows = args.batch * args.seqlen * args.num_heads;
  if (rows == 0) return cudaSuccess;
  const int64_t blocks = (rows + kWarpsPerBlock - 1) / kWarpsPerBlock;
  StateMergeKernel<<<static_cast<unsigned>(blocks), kWarpsPerBlock * 32, 0,
                     stream>>>(args);
  return cudaGetLastError();
}

}  // namespace ringattn::cuda
