#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "cuda/element_access.cuh"
#include "cuda/ring_kernels.h"

namespace ringattn::cuda {
namespace {

constexpr int kThreads = 256;

unsigned Blocks(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65535 * 16 ? blocks : 65535 * 16);
}

// The element-wise kernels move 4 floats per thread and step (16-byte
// loads and stores) where the pointers allow it: they are memory-bound,
// and at the end of a ring pass they are on its critical path.
bool Aligned(const void* p, int bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

__global__ void AddF32Kernel(float* dst, const float* src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{kThreads} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * kThreads) {
    dst[i] += src[i];
  }
}

__global__ void AddF32x4Kernel(float4* dst, const float4* src, int64_t n4) {
  for (int64_t i = blockIdx.x * int64_t{kThreads} + threadIdx.x; i < n4;
       i += int64_t{gridDim.x} * kThreads) {
    const float4 a = dst[i], b = src[i];
    dst[i] = make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
  }
}

// Four floats rounded to a 16-bit type as 8 bytes: `pair` rounds two into
// one 32-bit word.
template <typename Pair>
__device__ __forceinline__ uint2 RoundFour(float4 x, Pair pair) {
  const auto lo = pair(x.x, x.y), hi = pair(x.z, x.w);
  return make_uint2(*reinterpret_cast<const uint32_t*>(&lo),
                    *reinterpret_cast<const uint32_t*>(&hi));
}

// A launch's jobs with the running end of each (in the kernel's units:
// elements, or float4s on the vector path).
template <typename Job>
struct Jobs {
  Job job[kMaxElementJobs];
  int64_t end[kMaxElementJobs];
  int count = 0;
};

// The job of unit i < end[count - 1], and i's index in it: constant
// indices only (an index computed into the kernel's parameters made every
// thread copy them to local memory first, 16 stores for its one float4:
// a training step at 8192 tokens ran 1.29x the time on an H200).
template <typename Job>
__device__ __forceinline__ Job JobOf(const Jobs<Job>& jobs, int64_t& i) {
  if (jobs.count > 1 && i >= jobs.end[0]) {
    if (jobs.count > 2 && i >= jobs.end[1]) {
      i -= jobs.end[1];
      return jobs.job[2];
    }
    i -= jobs.end[0];
    return jobs.job[1];
  }
  return jobs.job[0];
}

// fn(job, i) for every unit i of every job, a unit per thread and step.
template <typename Job, typename Fn>
__device__ __forceinline__ void ForEachUnit(const Jobs<Job>& jobs, Fn fn) {
  const int64_t total = jobs.count == 3 ? jobs.end[2] : jobs.count == 2 ? jobs.end[1] : jobs.end[0];
  for (int64_t u = blockIdx.x * int64_t{kThreads} + threadIdx.x; u < total;
       u += int64_t{gridDim.x} * kThreads) {
    int64_t i = u;
    const Job job = JobOf(jobs, i);
    fn(job, i);
  }
}

__global__ void FillsKernel(Jobs<FillJob> jobs, bool vector) {
  ForEachUnit(jobs, [vector](const FillJob& job, int64_t i) {
    if (vector) {
      reinterpret_cast<float4*>(job.dst)[i] =
          make_float4(job.value, job.value, job.value, job.value);
    } else {
      job.dst[i] = job.value;
    }
  });
}

__global__ void ConvertsKernel(Jobs<ConvertJob> jobs, bool vector) {
  ForEachUnit(jobs, [vector](const ConvertJob& job, int64_t i) {
    if (!vector) {
      StoreRounded(job.dtype, job.dst, i, job.src[i]);
      return;
    }
    const float4 x = reinterpret_cast<const float4*>(job.src)[i];
    if (job.dtype == ElementType::kBFloat16) {
      static_cast<uint2*>(job.dst)[i] =
          RoundFour(x, [](float a, float b) { return __floats2bfloat162_rn(a, b); });
    } else if (job.dtype == ElementType::kFloat16) {
      static_cast<uint2*>(job.dst)[i] =
          RoundFour(x, [](float a, float b) { return __floats2half2_rn(a, b); });
    } else {
      static_cast<float4*>(job.dst)[i] = x;
    }
  });
}

// The non-empty jobs of `given` with their ends, in float4s where every
// job allows it (`vector_ok(job)`: its n a multiple of 4 and its pointers
// aligned), else in elements.
template <typename Job, typename VectorOk>
cudaError_t CollectJobs(const Job* given, int count, Jobs<Job>* jobs, bool* vector,
                        VectorOk vector_ok) {
  if (count < 0 || count > kMaxElementJobs || (count > 0 && given == nullptr)) {
    return cudaErrorInvalidValue;
  }
  *vector = true;
  for (int j = 0; j < count; ++j) {
    if (given[j].n <= 0) continue;
    jobs->job[jobs->count++] = given[j];
    *vector = *vector && given[j].n % 4 == 0 && vector_ok(given[j]);
  }
  int64_t end = 0;
  for (int j = 0; j < jobs->count; ++j) {
    end += *vector ? jobs->job[j].n / 4 : jobs->job[j].n;
    jobs->end[j] = end;
  }
  return cudaSuccess;
}

// Rows of width16 16-byte words, src_pitch16 / dst_pitch16 words apart.
__global__ void CopyRowsKernel(uint4* dst, int64_t dst_pitch16, const uint4* src,
                               int64_t src_pitch16, int64_t width16, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{kThreads} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * kThreads) {
    const int64_t row = i / width16, word = i - row * width16;
    dst[row * dst_pitch16 + word] = src[row * src_pitch16 + word];
  }
}

// The full-layout offset of element 0 of packed row `row` (a row: one
// head's head_dim elements; rows run (shard, K or V, batch, token, head)),
// and whether the row is V's.
__device__ __forceinline__ int64_t FullRowOffset(const PackedKvShape& s, int64_t row, bool* is_v) {
  const int64_t heads = s.head_end - s.head_begin;
  const int64_t h = row % heads;
  row /= heads;
  const int64_t t = row % s.rows;
  row /= s.rows;
  const int64_t b = row % s.batch;
  row /= s.batch;
  *is_v = row % 2 == 1;
  const int64_t shard = row / 2;
  const int64_t full_row = b * s.ranks * s.rows + shard * s.rows + t;
  return (full_row * s.num_kv_heads + s.head_begin + h) * s.head_dim;
}

// packed += full (to_packed) or full += packed, one float4 of a head's row
// per step: a handful of divisions per four elements (head_dim % 4 == 0 and
// 16-byte aligned buffers).
__global__ void PackedAddKernel(PackedKvShape s, int64_t n, bool to_packed, float* packed,
                                float* full_k, float* full_v) {
  const int64_t per_row = s.head_dim / 4;
  for (int64_t i = blockIdx.x * int64_t{kThreads} + threadIdx.x; i < n / 4;
       i += int64_t{gridDim.x} * kThreads) {
    const int64_t row = i / per_row;
    bool is_v;
    const int64_t offset = FullRowOffset(s, row, &is_v) + (i - row * per_row) * 4;
    float4* full = reinterpret_cast<float4*>((is_v ? full_v : full_k) + offset);
    float4* p = reinterpret_cast<float4*>(packed) + i;
    float4* to = to_packed ? p : full;
    const float4 a = *to, b = to_packed ? *full : *p;
    *to = make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
  }
}

// The same, one element per step (any head_dim or alignment).
__global__ void PackedAddScalarKernel(PackedKvShape s, int64_t n, bool to_packed, float* packed,
                                      float* full_k, float* full_v) {
  for (int64_t i = blockIdx.x * int64_t{kThreads} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * kThreads) {
    const int64_t row = i / s.head_dim;
    bool is_v;
    const int64_t offset = FullRowOffset(s, row, &is_v) + (i - row * s.head_dim);
    float* full = (is_v ? full_v : full_k) + offset;
    if (to_packed) {
      packed[i] += *full;
    } else {
      *full += packed[i];
    }
  }
}

// LaunchPackedCellsF32's kernel: lines of a token's heads (the packed
// layout's (shard, K or V, batch, token) order), a CTA per line in turn;
// `Unit` float4 where head_dim % 4 == 0 and the buffers are 16-byte
// aligned, else float.
template <typename Unit>
__global__ void PackedCellsKernel(PackedKvShape s, CellRegions regions, Unit* dst,
                                  const Unit* src) {
  constexpr int kFloats = sizeof(Unit) / sizeof(float);
  const int64_t lines = 2 * s.ranks * s.batch * s.rows;
  const int units_per_head = static_cast<int>(s.head_dim / kFloats);
  const int units = static_cast<int>((s.head_end - s.head_begin) * units_per_head);
  for (int64_t line = blockIdx.x; line < lines; line += gridDim.x) {
    const int64_t row = line / (2 * s.batch * s.rows) * s.rows + line % s.rows;
    unsigned in_rows = 0;  // the regions whose rows hold this line's
    for (int k = 0; k < regions.count; ++k) {
      if (row >= regions.rect[k].row_begin && row < regions.rect[k].row_end) in_rows |= 1u << k;
    }
    if (in_rows == 0 && src == nullptr) continue;
    for (int u = threadIdx.x; u < units; u += blockDim.x) {
      const int64_t head = s.head_begin + u / units_per_head;
      bool in = false;
      for (int k = 0; k < regions.count; ++k) {
        in |= (in_rows >> k & 1u) != 0 && head >= regions.rect[k].head_begin &&
              head < regions.rect[k].head_end;
      }
      const int64_t at = line * units + u;
      if (src == nullptr) {
        if (in) dst[at] = Unit{};
      } else if (in) {
        dst[at] = src[at];
      } else if constexpr (kFloats == 4) {
        const float4 a = dst[at], b = src[at];
        dst[at] = make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
      } else {
        dst[at] += src[at];
      }
    }
  }
}

}  // namespace

cudaError_t LaunchAddF32(float* dst, const float* src, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (n % 4 == 0 && Aligned(dst, 16) && Aligned(src, 16)) {
    AddF32x4Kernel<<<Blocks(n / 4), kThreads, 0, stream>>>(
        reinterpret_cast<float4*>(dst), reinterpret_cast<const float4*>(src), n / 4);
  } else {
    AddF32Kernel<<<Blocks(n), kThreads, 0, stream>>>(dst, src, n);
  }
  return cudaGetLastError();
}

cudaError_t LaunchFillsF32(const FillJob* given, int count, cudaStream_t stream) {
  Jobs<FillJob> jobs;
  bool vector = false;
  if (const cudaError_t e = CollectJobs(given, count, &jobs, &vector,
                                        [](const FillJob& j) { return Aligned(j.dst, 16); });
      e != cudaSuccess || jobs.count == 0) {
    return e;
  }
  FillsKernel<<<Blocks(jobs.end[jobs.count - 1]), kThreads, 0, stream>>>(jobs, vector);
  return cudaGetLastError();
}

cudaError_t LaunchConvertsF32(const ConvertJob* given, int count, cudaStream_t stream) {
  Jobs<ConvertJob> jobs;
  bool vector = false;
  if (const cudaError_t e = CollectJobs(
          given, count, &jobs, &vector,
          [](const ConvertJob& j) {
            return Aligned(j.src, 16) && Aligned(j.dst, j.dtype == ElementType::kFloat32 ? 16 : 8);
          });
      e != cudaSuccess || jobs.count == 0) {
    return e;
  }
  ConvertsKernel<<<Blocks(jobs.end[jobs.count - 1]), kThreads, 0, stream>>>(jobs, vector);
  return cudaGetLastError();
}

cudaError_t LaunchFillF32(float* dst, float value, int64_t n, cudaStream_t stream) {
  const FillJob job{dst, value, n};
  return LaunchFillsF32(&job, 1, stream);
}

cudaError_t LaunchConvertF32(ElementType dtype, const float* src, void* dst, int64_t n,
                             cudaStream_t stream) {
  const ConvertJob job{src, dst, n, dtype};
  return LaunchConvertsF32(&job, 1, stream);
}

cudaError_t LaunchCopyRows(void* dst, int64_t dst_pitch, const void* src, int64_t src_pitch,
                           int64_t width, int64_t rows, cudaStream_t stream) {
  if (width <= 0 || rows <= 0) return cudaSuccess;
  if (!Aligned(dst, 16) || !Aligned(src, 16) || dst_pitch % 16 != 0 || src_pitch % 16 != 0 ||
      width % 16 != 0) {
    return cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, width, rows, cudaMemcpyDeviceToDevice,
                             stream);
  }
  const int64_t n = rows * (width / 16);
  CopyRowsKernel<<<Blocks(n), kThreads, 0, stream>>>(static_cast<uint4*>(dst), dst_pitch / 16,
                                                     static_cast<const uint4*>(src), src_pitch / 16,
                                                     width / 16, n);
  return cudaGetLastError();
}

cudaError_t LaunchPackedAddF32(const PackedKvShape& shape, bool to_packed, float* packed,
                               float* full_k, float* full_v, cudaStream_t stream) {
  const int64_t n = shape.PackedElements();
  if (n <= 0) return cudaSuccess;
  if (shape.head_dim % 4 == 0 && Aligned(packed, 16) && Aligned(full_k, 16) &&
      Aligned(full_v, 16)) {
    PackedAddKernel<<<Blocks(n / 4), kThreads, 0, stream>>>(shape, n, to_packed, packed, full_k,
                                                            full_v);
  } else {
    PackedAddScalarKernel<<<Blocks(n), kThreads, 0, stream>>>(shape, n, to_packed, packed, full_k,
                                                              full_v);
  }
  return cudaGetLastError();
}

cudaError_t LaunchPackedCellsF32(const PackedKvShape& shape, const CellRegions& regions, float* dst,
                                 const float* src, cudaStream_t stream) {
  if (regions.count < 0 || regions.count > kMaxCellRegions) return cudaErrorInvalidValue;
  const int64_t lines = 2 * shape.ranks * shape.batch * shape.rows;
  const int64_t width = (shape.head_end - shape.head_begin) * shape.head_dim;
  if (lines <= 0 || width <= 0 || (src == nullptr && regions.count == 0)) return cudaSuccess;
  const bool vector =
      shape.head_dim % 4 == 0 && Aligned(dst, 16) && (src == nullptr || Aligned(src, 16));
  const int64_t units = vector ? width / 4 : width;
  // A warp's multiple up to kThreads: d64 over 8 heads is 128 float4s.
  const int threads = static_cast<int>(units >= kThreads ? kThreads : (units + 31) / 32 * 32);
  const unsigned blocks = static_cast<unsigned>(lines < 65535 * 16 ? lines : 65535 * 16);
  if (vector) {
    PackedCellsKernel<float4><<<blocks, threads, 0, stream>>>(
        shape, regions, reinterpret_cast<float4*>(dst), reinterpret_cast<const float4*>(src));
  } else {
    PackedCellsKernel<float><<<blocks, threads, 0, stream>>>(shape, regions, dst, src);
  }
  return cudaGetLastError();
}

}  // namespace ringattn::cuda
