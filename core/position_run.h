// Global token positions of consecutive local rows, as an affine map.
#ifndef RINGATTN_CORE_POSITION_RUN_H_
#define RINGATTN_CORE_POSITION_RUN_H_

#include <algorithm>
#include <cstdint>
#include <string>

namespace ringattn {

// `length` local rows whose global positions are
//   pos(i) = base + (i / group) * group_stride + (i % group) * stride.
// With group == length this is the affine run pos = base + stride * i
// (contiguous when stride == 1); stripes of width w > 1 over W ranks are
// groups of w contiguous tokens, group_stride = W * w apart. Positions
// increase strictly with i (stride > 0, group_stride >= group * stride).
struct PositionRun {
  int64_t base = 0;
  int64_t length = 0;
  int64_t stride = 1;
  int64_t group = 1;
  int64_t group_stride = 1;

  static PositionRun Contiguous(int64_t base, int64_t length) {
    return {base, length, 1, std::max<int64_t>(length, 1), std::max<int64_t>(length, 1)};
  }
  static PositionRun Strided(int64_t base, int64_t length, int64_t stride) {
    return {base, length, stride, std::max<int64_t>(length, 1),
            stride * std::max<int64_t>(length, 1)};
  }
  // Groups of `group` contiguous positions, `group_stride` apart.
  static PositionRun Grouped(int64_t base, int64_t length, int64_t group, int64_t group_stride) {
    if (group >= length) return Contiguous(base, length);
    return {base, length, 1, group, group_stride};
  }

  int64_t At(int64_t i) const { return base + (i / group) * group_stride + (i % group) * stride; }
  int64_t first() const { return base; }
  int64_t last() const { return At(length - 1); }
  bool empty() const { return length <= 0; }
  bool contiguous() const { return stride == 1 && (group >= length || group_stride == group); }

  // The number of rows whose position is <= x. O(1).
  int64_t CountAtMost(int64_t x) const {
    if (length <= 0 || x < base) return 0;
    const int64_t t = x - base;
    const int64_t full_groups = (length + group - 1) / group;
    const int64_t g = t / group_stride;
    if (g >= full_groups) return length;
    const int64_t in_group =
        std::min(group, std::min(length - g * group, (t - g * group_stride) / stride + 1));
    return std::min(length, g * group + in_group);
  }

  // The number of rows whose position lies in [lo, hi].
  int64_t CountIn(int64_t lo, int64_t hi) const {
    return hi < lo ? 0 : CountAtMost(hi) - CountAtMost(lo - 1);
  }

  // Rows [begin, end) of this run. Precondition: the run is contiguous or
  // strided (group >= length), or begin is a multiple of group.
  PositionRun Sub(int64_t begin, int64_t end) const {
    PositionRun out = *this;
    out.base = At(begin);
    out.length = end - begin;
    if (group >= length) {
      out.group = std::max<int64_t>(out.length, 1);
      out.group_stride = out.group * stride;
    }
    return out;
  }

  // E.g. "[0, 1024)" or "4 + 8*i (i < 512)".
  std::string DebugString() const;

  friend bool operator==(const PositionRun& a, const PositionRun& b) {
    return a.base == b.base && a.length == b.length && a.stride == b.stride && a.group == b.group &&
           a.group_stride == b.group_stride;
  }
};

}  // namespace ringattn

#endif  // RINGATTN_CORE_POSITION_RUN_H_
