// Sequence layouts: which tokens each rank holds.
//
// The world of W ranks is split into W / R independent rings of R ranks
// (R = ring_size, lucidrains' "ring size < world size"): ring g holds batch
// rows [g * B/(W/R), (g+1) * B/(W/R)) and shards the sequence over its R
// ranks. Within a ring, with S tokens (per batch row; the packed total for
// varlen) and ring rank r:
//   ring    contiguous: r holds [r*S/R, (r+1)*S/R)
//   zigzag  2R chunks of S/(2R): r holds chunk r and chunk 2R-1-r
//   stripe  stripes of `stripe_width` tokens dealt round robin: token i is on
//           rank (i / stripe_width) mod R
//   llama3  contiguous like ring; K/V are all-gathered (per group of
//           kv_heads_per_group heads) instead of passed around the ring
//   balanced  packed documents (the whole sequence is one without
//           cu_seqlens): the longest documents split as zigzag does, the
//           others kept whole, each on the rank with the least causal work
//           so far (largest first), with as few split as keep every rank's
//           work within 1 % of the mean (Layout::SplitDocuments); K/V pass
//           around the ring
// Varlen (cu_seqlens): ring and zigzag split every document as above, and
// llama3 the packed sequence, into pieces of any length: documents of any
// length >= 0 and any total; shards differ by a few tokens and are padded
// to the longest (Layout::local_seqlen).
#ifndef RINGATTN_CORE_LAYOUT_H_
#define RINGATTN_CORE_LAYOUT_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/position_run.h"
#include "core/shapes.h"
#include "core/status_macros.h"

namespace ringattn {

enum class LayoutKind { kRing, kZigzag, kStripe, kLlama3, kBalanced };

// "ring", "zigzag", "stripe", "llama3", "balanced".
absl::string_view LayoutKindName(LayoutKind kind);
// Errors: InvalidArgument listing the known names.
absl::StatusOr<LayoutKind> ParseLayoutKind(absl::string_view name);

struct LayoutSpec {
  LayoutKind kind = LayoutKind::kRing;
  int world = 1;
  int ring_size = 0;               // 0: one ring over the whole world
  int64_t stripe_width = 1;        // kStripe: tokens per stripe
  int64_t kv_heads_per_group = 0;  // kLlama3: heads all-gathered at once; 0: all
};

// Local rows [row_begin, row_begin + positions.length) of a rank hold the
// global positions `positions`.
struct RankSlice {
  int64_t row_begin = 0;
  PositionRun positions;
};

// The largest world a layout takes (a thread per rank for CPU runs and the
// simulator; plans print W^2 rows).
inline constexpr int kMaxWorld = 8192;

// One rank's local sizes: batch rows [batch_offset, batch_offset + batch)
// of the global batch, `rows` tokens of each, and the heads of the problem.
// What every backend sizes its buffers from (Layout::RankShapeOf).
struct RankShape {
  int64_t batch = 0, batch_offset = 0, rows = 0;
  int64_t num_heads = 0, num_kv_heads = 0, head_dim = 0;

  // Q or O: (batch, rows, num_heads, head_dim).
  int64_t q_elements() const { return batch * rows * num_heads * head_dim; }
  // K or V of all kv heads over `shards` shards: (batch, shards * rows,
  // num_kv_heads, head_dim).
  int64_t kv_elements(int64_t shards = 1) const {
    return batch * shards * rows * num_kv_heads * head_dim;
  }
  // The packed K and V of kv heads [head_begin, head_end) (what travels).
  int64_t packed_kv_elements(int64_t head_begin, int64_t head_end) const {
    return 2 * batch * rows * (head_end - head_begin) * head_dim;
  }
  // LSE or D: (batch, num_heads, rows).
  int64_t stat_elements() const { return batch * num_heads * rows; }
};

class Layout {
 public:
  // Errors: InvalidArgument if world < 1, ring_size does not divide world,
  // batch is not divisible by the number of rings, seqlen (without
  // cu_seqlens) is not divisible by what the layout needs, stripe_width < 1,
  // kv_heads_per_group < 0, cu_seqlens is invalid, or varlen is asked of
  // the stripe layout.
  static absl::StatusOr<Layout> Create(const LayoutSpec& spec, int64_t batch, int64_t seqlen,
                                       absl::Span<const int64_t> cu_seqlens = {});

  const LayoutSpec& spec() const { return spec_; }
  LayoutKind kind() const { return spec_.kind; }
  int world() const { return spec_.world; }
  int ring_size() const { return ring_size_; }
  int num_rings() const { return spec_.world / ring_size_; }
  bool varlen() const { return !cu_seqlens_.empty(); }
  absl::Span<const int64_t> cu_seqlens() const { return cu_seqlens_; }
  int64_t batch() const { return batch_; }
  int64_t seqlen() const { return seqlen_; }
  // Rows per batch row of every rank's shard: seqlen / ring_size, or for
  // varlen the most tokens any ring rank holds (documents of any length
  // split into pieces differing by a token; a rank with fewer tokens has
  // padding rows at the end of its shard, which no task, input or output
  // touches).
  int64_t local_seqlen() const { return local_seqlen_; }
  // Balanced layouts that kept every document whole on one rank: a
  // document mask then allows no pair across ranks, and the ring needs no
  // step beyond the first (Schedule::num_steps).
  bool documents_local() const { return documents_local_; }
  // Batch rows on every rank.
  int64_t local_batch() const { return batch_ / num_rings(); }

  int RingOf(int rank) const { return rank / ring_size_; }
  int RingRank(int rank) const { return rank % ring_size_; }
  int RankOf(int ring, int ring_rank) const { return ring * ring_size_ + ring_rank; }
  // Global batch rows [first, second) held by `rank`.
  std::pair<int64_t, int64_t> BatchRange(int rank) const;
  // `rank`'s local sizes for a problem of `shape`.
  RankShape RankShapeOf(int rank, const AttentionShape& shape) const {
    return {local_batch(),   BatchRange(rank).first, local_seqlen(),
            shape.num_heads, shape.num_kv_heads,     shape.head_dim};
  }

  // Checks rank is in [0, world). Errors: InvalidArgument naming both.
  absl::Status CheckRank(int rank) const;

  // Returns the global token positions held by `rank`, in local order.
  // Errors: InvalidArgument if rank is outside [0, world).
  absl::StatusOr<std::vector<RankSlice>> Slices(int rank) const;

  // The slices of ring rank `ring_rank`. Precondition: 0 <= ring_rank <
  // ring_size().
  const std::vector<RankSlice>& RingRankSlices(int ring_rank) const { return slices_[ring_rank]; }

  // Returns the global position of every local row of `rank` (position ids
  // for rotary embeddings; for varlen these are packed positions, and the
  // position within its document is position - cu_seqlens[doc]); -1 for
  // a padding row.
  // Errors: InvalidArgument if rank is outside [0, world).
  absl::StatusOr<std::vector<int64_t>> PositionIds(int rank) const;

  struct Location {
    int ring_rank = 0;
    int64_t local_index = 0;
  };
  // Returns the ring rank holding `position` and its local row there.
  // Errors: InvalidArgument if position is outside [0, seqlen).
  absl::StatusOr<Location> Locate(int64_t position) const;

  // Splits a (batch, seqlen, ...) tensor with `token_elements` elements per
  // token into one (local_batch, local_seqlen, ...) tensor per rank.
  // Errors: InvalidArgument if the size is not batch*seqlen*token_elements.
  template <typename T>
  absl::StatusOr<std::vector<std::vector<T>>> Shard(absl::Span<const T> global,
                                                    int64_t token_elements) const;

  // The inverse of Shard. Errors: InvalidArgument if there are not `world`
  // shards of local_batch*local_seqlen*token_elements elements.
  template <typename T>
  absl::StatusOr<std::vector<T>> Unshard(const std::vector<std::vector<T>>& shards,
                                         int64_t token_elements) const;

  // E.g. "zigzag, world 8 (1 ring of 8), seqlen 8192".
  std::string DebugString() const;

 private:
  Layout() = default;

  // Calls copy(global_token, local_token) for every token held by `rank`,
  // where tokens index (batch, position) pairs of the global tensor and of
  // the rank's local tensor. Precondition: rank is valid.
  template <typename Fn>
  void ForEachToken(int rank, Fn&& copy) const;

  // Varlen: the slices of every ring rank and local_seqlen_ (any lengths).
  void SplitDocuments();

  absl::Status CheckShardSize(const char* what, size_t size, int64_t batch, int64_t seqlen,
                              int64_t token_elements) const;

  LayoutSpec spec_;
  int ring_size_ = 1;
  int64_t batch_ = 0;
  int64_t seqlen_ = 0;
  int64_t local_seqlen_ = 0;
  bool documents_local_ = false;
  std::vector<int64_t> cu_seqlens_;
  std::vector<std::vector<RankSlice>> slices_;  // per ring rank
};

template <typename Fn>
void Layout::ForEachToken(int rank, Fn&& copy) const {
  const auto [batch_begin, batch_end] = BatchRange(rank);
  const int64_t local_seqlen = this->local_seqlen();
  for (int64_t b = batch_begin; b < batch_end; ++b) {
    for (const RankSlice& slice : slices_[RingRank(rank)]) {
      for (int64_t i = 0; i < slice.positions.length; ++i) {
        copy(b * seqlen_ + slice.positions.At(i),
             (b - batch_begin) * local_seqlen + slice.row_begin + i);
      }
    }
  }
}

template <typename T>
absl::StatusOr<std::vector<std::vector<T>>> Layout::Shard(absl::Span<const T> global,
                                                          int64_t token_elements) const {
  RETURN_IF_ERROR(CheckShardSize("global tensor", global.size(), batch_, seqlen_, token_elements));
  std::vector<std::vector<T>> shards(world());
  for (int rank = 0; rank < world(); ++rank) {
    shards[rank].resize(local_batch() * local_seqlen() * token_elements);
    ForEachToken(rank, [&](int64_t global_token, int64_t local_token) {
      std::memcpy(&shards[rank][local_token * token_elements],
                  &global[global_token * token_elements], token_elements * sizeof(T));
    });
  }
  return shards;
}

template <typename T>
absl::StatusOr<std::vector<T>> Layout::Unshard(const std::vector<std::vector<T>>& shards,
                                               int64_t token_elements) const {
  if (static_cast<int>(shards.size()) != world()) {
    return absl::InvalidArgumentError(
        absl::StrCat("got ", shards.size(), " shards; expected one per rank (", world(), ")"));
  }
  for (const auto& shard : shards) {
    RETURN_IF_ERROR(
        CheckShardSize("shard", shard.size(), local_batch(), local_seqlen(), token_elements));
  }
  std::vector<T> global(batch_ * seqlen_ * token_elements);
  for (int rank = 0; rank < world(); ++rank) {
    ForEachToken(rank, [&](int64_t global_token, int64_t local_token) {
      std::memcpy(&global[global_token * token_elements],
                  &shards[rank][local_token * token_elements], token_elements * sizeof(T));
    });
  }
  return global;
}

}  // namespace ringattn

#endif  // RINGATTN_CORE_LAYOUT_H_
