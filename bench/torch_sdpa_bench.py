"""PyTorch SDPA on the rows of bench/kernel_bench.cc: the baseline our
kernels are measured against, in the same run on the same GPU.

Prints CSV (row, impl, pass, ms, tflops) for SDPA's flash, cuDNN and
efficient backends (those that accept the row): forward, backward alone
(autograd.grad of a kept forward graph) and forward + backward. FLOPs: 4*b*s*s*h*d, halved for causal; backward counts 2.5x.
"""
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
import torch.nn.functional as F

ROWS = [
    ("bf16_b1_s8192_h32_d128_causal", torch.bfloat16, 1, 8192, 32, 128, True),
    ("bf16_b1_s8192_h32_d128_full", torch.bfloat16, 1, 8192, 32, 128, False),
    ("bf16_b1_s16384_h32_d64_causal", torch.bfloat16, 1, 16384, 32, 64, True),
    ("bf16_b1_s16384_h32_d256_causal", torch.bfloat16, 1, 16384, 32, 256, True),
    ("bf16_b1_s32768_h32_d128_causal", torch.bfloat16, 1, 32768, 32, 128, True),
    ("bf16_b16_s1024_h32_d128_causal", torch.bfloat16, 16, 1024, 32, 128, True),
    ("fp32_b4_s4096_h12_d64_causal", torch.float32, 4, 4096, 12, 64, True),
    ("fp32_b4_s4096_h12_d128_causal", torch.float32, 4, 4096, 12, 128, True),
]
BACKENDS = [("torch_flash", SDPBackend.FLASH_ATTENTION),
            ("torch_cudnn", SDPBackend.CUDNN_ATTENTION),
            ("torch_efficient", SDPBackend.EFFICIENT_ATTENTION)]


def time_ms(fn, iterations):
    fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iterations):
        fn()
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) / iterations


def main():
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    only = sys.argv[2] if len(sys.argv) > 2 else ""  # one row, as kernel_bench's
    torch.backends.cuda.matmul.allow_tf32 = False
    print("row,impl,pass,ms,tflops")
    for name, dtype, b, s, h, d, causal in ROWS:
        if only and name != only:
            continue
        flops = 4.0 * b * s * s * h * d / (2 if causal else 1)
        q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=dtype,
                               requires_grad=True) for _ in range(3))
        for impl, backend in BACKENDS:
            try:
                with sdpa_kernel(backend):
                    fwd = time_ms(lambda: F.scaled_dot_product_attention(
                        q, k, v, is_causal=causal), iterations)
                    out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                    grad = torch.randn_like(out)

                    bwd = time_ms(lambda: torch.autograd.grad(
                        out, (q, k, v), grad, retain_graph=True), iterations)

                    def fwd_bwd():
                        o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                        o.backward(grad)
                    both = time_ms(fwd_bwd, iterations)
            except RuntimeError as error:  # backend does not take this row
                print(f"# {name} {impl}: {str(error).splitlines()[0]}", file=sys.stderr)
                continue
            print(f"{name},{impl},fwd,{fwd:.3f},{flops / fwd / 1e9:.2f}")
            print(f"{name},{impl},bwd,{bwd:.3f},{2.5 * flops / bwd / 1e9:.2f}")
            print(f"{name},{impl},fwd+bwd,{both:.3f},{3.5 * flops / both / 1e9:.2f}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
