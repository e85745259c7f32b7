#include "cuda/kernel_choice.h"

#include "cuda/flash/backward.h"
#include "cuda/flash/forward.h"
#include "cuda/forward_block.h"

namespace ringattn::cuda {

cudaError_t LaunchForward(const ForwardBlockArgs& a, cudaStream_t stream) {
  if (flash::FlashForwardSupports(a)) return flash::LaunchFlashForward(a, stream);
  return LaunchForwardBlock(a, stream);
}

cudaError_t LaunchBackward(const BackwardBlockArgs& args, cudaStream_t stream) {
  if (flash::FlashBackwardSupports(args)) return flash::LaunchFlashBackward(args, stream);
  return LaunchBackwardBlock(args, stream);
}

bool BackwardStoresEveryKeyRow(const BackwardBlockArgs& args) {
  return flash::FlashBackwardStoresEveryKeyRow(args);
}

}  // namespace ringattn::cuda
