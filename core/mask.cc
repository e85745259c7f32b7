#include "core/mask.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/cu_seqlens.h"
#include "core/status_macros.h"

namespace ringattn {

absl::StatusOr<Mask> Mask::Create(const MaskSpec& spec, int64_t batch, int64_t seqlen_q,
                                  int64_t seqlen_k) {
  if (batch <= 0 || seqlen_q <= 0 || seqlen_k <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("mask needs positive sizes; got batch ", batch,
                                                   ", seqlen_q ", seqlen_q, ", seqlen_k ",
                                                   seqlen_k));
  }
  for (const auto& [name, value] :
       {std::pair{"window_left", spec.window_left}, std::pair{"window_right", spec.window_right}}) {
    if (value < -1) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " is ", value, "; expected >= 0, or -1 for unbounded"));
    }
  }
  Mask mask;
  mask.spec_ = spec;
  mask.batch_ = batch;
  mask.seqlen_q_ = seqlen_q;
  mask.seqlen_k_ = seqlen_k;

  if (!spec.cu_seqlens.empty()) {
    if (batch != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("varlen (cu_seqlens) packs documents into batch 1; got batch ", batch));
    }
    if (seqlen_q != seqlen_k) {
      return absl::InvalidArgumentError(absl::StrCat(
          "varlen (cu_seqlens) needs seqlen_q == seqlen_k; got ", seqlen_q, " and ", seqlen_k));
    }
    RETURN_IF_ERROR(ValidateCuSeqlens(spec.cu_seqlens, seqlen_q));
    mask.cu_seqlens_ = spec.cu_seqlens;
  }
  if (!spec.key_lengths.empty()) {
    if (static_cast<int64_t>(spec.key_lengths.size()) != batch) {
      return absl::InvalidArgumentError(absl::StrCat("key_lengths has ", spec.key_lengths.size(),
                                                     " entries; expected one per batch row (",
                                                     batch, ")"));
    }
    for (size_t b = 0; b < spec.key_lengths.size(); ++b) {
      if (spec.key_lengths[b] < 0 || spec.key_lengths[b] > seqlen_k) {
        return absl::InvalidArgumentError(
            absl::StrCat("key_lengths[", b, "] is ", spec.key_lengths[b],
                         "; expected a value in [0, seqlen_k = ", seqlen_k, "]"));
      }
    }
    mask.key_lengths_ = spec.key_lengths;
  }

  const int64_t offset = seqlen_k - seqlen_q;
  const int64_t window_right = spec.causal ? 0 : spec.window_right;
  // A window as wide as the sequence or wider bounds nothing: it is
  // unbounded (saturated, so no bound arithmetic overflows).
  const int64_t span = std::max(seqlen_q, seqlen_k);
  const auto bounded = [span](int64_t window) { return window >= 0 && window < span; };
  mask.min_delta_ = bounded(spec.window_left) ? offset - spec.window_left : -kUnbounded;
  mask.max_delta_ = bounded(window_right) ? offset + window_right : kUnbounded;
  return mask;
}

int64_t Mask::MaxKeyLimit(int64_t batch_begin, int64_t batch_end) const {
  if (key_lengths_.empty()) return seqlen_k_;
  int64_t limit = 0;
  for (int64_t b = batch_begin; b < batch_end; ++b) {
    limit = std::max(limit, key_lengths_[b]);
  }
  return limit;
}

std::string Mask::DebugString() const {
  std::string out = spec_.causal ? "causal" : "full";
  if (spec_.window_left >= 0 || (!spec_.causal && spec_.window_right >= 0)) {
    absl::StrAppend(&out, ", window (", spec_.window_left, ", ",
                    spec_.causal ? 0 : spec_.window_right, ")");
  }
  if (has_documents()) {
    absl::StrAppend(&out, ", ", cu_seqlens_.size() - 1, " documents");
  }
  if (!key_lengths_.empty()) absl::StrAppend(&out, ", key padding");
  return out;
}

}  // namespace ringattn
