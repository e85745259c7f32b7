#!/usr/bin/env python3
"""When a persistent kernel claims its next item: a discrete model.

132 SMs run (key tile, head, batch) items of the backward: key tile n of a
(head, batch) pair meets query tiles step * n .. Q-1 (causal; step 2 for
128-key tiles over d128's 64-row query tiles, 1 over d64's 128-row ones),
one time unit per query tile with +-10 % noise. Each
SM holds at most `ahead` claimed items: 1 is a CTA per item (the hardware
starts the next CTA when one ends) or a persistent kernel that claims its
next item just in time; 3 is the eighteenth session's persistent backward,
whose scheduler thread claimed two items ahead. Items are ordered key tile
fastest (the per-key-tile kernel's grid) or in heavy-first sections of
`section` pairs (tile_scheduler.cuh). Prints the makespan per shape, and
the share of query-tile time during which another item of the same pair
adds dQ to the same query tile.

    python3 bench/persistent_claim_model.py
"""
import collections
import heapq
import random


def run(ahead, pairs, key_tiles, query_tiles, step, section=0, sms=132, seed=1):
    rng = random.Random(seed)
    if section:
        items = [(p, n) for first in range(0, pairs, section) for n in range(key_tiles)
                 for p in range(first, min(pairs, first + section))]
    else:
        items = [(p, n) for p in range(pairs) for n in range(key_tiles)]
    taken = 0
    queue = {s: collections.deque() for s in range(sms)}

    def claim(s):
        nonlocal taken
        while len(queue[s]) < ahead and taken < len(items):
            queue[s].append(items[taken])
            taken += 1

    for s in range(sms):
        claim(s)
    heap = [(0.0, s) for s in range(sms)]
    tiles = []  # (start, end, pair, query tile)
    while heap:
        now, s = heapq.heappop(heap)
        if not queue[s]:
            continue
        p, n = queue[s].popleft()
        claim(s)
        for m in range(step * n, query_tiles):
            d = rng.uniform(0.9, 1.1)
            tiles.append((now, now + d, p, m))
            now += d
        heapq.heappush(heap, (now, s))
    by_tile = collections.defaultdict(list)
    for a, b, p, m in tiles:
        by_tile[(p, m)].append((a, b))
    shared = 0.0
    for spans in by_tile.values():
        spans.sort()
        for i, (a, b) in enumerate(spans):
            for c, d in spans[i + 1:]:
                if c >= b:
                    break
                shared += min(b, d) - c
    total = sum(b - a for a, b, _, _ in tiles)
    return max(b for _, b, _, _ in tiles), shared / total


def main():
    shapes = [("b16 s1024 d128", 512, 8, 16, 2, 33), ("b1 s8192 d128", 32, 64, 128, 2, 5),
              ("b1 s16384 d64", 32, 128, 128, 1, 3)]
    for name, pairs, key_tiles, query_tiles, step, section in shapes:
        for order in (0, section):
            for ahead in (1, 3):
                makespan, shared = run(ahead, pairs, key_tiles, query_tiles, step, order)
                print(f"{name}, {'sections of %d pairs' % order if order else 'key tile fastest'}, "
                      f"claimed {ahead - 1} ahead: makespan {makespan:.1f}, "
                      f"dQ tile time shared {100 * shared:.1f} %")


if __name__ == "__main__":
    main()
