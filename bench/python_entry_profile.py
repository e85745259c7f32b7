"""Where the Python entry's time goes on GPUs: ringattn.functions'
zigzag_ring_flash_attn_func on CUDA tensors (bf16, --tokens per rank, 32
heads, d128, causal), one process per GPU under torchrun. Prints the host
time of the forward and backward calls (medians) and torch.profiler's
table of GPU work (our kernels, copies, memsets, NCCL), and writes a Chrome
trace to $OUT/trace.json (gaps between GPU ops are the host's share).

    RINGATTN_LIB=.../libringattn.so PYTHONPATH=python OUT=/tmp \\
      torchrun --nproc_per_node=2 bench/python_entry_profile.py

On 2 x H200 (2026-12-01, before the float4 ring kernels) it showed the
packed dK/dV add at 707 us per pass, which led to them.
"""

import argparse
import os
import time

import torch
import torch.distributed as dist
from torch.profiler import ProfilerActivity, profile

from ringattn import functions as F


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=8192)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--async_passes", action="store_true",
                        help="World.set_async_passes(True) before the calls")
    args = parser.parse_args()
    dist.init_process_group("nccl")
    rank = dist.get_rank()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    torch.cuda.set_device(device)
    if args.async_passes:
        from ringattn import distributed
        distributed.process_group_world(device=device).set_async_passes(True)
    q, k, v, dout = (torch.randn(1, args.tokens, 32, 128, device=device, dtype=torch.bfloat16)
                     for _ in range(4))
    q, k, v = (x.requires_grad_() for x in (q, k, v))

    def step():
        for x in (q, k, v):
            x.grad = None
        out = F.zigzag_ring_flash_attn_func(q, k, v, causal=True)
        out.backward(dout)

    for _ in range(3):
        step()
    fwd, bwd = [], []
    for _ in range(args.iters):
        torch.cuda.synchronize()
        dist.barrier()
        t0 = time.perf_counter()
        out = F.zigzag_ring_flash_attn_func(q, k, v, causal=True)
        t1 = time.perf_counter()
        out.backward(dout)
        t2 = time.perf_counter()
        fwd.append(t1 - t0)
        bwd.append(t2 - t1)
    fwd.sort()
    bwd.sort()
    if rank == 0:
        print(f"host time of the calls: fwd {1e3 * fwd[len(fwd) // 2]:.3f} ms, "
              f"bwd {1e3 * bwd[len(bwd) // 2]:.3f} ms (medians of {args.iters})")
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            torch.cuda.synchronize()
            dist.barrier()
            step()
        torch.cuda.synchronize()
    if rank == 0:
        print(prof.key_averages().table(sort_by="device_time_total", row_limit=30,
                                        max_name_column_width=70))
        prof.export_chrome_trace(os.path.join(os.environ.get("OUT", "."), "trace.json"))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
