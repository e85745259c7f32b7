"""Two builds of the Python entry (a `ringattn` package directory and its
libringattn.so each) alternated in ONE process on one GPU: the host time
of a training step (zigzag_ring_flash_attn_func forward + backward, bf16,
--tokens per rank, 32 heads, d128, causal, asynchronous passes, gradients
assigned), and each C ABI call's time (--cpu: fp32 CPU tensors over gloo,
to check the script without a GPU). Separate processes of the same
build spread 1.6x on an H200's host (forty-ninth session); rounds inside
one process, A and B in turn, do not.

    PYTHONPATH= torchrun --nproc_per_node=1 bench/python_entry_ab.py \\
      --a_package=OLD/python/ringattn --a_lib=OLD/libringattn.so \\
      --b_package=python/ringattn --b_lib=bazel-bin/python/libringattn.so --tokens=2048

The A package is imported as `ringattn_a`, B as `ringattn_b` (copies in a
temporary directory); each loads its own library (RINGATTN_LIB at import).
Prints both builds' host ms per step by round, B / A (the median of the
rounds' ratios), and the medians of the C ABI's forward and backward_from.
"""

import argparse
import importlib
import os
import shutil
import sys
import tempfile
import time

import torch
import torch.distributed as dist


def median(xs):
    return sorted(xs)[len(xs) // 2]


def load(package_dir, lib, name, into):
    """The package at package_dir as module `name` over library `lib`."""
    shutil.copytree(package_dir, os.path.join(into, name),
                    ignore=shutil.ignore_patterns("__pycache__"))
    os.environ["RINGATTN_LIB"] = lib
    return (importlib.import_module(f"{name}.functions"),
            importlib.import_module(f"{name}.distributed"), importlib.import_module(f"{name}._capi"))


def main():
    parser = argparse.ArgumentParser()
    for side in ("a", "b"):
        parser.add_argument(f"--{side}_package", required=True)
        parser.add_argument(f"--{side}_lib", required=True)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--head_dim", type=int, default=128)
    parser.add_argument("--cpu", action="store_true",
                        help="CPU tensors over gloo in fp32 (a check of the script itself)")
    parser.add_argument("--steps", type=int, default=200, help="steps a round")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    where = tempfile.mkdtemp()
    sys.path.insert(0, where)
    builds = {"A": load(args.a_package, args.a_lib, "ringattn_a", where),
              "B": load(args.b_package, args.b_lib, "ringattn_b", where)}
    dist.init_process_group("gloo" if args.cpu else "nccl")
    if args.cpu:
        device, dtype, synchronize = torch.device("cpu"), torch.float32, lambda: None
    else:
        device, dtype = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))), torch.bfloat16
        torch.cuda.set_device(device)
        synchronize = torch.cuda.synchronize
        for _, d, _ in builds.values():
            d.process_group_world(device=device).set_async_passes(True)
    q, k, v, dout = (torch.randn(1, args.tokens, args.heads, args.head_dim, device=device,
                                 dtype=dtype) for _ in range(4))
    q, k, v = (x.requires_grad_() for x in (q, k, v))
    calls = {}
    for label, (_, _, capi) in builds.items():
        for name in ("ringattn_forward", "ringattn_backward_from"):
            f = getattr(capi.lib, name)

            def timed(*a, _f=f, _key=(label, name)):
                start = time.perf_counter()
                result = _f(*a)
                calls.setdefault(_key, []).append(time.perf_counter() - start)
                return result

            setattr(capi.lib, name, timed)

    def steps(functions, n):
        for _ in range(n):
            for x in (q, k, v):
                x.grad = None
            functions.zigzag_ring_flash_attn_func(q, k, v, causal=True).backward(dout)

    for functions, _, _ in builds.values():
        steps(functions, 30)  # rings made, kernels loaded, clocks up
    calls.clear()
    per_step = {"A": [], "B": []}
    for r in range(args.rounds):
        for label in ("A", "B") if r % 2 == 0 else ("B", "A"):
            synchronize()
            start = time.perf_counter()
            steps(builds[label][0], args.steps)
            per_step[label].append(1e3 * (time.perf_counter() - start) / args.steps)
            synchronize()
    for label, ms in per_step.items():
        print(f"{label}: host ms per step by round " + " ".join(f"{x:.3f}" for x in ms) +
              f"; median {median(ms):.3f}", flush=True)
    ratio = median([b / a for a, b in zip(per_step["A"], per_step["B"])])
    print(f"B / A host per step, median of the rounds' ratios: {ratio:.3f} "
          f"({args.tokens} tokens, W = 1)")
    for (label, name), xs in sorted(calls.items()):
        print(f"  C ABI {label} {name}: median {1e6 * median(xs):.1f} us over {len(xs)} calls")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
