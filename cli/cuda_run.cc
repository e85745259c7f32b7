#include "cli/cuda_run.h"

#include <cuda_runtime_api.h>

#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "comm/cuda_communicator.h"
#include "comm/launch_env.h"
#include "comm/nccl_communicator.h"
#include "core/status_macros.h"
#include "cuda/device.h"
#include "cuda/ring_backend.h"

namespace ringattn::cli {
namespace {

// Compute streams, one per rank, destroyed with the object.
class Streams {
 public:
  ~Streams() {
    for (size_t i = 0; i < streams_.size(); ++i) {
      cudaSetDevice(devices_[i]);
      cudaStreamDestroy(streams_[i]);
    }
  }
  absl::StatusOr<cudaStream_t> Add(int device) {
    cudaStream_t s = nullptr;
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    if (e != cudaSuccess) return cuda::CudaStatus(e, "creating a compute stream");
    streams_.push_back(s);
    devices_.push_back(device);
    return s;
  }

 private:
  std::vector<cudaStream_t> streams_;
  std::vector<int> devices_;
};

std::string MemoryLines(const std::vector<cuda::MemoryReport>& reports) {
  std::string out = "  device memory per rank (MiB): peak / theoretical\n   ";
  for (size_t r = 0; r < reports.size(); ++r) {
    const cuda::MemoryReport& m = reports[r];
    absl::StrAppendFormat(
        &out, " r%d %.1f/%.1f (%+.1f%%)", r, m.peak / 1048576.0, m.theoretical / 1048576.0,
        m.theoretical > 0 ? 100.0 * (m.peak - m.theoretical) / m.theoretical : 0.0);
  }
  return out + "\n";
}

}  // namespace

absl::StatusOr<std::string> RunCudaThreads(RunOptions options, CudaComm comm, int gpus,
                                           absl::Duration timeout) {
  ASSIGN_OR_RETURN(int visible, cuda::DeviceCount());
  if (gpus > visible) {
    return absl::InvalidArgumentError(
        absl::StrCat(gpus, " GPUs asked for; this machine has ", visible));
  }
  const int n = gpus > 0 ? gpus : visible;
  const int world = options.config.layout.world;
  if (world < 1) {
    return absl::InvalidArgumentError(absl::StrCat("world is ", world, "; expected >= 1"));
  }
  if (comm == CudaComm::kNccl && world > n) {
    return absl::InvalidArgumentError(absl::StrCat("NCCL takes one rank per GPU: world ", world,
                                                   " on ", n,
                                                   " GPUs; use --comm=device for virtual ranks"));
  }
  ASSIGN_OR_RETURN(RunInputs inputs, LoadRunInputs(options));
  Streams streams;
  std::vector<comm::CudaPlacement> placements;
  for (int r = 0; r < world; ++r) {
    ASSIGN_OR_RETURN(cudaStream_t s, streams.Add(r % n));
    placements.push_back({r % n, s});
  }
  std::vector<Communicator*> ranks;
  std::unique_ptr<comm::DeviceCopyWorld> copies;
  std::unique_ptr<comm::NcclWorld> nccl;
  if (comm == CudaComm::kNccl) {
    ASSIGN_OR_RETURN(std::unique_ptr<comm::NcclWorld> w,
                     comm::NcclWorld::Create(placements, timeout));
    nccl = std::move(w);
    for (int r = 0; r < world; ++r) ranks.push_back(&nccl->rank(r));
  } else {
    ASSIGN_OR_RETURN(std::unique_ptr<comm::DeviceCopyWorld> w,
                     comm::DeviceCopyWorld::Create(placements, timeout));
    copies = std::move(w);
    for (int r = 0; r < world; ++r) ranks.push_back(&copies->rank(r));
  }
  std::vector<cuda::MemoryReport> memory(world);
  options.config.backend = cuda::CudaBackendFactory([&](int r) {
    cuda::CudaBackendOptions o;
    o.device = placements[r].device;
    o.stream = placements[r].stream;
    o.synchronous = false;
    o.final_memory = &memory[r];
    return o;
  });
  std::vector<absl::Status> statuses(world);
  std::string report;
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      cudaSetDevice(placements[r].device);
      absl::StatusOr<std::string> out = RunRank(*ranks[r], options, inputs);
      if (absl::IsCancelled(out.status())) return;  // a silent rank (fault injection)
      if (!out.ok()) {
        ranks[r]->Abort(out.status());
        statuses[r] = out.status();
      } else if (r == 0) {
        report = *out;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  // The first rank's own error explains the others' aborts.
  for (const absl::Status& s : statuses) {
    if (!s.ok() && s.code() != absl::StatusCode::kAborted) return s;
  }
  for (const absl::Status& s : statuses) {
    if (!s.ok()) return s;
  }
  return absl::StrCat(
      report, "  communicator: ",
      comm == CudaComm::kNccl ? "NCCL, one thread per GPU" : "device copies (cudaMemcpyAsync)",
      ", ", n, " GPU(s)\n", MemoryLines(memory));
}

absl::StatusOr<std::string> RunCudaProcess(RunOptions options, const std::string& id_file,
                                           absl::Duration timeout) {
  ASSIGN_OR_RETURN(comm::LaunchEnvironment env, comm::LaunchEnvironmentFromEnv());
  if (env.world != options.config.layout.world) {
    return absl::InvalidArgumentError(absl::StrCat("--world ", options.config.layout.world,
                                                   " differs from the launcher's ", env.world,
                                                   " processes"));
  }
  ASSIGN_OR_RETURN(int visible, cuda::DeviceCount());
  const int device = env.local_rank % visible;
  Streams streams;
  ASSIGN_OR_RETURN(cudaStream_t stream, streams.Add(device));
  ASSIGN_OR_RETURN(
      std::unique_ptr<Communicator> comm,
      comm::CreateNcclCommunicator(env.rank, env.world, {device, stream}, id_file, timeout));
  absl::StatusOr<RunInputs> inputs = LoadRunInputs(options);
  if (!inputs.ok()) {
    (comm)->Abort(inputs.status());
    return inputs.status();
  }
  cuda::MemoryReport memory;
  options.config.backend = cuda::CudaBackendFactory([&](int) {
    cuda::CudaBackendOptions o;
    o.device = device;
    o.stream = stream;
    o.synchronous = false;
    o.final_memory = &memory;
    return o;
  });
  absl::StatusOr<std::string> report = RunRank(*comm, options, *inputs);
  if (absl::IsCancelled(report.status())) return std::string();
  if (!report.ok()) {
    return absl::Status(report.status().code(),
                        absl::StrCat("rank ", env.rank, ": ", report.status().message()));
  }
  if (env.rank != 0) return std::string();
  return absl::StrCat(*report, "  communicator: NCCL, one process per GPU (", env.world,
                      " processes)\n", MemoryLines({memory}));
}

}  // namespace ringattn::cli
