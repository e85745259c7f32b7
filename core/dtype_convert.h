// Conversions between stored element types (float32/64, float16, bfloat16)
// and a compute type (float or double). Narrowing rounds to nearest even;
// NaN stays NaN (quiet), overflow becomes infinity.
#ifndef RINGATTN_CORE_DTYPE_CONVERT_H_
#define RINGATTN_CORE_DTYPE_CONVERT_H_

#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/types/span.h"
#include "core/dtype.h"

namespace ringattn {

// IEEE binary16 and bfloat16 bit patterns to and from float.
float HalfToFloat(uint16_t bits);
uint16_t FloatToHalf(float value);
float BFloat16ToFloat(uint16_t bits);
uint16_t FloatToBFloat16(float value);

// Element i of `src` (of `dtype`) as C.
template <typename C>
C LoadElement(DType dtype, const uint8_t* src, int64_t i) {
  switch (dtype) {
    case DType::kFloat32: {
      float x;
      std::memcpy(&x, src + 4 * i, 4);
      return static_cast<C>(x);
    }
    case DType::kFloat64: {
      double x;
      std::memcpy(&x, src + 8 * i, 8);
      return static_cast<C>(x);
    }
    case DType::kFloat16:
    case DType::kBFloat16: {
      uint16_t bits;
      std::memcpy(&bits, src + 2 * i, 2);
      return static_cast<C>(dtype == DType::kFloat16 ? HalfToFloat(bits) : BFloat16ToFloat(bits));
    }
  }
  return C(0);
}

// Stores `value` as element i of `dst` (of `dtype`); 16-bit types go
// through float first.
template <typename C>
void StoreElement(DType dtype, C value, uint8_t* dst, int64_t i) {
  switch (dtype) {
    case DType::kFloat32: {
      const float x = static_cast<float>(value);
      std::memcpy(dst + 4 * i, &x, 4);
      return;
    }
    case DType::kFloat64: {
      const double x = static_cast<double>(value);
      std::memcpy(dst + 8 * i, &x, 8);
      return;
    }
    case DType::kFloat16:
    case DType::kBFloat16: {
      const float x = static_cast<float>(value);
      const uint16_t bits = dtype == DType::kFloat16 ? FloatToHalf(x) : FloatToBFloat16(x);
      std::memcpy(dst + 2 * i, &bits, 2);
      return;
    }
  }
}

// Every element of `bytes` (of `dtype`) as C.
template <typename C>
std::vector<C> DecodeAll(DType dtype, absl::Span<const uint8_t> bytes) {
  std::vector<C> out(bytes.size() / DTypeBytes(dtype));
  for (size_t i = 0; i < out.size(); ++i) out[i] = LoadElement<C>(dtype, bytes.data(), i);
  return out;
}

// `values` stored as `dtype`.
template <typename C>
std::vector<uint8_t> EncodeAll(DType dtype, absl::Span<const C> values) {
  std::vector<uint8_t> out(values.size() * DTypeBytes(dtype));
  for (size_t i = 0; i < values.size(); ++i) StoreElement<C>(dtype, values[i], out.data(), i);
  return out;
}

}  // namespace ringattn

#endif  // RINGATTN_CORE_DTYPE_CONVERT_H_
