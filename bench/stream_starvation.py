"""Does a transfer kernel on a second stream overlap the attention kernel
launched beside it? One GPU, for the simulator's model of
ring-flash-attention (docs/SIMULATOR.md).

The seed issues each step's send/recv before the step's attention kernel;
PyTorch puts NCCL's kernel on a normal-priority stream that first waits for
the compute stream's earlier work (an event). The host runs ahead of the
GPU, so when that event fires the next attention kernel, queued behind it
on the compute stream, becomes ready at the same moment. This script plays
that sequence with an NCCL-like kernel (a few persistent CTAs copying a K/V
step's 33.5 MB, written in Triton) on a normal- and on a high-priority
stream, and prints when the copy ends relative to the attention kernel:
if it ends only with the attention kernel, the transfer is serialized
after it (starved of SMs), not hidden behind it.
"""
import torch
import triton
import triton.language as tl

S, H, HK, D = 8192, 32, 8, 128
aten = torch.ops.aten


@triton.jit
def persistent_copy(src, dst, n, BLOCK: tl.constexpr, CTAS: tl.constexpr):
    pid = tl.program_id(0)
    for start in range(pid * BLOCK, n, CTAS * BLOCK):
        offs = start + tl.arange(0, BLOCK)
        mask = offs < n
        tl.store(dst + offs, tl.load(src + offs, mask=mask), mask=mask)


def attention(q, k, v):
    return aten._flash_attention_forward(q, k, v, None, None, S, S, 0.0, True, False,
                                         scale=D ** -0.5)[0]


def main():
    torch.manual_seed(0)
    dev, dt = "cuda", torch.bfloat16
    q = torch.randn(1, S, H, D, device=dev, dtype=dt)
    k = torch.randn(1, S, HK, D, device=dev, dtype=dt)
    v = torch.randn(1, S, HK, D, device=dev, dtype=dt)
    n = 2 * S * HK * D  # K and V of one step, bf16: 33.5 MB
    src = torch.randn(n, device=dev, dtype=dt)
    dst = torch.empty_like(src)
    ctas = 16
    copy = lambda: persistent_copy[(ctas,)](src, dst, n, BLOCK=4096, CTAS=ctas)
    compute = torch.cuda.current_stream()
    ev = lambda: torch.cuda.Event(enable_timing=True)

    # Alone: the attention kernel and the copy.
    for _ in range(3):
        attention(q, k, v)
        copy()
    torch.cuda.synchronize()
    a0, a1, c1 = ev(), ev(), ev()
    a0.record()
    attention(q, k, v)
    a1.record()
    copy()
    c1.record()
    torch.cuda.synchronize()
    t_attn, t_copy = a0.elapsed_time(a1), a1.elapsed_time(c1)
    print(f"{torch.cuda.get_device_name()}: attention alone {t_attn:.3f} ms "
          f"(causal {S} tokens, {H}/{HK} heads, d{D}); copy alone {t_copy:.3f} ms "
          f"({2 * n / 1e6:.1f} MB, {ctas} CTAs)")

    for name, priority in (("normal", 0), ("high", -1)):
        side = torch.cuda.Stream(priority=priority)
        copy_end, attn_end = [], []
        for trial in range(8):
            for _ in range(4):  # the host runs ahead: the GPU is busy
                attention(q, k, v)
            before = ev()
            before.record(compute)
            side.wait_event(before)
            with torch.cuda.stream(side):
                copy()
                c = ev()
                c.record(side)
            attention(q, k, v)  # the next step's kernel, queued behind
            a = ev()
            a.record(compute)
            compute.wait_stream(side)
            torch.cuda.synchronize()
            copy_end.append(before.elapsed_time(c))
            attn_end.append(before.elapsed_time(a))
        copy_end.sort()
        attn_end.sort()
        print(f"{name:6s} priority stream: copy ends {copy_end[4]:.3f} ms, attention ends "
              f"{attn_end[4]:.3f} ms after the event (median of 8); copy alone {t_copy:.3f}")


if __name__ == "__main__":
    main()
