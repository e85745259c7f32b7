// MPI communicator: one process per rank, started with `mpirun -np W`.
// Operations are non-blocking MPI point-to-point calls; waits poll them
// against a deadline, and an abort is a message to every rank, so a rank
// that fails or stops answering makes the others return an error (Aborted
// or DeadlineExceeded) instead of hanging.
#ifndef RINGATTN_COMM_MPI_COMMUNICATOR_H_
#define RINGATTN_COMM_MPI_COMMUNICATOR_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/communicator.h"

namespace ringattn::comm {

class MpiCommunicator : public Communicator {
 public:
  // Initializes MPI (once per process) and returns this process's rank.
  // Errors: Internal if MPI cannot start.
  static absl::StatusOr<std::unique_ptr<MpiCommunicator>> Create(int* argc, char*** argv,
                                                                 absl::Duration timeout);
  // Finalizes MPI unless some rank aborted (then pending messages could
  // block finalization; the process just exits).
  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int world() const override { return world_; }
  std::unique_ptr<Request> Send(int peer, int tag, absl::Span<const uint8_t> data) override;
  std::unique_ptr<Request> Recv(int peer, int tag, absl::Span<uint8_t> data) override;
  void Abort(const absl::Status& reason) override;

  // The error of the first abort seen (this rank's or a peer's).
  absl::Status aborted() const { return aborted_; }

  // A rank that goes silent (fault injection) calls this instead of
  // finishing: it waits, outside MPI calls, until a peer's abort arrives
  // (at most `limit`), and the destructor then skips MPI_Finalize. Finalizing
  // would wait in a collective the other ranks never join, and mpirun tearing
  // down a rank inside MPI_Finalize crashes or hangs OpenMPI 4's mpirun
  // (PMIx_server_finalize).
  void LeaveSilently(absl::Duration limit);

 private:
  class MpiRequest;
  MpiCommunicator(int rank, int world, absl::Duration timeout)
      : rank_(rank), world_(world), timeout_(timeout) {}
  // Polls for an abort message from any rank.
  absl::Status PollAbort();

  int rank_;
  int world_;
  absl::Duration timeout_;
  absl::Status aborted_;
  bool left_ = false;                              // LeaveSilently was called
  std::vector<std::vector<char>> abort_messages_;  // kept alive while sent
};

}  // namespace ringattn::comm

#endif  // RINGATTN_COMM_MPI_COMMUNICATOR_H_
