#include "core/dtype_convert.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "Eigen/Core"
#include "absl/base/casts.h"
#include "gtest/gtest.h"

namespace ringattn {
namespace {

uint32_t Bits(float f) { return absl::bit_cast<uint32_t>(f); }
float FromBits(uint32_t u) { return absl::bit_cast<float>(u); }
uint16_t EigenHalf(float f) { return Eigen::numext::bit_cast<uint16_t>(Eigen::half(f)); }
uint16_t EigenBf16(float f) { return Eigen::numext::bit_cast<uint16_t>(Eigen::bfloat16(f)); }

TEST(DTypeConvertTest, EveryHalfWidensLikeEigen) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t bits = static_cast<uint16_t>(h);
    const float want = static_cast<float>(Eigen::numext::bit_cast<Eigen::half>(bits));
    const float got = HalfToFloat(bits);
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << h;
    } else {
      ASSERT_EQ(Bits(got), Bits(want)) << "half 0x" << std::hex << h;
    }
    ASSERT_EQ(Bits(BFloat16ToFloat(bits)), static_cast<uint32_t>(h) << 16);
  }
}

// Every float whose bits are a multiple of 251 (17 M of them, every
// exponent), and every float within 4 ulps of a value halfway between two
// halves or two bfloat16s (where rounding decides).
TEST(DTypeConvertTest, FloatsNarrowLikeEigen) {
  const auto check = [](uint32_t u) {
    const float f = FromBits(u);
    if (std::isnan(f)) {
      ASSERT_EQ(FloatToHalf(f) & 0x7c00, 0x7c00);
      ASSERT_NE(FloatToHalf(f) & 0x3ff, 0);
      ASSERT_TRUE(std::isnan(BFloat16ToFloat(FloatToBFloat16(f))));
      return;
    }
    ASSERT_EQ(FloatToHalf(f), EigenHalf(f)) << "float bits 0x" << std::hex << u;
    ASSERT_EQ(FloatToBFloat16(f), EigenBf16(f)) << "float bits 0x" << std::hex << u;
  };
  for (uint64_t u = 0; u <= 0xffffffffu; u += 251) check(static_cast<uint32_t>(u));
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t bits = static_cast<uint16_t>(h);
    const float lo = HalfToFloat(bits);
    if (!std::isfinite(lo)) continue;
    const uint16_t next = static_cast<uint16_t>(h + 1);
    const float hi = HalfToFloat(next);
    if (!std::isfinite(hi) || std::signbit(lo) != std::signbit(hi)) continue;
    const uint32_t mid = Bits((lo + hi) / 2);
    for (uint32_t d = 0; d <= 8; ++d) check(mid - 4 + d);
  }
  for (uint32_t b = 0; b < 65536; ++b) {
    const uint32_t mid = (b << 16) | 0x8000u;
    for (uint32_t d = 0; d <= 8; ++d) check(mid - 4 + d);
  }
}

TEST(DTypeConvertTest, RoundTripsThroughBytes) {
  const std::vector<double> values = {0.0, -0.0, 1.0, -2.5, 65504.0, 1e-7, 3.14159};
  for (DType dtype : {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16}) {
    const std::vector<uint8_t> bytes = EncodeAll<double>(dtype, values);
    ASSERT_EQ(bytes.size(), values.size() * DTypeBytes(dtype));
    const std::vector<double> back = DecodeAll<double>(dtype, bytes);
    for (size_t i = 0; i < values.size(); ++i) {
      const double tolerance = dtype == DType::kFloat64   ? 0
                               : dtype == DType::kFloat32 ? 1e-7
                               : dtype == DType::kFloat16 ? 1e-3
                                                          : 8e-3;
      EXPECT_LE(std::abs(back[i] - values[i]), tolerance * std::abs(values[i]) + 6e-8)
          << DTypeName(dtype) << " " << values[i];
    }
  }
}

}  // namespace
}  // namespace ringattn
