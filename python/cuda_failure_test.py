"""A silent peer on CUDA tensors over NCCL, one process per GPU (two GPUs;
run under torchrun on a machine that has them):

    RINGATTN_LIB=... PYTHONPATH=python torchrun --nproc_per_node=2 python/cuda_failure_test.py

Both ranks make their ringattn World with a short timeout and run one
forward and backward together; then rank 1 goes silent (sleeps, never
calls) while rank 0 runs another forward: rank 0 must get a RuntimeError
with ringattn's message within the timeout (plus a margin), not hang.
With --async_passes (World.set_async_passes) the forward returns at once;
then rank 0's torch.cuda.synchronize must return (the watchdog aborts the
stuck NCCL transfers after the timeout) and World.synchronize raise.
Prints one line per rank; exits 0 when rank 0 saw that.
"""

import os
import sys
import time

import torch
import torch.distributed as dist

from ringattn import distributed
from ringattn import functions as F

TIMEOUT_S = 10.0
SILENCE_S = 3 * TIMEOUT_S


def main():
    dist.init_process_group("gloo")  # the test's own messages never touch the GPUs' NCCL
    rank = dist.get_rank()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    torch.cuda.set_device(device)
    world = distributed.process_group_world(timeout_s=TIMEOUT_S, device=device)  # cached
    async_passes = "--async_passes" in sys.argv[1:]
    world.set_async_passes(async_passes)
    torch.manual_seed(rank)
    q, k, v = (torch.randn(1, 1024, 4, 64, device=device, dtype=torch.bfloat16,
                           requires_grad=True) for _ in range(3))
    F.zigzag_ring_flash_attn_func(q, k, v, causal=True).float().sum().backward()
    torch.cuda.synchronize(device)
    dist.barrier()
    if rank == 1:
        print(f"rank 1: silent for {SILENCE_S:g} s", flush=True)
        time.sleep(SILENCE_S)
        dist.barrier()
        return 0
    start = time.monotonic()
    try:
        with torch.no_grad():
            F.zigzag_ring_flash_attn_func(q, k, v, causal=True)
            torch.cuda.synchronize(device)  # async: returns once the watchdog aborted
            if async_passes:
                print(f"rank 0: the stream drained after {time.monotonic() - start:.1f} s",
                      flush=True)
                world.synchronize()  # raises the pass's error
    except RuntimeError as e:
        waited = time.monotonic() - start
        ok = waited <= TIMEOUT_S + 5
        print(f"rank 0: RuntimeError after {waited:.1f} s (timeout {TIMEOUT_S:g} s): {e}",
              flush=True)
    else:
        print("rank 0: FAIL: no error while the peer was silent", flush=True)
        ok = False
    dist.barrier()  # the peer wakes up; both leave
    print(f"rank 0: {'passed' if ok else 'FAILED'}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
