// Kernel benchmark, our side: forward TFLOP/s on the rows of issue #5, one
// task over the whole sequence on random inputs, timed with CUDA events.
// Impls: "ringattn" (LaunchForward writing O in the input dtype, the work
// SDPA does), "ringattn_fused_state" (merging into the fp32 ring state, what
// a ring step does), "ringattn_mma_sync" and "ringattn_wgmma" (each
// tensor-core kernel by name, on Hopper) and "ringattn_reference" (the
// correctness-first kernel). Prints CSV (row, impl, pass, ms, TFLOP/s). bench/kernel_bench.sh runs
// it beside PyTorch SDPA (bench/torch_sdpa_bench.py) on the same GPU. FLOPs: 4 * b * s * s * h * d,
// halved for causal.
//   kernel_bench [ITERATIONS] [ROW] [all|auto|forward]   (10, every row, all; auto: kAuto's
//   kernels only; forward: kAuto's forward lines only)
// KERNEL_BENCH_SECONDS=S: each line instead launches back to back for at
// least S seconds (the GPU then runs under its power cap, as in training)
// and prints the mean time and two more columns, the joules per call (NVML's
// energy counter) and the mean SM clock in MHz while the line ran
// (bench/gpu_energy.h). Before its timed seconds each line runs untimed for
// KERNEL_BENCH_SETTLE seconds of wall-clock time (default 3; 0: none) and
// the timed calls are counted from the rate it reached, so that the line
// is timed at the clock the power cap holds (bench/settle.h says why).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "bench/cuda_events.h"
#include "bench/gpu_energy.h"
#include "bench/settle.h"
#include "cuda/backward_delta.h"
#include "cuda/device.h"
#include "cuda/flash/backward.h"
#include "cuda/flash/forward.h"
#include "cuda/forward_block.h"
#include "cuda/kernel_choice.h"

namespace ringattn::cuda {
namespace {

struct Row {
  const char* name;
  ElementType dtype;
  // kv_heads < heads: grouped-query attention (heads / kv_heads query
  // heads read each key/value head).
  int64_t batch, seqlen, heads, kv_heads, head_dim;
  bool causal;
  // > 0: a stripe layout's block of `stripe` ranks (queries at positions
  // stripe * i, keys at 1 + stripe * j: a ring step's strided block), whose
  // rate beside the causal row's is the simulator's strided_block_factor.
  int stripe = 0;
};

// issue #5's rows (head counts: 32, or 12 for the fp32 row), then the
// seed's grouped-query shape (32 query heads over 8 kv heads, as
// ring-flash-attention's benchmark and Llama 3) at 8192 tokens and at the
// short-sequence batch.
constexpr Row kRows[] = {
    {"bf16_b1_s8192_h32_d128_causal", ElementType::kBFloat16, 1, 8192, 32, 32, 128, true},
    {"bf16_b1_s8192_h32_d128_full", ElementType::kBFloat16, 1, 8192, 32, 32, 128, false},
    {"bf16_b1_s16384_h32_d64_causal", ElementType::kBFloat16, 1, 16384, 32, 32, 64, true},
    {"bf16_b1_s16384_h32_d256_causal", ElementType::kBFloat16, 1, 16384, 32, 32, 256, true},
    {"bf16_b1_s32768_h32_d128_causal", ElementType::kBFloat16, 1, 32768, 32, 32, 128, true},
    {"bf16_b16_s1024_h32_d128_causal", ElementType::kBFloat16, 16, 1024, 32, 32, 128, true},
    {"fp32_b4_s4096_h12_d64_causal", ElementType::kFloat32, 4, 4096, 12, 12, 64, true},
    {"fp32_b4_s4096_h12_d128_causal", ElementType::kFloat32, 4, 4096, 12, 12, 128, true},
    {"bf16_b1_s8192_h32_d128_stripe2", ElementType::kBFloat16, 1, 8192, 32, 32, 128, true, 2},
    {"bf16_b1_s8192_h32_kv8_d128_causal", ElementType::kBFloat16, 1, 8192, 32, 8, 128, true},
    {"bf16_b16_s1024_h32_kv8_d128_causal", ElementType::kBFloat16, 16, 1024, 32, 8, 128, true},
};

// The tensor-core kernels timed beside kAuto's choice, each on the rows it
// takes (one launch tells: fp32 has mma.sync, and wgmma under the
// cp.async column), with their CSV names forward and backward
// (kernel_bench.sh's columns).
struct NamedKernel {
  flash::TensorCoreKernel kernel;
  const char* forward;
  const char* backward;
};
constexpr NamedKernel kTensorCoreKernels[] = {
    {flash::TensorCoreKernel::kMmaSync, "ringattn_mma_sync", "ringattn_mma_sync"},
    {flash::TensorCoreKernel::kHopper, "ringattn_wgmma_cp_async", "ringattn_wgmma"},
    {flash::TensorCoreKernel::kWarpSpecialized, "ringattn_warp_specialized", "ringattn_warp_spec"},
};

// Fills `n` elements of `dtype` at device `p` with N(0, 1) values (a pool
// of random values, tiled with a shift per copy).
void FillRandom(void* p, ElementType dtype, int64_t n, uint32_t seed) {
  constexpr int64_t kPool = int64_t{1} << 22;
  static std::vector<float> pool = [] {
    std::vector<float> x(kPool + 4096);
    std::mt19937 rng(7);
    std::normal_distribution<float> normal;
    for (float& f : x) f = normal(rng);
    return x;
  }();
  const int64_t bytes = ElementBytes(dtype);
  std::vector<unsigned char> host(kPool * bytes);
  for (int64_t done = 0, copy = 0; done < n; done += kPool, ++copy) {
    const int64_t count = std::min(kPool, n - done);
    const float* src = pool.data() + (seed * 131 + copy * 17) % 4096;
    for (int64_t i = 0; i < count; ++i) {
      if (dtype == ElementType::kFloat32) {
        std::memcpy(&host[i * 4], &src[i], 4);
      } else if (dtype == ElementType::kBFloat16) {
        const __nv_bfloat16 h = __float2bfloat16(src[i]);
        std::memcpy(&host[i * 2], &h, 2);
      } else {
        const __half h = __float2half(src[i]);
        std::memcpy(&host[i * 2], &h, 2);
      }
    }
    cudaMemcpy(static_cast<unsigned char*>(p) + done * bytes, host.data(), count * bytes,
               cudaMemcpyHostToDevice);
  }
}

// Milliseconds the GPU spends on the work a callable enqueues (CUDA events
// around it, then a wait for the second; 0 when the events fail).
class EventTimer {
 public:
  template <typename F>
  float Ms(F&& work) {
    events_.Record(0);
    work();
    events_.Record(1);
    events_.Synchronize(1);
    return std::max(events_.ElapsedMs(0, 1), 0.0f);
  }

 private:
  bench::CudaEvents<2> events_;
};

// Median of `iterations` timed launches, in ms.
template <typename F>
float TimeMs(F&& launch, int iterations) {
  launch();  // warm-up
  EventTimer timer;
  std::vector<float> times;
  for (int i = 0; i < iterations; ++i) times.push_back(timer.Ms(launch));
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// A line's time, and the joules per call and the mean SM clock where they
// were measured (< 0: not).
struct Measured {
  float ms;
  double joules = -1;
  double sm_mhz = -1;
};

// KERNEL_BENCH_SECONDS: back-to-back launches for at least `seconds` after a
// warm-up, their mean time, the energy counter's difference per launch and
// the SM clock's mean while they ran (sampled every 10 ms: under the power
// cap the clock is what gives way).
struct Sustained {
  double seconds;
  double settle_seconds;  // untimed back-to-back calls first, wall-clock
  bench::GpuEnergy energy;
};

template <typename F>
Measured TimeSustained(F&& launch, const Sustained& sustained) {
  launch();  // warm-up, then one call to size the settle's batches
  EventTimer timer;
  const float one_ms = timer.Ms(launch);  // Settle and SustainedCalls clamp it
  bench::CudaEvents<3> events;            // bench::Settle's
  const float steady_ms = bench::Settle(launch, events, sustained.settle_seconds, one_ms);
  // The energy counter and the clock are read from the host after the
  // settle's wait: they are the timed calls' alone.
  const int64_t calls = bench::SustainedCalls(sustained.seconds, steady_ms);
  const absl::StatusOr<double> before = sustained.energy.Joules();
  bench::SmClockSampler clock(sustained.energy, std::chrono::milliseconds(10));
  const float total_ms = timer.Ms([&] {
    for (int64_t i = 0; i < calls; ++i) launch();
  });
  const double sm_mhz = clock.MeanMhz();
  const absl::StatusOr<double> after = sustained.energy.Joules();
  return {total_ms / static_cast<float>(calls),
          before.ok() && after.ok() ? (*after - *before) / static_cast<double>(calls) : -1.0,
          sm_mhz};
}

int Main(int argc, char** argv) {
  const int iterations = argc > 1 ? std::atoi(argv[1]) : 10;
  const std::string only = argc > 2 ? argv[2] : "";  // one row, for profiling
  // "all": every kernel by name too (kernel_bench.sh's columns); "auto":
  // only kAuto's choice ("ringattn", "ringattn_fused_state"), the A/B runs
  // of bench/kernel_ab.sh (the other kernels took most of a row's time);
  // "forward": auto's forward lines alone (KERNEL_AB_KERNELS=forward: a
  // forward kernel's A/B in less than half the device time).
  const std::string kernels = argc > 3 ? argv[3] : "all";
  if (iterations < 1 || argc > 4 ||
      (kernels != "all" && kernels != "auto" && kernels != "forward")) {
    std::fprintf(stderr, "usage: kernel_bench [ITERATIONS >= 1] [ROW] [all|auto|forward]\n");
    return 2;
  }
  // KERNEL_BENCH_SECONDS (the sustained mode), 0 when unset, and
  // KERNEL_BENCH_SETTLE (3 when unset).
  const auto env_seconds = [](const char* name, double unset, bool zero_ok, double& value) {
    value = unset;
    const char* env = std::getenv(name);
    if (env == nullptr || *env == '\0') return true;
    char* end = nullptr;
    value = std::strtod(env, &end);
    if (*end != '\0' || !(zero_ok ? value >= 0 : value > 0) || value > 3600) {
      std::fprintf(stderr, "kernel_bench: %s must be seconds in %s0, 3600]: %s\n", name,
                   zero_ok ? "[" : "(", env);
      return false;
    }
    return true;
  };
  double seconds = 0, settle_seconds = 3;
  if (!env_seconds("KERNEL_BENCH_SECONDS", 0, false, seconds) ||
      !env_seconds("KERNEL_BENCH_SETTLE", 3, true, settle_seconds)) {
    return 2;
  }
  if (!only.empty() && std::none_of(std::begin(kRows), std::end(kRows),
                                    [&](const Row& r) { return only == r.name; })) {
    std::fprintf(stderr, "kernel_bench: no row %s; the rows:", only.c_str());
    for (const Row& r : kRows) std::fprintf(stderr, " %s", r.name);
    std::fprintf(stderr, "\n");
    return 2;
  }
  if (absl::StatusOr<int> n = DeviceCount(); !n.ok()) {
    std::fprintf(stderr, "kernel_bench: %s\n", std::string(n.status().message()).c_str());
    return 1;
  }
  const bool every_kernel = kernels == "all";
  std::optional<Sustained> sustained;
  if (seconds > 0) {
    absl::StatusOr<bench::GpuEnergy> energy = bench::GpuEnergy::ForCurrentDevice();
    if (!energy.ok()) {
      std::fprintf(stderr, "kernel_bench: %s\n", std::string(energy.status().message()).c_str());
      return 1;
    }
    sustained = Sustained{seconds, settle_seconds, *energy};
  }
  // A line's time: the median of `runs` synchronized calls, or sustained.
  const auto measure = [&](const auto& launch, int runs) {
    return sustained ? TimeSustained(launch, *sustained) : Measured{TimeMs(launch, runs)};
  };
  std::printf(sustained ? "row,impl,pass,ms,tflops,joules,sm_mhz\n" : "row,impl,pass,ms,tflops\n");
  for (const Row& r : kRows) {
    if (!only.empty() && only != r.name) continue;
    const int64_t elem = ElementBytes(r.dtype);
    const int64_t n = r.batch * r.seqlen * r.heads * r.head_dim;
    const int64_t n_kv = r.batch * r.seqlen * r.kv_heads * r.head_dim;  // one of K, V
    void *q, *k, *v, *out;
    float *o, *lse;
    cudaMalloc(&q, n * elem);
    cudaMalloc(&k, n_kv * elem);
    cudaMalloc(&v, n_kv * elem);
    cudaMalloc(&out, n * elem);
    cudaMalloc(&o, n * 4);
    cudaMalloc(&lse, r.batch * r.heads * r.seqlen * 4);
    FillRandom(q, r.dtype, n, 1);
    FillRandom(k, r.dtype, n_kv, 2);
    FillRandom(v, r.dtype, n_kv, 3);
    cudaMemset(o, 0, n * 4);
    ForwardBlockArgs a =
        DenseBlockArgs(r.dtype, r.batch, r.seqlen, r.heads, r.kv_heads, r.head_dim, r.causal);
    a.q = q;
    a.k = k;
    a.v = v;
    a.state_o = o;
    a.state_lse = lse;
    if (r.stripe > 0) PlaceAsStripeStep(a, r.seqlen, r.stripe);
    // Allowed pairs: causal halves the square; a stripe block's key 1 + s j
    // precedes query s i for j < i: s (s - 1) / 2 pairs.
    const double pairs = r.stripe > 0 ? 0.5 * r.seqlen * (r.seqlen - 1)
                         : r.causal   ? 0.5 * r.seqlen * r.seqlen
                                      : 1.0 * r.seqlen * r.seqlen;
    const double flops = 4.0 * r.batch * pairs * r.heads * r.head_dim;
    const auto report = [&](const char* impl, Measured m, const char* pass = "fwd",
                            double factor = 1.0) {
      std::string line = absl::StrFormat("%s,%s,%s,%.3f,%.2f", r.name, impl, pass, m.ms,
                                         factor * flops / (m.ms * 1e-3) / 1e12);
      if (sustained) absl::StrAppendFormat(&line, ",%.5g,%.0f", m.joules, m.sm_mhz);
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
    };
    ForwardBlockArgs direct = a;
    direct.out = out;
    report("ringattn", measure([&] { LaunchForward(direct, nullptr); }, iterations));
    report("ringattn_fused_state", measure([&] { LaunchForward(a, nullptr); }, iterations));
    // The same on a state a pass's first step writes (state_fresh: the
    // state holds its reset value, not read).
    ForwardBlockArgs fresh = a;
    fresh.state_fresh = true;
    report("ringattn_fused_fresh", measure([&] { LaunchForward(fresh, nullptr); }, iterations));
    if (every_kernel && flash::FlashForwardSupports(direct) && flash::HopperDevice()) {
      for (const NamedKernel& k : kTensorCoreKernels) {
        if (flash::LaunchFlashForward(direct, nullptr, k.kernel) != cudaSuccess) continue;
        report(k.forward,
               measure([&] { flash::LaunchFlashForward(direct, nullptr, k.kernel); }, iterations));
      }
    }
    if (every_kernel && r.dtype != ElementType::kFloat32 && r.seqlen * r.batch <= 16384) {
      report("ringattn_reference", measure([&] { LaunchForwardBlock(a, nullptr); }, 1));
    }
    const auto free_row = [&] {
      if (const cudaError_t error = cudaDeviceSynchronize(); error != cudaSuccess) {
        std::fprintf(stderr, "%s: %s\n", r.name, cudaGetErrorString(error));
        return false;
      }
      for (void* p : {q, k, v, out, static_cast<void*>(o), static_cast<void*>(lse)}) cudaFree(p);
      return true;
    };
    if (kernels == "forward") {
      if (!free_row()) return 1;
      continue;
    }
    // Backward (D = rowsum(dO * O), then dQ, dK, dV in fp32), where the
    // tensor-core backward takes the row; 2.5x the forward's FLOPs.
    BackwardBlockArgs back;
    back.task = a;
    float *dq = nullptr, *dk = nullptr, *dv = nullptr, *delta = nullptr;
    void* dout = nullptr;
    cudaMalloc(&dout, n * elem);
    cudaMalloc(&dq, n * 4);
    cudaMalloc(&dk, n_kv * 4);
    cudaMalloc(&dv, n_kv * 4);
    cudaMalloc(&delta, r.batch * r.heads * r.seqlen * 4);
    FillRandom(dout, r.dtype, n, 4);
    back.dout = dout;
    back.lse = lse;
    back.delta = delta;
    back.dq = dq;
    back.dk = dk;
    back.dv = dv;
    // dK/dV as the CUDA backend launches them on a ring step's zeroed
    // buffer (the kernels store their rows instead of adding them:
    // key_grads_fresh), what a backward that writes dK/dV, like cuDNN's,
    // does; the adding kernels (a second launch on the rows) are the
    // ringattn_added_grads line. Under GQA the kernels add anyway (a kv
    // head's rows take every query head of its group), so the kv8 rows'
    // two lines time the same path.
    back.key_grads_fresh = true;
    {
      cudaMemset(o, 0, n * 4);
      cudaMemset(dq, 0, n * 4);
      cudaMemset(dk, 0, n_kv * 4);
      cudaMemset(dv, 0, n_kv * 4);
      LaunchForward(a, nullptr);  // the state the backward reads
      // D = rowsum(dO * O) from O of the given dtype.
      const auto deltas = [&](ElementType o_type, const void* o_data) {
        LaunchBackwardDelta(r.dtype, dout, o_type, o_data, delta, r.batch, r.seqlen, r.heads,
                            r.head_dim, nullptr);
      };
      const auto launch_backward = [&] { LaunchBackward(back, nullptr); };
      // A backward line: D from O (o_type, o_data), then `launch`, timed.
      const auto report_backward = [&](const char* impl, ElementType o_type, const void* o_data,
                                       const auto& launch, int runs) {
        report(impl,
               measure(
                   [&] {
                     deltas(o_type, o_data);
                     launch();
                   },
                   runs),
               "bwd", 2.5);
      };
      // Rows no tensor-core backward takes (fp32, d256) run the
      // correctness-first kernel: timed too, fewer times (it is slow), so
      // that the table shows what those rows cost.
      const bool tensor_cores = flash::FlashBackwardSupports(back);
      const int backward_iterations = tensor_cores ? iterations : std::min(iterations, 3);
      report_backward("ringattn", ElementType::kFloat32, o, launch_backward, backward_iterations);
      // D from the forward's output in the input dtype (what torch's
      // backward and the Python entry read) instead of the fp32 ring
      // state: two thirds of the D kernel's bytes at bf16. Timed right
      // after the line above, it runs on a hotter GPU: on the d128 rows up
      // to 11 % below it, while the two timed alternately were equal (the
      // O-dtype 0.2-1.7 % faster; 2026-12-02, docs/KERNEL_BENCH.md).
      if (tensor_cores && r.dtype != ElementType::kFloat32) {
        report_backward("ringattn_o_in_dtype", r.dtype, out, launch_backward, iterations);
      }
      // dK/dV added into the buffer (key_grads_fresh off).
      if (tensor_cores) {
        BackwardBlockArgs added = back;
        added.key_grads_fresh = false;
        report_backward(
            "ringattn_added_grads", ElementType::kFloat32, o,
            [&] { LaunchBackward(added, nullptr); }, iterations);
      }
      if (every_kernel && tensor_cores && flash::HopperDevice()) {
        for (const NamedKernel& k : kTensorCoreKernels) {
          if (flash::LaunchFlashBackward(back, nullptr, k.kernel) != cudaSuccess) continue;
          report_backward(
              k.backward, ElementType::kFloat32, o,
              [&] { flash::LaunchFlashBackward(back, nullptr, k.kernel); }, iterations);
        }
      }
      report("ringattn",
             measure(
                 [&] {
                   LaunchForward(direct, nullptr);
                   deltas(ElementType::kFloat32, o);
                   launch_backward();
                 },
                 backward_iterations),
             "fwd+bwd", 3.5);
    }
    for (void* p : {dout, static_cast<void*>(dq), static_cast<void*>(dk), static_cast<void*>(dv),
                    static_cast<void*>(delta)}) {
      cudaFree(p);
    }
    if (!free_row()) return 1;
  }
  return 0;
}

}  // namespace
}  // namespace ringattn::cuda

int main(int argc, char** argv) { return ringattn::cuda::Main(argc, argv); }
