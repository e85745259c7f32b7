// Mask rules over global token positions.
//
// Key position k may be attended by query position q (0-based positions in
// one batch row) iff all of these hold:
//   band:      q + min_delta <= k <= q + max_delta, where, as in
//              FlashAttention 2.1+, the diagonal is aligned to the bottom
//              right: offset = seqlen_k - seqlen_q, min_delta = offset -
//              window_left, max_delta = offset + window_right, and causal
//              means window_right = 0. A window of -1 is unbounded.
//   documents: q and k lie in the same document of cu_seqlens (varlen; q and
//              k then share one packing, so the offset is 0).
//   padding:   k < key_lengths[batch] (keys past the valid length are
//              padding; the band keeps its alignment to seqlen_k).
// A query row with no allowed key has LSE = -inf and output 0.
#ifndef RINGATTN_CORE_MASK_H_
#define RINGATTN_CORE_MASK_H_

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace ringattn {

struct MaskSpec {
  bool causal = false;
  int64_t window_left = -1;   // -1: unbounded
  int64_t window_right = -1;  // -1: unbounded (0 when causal)
  // Documents of a packed (varlen) sequence; empty: none. Varlen inputs have
  // batch 1 and seqlen_q == seqlen_k == cu_seqlens.back().
  std::vector<int64_t> cu_seqlens;
  // Valid key length per batch row; empty: every key is valid.
  std::vector<int64_t> key_lengths;
};

class Mask {
 public:
  // A delta beyond any position: the band's bound when a window is -1.
  static constexpr int64_t kUnbounded = std::numeric_limits<int64_t>::max() / 4;

  // Validates `spec` for the given shape and precomputes the rule.
  // Errors: InvalidArgument for a window below -1, key_lengths of the wrong
  // size or outside [0, seqlen_k], invalid cu_seqlens (ValidateCuSeqlens), or
  // varlen with batch != 1 or seqlen_q != seqlen_k.
  static absl::StatusOr<Mask> Create(const MaskSpec& spec, int64_t batch, int64_t seqlen_q,
                                     int64_t seqlen_k);

  // Whether query position `q` may attend key position `k` in batch row `b`.
  bool Allowed(int64_t b, int64_t q, int64_t k) const {
    const int64_t delta = k - q;
    if (delta < min_delta_ || delta > max_delta_) return false;
    if (k >= KeyLimit(b)) return false;
    if (cu_seqlens_.empty()) return true;
    const auto [doc_begin, doc_end] = DocumentBounds(q);
    return k >= doc_begin && k < doc_end;
  }

  // Bounds of k - q; +-kUnbounded when the window is unbounded.
  int64_t min_delta() const { return min_delta_; }
  int64_t max_delta() const { return max_delta_; }
  // Keys at positions >= KeyLimit(b) are padding in batch row b.
  int64_t KeyLimit(int64_t b) const { return key_lengths_.empty() ? seqlen_k_ : key_lengths_[b]; }
  // The largest KeyLimit over batch rows [begin, end).
  int64_t MaxKeyLimit(int64_t batch_begin, int64_t batch_end) const;

  // The positions [first, second) of the document holding `pos`; the whole
  // key range [0, seqlen_k) when there are no documents.
  std::pair<int64_t, int64_t> DocumentBounds(int64_t pos) const {
    if (cu_seqlens_.empty()) return {0, seqlen_k_};
    // O(log documents), no per-token table: a long sequence costs nothing.
    const auto end = std::upper_bound(cu_seqlens_.begin() + 1, cu_seqlens_.end(), pos);
    return {*(end - 1), *end};
  }

  bool has_documents() const { return !cu_seqlens_.empty(); }
  // Whether batch rows differ (key padding); otherwise every row allows
  // the same pairs.
  bool has_key_lengths() const { return !key_lengths_.empty(); }
  absl::Span<const int64_t> cu_seqlens() const { return cu_seqlens_; }
  int64_t batch() const { return batch_; }
  int64_t seqlen_q() const { return seqlen_q_; }
  int64_t seqlen_k() const { return seqlen_k_; }
  const MaskSpec& spec() const { return spec_; }
  // E.g. "causal, window (256, 0), 3 documents".
  std::string DebugString() const;

 private:
  Mask() = default;

  MaskSpec spec_;
  int64_t batch_ = 0;
  int64_t seqlen_q_ = 0;
  int64_t seqlen_k_ = 0;
  int64_t min_delta_ = -kUnbounded;
  int64_t max_delta_ = kUnbounded;
  std::vector<int64_t> cu_seqlens_;
  std::vector<int64_t> key_lengths_;
};

}  // namespace ringattn

#endif  // RINGATTN_CORE_MASK_H_
