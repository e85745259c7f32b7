// Helpers of the C ABI's tests (ringattn_c_test, ringattn_c_fuzz_test).
#ifndef RINGATTN_TESTS_C_ABI_TEST_UTIL_H_
#define RINGATTN_TESTS_C_ABI_TEST_UTIL_H_

#include <cuda_runtime_api.h>

#include <cstdio>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "core/communicator.h"
#include "gtest/gtest.h"
#include "ringattn_c.h"

namespace ringattn::testing {

// Whether a GPU is visible (the GPU tests skip without one).
inline bool HaveGpu() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0) return true;
  cudaGetLastError();
  return false;
}

// A world of one rank over NCCL on GPU 0 (null on failure, reported).
inline ringattn_world* NcclWorldOfOne(double timeout_s) {
  uint8_t id[RINGATTN_NCCL_ID_BYTES];
  EXPECT_EQ(ringattn_nccl_unique_id(id, sizeof id), RINGATTN_OK) << ringattn_last_error();
  ringattn_world* world = nullptr;
  EXPECT_EQ(ringattn_nccl_world_create(1, 0, id, sizeof id, 0, timeout_s, &world), RINGATTN_OK)
      << ringattn_last_error();
  return world;
}

// A ringattn_transport over one rank of a C++ communicator (a
// comm::ThreadWorld's): what the Python package does over a
// torch.distributed process group, for tests of transport worlds. `fail`
// (optional) makes a start or a wait fail as a caller's transport may: it is
// asked before each one and, returning true, the call fails -- with a
// message or, `silent`, without one.
struct CTransport {
  Communicator* comm;
  std::function<bool()> fail;  // empty: never
  bool silent = false;         // a failure writes no message
  std::mutex mu;
  std::deque<std::unique_ptr<Communicator::Request>> pending;  // by handle

  ringattn_transport Callbacks() { return {this, Send, Recv, Wait, Abort}; }

  bool Fails(char* error, int64_t size) {
    if (!fail || !fail()) return false;
    if (!silent) std::snprintf(error, size, "injected transport failure");
    return true;
  }
  int64_t Add(std::unique_ptr<Communicator::Request> request) {
    std::lock_guard<std::mutex> lock(mu);
    pending.push_back(std::move(request));
    return static_cast<int64_t>(pending.size()) - 1;
  }
  static int64_t Send(void* user, int32_t peer, int32_t tag, const void* data, int64_t bytes,
                      char* error, int64_t size) {
    auto* t = static_cast<CTransport*>(user);
    if (t->Fails(error, size)) return -1;
    return t->Add(
        t->comm->Send(peer, tag, {static_cast<const uint8_t*>(data), static_cast<size_t>(bytes)}));
  }
  static int64_t Recv(void* user, int32_t peer, int32_t tag, void* data, int64_t bytes, char* error,
                      int64_t size) {
    auto* t = static_cast<CTransport*>(user);
    if (t->Fails(error, size)) return -1;
    return t->Add(
        t->comm->Recv(peer, tag, {static_cast<uint8_t*>(data), static_cast<size_t>(bytes)}));
  }
  static int32_t Wait(void* user, int64_t handle, char* error, int64_t size) {
    auto* t = static_cast<CTransport*>(user);
    Communicator::Request* request;
    {
      std::lock_guard<std::mutex> lock(t->mu);
      request = t->pending.at(handle).get();
    }
    const absl::Status status = request->Wait();
    if (!status.ok()) {
      std::snprintf(error, size, "%s", std::string(status.message()).c_str());
      return 1;
    }
    return t->Fails(error, size) ? 1 : 0;
  }
  static void Abort(void* user, const char* reason) {
    static_cast<CTransport*>(user)->comm->Abort(absl::AbortedError(reason));
  }
};

}  // namespace ringattn::testing

#endif  // RINGATTN_TESTS_C_ABI_TEST_UTIL_H_
