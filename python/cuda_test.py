"""ringattn.functions on CUDA tensors, one process per GPU (run it under
torchrun on a machine with GPUs; //python:cuda_test runs it on every
visible GPU):

    RINGATTN_LIB=... PYTHONPATH=python torchrun --nproc_per_node=N python/cuda_test.py

For every layout (zigzag, ring, stripe, balanced; llama3 and zigzag on
documents of any length) x GQA: forward and gradients on each rank's shard
against torch SDPA in float64 on the full sequence, in float32 (<= 1e-5
max relative) and bfloat16 (norm-relative error no worse than 1.25x SDPA's
own bfloat16 kernel against the same float64 result); bad input raises
ValueError; contiguous views at a misaligned address give the aligned
results; then the Python entry's fwd+bwd time on the seed's shape
(--bench_tokens per rank, 32 heads, d128, bf16, zigzag, causal), printed
for the overhead against ring_bench on the same shape, each step from a
barrier and a synchronize, and back to back (a training loop's steps); then two checks and
the time again with asynchronous passes (World.set_async_passes).
"""

import argparse
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as torch_f

from ringattn import distributed
from ringattn import functions as F


def sdpa(q, k, v, causal, cu=None):
    """SDPA over (1, seqlen, heads, dim) tensors, kv heads repeated for GQA;
    documents as a block-diagonal (and causal) boolean mask."""
    group = q.shape[2] // k.shape[2]
    q, k, v = (x.transpose(1, 2) for x in (q, k, v))
    k, v = (x.repeat_interleave(group, dim=1) for x in (k, v))
    if cu is None:
        out = torch_f.scaled_dot_product_attention(q, k, v, is_causal=causal)
    else:
        n = q.shape[2]
        doc = torch.zeros(n, dtype=torch.long, device=q.device)
        for b in cu[1:-1]:
            doc[b:] += 1
        allowed = doc[:, None] == doc[None, :]
        if causal:
            allowed &= torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
        out = torch_f.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    return out.transpose(1, 2)


def grads_of(fn, inputs, dout):
    xs = [x.detach().clone().requires_grad_() for x in inputs]
    out = fn(*xs)
    out.backward(dout)
    return [out.detach()] + [x.grad for x in xs]


def norm_rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


# Every check runs; those over their bound are listed here and fail the
# script at the end.
FAILURES = []


def check(name, dtype, seqlen, heads, kv_heads, dim, causal, device, cu=None):
    torch.manual_seed(0)  # the same global tensors on every rank
    full = [torch.randn(1, seqlen, h, dim, dtype=torch.float64, device=device)
            for h in (heads, kv_heads, kv_heads, heads)]
    q, k, v, dout = full
    layout = name.split("_")[0]
    exact = grads_of(lambda a, b, c: sdpa(a, b, c, causal, cu), (q, k, v), dout)

    real = F.position_ids(layout, seqlen, cu_seqlens=cu).to(device)
    local = [x[:, real].to(dtype) for x in (q, k, v)]

    def ours(a, b, c):
        if name == "llama3":
            world, rank = dist.get_world_size(), dist.get_rank()
            *_, k_slice = F.llama3_flash_attn_prepare_cu_seqlens(
                torch.tensor(cu, dtype=torch.int32), causal, rank, world)
            return F.llama3_flash_attn_varlen_func(a[0], b[0], c[0], None, None, 0, 0,
                                                   max(1, kv_heads // 2), k_slice,
                                                   causal=causal).unsqueeze(0)
        prefix = {"ring": "ring_flash_attn", "zigzag": "zigzag_ring_flash_attn",
                  "stripe": "stripe_flash_attn", "balanced": "balanced_flash_attn"}[layout]
        if cu is not None:
            return getattr(F, f"{prefix}_varlen_func")(
                a[0], b[0], c[0], None, 0, causal=causal, global_cu_seqlens=cu).unsqueeze(0)
        return getattr(F, f"{prefix}_func")(a, b, c, causal=causal)

    mine = grads_of(ours, local, dout[:, real].to(dtype))
    assert all(x.is_cuda and x.dtype == dtype for x in mine), "results stay on the GPU"
    flat = torch.cat([x[0].flatten(1).double() for x in mine], 1)
    got = F.unshard(flat, layout, seqlen, cu_seqlens=cu, dim=0)
    want = torch.cat([x[0].flatten(1) for x in exact], 1)
    sizes = [heads * dim, kv_heads * dim, kv_heads * dim, heads * dim]
    parts = list(zip(("out", "dq", "dk", "dv"), got.split([sizes[0], sizes[0], sizes[1],
                                                          sizes[2]], 1),
                     want.split([sizes[0], sizes[0], sizes[1], sizes[2]], 1)))
    if dtype == torch.float32:
        errors = {n: float((a - b).abs().max() / b.abs().max()) for n, a, b in parts}
        bound = {n: 1e-5 for n in errors}
        kind = "max rel"
    else:
        # SDPA's own error in this dtype, against the same float64 result.
        theirs = grads_of(lambda a, b, c: sdpa(a, b, c, causal, cu),
                          [x.to(dtype) for x in (q, k, v)], dout.to(dtype))
        errors = {n: norm_rel(a, b) for n, a, b in parts}
        bound = {n: 1.25 * norm_rel(t, e) + 1e-6
                 for n, t, e in zip(errors, theirs, exact)}
        kind = "norm rel"
    if dist.get_rank() == 0:
        print(f"{name:<14} {str(dtype):<15} W={dist.get_world_size()} h{heads}/{kv_heads} "
              f"d{dim} causal={causal} {'docs ' + str(len(cu) - 1) if cu else '':8} {kind}: " +
              " ".join(f"{n} {errors[n]:.2e} (<= {bound[n]:.2e})" for n in errors), flush=True)
    FAILURES.extend((name, str(dtype), n, errors[n], bound[n])
                    for n in errors if not errors[n] <= bound[n])


def bad_input(device):
    q = torch.zeros(1, 64, 2, 64, device=device, dtype=torch.bfloat16)
    for args, text in [((q, q.float(), q), "k is float32; expected bfloat16 like q"),
                       ((q, q.cpu(), q), "expected every tensor on one device"),
                       ((q, q, q[:, :, :, :32]), None)]:
        try:
            F.zigzag_ring_flash_attn_func(*args, causal=True)
        except ValueError as e:
            assert text is None or text in str(e), (text, str(e))
        else:
            raise AssertionError(f"no error for {text}")
    if dist.get_rank() == 0:
        print("bad input: ValueError with ringattn's message", flush=True)


def layers_in_flight(device, layers=4, rows=4096):
    """Forwards of several layers before any backward share one ring: only
    the tensors saved for the backward stay between the passes."""
    F.release_cached_rings()
    torch.manual_seed(5)
    x = torch.randn(1, rows, 8, 128, device=device, dtype=torch.bfloat16, requires_grad=True)
    torch.cuda.synchronize(device)
    free_before = torch.cuda.mem_get_info(device)[0]
    h = x
    for _ in range(layers):
        h = F.zigzag_ring_flash_attn_func(h, h, h, causal=True) + h
    torch.cuda.synchronize(device)
    used = (free_before - torch.cuda.mem_get_info(device)[0]) / 2**20
    rings = sum(len(free) for free in F._free_rings.values())
    h.float().sum().backward()
    assert rings == 1, f"{rings} rings for {layers} layers in flight"
    assert torch.isfinite(x.grad).all()
    if dist.get_rank() == 0:
        print(f"{layers} layers in flight ({rows} rows/rank, bf16 h8 d128): {rings} ring, "
              f"{used:.0f} MiB of GPU memory taken by the forwards", flush=True)


def streams(device):
    """A call under another stream follows it (its inputs made there, the
    ring's stream switched to it), and the next call on the default stream
    follows that again: the results equal the default stream's."""
    F.release_cached_rings()
    torch.manual_seed(6)
    q, k, v = (torch.randn(1, 2048, 8, 128, device=device, dtype=torch.bfloat16)
               for _ in range(3))
    want = F.zigzag_ring_flash_attn_func(q, k, v, causal=True)
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    for where in (side, torch.cuda.current_stream(device)):
        with torch.cuda.stream(where):
            scaled = [x * 1 for x in (q, k, v)]  # made on `where`, read by the ring after it
            got = F.zigzag_ring_flash_attn_func(*scaled, causal=True)
            rings = [r for free in F._free_rings.values() for r in free]
            assert len(rings) == 1 and rings[0].stream == where.cuda_stream, \
                [(r.stream, where.cuda_stream) for r in rings]
        torch.cuda.synchronize(device)
        assert torch.equal(got, want), "a call on another stream differs"
    if dist.get_rank() == 0:
        print("streams: a side stream's call and the default stream's after it, both followed",
              flush=True)


def misaligned(device):
    """Contiguous views at an address 4 bytes past a multiple of 16 (2 bf16
    elements into a larger tensor; the kernels load 16 bytes at a time)
    give what the same values in fresh tensors give (the output exactly,
    the gradients up to the order of dQ's additions): the package copies
    them, the C ABI refuses them."""
    torch.manual_seed(7)
    shape = (1, 1024, 8, 128)
    n = 1024 * 8 * 128
    fresh = [torch.randn(shape, device=device, dtype=torch.bfloat16) for _ in range(4)]
    bases = [torch.zeros(n + 2, device=device, dtype=torch.bfloat16) for _ in range(4)]
    for base, x in zip(bases, fresh):
        base[2:].copy_(x.flatten())
    for base in bases[:3]:
        base.requires_grad_()
    views = [base[2:].view(shape) for base in bases]
    assert all(x.is_contiguous() and x.data_ptr() % 16 == 4 for x in views)
    q, k, v = (x.requires_grad_() for x in fresh[:3])
    want = F.zigzag_ring_flash_attn_func(q, k, v, causal=True)
    want.backward(fresh[3])
    got = F.zigzag_ring_flash_attn_func(*views[:3], causal=True)
    got.backward(views[3])
    assert torch.equal(got, want), "a misaligned view's output differs"
    for base, x, name in zip(bases, (q, k, v), "qkv"):  # dQ: added in any order
        err = norm_rel(base.grad[2:].view(shape).double(), x.grad.double())
        assert err <= 1e-2, f"d{name} of a misaligned view differs by {err:.2e}"
    if dist.get_rank() == 0:
        print("misaligned: views 4 bytes past a 16-byte boundary give the aligned results",
              flush=True)


def bench(device, tokens, iters, mode):
    """The Python entry's zigzag fwd+bwd on `tokens` per rank (h32 d128
    bf16 causal): median ms over `iters`, CUDA events on the current
    stream; `mode` names the world's passes (sync or async)."""
    q, k, v, dout = (torch.randn(1, tokens, 32, 128, device=device, dtype=torch.bfloat16)
                     for _ in range(4))
    q, k, v = (x.requires_grad_() for x in (q, k, v))
    times = {"fwd": [], "fwd+bwd": []}
    for i in range(iters + 2):
        for x in (q, k, v):
            x.grad = None  # the gradients are assigned, not accumulated
        dist.barrier()
        torch.cuda.synchronize()
        start, mid, end = (torch.cuda.Event(enable_timing=True) for _ in range(3))
        start.record()
        out = F.zigzag_ring_flash_attn_func(q, k, v, causal=True)
        mid.record()
        out.backward(dout)
        end.record()
        torch.cuda.synchronize()
        if i >= 2:
            times["fwd"].append(start.elapsed_time(mid))
            times["fwd+bwd"].append(start.elapsed_time(end))
    # Back to back, as a training loop runs: `iters` steps enqueued without
    # a barrier or a synchronize between them (with asynchronous passes the
    # host prepares a step while the GPU runs the one before), timed from
    # the first step's start to the last one's end.
    dist.barrier()
    torch.cuda.synchronize()
    first, last = (torch.cuda.Event(enable_timing=True) for _ in range(2))
    first.record()
    for i in range(iters):
        for x in (q, k, v):
            x.grad = None
        F.zigzag_ring_flash_attn_func(q, k, v, causal=True).backward(dout)
    last.record()
    torch.cuda.synchronize()
    if dist.get_rank() == 0:
        for k_, t in times.items():
            t.sort()
            print(f"python zigzag {k_} {t[len(t) // 2]:.3f} ms (median of {iters}, "
                  f"{tokens} tokens/rank, W={dist.get_world_size()}, {mode} passes)",
                  flush=True)
        print(f"python zigzag fwd+bwd back to back {first.elapsed_time(last) / iters:.3f} ms "
              f"(mean of {iters} steps, {tokens} tokens/rank, W={dist.get_world_size()}, "
              f"{mode} passes)", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bench_tokens", type=int, default=8192)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--bench_only", action="store_true")
    args = parser.parse_args()
    dist.init_process_group("nccl")
    rank = dist.get_rank()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    torch.cuda.set_device(device)
    world = dist.get_world_size()
    # Synchronous passes first (asynchronous ones are the default since the
    # fifty-fourth session; they are checked and timed after).
    distributed.process_group_world(device=device).set_async_passes(False)
    seqlen = 1024 * world
    # Documents of 300, 1 and 699 tokens, then the rest in one or two.
    docs = sorted({0, 300, 301, 1000, max(1000, seqlen - 513), seqlen})
    for dtype in (() if args.bench_only else (torch.float32, torch.bfloat16)):
        for name in ("zigzag", "ring", "stripe", "balanced"):
            check(name, dtype, seqlen, 8, 2, 128, True, device)
        check("zigzag_docs", dtype, seqlen, 8, 2, 64, True, device, docs)
        check("llama3", dtype, seqlen, 8, 4, 128, True, device, docs)
    if not args.bench_only:
        check("zigzag", torch.bfloat16, seqlen, 4, 4, 64, False, device)
        check("zigzag", torch.bfloat16, seqlen, 8, 2, 128, True, device)  # a kept ring, again
        bad_input(device)
        layers_in_flight(device)
        streams(device)
        misaligned(device)
    if args.bench_tokens > 0:
        bench(device, args.bench_tokens, args.iters, "sync")
    # Asynchronous passes (ringattn.World.set_async_passes): the same
    # results, and the entry's time again.
    distributed.process_group_world(device=device).set_async_passes(True)
    if not args.bench_only:
        check("zigzag", torch.float32, seqlen, 8, 2, 128, True, device)
        check("llama3", torch.bfloat16, seqlen, 8, 4, 128, True, device, docs)
    if args.bench_tokens > 0:
        bench(device, args.bench_tokens, args.iters, "async")
    distributed.process_group_world(device=device).set_async_passes(False)
    assert not FAILURES, "over the bound (name, dtype, tensor, error, bound): %s" % FAILURES
    dist.barrier()
    dist.destroy_process_group()
    if rank == 0:
        print("cuda_test: all passed", flush=True)


if __name__ == "__main__":
    sys.exit(main())
