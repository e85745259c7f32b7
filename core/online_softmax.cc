#include "core/online_softmax.h"

#include "absl/strings/str_cat.h"

namespace ringattn {

template <typename T>
absl::Status SoftmaxState<T>::Merge(const SoftmaxState& block) {
  if (block.rows() != rows() || block.head_dim() != head_dim()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot merge a state of ", block.rows(), " rows x head_dim ",
                     block.head_dim(), " into one of ", rows(), " rows x head_dim ", head_dim()));
  }
  for (int64_t row = 0; row < rows(); ++row) {
    MergeRowFrom(row, block.o(row), block.lse(row));
  }
  return absl::OkStatus();
}

template class SoftmaxState<float>;
template class SoftmaxState<double>;

}  // namespace ringattn
