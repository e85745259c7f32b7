// The CPU backend of the ring: one rank's shard, computed with the blocked
// Eigen kernel. Inputs stay in their dtype (float32, float64, float16,
// bfloat16) and travel so; each visiting block is upcast to the compute type
// (double for float64 inputs, float otherwise) and the online-softmax state
// and dK/dV accumulators stay in the compute type end to end.
#ifndef RINGATTN_CPU_REFERENCE_CPU_BACKEND_H_
#define RINGATTN_CPU_REFERENCE_CPU_BACKEND_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/dtype.h"
#include "core/ring_driver.h"
#include "core/schedule.h"
#include "core/shapes.h"

namespace ringattn::cpu {

using RankInputs = ::ringattn::RankInputs;

class CpuRingBackend : public RankBackend {
 public:
  // Errors: InvalidArgument if rank is out of range, `shape` (global) does
  // not match the schedule, the scale is invalid, or a tensor has the wrong
  // byte size.
  static absl::StatusOr<std::unique_ptr<CpuRingBackend>> Create(const Schedule& schedule, int rank,
                                                                const AttentionShape& shape,
                                                                double softmax_scale,
                                                                const RankInputs& inputs);

  // After the forward: O in the input dtype and LSE in fp32.
  virtual const std::vector<uint8_t>& out() const = 0;
  virtual const std::vector<float>& lse() const = 0;
  // After the backward: dQ, dK, dV in the input dtype (like q, k, v).
  virtual absl::StatusOr<std::vector<uint8_t>> dq() const = 0;
  virtual absl::StatusOr<std::vector<uint8_t>> dk() const = 0;
  virtual absl::StatusOr<std::vector<uint8_t>> dv() const = 0;

  // RankBackend: copies of the above.
  absl::StatusOr<std::vector<uint8_t>> Out() final { return out(); }
  absl::StatusOr<std::vector<float>> Lse() final { return lse(); }
  absl::StatusOr<std::vector<uint8_t>> Dq() final { return dq(); }
  absl::StatusOr<std::vector<uint8_t>> Dk() final { return dk(); }
  absl::StatusOr<std::vector<uint8_t>> Dv() final { return dv(); }
};

}  // namespace ringattn::cpu

#endif  // RINGATTN_CPU_REFERENCE_CPU_BACKEND_H_
