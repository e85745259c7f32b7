#include "cpu_reference/blocked_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "core/lse_math.h"
#include "core/status_macros.h"
#include "cpu_reference/internal/eigen_views.h"

namespace ringattn::cpu {
namespace {

using internal::HeadRows;
using internal::RowMatrix;

// Tile sizes: small enough that a score tile stays in cache.
constexpr int64_t kTileQ = 64;
constexpr int64_t kTileK = 128;

template <typename T>
constexpr T kNegInf = -std::numeric_limits<T>::infinity();

absl::Status CheckTask(const BlockTask& task, const BlockProblem& p) {
  if (p.mask == nullptr) {
    return absl::InvalidArgumentError("BlockProblem.mask is null");
  }
  AttentionShape shape{p.batch, p.q_rows, p.k_rows, p.num_heads, p.num_kv_heads, p.head_dim};
  RETURN_IF_ERROR(ValidateShape(shape));
  RETURN_IF_ERROR(ValidateSoftmaxScale(p.softmax_scale));
  if (p.batch_offset < 0 || p.batch_offset + p.batch > p.mask->batch()) {
    return absl::InvalidArgumentError(
        absl::StrCat("local batch rows [", p.batch_offset, ", ", p.batch_offset + p.batch,
                     ") are outside the mask's batch [0, ", p.mask->batch(), ")"));
  }
  if (task.q_row < 0 || task.q_end() > p.q_rows || task.k_row < 0 || task.k_end() > p.k_rows ||
      task.kv_head_begin < 0 || task.kv_head_end > p.num_kv_heads ||
      task.kv_head_begin >= task.kv_head_end) {
    return absl::InvalidArgumentError(
        absl::StrCat("block task ", task.DebugString(), " lies outside q rows [0, ", p.q_rows,
                     "), k rows [0, ", p.k_rows, "), kv heads [0, ", p.num_kv_heads, ")"));
  }
  if (task.q.length > 0 && task.k.length > 0 &&
      (task.q.last() >= p.mask->seqlen_q() || task.k.last() >= p.mask->seqlen_k() ||
       task.q.first() < 0 || task.k.first() < 0)) {
    return absl::InvalidArgumentError(absl::StrCat("block task ", task.DebugString(),
                                                   " has positions outside the mask's sequence"));
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status CheckTensors(const BlockProblem& p, const TensorRef<const T>& q,
                          const TensorRef<const T>& k, const TensorRef<const T>& v) {
  for (const auto& [name, t, rows, heads] :
       {std::tuple{"q", &q, p.q_rows, p.num_heads}, std::tuple{"k", &k, p.k_rows, p.num_kv_heads},
        std::tuple{"v", &v, p.k_rows, p.num_kv_heads}}) {
    RETURN_IF_ERROR(
        CheckTensorFits(name, t->data.size(), t->strides, p.batch, rows, heads, p.head_dim));
  }
  return absl::OkStatus();
}

absl::Status CheckSize(const char* what, size_t size, int64_t expected) {
  if (static_cast<int64_t>(size) != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " has ", size, " elements; expected ", expected));
  }
  return absl::OkStatus();
}

enum class TileMask { kNone, kPartial, kAll };

// How the mask covers the tile of rows [qt, qt + tq) x [kt, kt + tk) of
// `task` in local batch row `b`, from the tile's corner positions (runs
// increase, so the band test on the corners is exact for "all" and "none").
TileMask ClassifyTile(const BlockTask& task, const BlockProblem& p, int64_t b, int64_t qt,
                      int64_t tq, int64_t kt, int64_t tk) {
  const Mask& mask = *p.mask;
  const int64_t q_min = task.q.At(qt), q_max = task.q.At(qt + tq - 1);
  const int64_t k_min = task.k.At(kt), k_max = task.k.At(kt + tk - 1);
  const int64_t key_limit = mask.KeyLimit(p.batch_offset + b);
  if (k_min > q_max + mask.max_delta() || k_max < q_min + mask.min_delta() || k_min >= key_limit) {
    return TileMask::kAll;
  }
  const auto [doc_begin, doc_end] = mask.DocumentBounds(q_min);
  const bool one_document = q_max < doc_end && k_min >= doc_begin && k_max < doc_end;
  if (one_document && k_max <= q_min + mask.max_delta() && k_min >= q_max + mask.min_delta() &&
      k_max < key_limit) {
    return TileMask::kNone;
  }
  return TileMask::kPartial;
}

// Sets the masked pairs of a (tq, tk) score tile to -inf.
template <typename T>
void MaskTile(const BlockTask& task, const BlockProblem& p, int64_t b, int64_t qt, int64_t kt,
              RowMatrix<T>* s) {
  const int64_t global_b = p.batch_offset + b;
  for (int64_t i = 0; i < s->rows(); ++i) {
    const int64_t q_pos = task.q.At(qt + i);
    for (int64_t j = 0; j < s->cols(); ++j) {
      if (!p.mask->Allowed(global_b, q_pos, task.k.At(kt + j))) {
        (*s)(i, j) = kNegInf<T>;
      }
    }
  }
}

}  // namespace

template <typename T>
absl::Status BlockForward(const BlockTask& task, const BlockProblem& p, TensorRef<const T> q,
                          TensorRef<const T> k, TensorRef<const T> v, AttentionOutput<T>* state) {
  RETURN_IF_ERROR(CheckTask(task, p));
  RETURN_IF_ERROR(CheckTensors(p, q, k, v));
  const int64_t d = p.head_dim;
  RETURN_IF_ERROR(CheckSize("state out", state->out.size(), p.batch * p.q_rows * p.num_heads * d));
  RETURN_IF_ERROR(CheckSize("state lse", state->lse.size(), p.batch * p.num_heads * p.q_rows));
  const T scale = static_cast<T>(p.softmax_scale);
  const int64_t group = p.num_heads / p.num_kv_heads;
  const TensorStrides out_strides = DenseStrides(p.q_rows, p.num_heads, d);
  RowMatrix<T> s;
  RowMatrix<T> o_tile;
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t h = task.kv_head_begin * group; h < task.kv_head_end * group; ++h) {
      const int64_t kv_head = h / group;
      for (int64_t qt = 0; qt < task.q.length; qt += kTileQ) {
        const int64_t tq = std::min(kTileQ, task.q.length - qt);
        auto q_tile = HeadRows(q, b, task.q_row + qt, tq, h, d);
        for (int64_t kt = 0; kt < task.k.length; kt += kTileK) {
          const int64_t tk = std::min(kTileK, task.k.length - kt);
          const TileMask coverage = ClassifyTile(task, p, b, qt, tq, kt, tk);
          if (coverage == TileMask::kAll) continue;
          s.noalias() =
              scale * (q_tile * HeadRows(k, b, task.k_row + kt, tk, kv_head, d).transpose());
          if (coverage == TileMask::kPartial) MaskTile(task, p, b, qt, kt, &s);
          // Rows with no allowed key keep max 0, so exp(-inf - 0) = 0.
          Eigen::Matrix<T, Eigen::Dynamic, 1> row_max = s.rowwise().maxCoeff();
          row_max = (row_max.array() == kNegInf<T>).select(T(0), row_max);
          s = (s.colwise() - row_max).array().exp().matrix();  // P, unnormalized
          o_tile.noalias() = s * HeadRows(v, b, task.k_row + kt, tk, kv_head, d);
          for (int64_t i = 0; i < tq; ++i) {
            const T sum = s.row(i).sum();
            if (sum == T(0)) continue;  // no allowed key in this tile
            o_tile.row(i) /= sum;
            const int64_t row = task.q_row + qt + i;
            MergeRow(state->out.data() + out_strides.Index(b, row, h),
                     &state->lse[(b * p.num_heads + h) * p.q_rows + row], o_tile.row(i).data(),
                     row_max(i) + std::log(sum), static_cast<int>(d));
          }
        }
      }
    }
  }
  return absl::OkStatus();
}

template <typename T>
std::vector<T> BackwardDelta(absl::Span<const T> out, absl::Span<const T> dout, int64_t batch,
                             int64_t rows, int64_t heads, int64_t head_dim) {
  std::vector<T> delta(batch * heads * rows, T(0));
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t t = 0; t < rows; ++t) {
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t base = ((b * rows + t) * heads + h) * head_dim;
        T sum = 0;
        for (int64_t i = 0; i < head_dim; ++i) {
          sum += out[base + i] * dout[base + i];
        }
        delta[(b * heads + h) * rows + t] = sum;
      }
    }
  }
  return delta;
}

template <typename T>
absl::Status BlockBackward(const BlockTask& task, const BlockProblem& p, TensorRef<const T> q,
                           TensorRef<const T> k, TensorRef<const T> v, TensorRef<const T> dout,
                           absl::Span<const T> lse, absl::Span<const T> delta, TensorRef<T> dq,
                           TensorRef<T> dk, TensorRef<T> dv) {
  RETURN_IF_ERROR(CheckTask(task, p));
  RETURN_IF_ERROR(CheckTensors(p, q, k, v));
  const int64_t d = p.head_dim;
  for (const auto& [name, size, strides, rows, heads] :
       {std::tuple{"dout", dout.data.size(), &dout.strides, p.q_rows, p.num_heads},
        std::tuple{"dq", dq.data.size(), &dq.strides, p.q_rows, p.num_heads},
        std::tuple{"dk", dk.data.size(), &dk.strides, p.k_rows, p.num_kv_heads},
        std::tuple{"dv", dv.data.size(), &dv.strides, p.k_rows, p.num_kv_heads}}) {
    if (absl::Status s = CheckTensorFits(name, size, *strides, p.batch, rows, heads, d); !s.ok()) {
      return s;
    }
  }
  const int64_t stat_size = p.batch * p.num_heads * p.q_rows;
  RETURN_IF_ERROR(CheckSize("lse", lse.size(), stat_size));
  RETURN_IF_ERROR(CheckSize("delta", delta.size(), stat_size));
  const T scale = static_cast<T>(p.softmax_scale);
  const int64_t group = p.num_heads / p.num_kv_heads;
  RowMatrix<T> s;
  RowMatrix<T> ds;
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t h = task.kv_head_begin * group; h < task.kv_head_end * group; ++h) {
      const int64_t kv_head = h / group;
      for (int64_t qt = 0; qt < task.q.length; qt += kTileQ) {
        const int64_t tq = std::min(kTileQ, task.q.length - qt);
        const int64_t row0 = task.q_row + qt;
        auto q_tile = HeadRows(q, b, row0, tq, h, d);
        auto do_tile = HeadRows(dout, b, row0, tq, h, d);
        const int64_t stat0 = (b * p.num_heads + h) * p.q_rows + row0;
        for (int64_t kt = 0; kt < task.k.length; kt += kTileK) {
          const int64_t tk = std::min(kTileK, task.k.length - kt);
          const TileMask coverage = ClassifyTile(task, p, b, qt, tq, kt, tk);
          if (coverage == TileMask::kAll) continue;
          auto k_tile = HeadRows(k, b, task.k_row + kt, tk, kv_head, d);
          auto v_tile = HeadRows(v, b, task.k_row + kt, tk, kv_head, d);
          s.noalias() = scale * (q_tile * k_tile.transpose());
          if (coverage == TileMask::kPartial) MaskTile(task, p, b, qt, kt, &s);
          for (int64_t i = 0; i < tq; ++i) {
            const T row_lse = lse[stat0 + i];
            if (row_lse == kNegInf<T>) {
              s.row(i).setZero();
            } else {
              s.row(i) = (s.row(i).array() - row_lse).exp().matrix();  // P
            }
          }
          ds.noalias() = do_tile * v_tile.transpose();  // dP
          for (int64_t i = 0; i < tq; ++i) {
            ds.row(i) = (s.row(i).array() * (ds.row(i).array() - delta[stat0 + i])).matrix();
          }
          HeadRows(dv, b, task.k_row + kt, tk, kv_head, d).noalias() += s.transpose() * do_tile;
          HeadRows(dq, b, row0, tq, h, d).noalias() += scale * (ds * k_tile);
          HeadRows(dk, b, task.k_row + kt, tk, kv_head, d).noalias() +=
              scale * (ds.transpose() * q_tile);
        }
      }
    }
  }
  return absl::OkStatus();
}

#define RINGATTN_INSTANTIATE(T)                                                                    \
  template absl::Status BlockForward<T>(const BlockTask&, const BlockProblem&, TensorRef<const T>, \
                                        TensorRef<const T>, TensorRef<const T>,                    \
                                        AttentionOutput<T>*);                                      \
  template std::vector<T> BackwardDelta<T>(absl::Span<const T>, absl::Span<const T>, int64_t,      \
                                           int64_t, int64_t, int64_t);                             \
  template absl::Status BlockBackward<T>(                                                          \
      const BlockTask&, const BlockProblem&, TensorRef<const T>, TensorRef<const T>,               \
      TensorRef<const T>, TensorRef<const T>, absl::Span<const T>, absl::Span<const T>,            \
      TensorRef<T>, TensorRef<T>, TensorRef<T>);

RINGATTN_INSTANTIATE(float)
RINGATTN_INSTANTIATE(double)
#undef RINGATTN_INSTANTIATE

}  // namespace ringattn::cpu
