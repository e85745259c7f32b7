#include "cli/run_command.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/auto_layout.h"
#include "cli/npy.h"
#include "comm/thread_communicator.h"
#include "core/dtype_convert.h"
#include "core/layout.h"
#include "core/mask.h"
#include "core/status_macros.h"
#include "cpu_reference/attention.h"

namespace ringattn::cli {
namespace {

constexpr int kTagResult = 10;

absl::StatusOr<DType> TensorDType(const NpyArray& a, const std::string& path) {
  switch (a.type) {
    case NpyType::kFloat32:
      return DType::kFloat32;
    case NpyType::kFloat64:
      return DType::kFloat64;
    case NpyType::kFloat16:
      return DType::kFloat16;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": dtype ", NpyDescr(a.type),
                       " is not a tensor dtype; expected float32, float64 or float16"));
  }
}

// (batch, seqlen, heads, head_dim), or (total, heads, head_dim) as batch 1.
absl::StatusOr<std::vector<int64_t>> Shape4(const NpyArray& a, const std::string& path) {
  if (a.shape.size() == 4) return a.shape;
  if (a.shape.size() == 3) {
    return std::vector<int64_t>{1, a.shape[0], a.shape[1], a.shape[2]};
  }
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": shape has ", a.shape.size(),
                   " dimensions; expected (batch, seqlen, heads, head_dim) or (total, "
                   "heads, head_dim)"));
}

std::string ShapeText(const std::vector<int64_t>& s) {
  return absl::StrCat("(", absl::StrJoin(s, ", "), ")");
}

// n values of N(0, 1), rounded to `dtype`.
std::vector<uint8_t> RandomTensor(DType dtype, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<uint8_t> out(n * DTypeBytes(dtype));
  for (int64_t i = 0; i < n; ++i) {
    StoreElement<double>(dtype, normal(rng), out.data(), i);
  }
  return out;
}

std::vector<double> Decode(DType dtype, absl::Span<const uint8_t> x) {
  return DecodeAll<double>(dtype, x);
}

template <typename T>
absl::Span<const uint8_t> AsBytes(const std::vector<T>& x) {
  return {reinterpret_cast<const uint8_t*>(x.data()), x.size() * sizeof(T)};
}

// What every rank sends rank 0.
struct RankResult {
  std::vector<uint8_t> out, dq, dk, dv;
  std::vector<float> lse;       // (local_batch, local_seqlen, heads)
  std::vector<double> seconds;  // forward steps, then backward steps, totals
};

// Global results on rank 0.
struct GlobalResult {
  std::vector<uint8_t> out, dq, dk, dv;
  std::vector<float> lse;                    // (batch, heads, seqlen)
  std::vector<std::vector<double>> seconds;  // per rank
};

absl::StatusOr<RankResult> ComputeRank(Communicator& comm, const RunOptions& options,
                                       const RunInputs& in, const Layout& layout) {
  const AttentionShape& s = in.shape;
  const int64_t elem = DTypeBytes(in.dtype);
  const int64_t q_token = s.num_heads * s.head_dim * elem;
  const int64_t kv_token = s.num_kv_heads * s.head_dim * elem;
  const int r = comm.rank();
  if (r == options.fault_rank && options.fault != "silent_after_forward") {
    if (options.fault == "silent") {
      return absl::CancelledError(absl::StrCat("rank ", r, " left without a word (injected)"));
    }
    const absl::Status failure = absl::InternalError(absl::StrCat("injected failure on rank ", r));
    comm.Abort(failure);
    return failure;
  }
  const auto shard = [&](const std::vector<uint8_t>& x, int64_t token) {
    return std::move((*layout.Shard(absl::Span<const uint8_t>(x), token))[r]);
  };
  const std::vector<uint8_t> q = shard(in.q, q_token), k = shard(in.k, kv_token),
                             v = shard(in.v, kv_token);
  RingAttentionConfig config = options.config;
  config.layout = layout.spec();  // the run's layout (--layout=auto resolved)
  absl::StatusOr<std::unique_ptr<RingAttention>> attention = RingAttention::Create(comm, config, s);
  if (!attention.ok()) {
    comm.Abort(attention.status());
    return attention.status();
  }
  const int64_t rows = layout.local_seqlen();
  ASSIGN_OR_RETURN(RankForward fwd,
                   (*attention)
                       ->Forward(DenseRankTensor(in.dtype, q, rows, s.num_heads, s.head_dim),
                                 DenseRankTensor(in.dtype, k, rows, s.num_kv_heads, s.head_dim),
                                 DenseRankTensor(in.dtype, v, rows, s.num_kv_heads, s.head_dim)));
  RankResult result;
  result.out = fwd.out;
  result.lse = SwapMiddleAxes<float>(fwd.lse, layout.local_batch(), s.num_heads, rows);
  result.seconds = fwd.stats.step_seconds;
  result.seconds.push_back(fwd.stats.total_seconds);
  if (r == options.fault_rank && options.fault == "silent_after_forward") {
    return absl::CancelledError(
        absl::StrCat("rank ", r, " left without a word after the forward (injected)"));
  }
  if (!in.dout.empty()) {
    const std::vector<uint8_t> dout = shard(in.dout, q_token);
    ASSIGN_OR_RETURN(
        RankGrads grads,
        (*attention)->Backward(DenseRankTensor(in.dtype, dout, rows, s.num_heads, s.head_dim)));
    result.dq = grads.dq;
    result.dk = grads.dk;
    result.dv = grads.dv;
    result.seconds.insert(result.seconds.end(), grads.stats.step_seconds.begin(),
                          grads.stats.step_seconds.end());
    result.seconds.push_back(grads.stats.total_seconds);
  }
  return result;
}

// Sends every rank's result to rank 0; rank 0 returns the global result.
absl::StatusOr<GlobalResult> Gather(Communicator& comm, const RunInputs& in, const Layout& layout,
                                    RankResult mine) {
  const AttentionShape& s = in.shape;
  const int64_t elem = DTypeBytes(in.dtype);
  const int world = comm.world();
  const auto parts = [&](RankResult& r) {
    return std::vector<absl::Span<uint8_t>>{
        absl::MakeSpan(r.out),
        absl::MakeSpan(r.dq),
        absl::MakeSpan(r.dk),
        absl::MakeSpan(r.dv),
        {reinterpret_cast<uint8_t*>(r.lse.data()), r.lse.size() * 4},
        {reinterpret_cast<uint8_t*>(r.seconds.data()), r.seconds.size() * 8}};
  };
  if (comm.rank() != 0) {
    std::vector<std::unique_ptr<Communicator::Request>> sends;
    for (absl::Span<uint8_t> part : parts(mine)) {
      sends.push_back(comm.Send(0, kTagResult, part));
    }
    RETURN_IF_ERROR(WaitAll(sends));
    return GlobalResult{};
  }
  std::vector<RankResult> all(world);
  all[0] = std::move(mine);
  for (int r = 1; r < world; ++r) {
    RankResult& res = all[r];
    res.out.resize(all[0].out.size());
    res.dq.resize(all[0].dq.size());
    res.dk.resize(all[0].dk.size());
    res.dv.resize(all[0].dv.size());
    res.lse.resize(all[0].lse.size());
    res.seconds.resize(all[0].seconds.size());
    std::vector<std::unique_ptr<Communicator::Request>> recvs;
    for (absl::Span<uint8_t> part : parts(res)) {
      recvs.push_back(comm.Recv(r, kTagResult, part));
    }
    RETURN_IF_ERROR(WaitAll(recvs));
  }
  GlobalResult global;
  const int64_t q_token = s.num_heads * s.head_dim * elem;
  const int64_t kv_token = s.num_kv_heads * s.head_dim * elem;
  const auto unshard = [&](auto member, int64_t token) {
    std::vector<std::vector<uint8_t>> shards;
    for (RankResult& r : all) shards.push_back(std::move(r.*member));
    return *layout.Unshard(shards, token);
  };
  global.out = unshard(&RankResult::out, q_token);
  if (!in.dout.empty()) {
    global.dq = unshard(&RankResult::dq, q_token);
    global.dk = unshard(&RankResult::dk, kv_token);
    global.dv = unshard(&RankResult::dv, kv_token);
  }
  std::vector<std::vector<float>> lse_shards;
  for (RankResult& r : all) {
    lse_shards.push_back(std::move(r.lse));
    global.seconds.push_back(std::move(r.seconds));
  }
  const std::vector<float> lse_tokens = *layout.Unshard(lse_shards, s.num_heads);
  global.lse = SwapMiddleAxes<float>(lse_tokens, s.batch, s.seqlen_q, s.num_heads);
  return global;
}

// The npy dtype an output of `dtype` is written in (.npy has no bfloat16).
NpyType OutputType(DType dtype) {
  switch (dtype) {
    case DType::kFloat64:
      return NpyType::kFloat64;
    case DType::kFloat16:
      return NpyType::kFloat16;
    default:
      return NpyType::kFloat32;
  }
}

NpyArray ToNpy(DType dtype, absl::Span<const uint8_t> data, std::vector<int64_t> shape) {
  NpyArray a;
  a.type = OutputType(dtype);
  a.shape = std::move(shape);
  if (dtype == DType::kBFloat16) {
    const std::vector<double> x = Decode(dtype, data);
    const std::vector<float> f(x.begin(), x.end());
    const absl::Span<const uint8_t> bytes = AsBytes(f);
    a.data.assign(bytes.begin(), bytes.end());
  } else {
    a.data.assign(data.begin(), data.end());
  }
  return a;
}

absl::Status WriteOutputs(const RunOptions& o, const RunInputs& in, const GlobalResult& g) {
  const AttentionShape& s = in.shape;
  std::vector<std::pair<std::string, std::string>> files;
  const std::vector<int64_t> q_shape = {s.batch, s.seqlen_q, s.num_heads, s.head_dim};
  const std::vector<int64_t> k_shape = {s.batch, s.seqlen_k, s.num_kv_heads, s.head_dim};
  if (!o.out.empty()) files.push_back({o.out, SerializeNpy(ToNpy(in.dtype, g.out, q_shape))});
  if (!o.lse.empty()) {
    NpyArray lse;
    lse.shape = {s.batch, s.num_heads, s.seqlen_q};
    const absl::Span<const uint8_t> bytes = AsBytes(g.lse);
    lse.data.assign(bytes.begin(), bytes.end());
    files.push_back({o.lse, SerializeNpy(lse)});
  }
  for (const auto& [flag, path, data, shape] :
       {std::tuple{"dq", &o.dq, &g.dq, q_shape}, std::tuple{"dk", &o.dk, &g.dk, k_shape},
        std::tuple{"dv", &o.dv, &g.dv, k_shape}}) {
    if (path->empty()) continue;
    if (data->empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, "=", *path,
                       " asks for a gradient, but there is no backward pass "
                       "(give --do, or --random with --backward)"));
    }
    files.push_back({*path, SerializeNpy(ToNpy(in.dtype, *data, shape))});
  }
  return WriteFilesAtomically(files);
}

struct Errors {
  double max_abs = 0, max_rel = 0;
};

// NaN and infinity aware: a value that is not finite where the oracle's is
// (or the other way round, or a different infinity) is an infinite error;
// the same non-finite value on both sides (both NaN, the same infinity, as
// in the LSE of a row with no allowed key) is no error.
Errors Compare(const std::vector<double>& got, const std::vector<double>& want) {
  Errors e;
  double max_ref = 0;
  bool infinite = false;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], w = want[i];
    if (!std::isfinite(w) || !std::isfinite(g)) {
      const bool same = g == w || (std::isnan(g) && std::isnan(w));
      infinite = infinite || !same;
      continue;
    }
    e.max_abs = std::max(e.max_abs, std::abs(g - w));
    max_ref = std::max(max_ref, std::abs(w));
  }
  e.max_rel = e.max_abs / std::max(max_ref, 1e-300);
  if (infinite) e.max_abs = e.max_rel = std::numeric_limits<double>::infinity();
  return e;
}

// Errors of `g` against the fp64 oracle, one line per output; with the
// error of one blocked call over the whole sequence beside it.
absl::StatusOr<std::string> Check(const RunOptions& options, const RunInputs& in,
                                  const GlobalResult& ring, const GlobalResult& single) {
  const AttentionShape& s = in.shape;
  const Mask& mask = in.schedule->mask();
  const double scale = options.config.softmax_scale == 0 ? DefaultSoftmaxScale(s.head_dim)
                                                         : options.config.softmax_scale;
  const std::vector<double> q = Decode(in.dtype, in.q), k = Decode(in.dtype, in.k),
                            v = Decode(in.dtype, in.v);
  const TensorStrides qs = DenseStrides(s.seqlen_q, s.num_heads, s.head_dim);
  const TensorStrides ks = DenseStrides(s.seqlen_k, s.num_kv_heads, s.head_dim);
  ASSIGN_OR_RETURN(cpu::AttentionOutput<double> fwd,
                   cpu::NaiveForward<double>(s, {q, qs}, {k, ks}, {v, ks}, mask, scale));
  std::string report =
      absl::StrFormat("\ncheck against the fp64 oracle (%s inputs):\n  %-6s %12s %12s   %12s\n",
                      DTypeName(in.dtype), "output", "max abs", "max rel", "one call rel");
  const auto line = [&](const char* name, const std::vector<double>& got,
                        const std::vector<double>& one, const std::vector<double>& want) {
    const Errors e = Compare(got, want), o = Compare(one, want);
    absl::StrAppendFormat(&report, "  %-6s %12.3e %12.3e   %12.3e\n", name, e.max_abs, e.max_rel,
                          o.max_rel);
  };
  line("out", Decode(in.dtype, ring.out), Decode(in.dtype, single.out), fwd.out);
  line("lse", std::vector<double>(ring.lse.begin(), ring.lse.end()),
       std::vector<double>(single.lse.begin(), single.lse.end()), fwd.lse);
  if (!in.dout.empty()) {
    const std::vector<double> dout = Decode(in.dtype, in.dout);
    ASSIGN_OR_RETURN(cpu::AttentionGrads<double> grads,
                     cpu::NaiveBackward<double>(s, {q, qs}, {k, ks}, {v, ks}, {fwd.out, qs},
                                                fwd.lse, {dout, qs}, mask, scale));
    line("dq", Decode(in.dtype, ring.dq), Decode(in.dtype, single.dq), grads.dq);
    line("dk", Decode(in.dtype, ring.dk), Decode(in.dtype, single.dk), grads.dk);
    line("dv", Decode(in.dtype, ring.dv), Decode(in.dtype, single.dv), grads.dv);
  }
  return report;
}

std::string Timings(const GlobalResult& g, int forward_steps, bool backward) {
  std::string out = "time per step (max over ranks, ms):\n";
  const auto max_at = [&](size_t i) {
    double m = 0;
    for (const auto& rank : g.seconds) m = std::max(m, rank[i]);
    return 1e3 * m;
  };
  std::vector<std::string> fwd;
  for (int t = 0; t < forward_steps; ++t) fwd.push_back(absl::StrFormat("%.2f", max_at(t)));
  absl::StrAppend(&out, "  forward  [", absl::StrJoin(fwd, " "), "]  total ",
                  absl::StrFormat("%.2f", max_at(forward_steps)), "\n");
  if (backward) {
    std::vector<std::string> bwd;
    const size_t base = forward_steps + 1;
    for (size_t t = base; t + 1 < g.seconds[0].size(); ++t) {
      bwd.push_back(absl::StrFormat("%.2f", max_at(t)));
    }
    absl::StrAppend(&out, "  backward [", absl::StrJoin(bwd, " "), "]  total ",
                    absl::StrFormat("%.2f", max_at(g.seconds[0].size() - 1)), "\n");
  }
  return out;
}

// One blocked call over the whole sequence (a ring of one), in-process.
absl::StatusOr<GlobalResult> SingleCall(const RunOptions& options, const RunInputs& in) {
  RunOptions one = options;
  one.config.layout = LayoutSpec{};
  ASSIGN_OR_RETURN(Layout layout, Layout::Create(one.config.layout, in.shape.batch,
                                                 in.shape.seqlen_q, one.config.mask.cu_seqlens));
  comm::ThreadWorld world(1, absl::Minutes(10));
  ASSIGN_OR_RETURN(RankResult result, ComputeRank(world.rank(0), one, in, layout));
  return Gather(world.rank(0), in, layout, std::move(result));
}

}  // namespace

// What this CPU command will allocate at most, per tensor and for --check.
constexpr int64_t kMaxTensorBytes = int64_t{8} << 30;
constexpr int64_t kMaxCheckScores = int64_t{1} << 27;  // seqlen_q x seqlen_k

absl::Status CheckSizes(const AttentionShape& s, DType dtype, bool check) {
  const int64_t bytes = std::max(s.q_elements(), s.kv_elements()) * DTypeBytes(dtype);
  if (bytes > kMaxTensorBytes) {
    return absl::InvalidArgumentError(absl::StrCat("a tensor of ", s.DebugString(), " needs ",
                                                   bytes, " bytes; the CPU run takes at most ",
                                                   kMaxTensorBytes, " per tensor"));
  }
  if (check && s.seqlen_q * s.seqlen_k > kMaxCheckScores) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--check builds the full ", s.seqlen_q, " x ", s.seqlen_k,
        " score matrix of the fp64 oracle; expected seqlen_q * seqlen_k <= ", kMaxCheckScores,
        " (drop --check or shorten the sequence)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<RunInputs> ReadRunInputs(const RunOptions& o) {
  RunInputs in;
  if (o.random) {
    in.dtype = o.random_dtype;
    in.shape = o.random_shape;
    RETURN_IF_ERROR(ValidateShape(in.shape));
    RETURN_IF_ERROR(CheckSizes(in.shape, in.dtype, o.check));
    in.q = RandomTensor(in.dtype, in.shape.q_elements(), o.seed);
    in.k = RandomTensor(in.dtype, in.shape.kv_elements(), o.seed + 1);
    in.v = RandomTensor(in.dtype, in.shape.kv_elements(), o.seed + 2);
    if (o.backward) in.dout = RandomTensor(in.dtype, in.shape.q_elements(), o.seed + 3);
    return in;
  }
  if (o.q.empty() || o.k.empty() || o.v.empty()) {
    return absl::InvalidArgumentError("run needs --q, --k and --v (.npy files), or --random");
  }
  std::vector<int64_t> shapes[4];
  std::vector<uint8_t>* targets[4] = {&in.q, &in.k, &in.v, &in.dout};
  const std::string* paths[4] = {&o.q, &o.k, &o.v, &o.dout};
  for (int i = 0; i < 4; ++i) {
    if (paths[i]->empty()) continue;
    ASSIGN_OR_RETURN(NpyArray a, ReadNpy(*paths[i]));
    ASSIGN_OR_RETURN(DType dtype, TensorDType(a, *paths[i]));
    if (i == 0) {
      in.dtype = dtype;
    } else if (dtype != in.dtype) {
      return absl::InvalidArgumentError(absl::StrCat(*paths[i], ": dtype ", DTypeName(dtype),
                                                     " differs from q's ", DTypeName(in.dtype)));
    }
    ASSIGN_OR_RETURN(std::vector<int64_t> shape, Shape4(a, *paths[i]));
    shapes[i] = shape;
    *targets[i] = std::move(a.data);
  }
  const std::vector<int64_t>& qs = shapes[0];
  const std::vector<int64_t>& ks = shapes[1];
  if (shapes[2] != ks) {
    return absl::InvalidArgumentError(
        absl::StrCat(o.v, ": shape ", ShapeText(shapes[2]), " differs from k's ", ShapeText(ks)));
  }
  if (ks[0] != qs[0] || ks[1] != qs[1] || ks[3] != qs[3]) {
    return absl::InvalidArgumentError(
        absl::StrCat(o.k, ": shape ", ShapeText(ks), " does not match q's ", ShapeText(qs),
                     "; expected the same batch, seqlen and head_dim"));
  }
  if (!o.dout.empty() && shapes[3] != qs) {
    return absl::InvalidArgumentError(absl::StrCat(o.dout, ": shape ", ShapeText(shapes[3]),
                                                   " differs from q's ", ShapeText(qs)));
  }
  in.shape = {qs[0], qs[1], ks[1], qs[2], ks[2], qs[3]};
  RETURN_IF_ERROR(ValidateShape(in.shape));
  RETURN_IF_ERROR(CheckSizes(in.shape, in.dtype, o.check));
  return in;
}

absl::StatusOr<RunInputs> LoadRunInputs(const RunOptions& options) {
  ASSIGN_OR_RETURN(RunInputs in, ReadRunInputs(options));
  LayoutSpec layout = options.config.layout;
  if (options.auto_layout) {
    ASSIGN_OR_RETURN(LayoutChoice choice,
                     PickLayout(layout, options.config.mask, in.shape, in.dtype, !in.dout.empty()));
    layout.kind = choice.kind;
    in.layout_choice = choice.report;
  }
  ASSIGN_OR_RETURN(Schedule schedule, Schedule::Build(layout, options.config.mask, in.shape));
  in.schedule = std::make_shared<const Schedule>(std::move(schedule));
  return in;
}

absl::StatusOr<std::string> RunRank(Communicator& comm, const RunOptions& options,
                                    const RunInputs& in) {
  const Schedule* schedule = in.schedule.get();
  if (schedule == nullptr) {
    const absl::Status missing = absl::InternalError("RunRank without a schedule (LoadRunInputs)");
    comm.Abort(missing);
    return missing;
  }
  const Layout* layout = &schedule->layout();
  ASSIGN_OR_RETURN(RankResult mine, ComputeRank(comm, options, in, *layout));
  ASSIGN_OR_RETURN(GlobalResult global, Gather(comm, in, *layout, std::move(mine)));
  if (comm.rank() != 0) return std::string();

  std::string report = absl::StrCat(in.layout_choice, "ringattn run: ", layout->DebugString(), ", ",
                                    schedule->mask().DebugString(), ", ", in.shape.DebugString(),
                                    ", ", DTypeName(in.dtype), "\n",
                                    Timings(global, schedule->num_steps(), !in.dout.empty()));
  RETURN_IF_ERROR(WriteOutputs(options, in, global));
  if (options.check) {
    ASSIGN_OR_RETURN(GlobalResult single, SingleCall(options, in));
    ASSIGN_OR_RETURN(std::string check, Check(options, in, global, single));
    absl::StrAppend(&report, check);
  }
  return report;
}

absl::StatusOr<std::string> RunThreads(const RunOptions& options, absl::Duration timeout) {
  ASSIGN_OR_RETURN(RunInputs inputs, LoadRunInputs(options));
  const int world = options.config.layout.world;
  std::string report;
  const std::vector<absl::Status> statuses =
      comm::ThreadWorld::Run(world, timeout, [&](Communicator& comm) -> absl::Status {
        absl::StatusOr<std::string> r = RunRank(comm, options, inputs);
        // A silent rank (fault injection) leaves without aborting anyone.
        if (absl::IsCancelled(r.status())) return absl::OkStatus();
        if (!r.ok()) return r.status();
        if (comm.rank() == 0) report = *r;
        return absl::OkStatus();
      });
  // The first rank's own error explains the others' aborts.
  for (const absl::Status& st : statuses) {
    if (!st.ok() && st.code() != absl::StatusCode::kAborted) return st;
  }
  for (const absl::Status& st : statuses) {
    if (!st.ok()) return st;
  }
  return report;
}

}  // namespace ringattn::cli
