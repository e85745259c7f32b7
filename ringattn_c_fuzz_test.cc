// Hostile arguments through the C ABI (issue #17: "nothing crashes the
// interpreter"): thousands of configs and tensor descriptions drawn from a
// base problem with fields replaced by boundary values (negative, zero,
// huge, overflowing, unknown enum values, NULL pointers, strides that step
// outside the buffer), each through ring_create, forward, backward and
// backward_from on a world of threads. Every call must return OK or an
// error code with a message: no crash (run it under --config=asan / ubsan
// too), no hang, no allocation of more than kMaxAllocation (sizes are
// checked before anything is allocated), and a call on valid tensors must
// give finite results. A pointer the caller describes wrongly (more bytes
// than it holds) is the caller's bug no library can see, so every
// described size here is at most what the buffer holds.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <limits>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "comm/thread_communicator.h"
#include "gtest/gtest.h"
#include "ringattn_c.h"
#include "tests/c_abi_test_util.h"

namespace {

// Allocations above this throw std::bad_alloc and are counted: the library
// must refuse a problem it cannot hold by its sizes, not by trying.
constexpr size_t kMaxAllocation = size_t{1} << 30;
int huge_allocations = 0;

}  // namespace

// Not inlined: GCC would see free() of operator new's pointer at the
// caller and warn (-Wmismatched-new-delete), though both are these.
__attribute__((noinline)) void* operator new(size_t bytes) {
  if (bytes > kMaxAllocation) {
    ++huge_allocations;
    throw std::bad_alloc();
  }
  if (void* p = std::malloc(bytes == 0 ? 1 : bytes)) return p;
  throw std::bad_alloc();
}
__attribute__((noinline)) void* operator new(size_t bytes, const std::nothrow_t&) noexcept {
  try {
    return operator new(bytes);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
__attribute__((noinline)) void operator delete(void* p) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete(void* p, size_t) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
// The array forms the same way (all of one allocator, as ASan checks).
void* operator new[](size_t bytes) { return operator new(bytes); }
void* operator new[](size_t bytes, const std::nothrow_t& tag) noexcept {
  return operator new(bytes, tag);
}
void operator delete[](void* p) noexcept { operator delete(p); }
void operator delete[](void* p, size_t) noexcept { operator delete(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { operator delete(p); }

namespace ringattn {
namespace {

constexpr int64_t kMin64 = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax64 = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt64s[] = {kMin64,
                               -(int64_t{1} << 40),
                               -(int64_t{1} << 31),
                               -2,
                               -1,
                               0,
                               1,
                               2,
                               3,
                               5,
                               8,
                               16,
                               17,
                               64,
                               128,
                               256,
                               1000,
                               (int64_t{1} << 31) - 1,
                               int64_t{1} << 31,
                               int64_t{1} << 32,
                               int64_t{1} << 40,
                               int64_t{1} << 62,
                               kMax64};
constexpr int32_t kInt32s[] = {std::numeric_limits<int32_t>::min(), -1, 0, 1, 2, 3, 4, 8192, 8193,
                               std::numeric_limits<int32_t>::max()};

class Fuzzer {
 public:
  explicit Fuzzer(uint64_t seed) : rng_(seed) {}

  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  bool Chance(int percent) { return Pick(100) < percent; }
  int64_t Int64() { return kInt64s[Pick(std::size(kInt64s))]; }
  int32_t Int32() { return kInt32s[Pick(std::size(kInt32s))]; }
  double Scale() {
    constexpr double kScales[] = {0,
                                  -1,
                                  1e-300,
                                  1e300,
                                  0.125,
                                  std::numeric_limits<double>::infinity(),
                                  -std::numeric_limits<double>::infinity(),
                                  std::numeric_limits<double>::quiet_NaN()};
    return kScales[Pick(std::size(kScales))];
  }

  // A valid small problem of world 1, then up to three fields replaced.
  // `lists` keeps the cu_seqlens / key_lengths arrays alive.
  ringattn_config Config(std::vector<int64_t>* cu_seqlens, std::vector<int64_t>* key_lengths,
                         int* mutations) {
    ringattn_config c{};
    c.layout = static_cast<ringattn_layout>(Pick(5));
    c.world = 1;
    c.causal = Pick(2);
    c.window_left = c.window_right = -1;
    c.batch = 1 + Pick(2);
    c.seqlen = 16;
    c.num_heads = 2;
    c.num_kv_heads = 1 + Pick(2);
    c.head_dim = 8;
    if (Chance(30)) {  // documents (one batch row)
      c.batch = 1;
      *cu_seqlens = {0, 5, 16};
      c.cu_seqlens = cu_seqlens->data();
      c.num_cu_seqlens = 3;
    }
    *mutations = Chance(10) ? 0 : 1 + Pick(3);
    for (int m = 0; m < *mutations; ++m) {
      switch (Pick(17)) {
        case 0:
          c.layout = static_cast<ringattn_layout>(Int32());
          break;
        case 1:
          c.world = Int32();
          break;
        case 2:
          c.ring_size = Int32();
          break;
        case 3:
          c.stripe_width = Int64();
          break;
        case 4:
          c.kv_heads_per_group = Int64();
          break;
        case 5:
          c.causal = Int32();
          break;
        case 6:
          c.window_left = Int64();
          break;
        case 7:
          c.window_right = Int64();
          break;
        case 8:
        case 9: {  // a list of hostile boundaries (or of lengths)
          std::vector<int64_t>* list = Pick(2) ? cu_seqlens : key_lengths;
          list->clear();
          for (int i = Pick(5); i > 0; --i) list->push_back(Chance(50) ? Int64() : Pick(20));
          if (list == cu_seqlens) {
            c.cu_seqlens = list->empty() ? nullptr : list->data();
            c.num_cu_seqlens = static_cast<int64_t>(list->size());
          } else {
            c.key_lengths = list->empty() ? nullptr : list->data();
            c.num_key_lengths = static_cast<int64_t>(list->size());
          }
          break;
        }
        case 10:
          c.batch = Int64();
          break;
        case 11:
          c.seqlen = Int64();
          break;
        case 12:
          c.num_heads = Int64();
          break;
        case 13:
          c.num_kv_heads = Int64();
          break;
        case 14:
          c.head_dim = Int64();
          break;
        case 15:
          c.softmax_scale = Scale();
          break;
        case 16:  // a count beyond the array it describes is the caller's bug; NULL is not
          c.cu_seqlens = nullptr;
          c.num_cu_seqlens = 1 + Pick(3);
          break;
      }
    }
    return c;
  }

  // A dense description of `n` elements at `p` (rows x heads x dim per batch
  // row), then with probability `percent` one field replaced; `mutated`
  // says whether the description is no longer a valid one. Buffers have
  // kSlack bytes of room after their values (Memory::Put), so a view that
  // starts up to kSlack bytes in stays inside.
  ringattn_tensor Tensor(const void* p, int64_t n, int64_t rows, int64_t heads, int64_t dim,
                         int percent, bool* mutated) {
    const int64_t bytes = n * elem_;
    ringattn_tensor t{p, bytes, dtype_, 0, rows * heads * dim, heads * dim, dim};
    *mutated = Chance(percent);
    if (!*mutated) return t;
    switch (Pick(10)) {
      case 0:
        t.data = nullptr;
        break;
      case 1: {  // never more than the buffer holds
        const int64_t sizes[] = {-1, 0, 1, bytes - 1, bytes / 2, kMin64};
        t.bytes = sizes[Pick(std::size(sizes))];
        break;
      }
      case 2:
        t.dtype = static_cast<ringattn_dtype>(Pick(2) ? Int32() : (dtype_ + 1 + Pick(3)) % 4);
        break;
      case 3:
        t.offset = Int64();
        break;
      case 4:
        t.batch_stride = Int64();
        break;
      case 5:
        t.row_stride = Int64();
        break;
      case 6:
        t.head_stride = Int64();
        break;
      case 7:  // strides that wrap around: the last index overflows int64
        t.row_stride = kMax64 / 2;
        t.head_stride = kMax64 / 2;
        break;
      case 8:  // 4 bytes in: element-aligned, not 16-byte aligned (GPU tensors must be)
        t.data = reinterpret_cast<const char*>(p) + 4;
        break;
      case 9:  // 16 bytes in: an aligned view, valid everywhere
        t.data = reinterpret_cast<const char*>(p) + 16;
        *mutated = false;
        break;
    }
    return t;
  }
  // A byte count for a result buffer of `bytes`: right, or hostile.
  int64_t Room(int64_t bytes, int percent, bool* mutated) {
    *mutated = Chance(percent);
    if (!*mutated) return bytes;
    const int64_t sizes[] = {-1, 0, bytes - 1, bytes + 1, kMax64, kMin64};
    return sizes[Pick(std::size(sizes))];
  }
  // A result buffer's address: `p`, one element in (valid), or one byte in
  // (between elements: refused on a GPU; `mutated`).
  void* Result(void* p, int percent, bool* mutated) {
    *mutated = false;
    if (!Chance(percent)) return p;
    if (Pick(2)) return static_cast<char*>(p) + elem_;
    *mutated = true;
    return static_cast<char*>(p) + 1;
  }

  // The case's dtype: float32, or bfloat16 (the tensor-core kernels at
  // head dims 64 / 128 / 256 on a GPU).
  void ChooseDtype() {
    const bool bf16 = Chance(30);
    dtype_ = bf16 ? RINGATTN_BFLOAT16 : RINGATTN_FLOAT32;
    elem_ = bf16 ? 2 : 4;
  }
  int64_t elem() const { return elem_; }

  std::mt19937_64& rng() { return rng_; }

 private:
  std::mt19937_64 rng_;
  ringattn_dtype dtype_ = RINGATTN_FLOAT32;
  int64_t elem_ = 4;
};

// A failed call names what was wrong.
void ExpectStatus(ringattn_status status, const char* call) {
  if (status != RINGATTN_OK) {
    EXPECT_STRNE(ringattn_last_error(), "") << call << " failed without a message";
  }
}

bool AllFinite(const std::vector<float>& x) {
  for (float v : x) {
    if (!std::isfinite(v)) return false;
  }
  return true;
}

// Where a case's tensors live: host memory (a world of threads, the CPU
// backend) or GPU 0's (an NCCL world of one rank, the CUDA backend).
constexpr int64_t kSlack = 16;  // bytes of room after every buffer's values

class Memory {
 public:
  explicit Memory(bool gpu) : gpu_(gpu) {}
  Memory(const Memory&) = delete;
  Memory& operator=(const Memory&) = delete;
  ~Memory() {
    for (void* p : device_) cudaFree(p);
  }
  // A buffer holding `values` as elements of `elem` bytes (4: float32, 2:
  // bfloat16, rounded toward zero), then kSlack zero bytes.
  void* Put(const std::vector<float>& values, int64_t elem) {
    std::vector<uint8_t> bytes(values.size() * elem + kSlack, 0);
    for (size_t i = 0; i < values.size(); ++i) {
      uint32_t bits;
      std::memcpy(&bits, &values[i], 4);
      if (elem == 2) bits >>= 16;
      std::memcpy(&bytes[i * elem], &bits, elem);
    }
    if (!gpu_) return host_.emplace_back(std::move(bytes)).data();
    void* p = nullptr;
    EXPECT_EQ(cudaMalloc(&p, bytes.size()), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(p, bytes.data(), bytes.size(), cudaMemcpyHostToDevice), cudaSuccess);
    device_.push_back(p);
    return p;
  }
  // `n` elements of `elem` bytes at `p`, as floats.
  std::vector<float> Get(const void* p, size_t n, int64_t elem) const {
    std::vector<uint8_t> bytes(n * elem);
    if (gpu_) {
      EXPECT_EQ(cudaMemcpy(bytes.data(), p, bytes.size(), cudaMemcpyDeviceToHost), cudaSuccess);
    } else {
      std::memcpy(bytes.data(), p, bytes.size());
    }
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) {
      uint32_t bits = 0;
      std::memcpy(&bits, &bytes[i * elem], elem);
      if (elem == 2) bits <<= 16;
      std::memcpy(&x[i], &bits, 4);
    }
    return x;
  }

 private:
  bool gpu_;
  std::deque<std::vector<uint8_t>> host_;
  std::vector<void*> device_;
};

// A world of one rank: threads (CPU), or NCCL on GPU 0, kept from case to
// case until a pass fails (a failed forward or backward aborts its world):
// an NCCL world takes ~0.6 s to make.
class OneRankWorld {
 public:
  explicit OneRankWorld(bool gpu) : gpu_(gpu) {}
  OneRankWorld(const OneRankWorld&) = delete;
  OneRankWorld& operator=(const OneRankWorld&) = delete;
  ~OneRankWorld() { Drop(); }

  ringattn_world* Get() {
    if (world_ != nullptr) return world_;
    if (gpu_) {
      world_ = testing::NcclWorldOfOne(120.0);
    } else {
      EXPECT_EQ(ringattn_threads_world_create(1, 10.0, &world_), RINGATTN_OK);
    }
    return world_;
  }
  // After a call that failed (its rings are destroyed first).
  void Drop() {
    if (world_ != nullptr) ringattn_world_destroy(world_);
    world_ = nullptr;
  }

 private:
  bool gpu_;
  ringattn_world* world_ = nullptr;
};

struct Counts {
  int created = 0, forwards = 0, backwards = 0;
};

void RunCase(Fuzzer& f, bool gpu, OneRankWorld& worlds, Counts* counts) {
  std::vector<int64_t> cu_seqlens, key_lengths;
  int config_mutations = 0;
  const ringattn_config c = f.Config(&cu_seqlens, &key_lengths, &config_mutations);
  ringattn_world* world = worlds.Get();
  ASSERT_NE(world, nullptr);
  ringattn_ring* ring = nullptr;
  const ringattn_status created = ringattn_ring_create(world, 0, &c, &ring);
  ExpectStatus(created, "ringattn_ring_create");
  if (config_mutations == 0) {
    EXPECT_EQ(created, RINGATTN_OK) << "a valid config refused: " << ringattn_last_error();
  }
  if (created != RINGATTN_OK) return;  // (the world is not aborted)
  ++counts->created;
  const int64_t rows = ringattn_ring_local_seqlen(ring);
  const int64_t batch = ringattn_ring_local_batch(ring);
  ASSERT_GE(rows, 0);
  ASSERT_GE(batch, 0);
  // A valid but large problem: created (its sizes are what they are), not
  // run here.
  const int64_t hq = c.num_heads, hk = c.num_kv_heads, d = c.head_dim;
  if (batch * rows > 4096 || hq * d > 4096 || hk * d > 4096 || batch * rows * hq * d > (1 << 16)) {
    ringattn_ring_destroy(ring);
    return;
  }
  std::vector<int64_t> ids(rows);
  const int64_t id_counts[] = {rows, rows - 1, -1, 0, kMin64};  // never more than ids holds
  const int64_t id_count = f.Chance(20) ? id_counts[f.Pick(std::size(id_counts))] : rows;
  ExpectStatus(ringattn_ring_position_ids(ring, ids.data(), id_count),
               "ringattn_ring_position_ids");

  std::normal_distribution<float> normal;
  const auto random = [&](int64_t n) {
    std::vector<float> x(n);
    for (float& v : x) v = normal(f.rng());
    return x;
  };
  const int64_t nq = batch * rows * hq * d, nkv = batch * rows * hk * d, nstat = batch * hq * rows;
  Memory memory(gpu);
  f.ChooseDtype();
  const int64_t e = f.elem();
  void* const q = memory.Put(random(nq), e);
  void* const k = memory.Put(random(nkv), e);
  void* const v = memory.Put(random(nkv), e);
  void* const dout = memory.Put(random(nq), e);
  void* const out = memory.Put(std::vector<float>(nq), e);
  float* const lse = static_cast<float*>(memory.Put(std::vector<float>(nstat), 4));
  void* const dq = memory.Put(std::vector<float>(nq), e);
  void* const dk = memory.Put(std::vector<float>(nkv), e);
  void* const dv = memory.Put(std::vector<float>(nkv), e);
  bool m[7];
  const ringattn_tensor tq = f.Tensor(q, nq, rows, hq, d, 10, &m[0]);
  const ringattn_tensor tk = f.Tensor(k, nkv, rows, hk, d, 10, &m[1]);
  const ringattn_tensor tv = f.Tensor(v, nkv, rows, hk, d, 10, &m[2]);
  const int64_t out_room = f.Room(nq * e, 10, &m[3]);
  const int64_t lse_room = f.Room(nstat * 4, 10, &m[4]) / 4;
  m[4] = m[4] && lse_room != nstat;
  void* const out_at = f.Result(out, 10, &m[5]);
  m[5] = m[5] && gpu;  // a host buffer may be anywhere
  const bool valid_inputs = !(m[0] || m[1] || m[2] || m[3] || m[4] || m[5]);
  const ringattn_status forward =
      ringattn_forward(ring, &tq, &tk, &tv, out_at, out_room, lse, lse_room);
  ExpectStatus(forward, "ringattn_forward");
  bool failed = forward != RINGATTN_OK;
  if (valid_inputs) {
    EXPECT_EQ(forward, RINGATTN_OK) << "valid tensors refused: " << ringattn_last_error();
  }
  if (forward == RINGATTN_OK) {
    ++counts->forwards;
    // Results are finite unless the scale is not (0 means the default).
    if (valid_inputs && std::isfinite(c.softmax_scale) && std::abs(c.softmax_scale) < 1e10) {
      if (gpu) {
        EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      }
      EXPECT_TRUE(AllFinite(memory.Get(out_at, nq, e)))
          << "forward on valid tensors gave a non-finite O";
    }
    bool md[5];
    const ringattn_tensor tdout = f.Tensor(dout, nq, rows, hq, d, 15, &md[0]);
    const int64_t dq_room = f.Room(nq * e, 10, &md[1]);
    const int64_t dk_room = f.Room(nkv * e, 10, &md[2]);
    const int64_t dv_room = f.Room(nkv * e, 10, &md[3]);
    void* const dq_at = f.Result(dq, 10, &md[4]);
    md[4] = md[4] && gpu;
    const ringattn_status backward =
        ringattn_backward(ring, &tdout, dq_at, dq_room, dk, dk_room, dv, dv_room);
    ExpectStatus(backward, "ringattn_backward");
    failed = failed || backward != RINGATTN_OK;
    if (!(md[0] || md[1] || md[2] || md[3] || md[4]) && valid_inputs) {
      EXPECT_EQ(backward, RINGATTN_OK) << "valid gradients refused: " << ringattn_last_error();
    }
    if (backward == RINGATTN_OK) ++counts->backwards;
  } else if (f.Chance(50)) {
    // A backward with no forward (or after a failed one) is an error.
    bool unused;
    const ringattn_tensor tdout = f.Tensor(dout, nq, rows, hq, d, 0, &unused);
    ExpectStatus(ringattn_backward(ring, &tdout, dq, nq * e, dk, nkv * e, dv, nkv * e),
                 "ringattn_backward");
  }
  ringattn_ring_destroy(ring);
  if (failed) worlds.Drop();

  // backward_from on another ring: the saved tensors hostile.
  world = worlds.Get();
  ASSERT_NE(world, nullptr);
  ASSERT_EQ(ringattn_ring_create(world, 0, &c, &ring), RINGATTN_OK) << ringattn_last_error();
  bool mb[6];
  const ringattn_tensor bq = f.Tensor(q, nq, rows, hq, d, 8, &mb[0]);
  const ringattn_tensor bk = f.Tensor(k, nkv, rows, hk, d, 8, &mb[1]);
  const ringattn_tensor bv = f.Tensor(v, nkv, rows, hk, d, 8, &mb[2]);
  const ringattn_tensor bo = f.Tensor(out, nq, rows, hq, d, 8, &mb[3]);
  const ringattn_tensor bdout = f.Tensor(dout, nq, rows, hq, d, 8, &mb[4]);
  const int64_t lse_given = f.Room(nstat * 4, 8, &mb[5]) / 4;
  const float* lse_data = f.Chance(3) ? nullptr : lse;
  const ringattn_status from = ringattn_backward_from(ring, &bq, &bk, &bv, &bo, lse_data,
                                                      std::min<int64_t>(lse_given, nstat), &bdout,
                                                      dq, nq * e, dk, nkv * e, dv, nkv * e);
  ExpectStatus(from, "ringattn_backward_from");
  ringattn_ring_destroy(ring);
  if (from != RINGATTN_OK) worlds.Drop();
  if (gpu) {  // nothing left the GPU in an error state
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  }
}

int EnvInt(const char* name, int otherwise) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::atoi(value) : otherwise;
}

void Fuzz(bool gpu, int cases) {
  Fuzzer f(EnvInt("RINGATTN_C_FUZZ_SEED", 20261204));
  Counts counts;
  OneRankWorld worlds(gpu);
  for (int i = 0; i < cases; ++i) {
    SCOPED_TRACE(::testing::Message() << "case " << i);
    RunCase(f, gpu, worlds, &counts);
    if (::testing::Test::HasFailure()) break;  // the first case that failed, alone
  }
  EXPECT_EQ(huge_allocations, 0) << "an allocation of more than " << kMaxAllocation
                                 << " bytes was tried: a size was not checked before it";
  // The draw reaches every stage: rings made, forwards and backwards run.
  EXPECT_GT(counts.created, cases / 5);
  EXPECT_GT(counts.forwards, cases / 10);
  EXPECT_GT(counts.backwards, cases / 20);
  std::printf("%s: %d cases, %d rings created, %d forwards and %d backwards ran\n",
              gpu ? "GPU" : "CPU", cases, counts.created, counts.forwards, counts.backwards);
}

TEST(RingattnCFuzzTest, HostileArgumentsAreErrorsNeverCrashes) {
  Fuzz(/*gpu=*/false, EnvInt("RINGATTN_C_FUZZ_CASES", 20000));
}

// The same on GPU 0's memory through an NCCL world (the CUDA backend; the
// device run: a world takes ~0.6 s to make after a failed pass, so fewer
// cases).
TEST(RingattnCFuzzTest, HostileArgumentsOnTheGpuAreErrorsNeverCrashes) {
  if (!testing::HaveGpu()) GTEST_SKIP() << "no GPU";
  Fuzz(/*gpu=*/true, EnvInt("RINGATTN_C_FUZZ_GPU_CASES", 300));
}

// Transports that fail (a caller's, as the Python package's over a process
// group may): W = 2 or 3 ranks over transport worlds whose starts and waits
// fail at random (with a message or none), through forward and backward.
// Every rank returns -- OK, or an error with a message -- and at once: a
// failing rank aborts its world, so no peer waits out the timeout.
TEST(RingattnCFuzzTest, FailingTransportsAreErrorsNeverHangs) {
  const int cases = EnvInt("RINGATTN_C_FUZZ_TRANSPORT_CASES", 300);
  std::mt19937_64 rng(EnvInt("RINGATTN_C_FUZZ_SEED", 20261204));
  int failed_cases = 0, clean_cases = 0;
  double slowest = 0;
  for (int i = 0; i < cases; ++i) {
    SCOPED_TRACE(::testing::Message() << "case " << i);
    const int world = 2 + static_cast<int>(rng() % 2);
    const double p = std::array{0.0, 0.01, 0.05, 0.3}[rng() % 4];
    const bool silent = rng() % 2 == 0;
    ringattn_config c{};
    c.layout = rng() % 2 ? RINGATTN_LAYOUT_ZIGZAG : RINGATTN_LAYOUT_RING;
    c.world = world;
    c.causal = 1;
    c.window_left = c.window_right = -1;
    c.batch = 1;
    c.seqlen = 8 * world;
    c.num_heads = c.num_kv_heads = 1;
    c.head_dim = 4;
    comm::ThreadWorld network(world, absl::Seconds(2));
    std::vector<std::string> errors(world);
    std::vector<int> injected(world, 0);
    std::vector<std::thread> threads;
    const auto start = std::chrono::steady_clock::now();
    for (int r = 0; r < world; ++r) {
      threads.emplace_back([&, r, seed = rng()] {
        std::mt19937_64 local(seed);
        testing::CTransport transport{&network.rank(r)};
        transport.silent = silent;
        transport.fail = [&] {
          const bool fail = std::uniform_real_distribution<double>(0, 1)(local) < p;
          injected[r] += fail;
          return fail;
        };
        const ringattn_transport callbacks = transport.Callbacks();
        ringattn_world* w = nullptr;
        ringattn_ring* ring = nullptr;
        if (ringattn_transport_world_create(world, r, &callbacks, &w) != RINGATTN_OK ||
            ringattn_ring_create(w, r, &c, &ring) != RINGATTN_OK) {
          errors[r] = std::string("setup: ") + ringattn_last_error();
          ringattn_world_destroy(w);
          return;
        }
        const std::vector<float> x(8 * 4, 0.5f);
        std::vector<float> out(x.size()), lse(8), dq(x.size()), dk(x.size()), dv(x.size());
        const ringattn_tensor t{x.data(), 32 * 4, RINGATTN_FLOAT32, 0, 32, 4, 4};
        ringattn_status status = ringattn_forward(ring, &t, &t, &t, out.data(), 128, lse.data(), 8);
        if (status == RINGATTN_OK) {
          status = ringattn_backward(ring, &t, dq.data(), 128, dk.data(), 128, dv.data(), 128);
        }
        if (status != RINGATTN_OK) {
          errors[r] = ringattn_last_error();
          EXPECT_FALSE(errors[r].empty()) << "rank " << r << " failed without a message";
          if (errors[r].empty()) errors[r] = "(no message)";
        }
        ringattn_ring_destroy(ring);
        ringattn_world_destroy(w);
      });
    }
    for (std::thread& t : threads) t.join();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    slowest = std::max(slowest, seconds);
    std::string what;
    for (int r = 0; r < world; ++r) {
      what += "\n  rank " + std::to_string(r) + ": " + std::to_string(injected[r]) +
              " injected, error '" + errors[r] + "'";
    }
    EXPECT_LT(seconds, 1.0) << "a rank waited for a failed peer (timeout 2 s); W = " << world
                            << (silent ? ", silent" : "") << what;
    int total_injected = 0, total_failed = 0;
    for (int r = 0; r < world; ++r) {
      total_injected += injected[r];
      total_failed += !errors[r].empty();
    }
    if (total_injected == 0) {
      for (int r = 0; r < world; ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
    }
    failed_cases += total_failed > 0;
    clean_cases += total_injected == 0;
    if (::testing::Test::HasFailure()) break;
  }
  EXPECT_GT(failed_cases, cases / 5);
  EXPECT_GT(clean_cases, cases / 5);
  std::printf("transports: %d cases, %d with a failure, %d clean, slowest %.3f s\n", cases,
              failed_cases, clean_cases, slowest);
}

}  // namespace
}  // namespace ringattn
