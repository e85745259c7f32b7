// Log-sum-exp merge of online-softmax states, for host and device code.
//
// A state row holds the normalized output O and LSE = log(sum exp(scores)).
// Merging a block's (O_b, LSE_b) into (O, LSE):
//   LSE' = max(LSE, LSE_b) + log1p(exp(-|LSE - LSE_b|))
//   O'   = O * exp(LSE - LSE') + O_b * exp(LSE_b - LSE')
// A row with LSE = -inf has seen no allowed key (its O is 0): merging it
// changes nothing, and merging into it copies the other side, so no
// inf - inf or 0 * inf ever forms.
#ifndef RINGATTN_CORE_LSE_MATH_H_
#define RINGATTN_CORE_LSE_MATH_H_

#include <cmath>

#if defined(__CUDACC__)
#define RINGATTN_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define RINGATTN_HOST_DEVICE inline
#endif

namespace ringattn {

template <typename T>
struct LseMerge {
  T lse;        // merged LSE'
  T old_scale;  // weight of the running O
  T new_scale;  // weight of the block's O_b
};

template <typename T>
RINGATTN_HOST_DEVICE LseMerge<T> MergeLse(T lse, T lse_b) {
  using std::exp;
  using std::log1p;
  if (lse_b == T(-INFINITY)) return {lse, T(1), T(0)};
  if (lse == T(-INFINITY)) return {lse_b, T(0), T(1)};
  const T high = lse > lse_b ? lse : lse_b;
  const T gap = lse > lse_b ? lse_b - lse : lse - lse_b;  // -|LSE - LSE_b|
  const T merged = high + log1p(exp(gap));
  return {merged, exp(lse - merged), exp(lse_b - merged)};
}

// Merges one row of `head_dim` values in place.
template <typename T>
RINGATTN_HOST_DEVICE void MergeRow(T* o, T* lse, const T* o_b, T lse_b, int head_dim) {
  if (lse_b == T(-INFINITY)) return;
  const LseMerge<T> m = MergeLse(*lse, lse_b);
  if (m.old_scale == T(0)) {
    for (int i = 0; i < head_dim; ++i) o[i] = o_b[i] * m.new_scale;
  } else {
    for (int i = 0; i < head_dim; ++i) {
      o[i] = o[i] * m.old_scale + o_b[i] * m.new_scale;
    }
  }
  *lse = m.lse;
}

}  // namespace ringattn

#endif  // RINGATTN_CORE_LSE_MATH_H_
