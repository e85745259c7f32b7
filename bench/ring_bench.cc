// ring_bench: the shape of ring-flash-attention's benchmark table on this
// machine's GPUs. For every row (ring, zigzag, stripe, llama3, and the
// varlen ring / zigzag / llama3 over the seed's document sets) it times the
// forward and forward+backward of the CUDA ring (device communicators,
// compute overlapping transfers) and prints iter/s, "theoretic" (the best
// single-GPU kernel on one rank's tokens / W, measured in the same run: ours,
// or PyTorch's flash / cuDNN given by --torch_single_ms),
// efficiency as the seed defines it, TFLOP/s per GPU, peak memory per rank
// beside the theoretical need, and the simulator's prediction of the same
// run from a calibration measured here (written with --calibration_out).
// bench/ring_bench.sh runs it beside PyTorch's context parallel. One process
// drives every GPU (a thread per rank), or, with --comm=nccl_env under
// torchrun / Slurm, each process is one rank and rank 0 prints.
//
//   ring_bench [--world=W] [--comm=auto|device|nccl|nccl_env] [--tokens=8192]
//              [--heads=32] [--kv_heads=32] [--head_dim=128] [--iters=10]
//              [--rows=zigzag,varlen_zigzag] [--gpu=h200] [--calibration_out=F] [--hop_sweep]
//              [--hop_only]
//              [--calibration_min] [--calibration_warmup_ms=0] [--calibration_task_cost]
//              [--calibration_events] [--fresh_writes=false] [--sync=auto|spin|yield|block]
//              [--torch_single_ms=F,FB,VF,VFB --torch_single_names=DENSE,VARLEN] [--settle_s=0]
#include <cuda_runtime_api.h>
#include <unistd.h>  // environ

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bench/cuda_events.h"
#include "bench/settle.h"
#include "comm/cuda_communicator.h"
#include "comm/host_rounds.h"
#include "comm/launch_env.h"
#include "comm/nccl_communicator.h"
#include "core/plan.h"
#include "core/schedule.h"
#include "core/status_macros.h"
#include "cuda/backward_delta.h"
#include "cuda/device.h"
#include "cuda/gpu_timeline.h"
#include "cuda/kernel_choice.h"
#include "cuda/ring_backend.h"
#include "sim/bench_rows.h"
#include "sim/simulator.h"

ABSL_FLAG(int, world, 0, "ranks; 0: one per visible GPU");
ABSL_FLAG(std::string, comm, "auto",
          "auto | device | nccl | nccl_env (this process is one rank of a torchrun/Slurm "
          "launch, one GPU each; with --nccl_id_file)");
ABSL_FLAG(std::string, nccl_id_file, "",
          "--comm=nccl_env: a fresh path every process sees; rank 0 writes the NCCL id there");
ABSL_FLAG(int64_t, tokens, 8192, "tokens per rank");
ABSL_FLAG(int64_t, heads, 32, "query heads");
ABSL_FLAG(int64_t, kv_heads, 32, "key/value heads");
ABSL_FLAG(int64_t, head_dim, 128, "head dim");
ABSL_FLAG(int, iters, 10, "timed iterations per row (after 3 warm-up ones)");
ABSL_FLAG(std::string, rows, "", "comma-separated row names; empty: all");
ABSL_FLAG(bool, fresh_writes, true,
          "the CUDA backend writes a pass's first contribution to its state and a backward "
          "step's first to its zeroed dK/dV instead of merging / adding them "
          "(CudaBackendOptions::fresh_writes); false: every launch merges / adds, the ring "
          "before 2026-12-02, for A/B runs of both in one binary");
ABSL_FLAG(bool, timeline, false,
          "print, per row, the GPU timeline of this process's first rank's median pass: an "
          "event after every backend call and forward launch, GPU ms since the pass's start "
          "(host ms of the enqueue in brackets), and the pass's GPU span over the passes "
          "(cuda/gpu_timeline.h; issue #19's 2-4k-token passes)");
ABSL_FLAG(bool, outputs, false,
          "time what a caller gets, as PyTorch's context parallel and the Python entry do: the "
          "state reset, O and LSE written in the input dtype after the forward, dQ, dK and dV "
          "after the backward (default: the ring passes alone)");
ABSL_FLAG(std::string, gpu, "",
          "simulator calibration to start from: h100, h200, h800, a100; empty: the table of "
          "the GPU this runs on (from its name)");
ABSL_FLAG(std::string, calibration_out, "", "write the measured calibration here");
ABSL_FLAG(bool, calibration_min, false,
          "calibrate from each pass's fastest iteration instead of the median (host and clock "
          "jitter only slow a pass down)");
ABSL_FLAG(bool, calibration_task_cost, false,
          "measure the model's per-kernel cost (launch_us, and launch_us_bwd for backward "
          "tasks) from two 128-token passes, ring (one task at W = 1) and zigzag (three), "
          "instead of the --gpu table's launch_us (experiment, issue #19)");
ABSL_FLAG(bool, calibration_events, false,
          "time each calibration block's kernels alone, as back-to-back launches between two "
          "CUDA events on the ring's random inputs, less the model's launch_us, instead of "
          "reading them from its ring pass's time less the modelled costs around them "
          "(experiment, issue #19: small blocks' points were noise); the causal / full factor "
          "at the full sweep's other sides is timed by events in every run");
ABSL_FLAG(std::string, sync, "auto",
          "how the host waits for a GPU (cudaSetDeviceFlags before any other call): auto (CUDA's "
          "choice), spin, yield or block (experiment, issue #19; no effect on the passes: the "
          "communicators poll an event, comm/poll_backoff.h, and do not call "
          "cudaStreamSynchronize)");
ABSL_FLAG(int, calibration_warmup_ms, 0,
          "passes on one rank's causal tokens before the calibration, at least this long "
          "(0: one round)");
ABSL_FLAG(double, settle_s, 0,
          "untimed passes before each row's timed ones, about this many seconds of them (0: 3 "
          "passes), and as long of untimed launches before the calibration's warm-up and "
          "full-block sweep, and of untimed passes before each measure of its causal / full "
          "factor at --tokens: under the power cap a short line runs at "
          "the clock the work before it left (the fifty-third session's W = 1 rows of the same "
          "work 3.19-3.58 ms apart); settled, every line runs at the clock the cap holds");
ABSL_FLAG(bool, hop_sweep, false,
          "also time the ring hop at 8 to 256 MiB per rank (one line, GB/s per size)");
ABSL_FLAG(bool, hop_only, false,
          "time the links only (the ring hop, the plain NCCL ring, the hop's issue, on NCCL "
          "rings the share of a full block's kernel rate a hop takes, --hop_sweep's sizes) and "
          "print the header: no calibration, no rows (a run per NCCL chunk size: "
          "bench/hop_chunk_sweep.sh); needs 2 ranks or more");
ABSL_FLAG(std::string, torch_single_ms, "",
          "F,FB,VF,VFB: PyTorch's best single-GPU forward and forward+backward ms on one "
          "rank's tokens, dense and varlen (bench/torch_single_gpu.py); theoretic takes "
          "the faster of it and ours");
ABSL_FLAG(std::string, torch_single_names, "torch,torch_varlen",
          "the kernels behind --torch_single_ms, dense and varlen");

namespace ringattn {
namespace {

// Only rank 0 prints when every process is one rank.
bool g_print = true;

template <typename... Args>
void Print(const char* format, Args... args) {
  if (!g_print) return;
  std::printf(format, args...);
  std::fflush(stdout);
}

struct Timing {
  double seconds = 0;  // median iteration, slowest rank
  double fastest = 0;  // fastest iteration, slowest rank
  // The median over iterations of the time in the passes' final waits
  // (RingRunStats::synchronize_seconds) of this process's first rank: the
  // host waiting for the GPU after enqueuing the pass.
  double wait = 0;
  // --timeline: this process's first rank's median pass (by host time) as
  // cuda::FormatTimeline, then the GPU span (first to last mark) over the passes.
  std::string timeline;
  cuda::MemoryReport memory;  // the rank with the largest peak
};

// Every NCCL_* and RINGATTN_NCCL_* variable of the environment,
// "NAME=VALUE" sorted and space-separated ("none" without any): the
// settings a hop was measured under.
std::string NcclEnvironment() {
  std::vector<std::string> set;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (std::strncmp(*e, "NCCL_", 5) == 0 || std::strncmp(*e, "RINGATTN_NCCL_", 14) == 0) {
      set.emplace_back(*e);
    }
  }
  std::sort(set.begin(), set.end());
  return set.empty() ? "none" : absl::StrJoin(set, " ");
}

// How the NCCL communicators issue their groups (comm::NcclIssueFromEnv;
// a bad value already failed their creation).
const char* NcclIssueName(const char* env) {
  const absl::StatusOr<comm::NcclIssue> issue = comm::NcclIssueFromEnv(env);
  if (!issue.ok()) return "(invalid)";
  return *issue == comm::NcclIssue::kNonBlocking ? "nonblocking"
                                                 : "blocking, connected to every peer at creation";
}

// The middle of `x` once sorted (the upper one of an even count; 0 when
// empty): every median this benchmark prints.
double Median(std::vector<double> x) {
  if (x.empty()) return 0;
  std::sort(x.begin(), x.end());
  return x[x.size() / 2];
}

// Uniform in [-2, 2): timing needs no particular distribution, and tens of
// millions of elements per tensor must be cheap to draw.
std::vector<uint16_t> RandomBf16(int64_t n, uint32_t seed) {
  uint64_t state = 0x9e3779b97f4a7c15ull * (seed + 1);
  std::vector<uint16_t> out(n);
  for (auto& x : out) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    const float f = static_cast<float>(state >> 40) / static_cast<float>(1 << 24) * 4.0f - 2.0f;
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    x = static_cast<uint16_t>(bits >> 16);
  }
  return out;
}

// RandomBf16(n, seed), drawn once per (n, seed) in this process: the
// calibration fills the same block sizes dozens of times (drawing 4 x 33 M
// elements each time doubled an 8192-token run). Not thread-safe: the
// calibration runs on the main thread.
const std::vector<uint16_t>& CachedRandomBf16(int64_t n, uint32_t seed) {
  static auto* const cache = new std::map<std::pair<int64_t, uint32_t>, std::vector<uint16_t>>;
  std::vector<uint16_t>& v = (*cache)[{n, seed}];
  if (static_cast<int64_t>(v.size()) != n) v = RandomBf16(n, seed);
  return v;
}

absl::Span<const uint8_t> Bytes(const std::vector<uint16_t>& v) {
  return {reinterpret_cast<const uint8_t*>(v.data()), v.size() * 2};
}

// Device buffers freed on destruction (--outputs' destinations, the
// transfers' and the calibration blocks' buffers).
class DeviceBuffers {
 public:
  DeviceBuffers() = default;
  DeviceBuffers(const DeviceBuffers&) = delete;
  DeviceBuffers& operator=(const DeviceBuffers&) = delete;
  ~DeviceBuffers() {
    for (void* p : buffers_) cudaFree(p);
  }
  // One buffer per size, after those there are; zeroed: filled with zeros.
  absl::Status Allocate(std::initializer_list<size_t> bytes, bool zeroed = false) {
    for (const size_t n : bytes) {
      void* p = nullptr;
      if (cudaMalloc(&p, std::max<size_t>(n, 1)) != cudaSuccess) {
        return absl::ResourceExhaustedError(
            absl::StrCat("allocating ", n, " bytes of device memory"));
      }
      buffers_.push_back(p);
      if (zeroed && cudaMemset(p, 0, n) != cudaSuccess) {
        return absl::InternalError(absl::StrCat("zeroing ", n, " bytes of device memory"));
      }
    }
    return absl::OkStatus();
  }
  void* operator[](size_t i) const { return buffers_[i]; }
  float* f32(size_t i) const { return static_cast<float*>(buffers_[i]); }

 private:
  std::vector<void*> buffers_;
};

// Ranks 0 .. world - 1: the group of a collective over the whole ring.
std::vector<int> AllRanks(int world) {
  std::vector<int> group(world);
  std::iota(group.begin(), group.end(), 0);
  return group;
}

// Posts one ring hop as a batch: `bytes` from `send` to the next rank and
// as many from the previous rank into `recv`, `parts` messages each way (a
// forward's first step sends K and V from the inputs as 2), the requests
// appended to `requests`.
void PostRingHop(Communicator& comm, int rank, int world, const void* send, void* recv,
                 int64_t bytes, int parts,
                 std::vector<std::unique_ptr<Communicator::Request>>& requests) {
  const size_t part = static_cast<size_t>(bytes / parts);
  comm.StartBatch();
  for (int k = 0; k < parts; ++k) {
    requests.push_back(comm.Send((rank + 1) % world, kTagKv,
                                 {static_cast<const uint8_t*>(send) + k * part, part}));
  }
  for (int k = 0; k < parts; ++k) {
    requests.push_back(comm.Recv((rank + world - 1) % world, kTagKv,
                                 {static_cast<uint8_t*>(recv) + k * part, part}));
  }
  comm.EndBatch();
}

class Bench {
 public:
  // Entry i runs global rank ranks[i] (default: i) on placements[i] with
  // comms[i]. When the entries are not the whole world (one rank per
  // process), the timings and memory of all ranks are gathered over them.
  Bench(std::vector<comm::CudaPlacement> placements, std::vector<Communicator*> comms,
        std::vector<int> ranks = {})
      : placements_(std::move(placements)), comms_(std::move(comms)), ranks_(std::move(ranks)) {
    if (ranks_.empty()) {
      for (size_t i = 0; i < comms_.size(); ++i) ranks_.push_back(static_cast<int>(i));
    }
  }

  // Times `iters` passes of the schedule on the first `world` ranks, after
  // `warmup` untimed ones (every rank runs the same number: the caller's
  // choice, not a clock's). outputs: --outputs' timed region (the state
  // reset and the results in the input dtype too).
  absl::StatusOr<Timing> Run(const Schedule& schedule, const AttentionShape& shape, bool backward,
                             int iters, bool outputs = false, int warmup = bench::kWarmupPasses) {
    const int world = schedule.layout().world();
    const int64_t local = schedule.layout().local_batch() * schedule.layout().local_seqlen();
    const int entries = Entries(world);
    std::vector<std::vector<double>> seconds(world), waits(world);
    std::vector<absl::Status> statuses(entries);
    std::vector<cuda::MemoryReport> memory(world);
    std::vector<std::thread> threads;
    // --timeline: the first entry's passes (iteration, entries) and its GPU spans.
    const bool timed_line = absl::GetFlag(FLAGS_timeline);
    cuda::GpuTimeline timeline;
    std::vector<std::vector<cuda::GpuTimeline::Entry>> lines;
    for (int i = 0; i < entries; ++i) {
      threads.emplace_back([&, i] {
        const int r = ranks_[i];
        cudaSetDevice(placements_[i].device);
        const auto q = RandomBf16(local * shape.num_heads * shape.head_dim, 4 * r + 1);
        const auto k = RandomBf16(local * shape.num_kv_heads * shape.head_dim, 4 * r + 2);
        const auto v = RandomBf16(local * shape.num_kv_heads * shape.head_dim, 4 * r + 3);
        const auto dout = RandomBf16(q.size(), 4 * r + 4);
        cuda::CudaBackendOptions o;
        o.device = placements_[i].device;
        o.stream = placements_[i].stream;
        o.synchronous = false;
        o.fresh_writes = absl::GetFlag(FLAGS_fresh_writes);
        if (timed_line && i == 0) o.timeline = &timeline;
        absl::StatusOr<std::unique_ptr<cuda::CudaRingBackend>> backend =
            cuda::CudaRingBackend::Create(schedule, r, shape, DefaultSoftmaxScale(shape.head_dim),
                                          {DType::kBFloat16, Bytes(q), Bytes(k), Bytes(v)}, o);
        absl::Status& s = statuses[i];
        if (!backend.ok()) s = backend.status();
        if (s.ok() && backward) s = (*backend)->SetDout(Bytes(dout));
        Communicator& comm = *comms_[i];
        const std::vector<int> group = AllRanks(world);
        DeviceBuffers out;  // outputs: the caller's buffers (input dtype; LSE fp32)
        if (s.ok() && outputs) {
          s = out.Allocate({q.size() * 2, static_cast<size_t>(local * shape.num_heads) * 4,
                            q.size() * 2, k.size() * 2, v.size() * 2});
        }
        for (int it = 0; s.ok() && it < iters + warmup; ++it) {
          // Without --outputs the state reset is not timed: it is queued on
          // the stream, so it is waited for here (else its memset of the
          // fp32 O, 4 bytes per query element, ran inside the timed pass).
          if (!outputs) s = (*backend)->Restart();
          if (s.ok() && !outputs && cudaStreamSynchronize((*backend)->stream()) != cudaSuccess) {
            s = absl::InternalError("synchronizing the state reset");
          }
          if (s.ok()) s = comm.Barrier(group);
          if (s.ok() && o.timeline != nullptr) {  // the reset's marks out, the pass's start in
            s = timeline.Read().status();
            if (s.ok()) s = timeline.Mark((*backend)->stream(), "start");
          }
          const absl::Time start = absl::Now();
          if (s.ok() && outputs) s = (*backend)->Restart();
          absl::StatusOr<RingRunStats> fwd =
              s.ok() ? RunRingForward(schedule, comm, **backend) : absl::StatusOr<RingRunStats>(s);
          if (!fwd.ok()) s = fwd.status();
          if (s.ok() && outputs) s = (*backend)->WriteOutputs(out[0], out.f32(1));
          double wait = s.ok() ? fwd->synchronize_seconds : 0;
          if (s.ok() && backward) {
            absl::StatusOr<RingRunStats> bwd =
                RunRingBackward(schedule, comm, **backend, {.forward_kv = fwd->last_kv});
            if (bwd.ok()) wait += bwd->synchronize_seconds;
            s = bwd.status();
            if (s.ok() && outputs) s = (*backend)->WriteGrads(out[2], out[3], out[4]);
          }
          if (s.ok() && outputs && cudaStreamSynchronize((*backend)->stream()) != cudaSuccess) {
            s = absl::InternalError("synchronizing the outputs' stream");
          }
          if (it >= warmup) {
            seconds[r].push_back(absl::ToDoubleSeconds(absl::Now() - start));
            waits[r].push_back(wait);
          }
          if (s.ok() && o.timeline != nullptr) {
            absl::StatusOr<std::vector<cuda::GpuTimeline::Entry>> line = timeline.Read();
            if (!line.ok()) s = line.status();
            if (line.ok() && it >= warmup) lines.push_back(*std::move(line));
          }
        }
        if (s.ok()) memory[r] = (*backend)->memory();
        if (!s.ok()) comm.Abort(s);
      });
    }
    for (std::thread& t : threads) t.join();
    for (const absl::Status& s : statuses) {
      if (!s.ok()) return s;
    }
    if (entries < world) {  // one rank per process: every rank's numbers
      std::vector<double> mine = seconds[ranks_[0]];
      mine.resize(iters);
      mine.push_back(memory[ranks_[0]].peak);
      mine.push_back(memory[ranks_[0]].theoretical);
      ASSIGN_OR_RETURN(std::vector<double> all, GatherAll(world, mine));
      for (int r = 0; r < world; ++r) {
        const double* x = all.data() + r * mine.size();
        seconds[r].assign(x, x + iters);
        memory[r] = {static_cast<int64_t>(x[iters]), static_cast<int64_t>(x[iters + 1])};
      }
    }
    Timing timing;
    std::vector<double> per_iteration(iters);
    for (int it = 0; it < iters; ++it) {
      for (int r = 0; r < world; ++r) {
        per_iteration[it] = std::max(per_iteration[it], seconds[r][it]);
      }
    }
    timing.seconds = Median(per_iteration);
    timing.fastest = *std::min_element(per_iteration.begin(), per_iteration.end());
    timing.wait = Median(waits[ranks_[0]]);
    if (!lines.empty() && lines.size() == seconds[ranks_[0]].size()) {
      std::vector<std::pair<double, int>> by_host;
      std::vector<double> spans;
      for (size_t k = 0; k < lines.size(); ++k) {
        by_host.push_back({seconds[ranks_[0]][k], static_cast<int>(k)});
        spans.push_back(lines[k].empty() ? 0 : lines[k].back().gpu_ms);
      }
      std::sort(by_host.begin(), by_host.end());
      timing.timeline =
          absl::StrFormat("%s | GPU span min / median / max %.3f / %.3f / %.3f ms",
                          cuda::FormatTimeline(lines[by_host[by_host.size() / 2].second]),
                          *std::min_element(spans.begin(), spans.end()), Median(spans),
                          *std::max_element(spans.begin(), spans.end()));
    }
    for (const cuda::MemoryReport& m : memory) {
      if (m.peak > timing.memory.peak) timing.memory = m;
    }
    return timing;
  }

  // GB/s of one ring hop of `bytes` per rank, all ranks sending at once.
  // GB/s one rank sends: in a ring hop (`bytes` to the next rank while the
  // previous rank's arrive), or in an all-gather of `bytes` per rank
  // (world - 1 shares to the others together).
  absl::StatusOr<double> LinkGBps(int world, int64_t bytes) {
    return Transfer(world, bytes, false);
  }
  absl::StatusOr<double> AllGatherGBps(int world, int64_t bytes) {
    return Transfer(world, bytes, true);
  }
  // GB/s of a plain NCCL ring hop of `bytes` per rank (ncclSend / ncclRecv
  // back to back, comm::NcclPlainRingSeconds): the baseline beside
  // LinkGBps. InvalidArgument without NCCL communicators.
  absl::StatusOr<double> PlainNcclGBps(int world, int64_t bytes) {
    ASSIGN_OR_RETURN(const double seconds, SlowestRankSeconds(world, [&](int i) {
                       return comm::NcclPlainRingSeconds(*comms_[i], bytes, 20);
                     }));
    return bytes / seconds / 1e9;
  }

  // The share of the attention kernels' rate a ring hop of `bytes` per rank
  // takes beside them (Calibration::hop_sm_share): on every rank, problem
  // b's forward kernel timed alone and beside a hop started just before it
  // (ranks in step by a barrier), five rounds in turn; the median time it
  // gains over the hop's alone (`link_gbps`), the largest of the ranks',
  // within [0, 0.95]. NCCL's send/recv kernel holds SMs for the hop's length;
  // device copies (copy engines) should take none.
  absl::StatusOr<double> HopShare(int world, int64_t bytes, double link_gbps,
                                  const sim::BenchProblem& b);

  absl::StatusOr<double> Transfer(int world, int64_t bytes, bool all_gather) {
    ASSIGN_OR_RETURN(
        const double seconds, SlowestRankSeconds(world, [&](int i) -> absl::StatusOr<double> {
          const int r = ranks_[i];
          DeviceBuffers buffers;
          RETURN_IF_ERROR(
              buffers.Allocate({static_cast<size_t>(bytes),
                                static_cast<size_t>(all_gather ? bytes * world : bytes)}));
          void *a = buffers[0], *b = buffers[1];
          Communicator& comm = *comms_[i];
          const std::vector<int> group = AllRanks(world);
          const auto hop = [&]() -> absl::Status {
            std::vector<std::unique_ptr<Communicator::Request>> requests;
            if (all_gather) {
              requests.push_back(
                  comm.StartAllGather(group, {static_cast<const uint8_t*>(a), size_t(bytes)},
                                      {static_cast<uint8_t*>(b), size_t(bytes) * world}));
            } else {
              PostRingHop(comm, r, world, a, b, bytes, 1, requests);
            }
            return WaitAll(requests);
          };
          // Two untimed hops, then kHops timed from a synchronized start.
          constexpr int kHops = 20;
          for (int i = 0; i < 2; ++i) RETURN_IF_ERROR(hop());
          RETURN_IF_ERROR(comm.Synchronize());
          RETURN_IF_ERROR(comm.Barrier(group));
          const absl::Time start = absl::Now();
          for (int i = 0; i < kHops; ++i) RETURN_IF_ERROR(hop());
          RETURN_IF_ERROR(comm.Synchronize());
          return absl::FDivDuration(absl::Now() - start, absl::Seconds(kHops));  // per hop
        }));
    const double sent = all_gather ? static_cast<double>(bytes) * (world - 1) : bytes;
    return sent / seconds / 1e9;
  }

  // The host's time to issue one ring hop of `bytes` a rank, from StartBatch
  // to EndBatch's return (the transfers enqueued), the GPU idle and the
  // ranks in step by a barrier, as at a ring pass's first step: the median
  // of 9 rounds, the slowest rank's. `parts` messages each way (the
  // forward's first step sends K and V from the inputs as 2; later steps
  // and the backward pass a block as 1).
  absl::StatusOr<double> HopIssueSeconds(int world, int64_t bytes, int parts) {
    const auto measure = [&](Communicator& comm, const std::vector<int>& group,
                             const PostHop& post) -> absl::StatusOr<double> {
      // One warm-up hop, then kTimed timed ones.
      constexpr int kWarmup = 1, kTimed = 9;
      std::vector<std::unique_ptr<Communicator::Request>> requests;
      ASSIGN_OR_RETURN(
          const double issue,
          comm::MedianHostSeconds(kWarmup, kTimed,
                                  comm::HostRound{[&]() -> absl::Status {
                                                    RETURN_IF_ERROR(comm.Synchronize());
                                                    return comm.Barrier(group);
                                                  },
                                                  [&] {
                                                    requests.clear();
                                                    post(parts, requests);
                                                    return absl::OkStatus();
                                                  },
                                                  [&] { return WaitAll(requests); }}));
      RETURN_IF_ERROR(comm.Synchronize());
      return issue;
    };
    return RingHopSeconds(world, bytes, measure);
  }

 private:
  // Posts one ring hop of the given parts between two buffers of a rank's
  // own (PostRingHop), appending its requests.
  using PostHop =
      std::function<void(int parts, std::vector<std::unique_ptr<Communicator::Request>>&)>;
  // The slowest rank's seconds of `measure(comm, group, post)`, each rank
  // with two device buffers of `bytes` and its communicator, every rank of
  // `world` in `group` (HopIssueSeconds, HopShare).
  absl::StatusOr<double> RingHopSeconds(
      int world, int64_t bytes,
      const std::function<absl::StatusOr<double>(Communicator&, const std::vector<int>&,
                                                 const PostHop&)>& measure) {
    return SlowestRankSeconds(world, [&](int i) -> absl::StatusOr<double> {
      const int r = ranks_[i];
      DeviceBuffers buffers;
      RETURN_IF_ERROR(buffers.Allocate({static_cast<size_t>(bytes), static_cast<size_t>(bytes)}));
      Communicator& comm = *comms_[i];
      const PostHop post = [&](int parts,
                               std::vector<std::unique_ptr<Communicator::Request>>& requests) {
        PostRingHop(comm, r, world, buffers[0], buffers[1], bytes, parts, requests);
      };
      return measure(comm, AllRanks(world), post);
    });
  }

  // The entries that run ranks of a `world`-rank schedule: all of them, or
  // the first alone for a one-rank baseline.
  int Entries(int world) const { return std::min<int>(world, static_cast<int>(comms_.size())); }

  // The slowest rank's seconds of `seconds_of(entry)`, each entry on a
  // thread of its own on its device, every process's ranks gathered.
  absl::StatusOr<double> SlowestRankSeconds(
      int world, const std::function<absl::StatusOr<double>(int)>& seconds_of) {
    const int entries = Entries(world);
    std::vector<absl::Status> statuses(entries);
    std::vector<double> seconds(entries);
    std::vector<std::thread> threads;
    for (int i = 0; i < entries; ++i) {
      threads.emplace_back([&, i] {
        cudaSetDevice(placements_[i].device);
        const absl::StatusOr<double> s = seconds_of(i);
        if (s.ok()) {
          seconds[i] = *s;
        } else {
          statuses[i] = s.status();
        }
      });
    }
    for (std::thread& t : threads) t.join();
    for (const absl::Status& s : statuses) {
      if (!s.ok()) return s;
    }
    if (entries < world) {
      ASSIGN_OR_RETURN(std::vector<double> all, GatherAll(world, seconds));
      seconds = std::move(all);
    }
    return *std::max_element(seconds.begin(), seconds.end());
  }

  // Every rank's `mine` (the same size on each), in rank order, through
  // the one-rank-per-process communicator.
  absl::StatusOr<std::vector<double>> GatherAll(int world, const std::vector<double>& mine) {
    const std::vector<int> group = AllRanks(world);
    std::vector<double> all(mine.size() * world);
    const absl::Status s = comms_[0]->AllGather(
        group, {reinterpret_cast<const uint8_t*>(mine.data()), mine.size() * sizeof(double)},
        {reinterpret_cast<uint8_t*>(all.data()), all.size() * sizeof(double)});
    if (!s.ok()) return s;
    return all;
  }

  std::vector<comm::CudaPlacement> placements_;
  std::vector<Communicator*> comms_;
  std::vector<int> ranks_;
};

using sim::BenchProblem;
using sim::BenchRow;
using sim::kBenchRows;

// A row's problem with this run's flags.
BenchProblem MakeConfig(const BenchRow& row, int world, int64_t tokens,
                        const std::vector<int64_t>& docs) {
  return sim::MakeBenchProblem(row,
                               {world, tokens, absl::GetFlag(FLAGS_heads),
                                absl::GetFlag(FLAGS_kv_heads), absl::GetFlag(FLAGS_head_dim)},
                               docs);
}

// --calibration_events: the seconds of our attention kernels alone on one
// rank's block of `b` (every query against every key of the rank, under
// b's mask): the fused-state forward the ring runs, and the backward
// without its D kernel (the model charges D as a memory pass), each the
// mean of `launches` back-to-back launches between two events after an
// untimed one. Inputs are the ring's (RandomBf16), D is the forward's: the
// time depends on the values, not through the arithmetic (on zeros the
// same kernels ran 9-10 % faster forward and 13-18 % backward on H200,
// 2026-12-03; data-dependent power is the usual cause, not established
// there). The ring pass's host costs are not in it: they are
// Calibration::pass_overhead_us_* and launch_us.
struct BlockLaunch {
  // The positions of a stripe ring step's block at W = 2 (queries 0, 2, 4,
  // ..., keys 1, 3, 5, ...: the next rank's), which a causal mask cuts to
  // n (n - 1) / 2 allowed pairs.
  bool strided = false;
  // As a ring pass's first launch on the rows (the forward writes the state
  // without reading it, the backward stores dK/dV into zeroed buffers: the
  // CUDA backend's fresh writes); false: merged into / added to what is
  // there.
  bool fresh = true;
  // The backward timed too; false: the forward alone (the second is 0).
  bool backward = true;
  // Each launch alone, as a W = 1 ring pass's single task is: after the
  // stream has drained, between its own two events; the median launch
  // instead of the mean of back-to-back ones.
  bool lone = false;
  // Back-to-back launches: untimed ones for these wall-clock seconds first
  // (bench::Settle; --settle_s), so that the timed ones run at the clock
  // the power cap holds.
  double settle_s = 0;
  // Work started just before the timed launches' start event, beside them
  // (a ring hop on the communicator's stream: Bench::HopShare), and its
  // wait after their stop event; unset: none.
  std::function<absl::Status()> start_beside, wait_beside;
};
absl::StatusOr<std::pair<double, double>> BlockKernelSeconds(const BenchProblem& b, int launches,
                                                             const BlockLaunch& how = {}) {
  const AttentionShape& shape = b.shape;
  const int64_t n = shape.seqlen_q;
  if (shape.batch != 1 || shape.seqlen_k != n || launches < 1 || (how.strided && !b.mask.causal)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "BlockKernelSeconds: a one-rank block (batch 1, q = k tokens, causal if strided) and >= "
        "1 launch expected; got batch ",
        shape.batch, ", ", n, " x ", shape.seqlen_k, " tokens, causal ", b.mask.causal, ", ",
        launches, " launches"));
  }
  const size_t q_bytes = shape.q_elements() * 2, kv_bytes = shape.kv_elements() * 2;
  const size_t q_f32 = shape.q_elements() * 4, kv_f32 = shape.kv_elements() * 4,
               stats_f32 = shape.lse_elements() * 4;
  // q, k, v, O, LSE; dO, D, dQ, dK, dV.
  DeviceBuffers buffers;
  RETURN_IF_ERROR(buffers.Allocate(
      {q_bytes, kv_bytes, kv_bytes, q_f32, stats_f32, q_bytes, stats_f32, q_f32, kv_f32, kv_f32},
      /*zeroed=*/true));
  cuda::ForwardBlockArgs a =
      cuda::DenseBlockArgs(cuda::ElementType::kBFloat16, 1, n, shape.num_heads, shape.num_kv_heads,
                           shape.head_dim, b.mask.causal);
  a.q = buffers[0];
  a.k = buffers[1];
  a.v = buffers[2];
  a.state_o = buffers.f32(3);
  a.state_lse = buffers.f32(4);
  if (how.strided) cuda::PlaceAsStripeStep(a, n, 2);
  // Q, K, V, dO drawn as the ring's are (seeds apart from its ranks').
  {
    const int64_t q_count = static_cast<int64_t>(shape.q_elements()),
                  kv_count = static_cast<int64_t>(shape.kv_elements());
    const std::pair<int, const std::vector<uint16_t>*> fills[] = {
        {0, &CachedRandomBf16(q_count, 101)},
        {1, &CachedRandomBf16(kv_count, 102)},
        {2, &CachedRandomBf16(kv_count, 103)},
        {5, &CachedRandomBf16(q_count, 104)}};
    for (const auto& [index, fill] : fills) {
      const std::vector<uint16_t>& values = *fill;
      if (cudaMemcpy(buffers[index], values.data(), values.size() * 2, cudaMemcpyHostToDevice) !=
          cudaSuccess) {
        return absl::InternalError("BlockKernelSeconds: copying the random inputs");
      }
    }
  }
  a.state_fresh = how.fresh;
  cuda::BackwardBlockArgs back;
  back.key_grads_fresh = how.fresh;
  back.dout = buffers[5];
  back.lse = a.state_lse;
  back.delta = buffers.f32(6);
  back.dq = buffers.f32(7);
  back.dk = buffers.f32(8);
  back.dv = buffers.f32(9);
  back.task = a;
  cudaEvent_t start = nullptr, stop = nullptr;
  if (cudaEventCreate(&start) != cudaSuccess || cudaEventCreate(&stop) != cudaSuccess) {
    if (start != nullptr) cudaEventDestroy(start);
    return absl::InternalError("BlockKernelSeconds: creating the timing events");
  }
  const auto seconds = [&](const std::function<cudaError_t()>& launch) -> absl::StatusOr<double> {
    // Milliseconds of `count` launches between the two events, `beside`
    // the work of how.start_beside.
    absl::Status beside_status;
    const auto timed = [&](int count, float* ms, bool beside = false) {
      beside = beside && how.start_beside != nullptr;
      if (beside) beside_status = how.start_beside();
      cudaError_t e = cudaEventRecord(start);
      for (int i = 0; e == cudaSuccess && i < count; ++i) e = launch();
      if (e == cudaSuccess) e = cudaEventRecord(stop);
      if (e == cudaSuccess) e = cudaEventSynchronize(stop);
      if (e == cudaSuccess) e = cudaEventElapsedTime(ms, start, stop);
      if (beside && how.wait_beside != nullptr) beside_status.Update(how.wait_beside());
      return e;
    };
    cudaError_t e = launch();  // untimed
    std::vector<double> lone_ms;
    float ms = 0;
    if (how.settle_s > 0 && !how.lone && e == cudaSuccess && (e = timed(1, &ms)) == cudaSuccess) {
      bench::CudaEvents<3> events;
      bench::Settle(launch, events, how.settle_s, ms);
      e = cudaGetLastError();
    }
    for (int i = 0; how.lone && e == cudaSuccess && i < launches; ++i) {
      e = cudaStreamSynchronize(nullptr);
      if (e == cudaSuccess) e = timed(1, &ms);
      lone_ms.push_back(ms);
    }
    if (!how.lone && e == cudaSuccess) e = timed(launches, &ms, /*beside=*/true);
    if (e != cudaSuccess) {
      return absl::InternalError(
          absl::StrCat("BlockKernelSeconds: ", n, "-token block: ", cudaGetErrorString(e)));
    }
    RETURN_IF_ERROR(beside_status);
    if (how.lone) return 1e-3 * Median(lone_ms);
    return 1e-3 * ms / launches;
  };
  absl::StatusOr<double> fwd = seconds([&] { return cuda::LaunchForward(a, nullptr); });
  absl::StatusOr<double> bwd = 0.0;
  if (fwd.ok() && how.backward) {
    // D = rowsum(dO * O) of the forward's state, as the ring's backward has.
    const cudaError_t e = cuda::LaunchBackwardDelta(
        cuda::ElementType::kBFloat16, back.dout, cuda::ElementType::kFloat32, a.state_o,
        buffers.f32(6), 1, n, shape.num_heads, shape.head_dim, nullptr);
    bwd = e == cudaSuccess
              ? seconds([&] { return cuda::LaunchBackward(back, nullptr); })
              : absl::InternalError(absl::StrCat("BlockKernelSeconds: D: ", cudaGetErrorString(e)));
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  RETURN_IF_ERROR(fwd.status());
  RETURN_IF_ERROR(bwd.status());
  return std::pair{*fwd, *bwd};
}

absl::StatusOr<double> Bench::HopShare(int world, int64_t bytes, double link_gbps,
                                       const BenchProblem& b) {
  if (link_gbps <= 0) return absl::InvalidArgumentError("HopShare: no hop bandwidth measured");
  const auto measure = [&](Communicator& comm, const std::vector<int>& group,
                           const PostHop& post) -> absl::StatusOr<double> {
    std::vector<std::unique_ptr<Communicator::Request>> requests;
    BlockLaunch beside{.backward = false};
    beside.start_beside = [&]() -> absl::Status {
      post(1, requests);
      return absl::OkStatus();
    };
    beside.wait_beside = [&]() -> absl::Status {
      absl::Status s = WaitAll(requests);
      requests.clear();
      return s;
    };
    std::vector<double> gains;
    for (int round = 0; round < 5; ++round) {
      RETURN_IF_ERROR(comm.Barrier(group));
      ASSIGN_OR_RETURN(const auto alone, BlockKernelSeconds(b, 1, {.backward = false}));
      RETURN_IF_ERROR(comm.Barrier(group));
      ASSIGN_OR_RETURN(const auto with_hop, BlockKernelSeconds(b, 1, beside));
      gains.push_back(with_hop.first - alone.first);
    }
    const double hop_s = static_cast<double>(bytes) / (1e9 * link_gbps);
    return std::clamp(Median(gains) / hop_s, 0.0, 0.95);
  };
  return RingHopSeconds(world, bytes, measure);
}

// The medians of the {fwd, bwd} pairs of `rounds` calls of `measure`
// (rounds odd): a calibration ratio whose two measures are taken in turn,
// so that the GPU's clocks drift on both.
template <typename Measure>
absl::StatusOr<std::pair<double, double>> MedianOfRounds(int rounds, const Measure& measure) {
  std::vector<double> fwd, bwd;
  for (int round = 0; round < rounds; ++round) {
    ASSIGN_OR_RETURN(const auto r, measure());
    fwd.push_back(r.first);
    bwd.push_back(r.second);
  }
  return std::pair{Median(fwd), Median(bwd)};
}

// --calibration_task_cost: the model's per-kernel costs (cal->launch_us,
// and launch_us_bwd for backward tasks) from two 128-token passes on one
// GPU, `one` (ring: one task at W = 1) measured as one_f / one_fb seconds
// (forward; forward and backward) and zigzag's three tasks timed here: the
// extra time of the three-task pass less what the model charges the extra
// tasks' FLOPs, per extra kernel the model counts (the model is linear in
// both costs). Returns the calibration line's report of it.
absl::StatusOr<std::string> MeasureTaskCost(Bench& alone, const BenchProblem& one, double one_f,
                                            double one_fb,
                                            const std::function<double(const Timing&)>& pass_s,
                                            sim::Calibration* cal) {
  const BenchProblem three = MakeConfig(kBenchRows[1], 1, 128, {});
  ASSIGN_OR_RETURN(Schedule schedule, Schedule::Build(three.layout, three.mask, three.shape));
  ASSIGN_OR_RETURN(Timing three_f, alone.Run(schedule, three.shape, false, 50));
  ASSIGN_OR_RETURN(Timing three_fb, alone.Run(schedule, three.shape, true, 50));
  // {forward, backward part} of a problem's predicted time at launch costs
  // (fwd, bwd) us.
  const auto model = [&](const BenchProblem& p, double fwd_us,
                         double bwd_us) -> absl::StatusOr<std::pair<double, double>> {
    sim::Calibration c = *cal;
    c.launch_us = fwd_us;
    c.launch_us_bwd = bwd_us;
    ASSIGN_OR_RETURN(const double f, sim::PredictBenchProblem(c, p, false));
    ASSIGN_OR_RETURN(const double fb, sim::PredictBenchProblem(c, p, true));
    return std::pair{f, fb - f};
  };
  // The cost per kernel that makes the model's difference between the two
  // problems the measured one (its value at 1 and 2 us gives the extra
  // kernels the model counts and the difference at 0); `part` 0 forward
  // (both costs varied together: the backward's memory passes pay the
  // forward's), 1 the backward part at the forward's cost found first.
  const auto solve = [&](int part, double fwd_us, double measured) -> absl::StatusOr<double> {
    const auto at = [&](double us) -> absl::StatusOr<double> {
      ASSIGN_OR_RETURN(auto a, model(one, part == 0 ? us : fwd_us, us));
      ASSIGN_OR_RETURN(auto b, model(three, part == 0 ? us : fwd_us, us));
      return part == 0 ? b.first - a.first : b.second - a.second;
    };
    ASSIGN_OR_RETURN(const double at1, at(1));
    ASSIGN_OR_RETURN(const double at2, at(2));
    const double kernels = 1e6 * (at2 - at1);  // extra kernels the model counts
    if (kernels < 0.5) {
      return absl::InternalError(absl::StrCat(
          "calibration: the model counts ", kernels,
          " more kernels in the three-task pass than in the one-task pass; expected >= 1"));
    }
    const double at0 = at1 - 1e-6 * kernels;
    return std::max(0.0, 1e6 * (measured - at0) / kernels);
  };
  ASSIGN_OR_RETURN(cal->launch_us, solve(0, 0, pass_s(three_f) - one_f));
  ASSIGN_OR_RETURN(
      cal->launch_us_bwd,
      solve(1, cal->launch_us, (pass_s(three_fb) - pass_s(three_f)) - (one_fb - one_f)));
  return absl::StrFormat(
      "; a 128-token pass of three tasks %.1f us fwd, %.1f us fwd+bwd; task cost %.1f / %.1f us "
      "(fwd / bwd)",
      1e6 * pass_s(three_f), 1e6 * pass_s(three_fb), cal->launch_us, cal->launch_us_bwd);
}

absl::Status Main() {
  std::vector<double> torch_ms;
  for (absl::string_view x :
       absl::StrSplit(absl::GetFlag(FLAGS_torch_single_ms), ',', absl::SkipEmpty())) {
    double ms = 0;
    if (!absl::SimpleAtod(x, &ms) || !std::isfinite(ms) || ms < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--torch_single_ms has '", x,
                       "'; expected four non-negative (finite) milliseconds F,FB,VF,VFB"));
    }
    torch_ms.push_back(ms);
  }
  if (!torch_ms.empty() && torch_ms.size() != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("--torch_single_ms has ", torch_ms.size(), " values; expected F,FB,VF,VFB"));
  }
  if (const double settle = absl::GetFlag(FLAGS_settle_s);
      !std::isfinite(settle) || settle < 0 || settle > 600) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--settle_s is ", settle, "; expected 0 (no settle) to 600 seconds before each line"));
  }
  // --hop_only times what passes between ranks: a ring of one has nothing.
  const auto hop_only_needs_ranks = [](int world) {
    return absl::InvalidArgumentError(
        absl::StrCat("--hop_only times the links between ranks; --world is ", world,
                     " (a ring of one has none): expected 2 ranks or more"));
  };
  const bool hop_only = absl::GetFlag(FLAGS_hop_only);
  if (hop_only && absl::GetFlag(FLAGS_world) == 1) return hop_only_needs_ranks(1);
  const std::vector<std::string> torch_names =
      absl::StrSplit(absl::GetFlag(FLAGS_torch_single_names), ',');
  if (torch_names.size() != 2) {
    return absl::InvalidArgumentError("--torch_single_names: expected DENSE,VARLEN");
  }
  {
    const std::string sync = absl::GetFlag(FLAGS_sync);
    const unsigned flags = sync == "spin"    ? cudaDeviceScheduleSpin
                           : sync == "yield" ? cudaDeviceScheduleYield
                           : sync == "block" ? cudaDeviceScheduleBlockingSync
                                             : cudaDeviceScheduleAuto;
    if (sync != "auto" && flags == cudaDeviceScheduleAuto) {
      return absl::InvalidArgumentError(
          absl::StrCat("--sync is '", sync, "'; expected auto, spin, yield or block"));
    }
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess) devices = 0;
    for (int d = 0; sync != "auto" && d < devices; ++d) {
      if (cudaSetDevice(d) != cudaSuccess || cudaSetDeviceFlags(flags) != cudaSuccess) {
        return absl::InternalError(
            absl::StrCat("--sync=", sync, ": setting device ", d,
                         "'s flags: ", cudaGetErrorString(cudaGetLastError())));
      }
    }
  }
  ASSIGN_OR_RETURN(int visible, cuda::DeviceCount());
  int world = absl::GetFlag(FLAGS_world) > 0 ? absl::GetFlag(FLAGS_world) : visible;
  std::string comm_kind = absl::GetFlag(FLAGS_comm);
  if (comm_kind == "auto") comm_kind = world <= visible && world >= 2 ? "nccl" : "device";
  if (comm_kind != "device" && comm_kind != "nccl" && comm_kind != "nccl_env") {
    return absl::InvalidArgumentError(
        absl::StrCat("--comm is '", comm_kind, "'; expected auto, device, nccl or nccl_env"));
  }
  // One rank per process: this process's rank, its GPU, its communicator.
  std::optional<comm::LaunchEnvironment> env;
  if (comm_kind == "nccl_env") {
    ASSIGN_OR_RETURN(comm::LaunchEnvironment e, comm::LaunchEnvironmentFromEnv());
    if (absl::GetFlag(FLAGS_world) > 0 && absl::GetFlag(FLAGS_world) != e.world) {
      return absl::InvalidArgumentError(absl::StrCat("--world ", absl::GetFlag(FLAGS_world),
                                                     " differs from the launcher's ", e.world,
                                                     " processes"));
    }
    if (absl::GetFlag(FLAGS_nccl_id_file).empty()) {
      return absl::InvalidArgumentError(
          "--comm=nccl_env needs --nccl_id_file: a fresh path every process sees");
    }
    env = e;
    world = e.world;
    g_print = e.rank == 0;
  }
  if (hop_only && world < 2) return hop_only_needs_ranks(world);
  const int64_t tokens = absl::GetFlag(FLAGS_tokens);
  const int iters = std::max(1, absl::GetFlag(FLAGS_iters));
  std::vector<comm::CudaPlacement> placements;
  for (int r = 0; r < (env ? 1 : world); ++r) {
    const int device = env ? env->local_rank % visible : r % visible;
    cudaStream_t s = nullptr;
    cudaSetDevice(device);
    if (cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) != cudaSuccess) {
      return absl::InternalError("cannot create a stream");
    }
    placements.push_back({device, s});
  }
  std::unique_ptr<comm::NcclWorld> nccl;
  std::unique_ptr<comm::DeviceCopyWorld> copies, single;
  std::unique_ptr<Communicator> process_comm;
  std::vector<Communicator*> comms;
  std::vector<int> ranks;
  if (env) {
    ASSIGN_OR_RETURN(
        std::unique_ptr<Communicator> c,
        comm::CreateNcclCommunicator(env->rank, env->world, placements[0],
                                     absl::GetFlag(FLAGS_nccl_id_file), absl::Seconds(120)));
    process_comm = std::move(c);
    comms.push_back(process_comm.get());
    ranks.push_back(env->rank);
  } else if (comm_kind == "nccl") {
    ASSIGN_OR_RETURN(std::unique_ptr<comm::NcclWorld> w,
                     comm::NcclWorld::Create(placements, absl::Seconds(120)));
    nccl = std::move(w);
    for (int r = 0; r < world; ++r) comms.push_back(&nccl->rank(r));
  } else {
    ASSIGN_OR_RETURN(std::unique_ptr<comm::DeviceCopyWorld> w,
                     comm::DeviceCopyWorld::Create(placements, absl::Seconds(120)));
    copies = std::move(w);
    for (int r = 0; r < world; ++r) comms.push_back(&copies->rank(r));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<comm::DeviceCopyWorld> one,
                   comm::DeviceCopyWorld::Create({placements[0]}, absl::Seconds(120)));
  single = std::move(one);
  Bench ring(placements, comms, ranks);
  // Each process has its own GPU in nccl_env mode.
  const bool gpu_per_rank = env.has_value() || world <= visible;
  // Virtual ranks: every rank's passes on a GPU in turn (--settle_s's count).
  const int sharing = gpu_per_rank ? 1 : (world + visible - 1) / visible;
  Bench alone({placements[0]}, {&single->rank(0)});

  cudaDeviceProp prop{};
  if (const cudaError_t e = cudaGetDeviceProperties(&prop, 0); e != cudaSuccess) {
    return absl::InternalError(
        absl::StrCat("reading GPU 0's properties (its name picks the calibration table): ",
                     cudaGetErrorString(e)));
  }
  const AttentionShape probe = MakeConfig(kBenchRows[0], world, tokens, {}).shape;
  // One rank's full (unmasked) block of `tokens`: what a hop's share of the
  // kernels and the merged-state factor are measured on.
  const BenchProblem full_block = [&] {
    BenchProblem b = MakeConfig(kBenchRows[0], 1, tokens, {});
    b.mask.causal = false;
    return b;
  }();
  const int64_t kv_bytes = 2 * tokens * probe.num_kv_heads * probe.head_dim * 2;
  double link = 0, gather = 0;
  if (world > 1) {
    ASSIGN_OR_RETURN(link, ring.LinkGBps(world, kv_bytes));
    // llama3's step: each rank's K/V of a head group to every other rank.
    // A failure is reported, not fatal (the ring rows do not need it; on
    // 2 x H200 it measured 216-230 GB/s per rank, 2026-12-01).
    if (absl::StatusOr<double> g = ring.AllGatherGBps(world, kv_bytes / 2); g.ok()) {
      gather = *g;
    } else {
      Print("(all-gather bandwidth not measured: %s)\n", std::string(g.status().message()).c_str());
    }
  }
  // The plain NCCL ring beside our hop, same bytes and ranks (NCCL rings
  // only; a failure is reported, not fatal), and with --hop_sweep both at
  // 8 to 256 MiB.
  bool nccl_ring = false;  // NCCL communicators: HopShare in the calibration
  // The hop's issue on the host (Calibration::hop_issue_us_kv / _us).
  double issue_kv = 0, issue_one = 0;
  if (world > 1) {
    const absl::StatusOr<double> plain = ring.PlainNcclGBps(world, kv_bytes);
    nccl_ring = plain.ok();
    if (plain.ok()) {
      // The chunk size NCCL read (comm::NcclChunkSizeDefault's, the user's
      // or NCCL's own): what bench/hop_chunk_sweep.sh labels a run by.
      const char* chunk = std::getenv("NCCL_P2P_NVL_CHUNKSIZE");
      Print(
          "plain NCCL ring hop of %lld B: %.1f GB/s (ncclSend / ncclRecv back to back, as "
          "nccl-tests' sendrecv); NCCL_P2P_NVL_CHUNKSIZE=%s\n",
          static_cast<long long>(kv_bytes), *plain,
          chunk != nullptr && *chunk != '\0' ? chunk : "unset (NCCL's default)");
      Print("NCCL environment: %s\n", NcclEnvironment().c_str());
    } else {
      Print("(plain NCCL ring not measured: %s)\n", std::string(plain.status().message()).c_str());
    }
    // What the host takes to issue a hop (the GPU idles that long before a
    // pass's first kernel: the kernels are enqueued after the transfers).
    ASSIGN_OR_RETURN(issue_kv, ring.HopIssueSeconds(world, kv_bytes, 2));
    ASSIGN_OR_RETURN(issue_one, ring.HopIssueSeconds(world, kv_bytes, 1));
    Print(
        "hop issue (host time from StartBatch to the transfers enqueued, the GPU idle, median of "
        "9, slowest rank): K and V apart (a forward's first step) %.1f us, one message each way "
        "%.1f us%s\n",
        1e6 * issue_kv, 1e6 * issue_one,
        nccl_ring ? absl::StrCat("; NCCL groups: RINGATTN_NCCL_ISSUE=",
                                 NcclIssueName(std::getenv("RINGATTN_NCCL_ISSUE")))
                        .c_str()
                  : "");
    // --hop_only: also what a hop leaves the kernels (the calibration
    // measures it otherwise, Calibration::hop_sm_share), so a sweep of
    // NCCL's settings gives both sides of a hop's cost.
    if (hop_only && nccl_ring && gpu_per_rank && link > 0) {
      ASSIGN_OR_RETURN(const double share, ring.HopShare(world, kv_bytes, link, full_block));
      Print(
          "hop share: a hop of %lld B beside the %lld-token full block's forward kernel takes "
          "%.3f of its rate\n",
          static_cast<long long>(kv_bytes), static_cast<long long>(tokens), share);
    }
    if (absl::GetFlag(FLAGS_hop_sweep)) {
      std::string sweep;
      for (int64_t mib = 8; mib <= 256; mib *= 2) {
        ASSIGN_OR_RETURN(double gbps, ring.LinkGBps(world, mib << 20));
        absl::StrAppendFormat(&sweep, " %lld:%.1f", static_cast<long long>(mib), gbps);
        if (plain.ok()) {
          ASSIGN_OR_RETURN(double plain_gbps, ring.PlainNcclGBps(world, mib << 20));
          absl::StrAppendFormat(&sweep, "/%.1f", plain_gbps);
        }
      }
      Print("ring hop sweep (MiB per rank:GB/s%s):%s\n", plain.ok() ? " ours/plain NCCL" : "",
            sweep.c_str());
    }
  }
  if (const double settle = absl::GetFlag(FLAGS_settle_s); settle > 0) {
    Print(
        "(--settle_s=%g: each line after about %g s of untimed passes, the calibration's "
        "warm-up, full-block sweep and causal / full factor's rounds after %g s of untimed "
        "launches or passes each (the per-side factors not): at the clock the power cap "
        "holds)\n",
        settle, settle, settle);
  }
  if (!gpu_per_rank) {
    Print(
        "(%d ranks share %d GPU(s): virtual ranks; efficiency and the simulator's "
        "one-GPU-per-rank prediction do not apply)\n",
        world, visible);
  }
  Print(
      "ring_bench: %d x %s, %s, bf16 b1 %lld tokens/rank h%lld/%lld d%lld causal, "
      "median of %d iterations; ring hop of %lld B: %.1f GB/s; all-gather of %lld B per "
      "rank: %.1f GB/s sent per rank\n",
      world, prop.name,
      env                   ? "NCCL, one process per GPU"
      : comm_kind == "nccl" ? "NCCL"
                            : "device copies",
      static_cast<long long>(tokens), static_cast<long long>(probe.num_heads),
      static_cast<long long>(probe.num_kv_heads), static_cast<long long>(probe.head_dim), iters,
      static_cast<long long>(kv_bytes), link, static_cast<long long>(kv_bytes / 2), gather);
  if (hop_only) {
    Print("(--hop_only: the links only; no calibration, no rows)\n");
    return absl::OkStatus();
  }

  // The simulator's calibration from this machine: a pass's fixed cost (a
  // 128-token pass), our kernels' forward and backward rates on full
  // (unmasked) blocks of tokens / 8 to tokens (the curve through them) and on
  // one rank's causal tokens (the causal / full factor), each without the
  // fixed cost and the model's memory passes, and the ring hop's bandwidth.
  std::string gpu = absl::GetFlag(FLAGS_gpu);
  if (gpu.empty()) {
    ASSIGN_OR_RETURN(gpu, sim::Calibration::BuiltinNameOfDevice(prop.name));
  }
  ASSIGN_OR_RETURN(sim::Calibration cal, sim::Calibration::Builtin(gpu));
  cal.rate_heads = static_cast<double>(probe.num_heads);  // its blocks' heads, batch 1
  // --settle_s: the untimed passes before a line, from the --gpu table's
  // prediction of a pass (the same number in every process, whatever its
  // own calibration measures; x the ranks that share a GPU).
  const sim::Calibration table = cal;
  const double settle_s = absl::GetFlag(FLAGS_settle_s);
  const auto warmup = [&](const BenchProblem& p, bool backward, bool outputs,
                          int sharing) -> absl::StatusOr<int> {
    if (settle_s <= 0) return bench::kWarmupPasses;
    ASSIGN_OR_RETURN(const double pass_s, sim::PredictBenchProblem(table, p, backward, outputs));
    return bench::SettlePasses(settle_s, sharing * pass_s);
  };
  {
    // A calibration pass's time: the median iteration, or the fastest.
    const bool fastest = absl::GetFlag(FLAGS_calibration_min);
    const auto pass_s = [&](const Timing& t) { return fastest ? t.fastest : t.seconds; };
    // {fwd, bwd} TFLOP/s of one n-token block on one GPU. FailedPrecondition
    // for a block whose time is nearly all the pass's fixed cost and the
    // memory passes (no rate to read from it).
    // settle: --settle_s before the timed launches (the full-block sweep,
    // the warm-up and the causal / full factor at `tokens`).
    // events: timed by events (--calibration_events' way) whatever the flag.
    const bool calibration_events = absl::GetFlag(FLAGS_calibration_events);
    const auto rates = [&](int64_t n, bool causal, bool settle = false,
                           bool events = false) -> absl::StatusOr<std::pair<double, double>> {
      BenchProblem b = MakeConfig(kBenchRows[0], 1, n, {});
      b.mask.causal = causal;
      ASSIGN_OR_RETURN(Schedule base, Schedule::Build(b.layout, b.mask, b.shape));
      // Small blocks take a fraction of a millisecond: more iterations, so
      // the median is not the host's jitter.
      const int runs = std::max(iters, static_cast<int>(20 * tokens / n));
      ASSIGN_OR_RETURN(PlanReport p, BuildPlan(base, b.shape));
      if (calibration_events || events) {
        ASSIGN_OR_RETURN(const auto s,
                         BlockKernelSeconds(b, runs,
                                            {.fresh = absl::GetFlag(FLAGS_fresh_writes),
                                             .settle_s = settle ? settle_s : 0}));
        // Less the fixed cost the model charges every task's kernel
        // (launch_us: its start and tail, which back-to-back launches
        // carry too), as the pass-timed rates below are: else a small
        // block's fixed cost is charged twice.
        const double fwd_s = s.first - 1e-6 * cal.LaunchUs(false),
                     bwd_s = s.second - 1e-6 * cal.LaunchUs(true);
        if (fwd_s < 0.1 * s.first || bwd_s < 0.1 * s.second) {
          return absl::FailedPreconditionError(
              absl::StrCat("calibration: ", n, " tokens took ", s.first, " / ", s.second,
                           " s a launch, mostly the kernels' fixed cost"));
        }
        return std::pair{p.TotalFlops() / fwd_s / 1e12, 2.5 * p.TotalFlops() / bwd_s / 1e12};
      }
      ASSIGN_OR_RETURN(const int f_warmup,
                       settle ? warmup(b, false, false, 1) : bench::kWarmupPasses);
      ASSIGN_OR_RETURN(const int fb_warmup,
                       settle ? warmup(b, true, false, 1) : bench::kWarmupPasses);
      ASSIGN_OR_RETURN(const Timing f_timing,
                       alone.Run(base, b.shape, false, runs, false, f_warmup));
      ASSIGN_OR_RETURN(const Timing fb_timing,
                       alone.Run(base, b.shape, true, runs, false, fb_warmup));
      const double f_s = pass_s(f_timing), fb_s = pass_s(fb_timing);
      // The kernels' share of the measured time: minus what the simulator
      // adds around them (memory passes: O, D, dK/dV adds; launches), which
      // does not depend on the rates, so the rates are not counted twice.
      double around[2] = {0, 0};  // fwd, fwd+bwd
      for (bool backward : {false, true}) {
        const sim::SimOptions o = sim::BenchProblemOptions(cal, b, backward);
        ASSIGN_OR_RETURN(sim::SimResult total, sim::Simulate(o));
        ASSIGN_OR_RETURN(double kernels, sim::KernelSeconds(o));
        around[backward ? 1 : 0] = total.iteration_s - kernels;
      }
      const double fwd_s = f_s - around[0] - 1e-6 * cal.LaunchUs(false);
      const double bwd_s = (fb_s - f_s) - (around[1] - around[0]) - 1e-6 * cal.LaunchUs(true);
      if (fb_s <= f_s) {
        // Seen with two nccl_env processes on one GPU (a test rig): each
        // calibrates while the other runs.
        return absl::FailedPreconditionError(absl::StrCat(
            "calibration: ", n, " tokens: the forward and backward pass measured ", fb_s,
            " s, no longer than the forward alone (", f_s,
            " s): the timing was disturbed (something else on this GPU? with --comm=nccl_env "
            "every process needs a GPU of its own)"));
      }
      if (fwd_s < 0.1 * f_s || bwd_s < 0.1 * (fb_s - f_s)) {
        return absl::FailedPreconditionError(
            absl::StrCat("calibration: ", n, " tokens measured ", f_s, " / ", fb_s,
                         " s, mostly the pass's fixed cost and the modelled memory passes"));
      }
      return std::pair{p.TotalFlops() / fwd_s / 1e12, 2.5 * p.TotalFlops() / bwd_s / 1e12};
    };
    // Untimed, once or for --calibration_warmup_ms: the GPU's clocks ramp
    // up before the first measurement.
    const absl::Time warmup_end =
        absl::Now() + absl::Milliseconds(absl::GetFlag(FLAGS_calibration_warmup_ms));
    do {
      if (absl::StatusOr<std::pair<double, double>> warm = rates(tokens, true, true); !warm.ok()) {
        return warm.status();
      }
    } while (absl::Now() < warmup_end);
    // A 128-token pass (a few microseconds of kernels): what any pass costs
    // besides its kernels (host preparation, launches, the end-of-pass
    // synchronize) is its time less what the model charges it; the model
    // charges it once per pass (Calibration::pass_overhead_us_*), and the
    // rates below leave it out (every measured block carries it once).
    BenchProblem tiny = MakeConfig(kBenchRows[0], 1, 128, {});
    ASSIGN_OR_RETURN(Schedule tiny_schedule, Schedule::Build(tiny.layout, tiny.mask, tiny.shape));
    ASSIGN_OR_RETURN(Timing tiny_f, alone.Run(tiny_schedule, tiny.shape, false, 50));
    ASSIGN_OR_RETURN(Timing tiny_fb, alone.Run(tiny_schedule, tiny.shape, true, 50));
    std::string task_cost;
    if (absl::GetFlag(FLAGS_calibration_task_cost)) {
      ASSIGN_OR_RETURN(task_cost,
                       MeasureTaskCost(alone, tiny, pass_s(tiny_f), pass_s(tiny_fb), pass_s, &cal));
    }
    // Its forward kernel: the model charges a 128-token block the rate of
    // the smallest measured side plus launch_us (5-6 us), while the kernel
    // takes its own fixed cost (its start, one wave of tiles, its tail;
    // 9.5-11 us by events on an H200), which every measured rate carries
    // too. Both kernels are timed by events in every run (back to back, as
    // --calibration_events times the rates): they are the least time a
    // task's kernel takes (Calibration::min_kernel_us_*: a short
    // document's, a few tiles' start, wave and tail). Without that floor
    // the documents' passes at 1-2k tokens were predicted 8-10 % short
    // (their 16-400-token documents charged at the rate); with it, within
    // 3.4 % (fifty-sixth session; before it, with --calibration_events
    // only). With --calibration_events the forward's time, not the
    // model's, also comes out of the forward's overhead: else the overhead
    // holds the kernel's fixed cost once more, charged again beside every
    // task's rate (forward rows of 30-70 us passes over-predicted by 4-15 %
    // with the events' rates; within 5 % with it, forty-ninth session).
    // The pass-timed rates (the default) leave it in: there the events
    // part with the rates (a 2048-token dense forward went 10 % over with
    // it, fifty-fifth session), and the floor alone moves no dense row. The
    // backward's 128-token kernel is printed but not taken out: timed
    // back to back (13.5-15.5 us) it is 4-6 us longer than in its pass
    // (its end 8-11 us after its enqueue, ring_bench --timeline at 128
    // tokens; the forward's differ by 1-2 us), and taking it out put
    // fwd+bwd rows of 1-4k tokens 4-11 % under their measurement where
    // they were within 5 %.
    std::string tiny_kernels;
    {
      ASSIGN_OR_RETURN(const double model_f, sim::PredictBenchProblem(cal, tiny, false));
      ASSIGN_OR_RETURN(const double model_fb, sim::PredictBenchProblem(cal, tiny, true));
      ASSIGN_OR_RETURN(const auto kernels,
                       BlockKernelSeconds(tiny, 50, {.fresh = absl::GetFlag(FLAGS_fresh_writes)}));
      ASSIGN_OR_RETURN(const double charged_f,
                       sim::KernelSeconds(sim::BenchProblemOptions(cal, tiny, false)));
      ASSIGN_OR_RETURN(const double charged_fb,
                       sim::KernelSeconds(sim::BenchProblemOptions(cal, tiny, true)));
      // The forward kernel, s, over what the model charged it.
      const double measured_over_model_f = calibration_events ? kernels.first - charged_f : 0;
      tiny_kernels = absl::StrFormat(
          " (its kernels %.1f / %.1f us by events, the model's %.1f / %.1f%s)", 1e6 * kernels.first,
          1e6 * kernels.second, 1e6 * charged_f, 1e6 * (charged_fb - charged_f),
          calibration_events ? "" : "; left in the overhead");
      // Set once the model's charges above were read without it; to the
      // 0.1 us the line prints, so a replay of the log predicts what this
      // run's sim column does.
      cal.min_kernel_us_fwd = std::round(1e7 * kernels.first) / 10;
      cal.min_kernel_us_bwd = std::round(1e7 * kernels.second) / 10;
      cal.pass_overhead_us_fwd =
          std::max(0.0, 1e6 * (pass_s(tiny_f) - model_f - measured_over_model_f));
      cal.pass_overhead_us_bwd =
          std::max(0.0, 1e6 * ((pass_s(tiny_fb) - pass_s(tiny_f)) - (model_fb - model_f)));
    }
    // A strided (stripe) block's rate per allowed pair over the contiguous
    // causal block's, both kernels alone (events): the calibration's
    // strided_block_factor (kernel_bench's stripe2 row over its causal row).
    // Seven rounds: one round of ten launches each gave 0.969 and 1.039 in
    // two runs (2026-12-02).
    {
      BenchProblem b = MakeConfig(kBenchRows[0], 1, tokens, {});
      b.mask.causal = true;
      const double pairs = static_cast<double>(tokens - 1) / static_cast<double>(tokens + 1);
      ASSIGN_OR_RETURN(const auto strided_factor,
                       MedianOfRounds(7, [&]() -> absl::StatusOr<std::pair<double, double>> {
                         ASSIGN_OR_RETURN(const auto contiguous, BlockKernelSeconds(b, iters));
                         ASSIGN_OR_RETURN(const auto strided,
                                          BlockKernelSeconds(b, iters, {.strided = true}));
                         return std::pair{pairs * contiguous.first / strided.first,
                                          pairs * contiguous.second / strided.second};
                       }));
      std::tie(cal.strided_block_factor, cal.strided_block_factor_bwd) = strided_factor;
    }
    // A ring hop beside the kernels (NCCL rings, one GPU a rank): the share
    // of their rate it takes while in flight, on the full block of `tokens`
    // (the simulator's hop_sm_share; 0 elsewhere, as device copies on one
    // GPU have no SMs to take).
    std::string hop_share;
    if (nccl_ring && gpu_per_rank && link > 0) {
      ASSIGN_OR_RETURN(cal.hop_sm_share, ring.HopShare(world, kv_bytes, link, full_block));
      hop_share =
          absl::StrFormat("; a hop beside the kernels takes %.3f of their rate", cal.hop_sm_share);
    }
    // A forward launch that merges into a state written before (a ring
    // pass's steps after its first on the rows) over one that writes it
    // fresh (every calibration pass here: W = 1): merged_state_factor, on
    // the full block of `tokens` (later steps' blocks are full ones or
    // halves), both kernels alone (events), five rounds in turn. Without
    // fresh writes every launch merges: 1.
    if (absl::GetFlag(FLAGS_fresh_writes)) {
      const BenchProblem& b = full_block;
      ASSIGN_OR_RETURN(
          const auto merged, MedianOfRounds(5, [&]() -> absl::StatusOr<std::pair<double, double>> {
            ASSIGN_OR_RETURN(const auto fresh, BlockKernelSeconds(b, iters, {.backward = false}));
            ASSIGN_OR_RETURN(const auto kept,
                             BlockKernelSeconds(b, iters, {.fresh = false, .backward = false}));
            return std::pair{fresh.first / kept.first, 0.0};  // the forward's alone
          }));
      cal.merged_state_factor = merged.first;
    }
    // Full blocks of tokens / 8 .. tokens: the small blocks of short
    // documents too (those that are nearly all fixed cost are left out).
    std::vector<std::pair<int64_t, std::pair<double, double>>> full;
    for (int64_t n = std::max<int64_t>(tokens / 8, 128); n <= tokens; n *= 2) {
      absl::StatusOr<std::pair<double, double>> r = rates(n, false, true);
      if (absl::IsFailedPrecondition(r.status()) && n < tokens) continue;
      if (!r.ok()) return r.status();
      full.push_back({n, *r});
    }
    const int64_t d = probe.head_dim;
    std::string report;
    for (bool backward : {false, true}) {
      const auto pick = [&](const std::pair<double, double>& r) {
        return backward ? r.second : r.first;
      };
      std::vector<std::pair<double, double>> points;
      for (const auto& [n, r] : full) {
        points.push_back({static_cast<double>(n), pick(r)});
        absl::StrAppendFormat(&report, " %lld:%.1f", static_cast<long long>(n), pick(r));
      }
      RETURN_IF_ERROR(cal.FitCurve(backward, d, points));
      if (!backward) absl::StrAppend(&report, "; bwd");
    }
    // The causal / full factors: five rounds, the causal and the full
    // block of `tokens` measured in turn in each. A causal block measured
    // once beside the full sweep above gave 0.939 / 1.000 / 1.002 fwd and
    // 1.010 / 1.051 / 0.920 bwd in three runs on one H200 (2026-12-02). The
    // causal rate printed is the one the model takes: factor x full rate.
    // The order alternates between rounds (causal first, then full first),
    // and with --settle_s each of the ten measures of the factor at
    // `tokens` runs after S seconds of untimed passes of its block (forward
    // and forward+backward apart: 20 S in all; the per-side factors stay
    // unsettled): unsettled, every 8192-token log
    // before the fifty-fourth session had a backward factor above 1
    // (1.01-1.13), alternated ones too (1.020, 1.083, 1.108 in three runs);
    // settled 0.966 (fifty-third session), and with 0.966 the W = 1 rows'
    // fwd+bwd predictions went from -7.4..-8.2 % to -0.4..+0.4 %.
    const auto causal_over_full = [&](int64_t n, bool events = false) {
      int round = 0;
      const bool settle = settle_s > 0 && n == tokens;
      return MedianOfRounds(5, [&]() -> absl::StatusOr<std::pair<double, double>> {
        const bool causal_first = round++ % 2 == 0;
        ASSIGN_OR_RETURN(const auto first, rates(n, causal_first, settle, events));
        ASSIGN_OR_RETURN(const auto second, rates(n, !causal_first, settle, events));
        const auto& c = causal_first ? first : second;
        const auto& f = causal_first ? second : first;
        return std::pair{c.first / f.first, c.second / f.second};
      });
    };
    ASSIGN_OR_RETURN(const auto partial_factor, causal_over_full(tokens));
    std::tie(cal.partial_block_factor, cal.partial_block_factor_bwd) = partial_factor;
    // The same factor at every other side of the full sweep, always timed
    // by events (a ratio of two rates timed alike: the clock's level falls
    // out), beside the one at `tokens` measured above: the simulator
    // interpolates it by a causal block's side (zigzag's diagonal blocks
    // are half the rank's tokens, documents' smaller still: at 2048 tokens
    // it falls from 0.82 to 0.45 at 256, and the documents' passes were
    // predicted 16 % short with the one factor; fifty-fifth session,
    // docs/RING_BENCH.md). Sides whose blocks are nearly all fixed cost
    // are left out. (Before the fifty-fifth session: with
    // --calibration_events only.)
    std::string by_side;
    {
      std::vector<std::pair<double, double>> sides[2];
      for (const auto& [n, r] : full) {
        std::pair<double, double> f = partial_factor;
        if (n != tokens) {
          absl::StatusOr<std::pair<double, double>> m = causal_over_full(n, /*events=*/true);
          if (absl::IsFailedPrecondition(m.status())) continue;
          if (!m.ok()) return m.status();
          f = *m;
        }
        sides[0].push_back({static_cast<double>(n), f.first});
        sides[1].push_back({static_cast<double>(n), f.second});
      }
      for (int pass = 0; pass < 2; ++pass) {
        cal.partial_by_side[pass] = sides[pass];
        absl::StrAppend(&by_side, pass == 0 ? "; causal / full per block side fwd" : ", bwd");
        for (const auto& [n, f] : sides[pass]) {
          absl::StrAppendFormat(&by_side, " %lld:%.3f", static_cast<long long>(n), f);
        }
      }
    }
    // --calibration_events: the causal block of `tokens` launched alone
    // (the stream drained before each, as a W = 1 pass's one task is) over
    // back to back, three rounds; printed, not used by the model.
    std::string lone;
    if (absl::GetFlag(FLAGS_calibration_events)) {
      BenchProblem b = MakeConfig(kBenchRows[0], 1, tokens, {});
      const BlockLaunch back_to_back{.fresh = absl::GetFlag(FLAGS_fresh_writes)};
      BlockLaunch alone_launch = back_to_back;
      alone_launch.lone = true;
      ASSIGN_OR_RETURN(const auto ratio,
                       MedianOfRounds(3, [&]() -> absl::StatusOr<std::pair<double, double>> {
                         ASSIGN_OR_RETURN(const auto a, BlockKernelSeconds(b, iters, alone_launch));
                         ASSIGN_OR_RETURN(const auto t, BlockKernelSeconds(b, iters, back_to_back));
                         return std::pair{a.first / t.first, a.second / t.second};
                       }));
      lone = absl::StrFormat("; a lone causal launch / back to back %.3f fwd, %.3f bwd",
                             ratio.first, ratio.second);
    }
    // Whether the ring's backward steps whose launches store every dK/dV
    // row skip its zeroing on this GPU, dtype and head dim (the replay's
    // Calibration::stored_dkv_steps; the simulator checks GQA itself): the
    // kernel choice for a block of the rows' shape, without GQA (its null
    // pointers are as aligned as the ring's buffers; the choice reads
    // nothing else of them).
    cuda::BackwardBlockArgs stores_probe;
    stores_probe.task =
        cuda::DenseBlockArgs(cuda::ElementType::kBFloat16, 1, tokens, probe.num_heads,
                             probe.num_heads, probe.head_dim, /*causal=*/true);
    stores_probe.key_grads_fresh = absl::GetFlag(FLAGS_fresh_writes);
    const bool stored_steps = cuda::BackwardStoresEveryKeyRow(stores_probe);
    cal.stored_dkv_steps = stored_steps ? 1 : 0;
    const std::pair<double, double>& full_rate = full.back().second;
    const std::pair<double, double> causal{partial_factor.first * full_rate.first,
                                           partial_factor.second * full_rate.second};
    Print(
        "calibration: our kernels, TFLOP/s: causal %lld tokens fwd %.1f, bwd %.1f; full "
        "blocks (side:TFLOP/s) fwd%s; causal / full %.3f fwd, %.3f bwd; strided / contiguous "
        "%.3f fwd, %.3f bwd; merged / fresh state %.3f fwd; ring pass dK/dV home %g B/element; "
        "forward's O at its end %g B/element; adjacent slices fused; llama3's ring of one whole%s; "
        "unwritten dK/dV rows set by the partial sum%s; a 128-token pass %.1f us fwd, "
        "%.1f us fwd+bwd%s; pass overhead %.1f / %.1f us (fwd / bwd); from the %s table%s%s%s%s\n",
        static_cast<long long>(tokens), causal.first, causal.second, report.c_str(),
        cal.partial_block_factor, cal.partial_block_factor_bwd, cal.strided_block_factor,
        cal.strided_block_factor_bwd, cal.MergedStateFactor(), cal.ring_pass_dkv_home_bytes,
        cal.forward_o_bytes, stored_steps ? "; stored dK/dV steps unzeroed" : "", hop_share.c_str(),
        1e6 * pass_s(tiny_f), 1e6 * pass_s(tiny_fb), tiny_kernels.c_str(), cal.pass_overhead_us_fwd,
        cal.pass_overhead_us_bwd, gpu.c_str(), task_cost.c_str(), lone.c_str(), by_side.c_str(),
        fastest ? "; from the fastest iterations" : "");
    if (link > 0) cal.link_gbps = link;
    if (gather > 0) cal.collective_gbps = gather;
    // The simulator's ranks are one GPU each: virtual ranks' copies are not
    // a link's issue (their rows are not simulated).
    if (gpu_per_rank) {
      cal.hop_issue_us_kv = 1e6 * issue_kv;
      cal.hop_issue_us = 1e6 * issue_one;
    }
    cal.gpu = absl::StrCat("measured-by-ring_bench");
    if (const std::string path = absl::GetFlag(FLAGS_calibration_out); !path.empty()) {
      FILE* out = std::fopen(path.c_str(), "w");
      if (out == nullptr) return absl::InternalError(absl::StrCat("cannot write ", path));
      std::fputs(cal.Serialize().c_str(), out);
      std::fclose(out);
    }
    if (const std::string path = absl::GetFlag(FLAGS_calibration_out); !path.empty()) {
      Print("calibration written to %s\n", path.c_str());
    }
  }
  const bool outputs = absl::GetFlag(FLAGS_outputs);
  if (outputs) {
    Print(
        "--outputs: timed with the state reset and the results in the input dtype (the "
        "simulator's sim ms models them too)\n");
  }
  Print("\n%-14s %-8s %10s %10s %-18s %7s %11s %22s %9s %9s %7s\n", "row", "pass", "iter/s",
        "theoretic", "best 1-GPU kernel", "eff", "TFLOP/s/GPU", "peak / theory MiB", "meas ms",
        "sim ms", "err");
  std::vector<std::string> host_split, timelines;
  const std::string only = absl::GetFlag(FLAGS_rows);
  const std::vector<std::string> wanted = absl::StrSplit(only, ',', absl::SkipEmpty());
  for (const BenchRow& row : kBenchRows) {
    if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), row.name) == wanted.end()) {
      continue;
    }
    for (bool backward : {false, true}) {
      double ring_s = 0, single_s = 0, sim_s = 0, flops = 0, ring_wait = 0, single_wait = 0;
      cuda::MemoryReport memory;
      const std::vector<std::vector<int64_t>> sets =
          row.varlen ? sim::SeedDocuments() : std::vector<std::vector<int64_t>>{{}};
      for (const std::vector<int64_t>& docs : sets) {
        const BenchProblem c = MakeConfig(row, world, tokens, docs);
        ASSIGN_OR_RETURN(Schedule schedule, Schedule::Build(c.layout, c.mask, c.shape));
        // The single-GPU baseline: one rank's tokens (and documents).
        BenchProblem b = MakeConfig({row.name, LayoutKind::kRing, row.varlen}, 1, tokens, docs);
        ASSIGN_OR_RETURN(Schedule base, Schedule::Build(b.layout, b.mask, b.shape));
        ASSIGN_OR_RETURN(const int ring_warmup, warmup(c, backward, outputs, sharing));
        ASSIGN_OR_RETURN(const int alone_warmup, warmup(b, backward, outputs, 1));
        ASSIGN_OR_RETURN(Timing t,
                         ring.Run(schedule, c.shape, backward, iters, outputs, ring_warmup));
        ASSIGN_OR_RETURN(Timing s,
                         alone.Run(base, b.shape, backward, iters, outputs, alone_warmup));
        ring_s += t.seconds / sets.size();
        single_s += s.seconds / sets.size();
        ring_wait += t.wait / sets.size();
        single_wait += s.wait / sets.size();
        for (const auto& [who, timing] : {std::pair{"ring", &t}, std::pair{"baseline", &s}}) {
          if (!timing->timeline.empty()) {
            timelines.push_back(
                absl::StrFormat("%s %s %s%s: %s", row.name, backward ? "fwd+bwd" : "fwd", who,
                                sets.size() > 1 ? " (one document set)" : "", timing->timeline));
          }
        }
        if (t.memory.peak > memory.peak) memory = t.memory;
        ASSIGN_OR_RETURN(PlanReport plan, BuildPlan(schedule, c.shape));
        flops += plan.TotalFlops() * (backward ? 3.5 : 1.0) / sets.size();
        if (gpu_per_rank) {  // the simulator gives every rank a GPU
          ASSIGN_OR_RETURN(double predicted, sim::PredictBenchProblem(cal, c, backward, outputs));
          sim_s += predicted / sets.size();
        }
      }
      // The best single-GPU kernel: ours, or PyTorch's (0: did not run).
      std::string best = "ringattn";
      if (!torch_ms.empty()) {
        const double t = 1e-3 * torch_ms[(row.varlen ? 2 : 0) + (backward ? 1 : 0)];
        if (t > 0 && t < single_s) {
          single_s = t;
          best = torch_names[row.varlen ? 1 : 0];
        }
      }
      const double theoretic = 1.0 / single_s / world;
      Print("%-14s %-8s %10.2f %10.2f %-18s %6.1f%% %11.1f %10.1f / %-10.1f %9.3f %9s %7s\n",
            row.name, backward ? "fwd+bwd" : "fwd", 1.0 / ring_s, theoretic, best.c_str(),
            100.0 * (1.0 / ring_s) / theoretic, flops / world / ring_s / 1e12,
            memory.peak / 1048576.0, memory.theoretical / 1048576.0, 1e3 * ring_s,
            sim_s > 0 ? absl::StrFormat("%.3f", 1e3 * sim_s).c_str() : "-",
            sim_s > 0 ? absl::StrFormat("%+.1f%%", 100 * (sim_s - ring_s) / ring_s).c_str() : "-");
      host_split.push_back(absl::StrFormat("%s %s %.3f of %.3f (baseline %.3f of %.3f)", row.name,
                                           backward ? "fwd+bwd" : "fwd", 1e3 * ring_wait,
                                           1e3 * ring_s, 1e3 * single_wait, 1e3 * single_s));
    }
  }
  // The passes' final waits (the host idle until the GPU is done) apart
  // from the rest of each measured time (preparing and enqueuing), per row
  // (issue #19: a wait far above the GPU's time, which --timeline shows, is
  // the host waking late: the forty-sixth session's 50-us poll sleeps).
  Print(
      "\nhost split (ms: the median of the passes' final waits, this process's first rank, of "
      "the meas ms; the single-GPU baseline's in brackets):\n");
  for (const std::string& line : host_split) Print("host split: %s\n", line.c_str());
  if (!timelines.empty()) {
    Print(
        "\ntimeline (--timeline: this process's first rank's median pass, GPU ms after its "
        "start event (host ms of the enqueue); then the GPU span over the passes):\n");
  }
  for (const std::string& line : timelines) Print("timeline: %s\n", line.c_str());
  copies.reset();
  nccl.reset();
  process_comm.reset();
  single.reset();
  for (const comm::CudaPlacement& p : placements) {
    cudaSetDevice(p.device);
    cudaStreamDestroy(p.stream);
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace ringattn

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const absl::Status s = ringattn::Main();
  if (!s.ok()) {
    std::fprintf(stderr, "ring_bench: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
