// `ringattn run`: its flags (inputs, outputs, backend, communicator, faults),
// read into RunOptions, and the communicators `--comm` chooses from.
#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/cuda_run.h"
#include "cli/npy.h"
#include "cli/run_command.h"
#include "cli/subcommands.h"
#include "core/status_macros.h"
#include "cuda/device.h"
#include "cuda/ring_backend.h"
#ifdef RINGATTN_WITH_MPI
#include "comm/mpi_communicator.h"
#endif

ABSL_FLAG(std::string, q, "", "run: q .npy (batch, seqlen, heads, head_dim)");
ABSL_FLAG(std::string, k, "", "run: k .npy (batch, seqlen, kv_heads, head_dim)");
ABSL_FLAG(std::string, v, "", "run: v .npy, like k");
ABSL_FLAG(std::string, do, "", "run: upstream gradient dO .npy, like q");
ABSL_FLAG(bool, random, false, "run: random N(0,1) inputs of the shape flags");
ABSL_FLAG(int, seed, 0, "run: seed of --random");
ABSL_FLAG(double, softmax_scale, 0, "softmax scale; 0: 1/sqrt(head_dim)");
ABSL_FLAG(std::string, comm, "auto",
          "run: auto | threads | device | nccl | nccl_env | mpi. threads: host "
          "mailboxes (CPU backend; CUDA with managed memory); device: CUDA ranks as "
          "threads, any number per GPU, cudaMemcpyAsync between them; nccl: one "
          "thread per GPU; nccl_env: this process is one rank of a torchrun/Slurm "
          "launch (with --nccl_id_file); mpi: ringattn_mpi under mpirun. auto: "
          "threads for cpu; for cuda nccl when every rank has its own GPU (2+), "
          "else device");
ABSL_FLAG(std::string, nccl_id_file, "",
          "run --comm=nccl_env: a fresh path every process sees; rank 0 writes the "
          "NCCL id there");
ABSL_FLAG(std::string, backend, "cpu",
          "run: cpu | cuda (rank r on GPU r % --gpus; more ranks than GPUs are "
          "virtual ranks sharing one)");
ABSL_FLAG(int, gpus, 0, "run --backend=cuda: GPUs to use; 0: every visible one");
ABSL_FLAG(double, timeout_s, 120, "run: seconds a rank waits for a peer");
ABSL_FLAG(std::string, out, "", "run: write O here (.npy)");
ABSL_FLAG(std::string, lse, "", "run: write LSE (batch, heads, seqlen) fp32");
ABSL_FLAG(std::string, dq, "", "run: write dQ here");
ABSL_FLAG(std::string, dk, "", "run: write dK here");
ABSL_FLAG(std::string, dv, "", "run: write dV here");
ABSL_FLAG(int, inject_fault_rank, -1, "run, for fault tests: this rank fails (or goes silent)");
ABSL_FLAG(std::string, inject_fault, "fail",
          "run: fail | silent | silent_after_forward (runs the forward, then leaves before the "
          "backward)");
ABSL_FLAG(bool, check, false,
          "run: compare with the fp64 oracle (and one call over the whole "
          "sequence) and print the errors");

namespace ringattn::cli {
namespace {

absl::StatusOr<RunOptions> RunOptionsFromFlags() {
  RunOptions o;
  RETURN_IF_ERROR(
      ProblemFromFlags(kRunDefaults, &o.config.mask, &o.config.layout, &o.random_shape));
  o.auto_layout = LayoutFlag() == "auto";
  if (!o.auto_layout) {
    ASSIGN_OR_RETURN(o.config.layout.kind, ParseLayoutKind(LayoutFlag()));
  }
  o.config.softmax_scale = absl::GetFlag(FLAGS_softmax_scale);
  const std::string backend = absl::GetFlag(FLAGS_backend);
  const int gpus = absl::GetFlag(FLAGS_gpus);
  if (gpus < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--gpus is ", gpus, "; expected 0 (every visible GPU) or more"));
  }
  // The compute backends by name (the API's default is the CPU one).
  const std::pair<absl::string_view, std::function<RankBackendFactory()>> backends[] = {
      {"cpu", [] { return RankBackendFactory(); }},
      {"cuda", [gpus] { return cuda::CudaBackendFactory(gpus); }},
  };
  bool known = false;
  for (const auto& [name, factory] : backends) {
    if (name != backend) continue;
    o.config.backend = factory();
    known = true;
  }
  if (!known) {
    return absl::InvalidArgumentError(
        absl::StrCat("--backend is '", backend, "'; expected cpu or cuda"));
  }
  ASSIGN_OR_RETURN(o.random_dtype, DTypeFromFlag("float32"));
  o.random = absl::GetFlag(FLAGS_random);
  if (o.random && (!absl::GetFlag(FLAGS_q).empty() || !absl::GetFlag(FLAGS_k).empty() ||
                   !absl::GetFlag(FLAGS_v).empty() || !absl::GetFlag(FLAGS_do).empty())) {
    return absl::InvalidArgumentError(
        "--random makes the inputs; expected either --random or --q/--k/--v(/--do) files");
  }
  if (!o.random && !absl::GetFlag(FLAGS_q).empty() && DTypeFlagGiven()) {
    return absl::InvalidArgumentError(
        "--dtype applies to --random inputs; .npy inputs carry their own dtype");
  }
  o.seed = static_cast<uint32_t>(absl::GetFlag(FLAGS_seed));
  o.q = absl::GetFlag(FLAGS_q);
  o.k = absl::GetFlag(FLAGS_k);
  o.v = absl::GetFlag(FLAGS_v);
  o.dout = absl::GetFlag(FLAGS_do);
  o.backward = o.random ? BackwardFlag() : !o.dout.empty();
  o.out = absl::GetFlag(FLAGS_out);
  o.lse = absl::GetFlag(FLAGS_lse);
  o.dq = absl::GetFlag(FLAGS_dq);
  o.dk = absl::GetFlag(FLAGS_dk);
  o.dv = absl::GetFlag(FLAGS_dv);
  o.check = absl::GetFlag(FLAGS_check);
  o.fault_rank = absl::GetFlag(FLAGS_inject_fault_rank);
  o.fault = absl::GetFlag(FLAGS_inject_fault);
  if (o.fault != "fail" && o.fault != "silent" && o.fault != "silent_after_forward") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--inject_fault is '", o.fault, "'; expected fail, silent or silent_after_forward"));
  }
  const int world = o.config.layout.world;
  if (o.fault_rank < -1 || o.fault_rank >= world) {
    return absl::InvalidArgumentError(absl::StrCat("--inject_fault_rank is ", o.fault_rank,
                                                   "; expected -1 (none) or a rank in [0, ", world,
                                                   ")"));
  }
  if (o.fault_rank >= 0 && o.fault != "fail" && world < 2) {
    return absl::InvalidArgumentError(absl::StrCat("--inject_fault=", o.fault,
                                                   " needs a peer to notice the silence; expected "
                                                   "--world >= 2"));
  }
  if (o.fault_rank >= 0 && o.fault == "silent_after_forward" && !o.backward) {
    return absl::InvalidArgumentError(
        "--inject_fault=silent_after_forward leaves before the backward; expected a run with one");
  }
  // Outputs: all or nothing, checked before the run.
  RETURN_IF_ERROR(ValidateOutputPaths(
      {{"out", o.out}, {"lse", o.lse}, {"dq", o.dq}, {"dk", o.dk}, {"dv", o.dv}}));
  if (!o.backward) {
    for (const auto& [flag, path] :
         {std::pair{"dq", o.dq}, std::pair{"dk", o.dk}, std::pair{"dv", o.dv}}) {
      if (!path.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", flag, "=", path,
                         " asks for a gradient, but there is no backward pass (give --do, or "
                         "--random with --backward)"));
      }
    }
  }
  const double timeout_s = absl::GetFlag(FLAGS_timeout_s);
  if (!std::isfinite(timeout_s) || timeout_s <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--timeout_s is ", timeout_s, "; expected a positive, finite number of seconds"));
  }
  return o;
}

// What a communicator's run needs.
struct RunContext {
  const RunOptions& options;
  absl::Duration timeout;
  bool on_gpu;
  int* argc;
  char*** argv;
};

absl::StatusOr<std::string> RunMpi(const RunContext& c) {
  const RunOptions& options = c.options;
  const absl::Duration timeout = c.timeout;
  int* argc = c.argc;
  char*** argv = c.argv;
#ifdef RINGATTN_WITH_MPI
  ASSIGN_OR_RETURN(std::unique_ptr<comm::MpiCommunicator> mpi,
                   comm::MpiCommunicator::Create(argc, argv, timeout));
  if (mpi->world() != options.config.layout.world) {
    // Every rank sees the same mismatch; no one waits for anyone.
    return absl::InvalidArgumentError(absl::StrCat("--world ", options.config.layout.world,
                                                   " differs from mpirun's ", mpi->world(),
                                                   " processes"));
  }
  absl::StatusOr<RunInputs> inputs = LoadRunInputs(options);
  if (!inputs.ok()) {
    mpi->Abort(inputs.status());
    return inputs.status();
  }
  absl::StatusOr<std::string> report = RunRank(*mpi, options, *inputs);
  if (absl::IsCancelled(report.status())) {  // a silent rank (fault injection)
    // Its peers time out and abort; it waits for that (bounded), never
    // entering MPI_Finalize, which they will not join.
    mpi->LeaveSilently(2 * timeout + absl::Seconds(10));
    return std::string();
  }
  if (!report.ok()) {
    return absl::Status(report.status().code(),
                        absl::StrCat("rank ", mpi->rank(), ": ", report.status().message()));
  }
  return report;
#else
  (void)options, (void)timeout, (void)argc, (void)argv;
  return absl::InvalidArgumentError(
      "this binary was built without MPI; run //cli:ringattn_mpi under mpirun "
      "for --comm=mpi");
#endif
}

// The communicators `run --comm` chooses from, by name (auto picks one).
struct CommunicatorEntry {
  absl::string_view name;
  absl::string_view what;
  bool device_buffers;  // needs --backend=cuda
  absl::StatusOr<std::string> (*run)(const RunContext&);
};
constexpr CommunicatorEntry kCommunicators[] = {
    {"threads", "ranks as threads of this process, host inboxes", false,
     [](const RunContext& c) { return RunThreads(c.options, c.timeout); }},
    {"device", "CUDA ranks as threads, any number per GPU, cudaMemcpyAsync", true,
     [](const RunContext& c) {
       return RunCudaThreads(c.options, CudaComm::kDeviceCopy, absl::GetFlag(FLAGS_gpus),
                             c.timeout);
     }},
    {"nccl", "NCCL, one thread per GPU", true,
     [](const RunContext& c) {
       return RunCudaThreads(c.options, CudaComm::kNccl, absl::GetFlag(FLAGS_gpus), c.timeout);
     }},
    {"nccl_env", "NCCL, this process one rank of a torchrun/Slurm launch", true,
     [](const RunContext& c) {
       return RunCudaProcess(c.options, absl::GetFlag(FLAGS_nccl_id_file), c.timeout);
     }},
    {"mpi", "MPI, ringattn_mpi under mpirun", false, RunMpi},
};

std::string CommunicatorNames() {
  std::vector<absl::string_view> names = {"auto"};
  for (const CommunicatorEntry& e : kCommunicators) names.push_back(e.name);
  return absl::StrJoin(names, ", ");
}

}  // namespace

absl::StatusOr<std::string> RunFromFlags(int* argc, char*** argv) {
  ASSIGN_OR_RETURN(RunOptions options, RunOptionsFromFlags());
  const RunContext context{options, absl::Seconds(absl::GetFlag(FLAGS_timeout_s)),
                           absl::GetFlag(FLAGS_backend) == "cuda", argc, argv};
  std::string comm = absl::GetFlag(FLAGS_comm);
  if (comm == "auto") {
    comm = "threads";
    if (context.on_gpu) {
      ASSIGN_OR_RETURN(int visible, cuda::DeviceCount());
      const int gpus = absl::GetFlag(FLAGS_gpus) > 0 ? absl::GetFlag(FLAGS_gpus) : visible;
      comm = gpus >= 2 && options.config.layout.world <= gpus ? "nccl" : "device";
    }
  }
  for (const CommunicatorEntry& entry : kCommunicators) {
    if (entry.name != comm) continue;
    if (entry.device_buffers && !context.on_gpu) {
      return absl::InvalidArgumentError(
          absl::StrCat("--comm=", comm, " moves device buffers; expected --backend=cuda"));
    }
    return entry.run(context);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--comm is '", comm, "'; expected one of ", CommunicatorNames()));
}

std::string CommunicatorUsage() {
  std::string usage;
  for (const CommunicatorEntry& e : kCommunicators) {
    absl::StrAppend(&usage, "  ", e.name, std::string(10 - e.name.size(), ' '), e.what,
                    e.device_buffers ? " (--backend=cuda)" : "", "\n");
  }
  return usage;
}

}  // namespace ringattn::cli
