// GPU test: skips with a message where there is no CUDA device.
#include "cuda/state_merge.h"

#include <cmath>
#include <vector>

#include <cuda_runtime.h>

#include "core/online_softmax.h"
#include "cuda/device.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace ringattn::cuda {
namespace {

using ::ringattn::testing::MaxRelError;
using ::ringattn::testing::RandomNormal;

TEST(StateMergeTest, MatchesTheCpuMerge) {
  if (absl::StatusOr<int> n = DeviceCount(); !n.ok()) {
    GTEST_SKIP() << "skipped: " << n.status().message();
  }
  const int64_t batch = 2, seqlen = 33, heads = 3, head_dim = 80;
  const int64_t rows = batch * seqlen * heads;
  std::vector<float> o = RandomNormal<float>(rows * head_dim, 1);
  std::vector<float> o_block = RandomNormal<float>(rows * head_dim, 2);
  std::vector<float> lse = RandomNormal<float>(rows, 3, 5.0);
  std::vector<float> lse_block = RandomNormal<float>(rows, 4, 5.0);
  for (int64_t i = 0; i < rows; i += 7) lse[i] = -INFINITY;         // empty state
  for (int64_t i = 0; i < rows; i += 5) lse_block[i] = -INFINITY;   // empty block
  for (int64_t i = 0; i < rows; i += 7) {
    for (int64_t d = 0; d < head_dim; ++d) o[i * head_dim + d] = 0;
  }

  // CPU reference: SoftmaxState rows in (b, t, h) order, lse in (b, h, t).
  std::vector<float> want_o = o, want_lse = lse;
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t t = 0; t < seqlen; ++t) {
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t row = (b * seqlen + t) * heads + h;
        const int64_t stat = (b * heads + h) * seqlen + t;
        MergeRow(want_o.data() + row * head_dim, &want_lse[stat],
                 o_block.data() + row * head_dim, lse_block[stat],
                 static_cast<int>(head_dim));
      }
    }
  }

  float *d_o, *d_lse, *d_ob, *d_lseb;
  ASSERT_EQ(cudaMalloc(&d_o, o.size() * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&d_ob, o.size() * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&d_lse, lse.size() * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&d_lseb, lse.size() * 4), cudaSuccess);
  cudaMemcpy(d_o, o.data(), o.size() * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(d_ob, o_block.data(), o.size() * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(d_lse, lse.data(), lse.size() * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(d_lseb, lse_block.data(), lse.size() * 4, cudaMemcpyHostToDevice);
  ASSERT_EQ(LaunchStateMerge({d_o, d_lse, d_ob, d_lseb, batch, seqlen, heads,
                              head_dim},
                             nullptr),
            cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<float> got_o(o.size()), got_lse(lse.size());
  cudaMemcpy(got_o.data(), d_o, o.size() * 4, cudaMemcpyDeviceToHost);
  cudaMemcpy(got_lse.data(), d_lse, lse.size() * 4, cudaMemcpyDeviceToHost);
  for (float* p : {d_o, d_ob, d_lse, d_lseb}) cudaFree(p);

  EXPECT_LE(MaxRelError(got_o, want_o), 1e-6);
  EXPECT_LE(MaxRelError(got_lse, want_lse), 1e-6);
  for (int64_t i = 0; i < rows; i += 35) EXPECT_EQ(got_lse[i], -INFINITY);
}

}  // namespace
}  // namespace ringattn::cuda
