#include "core/layout.h"

#include <algorithm>
#include <functional>

#include "absl/strings/str_cat.h"
#include "core/cu_seqlens.h"
#include "core/status_macros.h"

namespace ringattn {
namespace {

// The slices of ring rank `r` of a layout over [begin, begin + length) of
// the sequence, appended at local row `row`; `length` divides as needed.
void AppendSlices(LayoutKind kind, int ring_size, int64_t stripe_width, int r, int64_t begin,
                  int64_t length, int64_t row, std::vector<RankSlice>* out) {
  switch (kind) {
    case LayoutKind::kRing:
    case LayoutKind::kLlama3: {
      const int64_t piece = length / ring_size;
      out->push_back({row, PositionRun::Contiguous(begin + r * piece, piece)});
      return;
    }
    case LayoutKind::kZigzag:
    case LayoutKind::kBalanced: {  // (balanced goes through SplitDocuments)
      const int64_t chunk = length / (2 * ring_size);
      out->push_back({row, PositionRun::Contiguous(begin + r * chunk, chunk)});
      out->push_back(
          {row + chunk, PositionRun::Contiguous(begin + (2 * ring_size - 1 - r) * chunk, chunk)});
      return;
    }
    case LayoutKind::kStripe:
      out->push_back({row, PositionRun::Grouped(begin + r * stripe_width, length / ring_size,
                                                stripe_width, ring_size * stripe_width)});
      return;
  }
}

// What each piece of the sequence must divide by, and why.
int64_t Divisor(const LayoutSpec& spec, int ring_size) {
  switch (spec.kind) {
    case LayoutKind::kZigzag:
      return 2 * ring_size;
    case LayoutKind::kStripe:
      return ring_size * spec.stripe_width;
    default:
      return ring_size;
  }
}

std::string DivisorName(LayoutKind kind) {
  switch (kind) {
    case LayoutKind::kZigzag:
      return "2*ring_size";
    case LayoutKind::kStripe:
      return "ring_size*stripe_width";
    default:
      return "ring_size";
  }
}

// Causal (query, key) pairs of a document of `length` tokens: the work
// model of the balanced layout.
double CausalPairs(int64_t length) { return 0.5 * static_cast<double>(length) * (length + 1); }

// The balanced layout's choice, per document: the rank that keeps it
// whole, or -1 for one split zigzag-wise over all ranks. The k longest
// documents are split (their work lands evenly on every rank and every
// step) and the rest placed largest first on the rank with the least work
// so far (at step 0, where a rank computes on its own K/V); k is the
// smallest of 0, 1, 2, 4, ... (then all) that keeps the most loaded rank
// within 1 % of the mean.
std::vector<int> BalancedOwners(absl::Span<const int64_t> cu, int ranks) {
  const int n = static_cast<int>(cu.size()) - 1;
  std::vector<int> by_length(n);
  for (int d = 0; d < n; ++d) by_length[d] = d;
  std::stable_sort(by_length.begin(), by_length.end(),
                   [&](int a, int b) { return cu[a + 1] - cu[a] > cu[b + 1] - cu[b]; });
  double total = 0;
  for (int d = 0; d < n; ++d) total += CausalPairs(cu[d + 1] - cu[d]);
  const double mean = total / ranks;
  std::vector<int> owner(n, -1);
  const auto place = [&](int split) {  // the longest `split` split; max load / mean
    std::fill(owner.begin(), owner.end(), -1);
    double even = 0;
    for (int i = 0; i < split; ++i) even += CausalPairs(cu[by_length[i] + 1] - cu[by_length[i]]);
    // A min-heap of (load, rank); ties go to the lower rank.
    std::vector<std::pair<double, int>> heap;
    for (int r = 0; r < ranks; ++r) heap.push_back({even / ranks, r});
    std::make_heap(heap.begin(), heap.end(), std::greater<>());
    for (int i = split; i < n; ++i) {
      const int d = by_length[i];
      std::pop_heap(heap.begin(), heap.end(), std::greater<>());
      owner[d] = heap.back().second;
      heap.back().first += CausalPairs(cu[d + 1] - cu[d]);
      std::push_heap(heap.begin(), heap.end(), std::greater<>());
    }
    double most = 0;
    for (const auto& [load, r] : heap) most = std::max(most, load);
    return mean == 0 ? 1.0 : most / mean;
  };
  for (int split = 0;; split = split == 0 ? 1 : 2 * split) {
    if (split >= n) {
      std::fill(owner.begin(), owner.end(), -1);  // every document split
      return owner;
    }
    if (place(split) <= 1.01) return owner;
  }
}

}  // namespace

absl::string_view LayoutKindName(LayoutKind kind) {
  switch (kind) {
    case LayoutKind::kRing:
      return "ring";
    case LayoutKind::kZigzag:
      return "zigzag";
    case LayoutKind::kStripe:
      return "stripe";
    case LayoutKind::kLlama3:
      return "llama3";
    case LayoutKind::kBalanced:
      return "balanced";
  }
  return "unknown";
}

absl::StatusOr<LayoutKind> ParseLayoutKind(absl::string_view name) {
  for (LayoutKind kind : {LayoutKind::kRing, LayoutKind::kZigzag, LayoutKind::kStripe,
                          LayoutKind::kLlama3, LayoutKind::kBalanced}) {
    if (name == LayoutKindName(kind)) return kind;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown layout '", name, "'; expected ring, zigzag, stripe, llama3 or balanced"));
}

absl::StatusOr<Layout> Layout::Create(const LayoutSpec& spec, int64_t batch, int64_t seqlen,
                                      absl::Span<const int64_t> cu_seqlens) {
  if (spec.world < 1 || spec.world > kMaxWorld) {
    return absl::InvalidArgumentError(
        absl::StrCat("world is ", spec.world, "; expected 1 to ", kMaxWorld));
  }
  const int ring_size = spec.ring_size == 0 ? spec.world : spec.ring_size;
  if (ring_size < 1 || spec.world % ring_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat("ring_size ", spec.ring_size,
                                                   " does not divide world ", spec.world,
                                                   "; expected a divisor (or 0 for one ring)"));
  }
  const int num_rings = spec.world / ring_size;
  if (batch < 1 || batch % num_rings != 0) {
    return absl::InvalidArgumentError(absl::StrCat("batch ", batch,
                                                   " is not divisible by the number of "
                                                   "rings world/ring_size = ",
                                                   num_rings));
  }
  if (seqlen < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("seqlen is ", seqlen, "; expected a positive length"));
  }
  if (spec.stripe_width < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("stripe_width is ", spec.stripe_width, "; expected at least 1"));
  }
  // ring_size * stripe_width must divide seqlen: wider stripes cannot, and
  // the product is not formed before this (it could overflow). (Varlen
  // stripes each document on its own: any width.)
  if (spec.kind == LayoutKind::kStripe && cu_seqlens.empty() &&
      spec.stripe_width > seqlen / ring_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stripe_width ", spec.stripe_width, " x ring_size ", ring_size, " exceeds seqlen ", seqlen,
        "; expected a stripe_width of at most ", seqlen / ring_size));
  }
  if (spec.kv_heads_per_group < 0) {
    return absl::InvalidArgumentError(absl::StrCat("kv_heads_per_group is ",
                                                   spec.kv_heads_per_group,
                                                   "; expected >= 0 (0: all heads at once)"));
  }
  const absl::string_view name = LayoutKindName(spec.kind);
  const int64_t divisor = Divisor(spec, ring_size);
  Layout layout;
  layout.spec_ = spec;
  layout.ring_size_ = ring_size;
  layout.batch_ = batch;
  layout.seqlen_ = seqlen;
  layout.slices_.resize(ring_size);

  if (spec.kind == LayoutKind::kBalanced && cu_seqlens.empty()) {
    layout.cu_seqlens_ = {0, seqlen};  // one document
    layout.SplitDocuments();
    layout.cu_seqlens_.clear();
    layout.documents_local_ = false;  // without documents every pair may cross ranks
    return layout;
  }
  if (!cu_seqlens.empty()) {
    if (batch != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("varlen (cu_seqlens) packs documents into batch 1; got batch ", batch));
    }
    RETURN_IF_ERROR(ValidateCuSeqlens(cu_seqlens, seqlen));
    layout.cu_seqlens_.assign(cu_seqlens.begin(), cu_seqlens.end());
    layout.SplitDocuments();
    return layout;
  }
  if (seqlen % divisor != 0) {
    return absl::InvalidArgumentError(absl::StrCat("seqlen ", seqlen, " is not divisible by ",
                                                   DivisorName(spec.kind), " = ", divisor, " (",
                                                   name, ")"));
  }
  for (int r = 0; r < ring_size; ++r) {
    AppendSlices(spec.kind, ring_size, spec.stripe_width, r, 0, seqlen, 0, &layout.slices_[r]);
  }
  layout.local_seqlen_ = seqlen / ring_size;
  return layout;
}

void Layout::SplitDocuments() {
  const int r_count = ring_size_;
  std::vector<int64_t> rows(r_count, 0);  // real rows of each ring rank so far
  const auto append = [&](int r, const PositionRun& run) {
    if (run.empty()) return;
    slices_[r].push_back({rows[r], run});
    rows[r] += run.length;
  };
  const auto append_contiguous = [&](int r, int64_t begin, int64_t length) {
    append(r, PositionRun::Contiguous(begin, length));
  };
  if (kind() == LayoutKind::kLlama3) {
    // The packed sequence in R contiguous pieces (sizes differ by at most 1).
    for (int r = 0; r < r_count; ++r) {
      const int64_t begin = seqlen_ * r / r_count, end = seqlen_ * (r + 1) / r_count;
      append_contiguous(r, begin, end - begin);
    }
  } else if (kind() == LayoutKind::kStripe) {
    // Every document striped on its own: stripes of stripe_width tokens
    // (the document's last one shorter when the width does not divide it)
    // dealt round robin, each document's first stripe to the rank after the
    // one that took the previous document's last, so whole stripes spread
    // evenly over many short documents. Rank r's stripes of a document are
    // one grouped run.
    // (A width past the sequence's length acts as that length: every
    // document one stripe; the clamp keeps r_count * width in range.)
    const int64_t width = std::min(spec_.stripe_width, std::max<int64_t>(seqlen_, 1));
    int first = 0;  // the rank of the next document's first stripe
    for (size_t d = 0; d + 1 < cu_seqlens_.size(); ++d) {
      const int64_t begin = cu_seqlens_[d], length = cu_seqlens_[d + 1] - begin;
      const int64_t stripes = (length + width - 1) / width;
      for (int r = 0; r < r_count; ++r) {
        const int64_t t0 = (r - first + r_count) % r_count;  // the rank's first stripe
        if (t0 >= stripes) continue;
        const int64_t last = t0 + (stripes - 1 - t0) / r_count * r_count;
        const int64_t count =
            (last - t0) / r_count * width + std::min(width, length - last * width);
        append(r, PositionRun::Grouped(begin + t0 * width, count, width, r_count * width));
      }
      first = static_cast<int>((first + stripes) % r_count);
    }
  } else {
    // Every document in R (ring) or 2R (zigzag, and balanced's split ones)
    // pieces; ring rank r takes piece r (and 2R-1-r). A piece is
    // floor(length / pieces) tokens, and the remainder's extra tokens go to
    // the pieces after the previous document's, round robin, so the ranks'
    // totals stay within a token or two of each other whatever the lengths.
    // Balanced keeps the documents of `owner` >= 0 whole on that rank.
    const std::vector<int> owner = kind() == LayoutKind::kBalanced
                                       ? BalancedOwners(cu_seqlens_, r_count)
                                       : std::vector<int>(cu_seqlens_.size() - 1, -1);
    documents_local_ = kind() == LayoutKind::kBalanced && r_count > 1 &&
                       std::all_of(owner.begin(), owner.end(), [](int o) { return o >= 0; });
    const int pieces = kind() == LayoutKind::kRing ? r_count : 2 * r_count;
    int next_extra = 0;  // the piece the next extra token goes to
    std::vector<int64_t> start(pieces + 1);
    for (size_t d = 0; d + 1 < cu_seqlens_.size(); ++d) {
      const int64_t length = cu_seqlens_[d + 1] - cu_seqlens_[d];
      if (owner[d] >= 0) {
        append_contiguous(owner[d], cu_seqlens_[d], length);
        continue;
      }
      const int64_t base = length / pieces, extra = length % pieces;
      start[0] = cu_seqlens_[d];
      for (int p = 0; p < pieces; ++p) {
        const bool gets_extra = (p - next_extra + pieces) % pieces < extra;
        start[p + 1] = start[p] + base + (gets_extra ? 1 : 0);
      }
      next_extra = static_cast<int>((next_extra + extra) % pieces);
      for (int r = 0; r < r_count; ++r) {
        append_contiguous(r, start[r], start[r + 1] - start[r]);
        if (pieces > r_count) {
          const int mirror = pieces - 1 - r;
          append_contiguous(r, start[mirror], start[mirror + 1] - start[mirror]);
        }
      }
    }
  }
  // Every rank's shard has the longest one's rows; the rows past its own
  // tokens are padding that no task, input or output touches.
  local_seqlen_ = std::max<int64_t>(1, *std::max_element(rows.begin(), rows.end()));
}

std::pair<int64_t, int64_t> Layout::BatchRange(int rank) const {
  const int64_t begin = RingOf(rank) * local_batch();
  return {begin, begin + local_batch()};
}

absl::Status Layout::CheckRank(int rank) const {
  if (rank < 0 || rank >= world()) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", rank, " is outside [0, world = ", world(), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<RankSlice>> Layout::Slices(int rank) const {
  RETURN_IF_ERROR(CheckRank(rank));
  return slices_[RingRank(rank)];
}

absl::StatusOr<std::vector<int64_t>> Layout::PositionIds(int rank) const {
  RETURN_IF_ERROR(CheckRank(rank));
  std::vector<int64_t> ids(local_seqlen(), -1);  // -1: a padding row
  for (const RankSlice& slice : slices_[RingRank(rank)]) {
    for (int64_t i = 0; i < slice.positions.length; ++i) {
      ids[slice.row_begin + i] = slice.positions.At(i);
    }
  }
  return ids;
}

absl::StatusOr<Layout::Location> Layout::Locate(int64_t position) const {
  if (position < 0 || position >= seqlen_) {
    return absl::InvalidArgumentError(
        absl::StrCat("position ", position, " is outside [0, seqlen = ", seqlen_, ")"));
  }
  for (int r = 0; r < ring_size_; ++r) {
    for (const RankSlice& slice : slices_[r]) {
      if (slice.positions.CountIn(position, position) == 1) {
        return Location{r, slice.row_begin + slice.positions.CountAtMost(position) - 1};
      }
    }
  }
  return absl::InternalError(absl::StrCat("position ", position, " is held by no rank"));
}

absl::Status Layout::CheckShardSize(const char* what, size_t size, int64_t batch, int64_t seqlen,
                                    int64_t token_elements) const {
  const int64_t expected = batch * seqlen * token_elements;
  if (token_elements < 1 || static_cast<int64_t>(size) != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " has ", size, " elements; expected batch ", batch, " x seqlen ", seqlen,
                     " x ", token_elements, " per token = ", expected));
  }
  return absl::OkStatus();
}

std::string Layout::DebugString() const {
  return absl::StrCat(LayoutKindName(kind()), ", world ", world(), " (", num_rings(),
                      num_rings() == 1 ? " ring" : " rings", " of ", ring_size_, "), seqlen ",
                      seqlen_,
                      varlen() ? absl::StrCat(", ", cu_seqlens_.size() - 1, " documents") : "");
}

}  // namespace ringattn
