"""One transformer block whose attention is ringattn's zigzag ring, trained
for a few SGD steps under torchrun, one rank per process, on CPU (gloo):

    RINGATTN_LIB=bazel-bin/python/libringattn.so PYTHONPATH=python \\
        torchrun --nproc_per_node=4 python/examples/torchrun_block.py

or with `--cuda`, one GPU per process (NCCL; ringattn's CUDA backend), the
whole-sequence block using torch's scaled_dot_product_attention.

Each rank holds its zigzag shard of the sequence
(ringattn.functions.position_ids); the block's parameter gradients are
summed over the ranks (as data- or context-parallel training does). Every rank also runs the same block on
the whole sequence with plain softmax attention, and every step the loss
and the gradients must agree (fp32: 1e-5 relative)."""

import argparse
import copy
import os

import torch
import torch.distributed as dist

from ringattn import functions as F

SEQLEN, DIM, HEADS, STEPS = 64, 32, 4, 3


class Block(torch.nn.Module):
    def __init__(self, attention):
        super().__init__()
        self.norm1, self.norm2 = torch.nn.LayerNorm(DIM), torch.nn.LayerNorm(DIM)
        self.qkv, self.proj = torch.nn.Linear(DIM, 3 * DIM), torch.nn.Linear(DIM, DIM)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(DIM, 4 * DIM), torch.nn.GELU(),
                                       torch.nn.Linear(4 * DIM, DIM))
        self.attention = attention

    def forward(self, x):  # (1, tokens, DIM)
        q, k, v = self.qkv(self.norm1(x)).view(1, x.shape[1], 3, HEADS, DIM // HEADS).unbind(2)
        x = x + self.proj(self.attention(q, k, v).reshape(x.shape))
        return x + self.mlp(self.norm2(x))


def plain_attention(q, k, v):  # causal softmax attention on the whole sequence
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1] ** 0.5
    causal = torch.ones(q.shape[1], q.shape[1], dtype=torch.bool).tril()
    scores = scores.masked_fill(~causal, float("-inf"))
    return torch.einsum("bhqk,bkhd->bqhd", torch.softmax(scores, dim=-1), v)


def sdpa_attention(q, k, v):  # the same with torch's SDPA (on a GPU)
    out = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
    return out.transpose(1, 2)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cuda", action="store_true", help="one GPU per process, NCCL")
    cuda = parser.parse_args().cuda
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank))) if cuda else None
    if cuda:
        torch.cuda.set_device(device)
    torch.manual_seed(0)  # the same parameters and data on every rank
    ring_block = Block(lambda q, k, v: F.zigzag_ring_flash_attn_func(q, k, v, causal=True))
    ring_block.to(device)
    full_block = copy.deepcopy(ring_block)
    full_block.attention = sdpa_attention if cuda else plain_attention
    ring_opt = torch.optim.SGD(ring_block.parameters(), lr=0.1)
    full_opt = torch.optim.SGD(full_block.parameters(), lr=0.1)
    mine = F.position_ids("zigzag", SEQLEN).to(device)  # this rank's tokens (default group)
    worst = 0.0
    for step in range(STEPS):
        x = torch.randn(1, SEQLEN, DIM).to(device)
        # Ring: this rank's tokens; the loss's sum and the gradients over ranks.
        ring_opt.zero_grad()
        local = (ring_block(x[:, mine]) ** 2).sum() / (SEQLEN * DIM)
        local.backward()
        loss = local.detach().clone()
        dist.all_reduce(loss)
        for p in ring_block.parameters():
            dist.all_reduce(p.grad)
        # The same block on the whole sequence.
        full_opt.zero_grad()
        full = (full_block(x) ** 2).sum() / (SEQLEN * DIM)
        full.backward()
        rel = max(float((a.grad - b.grad).abs().max() / b.grad.abs().max())
                  for a, b in zip(ring_block.parameters(), full_block.parameters()))
        loss_rel = abs(float(loss - full)) / abs(float(full))
        worst = max(worst, rel, loss_rel)
        if rank == 0:
            print(f"step {step}: loss ring {float(loss):.6f} full {float(full):.6f} "
                  f"(rel {loss_rel:.1e}); gradients max rel {rel:.1e}", flush=True)
        assert loss_rel <= 1e-5 and rel <= 1e-5, (step, loss_rel, rel)
        ring_opt.step()
        full_opt.step()
    if rank == 0:
        print(f"{world} ranks, {STEPS} steps: ring and whole-sequence block agree "
              f"(worst rel {worst:.1e})")
    dist.barrier()  # both ranks done before either tears its process group down
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
