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

--back_to_back STEPS: instead, whether a training loop's step is bound by
the host or the GPU: STEPS steps queued back to back (asynchronous passes)
three times, ms per step by events and the host's ms per step over the
same loop, then the GPU's kernel time per step (the sum of every kernel's
time over 40 profiled steps) and the kernels that take it. A step of the
host's time with GPU work well below it is host-bound (fifty-first
session, one H200, 2048 tokens: 0.46-0.70 ms a step for 0.43 ms of GPU
work, the host's time varying between processes; 8192 tokens: 3.92-4.0
ms for 3.71).

--trace DIR (with --back_to_back): also profiles 40 steps with the host's
activity (torch ops, CUDA runtime calls, the C ABI's forward and backward
as ranges), writes DIR/trace_TOKENS.json and prints bench/trace_gaps.py's
reading of it: where the GPU idles between operations, and whether it
waited for the host to launch the next one (fifty-second session).
"""

import argparse
import os
import sys
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
    parser.add_argument("--back_to_back", type=int, default=0,
                        help="STEPS: host- or GPU-bound steps queued back to back (see above)")
    parser.add_argument("--trace", default="",
                        help="DIR: with --back_to_back, the GPU's idle holes from a trace (above)")
    args = parser.parse_args()
    dist.init_process_group("nccl")
    rank = dist.get_rank()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    torch.cuda.set_device(device)
    if args.async_passes or args.back_to_back:
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
    if args.back_to_back:
        back_to_back(step, args.back_to_back, rank)
        if args.trace:
            trace_holes(step, args.trace, f"trace_{args.tokens}.json", rank)
        dist.destroy_process_group()
        return
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


def profiled_steps(step, count, activities):
    """`count` steps under torch.profiler with `activities`, the GPU idle at
    the start and finished at the end."""
    torch.cuda.synchronize()
    with profile(activities=activities) as prof:
        for _ in range(count):
            step()
        torch.cuda.synchronize()
    return prof


def back_to_back(step, steps, rank, profiled=40):
    for _ in range(100):
        step()
    gpu_ms, host_ms = [], []
    for _ in range(3):
        torch.cuda.synchronize()
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        host_ms.append(1e3 * (time.perf_counter() - t0) / steps)
        end.record()
        torch.cuda.synchronize()
        gpu_ms.append(begin.elapsed_time(end) / steps)
    prof = profiled_steps(step, profiled, [ProfilerActivity.CUDA])
    kernels = [e for e in prof.events() if e.device_type.name == "CUDA"]
    by_name = {}
    for e in kernels:
        by_name[e.name[:48]] = by_name.get(e.name[:48], 0.0) + e.device_time / profiled
    work_ms = sum(by_name.values()) / 1e3
    if rank == 0:
        print(f"{steps} steps back to back: ms a step {' '.join(f'{x:.3f}' for x in gpu_ms)}, "
              f"host ms a step {' '.join(f'{x:.3f}' for x in host_ms)}; GPU kernel time "
              f"{work_ms:.3f} ms a step ({profiled} profiled)")
        for name, us in sorted(by_name.items(), key=lambda x: -x[1])[:10]:
            print(f"  {us:8.1f} us a step  {name}")


def trace_holes(step, directory, name, rank, profiled=40):
    """`profiled` steps under torch.profiler with the host's activity, the C
    ABI's calls as ranges; the trace to directory/name and trace_gaps'
    report of it."""
    from torch.autograd.profiler import record_function
    from ringattn import _capi
    originals = {}
    for symbol in ("ringattn_forward", "ringattn_backward_from"):
        original = originals[symbol] = getattr(_capi.lib, symbol)

        def ranged(*a, _original=original, _symbol=symbol):
            with record_function(_symbol):
                return _original(*a)
        setattr(_capi.lib, symbol, ranged)
    try:
        prof = profiled_steps(step, profiled, [ProfilerActivity.CPU, ProfilerActivity.CUDA])
    finally:
        for symbol, original in originals.items():
            setattr(_capi.lib, symbol, original)
    if rank != 0:
        return
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    prof.export_chrome_trace(path)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import trace_gaps
    events = trace_gaps.load_events(path)
    print(f"{path}: {profiled} steps with the host's activity traced")
    trace_gaps.report(trace_gaps.analyze(events), profiled)
    trace_gaps.report_chain(trace_gaps.range_chain(events, list(originals)))


if __name__ == "__main__":
    main()
