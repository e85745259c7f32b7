// ringattn: exact ring attention. Subcommands:
//   ringattn plan [flags]   which tokens each rank holds, work per rank/step
//   ringattn run  [flags]   ring attention on CPU ranks, .npy in and out
// Built twice: //cli:ringattn (ranks as threads) and //cli:ringattn_mpi
// (also --comm=mpi: one process per rank under mpirun).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/cuda_run.h"
#include "cli/npy.h"
#include "cli/plan_command.h"
#include "cli/run_command.h"
#include "cli/sim_command.h"
#include "cuda/device.h"
#include "cuda/ring_backend.h"
#ifdef RINGATTN_WITH_MPI
#include "comm/mpi_communicator.h"
#include "core/status_macros.h"
#endif

// Problem and layout (plan and run).
ABSL_FLAG(std::string, layout, "zigzag",
          "ring | zigzag | stripe | llama3 (plan also: all, a comparison)");
ABSL_FLAG(int, world, 0, "number of ranks W (default: 8 for plan, 4 for run)");
ABSL_FLAG(int, ring_size, 0,
          "ranks per ring R (W/R independent rings over batch slices); "
          "0: one ring of W");
ABSL_FLAG(int64_t, stripe_width, 1, "tokens per stripe (stripe layout)");
ABSL_FLAG(int64_t, kv_heads_per_group, 0, "kv heads all-gathered per step (llama3); 0: all");
ABSL_FLAG(int64_t, batch, 1, "batch size (plan, run --random)");
ABSL_FLAG(int64_t, seqlen, 0,
          "tokens per sequence, the packed total for varlen (default: 65536 "
          "for plan, 1024 for run --random)");
ABSL_FLAG(int64_t, num_heads, 0, "query heads (default: 32 plan, 8 run)");
ABSL_FLAG(int64_t, num_kv_heads, 0, "key/value heads; 0: num_heads");
ABSL_FLAG(int64_t, head_dim, 0, "head dimension (default: 128 plan, 64 run)");
ABSL_FLAG(bool, causal, true, "causal mask (bottom-right aligned)");
ABSL_FLAG(int64_t, window_left, -1, "sliding window to the left; -1: none");
ABSL_FLAG(int64_t, window_right, -1, "sliding window to the right; -1: none");
ABSL_FLAG(std::string, cu_seqlens, "",
          "varlen documents: a comma list (0,1000,4096) or an int32/int64 "
          ".npy file; batch must be 1");
ABSL_FLAG(std::string, key_lengths, "", "valid key length per batch row, e.g. 8000,6000");
// run only.
ABSL_FLAG(std::string, q, "", "run: q .npy (batch, seqlen, heads, head_dim)");
ABSL_FLAG(std::string, k, "", "run: k .npy (batch, seqlen, kv_heads, head_dim)");
ABSL_FLAG(std::string, v, "", "run: v .npy, like k");
ABSL_FLAG(std::string, do, "", "run: upstream gradient dO .npy, like q");
ABSL_FLAG(bool, random, false, "run: random N(0,1) inputs of the shape flags");
ABSL_FLAG(int, seed, 0, "run: seed of --random");
ABSL_FLAG(std::string, dtype, "",
          "float32 | float64 | float16 | bfloat16 (run --random: default "
          "float32; sim: default bfloat16)");
ABSL_FLAG(bool, backward, true, "run --random: also run the backward pass");
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
ABSL_FLAG(std::string, inject_fault, "fail", "run: fail | silent");
ABSL_FLAG(bool, check, false,
          "run: compare with the fp64 oracle (and one call over the whole "
          "sequence) and print the errors");

// sim only.
ABSL_FLAG(std::string, gpu, "h200", "sim: h100 | h200 | h800 | a100 calibration");
ABSL_FLAG(std::string, calibration, "", "sim: a calibration file (overrides --gpu)");
ABSL_FLAG(int, nodes, 1, "sim: nodes the world spreads over");
ABSL_FLAG(int, gpus_per_node, 0, "sim: GPUs per node; 0: world / nodes");
ABSL_FLAG(double, link_GBps, 0, "sim: override the NVLink GB/s per direction");
ABSL_FLAG(double, link_latency_us, -1, "sim: override the link latency");
ABSL_FLAG(double, internode_GBps, 0, "sim: override the inter-node GB/s per GPU");
ABSL_FLAG(std::string, model, "ringattn",
          "sim: whose implementation to model: ringattn (ours), or ring-flash-attention (its "
          "separate merge passes, slice and index copies, host syncs)");
ABSL_FLAG(std::string, trace, "", "sim: write a Chrome trace JSON here");
ABSL_FLAG(bool, ring_flash_attention_table, false,
          "sim: compare with ring-flash-attention's published 8xH800 table");
ABSL_FLAG(std::string, sweep_csv, "", "sim: sweep, one CSV row per run");
ABSL_FLAG(std::string, sweep_layouts, "ring,zigzag,stripe,llama3", "sim sweep");
ABSL_FLAG(std::string, sweep_worlds, "2,4,8,16,32", "sim sweep");
ABSL_FLAG(std::string, sweep_tokens_per_rank, "8192", "sim sweep");
ABSL_FLAG(std::string, sweep_link_GBps, "", "sim sweep; empty: the calibration's");
ABSL_FLAG(std::string, sweep_ring_sizes, "0", "sim sweep; 0: one ring");
ABSL_FLAG(std::string, plot, "", "sim sweep: efficiency vs W per layout, PNG");

namespace ringattn::cli {
namespace {

int64_t Or(int64_t value, int64_t fallback) { return value != 0 ? value : fallback; }

absl::StatusOr<std::vector<int64_t>> CuSeqlens() {
  const std::string flag = absl::GetFlag(FLAGS_cu_seqlens);
  if (!absl::EndsWith(flag, ".npy")) return ParseIntList("cu_seqlens", flag);
  ASSIGN_OR_RETURN(NpyArray a, ReadNpy(flag));
  if (a.shape.size() != 1 || (a.type != NpyType::kInt32 && a.type != NpyType::kInt64)) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": expected a 1-D int32 or int64 array of document boundaries"));
  }
  if (a.shape[0] < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": holds ", a.shape[0],
                     " boundaries; expected at least 2 (0, then each document's end)"));
  }
  std::vector<int64_t> cu(a.shape[0]);
  for (size_t i = 0; i < cu.size(); ++i) {
    if (a.type == NpyType::kInt32) {
      int32_t x;
      std::memcpy(&x, a.data.data() + 4 * i, 4);
      cu[i] = x;
    } else {
      std::memcpy(&cu[i], a.data.data() + 8 * i, 8);
    }
  }
  return cu;
}

// Mask, layout (kind aside) and shape flags; `plan` picks the defaults.
absl::Status CommonFlags(bool plan, MaskSpec* mask, LayoutSpec* layout, AttentionShape* shape) {
  ASSIGN_OR_RETURN(std::vector<int64_t> cu, CuSeqlens());
  ASSIGN_OR_RETURN(std::vector<int64_t> key_lengths,
                   ParseIntList("key_lengths", absl::GetFlag(FLAGS_key_lengths)));
  mask->causal = absl::GetFlag(FLAGS_causal);
  mask->window_left = absl::GetFlag(FLAGS_window_left);
  mask->window_right = absl::GetFlag(FLAGS_window_right);
  mask->cu_seqlens = cu;
  mask->key_lengths = key_lengths;
  layout->world = static_cast<int>(Or(absl::GetFlag(FLAGS_world), plan ? 8 : 4));
  layout->ring_size = absl::GetFlag(FLAGS_ring_size);
  layout->stripe_width = absl::GetFlag(FLAGS_stripe_width);
  layout->kv_heads_per_group = absl::GetFlag(FLAGS_kv_heads_per_group);
  shape->batch = absl::GetFlag(FLAGS_batch);
  shape->seqlen_q = shape->seqlen_k = Or(absl::GetFlag(FLAGS_seqlen), plan ? 8 * 8192 : 1024);
  shape->num_heads = Or(absl::GetFlag(FLAGS_num_heads), plan ? 32 : 8);
  shape->num_kv_heads = Or(absl::GetFlag(FLAGS_num_kv_heads), shape->num_heads);
  shape->head_dim = Or(absl::GetFlag(FLAGS_head_dim), plan ? 128 : 64);
  return absl::OkStatus();
}

// Flags each subcommand reads; the shape, mask and layout flags serve all.
constexpr absl::string_view kCommonFlags[] = {
    "layout", "world",       "ring_size",    "stripe_width", "kv_heads_per_group",
    "batch",  "seqlen",      "num_heads",    "num_kv_heads", "head_dim",
    "causal", "window_left", "window_right", "cu_seqlens",   "key_lengths"};
constexpr absl::string_view kRunFlags[] = {"q",
                                           "k",
                                           "v",
                                           "do",
                                           "random",
                                           "seed",
                                           "dtype",
                                           "backward",
                                           "softmax_scale",
                                           "comm",
                                           "nccl_id_file",
                                           "backend",
                                           "gpus",
                                           "timeout_s",
                                           "out",
                                           "lse",
                                           "dq",
                                           "dk",
                                           "dv",
                                           "inject_fault_rank",
                                           "inject_fault",
                                           "check"};
constexpr absl::string_view kSimFlags[] = {"dtype",
                                           "backward",
                                           "gpu",
                                           "calibration",
                                           "nodes",
                                           "gpus_per_node",
                                           "link_GBps",
                                           "link_latency_us",
                                           "internode_GBps",
                                           "model",
                                           "trace",
                                           "ring_flash_attention_table",
                                           "sweep_csv",
                                           "sweep_layouts",
                                           "sweep_worlds",
                                           "sweep_tokens_per_rank",
                                           "sweep_link_GBps",
                                           "sweep_ring_sizes",
                                           "plot"};

// Every flag of this binary given a value other than its default must be
// one the subcommand reads, and must apply to the layout and inputs chosen:
// nothing is accepted and then ignored.
absl::Status CheckFlagsApply(absl::string_view command) {
  absl::flat_hash_set<absl::string_view> allowed(std::begin(kCommonFlags), std::end(kCommonFlags));
  if (command == "run") allowed.insert(std::begin(kRunFlags), std::end(kRunFlags));
  if (command == "sim") allowed.insert(std::begin(kSimFlags), std::end(kSimFlags));
  std::vector<std::string> stray;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!absl::StrContains(flag->Filename(), "ringattn_main.cc")) continue;
    if (flag->CurrentValue() == flag->DefaultValue() || allowed.contains(name)) continue;
    stray.push_back(absl::StrCat("--", name));
  }
  std::sort(stray.begin(), stray.end());
  if (!stray.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(absl::StrJoin(stray, ", "), stray.size() == 1 ? " does" : " do",
                     " not apply to `", command, "`; see --help for its flags"));
  }
  const std::string layout = absl::GetFlag(FLAGS_layout);
  const auto given = [](const auto& flag, const auto& fallback) {
    return absl::GetFlag(flag) != fallback;
  };
  if (layout != "stripe" && layout != "all" && given(FLAGS_stripe_width, int64_t{1})) {
    return absl::InvalidArgumentError(
        absl::StrCat("--stripe_width applies to the stripe layout; the layout is ", layout));
  }
  if (layout != "llama3" && layout != "all" && given(FLAGS_kv_heads_per_group, int64_t{0})) {
    return absl::InvalidArgumentError(
        absl::StrCat("--kv_heads_per_group applies to the llama3 layout; the layout is ", layout));
  }
  if (absl::GetFlag(FLAGS_causal) && given(FLAGS_window_right, int64_t{-1})) {
    return absl::InvalidArgumentError(
        "--window_right does not apply under --causal (which allows no key to the right); "
        "give --nocausal to use it");
  }
  if (command == "run" && absl::GetFlag(FLAGS_random) &&
      (!absl::GetFlag(FLAGS_q).empty() || !absl::GetFlag(FLAGS_k).empty() ||
       !absl::GetFlag(FLAGS_v).empty() || !absl::GetFlag(FLAGS_do).empty())) {
    return absl::InvalidArgumentError(
        "--random makes the inputs; expected either --random or --q/--k/--v(/--do) files");
  }
  if (command == "run" && !absl::GetFlag(FLAGS_random) && !absl::GetFlag(FLAGS_q).empty() &&
      !absl::GetFlag(FLAGS_dtype).empty()) {
    return absl::InvalidArgumentError(
        "--dtype applies to --random inputs; .npy inputs carry their own dtype");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Plan() {
  PlanOptions options;
  RETURN_IF_ERROR(CommonFlags(true, &options.mask, &options.layout, &options.shape));
  ASSIGN_OR_RETURN(std::vector<LayoutKind> layouts,
                   ParseLayouts(absl::GetFlag(FLAGS_layout), !options.mask.cu_seqlens.empty()));
  options.layouts = layouts;
  return RunPlan(options);
}

absl::StatusOr<RunOptions> RunFlags() {
  RunOptions o;
  RETURN_IF_ERROR(CommonFlags(false, &o.config.mask, &o.config.layout, &o.random_shape));
  ASSIGN_OR_RETURN(LayoutKind kind, ParseLayoutKind(absl::GetFlag(FLAGS_layout)));
  o.config.layout.kind = kind;
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
  const std::string dtype_flag = absl::GetFlag(FLAGS_dtype);
  ASSIGN_OR_RETURN(DType dtype, ParseDType(dtype_flag.empty() ? "float32" : dtype_flag));
  o.random_dtype = dtype;
  o.random = absl::GetFlag(FLAGS_random);
  o.seed = static_cast<uint32_t>(absl::GetFlag(FLAGS_seed));
  o.q = absl::GetFlag(FLAGS_q);
  o.k = absl::GetFlag(FLAGS_k);
  o.v = absl::GetFlag(FLAGS_v);
  o.dout = absl::GetFlag(FLAGS_do);
  o.backward = o.random ? absl::GetFlag(FLAGS_backward) : !o.dout.empty();
  o.out = absl::GetFlag(FLAGS_out);
  o.lse = absl::GetFlag(FLAGS_lse);
  o.dq = absl::GetFlag(FLAGS_dq);
  o.dk = absl::GetFlag(FLAGS_dk);
  o.dv = absl::GetFlag(FLAGS_dv);
  o.check = absl::GetFlag(FLAGS_check);
  o.fault_rank = absl::GetFlag(FLAGS_inject_fault_rank);
  o.fault = absl::GetFlag(FLAGS_inject_fault);
  if (o.fault != "fail" && o.fault != "silent") {
    return absl::InvalidArgumentError(
        absl::StrCat("--inject_fault is '", o.fault, "'; expected fail or silent"));
  }
  const int world = o.config.layout.world;
  if (o.fault_rank < -1 || o.fault_rank >= world) {
    return absl::InvalidArgumentError(absl::StrCat("--inject_fault_rank is ", o.fault_rank,
                                                   "; expected -1 (none) or a rank in [0, ", world,
                                                   ")"));
  }
  if (o.fault_rank >= 0 && o.fault == "silent" && world < 2) {
    return absl::InvalidArgumentError(
        "--inject_fault=silent needs a peer to notice the silence; expected --world >= 2");
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
  if ((mpi)->world() != options.config.layout.world) {
    // Every rank sees the same mismatch; no one waits for anyone.
    return absl::InvalidArgumentError(absl::StrCat("--world ", options.config.layout.world,
                                                   " differs from mpirun's ", (mpi)->world(),
                                                   " processes"));
  }
  absl::StatusOr<RunInputs> inputs = LoadRunInputs(options);
  if (!inputs.ok()) {
    (mpi)->Abort(inputs.status());
    return inputs.status();
  }
  absl::StatusOr<std::string> report = RunRank(*mpi, options, *inputs);
  if (absl::IsCancelled(report.status())) {  // a silent rank (fault injection)
    // Its peers time out and abort; it waits for that (bounded), never
    // entering MPI_Finalize, which they will not join.
    (mpi)->LeaveSilently(2 * timeout + absl::Seconds(10));
    return std::string();
  }
  if (!report.ok()) {
    return absl::Status(report.status().code(),
                        absl::StrCat("rank ", (mpi)->rank(), ": ", report.status().message()));
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

absl::StatusOr<std::string> Run(int* argc, char*** argv) {
  ASSIGN_OR_RETURN(RunOptions options, RunFlags());
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

absl::StatusOr<std::string> Sim() {
  sim::SimOptions o;
  RETURN_IF_ERROR(CommonFlags(true, &o.mask, &o.layout, &o.shape));
  const std::string calibration = absl::GetFlag(FLAGS_calibration);
  RETURN_IF_ERROR(ValidateOutputPaths({{"sweep_csv", absl::GetFlag(FLAGS_sweep_csv)},
                                       {"plot", absl::GetFlag(FLAGS_plot)},
                                       {"trace", absl::GetFlag(FLAGS_trace)}}));
  // Overrides: 0 (or -1 for the latency) keeps the calibration's value.
  for (const auto& [name, value, keep] :
       {std::tuple{"link_GBps", absl::GetFlag(FLAGS_link_GBps), 0.0},
        std::tuple{"internode_GBps", absl::GetFlag(FLAGS_internode_GBps), 0.0},
        std::tuple{"link_latency_us", absl::GetFlag(FLAGS_link_latency_us), -1.0}}) {
    if (value != keep && !(std::isfinite(value) && value >= 0)) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " is ", value,
                                                     "; expected a finite number >= 0 (", keep,
                                                     ": the calibration's)"));
    }
  }
  if (absl::GetFlag(FLAGS_nodes) < 1 || absl::GetFlag(FLAGS_gpus_per_node) < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--nodes is ", absl::GetFlag(FLAGS_nodes), " and --gpus_per_node ",
        absl::GetFlag(FLAGS_gpus_per_node), "; expected nodes >= 1 and gpus_per_node >= 0"));
  }
  ASSIGN_OR_RETURN(sim::Calibration c, calibration.empty()
                                           ? sim::Calibration::Builtin(absl::GetFlag(FLAGS_gpu))
                                           : sim::Calibration::Load(calibration));
  if (absl::GetFlag(FLAGS_link_GBps) > 0) c.link_gbps = absl::GetFlag(FLAGS_link_GBps);
  if (absl::GetFlag(FLAGS_link_latency_us) >= 0) {
    c.link_latency_us = absl::GetFlag(FLAGS_link_latency_us);
  }
  if (absl::GetFlag(FLAGS_internode_GBps) > 0) {
    c.internode_gbps = absl::GetFlag(FLAGS_internode_GBps);
  }
  o.calibration = c;
  if (absl::GetFlag(FLAGS_ring_flash_attention_table)) return SeedTable(o.calibration);
  const std::string dtype_flag = absl::GetFlag(FLAGS_dtype);
  ASSIGN_OR_RETURN(DType dtype, ParseDType(dtype_flag.empty() ? "bfloat16" : dtype_flag));
  o.dtype = dtype;
  o.backward = absl::GetFlag(FLAGS_backward);
  const std::string model = absl::GetFlag(FLAGS_model);
  if (model != "ringattn" && model != "ring-flash-attention") {
    return absl::InvalidArgumentError(
        absl::StrCat("--model is '", model, "'; expected ringattn or ring-flash-attention"));
  }
  o.seed_implementation = model == "ring-flash-attention";
  const int nodes = absl::GetFlag(FLAGS_nodes);
  o.gpus_per_node = absl::GetFlag(FLAGS_gpus_per_node);
  if (o.gpus_per_node == 0 && nodes > 1) {
    if (o.layout.world % nodes != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--nodes ", nodes, " does not divide world ", o.layout.world));
    }
    o.gpus_per_node = o.layout.world / nodes;
  }
  const std::string csv = absl::GetFlag(FLAGS_sweep_csv);
  if (csv.empty()) {
    ASSIGN_OR_RETURN(LayoutKind kind, ParseLayoutKind(absl::GetFlag(FLAGS_layout)));
    o.layout.kind = kind;
    return RunSim(o, absl::GetFlag(FLAGS_trace));
  }
  SweepSpec spec;
  spec.csv_path = csv;
  spec.plot_path = absl::GetFlag(FLAGS_plot);
  for (absl::string_view name : absl::StrSplit(absl::GetFlag(FLAGS_sweep_layouts), ',')) {
    ASSIGN_OR_RETURN(LayoutKind kind, ParseLayoutKind(name));
    spec.layouts.push_back(kind);
  }
  for (const auto& [flag, text, out] :
       {std::tuple{"sweep_worlds", absl::GetFlag(FLAGS_sweep_worlds), 0},
        std::tuple{"sweep_tokens_per_rank", absl::GetFlag(FLAGS_sweep_tokens_per_rank), 1},
        std::tuple{"sweep_ring_sizes", absl::GetFlag(FLAGS_sweep_ring_sizes), 2}}) {
    ASSIGN_OR_RETURN(std::vector<int64_t> values, ParseIntList(flag, text));
    for (int64_t v : values) {
      if (out != 1 && (v < 0 || v > kMaxWorld)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", flag, ": ", v, " is out of range; expected 0 to ", kMaxWorld));
      }
      if (out == 0) spec.worlds.push_back(static_cast<int>(v));
      if (out == 1) spec.tokens_per_rank.push_back(v);
      if (out == 2) spec.ring_sizes.push_back(static_cast<int>(v));
    }
  }
  const std::string links = absl::GetFlag(FLAGS_sweep_link_GBps);
  if (links.empty()) {
    spec.link_gbps = {o.calibration.link_gbps};
  } else {
    for (absl::string_view part : absl::StrSplit(links, ',')) {
      double v;
      if (!absl::SimpleAtod(part, &v) || v <= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("--sweep_link_GBps: '", part, "' is not a positive number"));
      }
      spec.link_gbps.push_back(v);
    }
  }
  if (spec.worlds.empty() || spec.tokens_per_rank.empty() || spec.ring_sizes.empty()) {
    return absl::InvalidArgumentError(
        "a sweep needs at least one world, "
        "tokens-per-rank and ring size");
  }
  return Sweep(o, spec);
}

}  // namespace
}  // namespace ringattn::cli

int main(int argc, char** argv) {
  std::string usage =
      "exact ring attention.\n\nUsage: ringattn plan|run|sim [flags]\n"
      "  plan   which tokens each rank holds and the FLOPs of every rank at "
      "every ring step, with the load imbalance\n"
      "  run    ring attention over .npy inputs (or --random) on CPU ranks or "
      "GPUs (--backend=cpu|cuda); --check compares with the fp64 oracle\n"
      "  sim    simulated runs on calibrated GPUs and links: summary, Chrome "
      "trace, --ring_flash_attention_table, sweeps (--sweep_csv, --plot)\n\n"
      "run --comm (auto: threads on CPU; nccl or device on GPUs):\n";
  for (const ringattn::cli::CommunicatorEntry& e : ringattn::cli::kCommunicators) {
    absl::StrAppend(&usage, "  ", e.name, std::string(10 - e.name.size(), ' '), e.what,
                    e.device_buffers ? " (--backend=cuda)" : "", "\n");
  }
  absl::StrAppend(&usage, "\nTry --helpfull for flags.");
  absl::SetProgramUsageMessage(usage);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  const std::string command = args.size() == 2 ? args[1] : "";
  if (command != "plan" && command != "run" && command != "sim") {
    std::fprintf(
        stderr, "%s\n%s\n",
        absl::StrCat("ringattn: expected one subcommand, plan, run or sim; got ",
                     args.size() < 2 ? "none" : args[1], args.size() > 2 ? " and more" : "")
            .c_str(),
        std::string(absl::ProgramUsageMessage()).c_str());
    return 2;
  }
  if (const absl::Status applies = ringattn::cli::CheckFlagsApply(command); !applies.ok()) {
    std::fprintf(stderr, "ringattn %s: %s\n", command.c_str(),
                 std::string(applies.message()).c_str());
    return 1;
  }
  absl::StatusOr<std::string> report = command == "plan"  ? ringattn::cli::Plan()
                                       : command == "sim" ? ringattn::cli::Sim()
                                                          : ringattn::cli::Run(&argc, &argv);
  if (!report.ok()) {
    std::fprintf(stderr, "ringattn %s: %s\n", command.c_str(),
                 std::string(report.status().message()).c_str());
    return 1;
  }
  std::fputs(report->c_str(), stdout);
  return 0;
}
