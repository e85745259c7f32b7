#!/usr/bin/env python3
"""The forward's CTA pairs (two-CTA clusters sharing K and V copies): a model
of their barrier protocol, checked over random schedules.

The pairs are the twenty-fourth session's candidates (docs/KERNEL_BENCH.md,
item 8: commits b8f460e / 136eec8 / b810e45, built, not yet run). Per CTA r
of a pair: mbarriers with a phase, pending arrivals and transaction bytes
(mbarrier semantics: a phase completes when its arrivals and its bytes are
all in; a wait on parity p returns once the phase of that parity is over);
agents that each stop at their next wait:
  - CTA 0's scheduler thread: takes a pair, waits until both producers have
    read the last one (ScheduledEmpty, 2 arrivals), gives each CTA the
    pair's key-tile range (the union of the two tiles' ranges) and arrives
    on both CTAs' ScheduledFull;
  - each CTA's producer: its Q, and for every K / V slot it waits on its own
    Empty barrier, arrives on its own Full barrier expecting the whole tile
    and copies its half into both CTAs (one transaction unit completing on
    each CTA's Full barrier, at any later time); CTA 0's asks for the next
    pair with its last K;
  - two consumer warpgroups per CTA: wait on Full, release on Empty of both
    CTAs (Empty counts 2 x 2 arrivals), release Q.
Random key-tile ranges (empty ones included) and random interleavings of the
agents and the copies; a schedule that stops with agents still waiting is a
deadlock, an arrival past a barrier's count an error.

    python3 bench/pairs_protocol_model.py [SCHEDULES]
"""
import random
import sys

STAGES = 2  # K / V pipeline slots (d128)
CONSUMERS = 2  # consumer warpgroups per CTA


class Barrier:
    def __init__(self, count):
        self.count, self.pending, self.tx, self.phase = count, count, 0, 0

    def passed(self, parity):
        return (self.phase & 1) != parity

    def arrive(self, expect=0):
        self.tx += expect
        self.pending -= 1
        assert self.pending >= 0, "more arrivals than the barrier counts"
        self._complete()

    def complete_tx(self, units):
        self.tx -= units
        self._complete()

    def _complete(self):
        if self.pending == 0 and self.tx == 0:
            self.phase += 1
            self.pending = self.count


def union(ranges):
    live = [r for r in ranges if r[0] < r[1]]
    if not live:
        return (0, 0)
    return (min(r[0] for r in live), max(r[1] for r in live))


def run(seed, pairs):
    rng = random.Random(seed)
    ctas = []
    for _ in range(2):
        bars = {"QFull": Barrier(1), "QEmpty": Barrier(CONSUMERS), "ScheduledFull": Barrier(1),
                "ScheduledEmpty": Barrier(2), "NextWanted": Barrier(1)}
        for s in range(STAGES):
            for kv in "KV":
                bars[f"{kv}Full{s}"] = Barrier(1)
                bars[f"{kv}Empty{s}"] = Barrier(2 * CONSUMERS)
        ctas.append({"bars": bars, "slot": None, "tile": None})
    copies = []  # (cta, barrier) completions in flight

    def wait(cta, name, parity):
        return (cta, name, parity)

    def scheduler():
        for taken, pair in enumerate(list(pairs) + [None]):
            if taken > 0:
                yield wait(0, "NextWanted", (taken - 1) & 1)
            yield wait(0, "ScheduledEmpty", (taken & 1) ^ 1)
            keys = None if pair is None else union(pair)
            for cta in ctas:
                cta["slot"] = keys
                cta["bars"]["ScheduledFull"].arrive()

    def producer(r):
        bars, kv, q = ctas[r]["bars"], 0, 0

        def load(which, i):
            stage, parity = i % STAGES, (i // STAGES) & 1
            yield wait(r, f"{which}Empty{stage}", parity ^ 1)
            bars[f"{which}Full{stage}"].arrive(expect=2)
            copies.extend((d, f"{which}Full{stage}") for d in range(2))

        while True:
            yield wait(r, "ScheduledFull", q & 1)
            keys = ctas[r]["slot"]
            ctas[0]["bars"]["ScheduledEmpty"].arrive()
            yield wait(r, "QEmpty", (q & 1) ^ 1)
            ctas[r]["tile"] = keys
            q += 1
            if keys is None or keys[0] >= keys[1]:
                bars["QFull"].arrive()
                if keys is None:
                    return
                if r == 0:
                    bars["NextWanted"].arrive()
                continue
            bars["QFull"].arrive(expect=1)
            copies.append((r, "QFull"))
            begin, end = keys
            yield from load("K", kv)
            if begin + 1 == end and r == 0:
                bars["NextWanted"].arrive()
            for n in range(begin, end):
                if n + 1 < end:
                    yield from load("K", kv + 1)
                    if n + 2 == end and r == 0:
                        bars["NextWanted"].arrive()
                yield from load("V", kv)
                kv += 1

    def consumer(r):
        bars, kv, q = ctas[r]["bars"], 0, 0
        while True:
            yield wait(r, "QFull", q & 1)
            q += 1
            keys = ctas[r]["tile"]
            if keys is None:
                return
            begin, end = keys
            if begin >= end:
                bars["QEmpty"].arrive()
                continue
            for n in range(begin, end):
                stage, parity = kv % STAGES, (kv // STAGES) & 1
                for which in "KV":
                    yield wait(r, f"{which}Full{stage}", parity)
                    for cta in ctas:
                        cta["bars"][f"{which}Empty{stage}"].arrive()
                    if which == "K" and n + 1 == end:
                        bars["QEmpty"].arrive()
                kv += 1

    agents = [scheduler(), producer(0), producer(1)]
    agents += [consumer(r) for r in range(2) for _ in range(CONSUMERS)]
    waits = [next(a, None) for a in agents]
    while True:
        ready = [i for i, w in enumerate(waits)
                 if w is not None and ctas[w[0]]["bars"][w[1]].passed(w[2])]
        choices = [("agent", i) for i in ready] + [("copy", j) for j in range(len(copies))]
        if not choices:
            return None if all(w is None for w in waits) else [w for w in waits if w]
        kind, i = rng.choice(choices)
        if kind == "copy":
            cta, name = copies.pop(i)
            ctas[cta]["bars"][name].complete_tx(1)
        else:
            waits[i] = next(agents[i], None)


def main():
    schedules = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    stuck = 0
    for seed in range(schedules):
        rng = random.Random(seed)
        pairs = [tuple((rng.randint(0, 3), rng.randint(0, 6)) for _ in range(2))
                 for _ in range(rng.randint(1, 5))]
        waiting = run(seed, pairs)
        if waiting is not None:
            stuck += 1
            print(f"schedule {seed}: pairs {pairs} stuck at {waiting}")
    print(f"{schedules} schedules, {stuck} stuck")
    return 1 if stuck else 0


if __name__ == "__main__":
    sys.exit(main())
