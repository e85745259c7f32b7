"""Single-GPU FlashAttention-2 rates on the kernel calls ring-flash-attention
makes, for the simulator's seed model (docs/SIMULATOR.md).

PyTorch's flash backend is FlashAttention-2. H800 has H100's SMs, so rates
measured on an H100 stand for the H800 of the seed's table. Shapes: bf16,
batch 1, 32 query / 8 kv heads, d128; the seed's ring steps call the kernel
on 8192 x 8192 causal (baseline, zigzag step 0, stripe), 8192 x 4096 and
4096 x 8192 full (zigzag), 8191 x 8191 causal (stripe's shifted steps) and
8192 x 8192 full (ring). Prints TFLOP/s forward and backward, and each
relative to the causal baseline per FLOP.
"""
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def time_ms(fn, iters=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(iters):
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def flops(sq, sk, causal, heads=32, d=128):
    if causal:  # bottom-right aligned, as flash_attn
        pairs = sum(min(sk, max(0, sk - sq + i + 1)) for i in range(sq))
    else:
        pairs = sq * sk
    return 4.0 * pairs * heads * d


def main():
    torch.manual_seed(0)
    rows = [("causal 8192x8192", 8192, 8192, True), ("full 8192x8192", 8192, 8192, False),
            ("full 8192x4096", 8192, 4096, False), ("full 4096x8192", 4096, 8192, False),
            ("causal 8191x8191", 8191, 8191, True)]
    base = None
    print(f"{'call':18s} {'fwd TFLOP/s':>11s} {'bwd TFLOP/s':>11s} {'fwd rel':>8s} {'bwd rel':>8s}")
    for name, sq, sk, causal in rows:
        q = torch.randn(1, 32, sq, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        k = torch.randn(1, 8, sk, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        v = torch.randn(1, 8, sk, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            fwd = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
            out = fwd()
            grad = torch.randn_like(out)
            fwd_ms = time_ms(fwd)
            bwd_ms = time_ms(lambda: torch.autograd.grad(out, (q, k, v), grad, retain_graph=True))
        f = flops(sq, sk, causal)
        rates = (f / fwd_ms / 1e9, 2.5 * f / bwd_ms / 1e9)
        if base is None:
            base = rates
        print(f"{name:18s} {rates[0]:11.1f} {rates[1]:11.1f} {rates[0] / base[0]:8.3f} "
              f"{rates[1] / base[1]:8.3f}", flush=True)


if __name__ == "__main__":
    main()
