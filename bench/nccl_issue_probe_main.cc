// What NCCL costs a ring step on one GPU, through a one-rank communicator
// sending to itself:
//   nccl_issue_probe [--mib=64] [--rounds=50] [--device=0]
// the host's time to issue a group of 1 or 2 sends and receives (a ring
// step's one block; a forward's first step, K and V apart), blocking and
// non-blocking (ringattn's communicators are non-blocking), the GPU idle
// before each: the median of --rounds from ncclGroupStart until the
// transfers are enqueued. On 2 x H200 a ring pass's first kernel waited
// ~0.18 ms for its step's group (ring_bench --timeline, docs/RING_BENCH.md).
//   nccl_issue_probe --beside [--mib=128] [--tokens=8192]
// when a hop of --mib and a full --tokens-token forward block (h32 d128
// bf16, ringattn's kernel: one CTA an SM holding its registers) end, each
// alone, the hop issued first (as the ring does) and the kernel launched
// first: whether NCCL's kernel, launched second, runs beside ours.
#include <cuda_runtime.h>

#include <cstdio>
#include <functional>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "comm/nccl_communicator.h"
#include "cuda/kernel_args.h"
#include "cuda/kernel_choice.h"

ABSL_FLAG(int64_t, mib, 64, "MiB each way per group (split among its messages)");
ABSL_FLAG(int, rounds, 50, "timed groups per line");
ABSL_FLAG(int, device, 0, "the GPU");
ABSL_FLAG(bool, beside, false, "time a hop beside a forward kernel instead (see above)");
ABSL_FLAG(int64_t, tokens, 8192, "--beside: the forward block's side");

namespace {

int IssueLines(int64_t bytes) {
  int failed = 0;
  for (const bool blocking : {false, true}) {
    for (const int parts : {1, 2}) {
      const absl::StatusOr<double> s = ringattn::comm::NcclSelfGroupIssueSeconds(
          absl::GetFlag(FLAGS_device), blocking, parts, bytes, absl::GetFlag(FLAGS_rounds));
      if (!s.ok()) {
        std::fprintf(stderr, "%s, %d message(s): %s\n", blocking ? "blocking" : "non-blocking",
                     parts, std::string(s.status().message()).c_str());
        failed = 1;
        continue;
      }
      std::printf(
          "%-12s communicator, %d send(s) and %d receive(s) of %lld MiB in all: group issue "
          "%.1f us (median of %d)\n",
          blocking ? "blocking" : "non-blocking", parts, parts,
          static_cast<long long>(absl::GetFlag(FLAGS_mib)), 1e6 * *s, absl::GetFlag(FLAGS_rounds));
    }
  }
  return failed;
}

int BesideLines(int64_t bytes) {
  namespace cuda = ringattn::cuda;
  const int64_t n = absl::GetFlag(FLAGS_tokens), heads = 32, d = 128;
  cuda::ForwardBlockArgs a =
      cuda::DenseBlockArgs(cuda::ElementType::kBFloat16, 1, n, heads, heads, d, false);
  void *q = nullptr, *k = nullptr, *v = nullptr, *o = nullptr, *lse = nullptr;
  const size_t elements = static_cast<size_t>(n * heads * d);
  if (cudaSetDevice(absl::GetFlag(FLAGS_device)) != cudaSuccess ||
      cudaMalloc(&q, elements * 2) != cudaSuccess || cudaMalloc(&k, elements * 2) != cudaSuccess ||
      cudaMalloc(&v, elements * 2) != cudaSuccess || cudaMalloc(&o, elements * 4) != cudaSuccess ||
      cudaMalloc(&lse, n * heads * 4) != cudaSuccess) {
    std::fprintf(stderr, "allocating the block: %s\n", cudaGetErrorString(cudaGetLastError()));
    return 1;
  }
  for (void* p : {q, k, v}) cudaMemset(p, 0x3e, elements * 2);  // bf16 0.186 everywhere
  cudaMemset(o, 0, elements * 4);
  cudaMemset(lse, 0, n * heads * 4);
  a.q = q;
  a.k = k;
  a.v = v;
  a.state_o = static_cast<float*>(o);
  a.state_lse = static_cast<float*>(lse);
  const std::function<cudaError_t(cudaStream_t)> kernel = [&](cudaStream_t stream) {
    return cuda::LaunchForward(a, stream);
  };
  const int rounds = absl::GetFlag(FLAGS_rounds), device = absl::GetFlag(FLAGS_device);
  int failed = 0;
  const auto line = [&](const char* what, bool kernel_first,
                        const std::function<cudaError_t(cudaStream_t)>& work) {
    const absl::StatusOr<ringattn::comm::SelfHopTimes> t =
        ringattn::comm::NcclSelfHopBeside(device, bytes, kernel_first, work, rounds);
    if (!t.ok()) {
      std::fprintf(stderr, "%s: %s\n", what, std::string(t.status().message()).c_str());
      failed = 1;
      return;
    }
    std::printf("%-34s hop ends %7.3f ms, kernel ends %7.3f ms (medians of %d)\n", what, t->hop_ms,
                work ? t->work_ms : 0.0, rounds);
  };
  line("the hop alone", false, nullptr);
  line("the hop issued, then the kernel", false, kernel);
  line("the kernel launched, then the hop", true, kernel);
  // The kernel alone: the same call with an empty hop is not possible
  // (NCCL needs bytes), so time it by events here.
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  kernel(nullptr);
  cudaEventRecord(start);
  for (int i = 0; i < rounds; ++i) kernel(nullptr);
  cudaEventRecord(stop);
  cudaEventSynchronize(stop);
  float ms = 0;
  cudaEventElapsedTime(&ms, start, stop);
  std::printf("%-34s %.3f ms a launch (%d back to back), %lld-token full block h32 d128 bf16\n",
              "the kernel alone", ms / rounds, rounds, static_cast<long long>(n));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  for (void* p : {q, k, v, o, lse}) cudaFree(p);
  return failed;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int64_t bytes = absl::GetFlag(FLAGS_mib) << 20;
  return absl::GetFlag(FLAGS_beside) ? BesideLines(bytes) : IssueLines(bytes);
}
