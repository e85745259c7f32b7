// Helpers shared by ringattn's test suites.
#ifndef RINGATTN_TESTS_TEST_UTIL_H_
#define RINGATTN_TESTS_TEST_UTIL_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "core/layout.h"
#include "core/mask.h"
#include "core/shapes.h"

namespace ringattn::testing {

// A ring problem: the layout, the global shape and the mask.
struct RingCase {
  LayoutSpec layout;
  AttentionShape shape;
  MaskSpec mask;
  std::string Name() const {
    return absl::StrCat(LayoutKindName(layout.kind), " W=", layout.world, " R=", layout.ring_size,
                        " ", shape.DebugString(), " causal=", mask.causal,
                        " window=", mask.window_left, " docs=", mask.cu_seqlens.size());
  }
};

// Boundaries (cu_seqlens) of random packed documents: lengths from a
// lognormal mix (median `median`, many short and a few long ones, 1 to
// `max_length` tokens), about `total` tokens in all (the last document is cut
// to end there exactly, so it may be shorter).
inline std::vector<int64_t> RandomDocuments(int64_t total, double median, int64_t max_length,
                                            std::mt19937* rng) {
  std::lognormal_distribution<double> length(std::log(median), 1.0);
  std::vector<int64_t> cu = {0};
  while (cu.back() < total) {
    const int64_t n = std::clamp<int64_t>(std::llround(length(*rng)), 1, max_length);
    cu.push_back(std::min(total, cu.back() + n));
  }
  return cu;
}

// `n` values drawn from N(0, stddev^2) with a fixed seed.
template <typename T>
std::vector<T> RandomNormal(int64_t n, uint32_t seed, double stddev = 1.0) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, stddev);
  std::vector<T> out(n);
  for (T& x : out) x = static_cast<T>(normal(rng));
  return out;
}

template <typename To, typename From>
std::vector<To> Cast(absl::Span<const From> x) {
  return std::vector<To>(x.begin(), x.end());
}

// max |a - b| / max |b|: the normwise relative error of `a` against the
// reference `b`, with -inf == -inf counted as exact. Returns +inf for a NaN
// or a size mismatch.
template <typename A, typename B>
double MaxRelError(absl::Span<const A> a, absl::Span<const B> b) {
  if (a.size() != b.size()) return INFINITY;
  double max_diff = 0, max_ref = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double x = static_cast<double>(a[i]);
    const double y = static_cast<double>(b[i]);
    if (std::isnan(x) || std::isnan(y)) return INFINITY;
    if (std::isinf(y) || std::isinf(x)) {
      if (x != y) return INFINITY;
      continue;
    }
    max_diff = std::max(max_diff, std::abs(x - y));
    max_ref = std::max(max_ref, std::abs(y));
  }
  return max_diff / std::max(max_ref, 1e-300);
}

template <typename A, typename B>
double MaxRelError(const std::vector<A>& a, const std::vector<B>& b) {
  return MaxRelError(absl::Span<const A>(a), absl::Span<const B>(b));
}

}  // namespace ringattn::testing

#endif  // RINGATTN_TESTS_TEST_UTIL_H_
