// LaunchBackwardDelta against the sum in double (needs a GPU; skips
// without one).
#include "cuda/backward_delta.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/dtype.h"
#include "core/dtype_convert.h"
#include "cuda/device.h"
#include "cuda/device_test_util.h"
#include "cuda/element_type.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace ringattn::cuda {
namespace {

using ::ringattn::cuda::testing::ToDevice;
using ::ringattn::cuda::testing::ToHost;
using ::ringattn::testing::RandomNormal;

// D = rowsum(dO * O) for every pair of dtypes, head dims whose rows load 8,
// 4, 2 or 1 elements at a time (32 down to 1 lanes per row), buffers one
// element off their alignment (single-element loads; with zeros), and a row count that
// leaves a partial chunk of 32 rows, against the sum in double of the same
// rounded inputs; the zeros it writes beside (the backward's dQ, fp32, laid
// out like dout, as far off its alignment) cover that layout exactly: every
// element 0, the one before it untouched.
TEST(BackwardDeltaTest, EveryDtypePairHeadDimAndAlignmentMatchesTheSumInDouble) {
  if (absl::StatusOr<int> n = DeviceCount(); !n.ok()) {
    GTEST_SKIP() << "needs a GPU: " << n.status().message();
  }
  const int64_t batch = 3, rows = 37, heads = 3;  // chunks of 32 and 5 rows
  const DType dtypes[] = {DType::kFloat16, DType::kBFloat16, DType::kFloat32};
  for (const int64_t head_dim : {256, 128, 64, 8, 6, 5}) {
    for (const DType dout_type : dtypes) {
      for (const DType o_type : dtypes) {
        for (const auto& [offset, with_zeros] : {std::pair{0, false}, {0, true}, {1, true}}) {
          SCOPED_TRACE(absl::StrCat("d", head_dim, " dout ", DTypeName(dout_type), " o ",
                                    DTypeName(o_type), " offset ", offset,
                                    with_zeros ? " with zeros" : ""));
          const int64_t n = batch * rows * heads * head_dim;
          const auto rounded = [&](DType t, uint32_t seed) {
            const std::vector<double> x = RandomNormal<double>(n + offset, seed);
            return DecodeAll<double>(t, EncodeAll<double>(t, absl::MakeConstSpan(x)));
          };
          const std::vector<double> dout = rounded(dout_type, 7), o = rounded(o_type, 8);
          uint8_t* d_dout = ToDevice(EncodeAll<double>(dout_type, absl::MakeConstSpan(dout)));
          uint8_t* d_o = ToDevice(EncodeAll<double>(o_type, absl::MakeConstSpan(o)));
          float* d_delta = ToDevice(std::vector<float>(batch * heads * rows));
          float* d_zeros = ToDevice(std::vector<float>(n + offset, 7.0f));
          ASSERT_EQ(
              LaunchBackwardDelta(
                  ElementTypeOf(dout_type).value(), d_dout + offset * DTypeBytes(dout_type),
                  ElementTypeOf(o_type).value(), d_o + offset * DTypeBytes(o_type), d_delta, batch,
                  rows, heads, head_dim, nullptr, with_zeros ? d_zeros + offset : nullptr),
              cudaSuccess);
          const std::vector<float> delta = ToHost(d_delta, batch * heads * rows);
          const std::vector<float> zeros = ToHost(d_zeros, n + offset);
          if (offset == 1) {
            EXPECT_EQ(zeros[0], 7.0f);
          }
          EXPECT_EQ(std::count(zeros.begin() + offset, zeros.end(), 0.0f), with_zeros ? n : 0);
          double worst = 0;
          for (int64_t b = 0; b < batch; ++b) {
            for (int64_t t = 0; t < rows; ++t) {
              for (int64_t h = 0; h < heads; ++h) {
                const int64_t first = offset + ((b * rows + t) * heads + h) * head_dim;
                double want = 0, magnitude = 0;
                for (int64_t c = 0; c < head_dim; ++c) {
                  want += dout[first + c] * o[first + c];
                  magnitude += std::abs(dout[first + c] * o[first + c]);
                }
                const double got = delta[(b * heads + h) * rows + t];
                worst = std::max(worst, std::abs(got - want) / magnitude);
              }
            }
          }
          EXPECT_LE(worst, 1e-5);  // fp32 products and sums of exactly representable inputs
          cudaFree(d_dout);
          cudaFree(d_o);
          cudaFree(d_delta);
          cudaFree(d_zeros);
        }
      }
    }
  }
}

}  // namespace
}  // namespace ringattn::cuda
