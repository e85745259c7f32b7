"""One rank of ring-flash-attention's forward and backward, replayed on one
GPU without communication, to measure the seed implementation's own costs
for the simulator (docs/SIMULATOR.md): the kernel calls it makes per step
and the eager PyTorch work around them (the fp32 merge of every block, the
slice write-backs, the backward's fp32 adds), in the order its code runs
them. K/V do not travel: each step reuses the rank's own tensors, which
changes no shape. The seed's comm is hidden behind compute at 8192 tokens
per rank (33.5 MB per step), so a rank's replay time is what the seed table
measures up to the ring's waits.

Shapes as the seed's benchmark: bf16, batch 1, 8192 tokens per rank, 32
query / 8 kv heads, head_dim 128, causal, W = 8. Kernels: PyTorch's flash
backend (FlashAttention-2), called through aten as flash_attn's functions
are. Prints, per layout and pass, the replay time of a rank, the
single-GPU baseline (one causal 8192-token call) and W x baseline / replay,
the efficiency the seed's table defines if communication cost nothing;
then the time of each kind of eager op, and its bytes per element at the
H100's nominal 3.35 TB/s.
"""
import sys

import torch
import torch.nn.functional as F

W, S, H, HK, D = 8, 8192, 32, 8, 128
SCALE = D ** -0.5
aten = torch.ops.aten


def fa_fwd(q, k, v, causal):
    out, lse, rng, unused, _ = aten._flash_attention_forward(
        q, k, v, None, None, q.shape[1], k.shape[1], 0.0, causal, False, scale=SCALE)
    return out, lse, (rng, unused)


def fa_bwd(dout, q, k, v, out, lse, causal, rng):
    return aten._flash_attention_backward(
        dout, q, k, v, out, lse, None, None, q.shape[1], k.shape[1], 0.0, causal, rng[0],
        rng[1], scale=SCALE)


@torch.jit.script
def merge(acc: torch.Tensor, acc_lse: torch.Tensor, block: torch.Tensor,
          block_lse: torch.Tensor):
    # acc (b, s, h, d) fp32, acc_lse (b, s, h, 1); block_lse (b, h, s).
    block = block.to(torch.float32)
    block_lse = block_lse.transpose(-2, -1).unsqueeze(dim=-1)
    acc = acc - torch.sigmoid(block_lse - acc_lse) * (acc - block)
    acc_lse = acc_lse - F.logsigmoid(acc_lse - block_lse)
    return acc, acc_lse


class State:
    """The seed's running fp32 output and LSE of one rank."""

    def __init__(self):
        self.out = None
        self.lse = None

    def add(self, block, block_lse, rows=None):
        if self.out is None:
            self.out = block.to(torch.float32)
            self.lse = block_lse.transpose(-2, -1).unsqueeze(dim=-1)
        elif rows is None:
            self.out, self.lse = merge(self.out, self.lse, block, block_lse)
        else:  # merge into a row slice, written back
            o, l = merge(self.out[:, rows], self.lse[:, rows], block, block_lse)
            self.out[:, rows], self.lse[:, rows] = o, l

    def final(self, dtype):
        return self.out.to(dtype), self.lse.squeeze(dim=-1).transpose(1, 2)


def ring_fwd(rank, q, k, v):
    st = State()
    for step in range(W):
        if step <= rank:
            o, l, _ = fa_fwd(q, k, v, step == 0)
            st.add(o, l)
    return st.final(q.dtype)


def zigzag_fwd(rank, q, k, v):
    st, half = State(), S // 2
    q1 = q[:, half:]
    for step in range(W):
        if step == 0:
            o, l, _ = fa_fwd(q, k, v, True)
            st.add(o, l)
        elif step <= rank:
            o, l, _ = fa_fwd(q, k[:, :half], v[:, :half], False)
            st.add(o, l)
        else:
            o, l, _ = fa_fwd(q1, k, v, False)
            st.add(o, l, slice(half, None))
    return st.final(q.dtype)


def stripe_fwd(rank, q, k, v):
    st = State()
    for step in range(W):
        if step <= rank:
            o, l, _ = fa_fwd(q, k, v, True)
            st.add(o, l)
        else:
            o, l, _ = fa_fwd(q[:, 1:], k[:, :-1], v[:, :-1], True)
            st.add(o, l, slice(1, None))
    return st.final(q.dtype)


def ring_bwd(rank, q, k, v, out, lse, dout, rng):
    dq = dk = dv = None
    for step in range(W):
        if step <= rank:
            bq, bk, bv = fa_bwd(dout, q, k, v, out, lse, step == 0, rng)
            if dq is None:
                dq, dk, dv = bq.float(), bk.float(), bv.float()
            else:
                dq += bq
                dk, dv = bk + dk, bv + dv
    return dq.to(q.dtype), dk.to(q.dtype), dv.to(q.dtype)


def zigzag_bwd(rank, q, k, v, out, lse, dout, rng):
    half = S // 2
    dout1, q1, out1 = dout[:, half:], q[:, half:], out[:, half:]
    lse1 = lse[:, :, half:].contiguous()
    dq = dk = dv = None
    for step in range(W):
        if step == 0:
            bq, bk, bv = fa_bwd(dout, q, k, v, out, lse, True, rng)
            dq, dk, dv = bq.float(), bk.float(), bv.float()
        elif step <= rank:
            bq, bk, bv = fa_bwd(dout, q, k[:, :half], v[:, :half], out, lse, False, rng)
            dq += bq
            dk[:, :half] += bk
            dv[:, :half] += bv
        else:
            bq, bk, bv = fa_bwd(dout1, q1, k, v, out1, lse1, False, rng)
            dq[:, half:] += bq
            dk, dv = bk + dk, bv + dv
    return dq.to(q.dtype), dk.to(q.dtype), dv.to(q.dtype)


def stripe_bwd(rank, q, k, v, out, lse, dout, rng):
    lse1 = None
    dq = dk = dv = None
    for step in range(W):
        if step <= rank:
            bq, bk, bv = fa_bwd(dout, q, k, v, out, lse, True, rng)
            if dq is None:
                dq, dk, dv = bq.float(), bk.float(), bv.float()
            else:
                dq += bq
                dk, dv = bk + dk, bv + dv
        else:
            if lse1 is None:
                lse1 = lse[:, :, 1:].contiguous()
            bq, bk, bv = fa_bwd(dout[:, 1:], q[:, 1:], k[:, :-1], v[:, :-1], out[:, 1:], lse1,
                                True, rng)
            dq[:, 1:] += bq
            dk[:, :-1] += bk
            dv[:, :-1] += bv
    return dq.to(q.dtype), dk.to(q.dtype), dv.to(q.dtype)


def time_ms(fn, iters):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def main():
    iters = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    torch.manual_seed(0)
    dev, dt = "cuda", torch.bfloat16
    q = torch.randn(1, S, H, D, device=dev, dtype=dt)
    k = torch.randn(1, S, HK, D, device=dev, dtype=dt)
    v = torch.randn(1, S, HK, D, device=dev, dtype=dt)
    dout = torch.randn(1, S, H, D, device=dev, dtype=dt)
    out, lse, rng = fa_fwd(q, k, v, True)

    base_f = time_ms(lambda: fa_fwd(q, k, v, True), iters)
    base_b = time_ms(lambda: fa_bwd(dout, q, k, v, out, lse, True, rng), iters)
    print(f"{torch.cuda.get_device_name()}; W={W}, {S} tokens/rank, {H}/{HK} heads, d{D}, bf16")
    print(f"single GPU (one causal {S}-token call): fwd {base_f:.3f} ms, bwd {base_b:.3f} ms")
    print(f"{'layout':8s} {'rank':>4s} {'fwd ms':>8s} {'eff':>6s} {'fwd+bwd ms':>10s} {'eff':>6s}")
    layouts = [("ring", ring_fwd, ring_bwd, [W - 1]), ("zigzag", zigzag_fwd, zigzag_bwd, [0, W - 1]),
               ("stripe", stripe_fwd, stripe_bwd, [0, W - 1])]
    for name, fwd, bwd, ranks in layouts:
        for rank in ranks:
            f_ms = time_ms(lambda: fwd(rank, q, k, v), iters)
            o, l = fwd(rank, q, k, v)
            b_ms = time_ms(lambda: bwd(rank, q, k, v, o, l, dout, rng), iters)
            print(f"{name:8s} {rank:4d} {f_ms:8.3f} {100 * W * base_f / f_ms:5.1f}% "
                  f"{f_ms + b_ms:10.3f} {100 * W * (base_f + base_b) / (f_ms + b_ms):5.1f}%",
                  flush=True)

    # The eager ops around the kernels, one at a time.
    st = State()
    st.add(out, lse)
    half = S // 2
    o_half, l_half, _ = fa_fwd(q[:, half:], k, v, False)
    o_shift, l_shift, _ = fa_fwd(q[:, 1:], k[:, :-1], v[:, :-1], True)
    acc = torch.randn(1, S, H, D, device=dev, dtype=torch.float32)
    kacc = torch.randn(1, S, HK, D, device=dev, dtype=torch.float32)
    kb = torch.randn(1, S, HK, D, device=dev, dtype=dt)
    elements = S * H * D
    ops = [
        ("merge, all rows", lambda: merge(st.out, st.lse, out, lse)),
        ("merge, half the rows + write-back", lambda: st.add(o_half, l_half, slice(half, None))),
        ("merge, rows 1: + write-back", lambda: st.add(o_shift, l_shift, slice(1, None))),
        ("dq += bf16 (all rows)", lambda: acc.add_(dout)),
        ("dq[:, 1:] += bf16", lambda: acc[:, 1:].add_(dout[:, 1:])),
        ("dk = bf16 + dk (new tensor)", lambda: kb + kacc),
        ("dk[:, :-1] += bf16", lambda: kacc[:, :-1].add_(kb[:, :-1])),
    ]
    print(f"\n{'eager op (q-sized: ' + str(elements) + ' elements)':40s} {'us':>8s} {'B/elem at 3.35 TB/s':>20s}")
    for name, fn in ops:
        us = 1e3 * time_ms(fn, iters * 5)
        n = elements if "dk" not in name else S * HK * D
        print(f"{name:40s} {us:8.1f} {us * 1e-6 * 3.35e12 / n:20.1f}")


if __name__ == "__main__":
    main()
