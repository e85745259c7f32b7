"""ctypes bindings of ringattn_c.h (the C ABI). Private: use ringattn.Ring."""

import ctypes
import os

LAYOUTS = {"ring": 0, "zigzag": 1, "stripe": 2, "llama3": 3, "balanced": 4}
DTYPES = {"float32": 0, "float64": 1, "float16": 2, "bfloat16": 3}
_INVALID_ARGUMENT = 3
NCCL_ID_BYTES = 128  # RINGATTN_NCCL_ID_BYTES


class Config(ctypes.Structure):
    _fields_ = [
        ("layout", ctypes.c_int), ("world", ctypes.c_int32), ("ring_size", ctypes.c_int32),
        ("stripe_width", ctypes.c_int64), ("kv_heads_per_group", ctypes.c_int64),
        ("causal", ctypes.c_int32), ("window_left", ctypes.c_int64),
        ("window_right", ctypes.c_int64),
        ("cu_seqlens", ctypes.POINTER(ctypes.c_int64)), ("num_cu_seqlens", ctypes.c_int64),
        ("key_lengths", ctypes.POINTER(ctypes.c_int64)), ("num_key_lengths", ctypes.c_int64),
        ("batch", ctypes.c_int64), ("seqlen", ctypes.c_int64), ("num_heads", ctypes.c_int64),
        ("num_kv_heads", ctypes.c_int64), ("head_dim", ctypes.c_int64),
        ("softmax_scale", ctypes.c_double),
    ]


class Tensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p), ("bytes", ctypes.c_int64), ("dtype", ctypes.c_int),
        ("offset", ctypes.c_int64), ("batch_stride", ctypes.c_int64),
        ("row_stride", ctypes.c_int64), ("head_stride", ctypes.c_int64),
    ]


def tensor(name, data, shape, strides, unit, itemsize, dtype):
    """A ringattn_tensor at address `data` of `shape` (batch, rows, heads,
    head_dim) in `dtype` (a DTYPES key), elements of `itemsize` bytes;
    `strides` as the array library gives them, in units of `unit` bytes
    (numpy: bytes, unit 1; torch: elements, unit = itemsize)."""
    if len(shape) != 4 or strides[3] * unit != itemsize:
        raise ValueError(f"ringattn: {name} has shape {tuple(shape)} and strides "
                         f"{tuple(strides)}; expected (batch, rows, heads, head_dim) with "
                         "contiguous head_dim")
    elements = [s * unit // itemsize for s in strides]
    empty = any(n == 0 for n in shape)
    # The extent the strides reach, from the first element.
    span = 0 if empty else sum((n - 1) * e for n, e in zip(shape, elements)) + 1
    return Tensor(data=data, bytes=span * itemsize, dtype=DTYPES[dtype], offset=0,
                  batch_stride=elements[0], row_stride=elements[1], head_stride=elements[2])


# ringattn_transport's callbacks (ringattn_c.h).
SEND_FN = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32,
                           ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64)
RECV_FN = SEND_FN
WAIT_FN = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                           ctypes.c_int64)
ABORT_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p)


class Transport(ctypes.Structure):
    _fields_ = [("user", ctypes.c_void_p), ("start_send", SEND_FN), ("start_recv", RECV_FN),
                ("wait", WAIT_FN), ("abort", ABORT_FN)]


def write_error(buffer, size, error):
    """Copies an exception's text into a C error buffer (NUL-terminated)."""
    text = f"{type(error).__name__}: {error}".encode()[:max(size - 1, 0)]
    ctypes.memmove(buffer, text + b"\0", len(text) + 1)


def _load():
    path = os.environ.get("RINGATTN_LIB") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "libringattn.so")
    if not os.path.exists(path):
        raise ImportError(
            f"ringattn: the C library is not at {path}; build it with "
            "`./bazelw build //python:libringattn.so` and set RINGATTN_LIB to "
            "bazel-bin/python/libringattn.so")
    lib = ctypes.CDLL(path)
    p, i32, i64 = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64
    lib.ringattn_last_error.restype = ctypes.c_char_p
    lib.ringattn_threads_world_create.argtypes = [i32, ctypes.c_double, ctypes.POINTER(p)]
    lib.ringattn_transport_world_create.argtypes = [i32, i32, ctypes.POINTER(Transport),
                                                    ctypes.POINTER(p)]
    lib.ringattn_nccl_unique_id.argtypes = [p, i64]
    lib.ringattn_nccl_world_create.argtypes = [i32, i32, p, i64, i32, ctypes.c_double,
                                               ctypes.POINTER(p)]
    lib.ringattn_world_set_async_passes.argtypes = [p, i32]
    lib.ringattn_world_synchronize.argtypes = [p]
    lib.ringattn_world_destroy.argtypes = [p]
    lib.ringattn_world_destroy.restype = None
    lib.ringattn_ring_create.argtypes = [p, i32, ctypes.POINTER(Config), ctypes.POINTER(p)]
    lib.ringattn_ring_destroy.argtypes = [p]
    lib.ringattn_ring_destroy.restype = None
    lib.ringattn_ring_abort.argtypes = [p, ctypes.c_char_p]
    lib.ringattn_ring_abort.restype = None
    lib.ringattn_ring_device.argtypes = [p]
    lib.ringattn_ring_device.restype = i32
    lib.ringattn_ring_set_stream.argtypes = [p, p]
    lib.ringattn_ring_local_seqlen.argtypes = [p]
    lib.ringattn_ring_local_seqlen.restype = i64
    lib.ringattn_ring_local_batch.argtypes = [p]
    lib.ringattn_ring_local_batch.restype = i64
    lib.ringattn_ring_position_ids.argtypes = [p, p, i64]
    lib.ringattn_forward.argtypes = [p, ctypes.POINTER(Tensor), ctypes.POINTER(Tensor),
                                     ctypes.POINTER(Tensor), p, i64, p, i64]
    lib.ringattn_backward.argtypes = [p, ctypes.POINTER(Tensor), p, i64, p, i64, p, i64]
    t = ctypes.POINTER(Tensor)
    lib.ringattn_backward_from.argtypes = [p, t, t, t, t, p, i64, t, p, i64, p, i64, p, i64]
    return lib


lib = _load()


def check(status):
    """Raises ringattn's error (ValueError for bad arguments) unless OK."""
    if status != 0:
        message = lib.ringattn_last_error().decode()
        raise (ValueError if status == _INVALID_ARGUMENT else RuntimeError)(
            f"ringattn: {message}")
