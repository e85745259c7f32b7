// Conversions between stored element types (float32/64, float16, bfloat16)
// and the compute type (float or double). Narrowing rounds to nearest even.
#ifndef RINGATTN_CPU_REFERENCE_INTERNAL_CONVERT_H_
#define RINGATTN_CPU_REFERENCE_INTERNAL_CONVERT_H_

#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/types/span.h"

#include "Eigen/Core"
#include "core/dtype.h"

namespace ringattn::cpu::internal {

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
    case DType::kFloat16: {
      Eigen::half x;
      std::memcpy(&x, src + 2 * i, 2);
      return static_cast<C>(static_cast<float>(x));
    }
    case DType::kBFloat16: {
      Eigen::bfloat16 x;
      std::memcpy(&x, src + 2 * i, 2);
      return static_cast<C>(static_cast<float>(x));
    }
  }
  return C(0);
}

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
    case DType::kFloat16: {
      const Eigen::half x(static_cast<float>(value));
      std::memcpy(dst + 2 * i, &x, 2);
      return;
    }
    case DType::kBFloat16: {
      const Eigen::bfloat16 x(static_cast<float>(value));
      std::memcpy(dst + 2 * i, &x, 2);
      return;
    }
  }
}

// Every element of `bytes` (of `dtype`) as C.
template <typename C>
std::vector<C> DecodeAll(DType dtype, absl::Span<const uint8_t> bytes) {
  std::vector<C> out(bytes.size() / DTypeBytes(dtype));
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = LoadElement<C>(dtype, bytes.data(), i);
  }
  return out;
}

// `values` stored as `dtype`.
template <typename C>
std::vector<uint8_t> EncodeAll(DType dtype, absl::Span<const C> values) {
  std::vector<uint8_t> out(values.size() * DTypeBytes(dtype));
  for (size_t i = 0; i < values.size(); ++i) {
    StoreElement<C>(dtype, values[i], out.data(), i);
  }
  return out;
}

}  // namespace ringattn::cpu::internal

#endif  // RINGATTN_CPU_REFERENCE_INTERNAL_CONVERT_H_
