// LaunchCopyRows, LaunchFillsF32, LaunchConvertsF32 and LaunchPackedCellsF32
// against the host (needs a GPU; skips without one).
#include "cuda/ring_kernels.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cuda/device.h"
#include "gtest/gtest.h"

namespace ringattn::cuda {
namespace {

// Rows of `width` bytes out of rows `src_pitch` apart into rows
// `dst_pitch` apart, at byte offsets into the allocations: 16-byte aligned
// (the kernel) and not (cudaMemcpy2DAsync), a width below and equal to the
// pitch, bytes between the destination's rows left as they were.
TEST(RingKernelsTest, CopyRowsMatchesTheHostCopyAlignedOrNot) {
  if (absl::StatusOr<int> n = DeviceCount(); !n.ok()) {
    GTEST_SKIP() << "needs a GPU: " << n.status().message();
  }
  struct Case {
    int64_t width, src_pitch, dst_pitch, rows, src_offset, dst_offset;
  };
  for (const Case& c : {Case{48, 96, 64, 37, 0, 0}, Case{256, 256, 256, 9, 16, 32},
                        Case{48, 96, 64, 37, 4, 0}, Case{30, 40, 36, 5, 2, 6}}) {
    SCOPED_TRACE(absl::StrCat("width ", c.width, " pitches ", c.src_pitch, "/", c.dst_pitch,
                              " offsets ", c.src_offset, "/", c.dst_offset));
    const int64_t src_bytes = c.src_offset + c.rows * c.src_pitch;
    const int64_t dst_bytes = c.dst_offset + c.rows * c.dst_pitch;
    std::vector<uint8_t> src(src_bytes), dst(dst_bytes, 0xEE);
    for (int64_t i = 0; i < src_bytes; ++i) src[i] = static_cast<uint8_t>(i * 7 + 3);
    uint8_t *d_src = nullptr, *d_dst = nullptr;
    ASSERT_EQ(cudaMalloc(&d_src, src_bytes), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&d_dst, dst_bytes), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(d_src, src.data(), src_bytes, cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(d_dst, dst.data(), dst_bytes, cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(LaunchCopyRows(d_dst + c.dst_offset, c.dst_pitch, d_src + c.src_offset, c.src_pitch,
                             c.width, c.rows, nullptr),
              cudaSuccess);
    std::vector<uint8_t> got(dst_bytes);
    ASSERT_EQ(cudaMemcpy(got.data(), d_dst, dst_bytes, cudaMemcpyDeviceToHost), cudaSuccess);
    for (int64_t r = 0; r < c.rows; ++r) {
      for (int64_t x = 0; x < c.width; ++x) {
        dst[c.dst_offset + r * c.dst_pitch + x] = src[c.src_offset + r * c.src_pitch + x];
      }
    }
    EXPECT_EQ(got, dst);
    cudaFree(d_src);
    cudaFree(d_dst);
  }
}

// bf16 / fp16 bits back to float (normal numbers and zero: the tests'
// values are exactly representable, so rounding leaves them as they are).
float FromBf16(uint16_t bits) {
  const uint32_t word = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &word, 4);
  return f;
}
float FromFp16(uint16_t bits) {
  const int exponent = (bits >> 10) & 31, mantissa = bits & 1023;
  const float magnitude = exponent == 0 ? mantissa * std::ldexp(1.0f, -24)
                                        : std::ldexp(1.0f + mantissa / 1024.0f, exponent - 15);
  return bits & 0x8000 ? -magnitude : magnitude;
}

// Several fills in one launch: each job's range set, an empty job skipped,
// the element after each range untouched; 16-byte aligned multiples of
// four (the float4 path) and not (one element a step).
TEST(RingKernelsTest, FillsSetEachJobsRangeOnly) {
  if (absl::StatusOr<int> n = DeviceCount(); !n.ok()) {
    GTEST_SKIP() << "needs a GPU: " << n.status().message();
  }
  struct Case {
    int64_t n0, n1, n2, offset2;
  };
  for (const Case& c : {Case{1024, 0, 256, 0}, Case{1000, 3, 37, 1}, Case{4, 8, 4, 0}}) {
    SCOPED_TRACE(absl::StrCat("n ", c.n0, ", ", c.n1, ", ", c.n2, " offset ", c.offset2));
    const int64_t slots[3] = {c.n0 + 1, c.n1 + 1, c.offset2 + c.n2 + 1};
    float* d[3];
    for (int j = 0; j < 3; ++j) {
      ASSERT_EQ(cudaMalloc(&d[j], slots[j] * 4), cudaSuccess);
      ASSERT_EQ(cudaMemset(d[j], 0x7F, slots[j] * 4), cudaSuccess);
    }
    const FillJob jobs[] = {
        {d[0], -1.5f, c.n0}, {d[1], 2.0f, c.n1}, {d[2] + c.offset2, 0.0f, c.n2}};
    ASSERT_EQ(LaunchFillsF32(jobs, 3, nullptr), cudaSuccess);
    float untouched;
    const uint32_t pattern = 0x7F7F7F7F;
    std::memcpy(&untouched, &pattern, 4);
    const int64_t begin[3] = {0, 0, c.offset2};
    for (int j = 0; j < 3; ++j) {
      std::vector<float> got(slots[j]);
      ASSERT_EQ(cudaMemcpy(got.data(), d[j], slots[j] * 4, cudaMemcpyDeviceToHost), cudaSuccess);
      for (int64_t i = 0; i < slots[j]; ++i) {
        const bool in = i >= begin[j] && i < begin[j] + jobs[j].n;
        ASSERT_EQ(got[i], in ? jobs[j].value : untouched) << "job " << j << " element " << i;
      }
      cudaFree(d[j]);
    }
  }
  FillJob four[4];
  EXPECT_EQ(LaunchFillsF32(four, 4, nullptr), cudaErrorInvalidValue);  // kMaxElementJobs is 3
  EXPECT_EQ(LaunchFillsF32(nullptr, 0, nullptr), cudaSuccess);         // nothing to do
}

// Conversions of several dtypes in one launch (a pass's O and LSE, its
// dQ, dK, dV): each job rounded to its own dtype, on the float4 path
// (aligned multiples of four) and off it (a 2-byte offset, odd sizes).
TEST(RingKernelsTest, ConvertsRoundEachJobToItsDtype) {
  if (absl::StatusOr<int> n = DeviceCount(); !n.ok()) {
    GTEST_SKIP() << "needs a GPU: " << n.status().message();
  }
  struct Case {
    int64_t n[3];
    int64_t offset;  // elements into the 16-bit outputs
  };
  const ElementType dtypes[3] = {ElementType::kBFloat16, ElementType::kFloat16,
                                 ElementType::kFloat32};
  for (const Case& c : {Case{{1024, 256, 512}, 0}, Case{{37, 5, 11}, 1}, Case{{8, 0, 4}, 0}}) {
    SCOPED_TRACE(absl::StrCat("n ", c.n[0], ", ", c.n[1], ", ", c.n[2], " offset ", c.offset));
    float* src[3];
    uint8_t* dst[3];
    ConvertJob jobs[3];
    std::vector<std::vector<float>> values(3);
    for (int j = 0; j < 3; ++j) {
      const int64_t bytes = j == 2 ? 4 : 2;
      values[j].resize(c.n[j]);
      for (int64_t i = 0; i < c.n[j]; ++i) values[j][i] = 0.25f * static_cast<float>(i % 97) - 8;
      ASSERT_EQ(cudaMalloc(&src[j], std::max<int64_t>(c.n[j], 1) * 4), cudaSuccess);
      ASSERT_EQ(cudaMalloc(&dst[j], (c.offset + c.n[j] + 1) * bytes), cudaSuccess);
      ASSERT_EQ(cudaMemcpy(src[j], values[j].data(), c.n[j] * 4, cudaMemcpyHostToDevice),
                cudaSuccess);
      ASSERT_EQ(cudaMemset(dst[j], 0, (c.offset + c.n[j] + 1) * bytes), cudaSuccess);
      jobs[j] = {src[j], dst[j] + (j == 2 ? 0 : c.offset * bytes), c.n[j], dtypes[j]};
    }
    ASSERT_EQ(LaunchConvertsF32(jobs, 3, nullptr), cudaSuccess);
    for (int j = 0; j < 3; ++j) {
      const int64_t bytes = j == 2 ? 4 : 2, first = j == 2 ? 0 : c.offset;
      std::vector<uint8_t> got((c.offset + c.n[j] + 1) * bytes);
      ASSERT_EQ(cudaMemcpy(got.data(), dst[j], got.size(), cudaMemcpyDeviceToHost), cudaSuccess);
      for (int64_t i = 0; i < c.n[j]; ++i) {
        float v;
        if (j == 2) {
          std::memcpy(&v, &got[(first + i) * 4], 4);
        } else {
          uint16_t bits;
          std::memcpy(&bits, &got[(first + i) * 2], 2);
          v = j == 0 ? FromBf16(bits) : FromFp16(bits);
        }
        ASSERT_EQ(v, values[j][i]) << "job " << j << " element " << i;
      }
      const int64_t after = (first + c.n[j]) * bytes;
      for (int64_t b = after; b < after + bytes; ++b) ASSERT_EQ(got[b], 0) << "job " << j;
      cudaFree(src[j]);
      cudaFree(dst[j]);
    }
  }
}

// Cells of a packed buffer set, zeroed or added into: the host's model of
// the layout ((shard, K or V, batch, token, head, element)), two shards of
// heads [1, 4) of 5, regions in packed rows and absolute heads, the float4
// path (head_dim 8) and the one-float path (head_dim 6).
TEST(RingKernelsTest, PackedCellsSetTheirRegionsAndAddElsewhere) {
  if (absl::StatusOr<int> n = DeviceCount(); !n.ok()) {
    GTEST_SKIP() << "needs a GPU: " << n.status().message();
  }
  for (const int64_t head_dim : {8, 6}) {
    const PackedKvShape s{.batch = 2,
                          .rows = 5,
                          .ranks = 2,
                          .num_kv_heads = 5,
                          .head_begin = 1,
                          .head_end = 4,
                          .head_dim = head_dim};
    CellRegions regions;
    regions.rect[0] = {3, 7, 1, 3};   // rows 3-4 of shard 0, 0-1 of shard 1; heads 1-2
    regions.rect[1] = {9, 10, 3, 4};  // the last row of shard 1, head 3
    regions.count = 2;
    const int64_t n = s.PackedElements();
    const auto in_region = [&](int64_t i) {
      const int64_t heads = s.head_end - s.head_begin;
      const int64_t head = s.head_begin + i / head_dim % heads;
      const int64_t token = i / (head_dim * heads) % s.rows;
      const int64_t shard = i / (head_dim * heads * s.rows * s.batch * 2);
      const int64_t row = shard * s.rows + token;
      for (int k = 0; k < regions.count; ++k) {
        const CellRegions::Rect& r = regions.rect[k];
        if (row >= r.row_begin && row < r.row_end && head >= r.head_begin && head < r.head_end) {
          return true;
        }
      }
      return false;
    };
    std::vector<float> dst(n), src(n);
    for (int64_t i = 0; i < n; ++i) {
      dst[i] = static_cast<float>(i % 13) - 6;
      src[i] = static_cast<float>(i % 7) + 0.5f;
    }
    float *d_dst = nullptr, *d_src = nullptr;
    ASSERT_EQ(cudaMalloc(&d_dst, n * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&d_src, n * 4), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(d_src, src.data(), n * 4, cudaMemcpyHostToDevice), cudaSuccess);
    for (const bool with_src : {true, false}) {
      SCOPED_TRACE(absl::StrCat("head_dim ", head_dim, with_src ? ", set from src" : ", zeroed"));
      ASSERT_EQ(cudaMemcpy(d_dst, dst.data(), n * 4, cudaMemcpyHostToDevice), cudaSuccess);
      ASSERT_EQ(LaunchPackedCellsF32(s, regions, d_dst, with_src ? d_src : nullptr, nullptr),
                cudaSuccess);
      std::vector<float> got(n);
      ASSERT_EQ(cudaMemcpy(got.data(), d_dst, n * 4, cudaMemcpyDeviceToHost), cudaSuccess);
      int64_t set = 0;
      for (int64_t i = 0; i < n; ++i) {
        const bool in = in_region(i);
        set += in;
        const float want = in ? (with_src ? src[i] : 0.0f) : dst[i] + (with_src ? src[i] : 0.0f);
        ASSERT_EQ(got[i], want) << "element " << i << (in ? " (in a region)" : "");
      }
      // Rows 3-6 x 2 heads + row 9 x 1 head, of K and V, both batches.
      EXPECT_EQ(set, (4 * 2 + 1) * 2 * 2 * head_dim);
    }
    cudaFree(d_dst);
    cudaFree(d_src);
  }
  CellRegions too_many;
  too_many.count = kMaxCellRegions + 1;
  EXPECT_EQ(
      LaunchPackedCellsF32({.batch = 1, .rows = 1, .num_kv_heads = 1, .head_end = 1, .head_dim = 4},
                           too_many, nullptr, nullptr, nullptr),
      cudaErrorInvalidValue);
}

}  // namespace
}  // namespace ringattn::cuda
