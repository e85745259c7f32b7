"""ringattn.functions over a torch.distributed process group (gloo): W
processes, one rank each (as torchrun starts them), the layouts' functions
on each rank's local shard with autograd, outputs and gradients against
torch's float64 attention on the full sequence (<= 1e-5); a rank that fails
makes its peers raise RuntimeError within the World's timeout.
Usage: RINGATTN_LIB=... PYTHONPATH=python python3 distributed_test.py"""

import datetime
import os
import sys
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ringattn import distributed
from ringattn import functions as F
from torch_test import reference


def check_layout(name, rank, world, seqlen, heads, kv_heads, dim, causal, window, cu=None):
    torch.manual_seed(0)  # the same global tensors on every rank
    q, k, v, dout = (torch.randn(1, seqlen, h, dim, dtype=torch.float64)
                     for h in (heads, kv_heads, kv_heads, heads))
    layout = name.split("_")[0]
    real = F.position_ids(layout, seqlen, cu_seqlens=cu)  # the default group's rank
    local = [x[:, real].float().requires_grad_() for x in (q, k, v)]
    if cu is None:  # group=None: the default process group
        out = getattr(F, f"{name}_func")(*local, causal=causal, window_size=window)
    else:
        out = getattr(F, f"{name}_varlen_func")(
            *[x[0] for x in local], None, 0, causal=causal, window_size=window,
            global_cu_seqlens=cu).unsqueeze(0)
    out.backward(dout[:, real].float())
    # The shard helpers under the process group: unshard(shard(x)) is x.
    assert torch.equal(F.unshard(F.shard(q, layout, cu_seqlens=cu), layout, seqlen,
                                 cu_seqlens=cu), q)
    # Every rank's part of the outputs, gathered (gloo) and compared in full.
    mine = torch.cat([out.detach()[0].flatten(1)] + [x.grad[0].flatten(1) for x in local], 1)
    got = F.unshard(mine, layout, seqlen, cu_seqlens=cu, dim=0).double()
    qr, kr, vr = (x.clone().requires_grad_() for x in (q, k, v))
    ref = reference(qr, kr, vr, causal, window, cu)
    ref.backward(dout)
    exact = torch.cat([ref.detach()[0].flatten(1)] + [x.grad[0].flatten(1) for x in (qr, kr, vr)],
                      1)
    rel = float((got - exact).abs().max() / exact.abs().max())
    if rank == 0:
        print(f"{name} W={world} {'docs ' + str(cu) if cu else ''} causal={causal} "
              f"window={window}: max rel (out, dq, dk, dv) {rel:.1e}", flush=True)
    assert rel <= 1e-5, (name, rel)


def failing_rank(rank, world):
    """Rank 1 fails before its first message; the others must raise
    RuntimeError within the World's timeout (3 s), not hang."""
    group = dist.new_group(list(range(world)))
    distributed.process_group_world(group, timeout_s=3.0)
    x = torch.zeros(1, 8, 1, 8)
    start = time.monotonic()
    try:
        F.ring_flash_attn_func(x, x, x, dropout_p=0.5 if rank == 1 else 0.0, causal=True,
                               group=group)
    except ValueError as e:
        assert rank == 1 and "no dropout" in str(e), e
        return
    except RuntimeError as e:
        took = time.monotonic() - start
        assert rank != 1 and took < 30, (rank, took, e)
        print(f"rank {rank}: RuntimeError after {took:.1f} s as expected: {e}", flush=True)
        return
    raise AssertionError(f"rank {rank}: no error")


def group_kept(rank, world):
    """A process group's Group is kept between calls, and made again (with a
    new World) once its World failed; the new World runs."""
    group = dist.new_group(list(range(world)))
    first = F._group(group)
    assert F._group(group) is first, "the Group is made once per process group"
    first.world.failed = True  # as a failed pass leaves it
    again = F._group(group)
    assert again is not first and again.world is not first.world and not again.world.failed
    assert again.rank == dist.get_rank(group) == rank
    x = torch.randn(1, 8, 1, 8, generator=torch.Generator().manual_seed(rank))
    out = F.ring_flash_attn_func(x, x, x, causal=True, group=group)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert F._group(group) is again
    if rank == 0:
        print("a process group's Group kept, and made again after its World failed", flush=True)


def different_problems(rank, world):
    """Rank 1's shard implies another sequence length: every rank gets
    ValueError naming it (not a transport crash on mismatched messages)."""
    group = dist.new_group(list(range(world)))
    x = torch.zeros(1, 8 if rank != 1 else 5, 1, 8)
    try:
        F.ring_flash_attn_func(x, x, x, causal=True, group=group)
    except ValueError as e:
        assert "problem differs" in str(e) and "seqlen" in str(e), e
        if rank == 0:
            print(f"rank 0: ValueError as expected: {e}", flush=True)
        return
    raise AssertionError(f"rank {rank}: no error")


def body(rank, world, init):
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    check_layout("zigzag_ring_flash_attn", rank, world, 48, 4, 2, 8, True, (-1, -1))
    check_layout("ring_flash_attn", rank, world, 36, 2, 2, 8, False, (5, 2))
    check_layout("stripe_flash_attn", rank, world, 48, 2, 1, 8, True, (-1, -1))
    check_layout("balanced_flash_attn", rank, world, 61, 2, 1, 8, True, (-1, -1),
                 cu=[0, 1, 20, 21, 61])
    group_kept(rank, world)
    different_problems(rank, world)
    failing_rank(rank, world)


def main():
    world = 3
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(body, args=(world, f"file://{os.path.join(tmp, 'init')}"), nprocs=world)
    print("all passed")


if __name__ == "__main__":
    sys.exit(main())
