"""ring-flash-attention's functions on torch tensors, as autograd Functions
over ringattn's C ABI: ring_flash_attn_func, zigzag_ring_flash_attn_func,
stripe_flash_attn_func (and balanced_flash_attn_func), with their qkvpacked
and kvpacked forms, same arguments and local shapes (batch, local_seqlen,
heads, head_dim).

`group` is a ringattn.Group (a World of W ranks as threads of this process
and this thread's rank); torch.distributed process groups (NCCL, torchrun),
CUDA tensors and the varlen forms are not supported yet and raise
ValueError, as do dropout and ALiBi (never silently ignored).
"""

import ctypes
import math

import torch

from . import Ring, _capi

_TORCH_DTYPES = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float16",
                 torch.bfloat16: "bfloat16"}


class Group:
    """This thread's rank in an in-process World."""

    def __init__(self, world, rank):
        self.world, self.rank = world, rank


def _tensor(name, x):
    if x.device.type != "cpu":
        raise ValueError(f"ringattn: {name} is on {x.device}; only CPU tensors are supported yet")
    if x.dtype not in _TORCH_DTYPES:
        raise ValueError(f"ringattn: {name} has dtype {x.dtype}; expected float32, float64, "
                         "float16 or bfloat16")
    if x.dim() != 4 or x.stride(3) != 1:
        raise ValueError(f"ringattn: {name} has shape {tuple(x.shape)} and strides "
                         f"{x.stride()}; expected (batch, rows, heads, head_dim) with contiguous "
                         "head_dim")
    span = (sum((n - 1) * s for n, s in zip(x.shape, x.stride())) + 1) if x.numel() else 0
    return _capi.Tensor(data=x.data_ptr(), bytes=span * x.element_size(),
                        dtype=_capi.DTYPES[_TORCH_DTYPES[x.dtype]], offset=0,
                        batch_stride=x.stride(0), row_stride=x.stride(1), head_stride=x.stride(2))


class _RingAttnFunc(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, layout, softmax_scale, causal, window_size, group):
        batch, rows, heads, dim = q.shape
        world = group.world.size
        ring = Ring(group.world, group.rank, layout=layout, batch=batch, seqlen=rows * world,
                    num_heads=heads, num_kv_heads=k.shape[2], head_dim=dim, causal=causal,
                    window_size=window_size, softmax_scale=softmax_scale)
        if ring.local_seqlen != rows:
            raise ValueError(f"ringattn: {rows} local rows, but the {layout} layout gives each "
                             f"of {world} ranks {ring.local_seqlen}")
        out = torch.empty_like(q, memory_format=torch.contiguous_format)
        lse = torch.empty((batch, heads, rows), dtype=torch.float32)
        tensors = [_tensor(n, x) for n, x in (("q", q), ("k", k), ("v", v))]
        _capi.check(_capi.lib.ringattn_forward(
            ring._handle, *[ctypes.byref(t) for t in tensors], out.data_ptr(),
            out.numel() * out.element_size(), lse.data_ptr(), lse.numel()))
        ctx.ring = ring
        ctx.kv_shape = k.shape
        ctx.mark_non_differentiable(lse)
        return out, lse

    @staticmethod
    def backward(ctx, dout, _):
        dout = dout.contiguous()
        dq = torch.empty_like(dout)
        dk = torch.empty(ctx.kv_shape, dtype=dout.dtype)
        dv = torch.empty(ctx.kv_shape, dtype=dout.dtype)
        t = _tensor("dout", dout)
        _capi.check(_capi.lib.ringattn_backward(
            ctx.ring._handle, ctypes.byref(t), dq.data_ptr(), dq.numel() * dq.element_size(),
            dk.data_ptr(), dk.numel() * dk.element_size(), dv.data_ptr(),
            dv.numel() * dv.element_size()))
        ctx.ring.close()
        return dq, dk, dv, None, None, None, None, None


def _attention(layout, q, k, v, dropout_p, softmax_scale, causal, window_size, alibi_slopes,
               deterministic, return_attn_probs, group):
    if dropout_p:
        raise ValueError(f"ringattn: dropout_p is {dropout_p}; ringattn has no dropout "
                         "(expected 0)")
    if alibi_slopes is not None:
        raise ValueError("ringattn: ALiBi slopes are not supported (expected None)")
    if not isinstance(group, Group):
        raise ValueError(f"ringattn: group is a {type(group).__name__}; expected a "
                         "ringattn.functions.Group (torch.distributed groups are not supported "
                         "yet)")
    scale = 0.0 if softmax_scale is None else float(softmax_scale)
    out, lse = _RingAttnFunc.apply(q, k, v, layout, scale, causal, tuple(window_size), group)
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

    return func, kvpacked, qkvpacked


(ring_flash_attn_func, ring_flash_attn_kvpacked_func,
 ring_flash_attn_qkvpacked_func) = _make("ring")
(zigzag_ring_flash_attn_func, zigzag_ring_flash_attn_kvpacked_func,
 zigzag_ring_flash_attn_qkvpacked_func) = _make("zigzag")
(stripe_flash_attn_func, stripe_flash_attn_kvpacked_func,
 stripe_flash_attn_qkvpacked_func) = _make("stripe")
(balanced_flash_attn_func, balanced_flash_attn_kvpacked_func,
 balanced_flash_attn_qkvpacked_func) = _make("balanced")
