#include "cpu_reference/attention.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "cpu_reference/internal/eigen_views.h"

namespace ringattn::cpu {
namespace {

using internal::HeadRows;
using internal::RowMatrix;

// Scaled, masked scores of query head `h` in batch row `b`: (seqlen_q,
// seqlen_k), -inf where the mask forbids.
template <typename T>
RowMatrix<T> MaskedScores(const AttentionShape& shape, const TensorRef<const T>& q,
                          const TensorRef<const T>& k, const Mask& mask, T scale, int64_t b,
                          int64_t h) {
  const int64_t kv_head = h / shape.group_size();
  RowMatrix<T> s = scale * (HeadRows(q, b, 0, shape.seqlen_q, h, shape.head_dim) *
                            HeadRows(k, b, 0, shape.seqlen_k, kv_head, shape.head_dim).transpose());
  for (int64_t i = 0; i < shape.seqlen_q; ++i) {
    for (int64_t j = 0; j < shape.seqlen_k; ++j) {
      if (!mask.Allowed(b, i, j)) s(i, j) = -std::numeric_limits<T>::infinity();
    }
  }
  return s;
}

}  // namespace

template <typename T>
AttentionOutput<T> EmptyOutput(int64_t batch, int64_t rows, int64_t heads, int64_t head_dim) {
  AttentionOutput<T> output;
  output.out.assign(batch * rows * heads * head_dim, T(0));
  output.lse.assign(batch * heads * rows, -std::numeric_limits<T>::infinity());
  return output;
}

template <typename T>
absl::Status CheckForwardArgs(const AttentionShape& shape, const TensorRef<const T>& q,
                              const TensorRef<const T>& k, const TensorRef<const T>& v,
                              const Mask& mask, double softmax_scale) {
  RETURN_IF_ERROR(ValidateShape(shape));
  RETURN_IF_ERROR(ValidateSoftmaxScale(softmax_scale));
  if (mask.batch() != shape.batch || mask.seqlen_q() != shape.seqlen_q ||
      mask.seqlen_k() != shape.seqlen_k) {
    return absl::InvalidArgumentError(
        absl::StrCat("the mask is for batch ", mask.batch(), ", seqlen_q ", mask.seqlen_q(),
                     ", seqlen_k ", mask.seqlen_k(), "; the inputs have ", shape.DebugString()));
  }
  const int64_t d = shape.head_dim;
  RETURN_IF_ERROR(CheckTensorFits("q", q.data.size(), q.strides, shape.batch, shape.seqlen_q,
                                  shape.num_heads, d));
  RETURN_IF_ERROR(CheckTensorFits("k", k.data.size(), k.strides, shape.batch, shape.seqlen_k,
                                  shape.num_kv_heads, d));
  return CheckTensorFits("v", v.data.size(), v.strides, shape.batch, shape.seqlen_k,
                         shape.num_kv_heads, d);
}

template <typename T>
absl::StatusOr<AttentionOutput<T>> NaiveForward(const AttentionShape& shape, TensorRef<const T> q,
                                                TensorRef<const T> k, TensorRef<const T> v,
                                                const Mask& mask, double softmax_scale) {
  RETURN_IF_ERROR(CheckForwardArgs(shape, q, k, v, mask, softmax_scale));
  const int64_t d = shape.head_dim;
  AttentionOutput<T> result = EmptyOutput<T>(shape.batch, shape.seqlen_q, shape.num_heads, d);
  TensorRef<T> out{absl::MakeSpan(result.out), DenseStrides(shape.seqlen_q, shape.num_heads, d)};
  for (int64_t b = 0; b < shape.batch; ++b) {
    for (int64_t h = 0; h < shape.num_heads; ++h) {
      const int64_t kv_head = h / shape.group_size();
      RowMatrix<T> p = MaskedScores(shape, q, k, mask, static_cast<T>(softmax_scale), b, h);
      auto o = HeadRows(out, b, 0, shape.seqlen_q, h, d);
      auto vh = HeadRows(v, b, 0, shape.seqlen_k, kv_head, d);
      for (int64_t i = 0; i < shape.seqlen_q; ++i) {
        const T row_max = p.row(i).maxCoeff();
        T& lse = result.lse[(b * shape.num_heads + h) * shape.seqlen_q + i];
        if (row_max == -std::numeric_limits<T>::infinity()) {
          p.row(i).setZero();
          continue;  // no allowed key: out stays 0, lse -inf
        }
        p.row(i) = (p.row(i).array() - row_max).exp().matrix();
        const T sum = p.row(i).sum();
        p.row(i) /= sum;
        lse = row_max + std::log(sum);
      }
      o = p * vh;
    }
  }
  return result;
}

template <typename T>
absl::StatusOr<AttentionGrads<T>> NaiveBackward(const AttentionShape& shape, TensorRef<const T> q,
                                                TensorRef<const T> k, TensorRef<const T> v,
                                                TensorRef<const T> out, absl::Span<const T> lse,
                                                TensorRef<const T> dout, const Mask& mask,
                                                double softmax_scale) {
  RETURN_IF_ERROR(CheckForwardArgs(shape, q, k, v, mask, softmax_scale));
  const int64_t d = shape.head_dim;
  for (const auto& [name, t] : {std::pair{"out", &out}, {"dout", &dout}}) {
    RETURN_IF_ERROR(CheckTensorFits(name, t->data.size(), t->strides, shape.batch, shape.seqlen_q,
                                    shape.num_heads, d));
  }
  if (static_cast<int64_t>(lse.size()) != shape.lse_elements()) {
    return absl::InvalidArgumentError(absl::StrCat("lse has ", lse.size(),
                                                   " elements; expected batch x "
                                                   "num_heads x seqlen_q = ",
                                                   shape.lse_elements()));
  }
  const T scale = static_cast<T>(softmax_scale);
  AttentionGrads<T> grads;
  grads.dq.assign(shape.q_elements(), T(0));
  grads.dk.assign(shape.kv_elements(), T(0));
  grads.dv.assign(shape.kv_elements(), T(0));
  TensorRef<T> dq{absl::MakeSpan(grads.dq), DenseStrides(shape.seqlen_q, shape.num_heads, d)};
  TensorRef<T> dk{absl::MakeSpan(grads.dk), DenseStrides(shape.seqlen_k, shape.num_kv_heads, d)};
  TensorRef<T> dv{absl::MakeSpan(grads.dv), dk.strides};
  for (int64_t b = 0; b < shape.batch; ++b) {
    for (int64_t h = 0; h < shape.num_heads; ++h) {
      const int64_t kv_head = h / shape.group_size();
      RowMatrix<T> p = MaskedScores(shape, q, k, mask, scale, b, h);
      for (int64_t i = 0; i < shape.seqlen_q; ++i) {
        const T row_lse = lse[(b * shape.num_heads + h) * shape.seqlen_q + i];
        if (row_lse == -std::numeric_limits<T>::infinity()) {
          p.row(i).setZero();
        } else {
          p.row(i) = (p.row(i).array() - row_lse).exp().matrix();
        }
      }
      auto qh = HeadRows(q, b, 0, shape.seqlen_q, h, d);
      auto kh = HeadRows(k, b, 0, shape.seqlen_k, kv_head, d);
      auto vh = HeadRows(v, b, 0, shape.seqlen_k, kv_head, d);
      auto oh = HeadRows(out, b, 0, shape.seqlen_q, h, d);
      auto doh = HeadRows(dout, b, 0, shape.seqlen_q, h, d);
      const Eigen::Matrix<T, Eigen::Dynamic, 1> delta = (doh.array() * oh.array()).rowwise().sum();
      RowMatrix<T> ds = doh * vh.transpose();  // dP
      ds = (p.array() * (ds.colwise() - delta).array()).matrix();
      HeadRows(dv, b, 0, shape.seqlen_k, kv_head, d).noalias() += p.transpose() * doh;
      HeadRows(dq, b, 0, shape.seqlen_q, h, d).noalias() += scale * (ds * kh);
      HeadRows(dk, b, 0, shape.seqlen_k, kv_head, d).noalias() += scale * (ds.transpose() * qh);
    }
  }
  return grads;
}

#define RINGATTN_INSTANTIATE(T)                                                                   \
  template AttentionOutput<T> EmptyOutput<T>(int64_t, int64_t, int64_t, int64_t);                 \
  template absl::Status CheckForwardArgs<T>(const AttentionShape&, const TensorRef<const T>&,     \
                                            const TensorRef<const T>&, const TensorRef<const T>&, \
                                            const Mask&, double);                                 \
  template absl::StatusOr<AttentionOutput<T>> NaiveForward<T>(                                    \
      const AttentionShape&, TensorRef<const T>, TensorRef<const T>, TensorRef<const T>,          \
      const Mask&, double);                                                                       \
  template absl::StatusOr<AttentionGrads<T>> NaiveBackward<T>(                                    \
      const AttentionShape&, TensorRef<const T>, TensorRef<const T>, TensorRef<const T>,          \
      TensorRef<const T>, absl::Span<const T>, TensorRef<const T>, const Mask&, double);

RINGATTN_INSTANTIATE(float)
RINGATTN_INSTANTIATE(double)
#undef RINGATTN_INSTANTIATE

}  // namespace ringattn::cpu
