// Element types of tensors that cross the API and the ring.
#ifndef RINGATTN_CORE_DTYPE_H_
#define RINGATTN_CORE_DTYPE_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ringattn {

enum class DType { kFloat32, kFloat64, kFloat16, kBFloat16 };

int64_t DTypeBytes(DType dtype);
// "float32", "float64", "float16", "bfloat16".
absl::string_view DTypeName(DType dtype);
// Errors: InvalidArgument listing the known names.
absl::StatusOr<DType> ParseDType(absl::string_view name);

}  // namespace ringattn

#endif  // RINGATTN_CORE_DTYPE_H_
