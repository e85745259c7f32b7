// LaunchCopyRows against the rows copied on the host (needs a GPU; skips
// without one).
#include "cuda/ring_kernels.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cuda/device.h"
#include "gtest/gtest.h"

namespace ringattn::cuda {
namespace {

// Rows of `width` bytes out of rows `src_pitch` apart into rows
// `dst_pitch` apart, at byte offsets into the allocations: 16-byte aligned
// (the kernel) and not (cudaMemcpy2DAsync), a width below and equal to the
// pitch, bytes between the destination's rows left as they were.
TEST(RingKernelsTest, CopyRowsMatchesTheHostCopyAlignedOrNot) {
  if (absl::StatusOr<int> n = DeviceCount(); !n.ok()) {
    GTEST_SKIP() << "needs a GPU: " << n.status().message();
  }
  struct Case {
    int64_t width, src_pitch, dst_pitch, rows, src_offset, dst_offset;
  };
  for (const Case& c : {Case{48, 96, 64, 37, 0, 0}, Case{256, 256, 256, 9, 16, 32},
                        Case{48, 96, 64, 37, 4, 0}, Case{30, 40, 36, 5, 2, 6}}) {
    SCOPED_TRACE(absl::StrCat("width ", c.width, " pitches ", c.src_pitch, "/", c.dst_pitch,
                              " offsets ", c.src_offset, "/", c.dst_offset));
    const int64_t src_bytes = c.src_offset + c.rows * c.src_pitch;
    const int64_t dst_bytes = c.dst_offset + c.rows * c.dst_pitch;
    std::vector<uint8_t> src(src_bytes), dst(dst_bytes, 0xEE);
    for (int64_t i = 0; i < src_bytes; ++i) src[i] = static_cast<uint8_t>(i * 7 + 3);
    uint8_t *d_src = nullptr, *d_dst = nullptr;
    ASSERT_EQ(cudaMalloc(&d_src, src_bytes), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&d_dst, dst_bytes), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(d_src, src.data(), src_bytes, cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(d_dst, dst.data(), dst_bytes, cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(LaunchCopyRows(d_dst + c.dst_offset, c.dst_pitch, d_src + c.src_offset, c.src_pitch,
                             c.width, c.rows, nullptr),
              cudaSuccess);
    std::vector<uint8_t> got(dst_bytes);
    ASSERT_EQ(cudaMemcpy(got.data(), d_dst, dst_bytes, cudaMemcpyDeviceToHost), cudaSuccess);
    for (int64_t r = 0; r < c.rows; ++r) {
      for (int64_t x = 0; x < c.width; ++x) {
        dst[c.dst_offset + r * c.dst_pitch + x] = src[c.src_offset + r * c.src_pitch + x];
      }
    }
    EXPECT_EQ(got, dst);
    cudaFree(d_src);
    cudaFree(d_dst);
  }
}

}  // namespace
}  // namespace ringattn::cuda
