// Packed variable-length sequences ("varlen"), as FlashAttention gives them:
// cu_seqlens = [0, len_0, len_0 + len_1, ..., total], one document per pair.
#ifndef RINGATTN_CORE_CU_SEQLENS_H_
#define RINGATTN_CORE_CU_SEQLENS_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace ringattn {

// Checks that cu_seqlens has at least two entries, starts at 0, never
// decreases and ends at `total_tokens`.
// Errors: InvalidArgument naming the offending index, value and expectation.
absl::Status ValidateCuSeqlens(absl::Span<const int64_t> cu_seqlens, int64_t total_tokens);

// Returns, for every packed position, the index of its document.
// Precondition: ValidateCuSeqlens(cu_seqlens, cu_seqlens.back()) is ok.
std::vector<int32_t> DocumentIds(absl::Span<const int64_t> cu_seqlens);

}  // namespace ringattn

#endif  // RINGATTN_CORE_CU_SEQLENS_H_
