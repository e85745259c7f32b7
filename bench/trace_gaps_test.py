#!/usr/bin/env python3
"""trace_gaps.py on a made-up trace of two steps: a hole the host was late
for (its launch began after the GPU went idle, inside a CPU range), a hole
whose operation was queued in time, overlapping streams (no hole), and a
hole below --min_us; the per-step figures and the grouping by the
operations on each side."""
import io
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trace_gaps  # noqa: E402


def gpu(name, ts, dur, correlation, stream=7):
    return {"ph": "X", "cat": "kernel", "name": name, "pid": 0, "tid": stream, "ts": ts,
            "dur": dur, "args": {"correlation": correlation}}


def launch(ts, correlation, tid=1):
    return {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 100, "tid": tid,
            "ts": ts, "dur": 3, "args": {"correlation": correlation}}


def cpu(name, ts, dur, tid=1):
    return {"ph": "X", "cat": "cpu_op", "name": name, "pid": 100, "tid": tid, "ts": ts, "dur": dur}


def two_steps():
    events = []
    for step, base in enumerate((0, 1000)):
        c = 10 * step
        events += [
            launch(base + 0, c + 1), gpu("forward", base + 10, 100, c + 1),
            # Overlaps the forward on another stream: no hole.
            launch(base + 1, c + 2), gpu("copy", base + 50, 100, c + 2, stream=8),
            # Launched at +200 (the GPU idle since +150) inside ringattn_backward_from: late.
            cpu("autograd::engine", base + 180, 100), cpu("ringattn_backward_from", base + 190, 30),
            launch(base + 200, c + 3), gpu("backward", base + 210, 300, c + 3),
            # Queued at +5, starts 40 us after the backward's end: waited for something else.
            launch(base + 5, c + 4), gpu("convert", base + 550, 20, c + 4),
            # 1 us after the convert: below the 2-us minimum.
            launch(base + 6, c + 5), gpu("memset", base + 571, 9, c + 5),
        ]
    return events


class TraceGapsTest(unittest.TestCase):
    def test_holes_split_by_the_launch(self):
        result = trace_gaps.analyze(two_steps())
        holes = [(h["before"], h["after"], h["end"] - h["start"], h["host_late"])
                 for h in result["holes"]]
        self.assertEqual(holes[:2], [("copy", "backward", 60, True), ("backward", "convert", 40, False)])
        # Between the steps: the memset ends at 580, the next forward is launched at 1000.
        self.assertEqual(holes[2], ("memset", "forward", 430, True))
        self.assertEqual(result["holes"][2]["host_context"], [])
        self.assertEqual(len(holes), 5)
        self.assertEqual(result["holes"][0]["host_context"],
                         ["autograd::engine", "ringattn_backward_from"])
        self.assertEqual(result["span_us"], 1580 - 10)
        self.assertEqual(result["busy_us"], 2 * (140 + 300 + 20 + 9))

    def test_report_per_step(self):
        out = io.StringIO()
        trace_gaps.report(trace_gaps.analyze(two_steps()), steps=2, out=out)
        text = out.getvalue()
        self.assertIn("busy 469.0, idle in holes >= min 315.0 (host late 275.0, queued 40.0); "
                      "2.5 holes a step", text)
        self.assertIn("    215.0  215.0   0.50  memset  ->  forward", text)
        self.assertIn("host at the launch (1x): (no CPU range)", text)
        self.assertIn("     60.0   60.0   1.00  copy  ->  backward", text)
        self.assertIn("     40.0    0.0   1.00  backward  ->  convert", text)
        self.assertIn("host at the launch (2x): autograd::engine > ringattn_backward_from", text)

    def test_the_host_chain_through_named_ranges(self):
        events = []
        for base in (0, 1000, 2000):
            events += [
                {"ph": "X", "cat": "user_annotation", "name": "fwd", "ts": base, "dur": 50},
                {"ph": "X", "cat": "user_annotation", "name": "bwd", "ts": base + 300, "dur": 80},
                # The GPU timeline's copy of a range, and other names: left out.
                {"ph": "X", "cat": "gpu_user_annotation", "name": "fwd", "ts": base + 5,
                 "dur": 500},
                {"ph": "X", "cat": "user_annotation", "name": "other", "ts": base + 100,
                 "dur": 10},
            ]
        durations, gaps = trace_gaps.range_chain(events, ["fwd", "bwd"])
        self.assertEqual(durations, {"fwd": 50, "bwd": 80})
        self.assertEqual(gaps, {("fwd", "bwd"): 250, ("bwd", "fwd"): 620})
        out = io.StringIO()
        trace_gaps.report_chain((durations, gaps), out=out)
        self.assertIn("     250.0  from the end of fwd to the start of bwd", out.getvalue())

    def test_no_gpu_operations(self):
        with self.assertRaisesRegex(ValueError, "no GPU operations"):
            trace_gaps.analyze([cpu("aten::empty", 0, 5)])


if __name__ == "__main__":
    unittest.main()
