// Full (unmasked) blocks of q query rows against k key rows, forward and
// backward, on one GPU: the rate of a rectangle beside the square blocks
// whose rates the simulator's calibration holds (sim/calibration.cc takes
// a q x k block at the rate of a square of side sqrt(q k)). A ring step
// is often a rectangle: zigzag's later steps at W = 2 compute 4096 queries
// against 8192 keys (or 8192 against 4096), llama3's a rank's queries
// against the gathered keys of the whole ring.
//   rectangle_rates [--heads=32] [--head_dim=128] [--settle_s=0.5]
//                   [--blocks=4096x4096,4096x8192,...]
// bf16, random inputs, one batch row; each line after --settle_s seconds
// of back-to-back launches (bench/settle.h): TFLOP/s = 4 q k h d (x 2.5
// backward) over the time.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "bench/cuda_events.h"
#include "bench/settle.h"
#include "cuda/backward_delta.h"
#include "cuda/kernel_args.h"
#include "cuda/kernel_choice.h"

ABSL_FLAG(int64_t, heads, 32, "query heads (as many kv heads)");
ABSL_FLAG(int64_t, head_dim, 128, "head dim");
ABSL_FLAG(double, settle_s, 0.5, "seconds of back-to-back launches per line");
ABSL_FLAG(std::string, blocks,
          "2048x2048,4096x4096,5793x5793,8192x8192,11585x11585,16384x16384,"
          "4096x8192,8192x4096,2048x8192,8192x2048,8192x16384,16384x8192,4096x16384",
          "QxK blocks, comma-separated");

namespace ringattn::bench {
namespace {

void* Random(size_t elements, std::mt19937& rng) {
  std::vector<uint16_t> host(elements);
  std::uniform_int_distribution<int> mantissa(0, 127);
  for (uint16_t& x : host)
    x = static_cast<uint16_t>(0x3e00 + mantissa(rng));  // bf16 in [0.125, 0.25)
  void* d = nullptr;
  if (cudaMalloc(&d, elements * 2) != cudaSuccess) return nullptr;
  cudaMemcpy(d, host.data(), elements * 2, cudaMemcpyHostToDevice);
  return d;
}

float* Zeros(size_t elements) {
  void* d = nullptr;
  if (cudaMalloc(&d, elements * 4) != cudaSuccess) return nullptr;
  cudaMemset(d, 0, elements * 4);
  return static_cast<float*>(d);
}

// {fwd, bwd} ms per launch of the q x k block.
bool Time(int64_t q, int64_t k, int64_t heads, int64_t d, double settle_s, float* fwd_ms,
          float* bwd_ms) {
  constexpr int64_t kFar = int64_t{1} << 60;
  std::mt19937 rng(7);
  cuda::ForwardBlockArgs a =
      cuda::DenseBlockArgs(cuda::ElementType::kBFloat16, 1, q, heads, heads, d, /*causal=*/false);
  a.k_rows = k;
  a.k_pos = {0, k, 1, k, k};
  a.doc_end = kFar;
  a.q = Random(q * heads * d, rng);
  a.k = Random(k * heads * d, rng);
  a.v = Random(k * heads * d, rng);
  a.state_o = Zeros(q * heads * d);
  a.state_lse = Zeros(q * heads);
  cuda::BackwardBlockArgs b;
  b.task = a;
  b.dout = Random(q * heads * d, rng);
  b.lse = a.state_lse;
  float* delta = Zeros(q * heads);
  b.delta = delta;
  b.dq = Zeros(q * heads * d);
  b.dk = Zeros(k * heads * d);
  b.dv = Zeros(k * heads * d);
  bool ok =
      a.q && a.k && a.v && a.state_o && a.state_lse && b.dout && delta && b.dq && b.dk && b.dv;
  CudaEvents<3> events;
  const auto timed = [&](auto&& launch, float* ms) {
    events.Record(0);
    launch();
    events.Record(1);
    events.Synchronize(1);
    *ms = Settle(launch, events, settle_s, events.ElapsedMs(0, 1));
    return cudaGetLastError() == cudaSuccess;
  };
  ok = ok && timed([&] { cuda::LaunchForward(a, nullptr); }, fwd_ms);
  ok = ok &&
       cuda::LaunchBackwardDelta(cuda::ElementType::kBFloat16, b.dout, cuda::ElementType::kFloat32,
                                 a.state_o, delta, 1, q, heads, d, nullptr) == cudaSuccess;
  ok = ok && timed([&] { cuda::LaunchBackward(b, nullptr); }, bwd_ms);
  for (const void* p :
       {a.q, a.k, a.v, static_cast<const void*>(a.state_o), static_cast<const void*>(a.state_lse),
        b.dout, static_cast<const void*>(delta), static_cast<const void*>(b.dq),
        static_cast<const void*>(b.dk), static_cast<const void*>(b.dv)}) {
    cudaFree(const_cast<void*>(p));
  }
  return ok;
}

int Main() {
  const int64_t heads = absl::GetFlag(FLAGS_heads), d = absl::GetFlag(FLAGS_head_dim);
  std::printf(
      "block (q x k)   side  fwd ms  fwd TFLOP/s  bwd ms  bwd TFLOP/s  (h%lld d%lld bf16)\n",
      static_cast<long long>(heads), static_cast<long long>(d));
  int failed = 0;
  for (absl::string_view block : absl::StrSplit(absl::GetFlag(FLAGS_blocks), ',')) {
    const std::pair<absl::string_view, absl::string_view> qk = absl::StrSplit(block, 'x');
    int64_t q = 0, k = 0;
    if (!absl::SimpleAtoi(qk.first, &q) || !absl::SimpleAtoi(qk.second, &k) || q < 1 || k < 1) {
      std::fprintf(stderr, "block '%s': expected QxK, both positive\n", std::string(block).c_str());
      return 2;
    }
    float fwd = 0, bwd = 0;
    if (!Time(q, k, heads, d, absl::GetFlag(FLAGS_settle_s), &fwd, &bwd)) {
      std::fprintf(stderr, "block %s: %s\n", std::string(block).c_str(),
                   cudaGetErrorString(cudaGetLastError()));
      failed = 1;
      continue;
    }
    const double flops = 4.0 * q * k * heads * d;
    std::printf("%6lldx%-6lld %6.0f %7.3f %12.1f %7.3f %12.1f\n", static_cast<long long>(q),
                static_cast<long long>(k), std::sqrt(static_cast<double>(q) * k), fwd,
                flops / fwd * 1e-9, bwd, 2.5 * flops / bwd * 1e-9);
  }
  return failed;
}

}  // namespace
}  // namespace ringattn::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return ringattn::bench::Main();
}
