"""The Python package on numpy: W ranks as threads of this process, every
layout x (causal, window, documents) x GQA, forward and backward against a
float64 numpy reference; bad arguments raise ValueError with ringattn's
message. Usage: RINGATTN_LIB=path/to/libringattn.so python3 ringattn_test.py"""

import sys

import numpy as np

import ringattn
from test_util import allowed_pairs, expect_error, run_ranks


def reference(q, k, v, dout, causal, window, cu_seqlens):
    """float64 attention of (1, s, h, d) arrays, and its gradients."""
    _, s, hq, d = q.shape
    hk = k.shape[2]
    group = hq // hk
    allowed = allowed_pairs(s, causal, window, cu_seqlens)
    scale = 1 / np.sqrt(d)
    out = np.zeros_like(q)
    lse = np.full((1, hq, s), -np.inf)
    dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    for h in range(hq):
        kh, vh = k[0, :, h // group], v[0, :, h // group]
        scores = np.where(allowed, q[0, :, h] @ kh.T * scale, -np.inf)
        m = scores.max(axis=1, keepdims=True)
        p = np.exp(scores - m)
        z = p.sum(axis=1, keepdims=True)
        p /= z
        out[0, :, h] = p @ vh
        lse[0, h] = (m + np.log(z))[:, 0]
        do = dout[0, :, h]
        dv[0, :, h // group] += p.T @ do
        dp = do @ vh.T
        ds = p * (dp - (do * out[0, :, h]).sum(axis=1, keepdims=True))
        dq[0, :, h] = ds @ kh * scale
        dk[0, :, h // group] += ds.T @ q[0, :, h] * scale
    return out, lse, dq, dk, dv


def rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def check(layout, world, seqlen, heads, kv_heads, dim, causal=True, window=(-1, -1),
          cu_seqlens=None, **extra):
    rng = np.random.default_rng(7)
    q, dout = (rng.standard_normal((1, seqlen, heads, dim)) for _ in range(2))
    k, v = (rng.standard_normal((1, seqlen, kv_heads, dim)) for _ in range(2))
    w = ringattn.World(world, timeout_s=60)
    results = [None] * world

    def rank(r):
        ring = ringattn.Ring(w, r, layout=layout, seqlen=seqlen, num_heads=heads,
                             num_kv_heads=kv_heads, head_dim=dim, causal=causal,
                             window_size=window, cu_seqlens=cu_seqlens, **extra)
        f32 = lambda x: ringattn.shard(x, ring).astype(np.float32)
        out, lse = ring.forward(f32(q), f32(k), f32(v))
        grads = ring.backward(f32(dout))
        results[r] = (ring, out, lse, grads)
        # The backward from the saved forward on a ring that did not run it
        # (ringattn_backward_from) gives the same gradients.
        other = ringattn.Ring(w, r, layout=layout, seqlen=seqlen, num_heads=heads,
                              num_kv_heads=kv_heads, head_dim=dim, causal=causal,
                              window_size=window, cu_seqlens=cu_seqlens, **extra)
        again = other.backward(f32(dout), saved=(f32(q), f32(k), f32(v), out, lse))
        other.close()
        assert all(np.array_equal(a, b) for a, b in zip(grads, again)), f"rank {r}"

    errors = run_ranks(world, rank)
    assert not any(errors), errors
    rings = [r[0] for r in results]
    out = ringattn.unshard([r[1] for r in results], rings, seqlen)
    lse = ringattn.unshard([r[2].transpose(0, 2, 1) for r in results], rings, seqlen)
    dq, dk, dv = (ringattn.unshard([r[3][i] for r in results], rings, seqlen) for i in range(3))
    ref = reference(q, k, v, dout, causal, window, cu_seqlens)
    errs = [rel(out, ref[0]), rel(lse, ref[1].transpose(0, 2, 1)), rel(dq, ref[2]),
            rel(dk, ref[3]), rel(dv, ref[4])]
    name = f"{layout} W={world} causal={causal} window={window} docs={cu_seqlens} GQA {heads}:{kv_heads}"
    print(f"{name}: max rel error out {errs[0]:.1e} lse {errs[1]:.1e} dq {errs[2]:.1e} "
          f"dk {errs[3]:.1e} dv {errs[4]:.1e}")
    assert max(errs) <= 1e-5, name
    for ring in rings:
        ring.close()
    w.close()


def main():
    for layout in ("ring", "zigzag", "stripe", "llama3", "balanced"):
        check(layout, 4, 64, 4, 2, 16)                         # causal, GQA
        check(layout, 2, 48, 2, 2, 8, causal=False, window=(5, 3))
        if layout != "stripe":                                 # documents, any lengths
            check(layout, 3, 61, 2, 1, 8, cu_seqlens=[0, 1, 20, 21, 61])
    w = ringattn.World(1)
    expect_error(lambda: ringattn.World(0), "world is 0; expected 1 to 8192")
    expect_error(lambda: ringattn.Ring(w, 0, layout="zigzg", seqlen=8, num_heads=1, head_dim=8),
                 "layout 'zigzg' is unknown")
    expect_error(lambda: ringattn.Ring(w, 0, seqlen=8, num_heads=3, num_kv_heads=2, head_dim=8),
                 "num_heads 3 is not a multiple of num_kv_heads 2")
    expect_error(lambda: ringattn.Ring(w, 0, seqlen=8.0, num_heads=1, head_dim=8),
                 "seqlen is 8.0; expected an integer")
    expect_error(lambda: ringattn.Ring(w, 0, seqlen=8, num_heads=1, head_dim=8,
                                       cu_seqlens=np.array([0.0, 8.0])),
                 "cu_seqlens has dtype float64; expected integers")
    expect_error(lambda: ringattn.Ring(w, 0, seqlen=8, num_heads=1, head_dim=8,
                                       cu_seqlens=[0, True, 8]), "cu_seqlens[1] is True")
    expect_error(lambda: ringattn.Ring(w, 0, seqlen=8, num_heads=1, head_dim=8,
                                       window_size=(3,)), "window_size has 1 values")
    ring = ringattn.Ring(w, 0, seqlen=8, num_heads=1, head_dim=8,
                         cu_seqlens=np.array([0, 3, 8], dtype=np.int32))
    ring.close()
    ring = ringattn.Ring(w, 0, seqlen=8, num_heads=1, head_dim=8)
    x = np.zeros((1, 8, 1, 8), dtype=np.float32)
    expect_error(lambda: ring.forward(x.astype(np.int32), x, x), "dtype int32")
    expect_error(lambda: ring.forward(x[:, :4], x, x), "q needs 64 elements")
    expect_error(lambda: ring.forward(x, x.astype(np.float64), x), "k is float64; expected float32 like q")
    lse = np.zeros((1, 1, 8), dtype=np.float32)
    expect_error(lambda: ring.backward(x, saved=(x, x, x, x, lse[:, :, :5])),
                 "lse has room for 20 bytes; expected 32")
    expect_error(lambda: ring.backward(x, saved=(x, x, x, x[:, :4], lse)), "out needs 64 elements")
    expect_error(lambda: ring.backward(x, saved=(x, x, x, x.astype(np.float64), lse)),
                 "out is float64; expected float32 like q")
    ring.close()
    reversed_views_are_read_as_copies()
    nccl_worlds_default_to_async_passes()
    w.close()
    print("all passed")


def reversed_views_are_read_as_copies():
    """Arrays with negative strides (x[:, ::-1]) hold elements before their
    address, which the C ABI's strides (>= 0) cannot reach: the package
    reads them as copies, so the results equal those of contiguous ones."""
    w = ringattn.World(1)
    rng = np.random.default_rng(3)
    q, k, v, dout = (rng.standard_normal((1, 16, 2, 8)).astype(np.float32) for _ in range(4))
    flipped = [np.ascontiguousarray(x[:, ::-1]) for x in (q, k, v, dout)]
    views = [x[:, ::-1] for x in (q, k, v, dout)]  # the same values, strides < 0
    assert all(x.strides[1] < 0 for x in views)
    results = []
    for inputs in (flipped, views):
        ring = ringattn.Ring(w, 0, seqlen=16, num_heads=2, head_dim=8)
        out, lse = ring.forward(*inputs[:3])
        grads = ring.backward(inputs[3])
        saved = ring.backward(inputs[3], saved=(*inputs[:3], out, lse))
        results.append((out, lse, *grads, *saved))
        ring.close()
    for a, b in zip(*results):
        assert np.array_equal(a, b), "a reversed view's results differ from its copy's"
    w.close()


class _FakeNcclLib:
    """The C ABI calls World.over_nccl makes, recorded (no GPU here)."""

    def __init__(self):
        self.async_calls = []

    def ringattn_nccl_world_create(self, world, rank, unique_id, size, device, timeout_s, out):
        out._obj.value = 1234  # a handle that is never used
        return 0

    def ringattn_world_set_async_passes(self, handle, enabled):
        self.async_calls.append(enabled)
        return 0


def nccl_worlds_default_to_async_passes():
    """NCCL worlds run asynchronous passes unless RINGATTN_ASYNC_PASSES=0 or
    async_passes=False asks otherwise (since the fifty-fourth session), and
    a World remembers its mode (a replacement for a failed one keeps it)."""
    import os
    from ringattn import _capi
    real, fake = _capi.lib, _FakeNcclLib()
    saved = os.environ.pop("RINGATTN_ASYNC_PASSES", None)
    _capi.lib = fake
    try:
        cases = [(None, None, [1], True), ("0", None, [], False), ("1", None, [1], True),
                 (None, False, [], False), ("0", True, [1], True)]
        for env, argument, calls, mode in cases:
            if env is None:
                os.environ.pop("RINGATTN_ASYNC_PASSES", None)
            else:
                os.environ["RINGATTN_ASYNC_PASSES"] = env
            fake.async_calls.clear()
            world = ringattn.World.over_nccl(2, 0, bytes(128), 0, async_passes=argument)
            assert fake.async_calls == calls, (env, argument, fake.async_calls)
            assert world.async_passes is mode, (env, argument, world.async_passes)
            world.set_async_passes(False)
            assert world.async_passes is False and fake.async_calls[-1] == 0
            world._handle = None  # the fake handle is not the C ABI's to destroy
    finally:
        _capi.lib = real
        os.environ.pop("RINGATTN_ASYNC_PASSES", None)
        if saved is not None:
            os.environ["RINGATTN_ASYNC_PASSES"] = saved


if __name__ == "__main__":
    sys.exit(main())
