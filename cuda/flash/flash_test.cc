// GPU test of the tensor-core kernels (skips without a device): random block
// tasks (odd lengths, seqlen_q != seqlen_k, strided and grouped positions,
// every mask, GQA, head dims 64/128/256, fp16 and bf16) against a CPU fp64
// oracle on the same rounded inputs. The error bound is FlashAttention's
// rule: at most 2x the error of a flash-style computation that rounds P and
// O to the input dtype (what PyTorch's SDPA does), here emulated on the CPU
// so the test runs without PyTorch. The backward is checked against the
// correctness-first kernel (fp32 math, itself checked against the CPU fp64
// kernel in cuda:forward_block_test) by norm-relative error.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/dtype.h"
#include "core/dtype_convert.h"
#include "core/lse_math.h"
#include "cuda/backward_delta.h"
#include "cuda/device.h"
#include "cuda/device_test_util.h"
#include "cuda/element_type.h"
#include "cuda/flash/backward.h"
#include "cuda/flash/forward.h"
#include "cuda/forward_block.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace ringattn::cuda {
namespace {

using ::ringattn::cuda::testing::ToDevice;
using ::ringattn::cuda::testing::ToHost;
using ::ringattn::testing::RandomNormal;

constexpr int64_t kFar = int64_t{1} << 60;

int64_t At(const DeviceRun& r, int64_t i) {
  return r.base + (i / r.group) * r.group_stride + (i % r.group) * r.stride;
}

struct Case {
  DType dtype;
  int64_t head_dim, batch, q_rows, k_rows, heads, kv_heads;
  int64_t q_row, k_row;
  DeviceRun q_pos, k_pos;
  int64_t min_delta, max_delta, doc_begin, doc_end;
  std::vector<int64_t> key_limit;  // empty: none
  int64_t kv_head_begin, kv_head_end;
  double key_growth = 0;  // key row j scaled by 1 + key_growth * j (0: N(0, 1) keys)
};

double RoundTo(DType dtype, double x) {
  const std::vector<uint8_t> b = EncodeAll<double>(dtype, {&x, 1});
  return DecodeAll<double>(dtype, b)[0];
}

// Exact block output (fp64) and the flash-style emulation's error, per row.
struct Reference {
  std::vector<double> out, lse;  // like q; (batch, heads, q_rows)
  double emulated_error = 0;     // max |O_emulated - O| over the task's rows
};

Reference Oracle(const Case& c, const std::vector<double>& q, const std::vector<double>& k,
                 const std::vector<double>& v, double scale) {
  const int64_t d = c.head_dim, group = c.heads / c.kv_heads;
  Reference r;
  r.out.assign(c.batch * c.q_rows * c.heads * d, 0.0);
  r.lse.assign(c.batch * c.heads * c.q_rows, -INFINITY);
  std::vector<double> s(c.k_pos.length), p(c.k_pos.length), p_rounded(c.k_pos.length);
  std::vector<double> exact(d), emulated(d);
  for (int64_t b = 0; b < c.batch; ++b) {
    const int64_t limit = c.key_limit.empty() ? kFar : c.key_limit[b];
    for (int64_t h = c.kv_head_begin * group; h < c.kv_head_end * group; ++h) {
      for (int64_t i = 0; i < c.q_pos.length; ++i) {
        const int64_t qp = At(c.q_pos, i), t = c.q_row + i;
        const double* qv = &q[((b * c.q_rows + t) * c.heads + h) * d];
        double mx = -INFINITY;
        for (int64_t j = 0; j < c.k_pos.length; ++j) {
          const int64_t kp = At(c.k_pos, j), delta = kp - qp;
          s[j] = -INFINITY;
          if (delta < c.min_delta || delta > c.max_delta || kp >= limit || kp < c.doc_begin ||
              kp >= c.doc_end) {
            continue;
          }
          const double* kv = &k[((b * c.k_rows + c.k_row + j) * c.kv_heads + h / group) * d];
          double dot = 0;
          for (int64_t e = 0; e < d; ++e) dot += qv[e] * kv[e];
          s[j] = dot * scale;
          mx = std::max(mx, s[j]);
        }
        if (mx == -INFINITY) continue;
        double sum = 0;
        for (int64_t j = 0; j < c.k_pos.length; ++j) {
          sum += p[j] = std::exp(s[j] - mx);
          p_rounded[j] = p[j] == 0 ? 0 : RoundTo(c.dtype, p[j]);
        }
        r.lse[(b * c.heads + h) * c.q_rows + t] = mx + std::log(sum);
        // Key by key, so V's rows are read in order.
        std::fill(exact.begin(), exact.end(), 0.0);
        std::fill(emulated.begin(), emulated.end(), 0.0);
        for (int64_t j = 0; j < c.k_pos.length; ++j) {
          if (p[j] == 0) continue;
          const double* vv = &v[((b * c.k_rows + c.k_row + j) * c.kv_heads + h / group) * d];
          for (int64_t e = 0; e < d; ++e) {
            exact[e] += p[j] * vv[e];
            emulated[e] += p_rounded[j] * vv[e];
          }
        }
        for (int64_t e = 0; e < d; ++e) {
          const double o = exact[e] / sum;
          r.out[((b * c.q_rows + t) * c.heads + h) * d + e] = o;
          r.emulated_error =
              std::max(r.emulated_error, std::abs(RoundTo(c.dtype, emulated[e] / sum) - o));
        }
      }
    }
  }
  return r;
}

// Runs `c` twice on the GPU, one-call (args.out) and merged into a random
// prior fp32 state, and checks both against the oracle.
// The task fields of `c` (shapes, rows, positions, heads, mask) in `a`,
// with `key_limit` the device copy of c.key_limit (or null).
void SetTask(const Case& c, const int64_t* key_limit, ForwardBlockArgs* a) {
  a->batch = c.batch;
  a->q_rows = c.q_rows;
  a->k_rows = c.k_rows;
  a->num_heads = c.heads;
  a->num_kv_heads = c.kv_heads;
  a->head_dim = c.head_dim;
  a->q_row = c.q_row;
  a->k_row = c.k_row;
  a->q_pos = c.q_pos;
  a->k_pos = c.k_pos;
  a->kv_head_begin = c.kv_head_begin;
  a->kv_head_end = c.kv_head_end;
  a->min_delta = c.min_delta;
  a->max_delta = c.max_delta;
  a->key_limit = key_limit;
  a->doc_begin = c.doc_begin;
  a->doc_end = c.doc_end;
}

void Check(const Case& c, uint32_t seed, flash::TensorCoreKernel kernel) {
  SCOPED_TRACE(absl::StrCat(DTypeName(c.dtype), " d", c.head_dim, " q ", c.q_pos.length, " k ",
                            c.k_pos.length, " seed ", seed));
  const int64_t d = c.head_dim;
  const auto rounded = [&](int64_t n, uint32_t s) {
    std::vector<double> x = RandomNormal<double>(n, s);
    return DecodeAll<double>(c.dtype, EncodeAll<double>(c.dtype, absl::MakeConstSpan(x)));
  };
  const std::vector<double> q = rounded(c.batch * c.q_rows * c.heads * d, seed);
  std::vector<double> k = rounded(c.batch * c.k_rows * c.kv_heads * d, seed + 1);
  if (c.key_growth != 0) {
    for (size_t i = 0; i < k.size(); ++i) {
      const int64_t row = static_cast<int64_t>(i) / (c.kv_heads * d) % c.k_rows;
      k[i] = RoundTo(c.dtype, k[i] * (1 + c.key_growth * static_cast<double>(row)));
    }
  }
  const std::vector<double> v = rounded(c.batch * c.k_rows * c.kv_heads * d, seed + 2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const Reference want = Oracle(c, q, k, v, scale);

  const auto encode = [&](const std::vector<double>& x) {
    return ToDevice(EncodeAll<double>(c.dtype, absl::MakeConstSpan(x)));
  };
  uint8_t* d_q = encode(q);
  uint8_t* d_k = encode(k);
  uint8_t* d_v = encode(v);
  int64_t* d_limit = c.key_limit.empty() ? nullptr : ToDevice(c.key_limit);
  const std::vector<float> prior_o = RandomNormal<float>(q.size(), seed + 3);
  std::vector<float> prior_lse = RandomNormal<float>(want.lse.size(), seed + 4);
  prior_lse[0] = -INFINITY;  // a row that has seen no key yet
  float* d_o = ToDevice(prior_o);
  float* d_lse = ToDevice(prior_lse);
  uint8_t* d_out = encode(std::vector<double>(q.size(), 7.0));  // poison

  ForwardBlockArgs a;
  a.dtype = ElementTypeOf(c.dtype).value();
  a.q = d_q;
  a.k = d_k;
  a.v = d_v;
  a.state_o = d_o;
  a.state_lse = d_lse;
  SetTask(c, d_limit, &a);
  a.softmax_scale = static_cast<float>(scale);
  ASSERT_TRUE(flash::FlashForwardSupports(a));
  ASSERT_EQ(flash::LaunchFlashForward(a, nullptr, kernel), cudaSuccess);  // merged
  a.out = d_out;
  float* d_direct_lse = ToDevice(std::vector<float>(want.lse.size(), 7.f));
  a.state_lse = d_direct_lse;
  ASSERT_EQ(flash::LaunchFlashForward(a, nullptr, kernel), cudaSuccess);  // one call
  // A reset state (O = 0, LSE = -inf), merged into and written as fresh
  // (ForwardBlockArgs::state_fresh): the same bits.
  float* d_reset_o[2];
  float* d_reset_lse[2];
  for (int fresh = 0; fresh < 2; ++fresh) {
    d_reset_o[fresh] = ToDevice(std::vector<float>(q.size(), 0.f));
    d_reset_lse[fresh] = ToDevice(std::vector<float>(want.lse.size(), -INFINITY));
    ForwardBlockArgs reset = a;
    reset.out = nullptr;
    reset.state_o = d_reset_o[fresh];
    reset.state_lse = d_reset_lse[fresh];
    reset.state_fresh = fresh == 1;
    ASSERT_EQ(flash::LaunchFlashForward(reset, nullptr, kernel), cudaSuccess);
  }
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_EQ(ToHost(d_reset_o[1], q.size()), ToHost(d_reset_o[0], q.size()))
      << "a fresh state's O differs from a reset one merged into";
  EXPECT_EQ(ToHost(d_reset_lse[1], want.lse.size()), ToHost(d_reset_lse[0], want.lse.size()))
      << "a fresh state's LSE differs from a reset one merged into";
  const std::vector<float> o = ToHost(d_o, q.size());
  const std::vector<float> lse = ToHost(d_lse, want.lse.size());
  const std::vector<float> direct_lse = ToHost(d_direct_lse, want.lse.size());
  const std::vector<double> out =
      DecodeAll<double>(c.dtype, ToHost(d_out, q.size() * DTypeBytes(c.dtype)));

  // fp32 (3xTF32): 1e-5 relative to the largest output; fp16/bf16: 2x the
  // flash-style emulation.
  double max_out = 1;
  for (double x : want.out) max_out = std::max(max_out, std::abs(x));
  const double bound = c.dtype == DType::kFloat32 ? 1e-5 * max_out : 2 * want.emulated_error + 1e-6;
  double merged_error = 0, direct_error = 0, lse_error = 0;
  const int64_t group = c.heads / c.kv_heads;
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t h = 0; h < c.heads; ++h) {
      const bool in_task = h >= c.kv_head_begin * group && h < c.kv_head_end * group;
      for (int64_t t = 0; t < c.q_rows; ++t) {
        const bool row = in_task && t >= c.q_row && t < c.q_row + c.q_pos.length;
        const int64_t s = (b * c.heads + h) * c.q_rows + t;
        const int64_t o0 = ((b * c.q_rows + t) * c.heads + h) * d;
        // Merged state: what MergeRow of the exact block gives, in double.
        std::vector<double> merged(prior_o.begin() + o0, prior_o.begin() + o0 + d);
        double merged_lse = prior_lse[s];
        if (row) {
          MergeRow<double>(merged.data(), &merged_lse, &want.out[o0], want.lse[s],
                           static_cast<int>(d));
        }
        if (std::isinf(merged_lse)) {
          EXPECT_EQ(lse[s], merged_lse);
        } else {
          lse_error = std::max(lse_error, std::abs(lse[s] - merged_lse));
        }
        if (row) {
          if (std::isinf(want.lse[s])) {
            ASSERT_EQ(direct_lse[s], -INFINITY);
          } else {
            lse_error = std::max(lse_error, std::abs(direct_lse[s] - want.lse[s]));
          }
        } else {
          ASSERT_EQ(direct_lse[s], 7.f) << "wrote outside the task";
        }
        for (int64_t e = 0; e < d; ++e) {
          merged_error = std::max(merged_error, std::abs(o[o0 + e] - merged[e]));
          if (row) {
            direct_error = std::max(direct_error, std::abs(out[o0 + e] - want.out[o0 + e]));
          } else {
            ASSERT_EQ(out[o0 + e], 7.0) << "wrote outside the task";
          }
        }
      }
    }
  }
  EXPECT_LE(merged_error, bound) << "emulated flash error " << want.emulated_error;
  EXPECT_LE(direct_error, bound) << "emulated flash error " << want.emulated_error;
  EXPECT_LE(lse_error, 1e-4);
  for (void* p : {static_cast<void*>(d_q), static_cast<void*>(d_k), static_cast<void*>(d_v),
                  static_cast<void*>(d_limit), static_cast<void*>(d_o), static_cast<void*>(d_lse),
                  static_cast<void*>(d_out), static_cast<void*>(d_direct_lse),
                  static_cast<void*>(d_reset_o[0]), static_cast<void*>(d_reset_o[1]),
                  static_cast<void*>(d_reset_lse[0]), static_cast<void*>(d_reset_lse[1])}) {
    cudaFree(p);
  }
}

// A random task: positions contiguous, strided or grouped; a random mask.
Case RandomCase(std::mt19937& rng, DType dtype, int64_t head_dim) {
  const auto uniform = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  Case c;
  c.dtype = dtype;
  c.head_dim = head_dim;
  c.batch = uniform(1, 2);
  c.kv_heads = uniform(1, 2);
  c.heads = c.kv_heads * uniform(1, 3);
  const int64_t q_len = uniform(1, 300), k_len = uniform(1, 300);
  c.q_row = uniform(0, 5);
  c.k_row = uniform(0, 5);
  c.q_rows = c.q_row + q_len + uniform(0, 3);
  c.k_rows = c.k_row + k_len + uniform(0, 3);
  const auto run = [&](int64_t length) {
    switch (uniform(0, 2)) {
      case 0:
        return DeviceRun{uniform(0, 200), length, 1, length, length};
      case 1: {
        const int64_t stride = uniform(2, 4);
        return DeviceRun{uniform(0, 3), length, stride, length, stride * length};
      }
      default: {
        const int64_t g = uniform(2, 16), w = uniform(2, 4);
        return DeviceRun{uniform(0, 2 * g), length, 1, g, g * w};
      }
    }
  };
  c.q_pos = run(q_len);
  c.k_pos = run(k_len);
  c.min_delta = -kFar;
  c.max_delta = kFar;
  c.doc_begin = 0;
  c.doc_end = kFar;
  const int64_t span = std::max(At(c.q_pos, q_len - 1), At(c.k_pos, k_len - 1)) + 1;
  switch (uniform(0, 4)) {
    case 0:
      break;  // none
    case 1:
      c.max_delta = uniform(-5, 5);
      break;  // causal (shifted)
    case 2:   // sliding window
      c.max_delta = uniform(0, 40);
      c.min_delta = c.max_delta - uniform(0, 150);
      break;
    case 3:  // a document
      c.doc_begin = uniform(0, span / 2);
      c.doc_end = c.doc_begin + uniform(1, span);
      c.max_delta = 0;
      break;
    default:  // key padding
      for (int64_t b = 0; b < c.batch; ++b) c.key_limit.push_back(uniform(0, span));
  }
  c.kv_head_begin = uniform(0, c.kv_heads - 1);
  c.kv_head_end = uniform(c.kv_head_begin + 1, c.kv_heads);
  return c;
}

bool HaveGpu() {
  absl::StatusOr<int> n = DeviceCount();
  return n.ok();
}

// The forward kernels this device runs: mma.sync, and on Hopper the wgmma
// kernels (cp.async, and warp-specialized with TMA).
std::vector<flash::TensorCoreKernel> TensorCoreKernels() {
  if (flash::HopperDevice()) {
    return {flash::TensorCoreKernel::kMmaSync, flash::TensorCoreKernel::kHopper,
            flash::TensorCoreKernel::kWarpSpecialized};
  }
  std::printf("not a Hopper device: the wgmma kernels are not tested\n");
  return {flash::TensorCoreKernel::kMmaSync};
}
const char* KernelName(flash::TensorCoreKernel kernel) {
  switch (kernel) {
    case flash::TensorCoreKernel::kHopper:
      return "wgmma kernel";
    case flash::TensorCoreKernel::kWarpSpecialized:
      return "warp-specialized wgmma kernel";
    default:
      return "mma.sync kernel";
  }
}

TEST(FlashForwardTest, RandomTasksMatchTheFp64Oracle) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device: " << DeviceCount().status().message();
  for (flash::TensorCoreKernel kernel : TensorCoreKernels()) {
    SCOPED_TRACE(KernelName(kernel));
    std::mt19937 rng(2026);
    uint32_t seed = 1;
    for (DType dtype : {DType::kBFloat16, DType::kFloat16}) {
      for (int64_t d : {64, 128, 256}) {
        for (int i = 0; i < 5; ++i) Check(RandomCase(rng, dtype, d), seed += 10, kernel);
      }
    }
  }
}

// bf16, 50 query heads over 10 kv heads, `batch` rows of 1000 queries at
// positions 0..999 and `keys` keys at 400.., causal with a window of
// `window` positions (kFar: none).
Case ManyHeadsCase(int64_t head_dim, int64_t batch, int64_t keys, int64_t window) {
  Case c;
  c.dtype = DType::kBFloat16;
  c.head_dim = head_dim;
  c.batch = batch;
  c.heads = 50;
  c.kv_heads = 10;
  c.q_row = c.k_row = 0;
  c.q_rows = 1000;
  c.k_rows = keys;
  c.q_pos = DeviceRun{0, 1000, 1, 1000, 1000};
  c.k_pos = DeviceRun{400, keys, 1, keys, keys};
  c.min_delta = -window;
  c.max_delta = 0;  // causal: query i sees keys <= i
  c.doc_begin = 0;
  c.doc_end = kFar;
  c.kv_head_begin = 0;
  c.kv_head_end = c.kv_heads;
  return c;
}

// More tiles than SMs, so every CTA of the persistent warp-specialized
// forward takes several through its tile counter (the random cases have at
// most 36 tiles, one per CTA): 50 query heads over 10 kv heads, 1000 query
// rows (8 query tiles, the last short), 130 keys at positions 400..529,
// causal, so the first query tiles see no key (tiles without keys, published
// without copies) and the others some or all; one batch row, then two; each
// kernel, bf16, d64 and d128.
TEST(FlashForwardTest, ManyTilesPerCtaMatchTheFp64Oracle) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device: " << DeviceCount().status().message();
  uint32_t seed = 7001;
  for (flash::TensorCoreKernel kernel : TensorCoreKernels()) {
    SCOPED_TRACE(KernelName(kernel));
    for (int64_t batch : {1, 2}) {
      for (int64_t d : {64, 128}) {
        Check(ManyHeadsCase(d, batch, /*keys=*/130, /*window=*/kFar), seed += 10, kernel);
      }
    }
  }
}

// Causal diagonals off the tile grid for the warp-specialized forward (the
// Hopper kernel the ring runs): 1000 queries and 1000 keys at the same
// positions (the last query tile's second warpgroup partly past the task),
// keys shifted by 32 and by 96 positions (a diagonal inside a warpgroup's
// rows, and key tiles no query of a warpgroup sees), each with and without
// a window of 100; bf16 d128, 8 query heads over 2 kv heads.
TEST(FlashForwardTest, CausalDiagonalsMatchTheFp64Oracle) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device: " << DeviceCount().status().message();
  if (!flash::HopperDevice()) GTEST_SKIP() << "not a Hopper device";
  uint32_t seed = 7501;
  for (int64_t shift : {0, 32, 96}) {
    for (int64_t window : {kFar, int64_t{100}}) {
      Case c = ManyHeadsCase(128, /*batch=*/1, /*keys=*/1000, window);
      c.heads = 8;
      c.kv_heads = 2;
      c.kv_head_end = 2;
      c.k_pos = DeviceRun{shift, 1000, 1, 1000, 1000};
      SCOPED_TRACE(::testing::Message() << "keys from " << shift << ", window " << window);
      Check(c, seed += 10, flash::TensorCoreKernel::kWarpSpecialized);
    }
  }
}

// Scores that grow along the keys (key row j scaled by 1 + j / 40), so that
// later key tiles raise a row's running max by small and large steps (O and
// the sums rescaled on most steps), and scores that shrink (the max set by
// the first tiles, kept to the end): each kernel, causal, 600 queries and
// keys, bf16 at d64 / d128 / d256 and fp16 at d128. A kernel that moves the
// max only past a slack (FlashAttention-4's conditional rescaling) must pass
// it too: the thirty-fifth session's candidate h54 did that.
TEST(FlashForwardTest, GrowingAndShrinkingScoresMatchTheFp64Oracle) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device: " << DeviceCount().status().message();
  uint32_t seed = 7701;
  for (flash::TensorCoreKernel kernel : TensorCoreKernels()) {
    SCOPED_TRACE(KernelName(kernel));
    for (const auto& [dtype, d] :
         {std::pair{DType::kBFloat16, int64_t{64}}, std::pair{DType::kBFloat16, int64_t{128}},
          std::pair{DType::kBFloat16, int64_t{256}}, std::pair{DType::kFloat16, int64_t{128}}}) {
      for (double growth : {1.0 / 40, -1.0 / 700}) {
        Case c = ManyHeadsCase(d, /*batch=*/1, /*keys=*/600, kFar);
        c.dtype = dtype;
        c.heads = 2;
        c.kv_heads = 1;
        c.kv_head_end = 1;
        c.q_rows = 600;
        c.q_pos = DeviceRun{0, 600, 1, 600, 600};
        c.k_pos = DeviceRun{0, 600, 1, 600, 600};
        c.key_growth = growth;
        SCOPED_TRACE(::testing::Message() << "key growth " << growth);
        Check(c, seed += 10, kernel);
      }
    }
  }
}

// The warp-specialized forward's tile counter belongs to a (device, stream)
// pair: the default stream has one handle on every device, and a counter of
// one device's pool used on another would be another device's memory. Two
// GPUs: the default stream of each, back and forth.
TEST(FlashForwardTest, DefaultStreamsOfTwoDevicesHaveTheirOwnCounters) {
  const absl::StatusOr<int> n = DeviceCount();
  if (!n.ok() || *n < 2) GTEST_SKIP() << "needs two CUDA devices";
  if (!flash::HopperDevice()) GTEST_SKIP() << "the warp-specialized forward is Hopper's";
  std::mt19937 rng(7);
  uint32_t seed = 3;
  for (int device : {0, 1, 0, 1}) {
    SCOPED_TRACE(absl::StrCat("device ", device));
    ASSERT_EQ(cudaSetDevice(device), cudaSuccess);
    Check(RandomCase(rng, DType::kBFloat16, 128), seed += 10,
          flash::TensorCoreKernel::kWarpSpecialized);
  }
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
}

// fp32 (3xTF32): the mma.sync kernel at head_dim 64 and 128, and on Hopper
// the wgmma kernel at 64 (kAuto's choice there; 128 is not its size), on the
// same random tasks.
TEST(FlashForwardTest, Fp32TasksMatchTheFp64OracleTo1e5) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device: " << DeviceCount().status().message();
  for (flash::TensorCoreKernel kernel : TensorCoreKernels()) {
    if (kernel == flash::TensorCoreKernel::kWarpSpecialized) continue;
    SCOPED_TRACE(KernelName(kernel));
    std::mt19937 rng(32);
    uint32_t seed = 3001;
    for (int64_t d : {64, 128}) {
      for (int i = 0; i < 8; ++i) Check(RandomCase(rng, DType::kFloat32, d), seed += 10, kernel);
    }
  }
}

TEST(FlashForwardTest, FusedStateOverBlocksEqualsOneCall) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device: " << DeviceCount().status().message();
  // Causal attention over 4 key blocks of 160 rows merged into one fp32
  // state, against the one-call oracle: the fused merge adds no error
  // beyond the kernel's own (bf16 P), i.e. no partial output is rounded.
  constexpr int64_t kRows = 640, kWorld = 4, kDim = 128;
  Case c{DType::kBFloat16,
         kDim,
         1,
         kRows,
         kRows,
         2,
         1,
         0,
         0,
         {0, kRows, 1, kRows, kRows},
         {0, kRows, 1, kRows, kRows},
         -kFar,
         0,
         0,
         kFar,
         {},
         0,
         1};
  const auto rounded = [&](int64_t n, uint32_t s) {
    std::vector<double> x = RandomNormal<double>(n, s);
    return DecodeAll<double>(c.dtype, EncodeAll<double>(c.dtype, absl::MakeConstSpan(x)));
  };
  const std::vector<double> q = rounded(kRows * 2 * kDim, 11);
  const std::vector<double> k = rounded(kRows * kDim, 12);
  const std::vector<double> v = rounded(kRows * kDim, 13);
  const double scale = 1.0 / std::sqrt(double{kDim});
  const Reference want = Oracle(c, q, k, v, scale);
  const auto encode = [&](const std::vector<double>& x) {
    return ToDevice(EncodeAll<double>(c.dtype, absl::MakeConstSpan(x)));
  };
  uint8_t* d_q = encode(q);
  uint8_t* d_k = encode(k);
  uint8_t* d_v = encode(v);
  for (flash::TensorCoreKernel kernel : TensorCoreKernels()) {
    SCOPED_TRACE(KernelName(kernel));
    float* d_o = ToDevice(std::vector<float>(q.size(), 0.f));
    float* d_lse = ToDevice(std::vector<float>(want.lse.size(), -INFINITY));
    const int64_t block = kRows / kWorld;
    for (int64_t w = kWorld - 1; w >= 0; --w) {  // any order
      ForwardBlockArgs a;
      a.dtype = ElementType::kBFloat16;
      a.q = d_q;
      a.k = d_k;
      a.v = d_v;
      a.state_o = d_o;
      a.state_lse = d_lse;
      a.batch = 1;
      a.q_rows = a.k_rows = kRows;
      a.num_heads = 2;
      a.num_kv_heads = 1;
      a.head_dim = kDim;
      a.k_row = w * block;
      a.q_pos = {0, kRows, 1, kRows, kRows};
      a.k_pos = {w * block, block, 1, block, block};
      a.kv_head_end = 1;
      a.min_delta = -kFar;
      a.max_delta = 0;
      a.doc_end = kFar;
      a.softmax_scale = static_cast<float>(scale);
      ASSERT_EQ(flash::LaunchFlashForward(a, nullptr, kernel), cudaSuccess);
    }
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const std::vector<float> o = ToHost(d_o, q.size());
    const std::vector<float> lse = ToHost(d_lse, want.lse.size());
    double error = 0, lse_error = 0;
    for (size_t i = 0; i < o.size(); ++i) error = std::max(error, std::abs(o[i] - want.out[i]));
    for (size_t i = 0; i < lse.size(); ++i) {
      lse_error = std::max(lse_error, std::abs(lse[i] - want.lse[i]));
    }
    // P is rounded to bf16 once per block either way; the output is not.
    EXPECT_LE(error, 2 * want.emulated_error);
    EXPECT_LE(lse_error, 1e-5 * 8);
    cudaFree(d_o);
    cudaFree(d_lse);
  }
  for (void* p : {static_cast<void*>(d_q), static_cast<void*>(d_k), static_cast<void*>(d_v)}) {
    cudaFree(p);
  }
}

double NormRelError(const std::vector<float>& x, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    num += (double{x[i]} - ref[i]) * (double{x[i]} - ref[i]);
    den += double{ref[i]} * ref[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

// Launches CheckBackward ran on NaN-filled dK/dV because the kernel said
// it stores every row (FlashBackwardStoresEveryKeyRow).
int stored_every_row_launches = 0;

// The backward of `c` by the tensor-core kernel and by the fp32 reference
// kernel, from the same forward state; dK and dV begin `grads_offset`
// floats into their allocations.
void CheckBackward(const Case& c, uint32_t seed, int64_t grads_offset = 0) {
  SCOPED_TRACE(absl::StrCat("backward ", DTypeName(c.dtype), " d", c.head_dim, " q ",
                            c.q_pos.length, " k ", c.k_pos.length, " seed ", seed));
  const int64_t d = c.head_dim;
  const int64_t q_elements = c.batch * c.q_rows * c.heads * d;
  const int64_t kv_elements = c.batch * c.k_rows * c.kv_heads * d;
  const int64_t stats = c.batch * c.heads * c.q_rows;
  const auto encode = [&](int64_t n, uint32_t s) {
    std::vector<double> x = RandomNormal<double>(n, s);
    return ToDevice(EncodeAll<double>(c.dtype, absl::MakeConstSpan(x)));
  };
  uint8_t* d_q = encode(q_elements, seed);
  uint8_t* d_k = encode(kv_elements, seed + 1);
  uint8_t* d_v = encode(kv_elements, seed + 2);
  uint8_t* d_dout = encode(q_elements, seed + 3);
  int64_t* d_limit = c.key_limit.empty() ? nullptr : ToDevice(c.key_limit);
  float* d_o = ToDevice(std::vector<float>(q_elements, 0.f));
  float* d_lse = ToDevice(std::vector<float>(stats, -INFINITY));
  float* d_delta = ToDevice(std::vector<float>(stats, 0.f));
  ForwardBlockArgs a;
  a.dtype = ElementTypeOf(c.dtype).value();
  a.q = d_q;
  a.k = d_k;
  a.v = d_v;
  a.state_o = d_o;
  a.state_lse = d_lse;
  SetTask(c, d_limit, &a);
  a.softmax_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  ASSERT_EQ(LaunchForwardBlock(a, nullptr), cudaSuccess);
  ASSERT_EQ(LaunchBackwardDelta(a.dtype, d_dout, ElementType::kFloat32, d_o, d_delta, c.batch,
                                c.q_rows, c.heads, d, nullptr),
            cudaSuccess);
  // fp32: the mma.sync kernel, and on Hopper the wgmma one at head_dim 64;
  // head_dim 256: the wgmma kernel alone.
  std::vector<flash::TensorCoreKernel> kernels = TensorCoreKernels();
  if (d == 256) kernels = {flash::TensorCoreKernel::kHopper};
  if (c.dtype == DType::kFloat32) {
    kernels = {flash::TensorCoreKernel::kMmaSync};
    if (flash::HopperDevice() && d == 64) kernels.push_back(flash::TensorCoreKernel::kHopper);
  }
  const int n = static_cast<int>(kernels.size());
  std::vector<std::vector<float>> grads[3];  // [kernel: fp32, tensor cores...][dq, dk, dv]
  for (int kernel = 0; kernel <= n; ++kernel) {
    float* d_dq = ToDevice(std::vector<float>(q_elements, 0.f));
    float* d_dk = ToDevice(std::vector<float>(grads_offset + kv_elements, 0.f));
    float* d_dv = ToDevice(std::vector<float>(grads_offset + kv_elements, 0.f));
    BackwardBlockArgs args;
    args.task = a;
    args.dout = d_dout;
    args.lse = d_lse;
    args.delta = d_delta;
    args.dq = d_dq;
    args.dk = d_dk + grads_offset;
    args.dv = d_dv + grads_offset;
    if (kernel > 0) {
      ASSERT_TRUE(flash::FlashBackwardSupports(args));
      ASSERT_EQ(flash::LaunchFlashBackward(args, nullptr, kernels[kernel - 1]), cudaSuccess);
    } else {
      ASSERT_EQ(LaunchBackwardBlock(args, nullptr), cudaSuccess);
    }
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    grads[0].push_back(ToHost(d_dq, q_elements));
    grads[1].push_back(ToHost(d_dk + grads_offset, kv_elements));
    grads[2].push_back(ToHost(d_dv + grads_offset, kv_elements));
    if (kernel > 0) {
      // Zeroed dK/dV written as fresh (key_grads_fresh): what adding into
      // them gave -- the same bits where each CTA owns its rows (no GQA:
      // the kernels may store), else the same sums in another order. Where
      // the launch says it stores every row of its range
      // (FlashBackwardStoresEveryKeyRow: zeros in key tiles no query
      // meets), the range's rows (the task's keys x its kv heads) start as
      // NaN instead of zeros: a row it did not write stays NaN and differs.
      args.key_grads_fresh = true;
      args.dk = d_dk + grads_offset;  // the choice reads the alignment
      args.dv = d_dv + grads_offset;
      const bool stores_every_row =
          flash::FlashBackwardStoresEveryKeyRow(args, kernels[kernel - 1]);
      std::vector<float> start(grads_offset + kv_elements, 0.f);
      for (int64_t b = 0; stores_every_row && b < c.batch; ++b) {
        for (int64_t row = a.k_row; row < a.k_row + a.k_pos.length; ++row) {
          for (int64_t h = a.kv_head_begin; h < a.kv_head_end; ++h) {
            std::fill_n(start.begin() + grads_offset + KvOffset(a, b, row, h), d,
                        std::numeric_limits<float>::quiet_NaN());
          }
        }
      }
      float* d_fresh_dk = ToDevice(start);
      float* d_fresh_dv = ToDevice(start);
      args.dk = d_fresh_dk + grads_offset;
      args.dv = d_fresh_dv + grads_offset;
      ASSERT_EQ(flash::LaunchFlashBackward(args, nullptr, kernels[kernel - 1]), cudaSuccess);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const std::vector<float> fresh[2] = {ToHost(d_fresh_dk + grads_offset, kv_elements),
                                           ToHost(d_fresh_dv + grads_offset, kv_elements)};
      if (stores_every_row) ++stored_every_row_launches;
      for (int i = 1; i < 3; ++i) {
        if (c.heads == c.kv_heads) {
          EXPECT_EQ(fresh[i - 1], grads[i].back()) << "fresh " << (i == 1 ? "dk" : "dv");
        } else {
          EXPECT_LE(NormRelError(fresh[i - 1], grads[i].back()), 1e-6)
              << "fresh " << (i == 1 ? "dk" : "dv");
        }
      }
      for (float* p : {d_fresh_dk, d_fresh_dv}) cudaFree(p);
    }
    for (float* p : {d_dq, d_dk, d_dv}) cudaFree(p);
  }
  // bf16 operands of the five products: ~1e-2 norm-relative (METHOD.md's
  // band for bf16 operands); fp16 has 3 more mantissa bits; fp32 (3xTF32)
  // is fp32 math in another order.
  const double bound = c.dtype == DType::kBFloat16  ? 1e-2
                       : c.dtype == DType::kFloat16 ? 2e-3
                                                    : 1e-5;
  const char* names[] = {"dq", "dk", "dv"};
  // One key: every query's P is 1 and O is that key's V rounded to the
  // dtype, so dS = dP - D = dO . (V - O) and with it dQ and dK are rounding
  // noise around 0, which no norm-relative bound holds; dV is compared.
  const int first_grad = c.k_pos.length == 1 ? 2 : 0;
  for (int kernel = 1; kernel <= n; ++kernel) {
    for (int i = first_grad; i < 3; ++i) {
      EXPECT_LE(NormRelError(grads[i][kernel], grads[i][0]), bound)
          << names[i] << " " << KernelName(kernels[kernel - 1]);
    }
  }
  for (void* p : {static_cast<void*>(d_q), static_cast<void*>(d_k), static_cast<void*>(d_v),
                  static_cast<void*>(d_dout), static_cast<void*>(d_limit), static_cast<void*>(d_o),
                  static_cast<void*>(d_lse), static_cast<void*>(d_delta)}) {
    cudaFree(p);
  }
}

TEST(FlashBackwardTest, RandomTasksMatchTheFp32Kernel) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device: " << DeviceCount().status().message();
  std::mt19937 rng(7);
  uint32_t seed = 500;
  for (DType dtype : {DType::kBFloat16, DType::kFloat16}) {
    for (int64_t d : {64, 128}) {
      for (int i = 0; i < 6; ++i) CheckBackward(RandomCase(rng, dtype, d), seed += 10);
    }
  }
}

// Many key tiles (8 x 50 heads x 2 batch rows: more than a GPU's SMs, so a
// persistent backward takes several per CTA), the five query heads of a kv
// head in different CTAs, key tiles past the last query (keys at
// 400..1299, causal) that meet no query, and with a window, key tiles
// whose queries begin later.
TEST(FlashBackwardTest, ManyKeyTilesMatchTheFp32Kernel) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device: " << DeviceCount().status().message();
  uint32_t seed = 8001;
  for (int64_t d : {64, 128}) {
    for (int64_t window : {kFar, int64_t{300}}) {
      CheckBackward(ManyHeadsCase(d, /*batch=*/2, /*keys=*/900, window), seed += 10);
    }
  }
}

// Without GQA the warp-specialized kernel stores a fresh buffer's rows,
// and writes zeros in key tiles no query meets (keys at 1000..1299 here,
// causal, past the last query; with a window, also tiles before): every
// row of the launch's range is written, so a ring step whose launches
// cover its buffer skips the zeroing. CheckBackward fills the buffers with
// NaN where the kernel says so; on Hopper it must say so here.
TEST(FlashBackwardTest, KeyTilesNoQueryMeetsAreStoredAsZeros) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device: " << DeviceCount().status().message();
  uint32_t seed = 8201;
  const int before = stored_every_row_launches;
  for (int64_t d : {64, 128}) {
    for (int64_t window : {kFar, int64_t{300}}) {
      Case c = ManyHeadsCase(d, /*batch=*/2, /*keys=*/900, window);
      c.heads = c.kv_heads = c.kv_head_end = 10;
      CheckBackward(c, seed += 10);
    }
  }
  if (flash::HopperDevice()) {
    EXPECT_GT(stored_every_row_launches, before);
  }
}

// dK and dV 8 but not 16 bytes aligned: the d128 warp-specialized kernel
// adds them from registers, where these short blocks (<= 1024 queries)
// otherwise stage them for the TMA's reductions, as every other d128 case
// here does. Long blocks take the register path too.
TEST(FlashBackwardTest, KeyGradsOffTheTmaAlignmentMatchTheFp32Kernel) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device: " << DeviceCount().status().message();
  uint32_t seed = 8101;
  for (int64_t window : {kFar, int64_t{300}}) {
    CheckBackward(ManyHeadsCase(128, /*batch=*/1, /*keys=*/900, window), seed += 10,
                  /*grads_offset=*/2);
  }
}

// head_dim 256 (wgmma, Hopper; dK and dV split by columns) against the
// fp32 kernel.
TEST(FlashBackwardTest, HeadDim256TasksMatchTheFp32Kernel) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device: " << DeviceCount().status().message();
  if (!flash::HopperDevice()) GTEST_SKIP() << "the head_dim 256 tensor-core backward is Hopper's";
  std::mt19937 rng(256);
  uint32_t seed = 1300;
  for (DType dtype : {DType::kBFloat16, DType::kFloat16}) {
    for (int i = 0; i < 12; ++i) CheckBackward(RandomCase(rng, dtype, 256), seed += 10);
  }
}

// fp32 (3xTF32 on mma.sync, and on wgmma at head_dim 64 on Hopper)
// against the fp32 kernel.
TEST(FlashBackwardTest, Fp32TasksMatchTheFp32KernelTo1e5) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device: " << DeviceCount().status().message();
  std::mt19937 rng(64);
  uint32_t seed = 900;
  for (int64_t d : {64, 128}) {
    for (int i = 0; i < 8; ++i) CheckBackward(RandomCase(rng, DType::kFloat32, d), seed += 10);
  }
}

TEST(FlashForwardTest, OtherInputsAreNotTaken) {
  ForwardBlockArgs a;
  a.dtype = ElementType::kFloat32;
  a.head_dim = 256;  // fp32 takes 64 and 128
  a.num_heads = a.num_kv_heads = 1;
  a.kv_head_end = 1;
  EXPECT_FALSE(flash::FlashForwardSupports(a));
  EXPECT_EQ(flash::LaunchFlashForward(a, nullptr), cudaErrorNotSupported);
  a.head_dim = 128;
  EXPECT_TRUE(flash::FlashForwardSupports(a));
  // The fp32 wgmma kernel takes head_dim 128 too (an empty task: nothing to
  // do) on Hopper.
  EXPECT_EQ(flash::LaunchFlashForward(a, nullptr, flash::TensorCoreKernel::kHopper),
            flash::HopperDevice() ? cudaSuccess : cudaErrorNotSupported);
  EXPECT_EQ(flash::LaunchFlashForward(a, nullptr, flash::TensorCoreKernel::kWarpSpecialized),
            cudaErrorNotSupported);
  BackwardBlockArgs back;
  back.task = a;
  EXPECT_TRUE(flash::FlashBackwardSupports(back));
  EXPECT_EQ(flash::LaunchFlashBackward(back, nullptr, flash::TensorCoreKernel::kHopper),
            cudaErrorNotSupported)
      << "the fp32 wgmma backward is head_dim 64 only";
  EXPECT_EQ(flash::LaunchFlashBackward(back, nullptr, flash::TensorCoreKernel::kWarpSpecialized),
            cudaErrorNotSupported);
  back.task.dtype = ElementType::kBFloat16;
  back.task.head_dim = 256;
  EXPECT_EQ(flash::FlashBackwardSupports(back), flash::HopperDevice()) << "d256: Hopper's";
  EXPECT_EQ(flash::LaunchFlashBackward(back, nullptr, flash::TensorCoreKernel::kMmaSync),
            cudaErrorNotSupported);
  // At head_dim 64 the warp-specialized backward adds dK and dV rows with
  // 16-byte bulk reductions (kAuto takes another kernel).
  back.task.head_dim = 64;
  alignas(16) static float grads[4];
  back.dk = grads + 2;  // 8-byte aligned
  EXPECT_TRUE(flash::FlashBackwardSupports(back));
  EXPECT_EQ(flash::LaunchFlashBackward(back, nullptr, flash::TensorCoreKernel::kWarpSpecialized),
            cudaErrorNotSupported);
  a.dtype = ElementType::kBFloat16;
  a.head_dim = 96;
  EXPECT_FALSE(flash::FlashForwardSupports(a));
  a.head_dim = 128;
  EXPECT_TRUE(flash::FlashForwardSupports(a));
  alignas(16) static char buffer[32];
  a.q = buffer + 2;  // not 16-byte aligned
  EXPECT_FALSE(flash::FlashForwardSupports(a));
}

}  // namespace
}  // namespace ringattn::cuda
