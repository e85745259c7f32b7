#include "comm/mpi_communicator.h"

#include <mpi.h>

#include <climits>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/status_macros.h"

namespace ringattn::comm {
namespace {

constexpr int kTagAbort = 999;

}  // namespace

class MpiCommunicator::MpiRequest : public Communicator::Request {
 public:
  MpiRequest(MpiCommunicator* comm, MPI_Request request, int peer, int tag, bool is_send)
      : comm_(comm), request_(request), peer_(peer), tag_(tag), is_send_(is_send) {}
  ~MpiRequest() override {
    if (request_ != MPI_REQUEST_NULL) {
      MPI_Cancel(&request_);
      MPI_Request_free(&request_);
    }
  }

  absl::Status Wait() override {
    const absl::Time deadline = absl::Now() + comm_->timeout_;
    while (request_ != MPI_REQUEST_NULL) {
      int done = 0;
      if (MPI_Test(&request_, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
        return absl::InternalError(absl::StrCat("MPI_Test failed (peer ", peer_, ")"));
      }
      if (done) break;
      RETURN_IF_ERROR(comm_->PollAbort());
      if (absl::Now() > deadline) {
        const absl::Status error = absl::DeadlineExceededError(
            absl::StrCat("rank ", comm_->rank_, " waited ", absl::FormatDuration(comm_->timeout_),
                         " to ", is_send_ ? "send to" : "receive from", " rank ", peer_, " (tag ",
                         tag_, "), which did not answer"));
        comm_->Abort(error);
        return error;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
    return absl::OkStatus();
  }

 private:
  MpiCommunicator* comm_;
  MPI_Request request_;
  int peer_, tag_;
  bool is_send_;
};

absl::StatusOr<std::unique_ptr<MpiCommunicator>> MpiCommunicator::Create(int* argc, char*** argv,
                                                                         absl::Duration timeout) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized && MPI_Init(argc, argv) != MPI_SUCCESS) {
    return absl::InternalError("MPI_Init failed");
  }
  int rank = 0, world = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  return std::unique_ptr<MpiCommunicator>(new MpiCommunicator(rank, world, timeout));
}

MpiCommunicator::~MpiCommunicator() {
  if (aborted_.ok() && !left_) MPI_Finalize();
}

void MpiCommunicator::LeaveSilently(absl::Duration limit) {
  left_ = true;
  const absl::Time deadline = absl::Now() + limit;
  while (PollAbort().ok() && absl::Now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::unique_ptr<Communicator::Request> MpiCommunicator::Send(int peer, int tag,
                                                             absl::Span<const uint8_t> data) {
  if (!aborted_.ok()) return DoneRequest(aborted_);
  if (peer < 0 || peer >= world_ || data.size() > INT_MAX) {
    return DoneRequest(absl::InvalidArgumentError(
        absl::StrCat("MPI send of ", data.size(), " bytes to peer ", peer,
                     ": expected a peer in [0, ", world_, ") and at most 2^31-1 bytes")));
  }
  MPI_Request request;
  if (MPI_Isend(data.data(), static_cast<int>(data.size()), MPI_BYTE, peer, tag, MPI_COMM_WORLD,
                &request) != MPI_SUCCESS) {
    return DoneRequest(absl::InternalError("MPI_Isend failed"));
  }
  return std::make_unique<MpiRequest>(this, request, peer, tag, true);
}

std::unique_ptr<Communicator::Request> MpiCommunicator::Recv(int peer, int tag,
                                                             absl::Span<uint8_t> data) {
  if (!aborted_.ok()) return DoneRequest(aborted_);
  if (peer < 0 || peer >= world_ || data.size() > INT_MAX) {
    return DoneRequest(absl::InvalidArgumentError(
        absl::StrCat("MPI receive of ", data.size(), " bytes from peer ", peer,
                     ": expected a peer in [0, ", world_, ") and at most 2^31-1 bytes")));
  }
  MPI_Request request;
  if (MPI_Irecv(data.data(), static_cast<int>(data.size()), MPI_BYTE, peer, tag, MPI_COMM_WORLD,
                &request) != MPI_SUCCESS) {
    return DoneRequest(absl::InternalError("MPI_Irecv failed"));
  }
  return std::make_unique<MpiRequest>(this, request, peer, tag, false);
}

void MpiCommunicator::Abort(const absl::Status& reason) {
  if (!aborted_.ok()) return;
  aborted_ = absl::AbortedError(absl::StrCat("rank ", rank_, " aborted: ", reason.message()));
  const std::string text(aborted_.message());
  for (int peer = 0; peer < world_; ++peer) {
    if (peer == rank_) continue;
    abort_messages_.emplace_back(text.begin(), text.end());
    MPI_Request request;
    MPI_Isend(abort_messages_.back().data(), static_cast<int>(abort_messages_.back().size()),
              MPI_CHAR, peer, kTagAbort, MPI_COMM_WORLD, &request);
    MPI_Request_free(&request);
  }
}

absl::Status MpiCommunicator::PollAbort() {
  if (!aborted_.ok()) return aborted_;
  int pending = 0;
  MPI_Status status;
  MPI_Iprobe(MPI_ANY_SOURCE, kTagAbort, MPI_COMM_WORLD, &pending, &status);
  if (!pending) return absl::OkStatus();
  int count = 0;
  MPI_Get_count(&status, MPI_CHAR, &count);
  std::string text(count, '\0');
  MPI_Recv(text.data(), count, MPI_CHAR, status.MPI_SOURCE, kTagAbort, MPI_COMM_WORLD,
           MPI_STATUS_IGNORE);
  aborted_ = absl::AbortedError(text);
  return aborted_;
}

}  // namespace ringattn::comm
