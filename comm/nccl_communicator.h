// NCCL communicators (see comm/cuda_communicator.h for what every device
// communicator does): NcclWorld, ranks as threads of one process with one
// device each; CreateNcclCommunicator, one process per GPU. libnccl.so.2 is
// loaded at run time (dlopen), so binaries start where it is missing.
#ifndef RINGATTN_COMM_NCCL_COMMUNICATOR_H_
#define RINGATTN_COMM_NCCL_COMMUNICATOR_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "comm/cuda_communicator.h"
#include "core/communicator.h"

namespace ringattn::comm {

class NcclWorld {
 public:
  // One rank per placement, each on its own device (NCCL takes one rank
  // per GPU). Errors: InvalidArgument for a repeated device or a missing
  // stream, Unavailable when libnccl.so.2 cannot be loaded, Internal for
  // an NCCL error (with NCCL's message).
  static absl::StatusOr<std::unique_ptr<NcclWorld>> Create(const std::vector<CudaPlacement>& ranks,
                                                           absl::Duration timeout);
  ~NcclWorld();
  int world() const;
  Communicator& rank(int r);

 private:
  NcclWorld() = default;
  std::vector<std::unique_ptr<CudaCommunicator>> ranks_;
};

// One process per GPU. Rank 0 creates the NCCL unique id and writes it to
// `id_file` (atomically, through a rename); the others wait for the file,
// at most `timeout`. The file must be fresh for each run (rank 0 refuses an
// existing one). Errors: InvalidArgument for a bad rank or world,
// DeadlineExceeded when the id does not appear, AlreadyExists, Unavailable
// without libnccl.so.2, Internal for NCCL errors.
absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(int rank, int world,
                                                                     CudaPlacement placement,
                                                                     const std::string& id_file,
                                                                     absl::Duration timeout);

// A fresh NCCL unique id (ncclGetUniqueId's bytes) for rank 0 to hand to
// every rank (e.g. through torch.distributed). Errors: Unavailable without
// libnccl.so.2, Internal for NCCL errors.
absl::StatusOr<std::string> NewNcclUniqueId();

// One process per GPU with the id every rank was given: what
// CreateNcclCommunicator does after reading the id file. Errors: as there,
// and InvalidArgument for an id of the wrong size.
absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicatorWithId(
    int rank, int world, CudaPlacement placement, absl::string_view unique_id,
    absl::Duration timeout);

// A plain NCCL ring, as nccl-tests' sendrecv runs one: `hops` grouped
// ncclSend (to rank + 1) / ncclRecv (from rank - 1) of `bytes` each, back to
// back on `comm`'s stream after one untimed hop, timed between two CUDA
// events; the received bytes are checked (rank - 1's). The baseline
// ring_bench prints beside its own hop (issue #19). Every rank of the
// communicator calls it at once. Returns seconds per hop. Errors:
// InvalidArgument when `comm` is not an NCCL communicator or for fewer than
// 2 ranks, bytes or hops <= 0; DeadlineExceeded when a peer does not join
// within the communicator's timeout (the communicator is then aborted);
// Aborted when the ring was aborted; Internal for CUDA or NCCL errors or
// wrong bytes received.
absl::StatusOr<double> NcclPlainRingSeconds(Communicator& comm, int64_t bytes, int hops);

// The host's time to issue one NCCL group of `parts` sends and `parts`
// receives of `bytes / parts` each, from ncclGroupStart until the transfers
// are enqueued (a non-blocking communicator: until it is no longer
// ncclInProgress), the GPU idle before each: the median of `rounds` after
// one untimed. On a one-rank communicator of its own on `device`, sending to
// itself, `blocking` or not (ringattn's are non-blocking, so that a silent
// peer is an error within the timeout): what NCCL's group end costs the
// host in either mode, on one GPU (bench/nccl_issue_probe).
absl::StatusOr<double> NcclSelfGroupIssueSeconds(int device, bool blocking, int parts,
                                                 int64_t bytes, int rounds);

// When a hop of `bytes` (a one-rank communicator on `device` sending to
// itself, on a stream of its own) and `work` (launched on another stream)
// end, in ms from a common start event: `work_first` launches the work
// before issuing the hop (else after, as the ring does), an empty `work`
// times the hop alone; the medians of `rounds` after one untimed. Whether
// NCCL's kernel runs beside attention kernels that hold every SM's
// registers when it comes second (bench/nccl_issue_probe --beside).
struct SelfHopTimes {
  double hop_ms = 0, work_ms = 0;
};
absl::StatusOr<SelfHopTimes> NcclSelfHopBeside(int device, int64_t bytes, bool work_first,
                                               const std::function<cudaError_t(cudaStream_t)>& work,
                                               int rounds);

// How NCCL ranks issue their transfers, from RINGATTN_NCCL_ISSUE (read
// when a communicator is created). Every rank has a non-blocking NCCL
// communicator, so that its initialization and its first transfer to each
// peer (which connects to it) end within the timeout when a peer does not
// join. kNonBlocking (unset, "" or "nonblocking") issues every group there.
// kBlocking ("blocking") also splits a blocking communicator off it
// (ncclCommSplit, splitShare), connects that to every peer at once (a byte
// each way, within the timeout, else the creation fails) and issues every
// group there: NCCL 2.28 starts a host thread for each non-blocking group
// end, 50-136 us of host time before the ring's next kernel can be launched
// against 8-19 us blocking (one H200, bench/nccl_issue_probe; ring_bench's
// hop issue with two processes on one H200 over NCCL's socket transport:
// 63-74 us against 213-237). A peer that goes silent later leaves a
// transfer unfinished on the GPU, which the waits' timeout and abort end,
// as with kNonBlocking. Not the default until measured on two GPUs.
// Errors: InvalidArgument for another value.
enum class NcclIssue { kNonBlocking, kBlocking };
absl::StatusOr<NcclIssue> NcclIssueFromEnv(const char* value);

// NCCL's P2P chunk size for a ring of `world` ranks when the user set none
// (`current`: NCCL_P2P_NVL_CHUNKSIZE's value, or null), or "" to leave
// NCCL's default. On 4 x H200 (NCCL 2.28) 128 KiB chunks move a 128 MiB hop
// at 300 GB/s instead of 150 (64 MiB: 211 vs 151; 512 MiB: the same;
// shared/measurements/2026-11-29/h200x4_nccl_probe.txt), so rings of 3 or
// more ranks get 131072; 2 ranks (281 GB/s by default) keep NCCL's
// default until measured with it. The communicators set it, unless the user
// did, before the process's first NCCL communicator reads it.
std::string NcclChunkSizeDefault(int world, const char* current);

}  // namespace ringattn::comm

#endif  // RINGATTN_COMM_NCCL_COMMUNICATOR_H_
