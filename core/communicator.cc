#include "core/communicator.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace ringattn {
namespace {

class StatusRequest : public Communicator::Request {
 public:
  explicit StatusRequest(absl::Status status) : status_(std::move(status)) {}
  absl::Status Wait() override { return status_; }

 private:
  absl::Status status_;
};

class AllOfRequest : public Communicator::Request {
 public:
  explicit AllOfRequest(std::vector<std::unique_ptr<Communicator::Request>> parts)
      : parts_(std::move(parts)) {}
  absl::Status Wait() override { return WaitAll(parts_); }

 private:
  std::vector<std::unique_ptr<Communicator::Request>> parts_;
};

// This rank's index in `group`, or -1.
int MemberIndex(absl::Span<const int> group, int rank) {
  auto it = std::find(group.begin(), group.end(), rank);
  return it == group.end() ? -1 : static_cast<int>(it - group.begin());
}

absl::Status NotAMember(absl::Span<const int> group, int rank) {
  return absl::InvalidArgumentError(
      absl::StrCat("rank ", rank, " is not in the collective's group of ", group.size(), " ranks"));
}

}  // namespace

std::unique_ptr<Communicator::Request> DoneRequest(absl::Status status) {
  return std::make_unique<StatusRequest>(std::move(status));
}

std::unique_ptr<Communicator::Request> AllOf(
    std::vector<std::unique_ptr<Communicator::Request>> parts) {
  return std::make_unique<AllOfRequest>(std::move(parts));
}

std::unique_ptr<Communicator::Request> ExchangeAllGather(Communicator& comm,
                                                         absl::Span<const int> group, int me,
                                                         absl::Span<const uint8_t> send,
                                                         absl::Span<uint8_t> recv) {
  const size_t n = send.size();
  std::vector<std::unique_ptr<Communicator::Request>> parts;
  comm.StartBatch();  // every pair sends both ways at once
  for (size_t i = 0; i < group.size(); ++i) {
    if (static_cast<int>(i) == me) continue;
    parts.push_back(comm.Send(group[i], kTagAllGather, send));
    parts.push_back(comm.Recv(group[i], kTagAllGather, recv.subspan(i * n, n)));
  }
  comm.EndBatch();
  return AllOf(std::move(parts));
}

absl::Status WaitAll(std::vector<std::unique_ptr<Communicator::Request>>& requests) {
  absl::Status first;
  for (auto& request : requests) {
    if (request == nullptr) continue;
    absl::Status s = request->Wait();
    if (first.ok() && !s.ok()) first = s;
  }
  requests.clear();
  return first;
}

std::unique_ptr<Communicator::Request> Communicator::StartAllGather(absl::Span<const int> group,
                                                                    absl::Span<const uint8_t> send,
                                                                    absl::Span<uint8_t> recv) {
  const int me = MemberIndex(group, rank());
  if (me < 0) return DoneRequest(NotAMember(group, rank()));
  const size_t n = send.size();
  if (recv.size() != n * group.size()) {
    return DoneRequest(
        absl::InvalidArgumentError(absl::StrCat("all-gather receive buffer has ", recv.size(),
                                                " bytes; expected ", group.size(), " x ", n)));
  }
  if (send.data() != recv.data() + me * n) std::memcpy(recv.data() + me * n, send.data(), n);
  return ExchangeAllGather(*this, group, me, send, recv);
}

absl::Status Communicator::AllGather(absl::Span<const int> group, absl::Span<const uint8_t> send,
                                     absl::Span<uint8_t> recv) {
  return StartAllGather(group, send, recv)->Wait();
}

absl::Status Communicator::ReduceScatterSum(absl::Span<const int> group,
                                            absl::Span<const float> send, absl::Span<float> recv) {
  return ReduceScatter(group, send, recv);
}

absl::Status Communicator::ReduceScatterSum(absl::Span<const int> group,
                                            absl::Span<const double> send,
                                            absl::Span<double> recv) {
  return ReduceScatter(group, send, recv);
}

template <typename T>
absl::Status Communicator::ReduceScatter(absl::Span<const int> group, absl::Span<const T> send,
                                         absl::Span<T> recv) {
  const int me = MemberIndex(group, rank());
  if (me < 0) return NotAMember(group, rank());
  const size_t n = recv.size();
  if (send.size() != n * group.size()) {
    return absl::InvalidArgumentError(absl::StrCat("reduce-scatter send buffer has ", send.size(),
                                                   " elements; expected ", group.size(), " x ", n));
  }
  std::vector<T> parts(n * group.size());
  std::vector<std::unique_ptr<Request>> requests;
  StartBatch();
  const auto as_bytes = [](absl::Span<const T> x) {
    return absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(x.data()),
                                     x.size() * sizeof(T));
  };
  for (size_t i = 0; i < group.size(); ++i) {
    if (static_cast<int>(i) == me) continue;
    requests.push_back(Send(group[i], kTagReduceScatter, as_bytes(send.subspan(i * n, n))));
    requests.push_back(
        Recv(group[i], kTagReduceScatter,
             absl::Span<uint8_t>(reinterpret_cast<uint8_t*>(parts.data() + i * n), n * sizeof(T))));
  }
  EndBatch();
  std::copy(send.begin() + me * n, send.begin() + (me + 1) * n, parts.begin() + me * n);
  RETURN_IF_ERROR(WaitAll(requests));
  for (size_t j = 0; j < n; ++j) {
    T sum = 0;
    for (size_t i = 0; i < group.size(); ++i) sum += parts[i * n + j];
    recv[j] = sum;
  }
  return absl::OkStatus();
}

absl::Status Communicator::Barrier(absl::Span<const int> group) {
  const uint8_t token = 1;
  std::vector<uint8_t> all(group.size());
  return AllGather(group, absl::Span<const uint8_t>(&token, 1), absl::MakeSpan(all));
}

}  // namespace ringattn
