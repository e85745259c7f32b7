"""ring-flash-attention's functions on torch tensors, as autograd Functions
over ringattn's C ABI: ring_flash_attn_func, zigzag_ring_flash_attn_func,
stripe_flash_attn_func (and balanced_flash_attn_func), with their qkvpacked
and kvpacked forms, same arguments and local shapes (batch, local_seqlen,
heads, head_dim).

The varlen forms (ring_flash_attn_varlen_func, zigzag_..., balanced_...)
take (total_local, heads, head_dim) tensors and the local cu_seqlens as
ring-flash-attention does, or `global_cu_seqlens=` for documents of any
length. llama3_flash_attn_varlen_func takes its arguments from this
module's llama3_flash_attn_prepare_cu_seqlens (any total length). `group`
is a torch.distributed process group (None: the default
group; one rank per process, e.g. under torchrun; CPU tensors need gloo:
ringattn.distributed) or a ringattn.functions.Group (a World of W ranks as
threads of this process and this thread's rank). CUDA tensors run the CUDA
backend on their GPU, one process per GPU (a torch.distributed group of any
backend: ringattn creates its own NCCL communicator once per group and
device, with the id broadcast through the group), ordered with
torch.cuda.current_stream(); non-contiguous CUDA tensors (and contiguous
views whose address is not a multiple of 16 bytes, which the kernels' loads
need) are copied to contiguous ones once; CPU tensors are read with their
strides, copied only when head_dim is strided. Dropout and ALiBi raise ValueError (never silently
ignored).
"""

import collections
import ctypes
import math
import threading

import torch

from . import Ring, _capi, _int

_TORCH_DTYPES = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float16",
                 torch.bfloat16: "bfloat16"}


class Group:
    """This thread's rank in an in-process World."""

    def __init__(self, world, rank):
        self.world, self.rank = world, rank


# The Group of each (process group, GPU index or None) used so far: a
# training step asks for it once a layer, and the rank and World lookups
# took a few microseconds each time.
_process_groups = {}  # (id(process group), index) -> (process group, Group)


def _group(group, device=None):
    """The Group of `group`: a ringattn Group as it is; a torch.distributed
    process group (None: the default one) as this process's rank in it,
    over the group's transport, or for a CUDA `device` over NCCL."""
    if isinstance(group, Group):
        want = device.index if device is not None and device.type == "cuda" else None
        if group.world.device != want:
            where = "the CPU" if group.world.device is None else f"cuda:{group.world.device}"
            raise ValueError(f"ringattn: the tensors are on {device}, the group's world on "
                             f"{where}; CUDA tensors need a torch.distributed process group "
                             "(one process per GPU)")
        return group
    import torch.distributed as dist
    if group is None or isinstance(group, dist.ProcessGroup):
        if not (dist.is_available() and dist.is_initialized()):
            raise ValueError("ringattn: group is None and torch.distributed is not initialized; "
                             "expected a ringattn.functions.Group, or init_process_group first")
        from . import distributed
        cuda = device if device is not None and device.type == "cuda" else None
        resolved = dist.group.WORLD if group is None else group
        key = (id(resolved), None if cuda is None else cuda.index)
        cached = _process_groups.get(key)
        if cached is not None and cached[0] is resolved and not cached[1].world.failed:
            return cached[1]
        g = Group(distributed.process_group_world(resolved, device=cuda), dist.get_rank(resolved))
        _process_groups[key] = (resolved, g)
        return g
    raise ValueError(f"ringattn: group is a {type(group).__name__}; expected a "
                     "torch.distributed process group (None: the default one) or a "
                     "ringattn.functions.Group")


def _tensor_integers(name, x):
    """The values of tensor x, which must have an integer dtype."""
    if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
        raise ValueError(f"ringattn: {name} has dtype {x.dtype}; expected integers "
                         "(torch.int32, as ring-flash-attention takes them)")
    return x.reshape(-1).tolist()


def _integer(name, x):
    """x as a Python int: ringattn._int, and 0-d integer tensors."""
    if isinstance(x, torch.Tensor) and x.dim() == 0:
        return _tensor_integers(name, x)[0]
    return _int(name, x)


def _integers(name, values):
    """values (a 1-d integer tensor, as ring-flash-attention takes
    cu_seqlens, or what ringattn._ints takes) as a list of Python ints."""
    if isinstance(values, torch.Tensor):
        return _tensor_integers(name, values)
    return [_integer(f"{name}[{i}]", x) for i, x in enumerate(values)]


_raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None)


def _follow_current_stream(ring, device):
    """The ring's passes after torch's current stream on `device` (a CUDA
    torch.device): its raw handle (a Stream object took 6 us to make on
    an H200's host), handed to the ring only when it changed."""
    if _raw_stream is not None and device.index is not None:
        stream = _raw_stream(device.index)
    else:
        stream = torch.cuda.current_stream(device).cuda_stream
    if ring.stream != stream:
        ring.set_stream(stream)


def _readable(x):
    """x as its backend reads it, else a copy that is: the CUDA backend reads
    dense tensors at an address that is a multiple of 16 bytes (the TMA's
    and the vector loads' alignment; a contiguous view at an odd offset into
    a larger tensor is not), the CPU backend any strides but a strided
    head_dim."""
    if not x.is_cuda:
        return x if x.stride(-1) == 1 else x.contiguous()
    x = x.contiguous()
    return x if x.data_ptr() % 16 == 0 else x.clone()


def _check_devices(tensors):
    """Every named tensor on the first one's device (dtypes: the C ABI)."""
    (first_name, first), *rest = tensors
    for name, x in rest:
        if x.device != first.device:
            raise ValueError(f"ringattn: {name} is on {x.device} and {first_name} on "
                             f"{first.device}; expected every tensor on one device")


# A tensor's ringattn_tensor fields but its address, by (dtype, shape,
# strides): a training step passes tensors of a few layouts many times, and
# working them out took more host time than the rest of the description.
_DESCRIPTIONS = {}
_MAX_DESCRIPTIONS = 256


def _tensor(name, x):
    key = (x.dtype, tuple(x.shape), x.stride())
    fields = _DESCRIPTIONS.get(key)
    if fields is None:
        if x.dtype not in _TORCH_DTYPES:
            raise ValueError(f"ringattn: {name} has dtype {x.dtype}; expected float32, float64, "
                             "float16 or bfloat16")
        t = _capi.tensor(name, 0, x.shape, x.stride(), x.element_size(), x.element_size(),
                         _TORCH_DTYPES[x.dtype])
        fields = (t.bytes, t.dtype, t.batch_stride, t.row_stride, t.head_stride)
        if len(_DESCRIPTIONS) >= _MAX_DESCRIPTIONS:
            _DESCRIPTIONS.clear()
        _DESCRIPTIONS[key] = fields
    size, dtype, batch_stride, row_stride, head_stride = fields
    return _capi.Tensor(x.data_ptr(), size, dtype, 0, batch_stride, row_stride, head_stride)


# Rings not in use, kept with their buffers (GPU memory for CUDA rings) for
# the next call with the same problem, as torch's caching allocator keeps
# its blocks: a ring serves one pass at a time (between a forward and its
# backward only the tensors saved for it stay: q, k, v, O and LSE), so a
# training step's layers take the same ring in turn, and the next step
# takes it again without allocating. Only the last _KEPT_PROBLEMS problems
# used keep rings (documents that change every batch would otherwise keep
# a ring set per batch); release_cached_rings() frees them all.
_KEPT_PROBLEMS = 4
_free_rings = collections.OrderedDict()  # (world, rank, problem, (dtype, device)) -> [Ring]
_rings_lock = threading.Lock()


class _Lease:
    """A ring taken for one pass; back to the free rings when released (or
    garbage-collected), closed instead when its world failed."""

    def __init__(self, group, problem, tensors):
        self.key = (group.world, group.rank, problem, tensors)
        with _rings_lock:
            free = _free_rings.setdefault(self.key, [])
            _free_rings.move_to_end(self.key)  # the most recent problem
            self.ring = free.pop() if free else None
            evicted = _evict_locked()
        for ring in evicted:
            ring.close()
        if self.ring is None:
            self.ring = Ring(group.world, group.rank, **dict(problem))

    def release(self):
        ring, self.ring = self.ring, None
        if ring is None:
            return
        if ring._world.failed:  # its world is done: drop it and every ring kept for it
            with _rings_lock:
                stale = [k for k in _free_rings if k[0] is ring._world]
                dropped = [r for k in stale for r in _free_rings.pop(k)]
            for r in dropped + [ring]:
                r.close()
            return
        with _rings_lock:
            if self.key in _free_rings:
                _free_rings[self.key].append(ring)
                ring = None
        if ring is not None:  # its problem is no longer kept
            ring.close()

    def __del__(self):
        try:
            self.release()
        except Exception:  # interpreter shutdown: the module's globals may be gone
            pass


def _evict_locked():
    """The free rings of problems beyond the last _KEPT_PROBLEMS, removed."""
    evicted = []
    while len(_free_rings) > _KEPT_PROBLEMS:
        _, rings = _free_rings.popitem(last=False)
        evicted.extend(rings)
    return evicted


def release_cached_rings():
    """Closes every ring kept between calls (frees their GPU memory)."""
    with _rings_lock:
        rings = [r for free in _free_rings.values() for r in free]
        _free_rings.clear()
    for ring in rings:
        ring.close()


class _RingAttnFunc(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, layout, softmax_scale, causal, window_size, group, cu_seqlens,
                kv_heads_per_group):
        batch, rows, heads, dim = q.shape
        cuda = q.device.type == "cuda"
        world = group.world.size
        seqlen = cu_seqlens[-1] if cu_seqlens else rows * world
        problem = (
            ("layout", layout), ("batch", batch), ("seqlen", seqlen), ("num_heads", heads),
            ("num_kv_heads", k.shape[2]), ("head_dim", dim), ("causal", bool(causal)),
            ("window_size", tuple(window_size)), ("softmax_scale", softmax_scale),
            ("cu_seqlens", tuple(cu_seqlens) if cu_seqlens else None),
            ("kv_heads_per_group", kv_heads_per_group))
        lease = _Lease(group, problem, (q.dtype, q.device))
        ring = lease.ring
        try:
            _check_devices((("q", q), ("k", k), ("v", v)))
            real = getattr(ring, "_real_rows", None)  # the rank's tokens, once per ring
            if real is None:
                real = ring._real_rows = int((ring.position_ids() >= 0).sum())
            if rows not in (ring.local_seqlen, real):
                raise ValueError(f"ringattn: {rows} local rows, but the {layout} layout gives "
                                 f"this rank {real} tokens (in {ring.local_seqlen} rows)")
            # Uneven shards (documents of any length): the rank's tokens are
            # its first rows; the rest is padding that nothing reads.
            pad = ring.local_seqlen - rows
            padded = [torch.nn.functional.pad(x, (0, 0, 0, 0, 0, pad)) if pad else x
                      for x in (q, k, v)]
            padded = [_readable(x) for x in padded]
            if cuda:
                _follow_current_stream(ring, q.device)
            out = torch.empty((batch, ring.local_seqlen, heads, dim), dtype=q.dtype,
                              device=q.device)
            lse = torch.empty((batch, heads, ring.local_seqlen), dtype=torch.float32,
                              device=q.device)
            tensors = [_tensor(n, x) for n, x in zip(("q", "k", "v"), padded)]
            _capi.check(_capi.lib.ringattn_forward(
                ring._handle, *[ctypes.byref(t) for t in tensors], out.data_ptr(),
                out.numel() * out.element_size(), lse.data_ptr(), lse.numel()))
        except Exception as e:
            ring.abort(e)  # the peers stop waiting for this rank
            group.world.failed = True  # a process group's next call makes a new World
            raise
        finally:
            lease.release()  # the backward takes a ring of the problem again
        if any(ctx.needs_input_grad[:3]):
            # The backward runs from these (ringattn_backward_from): saved
            # tensors, so that changing one in place since the forward raises.
            ctx.save_for_backward(*padded, out, lse)
            ctx.problem = (group, problem, (q.dtype, q.device))
        ctx.kv_shape = k.shape
        ctx.pad = pad
        # LSE has no gradient: the backward gets None for it, not a tensor
        # of zeros made (and filled on the GPU) every call.
        ctx.set_materialize_grads(False)
        if pad:
            out, lse = out[:, :rows], lse[:, :, :rows].contiguous()
        ctx.mark_non_differentiable(lse)
        return out, lse

    @staticmethod
    def backward(ctx, dout, _):
        if dout is None:  # no gradient reached O (grads are not materialized)
            return (None,) * 10
        q, k, v, out, lse = ctx.saved_tensors
        if ctx.pad:
            dout = torch.nn.functional.pad(dout, (0, 0, 0, 0, 0, ctx.pad))
        dout = _readable(dout.contiguous())  # dense: dQ is made like it
        batch, rows, kv_heads, dim = ctx.kv_shape
        dq = torch.empty_like(dout)
        dk = torch.empty((batch, rows + ctx.pad, kv_heads, dim), dtype=dout.dtype,
                         device=dout.device)
        dv = torch.empty_like(dk)
        lease = _Lease(*ctx.problem)
        ring = lease.ring
        tensors = [_tensor(n, x) for n, x in zip(("q", "k", "v", "out"), (q, k, v, out))]
        t = _tensor("dout", dout)
        try:
            _check_devices((("q", q), ("dout", dout)))
            if dout.is_cuda:
                _follow_current_stream(ring, dout.device)
            _capi.check(_capi.lib.ringattn_backward_from(
                ring._handle, *[ctypes.byref(x) for x in tensors], lse.data_ptr(), lse.numel(),
                ctypes.byref(t), dq.data_ptr(), dq.numel() * dq.element_size(), dk.data_ptr(),
                dk.numel() * dk.element_size(), dv.data_ptr(), dv.numel() * dv.element_size()))
        except Exception:
            ring._world.failed = True
            raise
        finally:
            lease.release()
        if ctx.pad:
            dq, dk, dv = dq[:, :rows], dk[:, :rows], dv[:, :rows]
        return (dq, dk, dv, None, None, None, None, None, None, None)


def _attention(layout, q, k, v, dropout_p, softmax_scale, causal, window_size, alibi_slopes,
               deterministic, return_attn_probs, group, cu_seqlens=None, kv_heads_per_group=0):
    if dropout_p:
        raise ValueError(f"ringattn: dropout_p is {dropout_p}; ringattn has no dropout "
                         "(expected 0)")
    if alibi_slopes is not None:
        raise ValueError("ringattn: ALiBi slopes are not supported (expected None)")
    for name, x in (("q", q), ("k", k), ("v", v)):
        if x.dim() != 4:
            raise ValueError(f"ringattn: {name} has shape {tuple(x.shape)}; expected (batch, "
                             "local_seqlen, heads, head_dim) (varlen: the _varlen_ functions)")
    group = _group(group, q.device)
    scale = 0.0 if softmax_scale is None else float(softmax_scale)
    out, lse = _RingAttnFunc.apply(q, k, v, layout, scale, causal, tuple(window_size), group,
                                   cu_seqlens, kv_heads_per_group)
    return (out, lse, None) if return_attn_probs else out


def _varlen(layout, q, k, v, cu_seqlens, max_seqlen, dropout_p, softmax_scale, causal,
            window_size, alibi_slopes, deterministic, return_attn_probs, group,
            global_cu_seqlens):
    """The varlen forms: q (total_local, heads, head_dim) and the LOCAL
    cu_seqlens, as ring-flash-attention takes them (each document split
    evenly over the ranks, so the global boundaries are the local ones x W);
    or, for documents of any length, `global_cu_seqlens` (the local rows are
    then the layout's, ringattn.Ring.position_ids)."""
    group = _group(group, q.device)
    if global_cu_seqlens is None:
        world = group.world.size
        global_cu_seqlens = [x * world for x in _integers("cu_seqlens", cu_seqlens)]
    return _packed_attention(layout, q, k, v, global_cu_seqlens, dropout_p, softmax_scale,
                             causal, window_size, alibi_slopes, deterministic,
                             return_attn_probs, group)


def _packed_attention(layout, q, k, v, global_cu_seqlens, dropout_p, softmax_scale, causal,
                      window_size, alibi_slopes, deterministic, return_attn_probs, group,
                      kv_heads_per_group=0):
    """Attention on this rank's (total_local, heads, head_dim) rows of
    packed documents with global boundaries `global_cu_seqlens`."""
    if q.dim() != 3:
        raise ValueError(f"ringattn: varlen q has shape {tuple(q.shape)}; expected "
                         "(total_tokens, heads, head_dim)")
    result = _attention(layout, q.unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0), dropout_p,
                        softmax_scale, causal, window_size, alibi_slopes, deterministic, True,
                        group, tuple(_integers("global_cu_seqlens", global_cu_seqlens)),
                        kv_heads_per_group)
    out, lse = result[0].squeeze(0), result[1].squeeze(0)  # lse (heads, total_local)
    return (out, lse, None) if return_attn_probs else out


def _make(layout):
    def func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1),
             alibi_slopes=None, deterministic=False, return_attn_probs=False, group=None):
        return _attention(layout, q, k, v, dropout_p, softmax_scale, causal, window_size,
                          alibi_slopes, deterministic, return_attn_probs, group)

    def kvpacked(q, kv, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1),
                 alibi_slopes=None, deterministic=False, return_attn_probs=False, group=None):
        return func(q, kv[:, :, 0], kv[:, :, 1], dropout_p, softmax_scale, causal, window_size,
                    alibi_slopes, deterministic, return_attn_probs, group)

    def qkvpacked(qkv, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1),
                  alibi_slopes=None, deterministic=False, return_attn_probs=False, group=None):
        return func(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], dropout_p, softmax_scale, causal,
                    window_size, alibi_slopes, deterministic, return_attn_probs, group)

    def varlen(q, k, v, cu_seqlens, max_seqlen, dropout_p=0.0, softmax_scale=None,
               causal=False, window_size=(-1, -1), alibi_slopes=None, deterministic=False,
               return_attn_probs=False, group=None, global_cu_seqlens=None):
        return _varlen(layout, q, k, v, cu_seqlens, max_seqlen, dropout_p, softmax_scale,
                       causal, window_size, alibi_slopes, deterministic, return_attn_probs,
                       group, global_cu_seqlens)

    def varlen_kvpacked(q, kv, cu_seqlens, max_seqlen, dropout_p=0.0, softmax_scale=None,
                        causal=False, window_size=(-1, -1), alibi_slopes=None,
                        deterministic=False, return_attn_probs=False, group=None,
                        global_cu_seqlens=None):
        return varlen(q, kv[:, 0], kv[:, 1], cu_seqlens, max_seqlen, dropout_p, softmax_scale,
                      causal, window_size, alibi_slopes, deterministic, return_attn_probs,
                      group, global_cu_seqlens)

    def varlen_qkvpacked(qkv, cu_seqlens, max_seqlen, dropout_p=0.0, softmax_scale=None,
                         causal=False, window_size=(-1, -1), alibi_slopes=None,
                         deterministic=False, return_attn_probs=False, group=None,
                         global_cu_seqlens=None):
        return varlen(qkv[:, 0], qkv[:, 1], qkv[:, 2], cu_seqlens, max_seqlen, dropout_p,
                      softmax_scale, causal, window_size, alibi_slopes, deterministic,
                      return_attn_probs, group, global_cu_seqlens)

    return func, kvpacked, qkvpacked, varlen, varlen_kvpacked, varlen_qkvpacked


(ring_flash_attn_func, ring_flash_attn_kvpacked_func, ring_flash_attn_qkvpacked_func,
 ring_flash_attn_varlen_func, ring_flash_attn_varlen_kvpacked_func,
 ring_flash_attn_varlen_qkvpacked_func) = _make("ring")
(zigzag_ring_flash_attn_func, zigzag_ring_flash_attn_kvpacked_func,
 zigzag_ring_flash_attn_qkvpacked_func, zigzag_ring_flash_attn_varlen_func,
 zigzag_ring_flash_attn_varlen_kvpacked_func,
 zigzag_ring_flash_attn_varlen_qkvpacked_func) = _make("zigzag")
# (ring-flash-attention has no varlen stripe; ringattn stripes each document)
(stripe_flash_attn_func, stripe_flash_attn_kvpacked_func,
 stripe_flash_attn_qkvpacked_func, stripe_flash_attn_varlen_func,
 stripe_flash_attn_varlen_kvpacked_func,
 stripe_flash_attn_varlen_qkvpacked_func) = _make("stripe")
(balanced_flash_attn_func, balanced_flash_attn_kvpacked_func,
 balanced_flash_attn_qkvpacked_func, balanced_flash_attn_varlen_func,
 balanced_flash_attn_varlen_kvpacked_func,
 balanced_flash_attn_varlen_qkvpacked_func) = _make("balanced")


class Llama3KSlice:
    """local_k_slice as llama3_flash_attn_prepare_cu_seqlens returns it: the
    keys the rank's queries need, [start, stop) of the packed sequence, and
    the global document boundaries ringattn's llama3 layout is built from."""

    def __init__(self, start, stop, global_cu_seqlens):
        self.start, self.stop, self.step = start, stop, None
        self.global_cu_seqlens = tuple(global_cu_seqlens)

    def __repr__(self):
        return f"Llama3KSlice({self.start}, {self.stop})"


def llama3_flash_attn_prepare_cu_seqlens(cu_seqlens, causal, rank, world_size):
    """ring-flash-attention's helper: for this rank's contiguous piece of the
    packed sequence (ringattn's llama3 pieces: [total * rank / W,
    total * (rank + 1) / W), so any total works), the local cu_seqlens of
    its queries and of the keys they need, their longest documents, and
    local_k_slice (a Llama3KSlice)."""
    cu = _integers("cu_seqlens", cu_seqlens)
    if not (isinstance(world_size, int) and world_size >= 1 and 0 <= rank < world_size):
        raise ValueError(f"ringattn: rank {rank} of world_size {world_size}; expected "
                         "0 <= rank < world_size")
    if len(cu) < 2 or cu[0] != 0 or any(b < a for a, b in zip(cu, cu[1:])):
        raise ValueError(f"ringattn: cu_seqlens {cu[:8]}{'...' if len(cu) > 8 else ''}; "
                         "expected at least two entries, starting at 0, non-decreasing")
    total = cu[-1]
    begin, end = total * rank // world_size, total * (rank + 1) // world_size
    k_start = max(c for c in cu if c <= begin)
    k_stop = end if causal else min(c for c in cu if c >= end)

    def local(lo, hi):
        return [0] + [c - lo for c in cu if lo < c < hi] + [hi - lo]

    q_cu, k_cu = local(begin, end), local(k_start, k_stop)
    as_tensor = (lambda x: torch.tensor(x, dtype=torch.int32, device=cu_seqlens.device)
                 if isinstance(cu_seqlens, torch.Tensor) else x)
    longest = (lambda x: max((b - a for a, b in zip(x, x[1:])), default=0))
    return (as_tensor(q_cu), as_tensor(k_cu), longest(q_cu), longest(k_cu),
            Llama3KSlice(k_start, k_stop, cu))


def llama3_flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                                  max_seqlen_k, heads_k_stride, local_k_slice, dropout_p=0.0,
                                  softmax_scale=None, causal=False, window_size=(-1, -1),
                                  alibi_slopes=None, deterministic=False,
                                  return_attn_probs=False, group=None):
    """ring-flash-attention's llama3 function: q, k, v are this rank's
    (total_local, heads, head_dim) piece of the packed sequence; K and V are
    all-gathered heads_k_stride kv heads at a time (ringattn's llama3 layout,
    kv_heads_per_group = heads_k_stride). local_k_slice must come from this
    module's llama3_flash_attn_prepare_cu_seqlens (it carries the global
    document boundaries)."""
    if not isinstance(local_k_slice, Llama3KSlice):
        raise ValueError(f"ringattn: local_k_slice is a {type(local_k_slice).__name__}; "
                         "expected the Llama3KSlice of ringattn.functions."
                         "llama3_flash_attn_prepare_cu_seqlens (it carries the global "
                         "cu_seqlens)")
    return _packed_attention("llama3", q, k, v, local_k_slice.global_cu_seqlens, dropout_p,
                             softmax_scale, causal, window_size, alibi_slopes, deterministic,
                             return_attn_probs, group, _integer("heads_k_stride", heads_k_stride))


def llama3_flash_attn_varlen_kvpacked_func(q, kv, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                                           max_seqlen_k, heads_k_stride, local_k_slice,
                                           dropout_p=0.0, softmax_scale=None, causal=False,
                                           window_size=(-1, -1), alibi_slopes=None,
                                           deterministic=False, return_attn_probs=False,
                                           group=None):
    """llama3_flash_attn_varlen_func with kv packed as (total, 2, heads, head_dim)."""
    return llama3_flash_attn_varlen_func(
        q, kv[:, 0], kv[:, 1], cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
        heads_k_stride, local_k_slice, dropout_p, softmax_scale, causal, window_size,
        alibi_slopes, deterministic, return_attn_probs, group)


def llama3_flash_attn_varlen_qkvpacked_func(qkv, cu_seqlens, max_seqlen, heads_k_stride,
                                            local_k_slice, dropout_p=0.0, softmax_scale=None,
                                            causal=False, window_size=(-1, -1),
                                            alibi_slopes=None, deterministic=False,
                                            return_attn_probs=False, group=None):
    """llama3_flash_attn_varlen_func with q, k, v packed as (total, 3, heads, head_dim);
    cu_seqlens and max_seqlen serve queries and keys alike."""
    return llama3_flash_attn_varlen_func(
        qkv[:, 0], qkv[:, 1], qkv[:, 2], cu_seqlens, cu_seqlens, max_seqlen, max_seqlen,
        heads_k_stride, local_k_slice, dropout_p, softmax_scale, causal, window_size,
        alibi_slopes, deterministic, return_attn_probs, group)

def position_ids(layout, seqlen, group=None, cu_seqlens=None, stripe_width=1,
                 kv_heads_per_group=0):
    """The global positions of this rank's tokens under `layout` (for rotary
    embeddings), in the rank's local order: the rows of the local shards
    this module's functions take (LongTensor, padding rows left out)."""
    g = _group(group)
    ring = Ring(g.world, g.rank, layout=layout, seqlen=_integer("seqlen", seqlen), num_heads=1,
                head_dim=1,
                cu_seqlens=_integers("cu_seqlens", cu_seqlens) if cu_seqlens is not None else None,
                stripe_width=stripe_width, kv_heads_per_group=kv_heads_per_group)
    try:
        ids = torch.from_numpy(ring.position_ids())
    finally:
        ring.close()
    return ids[ids >= 0]


def shard(x, layout, group=None, cu_seqlens=None, stripe_width=1, dim=1):
    """This rank's shard of the global tensor `x` (its tokens along `dim`,
    e.g. (batch, seqlen, heads, head_dim) with dim=1, or a varlen
    (total, heads, head_dim) with dim=0), as the layout's functions take it."""
    ids = position_ids(layout, x.shape[dim], group, cu_seqlens, stripe_width)
    return x.index_select(dim, ids.to(x.device))


def unshard(local, layout, seqlen, group=None, cu_seqlens=None, stripe_width=1, dim=1):
    """The global tensor from every rank's shard (the inverse of shard).
    With a torch.distributed process group (None: the default one) every
    rank passes its own shard and gets the whole tensor (an all_gather);
    with a ringattn.functions.Group, `local` is the list of every rank's
    shard, in rank order."""
    if isinstance(group, Group):
        if not isinstance(local, (list, tuple)) or len(local) != group.world.size:
            raise ValueError(f"ringattn: with an in-process Group, local must be the list of "
                             f"all {group.world.size} ranks' shards")
        parts = list(local)
        ids = [position_ids(layout, seqlen, Group(group.world, r), cu_seqlens, stripe_width)
               for r in range(group.world.size)]
    else:
        import torch.distributed as dist
        g = _group(group)  # validates, and the World's rank
        pg = dist.group.WORLD if group is None else group
        mine = position_ids(layout, seqlen, g, cu_seqlens, stripe_width)
        if local.shape[dim] != mine.numel():
            raise ValueError(f"ringattn: local has {local.shape[dim]} rows along dim {dim}; "
                             f"the {layout} layout gives this rank {mine.numel()}")
        # The longest shard (all_gather takes one size), on the shard's device
        # (an NCCL group moves CUDA tensors only).
        rows = torch.tensor([mine.numel()], device=local.device)
        dist.all_reduce(rows, op=dist.ReduceOp.MAX, group=pg)
        rows = int(rows)
        shape = list(local.shape)
        shape[dim] = rows
        padded = torch.zeros(shape, dtype=local.dtype, device=local.device)
        padded.narrow(dim, 0, mine.numel()).copy_(local)
        padded_ids = torch.full((rows,), -1, dtype=torch.int64, device=local.device)
        padded_ids[:mine.numel()] = mine.to(local.device)
        parts = [torch.empty_like(padded) for _ in range(g.world.size)]
        all_ids = [torch.empty_like(padded_ids) for _ in range(g.world.size)]
        dist.all_gather(parts, padded, group=pg)
        dist.all_gather(all_ids, padded_ids, group=pg)
        ids = [i[i >= 0] for i in all_ids]
        parts = [p.narrow(dim, 0, i.numel()) for p, i in zip(parts, ids)]
    shape = list(parts[0].shape)
    shape[dim] = seqlen
    out = torch.zeros(shape, dtype=parts[0].dtype, device=parts[0].device)
    for part, i in zip(parts, ids):
        out.index_copy_(dim, i.to(out.device), part)
    return out
