#include "core/cu_seqlens.h"

#include "absl/strings/str_cat.h"

namespace ringattn {

absl::Status ValidateCuSeqlens(absl::Span<const int64_t> cu_seqlens, int64_t total_tokens) {
  if (cu_seqlens.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cu_seqlens has ", cu_seqlens.size(), " entries; expected at least 2 ([0, ..., total])"));
  }
  if (cu_seqlens.front() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cu_seqlens[0] is ", cu_seqlens.front(), "; expected 0"));
  }
  for (size_t i = 1; i < cu_seqlens.size(); ++i) {
    if (cu_seqlens[i] < cu_seqlens[i - 1]) {
      return absl::InvalidArgumentError(
          absl::StrCat("cu_seqlens[", i, "] = ", cu_seqlens[i], " is less than cu_seqlens[", i - 1,
                       "] = ", cu_seqlens[i - 1], "; expected non-decreasing"));
    }
  }
  if (cu_seqlens.back() != total_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("cu_seqlens ends at ", cu_seqlens.back(),
                                                   "; expected the total token count ",
                                                   total_tokens));
  }
  return absl::OkStatus();
}

std::vector<int32_t> DocumentIds(absl::Span<const int64_t> cu_seqlens) {
  std::vector<int32_t> ids(cu_seqlens.empty() ? 0 : cu_seqlens.back());
  for (size_t d = 0; d + 1 < cu_seqlens.size(); ++d) {
    for (int64_t p = cu_seqlens[d]; p < cu_seqlens[d + 1]; ++p) {
      ids[p] = static_cast<int32_t>(d);
    }
  }
  return ids;
}

}  // namespace ringattn
