"""ringattn from Python: exact ring attention over the C ABI (ringattn_c.h).

    import numpy as np, ringattn
    world = ringattn.World(4)                       # 4 ranks as threads of this process
    ring = ringattn.Ring(world, rank, layout="zigzag", seqlen=4096, num_heads=8,
                         head_dim=64, causal=True)  # on each rank's thread
    q_local = ringattn.shard(q, ring)               # (batch, local_seqlen, heads, dim)
    out, lse = ring.forward(q_local, k_local, v_local)
    dq, dk, dv = ring.backward(dout_local)

Arrays are numpy arrays of float32, float64 or float16 with unit stride in
the head dimension (any other strides). Bad arguments raise ValueError with
ringattn's message; other failures (a peer that fails or goes silent)
RuntimeError. Rings of a World run the CPU backend on numpy arrays; those
of World.over_nccl run the CUDA backend on GPU memory (torch CUDA tensors
through ringattn.functions, which holds ring-flash-attention's functions).
"""

import ctypes
import numbers
import os

import numpy as np

from . import _capi

__all__ = ["World", "Ring", "shard", "unshard"]

_NUMPY_DTYPES = {np.dtype(np.float32): "float32", np.dtype(np.float64): "float64",
                 np.dtype(np.float16): "float16"}


def _int(name, x):
    """x as a Python int (an int, a numpy integer or 0-d integer array); a
    float (which would be truncated), a bool or anything else raises
    ValueError."""
    if isinstance(x, np.ndarray) and x.ndim == 0 and np.issubdtype(x.dtype, np.integer):
        return int(x)
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Integral):
        raise ValueError(f"ringattn: {name} is {x!r}; expected an integer")
    return int(x)


def _ints(name, values):
    """values (a sequence of integers or an integer numpy array; None stays
    None) as a list of Python ints."""
    if values is None:
        return None
    if isinstance(values, np.ndarray):
        if not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f"ringattn: {name} has dtype {values.dtype}; expected integers")
        return [int(v) for v in values.reshape(-1)]
    return [_int(f"{name}[{i}]", v) for i, v in enumerate(values)]


class _Handle:
    """Owns a handle of the C ABI, destroyed once: by close(), or when
    garbage-collected (also after a failed __init__, when it is None)."""

    _handle = None
    _destroy = None  # the C ABI's destroy function

    def close(self):
        if self._handle:
            self._destroy(self._handle)
            self._handle = None

    def __del__(self):
        self.close()


class World(_Handle):
    """`world` ranks as threads of this process (one Ring per thread); or,
    from World.over_transport, this process's one rank (see
    ringattn.distributed for torch.distributed process groups)."""

    _destroy = staticmethod(_capi.lib.ringattn_world_destroy)
    device = None  # the GPU of an NCCL world; None: the CPU backend
    failed = False  # a pass failed on it (its peers were told to stop)

    def __init__(self, world, timeout_s=120.0):
        handle = ctypes.c_void_p()
        _capi.check(_capi.lib.ringattn_threads_world_create(world, timeout_s,
                                                            ctypes.byref(handle)))
        self._handle = handle
        self.size = world

    @staticmethod
    def nccl_unique_id():
        """A fresh NCCL id (bytes) for World.over_nccl: rank 0 makes it and
        hands it to every rank."""
        buffer = (ctypes.c_uint8 * _capi.NCCL_ID_BYTES)()
        _capi.check(_capi.lib.ringattn_nccl_unique_id(buffer, _capi.NCCL_ID_BYTES))
        return bytes(buffer)

    @classmethod
    def over_nccl(cls, world, rank, unique_id, device, timeout_s=120.0, async_passes=None):
        """Rank `rank` of `world`, this process on GPU `device` (an int),
        over NCCL with rank 0's nccl_unique_id(): its rings run the CUDA
        backend on tensors of that GPU. async_passes (None: on, unless the
        environment has RINGATTN_ASYNC_PASSES=0): see set_async_passes."""
        self = cls.__new__(cls)
        handle = ctypes.c_void_p()
        id_buffer = (ctypes.c_uint8 * len(unique_id)).from_buffer_copy(unique_id)
        _capi.check(_capi.lib.ringattn_nccl_world_create(
            world, rank, id_buffer, len(unique_id), device, timeout_s, ctypes.byref(handle)))
        self._handle = handle
        self.size = world
        self.device = device
        if async_passes is None:
            # On since the fifty-fourth session, when the silent-peer test
            # passed with them on two GPUs (python/cuda_failure_test.py
            # --async_passes) and they made the W = 2 step 0.43-0.51 ms
            # shorter (8.63-8.66 against 9.06-9.17 ms).
            async_passes = os.environ.get("RINGATTN_ASYNC_PASSES", "1") != "0"
        self.async_passes = False
        if async_passes:
            self.set_async_passes(True)
        return self

    def set_async_passes(self, enabled):
        """NCCL worlds: passes return once their work is enqueued on the GPU
        (True, the default of over_nccl), as torch's operations do, instead
        of when it has finished (False). A silent or failed peer then aborts the world
        from a watchdog thread after the timeout (the GPU work drains, no
        hang), and the rank's next ringattn call raises."""
        _capi.check(_capi.lib.ringattn_world_set_async_passes(self._handle, int(bool(enabled))))
        self.async_passes = bool(enabled)

    def synchronize(self):
        """Waits for every pass so far (at most the timeout); raises the
        error of one that failed. With asynchronous passes, call it before
        using results that must not be wrong (e.g. before the optimizer
        step): a failed pass's outputs are not valid, and its error would
        otherwise surface only at the next ringattn call."""
        _capi.check(_capi.lib.ringattn_world_synchronize(self._handle))

    @classmethod
    def over_transport(cls, world, rank, transport):
        """Rank `rank` of `world`, in this process, whose messages go
        through `transport` (a _capi.Transport, kept alive by the World)."""
        self = cls.__new__(cls)
        handle = ctypes.c_void_p()
        _capi.check(_capi.lib.ringattn_transport_world_create(
            world, rank, ctypes.byref(transport), ctypes.byref(handle)))
        self._handle = handle
        self.size = world
        self._transport = transport
        return self


class Ring(_Handle):
    """One rank's ring attention for a global problem of (batch, seqlen,
    num_heads, head_dim) with num_kv_heads key/value heads."""

    _destroy = staticmethod(_capi.lib.ringattn_ring_destroy)
    stream = None  # the caller's CUDA stream (set_stream); None: not set

    def __init__(self, world, rank, *, seqlen, num_heads, head_dim, num_kv_heads=None,
                 batch=1, layout="zigzag", ring_size=0, stripe_width=1, kv_heads_per_group=0,
                 causal=True, window_size=(-1, -1), cu_seqlens=None, key_lengths=None,
                 softmax_scale=0.0):
        if layout not in _capi.LAYOUTS:
            raise ValueError(f"ringattn: layout '{layout}' is unknown; expected one of "
                             f"{', '.join(_capi.LAYOUTS)}")
        cu_seqlens, key_lengths = _ints("cu_seqlens", cu_seqlens), _ints("key_lengths", key_lengths)
        seqlen, num_heads, head_dim, batch = (_int(n, x) for n, x in (
            ("seqlen", seqlen), ("num_heads", num_heads), ("head_dim", head_dim), ("batch", batch)))
        ring_size, stripe_width = _int("ring_size", ring_size), _int("stripe_width", stripe_width)
        kv_heads_per_group = _int("kv_heads_per_group", kv_heads_per_group)
        num_kv_heads = num_heads if num_kv_heads is None else _int("num_kv_heads", num_kv_heads)
        window_size = [_int(f"window_size[{i}]", x) for i, x in enumerate(window_size)]
        if len(window_size) != 2:
            raise ValueError(f"ringattn: window_size has {len(window_size)} values; expected "
                             "(left, right)")
        self._cu = (ctypes.c_int64 * len(cu_seqlens))(*cu_seqlens) if cu_seqlens else None
        self._keys = (ctypes.c_int64 * len(key_lengths))(*key_lengths) if key_lengths else None
        c = _capi.Config(
            layout=_capi.LAYOUTS[layout], world=world.size, ring_size=ring_size,
            stripe_width=stripe_width, kv_heads_per_group=kv_heads_per_group,
            causal=int(bool(causal)), window_left=window_size[0], window_right=window_size[1],
            cu_seqlens=self._cu, num_cu_seqlens=len(cu_seqlens) if cu_seqlens else 0,
            key_lengths=self._keys, num_key_lengths=len(key_lengths) if key_lengths else 0,
            batch=batch, seqlen=seqlen, num_heads=num_heads,
            num_kv_heads=num_kv_heads, head_dim=head_dim,
            softmax_scale=softmax_scale)
        handle = ctypes.c_void_p()
        _capi.check(_capi.lib.ringattn_ring_create(world._handle, rank, ctypes.byref(c),
                                                   ctypes.byref(handle)))
        self._handle = handle
        self._world = world  # the world outlives its rings
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, c.num_kv_heads, head_dim
        self.local_seqlen = _capi.lib.ringattn_ring_local_seqlen(handle)
        self.local_batch = _capi.lib.ringattn_ring_local_batch(handle)

    def set_stream(self, stream):
        """GPU rings: the caller's CUDA stream (an int cudaStream_t, e.g.
        torch.cuda.current_stream().cuda_stream) that forward and backward
        follow and that waits for their results. The ring keeps it (its
        `stream` attribute) until the next call."""
        _capi.check(_capi.lib.ringattn_ring_set_stream(self._handle, stream))
        self.stream = stream

    def abort(self, reason):
        """Fails the world: peers waiting on this rank get an error at once."""
        if self._handle:
            _capi.lib.ringattn_ring_abort(self._handle, str(reason).encode())

    def position_ids(self):
        """Global position of each local row (-1: a padding row), for rotary
        embeddings; with documents, packed positions."""
        ids = np.empty(self.local_seqlen, dtype=np.int64)
        _capi.check(_capi.lib.ringattn_ring_position_ids(self._handle, ids.ctypes.data,
                                                         ids.size))
        return ids

    def forward(self, q, k, v):
        """O (like q) and LSE (float32, (local_batch, num_heads, local_seqlen))."""
        tensors = [_tensor(name, x) for name, x in (("q", q), ("k", k), ("v", v))]
        out = np.empty((self.local_batch, self.local_seqlen, self.num_heads, self.head_dim),
                       dtype=q.dtype)
        lse = np.empty((self.local_batch, self.num_heads, self.local_seqlen), dtype=np.float32)
        _capi.check(_capi.lib.ringattn_forward(
            self._handle, *[ctypes.byref(t) for t, _ in tensors], out.ctypes.data, out.nbytes,
            lse.ctypes.data, lse.size))
        return out, lse

    def backward(self, dout, saved=None):
        """dQ, dK, dV (like q, k, v): after forward on this ring, or from
        saved = (q, k, v, out, lse) of a forward on any ring of the same
        problem (out and lse as forward returned them), which need not be
        kept between the passes."""
        t, _ = _tensor("dout", dout)
        shape_q = (self.local_batch, self.local_seqlen, self.num_heads, self.head_dim)
        shape_kv = (self.local_batch, self.local_seqlen, self.num_kv_heads, self.head_dim)
        dq = np.empty(shape_q, dtype=dout.dtype)
        dk = np.empty(shape_kv, dtype=dout.dtype)
        dv = np.empty(shape_kv, dtype=dout.dtype)
        grads = (dq.ctypes.data, dq.nbytes, dk.ctypes.data, dk.nbytes, dv.ctypes.data, dv.nbytes)
        if saved is None:
            _capi.check(_capi.lib.ringattn_backward(self._handle, ctypes.byref(t), *grads))
            return dq, dk, dv
        q, k, v, out, lse = saved
        lse = np.ascontiguousarray(lse, dtype=np.float32)
        tensors = [_tensor(n, x) for n, x in zip(("q", "k", "v", "out"), (q, k, v, out))]
        _capi.check(_capi.lib.ringattn_backward_from(
            self._handle, *[ctypes.byref(t) for t, _ in tensors], lse.ctypes.data, lse.size,
            ctypes.byref(t), *grads))
        return dq, dk, dv


def _tensor(name, x):
    """A ringattn_tensor viewing numpy array `x`, or a copy of it, and the
    array it views (which the caller keeps alive until the call returns)."""
    if not isinstance(x, np.ndarray):
        raise ValueError(f"ringattn: {name} is a {type(x).__name__}; expected a numpy array")
    if x.dtype not in _NUMPY_DTYPES:
        raise ValueError(f"ringattn: {name} has dtype {x.dtype}; expected float32, float64 "
                         "or float16")
    if any(stride < 0 for stride in x.strides):
        # A reversed view (x[:, ::-1]): elements before its address, which
        # the C ABI's non-negative strides cannot reach; a copy can.
        x = np.ascontiguousarray(x)
    t = _capi.tensor(name, x.ctypes.data, x.shape, x.strides, 1, x.itemsize,
                     _NUMPY_DTYPES[x.dtype])
    return t, x


def shard(x, ring):
    """This rank's rows of global (batch, seqlen, heads, head_dim) `x`, as the
    ring's layout holds them (padding rows zero). Batch rows are those of
    ring.local_batch at the rank's ring (one ring: all of them)."""
    ids = ring.position_ids()
    local = np.zeros((x.shape[0], ring.local_seqlen) + x.shape[2:], dtype=x.dtype)
    rows = ids >= 0
    local[:, rows] = x[:, ids[rows]]
    return local


def unshard(parts, rings, seqlen):
    """The global tensor from every rank's local one (the inverse of shard)."""
    first = parts[0]
    out = np.zeros((first.shape[0], seqlen) + first.shape[2:], dtype=first.dtype)
    for part, ring in zip(parts, rings):
        ids = ring.position_ids()
        rows = ids >= 0
        out[:, ids[rows]] = part[:, rows]
    return out
