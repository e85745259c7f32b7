"""ring-flash-attention's functions from ringattn on torch (CPU): W ranks as
threads, each calling the function on its local shard with autograd;
outputs and gradients against torch's own float64 attention (autograd), in
float32 (<= 1e-5) and bfloat16 (no worse than torch's bf16 SDPA error x 1.5 + 1e-3);
unsupported arguments raise ValueError.
Usage: RINGATTN_LIB=... PYTHONPATH=python python3 torch_test.py"""

import sys

import torch

import ringattn
from test_util import allowed_pairs, expect_error, run_ranks
from ringattn import functions as F


def reference(q, k, v, causal, window, cu_seqlens=None):
    s, hq, hk = q.shape[1], q.shape[2], k.shape[2]
    k = k.repeat_interleave(hq // hk, dim=2)
    v = v.repeat_interleave(hq // hk, dim=2)
    allowed = torch.from_numpy(allowed_pairs(s, causal, window, cu_seqlens))
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1] ** 0.5
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.einsum("bhqk,bkhd->bqhd", torch.softmax(scores, dim=-1), v)


def run(func, name, world, seqlen, heads, kv_heads, dim, dtype, causal, window, packing=None):
    torch.manual_seed(0)
    q, k, v, dout = (torch.randn(1, seqlen, h, dim, dtype=torch.float64)
                     for h in (heads, kv_heads, kv_heads, heads))
    w = ringattn.World(world, timeout_s=60)
    layout = name.split("_")[0]
    ids = [torch.from_numpy(ringattn.Ring(w, r, layout=layout, seqlen=seqlen, num_heads=heads,
                                          num_kv_heads=kv_heads, head_dim=dim).position_ids())
           for r in range(world)]
    outs, grads = [None] * world, [None] * world

    def rank(r):
        local = [x[:, ids[r]].to(dtype).requires_grad_() for x in (q, k, v)]
        group = F.Group(w, r)
        kwargs = dict(causal=causal, window_size=window, group=group)
        if packing == "qkv":
            qkv = torch.stack(local, dim=2).detach().requires_grad_()
            out = getattr(F, f"{name}_qkvpacked_func")(qkv, **kwargs)
            out.backward(dout[:, ids[r]].to(dtype))
            grads[r] = qkv.grad.unbind(2)
        elif packing == "kv":
            kv = torch.stack(local[1:], dim=2).detach().requires_grad_()
            out = getattr(F, f"{name}_kvpacked_func")(local[0], kv, **kwargs)
            out.backward(dout[:, ids[r]].to(dtype))
            grads[r] = (local[0].grad,) + tuple(kv.grad.unbind(2))
        else:
            out, lse, _ = func(*local, return_attn_probs=True, **kwargs)
            assert lse.shape == (1, heads, ids[r].numel())
            out.backward(dout[:, ids[r]].to(dtype))
            grads[r] = tuple(x.grad for x in local)
        outs[r] = out.detach()

    errors = run_ranks(world, rank)
    assert not any(errors), errors

    def gather(parts, like):
        g = torch.zeros_like(like)
        for r in range(world):
            g[:, ids[r]] = parts[r].to(like.dtype)
        return g

    ring = [gather(outs, q)] + [gather([gr[i] for gr in grads], x) for i, x in enumerate((q, k, v))]
    qr, kr, vr = (x.clone().requires_grad_() for x in (q, k, v))
    out = reference(qr, kr, vr, causal, window)
    out.backward(dout)
    exact = [out.detach(), qr.grad, kr.grad, vr.grad]
    rel = [float((a - b).abs().max() / b.abs().max()) for a, b in zip(ring, exact)]
    if dtype == torch.float32:
        bound = 1e-5
    else:  # torch's own bf16 attention error on the same inputs
        ql, kl, vl = (x.to(dtype).clone().requires_grad_() for x in (q, k, v))
        o16 = reference(ql, kl, vl, causal, window)
        o16.backward(dout.to(dtype))
        sdpa = [o16.detach(), ql.grad, kl.grad, vl.grad]
        bound = max(float((a.double() - b).abs().max() / b.abs().max())
                    for a, b in zip(sdpa, exact)) * 1.5 + 1e-3
    label = f"{name} {packing or ''} W={world} {dtype} causal={causal} window={window}"
    print(f"{label}: max rel out {rel[0]:.1e} dq {rel[1]:.1e} dk {rel[2]:.1e} dv {rel[3]:.1e}"
          f" (bound {bound:.1e})")
    assert max(rel) <= bound, label
    w.close()


def run_varlen(name, world, cu, heads, kv_heads, dim, local_cu=True):
    """A varlen function on (total_local, heads, dim) shards: with the local
    cu_seqlens (documents split evenly) or global_cu_seqlens (any lengths)."""
    torch.manual_seed(1)
    seqlen = cu[-1]
    q, k, v, dout = (torch.randn(1, seqlen, h, dim, dtype=torch.float64)
                     for h in (heads, kv_heads, kv_heads, heads))
    w = ringattn.World(world, timeout_s=60)
    layout = name.split("_")[0]
    ids = [torch.from_numpy(ringattn.Ring(w, r, layout=layout, seqlen=seqlen, num_heads=heads,
                                          num_kv_heads=kv_heads, head_dim=dim,
                                          cu_seqlens=cu).position_ids())
           for r in range(world)]
    func = getattr(F, f"{name}_varlen_func")
    results = [None] * world

    def rank(r):
        real = ids[r][ids[r] >= 0]
        local = [x[0, real].float().requires_grad_() for x in (q, k, v)]
        extra = ({} if local_cu else {"global_cu_seqlens": cu})
        out, lse, _ = func(*local, [c // world for c in cu], 0, causal=True,
                           return_attn_probs=True, group=F.Group(w, r), **extra)
        assert lse.shape == (heads, len(real)), lse.shape
        out.backward(dout[0, real].float())
        results[r] = (real, out.detach(), [x.grad for x in local])

    errors = run_ranks(world, rank)
    assert not any(errors), errors
    got = [torch.zeros_like(x[0]) for x in (q, q, k, v)]
    for real, out, grads in results:
        for g, part in zip(got, [out] + grads):
            g[real] = part.double()
    qr, kr, vr = (x.clone().requires_grad_() for x in (q, k, v))
    out = reference(qr, kr, vr, True, (-1, -1), cu)
    out.backward(dout)
    exact = [out.detach()[0], qr.grad[0], kr.grad[0], vr.grad[0]]
    rel = [float((a - b).abs().max() / b.abs().max()) for a, b in zip(got, exact)]
    label = f"{name}_varlen W={world} docs={cu} {'local' if local_cu else 'global'} cu_seqlens"
    print(f"{label}: max rel out {rel[0]:.1e} dq {rel[1]:.1e} dk {rel[2]:.1e} dv {rel[3]:.1e}")
    assert max(rel) <= 1e-5, label
    w.close()


def failing_rank_fails_the_world_at_once():
    """Rank 1 gives a float64 k: it raises ValueError, and rank 0, waiting
    for it, gets an error at once rather than after the 60 s timeout."""
    import time
    w = ringattn.World(2, timeout_s=60)
    x = torch.zeros(1, 16, 1, 8)

    def rank(r):
        F.zigzag_ring_flash_attn_func(x, x if r == 0 else x.double(), x, causal=True,
                                      group=F.Group(w, r))

    start = time.time()
    errors = run_ranks(2, rank)
    elapsed = time.time() - start
    print(f"rank 1: {errors[1]!r}; rank 0 after {elapsed:.2f} s: {errors[0]!r}")
    assert isinstance(errors[1], ValueError) and "k is float64" in str(errors[1])
    assert isinstance(errors[0], RuntimeError) and "rank 1 aborted: k is float64" in str(errors[0])
    assert elapsed < 10, elapsed
    w.close()


def run_llama3(world, cu, heads, kv_heads, dim, stride, causal):
    """llama3_flash_attn_varlen_func on each rank's contiguous piece, with
    the arguments of llama3_flash_attn_prepare_cu_seqlens."""
    torch.manual_seed(2)
    seqlen = cu[-1]
    q, k, v, dout = (torch.randn(1, seqlen, h, dim, dtype=torch.float64)
                     for h in (heads, kv_heads, kv_heads, heads))
    w = ringattn.World(world, timeout_s=60)
    results = [None] * world

    def rank(r):
        cu_q, cu_k, max_q, max_k, k_slice = F.llama3_flash_attn_prepare_cu_seqlens(
            torch.tensor(cu, dtype=torch.int32), causal, r, world)
        begin, end = seqlen * r // world, seqlen * (r + 1) // world
        assert int(cu_q[-1]) == end - begin and k_slice.stop - k_slice.start == int(cu_k[-1])
        local = [x[0, begin:end].float().requires_grad_() for x in (q, k, v)]
        out, lse, _ = F.llama3_flash_attn_varlen_func(
            *local, cu_q, cu_k, max_q, max_k, stride, k_slice, causal=causal,
            return_attn_probs=True, group=F.Group(w, r))
        assert lse.shape == (heads, end - begin), lse.shape
        out.backward(dout[0, begin:end].float())
        results[r] = [out.detach()] + [x.grad for x in local]

    errors = run_ranks(world, rank)
    assert not any(errors), errors
    got = [torch.cat([results[r][i] for r in range(world)]).double() for i in range(4)]
    qr, kr, vr = (x.clone().requires_grad_() for x in (q, k, v))
    out = reference(qr, kr, vr, causal, (-1, -1), cu)
    out.backward(dout)
    exact = [out.detach()[0], qr.grad[0], kr.grad[0], vr.grad[0]]
    rel = [float((a - b).abs().max() / b.abs().max()) for a, b in zip(got, exact)]
    print(f"llama3_flash_attn_varlen W={world} docs={cu} heads_k_stride={stride} "
          f"causal={causal}: max rel out {rel[0]:.1e} dq {rel[1]:.1e} dk {rel[2]:.1e} "
          f"dv {rel[3]:.1e}")
    assert max(rel) <= 1e-5
    expect_error(lambda: F.llama3_flash_attn_varlen_func(
        q[0], k[0], v[0], None, None, 0, 0, 1, slice(0, 4), group=F.Group(w, 0)),
        "expected the Llama3KSlice")
    # The packed forms give the same output.
    def packed(r):
        cu_q, cu_k, max_q, max_k, k_slice = F.llama3_flash_attn_prepare_cu_seqlens(
            cu, causal, r, world)
        begin, end = seqlen * r // world, seqlen * (r + 1) // world
        local = [x[0, begin:end].float() for x in (q, k, v)]
        out_kv = F.llama3_flash_attn_varlen_kvpacked_func(
            local[0], torch.stack(local[1:], 1), cu_q, cu_k, max_q, max_k, stride, k_slice,
            causal=causal, group=F.Group(w, r))
        assert torch.allclose(out_kv, results[r][0], atol=1e-6), r
        if heads == kv_heads:
            out_qkv = F.llama3_flash_attn_varlen_qkvpacked_func(
                torch.stack(local, 1), cu_q, max_q, stride, k_slice, causal=causal,
                group=F.Group(w, r))
            assert torch.allclose(out_qkv, results[r][0], atol=1e-6), r

    errors = run_ranks(world, packed)
    assert not any(errors), errors
    expect_error(lambda: F.llama3_flash_attn_prepare_cu_seqlens([0, 5, 3], True, 0, 2),
                 "non-decreasing")
    expect_error(lambda: F.llama3_flash_attn_prepare_cu_seqlens([0, 8], True, 2, 2),
                 "rank 2 of world_size 2")
    w.close()


def check_shard_helpers():
    """functions.position_ids / shard: the layout's rows of a global tensor."""
    w = ringattn.World(3)
    cu = [0, 1, 20, 21, 50]
    for layout, seqlen, kwargs in (("zigzag", 48, {}), ("stripe", 48, {"stripe_width": 2}),
                                   ("balanced", 50, {"cu_seqlens": cu}),
                                   ("llama3", 50, {"cu_seqlens": cu})):
        x = torch.arange(2 * seqlen * 3, dtype=torch.float32).view(2, seqlen, 3)
        seen = []
        for r in range(3):
            ids = F.position_ids(layout, seqlen, group=F.Group(w, r), **kwargs)
            ring = ringattn.Ring(w, r, layout=layout, seqlen=seqlen, num_heads=1, head_dim=1,
                                 **kwargs)
            expected = torch.from_numpy(ring.position_ids())
            ring.close()
            assert torch.equal(ids, expected[expected >= 0]), (layout, r)
            assert torch.equal(F.shard(x, layout, group=F.Group(w, r), **kwargs), x[:, ids])
            seen += ids.tolist()
        assert sorted(seen) == list(range(seqlen)), layout
        parts = [F.shard(x, layout, group=F.Group(w, r), **kwargs) for r in range(3)]
        assert torch.equal(F.unshard(parts, layout, seqlen, group=F.Group(w, 0), **kwargs), x)
    print("position_ids / shard / unshard: every layout's rows, every token once")
    w.close()


def main():
    for name in ("ring_flash_attn", "zigzag_ring_flash_attn", "stripe_flash_attn",
                 "balanced_flash_attn"):
        func = getattr(F, f"{name}_func")
        run(func, name, 4, 64, 4, 2, 16, torch.float32, True, (-1, -1))
        run(func, name, 2, 48, 2, 2, 8, torch.float32, False, (6, 2))
        run(func, name, 4, 64, 4, 2, 16, torch.bfloat16, True, (-1, -1))
    run(F.zigzag_ring_flash_attn_func, "zigzag_ring_flash_attn", 2, 32, 2, 2, 8, torch.float32,
        True, (-1, -1), packing="qkv")
    run(F.zigzag_ring_flash_attn_func, "zigzag_ring_flash_attn", 2, 32, 4, 2, 8, torch.float32,
        True, (-1, -1), packing="kv")
    run_varlen("ring_flash_attn", 2, [0, 8, 40, 64], 2, 1, 8)
    run_varlen("zigzag_ring_flash_attn", 4, [0, 16, 48, 64], 4, 2, 8)
    run_varlen("zigzag_ring_flash_attn", 3, [0, 1, 20, 21, 61], 2, 1, 8, local_cu=False)
    run_varlen("balanced_flash_attn", 3, [0, 1, 20, 21, 61], 2, 2, 8, local_cu=False)
    run_varlen("stripe_flash_attn", 3, [0, 1, 20, 21, 61], 2, 1, 8, local_cu=False)
    run_varlen("stripe_flash_attn", 2, [0, 8, 40, 64], 2, 2, 8)
    run_llama3(3, [0, 1, 20, 21, 61], 4, 2, 8, 1, True)
    run_llama3(4, [0, 16, 40, 64], 2, 2, 8, 2, False)
    check_shard_helpers()
    failing_rank_fails_the_world_at_once()
    w = ringattn.World(1)
    x = torch.zeros(1, 8, 1, 8)
    expect_error(lambda: F.ring_flash_attn_func(x, x, x, dropout_p=0.1, group=F.Group(w, 0)),
                 "no dropout")
    expect_error(lambda: F.ring_flash_attn_func(x, x, x, alibi_slopes=torch.ones(1),
                                                group=F.Group(w, 0)), "ALiBi")
    expect_error(lambda: F.ring_flash_attn_func(x, x, x), "torch.distributed is not initialized")
    expect_error(lambda: F.ring_flash_attn_func(x, x, x, group=3), "group is a int")
    expect_error(lambda: F.ring_flash_attn_func(x.int(), x, x, group=F.Group(w, 0)),
                 "dtype torch.int32")
    expect_error(lambda: F.ring_flash_attn_func(x[0], x[0], x[0], group=F.Group(w, 0)),
                 "q has shape (8, 1, 8); expected (batch")
    # Document boundaries and strides are integers: a float would be truncated.
    y = torch.zeros(8, 1, 8)
    expect_error(lambda: F.ring_flash_attn_varlen_func(y, y, y, torch.tensor([0., 3.5, 8.]), 8,
                                                       group=F.Group(w, 0)),
                 "cu_seqlens has dtype torch.float32; expected integers")
    expect_error(lambda: F.ring_flash_attn_varlen_func(y, y, y, [0, 3.5, 8], 8,
                                                       group=F.Group(w, 0)),
                 "cu_seqlens[1] is 3.5; expected an integer")
    expect_error(lambda: F.ring_flash_attn_varlen_func(y, y, y, None, 8, group=F.Group(w, 0),
                                                       global_cu_seqlens=[0, True, 8]),
                 "global_cu_seqlens[1] is True")
    cu_q, cu_k, max_q, max_k, k_slice = F.llama3_flash_attn_prepare_cu_seqlens(
        torch.tensor([0, 8], dtype=torch.int32), True, 0, 1)
    expect_error(lambda: F.llama3_flash_attn_varlen_func(y, y, y, cu_q, cu_k, max_q, max_k, 1.5,
                                                         k_slice, group=F.Group(w, 0)),
                 "heads_k_stride is 1.5; expected an integer")
    expect_error(lambda: F.position_ids("zigzag", 8.0, group=F.Group(w, 0)),
                 "seqlen is 8.0; expected an integer")
    descriptions_follow_each_tensor()
    kept_rings_are_reused()
    layers_in_flight_share_one_ring()
    print("all passed")


def descriptions_follow_each_tensor():
    """The cached description of a (dtype, shape, strides) gives each tensor
    its own address and strides; a layout ringattn refuses is refused every
    time, not cached."""
    a = torch.zeros(2, 8, 3, 4)
    b = torch.zeros(2, 3, 8, 4).transpose(1, 2)  # the same shape, other strides
    ta, tb, ta2 = (F._tensor(n, x) for n, x in (("a", a), ("b", b), ("a", a.clone())))
    assert (ta.batch_stride, ta.row_stride, ta.head_stride) == (96, 12, 4), ta
    assert (tb.batch_stride, tb.row_stride, tb.head_stride) == (96, 4, 32), tb
    assert ta.data == a.data_ptr() and ta2.data != ta.data and ta2.bytes == ta.bytes == 192 * 4
    bad = torch.zeros(2, 8, 3, 4).transpose(2, 3)
    for _ in range(2):
        expect_error(lambda: F._tensor("q", bad), "expected (batch, rows, heads, head_dim) with "
                     "contiguous head_dim")
    print("tensor descriptions: cached per layout, each with its own address")


def kept_rings_are_reused():
    """A ring goes back to the free rings after its backward (or at once
    without one) and the next call with the same problem takes it; the
    results do not change; release_cached_rings() closes them."""
    F.release_cached_rings()
    w = ringattn.World(1)
    group = F.Group(w, 0)
    torch.manual_seed(3)
    q, k, v = (torch.randn(1, 16, 2, 8, requires_grad=True) for _ in range(3))

    def pass_once():
        out = F.zigzag_ring_flash_attn_func(q, k, v, causal=True, group=group)
        out.sum().backward()
        return out.detach(), [x.grad.clone() for x in (q, k, v)]

    first = pass_once()
    kept = [r for free in F._free_rings.values() for r in free]
    assert len(kept) == 1, kept
    for x in (q, k, v):
        x.grad = None
    second = pass_once()
    assert [r for free in F._free_rings.values() for r in free] == kept, "the ring was taken again"
    assert torch.equal(first[0], second[0]) and all(
        torch.equal(a, b) for a, b in zip(first[1], second[1]))
    with torch.no_grad():  # no backward to come: the ring is back at once
        F.zigzag_ring_flash_attn_func(q, k, v, causal=True, group=group)
    assert [r for free in F._free_rings.values() for r in free] == kept
    F.release_cached_rings()
    assert not F._free_rings and kept[0]._handle is None
    # Problems that change every call (documents per batch): only the last
    # few keep rings; the others' are closed.
    rings = []
    for n in range(F._KEPT_PROBLEMS + 3):
        x = torch.randn(1, 16 + 2 * n, 2, 8, requires_grad=True)
        F.zigzag_ring_flash_attn_func(x, x, x, causal=True, group=group).sum().backward()
        rings.append([r for free in F._free_rings.values() for r in free][-1])
    kept = [r for free in F._free_rings.values() for r in free]
    assert kept == rings[-F._KEPT_PROBLEMS:], (len(kept), F._KEPT_PROBLEMS)
    assert all(r._handle is None for r in rings[:-F._KEPT_PROBLEMS])
    F.release_cached_rings()
    print("kept rings: taken again by the next call, same results; those of the last "
          f"{F._KEPT_PROBLEMS} problems only; released on request")


def layers_in_flight_share_one_ring():
    """Between a forward and its backward only the tensors saved for it stay
    (q, k, v, O, LSE): three layers' forwards before any backward take one
    ring in turn; the gradients match float64 autograd; retain_graph runs
    the backward twice; an in-place change of an input before the
    backward raises, and so does one of the output."""
    F.release_cached_rings()
    w = ringattn.World(1)
    group = F.Group(w, 0)
    torch.manual_seed(4)
    x, *weights = (torch.randn(1, 32, 2, 8, dtype=torch.float64, requires_grad=True)
                   for _ in range(4))

    def layers(attention):
        h = x
        for wt in weights:
            h = attention(h * wt, h, h + wt) + h
        return h

    def ours(q, k, v):
        return F.ring_flash_attn_func(q.float(), k.float(), v.float(), causal=True,
                                      group=group).double()

    out = layers(ours)
    assert sum(len(free) for free in F._free_rings.values()) == 1, "one ring for three layers"
    want = layers(lambda q, k, v: reference(q, k, v, True, (-1, -1)))
    dout = torch.randn_like(out)
    grads = torch.autograd.grad(out, [x, *weights], dout, retain_graph=True)
    again = torch.autograd.grad(out, [x, *weights], dout)
    expected = torch.autograd.grad(want, [x, *weights], dout)
    for name, a, b, c in zip(("x", "w0", "w1", "w2"), grads, again, expected):
        err = float((a - c).abs().max() / c.abs().max())
        assert err <= 1e-5, (name, err)
        assert torch.equal(a, b), f"{name}: the second backward differs"
    assert sum(len(free) for free in F._free_rings.values()) == 1
    leaf = torch.randn(1, 32, 2, 8, requires_grad=True)
    # O is saved for the backward: changed in place, the backward refuses
    # it (as an input changed in place), never runs on the changed values.
    for change in ("output", "input"):
        q = leaf * 2
        o = F.ring_flash_attn_func(q, q, q, causal=True, group=group)
        (o if change == "output" else q).add_(1)
        try:
            o.sum().backward()
            raise AssertionError(f"an {change} changed in place was not noticed")
        except RuntimeError as e:
            assert "modified by an inplace operation" in str(e), (change, e)
    F.release_cached_rings()
    print("three layers in flight share one ring; gradients match float64 autograd; "
          "retain_graph works; an input or the output changed in place raises")


if __name__ == "__main__":
    sys.exit(main())
