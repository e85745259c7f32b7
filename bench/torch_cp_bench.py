"""PyTorch context parallel on the ring_bench shape, for bench/ring_bench.sh.

Run under torchrun (one process per GPU):
  torchrun --nproc_per_node=W bench/torch_cp_bench.py --tokens 8192 --heads 32 --head_dim 128
Times causal SDPA inside torch.distributed.tensor.experimental.context_parallel
(ring attention over the DeviceMesh) with the flash and cuDNN backends, with
load balancing on (head-tail) and off, forward and forward+backward; rank 0
prints one line per configuration:  cp <backend> <balance> <pass> <ms> <TFLOP/s per GPU>
and with --ours "fwd_ms,fwdbwd_ms" (ringattn's zigzag row) our speed-up.
"""
import argparse
import os
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F


def causal_flops(seqlen, heads, head_dim):
    pairs = seqlen * (seqlen + 1) / 2
    return 4.0 * pairs * heads * head_dim


def set_load_balance(enabled):
    """Head-tail load balancing where this torch exposes the switch."""
    try:
        from torch.distributed.tensor.experimental import _attention
        if hasattr(_attention, "_cp_options"):
            _attention._cp_options.enable_load_balance = enabled
            return "head-tail" if enabled else "none"
    except ImportError:
        pass
    return "default"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tokens", type=int, default=8192)
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--head_dim", type=int, default=128)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--ours", default="", help="fwd_ms,fwdbwd_ms of ringattn's zigzag row")
    a = p.parse_args()
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    torch.cuda.set_device(local)
    dist.init_process_group("nccl")
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.experimental import context_parallel
    from torch.nn.attention import SDPBackend, sdpa_kernel

    mesh = init_device_mesh("cuda", (world,))
    seqlen = world * a.tokens
    flops = causal_flops(seqlen, a.heads, a.head_dim) / world
    ours = [float(x) for x in a.ours.split(",")] if a.ours else None
    backends = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}
    for name, backend in backends.items():
        for balance in (True, False):
            label = set_load_balance(balance)
            for backward in (False, True):
                torch.manual_seed(0)
                shape = (1, a.heads, seqlen, a.head_dim)
                q, k, v = (torch.randn(shape, dtype=torch.bfloat16, device="cuda") for _ in range(3))
                try:
                    times = []
                    with sdpa_kernel(backend), context_parallel(
                            mesh, buffers=[q, k, v], buffer_seq_dims=[2, 2, 2]):
                        for it in range(a.iters + 3):
                            qq, kk, vv = (x.detach().requires_grad_(backward) for x in (q, k, v))
                            dist.barrier()
                            torch.cuda.synchronize()
                            start = time.perf_counter()
                            out = F.scaled_dot_product_attention(qq, kk, vv, is_causal=True)
                            if backward:
                                out.backward(torch.ones_like(out))
                            torch.cuda.synchronize()
                            if it >= 3:
                                times.append(time.perf_counter() - start)
                    t = torch.tensor([sorted(times)[len(times) // 2]], device="cuda")
                    dist.all_reduce(t, op=dist.ReduceOp.MAX)
                    ms = t.item() * 1e3
                    if rank == 0:
                        passname = "fwd+bwd" if backward else "fwd"
                        tflops = flops * (3.5 if backward else 1.0) / (ms * 1e-3) / 1e12
                        line = f"cp {name} {label} {passname} {ms:.3f} {tflops:.1f}"
                        if ours:
                            line += f"  ringattn zigzag x{ms / ours[1 if backward else 0]:.2f}"
                        print(line, flush=True)
                except Exception as e:  # a backend this build lacks: say so, go on
                    if rank == 0:
                        print(f"cp {name} {label} {'fwd+bwd' if backward else 'fwd'} "
                              f"failed: {type(e).__name__}: {str(e)[:200]}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
