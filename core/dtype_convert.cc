#include "core/dtype_convert.h"

#include "absl/base/casts.h"

namespace ringattn {
namespace {

uint32_t Bits(float f) { return absl::bit_cast<uint32_t>(f); }
float FromBits(uint32_t u) { return absl::bit_cast<float>(u); }

}  // namespace

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in float
    const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
    return FromBits(sign | Bits(magnitude));
  }
  if (exponent == 31) return FromBits(sign | 0x7f800000u | (mantissa << 13));  // inf, NaN
  return FromBits(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

uint16_t FloatToHalf(float value) {
  uint32_t u = Bits(value);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000);
  u &= 0x7fffffffu;
  if (u >= 0x47800000u) {  // >= 65536 (or inf, NaN): infinity, or a quiet NaN
    return sign | (u > 0x7f800000u ? 0x7e00 : 0x7c00);
  }
  if (u < 0x38800000u) {  // below 2^-14: a subnormal half or zero
    // Adding 0.5 aligns the half's 10 mantissa bits at the bottom of the
    // float's, rounded to nearest even by the float addition itself.
    const float aligned = FromBits(u) + 0.5f;
    return sign | static_cast<uint16_t>(Bits(aligned) - Bits(0.5f));
  }
  // Normal: rebias the exponent, round to nearest even on the 13 dropped
  // bits (a carry into the exponent is the right result, up to infinity).
  const uint32_t odd = (u >> 13) & 1;
  u += (static_cast<uint32_t>(15 - 127) << 23) + 0xfffu + odd;
  return sign | static_cast<uint16_t>(u >> 13);
}

float BFloat16ToFloat(uint16_t bits) { return FromBits(static_cast<uint32_t>(bits) << 16); }

uint16_t FloatToBFloat16(float value) {
  const uint32_t u = Bits(value);
  if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN: quiet, sign kept
    return static_cast<uint16_t>((u >> 16) | 0x40);
  }
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

}  // namespace ringattn
