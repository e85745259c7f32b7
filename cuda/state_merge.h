// The fp32 ring state merge on the GPU: folds a block's (O_b, LSE_b) into the
// running (O, LSE) of a rank, with the same formula as the CPU
// (core/lse_math.h). Layouts: o, o_block (batch, seqlen, num_heads,
// head_dim) fp32; lse, lse_block (batch, num_heads, seqlen) fp32.
#ifndef RINGATTN_CUDA_STATE_MERGE_H_
#define RINGATTN_CUDA_STATE_MERGE_H_

#include <cstdint>

#include <cuda_runtime_api.h>

namespace ringattn::cuda {

struct StateMergeArgs {
  float* o = nullptr;
  float* lse = nullptr;
  const float* o_block = nullptr;
  const float* lse_block = nullptr;
  int64_t batch = 0;
  int64_t seqlen = 0;
  int64_t num_heads = 0;
  int64_t head_dim = 0;
};

// Enqueues the merge on `stream`. Device pointers; no validation (see
// MergeState in state_merge_launch.h for the checked entry point).
cudaError_t LaunchStateMerge(const StateMergeArgs& args, cudaStream_t stream);

}  // namespace ringattn::cuda

#endif  // RINGATTN_CUDA_STATE_MERGE_H_
