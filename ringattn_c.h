/* ringattn's C ABI: exact ring attention from any language (Python's ctypes,
 * ...), with no C++ type crossing it. Opaque handles, plain enums, int64
 * shapes and strides, void* data, status codes with a message.
 *
 * One process holding W ranks on W threads (the in-process world; or one
 * rank per process over a transport the caller implements,
 * ringattn_transport_world_create):
 *   ringattn_world* world;  ringattn_threads_world_create(W, 120.0, &world);
 *   on each of W threads, rank r:
 *     ringattn_ring* ring;  ringattn_ring_create(world, r, &config, &ring);
 *     ringattn_forward(ring, &q, &k, &v, out, out_bytes, lse, lse_count);
 *     ringattn_backward(ring, &dout, dq, dq_bytes, dk, dk_bytes, dv, dv_bytes);
 *     ringattn_ring_destroy(ring);
 *   ringattn_world_destroy(world);
 * Local tensors are (local_batch, local_seqlen, heads, head_dim) as the
 * layout shards (ringattn_ring_local_seqlen, ringattn_ring_position_ids;
 * position -1 is a padding row). Outputs are written dense in the input
 * dtype; LSE is float32 (local_batch, num_heads, local_seqlen).
 * Worlds of threads or of a caller's transport run the CPU backend on host
 * memory. A world over NCCL (ringattn_nccl_world_create: one process per
 * GPU) runs the CUDA backend: every tensor and output is then memory of
 * that GPU, dense, and the passes are ordered with the caller's stream
 * (ringattn_ring_set_stream).
 * Every call returns RINGATTN_OK or an error code; ringattn_last_error()
 * then gives the message (per thread, valid until the thread's next call).
 */
#ifndef RINGATTN_RINGATTN_C_H_
#define RINGATTN_RINGATTN_C_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* absl::StatusCode values. */
typedef enum {
  RINGATTN_OK = 0,
  RINGATTN_INVALID_ARGUMENT = 3,
  RINGATTN_DEADLINE_EXCEEDED = 4,
  RINGATTN_RESOURCE_EXHAUSTED = 8,
  RINGATTN_FAILED_PRECONDITION = 9,
  RINGATTN_ABORTED = 10,
  RINGATTN_INTERNAL = 13,
  RINGATTN_UNAVAILABLE = 14,
  RINGATTN_OTHER_ERROR = 2
} ringattn_status;

typedef enum {
  RINGATTN_LAYOUT_RING = 0,
  RINGATTN_LAYOUT_ZIGZAG = 1,
  RINGATTN_LAYOUT_STRIPE = 2,
  RINGATTN_LAYOUT_LLAMA3 = 3,
  RINGATTN_LAYOUT_BALANCED = 4
} ringattn_layout;

typedef enum {
  RINGATTN_FLOAT32 = 0,
  RINGATTN_FLOAT64 = 1,
  RINGATTN_FLOAT16 = 2,
  RINGATTN_BFLOAT16 = 3
} ringattn_dtype;

typedef struct {
  ringattn_layout layout;
  int32_t world;              /* ranks W; must equal the world's */
  int32_t ring_size;          /* 0: one ring of W */
  int64_t stripe_width;       /* stripe layout; 0 or 1: 1 */
  int64_t kv_heads_per_group; /* llama3; 0: all */
  int32_t causal;             /* 0 or 1 */
  int64_t window_left;        /* -1: none */
  int64_t window_right;       /* -1: none */
  const int64_t* cu_seqlens;  /* varlen document boundaries, or NULL */
  int64_t num_cu_seqlens;
  const int64_t* key_lengths; /* valid keys per batch row, or NULL */
  int64_t num_key_lengths;
  /* The global problem. */
  int64_t batch, seqlen, num_heads, num_kv_heads, head_dim;
  double softmax_scale; /* 0: 1/sqrt(head_dim) */
} ringattn_config;

/* A local tensor: element (b, t, h, d) of `dtype` at
 * data + (offset + b*batch_stride + t*row_stride + h*head_stride + d) * size,
 * inside `bytes` bytes. */
typedef struct {
  const void* data;
  int64_t bytes;
  ringattn_dtype dtype;
  int64_t offset, batch_stride, row_stride, head_stride; /* in elements */
} ringattn_tensor;

typedef struct ringattn_world ringattn_world;
typedef struct ringattn_ring ringattn_ring;

/* The message of this thread's last failed call ("" if none). */
const char* ringattn_last_error(void);

/* W ranks as threads of this process; a receive fails after timeout_s. */
ringattn_status ringattn_threads_world_create(int32_t world, double timeout_s,
                                              ringattn_world** out);
/* A transport the caller implements, for one process (or thread) per rank:
 * e.g. Python over a torch.distributed process group (gloo). start_send and
 * start_recv begin moving `bytes` bytes to / from rank `peer` with `tag`
 * (messages between two ranks with one tag arrive in send order; the
 * buffer stays valid until the wait) and return a handle >= 0, or -1 with
 * the reason written to `error` (at most error_size bytes, NUL-terminated);
 * wait blocks until that transfer is done (0) or failed (nonzero, reason in
 * `error`) and is called once per handle, possibly from another thread
 * than the start. abort (may be NULL) tells the peers to stop; they fail
 * within their transport's timeout otherwise. `user` is passed to each. */
typedef struct {
  void* user;
  int64_t (*start_send)(void* user, int32_t peer, int32_t tag, const void* data, int64_t bytes,
                        char* error, int64_t error_size);
  int64_t (*start_recv)(void* user, int32_t peer, int32_t tag, void* data, int64_t bytes,
                        char* error, int64_t error_size);
  int32_t (*wait)(void* user, int64_t handle, char* error, int64_t error_size);
  void (*abort)(void* user, const char* reason);
} ringattn_transport;

/* This process's rank `rank` of `world` ranks over `transport` (copied;
 * its functions and user data must outlive the world). */
ringattn_status ringattn_transport_world_create(int32_t world, int32_t rank,
                                                const ringattn_transport* transport,
                                                ringattn_world** out);

/* NCCL (one process per GPU, the CUDA backend). Rank 0 makes an id, every
 * rank receives it (e.g. torch.distributed.broadcast_object_list) and
 * creates its world on its GPU `device`; a silent or failed peer gives an
 * error after timeout_s. */
#define RINGATTN_NCCL_ID_BYTES 128
ringattn_status ringattn_nccl_unique_id(uint8_t* id, int64_t id_bytes);
ringattn_status ringattn_nccl_world_create(int32_t world, int32_t rank, const uint8_t* id,
                                           int64_t id_bytes, int32_t device, double timeout_s,
                                           ringattn_world** out);

/* After every ring of the world is destroyed. */
void ringattn_world_destroy(ringattn_world* world);

/* NCCL worlds: whether ringattn_forward and ringattn_backward return once
 * their work is enqueued on the GPU (async 1), or when it has finished
 * there (0, the default). Asynchronous passes let the host prepare the next
 * call while the GPU runs this one, as torch's own operations do. A watchdog
 * thread then polls the passes: when one has not finished within the
 * world's timeout (a silent peer) or NCCL reports an error, it aborts the
 * world, which ends the stuck transfers (the streams drain rather than hang
 * whatever the caller waits on next), and this rank's next pass returns the
 * error. At most 2 passes are outstanding; a third call waits. Set it
 * between passes. Errors: FAILED_PRECONDITION for a CPU world. */
ringattn_status ringattn_world_set_async_passes(ringattn_world* world, int32_t async);

/* Waits until every pass of the world so far has finished on the GPU (at
 * most the timeout) and returns the error of one that failed. With
 * asynchronous passes a failed pass's outputs are not valid and its error
 * surfaces only at the rank's next pass: call this before using results that
 * must not be wrong (a training step's gradients, before the optimizer
 * step). RINGATTN_OK at once for CPU worlds (their passes end with their
 * work). */
ringattn_status ringattn_world_synchronize(ringattn_world* world);

ringattn_status ringattn_ring_create(ringattn_world* world, int32_t rank,
                                     const ringattn_config* config, ringattn_ring** out);
void ringattn_ring_destroy(ringattn_ring* ring);

/* Fails the whole world with `reason`: every rank waiting on a peer gets
 * RINGATTN_ABORTED at once instead of waiting out its timeout. A failed
 * ringattn_forward or ringattn_backward does this itself. */
void ringattn_ring_abort(ringattn_ring* ring, const char* reason);

/* The GPU a ring computes on, or -1 for the CPU backend. */
int32_t ringattn_ring_device(const ringattn_ring* ring);
/* GPU rings: the caller's CUDA stream (a cudaStream_t; NULL, the default,
 * is the legacy default stream). ringattn_forward and ringattn_backward
 * start after the work enqueued on it before the call, and its work
 * enqueued after the call runs after their results are written. (A pass
 * also returns only when its ring work has finished on the GPU, reporting
 * transfer errors in the call, unless the world's passes are asynchronous:
 * ringattn_world_set_async_passes.) */
ringattn_status ringattn_ring_set_stream(ringattn_ring* ring, void* stream);

/* Rows of every local tensor, and the batch rows. */
int64_t ringattn_ring_local_seqlen(const ringattn_ring* ring);
int64_t ringattn_ring_local_batch(const ringattn_ring* ring);
/* The global position of each local row (-1: padding), local_seqlen of them. */
ringattn_status ringattn_ring_position_ids(const ringattn_ring* ring, int64_t* ids, int64_t count);

/* Forward: O (dense, q's dtype) into `out` and LSE into `lse`. */
ringattn_status ringattn_forward(ringattn_ring* ring, const ringattn_tensor* q,
                                 const ringattn_tensor* k, const ringattn_tensor* v, void* out,
                                 int64_t out_bytes, float* lse, int64_t lse_count);
/* Backward after ringattn_forward on this ring: dQ, dK, dV (dense). */
ringattn_status ringattn_backward(ringattn_ring* ring, const ringattn_tensor* dout, void* dq,
                                  int64_t dq_bytes, void* dk, int64_t dk_bytes, void* dv,
                                  int64_t dv_bytes);
/* Backward from a forward that ran on any ring of the same problem (this
 * one or another, which may have run other passes since): its q, k, v,
 * its out and lse as ringattn_forward wrote them, and dout; dQ, dK, dV
 * (dense). A caller that keeps only these between the passes frees the
 * ring for other forwards (a training step's layers share one ring).
 * GPU rings: every tensor and buffer on the ring's GPU. */
ringattn_status ringattn_backward_from(ringattn_ring* ring, const ringattn_tensor* q,
                                       const ringattn_tensor* k, const ringattn_tensor* v,
                                       const ringattn_tensor* out, const float* lse,
                                       int64_t lse_count, const ringattn_tensor* dout, void* dq,
                                       int64_t dq_bytes, void* dk, int64_t dk_bytes, void* dv,
                                       int64_t dv_bytes);

#ifdef __cplusplus
}
#endif

#endif /* RINGATTN_RINGATTN_C_H_ */
