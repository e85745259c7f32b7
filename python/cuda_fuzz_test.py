"""Random problems through ringattn.functions on CUDA tensors against a float64
reference, one process per GPU (run it under torchrun on a machine with GPUs;
not in `bazel test`, which has none):

    RINGATTN_LIB=... PYTHONPATH=python torchrun --nproc_per_node=N python/cuda_fuzz_test.py

Each case draws a layout (ring, zigzag, stripe, balanced), a dtype (float32,
bfloat16, float16), a head dim (tensor-core ones and others: 8 to 256),
query heads and a grouped-query kv-head count, a length, causal or not, a
sliding window, a softmax scale, and inputs as given, non-contiguous or at an
address 4 bytes past a multiple of 16. A problem ringattn takes must give O
and dQ, dK, dV within 2e-5 of the float64 reference in float32, and in
bfloat16 / float16 no worse than 1.25x torch's own attention in the dtype
(SDPA with the mask; rows with no allowed key: O = 0); one it does not take must raise ValueError or
RuntimeError with ringattn's message, and the next case must still run (the
GPU never left in an error state). --cases, --seed, --max_seqlen; --cpu runs CPU tensors
over gloo (the CPU backend; //python:cuda_fuzz_cpu_test, Debian's torch
1.13); prints one line a case and a summary; exits 1 on a failure.
"""

import argparse
import math
import os
import random
import sys
import zlib

import torch
import torch.distributed as dist

from ringattn import functions as F

LAYOUTS = {"ring": "ring_flash_attn_func", "zigzag": "zigzag_ring_flash_attn_func",
           "stripe": "stripe_flash_attn_func", "balanced": "balanced_flash_attn_func"}
# float32: max relative error against float64; bfloat16 / float16: no worse
# than 1.25x torch's own attention in the dtype (norm-relative).
BOUND_F32 = 2e-5


def reference(q, k, v, causal, window, scale, sdpa=False):
    """Attention over (1, seqlen, heads, dim) in the inputs' dtype (float64:
    the reference); window (left, right), -1: unbounded; causal bottom-right
    (equal lengths: the diagonal). sdpa: torch's scaled_dot_product_attention
    with the mask (torch 2; Debian's 1.13 has none: the same math in the
    dtype) -- the dtype's own error to hold ringattn's to."""
    dtype = q.dtype
    if q.device.type == "cpu" and dtype == torch.float16:  # no CPU half matmul in torch 1.13
        q, k, v = (x.float() for x in (q, k, v))
    group = q.shape[2] // k.shape[2]
    q, k, v = (x.transpose(1, 2) for x in (q, k, v))
    k, v = (x.repeat_interleave(group, dim=1) for x in (k, v))
    n = q.shape[2]
    i = torch.arange(n, device=q.device)[:, None]
    j = torch.arange(n, device=q.device)[None, :]
    allowed = torch.ones(n, n, dtype=torch.bool, device=q.device)
    if causal:
        allowed &= j <= i
    left, right = window
    if left >= 0:
        allowed &= j >= i - left
    if right >= 0:
        allowed &= j <= i + right
    if sdpa and hasattr(torch.nn.functional, "scaled_dot_product_attention"):
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed,
                                                               scale=scale)
        return out.nan_to_num(0.0).transpose(1, 2).to(dtype)
    s = (q @ k.transpose(-1, -2)) * scale
    s = s.masked_fill(~allowed, float("-inf"))
    p = torch.softmax(s, dim=-1).nan_to_num(0.0)  # a row with no key: O = 0
    return (p @ v).transpose(1, 2).to(dtype)


def as_given(x, form):
    """x as a caller might hand it: itself, a non-contiguous view of the same
    values, or a contiguous view 4 bytes past a 16-byte boundary."""
    if form == "strided":
        wide = torch.zeros(*x.shape[:-1], 2 * x.shape[-1], dtype=x.dtype, device=x.device)
        wide[..., ::2] = x
        return wide[..., ::2]  # head_dim not contiguous: the package copies it
    if form == "misaligned":
        base = torch.zeros(x.numel() + 2, dtype=x.dtype, device=x.device)
        base[2:] = x.flatten()
        if x.element_size() == 4:
            base = torch.zeros(x.numel() + 1, dtype=x.dtype, device=x.device)
            base[1:] = x.flatten()
            return base[1:].view(x.shape)
        return base[2:].view(x.shape)
    return x


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def draw(rng, world, max_seqlen):
    dim = rng.choice([8, 16, 40, 64, 64, 72, 96, 128, 128, 160, 256])
    heads = rng.choice([1, 2, 3, 4, 6, 8])
    kv_heads = rng.choice([h for h in range(1, heads + 1) if heads % h == 0])
    unit = 2 * world if rng.random() < 0.8 else 1  # sometimes not divisible
    seqlen = unit * rng.randint(1, max(1, max_seqlen // unit))
    window = (-1, -1)
    if rng.random() < 0.3:
        window = (rng.choice([-1, 0, 1, 7, 64, 300]), rng.choice([-1, 0, 5, 100]))
    return dict(layout=rng.choice(list(LAYOUTS)),
                dtype=rng.choice([torch.float32, torch.bfloat16, torch.float16]),
                dim=dim, heads=heads, kv_heads=kv_heads, seqlen=seqlen,
                causal=rng.random() < 0.6, window=window,
                scale=None if rng.random() < 0.7 else rng.uniform(0.02, 1.0),
                form=rng.choice(["given"] * 6 + ["strided", "misaligned"]))


def run_case(case, device, world):
    # The same tensors on every rank and in every run (str's hash() is salted
    # per process).
    torch.manual_seed(zlib.crc32(str(case).encode()))
    n, hq, hk, d = case["seqlen"], case["heads"], case["kv_heads"], case["dim"]
    full = [torch.randn(1, n, h, d, dtype=torch.float64, device=device)
            for h in (hq, hk, hk, hq)]
    scale = case["scale"] if case["scale"] is not None else 1 / math.sqrt(d)
    layout = case["layout"]
    try:
        real = F.position_ids(layout, n).to(device)
        local = [x[:, real].to(case["dtype"]).requires_grad_() for x in full[:3]]
        given = [as_given(x, case["form"]) for x in local]
        out = getattr(F, LAYOUTS[layout])(*given, causal=case["causal"],
                                          window_size=case["window"],
                                          softmax_scale=case["scale"])
        out.backward(full[3][:, real].to(case["dtype"]))
        synchronize(device)
    except (ValueError, RuntimeError) as e:
        message = str(e)
        assert "ringattn" in message, f"an error without ringattn's message: {message!r}"
        synchronize(device)  # the GPU is not left in an error state
        return "refused", message.splitlines()[0][:100]
    exact = grads(full, case, scale, real, None)
    mine = [out.detach()] + [x.grad for x in local]
    errors = error_of(mine, exact, case, layout, n)
    if case["dtype"] == torch.float32:
        bound = {name: BOUND_F32 for name in errors}
    else:  # torch's own attention in the dtype, against the same float64 result
        theirs = error_of(grads(full, case, scale, real, case["dtype"]), exact, case, layout, n)
        # (on CPU torch 1.13 has no SDPA and no half matmul: its baseline
        # there is float32 math on rounded inputs, more accurate than a half
        # kernel, hence the wider factor)
        # and a floor of four roundings of the dtype: on short sequences both
        # errors are a few output roundings, and their ratio is noise)
        if full[0].is_cuda:
            bound = {name: 1.25 * theirs[name] + 1e-4 for name in errors}
        else:
            floor = 4 * torch.finfo(case["dtype"]).eps
            bound = {name: max(1.5 * theirs[name] + 1e-4, floor) for name in errors}
    bad = {k: v for k, v in errors.items() if not v <= bound[k]}
    return ("FAILED" if bad else "ok"), " ".join(f"{k} {v:.1e} (<= {bound[k]:.1e})"
                                                  for k, v in errors.items())


def grads(full, case, scale, real, dtype):
    """O, dQ, dK, dV of torch's attention on the global tensors: float64
    (dtype None), else torch's own in `dtype`; rows in this rank's order."""
    xs = [(x if dtype is None else x.to(dtype)).detach().clone().requires_grad_()
          for x in full[:3]]
    out = reference(*xs, case["causal"], case["window"], scale, sdpa=dtype is not None)
    out.backward(full[3] if dtype is None else full[3].to(dtype))
    return [y[:, real].detach() for y in [out] + [x.grad for x in xs]]


def error_of(got, want, case, layout, n):
    """Each result's error against `want`, all ranks' rows: max relative
    (float32) or norm-relative, relative to the result floored at 1 an
    element (the inputs are N(0, 1); a window of one key makes dQ and dK zero
    up to rounding)."""
    errors = {}
    for name, a, b in zip(("out", "dq", "dk", "dv"), got, want):
        a = F.unshard(a[0].double().flatten(1), layout, n, dim=0)
        b = F.unshard(b[0].double().flatten(1), layout, n, dim=0)
        if case["dtype"] == torch.float32:
            errors[name] = float((a - b).abs().max() / b.abs().max().clamp_min(1.0))
        else:
            errors[name] = float((a - b).norm() / b.norm().clamp_min(math.sqrt(b.numel())))
    return errors


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=150)
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--max_seqlen", type=int, default=1024)
    parser.add_argument("--cpu", action="store_true",
                        help="CPU tensors over gloo (the CPU backend): the script's own check")
    args = parser.parse_args()
    dist.init_process_group("gloo" if args.cpu else "nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    if args.cpu:
        device = torch.device("cpu")
    else:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)
    rng = random.Random(args.seed)
    counts = {"ok": 0, "refused": 0, "FAILED": 0}
    for i in range(args.cases):
        case = draw(rng, world, args.max_seqlen)
        verdict, detail = run_case(case, device, world)
        counts[verdict] += 1
        if rank == 0:
            shown = {k: (str(v).replace("torch.", "")) for k, v in case.items()}
            print(f"case {i} {verdict}: {shown} | {detail}", flush=True)
    dist.barrier()
    if rank == 0:
        print(f"cuda_fuzz_test: {args.cases} cases, {counts['ok']} within bounds, "
              f"{counts['refused']} refused with a message, {counts['FAILED']} over the bound",
              flush=True)
    dist.destroy_process_group()
    return 1 if counts["FAILED"] else 0


if __name__ == "__main__":
    sys.exit(main())
