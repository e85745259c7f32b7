"""PyTorch's best single-GPU attention on one rank's tokens, for ring_bench's
"theoretic" (bench/ring_bench.sh passes it as --torch_single_ms).

  python3 bench/torch_single_gpu.py [--tokens 8192] [--heads 32] [--kv_heads 32] [--head_dim 128]

bf16, batch 1, causal. Dense: SDPA's flash and cuDNN backends; varlen: the
flash kernel over ring_bench's four per-rank document sets (averaged), as
the seed's varlen baseline calls flash_attn_varlen. Prints one line:
  F,FB,VF,VFB dense-name varlen-name
the best forward and forward+backward milliseconds and which kernel gave
them (a backend this torch lacks is skipped).
"""
import argparse

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

DOCUMENTS = [[0, 8192], [0, 256, 7648, 8192], [0, 4096, 8192], [0, 3104, 6304, 7904, 8064, 8192]]
aten = torch.ops.aten


def time_ms(fn, iters=10):
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


def dense(a):
    shape_q = (1, a.heads, a.tokens, a.head_dim)
    shape_kv = (1, a.kv_heads, a.tokens, a.head_dim)
    q = torch.randn(shape_q, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(shape_kv, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn(shape_kv, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    dout = torch.randn(shape_q, device="cuda", dtype=torch.bfloat16)
    best = None
    for name, backend in (("torch_flash", SDPBackend.FLASH_ATTENTION),
                          ("torch_cudnn", SDPBackend.CUDNN_ATTENTION)):
        try:
            with sdpa_kernel(backend):
                attn = lambda: F.scaled_dot_product_attention(
                    q, k, v, is_causal=True, enable_gqa=a.kv_heads != a.heads)
                fwd = time_ms(lambda: attn().detach())
                both = time_ms(lambda: attn().backward(dout))
        except RuntimeError:
            continue
        if best is None or both < best[1]:
            best = (fwd, both, name)
    return best


def varlen(a):
    scale = a.head_dim ** -0.5
    fwd_total = both_total = 0.0
    for docs in DOCUMENTS:
        bounds = torch.tensor([x * a.tokens // 8192 for x in docs], device="cuda",
                              dtype=torch.int32)
        longest = int((bounds[1:] - bounds[:-1]).max())
        q = torch.randn(a.tokens, a.heads, a.head_dim, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(a.tokens, a.kv_heads, a.head_dim, device="cuda", dtype=torch.bfloat16)
        v = torch.randn_like(k)
        dout = torch.randn_like(q)

        def forward():
            return aten._flash_attention_forward(q, k, v, bounds, bounds, longest, longest, 0.0,
                                                 True, False, scale=scale)

        def forward_backward():
            out, lse, rng, unused, _ = forward()
            aten._flash_attention_backward(dout, q, k, v, out, lse, bounds, bounds, longest,
                                           longest, 0.0, True, rng, unused, scale=scale)

        fwd_total += time_ms(forward) / len(DOCUMENTS)
        both_total += time_ms(forward_backward) / len(DOCUMENTS)
    return fwd_total, both_total, "torch_flash_varlen"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tokens", type=int, default=8192)
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--kv_heads", type=int, default=32)
    p.add_argument("--head_dim", type=int, default=128)
    a = p.parse_args()
    torch.manual_seed(0)
    d = dense(a)
    try:
        vl = varlen(a)
    except RuntimeError:
        vl = None
    if d is None:
        raise SystemExit("no SDPA backend ran")
    fields = [f"{d[0]:.4f}", f"{d[1]:.4f}"] + (
        [f"{vl[0]:.4f}", f"{vl[1]:.4f}"] if vl else ["0", "0"])
    print(",".join(fields), d[2], vl[2] if vl else "-")


if __name__ == "__main__":
    main()
