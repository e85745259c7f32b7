// `ringattn run`: ring attention over .npy inputs (or random ones), forward
// and backward, outputs in global token order, optionally checked against
// the fp64 oracle.
#ifndef RINGATTN_CLI_RUN_COMMAND_H_
#define RINGATTN_CLI_RUN_COMMAND_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/communicator.h"
#include "core/dtype.h"
#include "core/schedule.h"
#include "core/shapes.h"
#include "ringattn.h"

namespace ringattn::cli {

struct RunOptions {
  // Inputs: .npy files (b, s, h, d) or (total, h, d), or random ones.
  std::string q, k, v, dout;
  bool random = false;
  uint32_t seed = 0;
  DType random_dtype = DType::kFloat32;
  AttentionShape random_shape;  // seqlen_q == seqlen_k
  RingAttentionConfig config;   // layout (world), mask, softmax scale
  // --layout=auto: LoadRunInputs picks config.layout's kind (cli/auto_layout.h).
  bool auto_layout = false;
  bool backward = true;
  // Outputs (.npy paths; empty: not written).
  std::string out, lse, dq, dk, dv;
  bool check = false;
  // Fault injection for tests: rank `fault_rank` fails at the start of its
  // forward ("fail") or leaves without a word there ("silent") or after the
  // forward, before the backward ("silent_after_forward": its peers have
  // exchanged with it).
  int fault_rank = -1;
  std::string fault = "fail";
};

// The global inputs every rank shards.
struct RunInputs {
  DType dtype = DType::kFloat32;
  AttentionShape shape;
  std::vector<uint8_t> q, k, v, dout;  // dense, dtype; dout empty: forward only
  // The run's layout, mask and schedule, built once from the options and
  // the inputs' shape, before any rank starts; every rank reads it.
  std::shared_ptr<const Schedule> schedule;
  std::string layout_choice;  // --layout=auto: what was picked and why
};

// Reads (or draws) the inputs and builds the run's schedule. Errors: a file
// that cannot be read or parsed, dtypes or shapes that disagree between q,
// k, v and dout (naming the file), whatever Schedule::Build rejects.
absl::StatusOr<RunInputs> LoadRunInputs(const RunOptions& options);

// Runs this rank's part; rank 0 gathers the results, writes the outputs and
// returns the report (time per step, errors with --check); other ranks
// return an empty string.
absl::StatusOr<std::string> RunRank(Communicator& comm, const RunOptions& options,
                                    const RunInputs& inputs);

// Runs every rank as a thread of this process.
absl::StatusOr<std::string> RunThreads(const RunOptions& options, absl::Duration timeout);

}  // namespace ringattn::cli

#endif  // RINGATTN_CLI_RUN_COMMAND_H_
