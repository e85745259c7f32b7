"""Where a GPU idles in a torch.profiler Chrome trace, and whether it waited
for the host: every hole in the union of the GPU's work (kernels, memsets,
copies; every stream) of at least --min_us, named by the operations on each
side, and split by the launch of the operation that ends it (matched by its
CUPTI correlation id): "host late" when that launch call began after the
GPU had gone idle (the GPU waited for the host to enqueue it), else
"queued" (it was enqueued in time and waited for something else: an event,
another stream, the launch's own latency). For host-late holes the trace's
CPU ranges on the launching thread at the launch (outermost first) say what
the host was doing.

    python3 bench/trace_gaps.py TRACE.json --steps 40 [--min_us 2] [--top 12]
        [--ranges ringattn_forward,ringattn_backward_from]

--ranges NAMES: also the host's chain through the named CPU ranges
(record_function's, in time order): the median of each range's time and of
the time from the end of one to the start of the next, per (from, to) pair
-- e.g. from the C ABI's forward to its backward_from, Python's return,
autograd's hand-over and our backward's Python.

Written for the fifty-second session's question (issue #17): a training
step of the Python entry at 2048 tokens takes 0.63-0.74 ms on one H200 for
0.41 ms of GPU work -- is the GPU waiting for the host, and for which call?
bench/python_entry_profile.py --back_to_back STEPS --trace DIR writes the
trace this reads.
"""

import argparse
import collections
import json
import sys

GPU_CATEGORIES = ("kernel", "gpu_memset", "gpu_memcpy")
LAUNCH_CATEGORIES = ("cuda_runtime", "cuda_driver")
CPU_CATEGORIES = ("cpu_op", "user_annotation", "python_function")


def load_events(path):
    """The traceEvents of the Chrome trace at `path` (torch.profiler's
    export_chrome_trace: a dict; a bare list is taken too)."""
    with open(path) as f:
        trace = json.load(f)
    return trace["traceEvents"] if isinstance(trace, dict) else trace


def complete(events, categories):
    """The complete ("X") events of `categories`."""
    return [e for e in events if e.get("ph") == "X" and e.get("cat") in categories]


def short(name, width=44):
    return name if len(name) <= width else name[:width - 3] + "..."


def analyze(events, min_us=2.0):
    """The GPU's holes in `events` (a Chrome trace's traceEvents). Returns a
    dict: span_us, busy_us, holes (list of dicts: start, end, before, after,
    host_late, host_context)."""
    gpu = sorted(complete(events, GPU_CATEGORIES), key=lambda e: float(e["ts"]))
    if not gpu:
        raise ValueError("the trace has no GPU operations (profile with ProfilerActivity.CUDA)")
    launches = {e["args"]["correlation"]: e for e in complete(events, LAUNCH_CATEGORIES)
                if "correlation" in e.get("args", {})}
    cpu_by_thread = collections.defaultdict(list)
    for e in complete(events, CPU_CATEGORIES):
        cpu_by_thread[(e.get("pid"), e.get("tid"))].append(e)
    holes = []
    span_begin = busy_end = float(gpu[0]["ts"])
    busy = 0.0
    before = gpu[0]
    for e in gpu:
        start = float(e["ts"])
        end = start + float(e.get("dur", 0))
        if start - busy_end >= min_us:
            launch = launches.get(e.get("args", {}).get("correlation"))
            host_late = launch is not None and float(launch["ts"]) > busy_end
            context = []
            if launch is not None and host_late:
                at = float(launch["ts"])
                enclosing = [c for c in cpu_by_thread[(launch.get("pid"), launch.get("tid"))]
                             if float(c["ts"]) <= at <= float(c["ts"]) + float(c.get("dur", 0))]
                enclosing.sort(key=lambda c: float(c["ts"]))
                context = [c["name"] for c in enclosing]
            holes.append({"start": busy_end, "end": start, "before": before["name"],
                          "after": e["name"], "host_late": host_late, "host_context": context})
        if end > busy_end:
            busy += end - max(start, busy_end)
            busy_end = end
            before = e
    return {"span_us": busy_end - span_begin, "busy_us": busy, "holes": holes}


def report(result, steps, top=12, out=sys.stdout):
    holes = result["holes"]
    idle = sum(h["end"] - h["start"] for h in holes)
    late = sum(h["end"] - h["start"] for h in holes if h["host_late"])
    per = 1.0 / max(steps, 1)
    print(f"GPU span {result['span_us'] * per:.1f} us a step, busy {result['busy_us'] * per:.1f}, "
          f"idle in holes >= min {idle * per:.1f} (host late {late * per:.1f}, queued "
          f"{(idle - late) * per:.1f}); {len(holes) * per:.1f} holes a step", file=out)
    groups = collections.defaultdict(lambda: [0, 0.0, 0.0, collections.Counter()])
    for h in holes:
        g = groups[(short(h["before"]), short(h["after"]))]
        g[0] += 1
        g[1] += h["end"] - h["start"]
        if h["host_late"]:
            g[2] += h["end"] - h["start"]
            g[3][" > ".join(short(c, 40) for c in h["host_context"][-3:]) or "(no CPU range)"] += 1
    print(f"{'us a step':>9} {'late':>6} {'count':>6}  hole between", file=out)
    for (before, after), (count, total, late_us, contexts) in sorted(
            groups.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"{total * per:9.1f} {late_us * per:6.1f} {count * per:6.2f}  {before}  ->  {after}",
              file=out)
        for context, n in contexts.most_common(2):
            print(f"{'':24}host at the launch ({n}x): {context}", file=out)


def range_chain(events, names):
    """The named CPU ranges (user annotations) in time order: {name: median
    us}, {(from, to): median us from one's end to the next's start}."""
    ranges = sorted((e for e in complete(events, ("user_annotation",)) if e.get("name") in names),
                    key=lambda e: float(e["ts"]))
    durations, gaps = collections.defaultdict(list), collections.defaultdict(list)
    for e in ranges:
        durations[e["name"]].append(float(e.get("dur", 0)))
    for a, b in zip(ranges, ranges[1:]):
        gaps[(a["name"], b["name"])].append(float(b["ts"]) - float(a["ts"]) - float(a.get("dur", 0)))
    med = lambda xs: sorted(xs)[len(xs) // 2]
    return ({k: med(v) for k, v in durations.items()}, {k: med(v) for k, v in gaps.items()})


def report_chain(chain, out=sys.stdout):
    durations, gaps = chain
    print("host chain (medians, us):", file=out)
    for name, us in durations.items():
        print(f"  {us:8.1f}  {name}", file=out)
    for (a, b), us in gaps.items():
        print(f"  {us:8.1f}  from the end of {a} to the start of {b}", file=out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trace")
    parser.add_argument("--steps", type=int, default=1, help="steps in the trace (per-step figures)")
    parser.add_argument("--min_us", type=float, default=2.0)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--ranges", default="", help="NAMES: the host's chain through them")
    args = parser.parse_args()
    events = load_events(args.trace)
    report(analyze(events, args.min_us), args.steps, args.top)
    if args.ranges:
        report_chain(range_chain(events, args.ranges.split(",")))


if __name__ == "__main__":
    main()
