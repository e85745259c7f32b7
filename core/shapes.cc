#include "core/shapes.h"

#include <cmath>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status_macros.h"

namespace ringattn {

std::string AttentionShape::DebugString() const {
  return absl::StrCat("batch=", batch, " seqlen_q=", seqlen_q, " seqlen_k=", seqlen_k,
                      " num_heads=", num_heads, " num_kv_heads=", num_kv_heads,
                      " head_dim=", head_dim);
}

absl::Status ValidateShape(const AttentionShape& shape) {
  const std::pair<const char*, int64_t> sizes[] = {{"batch", shape.batch},
                                                   {"seqlen_q", shape.seqlen_q},
                                                   {"seqlen_k", shape.seqlen_k},
                                                   {"num_heads", shape.num_heads},
                                                   {"num_kv_heads", shape.num_kv_heads},
                                                   {"head_dim", shape.head_dim}};
  for (const auto& [name, value] : sizes) {
    if (value <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " is ", value, "; expected a positive size"));
    }
  }
  if (shape.num_heads % shape.num_kv_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_heads ", shape.num_heads, " is not a multiple of num_kv_heads ",
                     shape.num_kv_heads, " (GQA/MQA need whole groups)"));
  }
  for (const auto& [name, value] :
       {std::pair{"seqlen_q", shape.seqlen_q}, std::pair{"seqlen_k", shape.seqlen_k}}) {
    if (value > kMaxSeqlen) {
      return absl::InvalidArgumentError(absl::StrCat(name, " is ", value,
                                                     "; expected at most 2^31 = ", kMaxSeqlen,
                                                     " tokens (exact pair counts in 64 bits)"));
    }
  }
  if (shape.head_dim > kMaxHeadDim) {
    return absl::InvalidArgumentError(absl::StrCat(
        "head_dim ", shape.head_dim, " is not supported; expected at most ", kMaxHeadDim));
  }
  // Element totals, multiplied without overflow: each partial product stays
  // at most kMaxTensorElements.
  for (const auto& [name, seqlen, heads] :
       {std::tuple{"q", shape.seqlen_q, shape.num_heads},
        std::tuple{"k/v", shape.seqlen_k, shape.num_kv_heads}}) {
    int64_t total = 1;
    for (int64_t factor : {shape.batch, seqlen, heads, shape.head_dim}) {
      if (factor > kMaxTensorElements / total) {
        return absl::InvalidArgumentError(absl::StrCat(
            name, " would hold batch ", shape.batch, " x seqlen ", seqlen, " x heads ", heads,
            " x head_dim ", shape.head_dim, " elements; expected at most 2^40"));
      }
      total *= factor;
    }
  }
  return absl::OkStatus();
}

double DefaultSoftmaxScale(int64_t head_dim) {
  return 1.0 / std::sqrt(static_cast<double>(head_dim));
}

absl::Status ValidateSoftmaxScale(double softmax_scale) {
  if (!std::isfinite(softmax_scale) || softmax_scale <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("softmax_scale is ", softmax_scale,
                     "; expected a finite positive value (default 1/sqrt(head_dim))"));
  }
  return absl::OkStatus();
}

absl::Status ValidateHeadDim(int64_t head_dim, std::initializer_list<int64_t> supported) {
  for (int64_t d : supported) {
    if (d == head_dim) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat("head_dim ", head_dim,
                                                 " is not supported; expected one of {",
                                                 absl::StrJoin(supported, ", "), "}"));
}

absl::Status CheckTensorFits(const char* what, int64_t size, const TensorStrides& strides,
                             int64_t batch, int64_t seqlen, int64_t heads, int64_t head_dim) {
  if (batch == 0 || seqlen == 0 || heads == 0) return absl::OkStatus();
  if (strides.offset < 0 || strides.batch < 0 || strides.token < 0 || strides.head < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " has offset ", strides.offset, " and strides (batch ", strides.batch, ", row ",
        strides.token, ", head ", strides.head, "); expected them all >= 0"));
  }
  // The last element's index, in int64 without overflow (strides of any
  // size reach here from a caller's description).
  int64_t needed = strides.offset;
  bool overflow = false;
  for (const auto& [count, stride] :
       {std::pair{batch, strides.batch}, {seqlen, strides.token}, {heads, strides.head}}) {
    int64_t step = 0;
    overflow = overflow || __builtin_mul_overflow(count - 1, stride, &step) ||
               __builtin_add_overflow(needed, step, &needed);
  }
  overflow = overflow || __builtin_add_overflow(needed, head_dim, &needed);
  if (overflow || needed > size) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " needs ", overflow ? "more than 2^63" : absl::StrCat(needed),
                     " elements for (batch ", batch, ", seqlen ", seqlen, ", heads ", heads,
                     ", head_dim ", head_dim, "); got ", size));
  }
  return absl::OkStatus();
}

TensorStrides DenseStrides(int64_t seqlen, int64_t heads, int64_t head_dim) {
  return TensorStrides{/*offset=*/0, /*batch=*/seqlen * heads * head_dim,
                       /*token=*/heads * head_dim, /*head=*/head_dim};
}

absl::StatusOr<QkvStrides> PackedStrides(const AttentionShape& shape, QkvPacking packing) {
  RETURN_IF_ERROR(ValidateShape(shape));
  const int64_t d = shape.head_dim;
  QkvStrides out;
  switch (packing) {
    case QkvPacking::kSeparate:
      out.q = DenseStrides(shape.seqlen_q, shape.num_heads, d);
      out.k = DenseStrides(shape.seqlen_k, shape.num_kv_heads, d);
      out.v = out.k;
      return out;
    case QkvPacking::kKvPacked: {
      out.q = DenseStrides(shape.seqlen_q, shape.num_heads, d);
      const int64_t token = 2 * shape.num_kv_heads * d;
      out.k = {0, shape.seqlen_k * token, token, d};
      out.v = {shape.num_kv_heads * d, shape.seqlen_k * token, token, d};
      return out;
    }
    case QkvPacking::kQkvPacked: {
      if (shape.seqlen_q != shape.seqlen_k) {
        return absl::InvalidArgumentError(
            absl::StrCat("qkv-packed needs seqlen_q == seqlen_k; got seqlen_q ", shape.seqlen_q,
                         " and seqlen_k ", shape.seqlen_k));
      }
      if (shape.num_heads != shape.num_kv_heads) {
        return absl::InvalidArgumentError(absl::StrCat(
            "qkv-packed needs num_heads == num_kv_heads; got num_heads ", shape.num_heads,
            " and num_kv_heads ", shape.num_kv_heads, " (use kv-packed for GQA/MQA)"));
      }
      const int64_t head_block = shape.num_heads * d;
      const int64_t token = 3 * head_block;
      const int64_t batch = shape.seqlen_q * token;
      out.q = {0, batch, token, d};
      out.k = {head_block, batch, token, d};
      out.v = {2 * head_block, batch, token, d};
      return out;
    }
  }
  return absl::InvalidArgumentError("unknown QkvPacking value");
}

}  // namespace ringattn
