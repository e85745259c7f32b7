// Kernel benchmark, our side: forward TFLOP/s of cuda:forward_block on the
// rows of issue #5, one task over the whole sequence, timed with CUDA
// events. Prints CSV (row, pass, ms, TFLOP/s). bench/kernel_bench.sh runs it
// beside PyTorch SDPA (bench/torch_sdpa_bench.py) on the same GPU.
// FLOPs: 4 * b * s * s * h * d, halved for causal.
#include <cuda_runtime.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "cuda/device.h"
#include "cuda/forward_block.h"

namespace ringattn::cuda {
namespace {

struct Row {
  const char* name;
  ElementType dtype;
  int64_t batch, seqlen, heads, head_dim;
  bool causal;
};

// issue #5's rows (head counts: 32, or 12 for the fp32 row).
constexpr Row kRows[] = {
    {"bf16_b1_s8192_h32_d128_causal", ElementType::kBFloat16, 1, 8192, 32, 128, true},
    {"bf16_b1_s8192_h32_d128_full", ElementType::kBFloat16, 1, 8192, 32, 128, false},
    {"bf16_b1_s16384_h32_d64_causal", ElementType::kBFloat16, 1, 16384, 32, 64, true},
    {"bf16_b1_s16384_h32_d256_causal", ElementType::kBFloat16, 1, 16384, 32, 256, true},
    {"bf16_b1_s32768_h32_d128_causal", ElementType::kBFloat16, 1, 32768, 32, 128, true},
    {"bf16_b16_s1024_h32_d128_causal", ElementType::kBFloat16, 16, 1024, 32, 128, true},
    {"fp32_b4_s4096_h12_d64_causal", ElementType::kFloat32, 4, 4096, 12, 64, true},
};

int Main(int argc, char** argv) {
  if (absl::StatusOr<int> n = DeviceCount(); !n.ok()) {
    std::fprintf(stderr, "kernel_bench: %s\n", std::string(n.status().message()).c_str());
    return 1;
  }
  const int iterations = argc > 1 ? std::atoi(argv[1]) : 3;
  std::printf("row,impl,pass,ms,tflops\n");
  for (const Row& r : kRows) {
    const int64_t elem = r.dtype == ElementType::kFloat32 ? 4 : 2;
    const int64_t n = r.batch * r.seqlen * r.heads * r.head_dim;
    void *q, *k, *v;
    float *o, *lse;
    cudaMalloc(&q, n * elem);
    cudaMalloc(&k, n * elem);
    cudaMalloc(&v, n * elem);
    cudaMalloc(&o, n * 4);
    cudaMalloc(&lse, r.batch * r.heads * r.seqlen * 4);
    cudaMemset(q, 0x3c, n * elem);  // small positive values in any dtype
    cudaMemset(k, 0x3c, n * elem);
    cudaMemset(v, 0x3c, n * elem);
    ForwardBlockArgs a;
    a.dtype = r.dtype;
    a.q = q;
    a.k = k;
    a.v = v;
    a.state_o = o;
    a.state_lse = lse;
    a.batch = r.batch;
    a.q_rows = a.k_rows = r.seqlen;
    a.num_heads = a.num_kv_heads = r.heads;
    a.head_dim = r.head_dim;
    a.q_pos = a.k_pos = {0, r.seqlen, 1, r.seqlen, r.seqlen};
    a.kv_head_end = r.heads;
    a.min_delta = -(int64_t{1} << 60);
    a.max_delta = r.causal ? 0 : (int64_t{1} << 60);
    a.doc_end = r.seqlen;
    a.softmax_scale = 0.088f;
    cudaEvent_t start, stop;
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
    LaunchForwardBlock(a, nullptr);  // warm-up
    cudaEventRecord(start);
    for (int i = 0; i < iterations; ++i) LaunchForwardBlock(a, nullptr);
    cudaEventRecord(stop);
    const cudaError_t error = cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    ms /= iterations;
    const double flops = 4.0 * r.batch * r.seqlen * r.seqlen * r.heads *
                         r.head_dim / (r.causal ? 2 : 1);
    if (error != cudaSuccess) {
      std::fprintf(stderr, "%s: %s\n", r.name, cudaGetErrorString(error));
      return 1;
    }
    std::printf("%s\n", absl::StrFormat("%s,ringattn_forward_block,fwd,%.3f,%.2f",
                                         r.name, ms, flops / (ms * 1e-3) / 1e12)
                            .c_str());
    std::fflush(stdout);
    for (void* p : {q, k, v, static_cast<void*>(o), static_cast<void*>(lse)}) cudaFree(p);
  }
  return 0;
}

}  // namespace
}  // namespace ringattn::cuda

int main(int argc, char** argv) { return ringattn::cuda::Main(argc, argv); }
