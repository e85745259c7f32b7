#!/usr/bin/env python3
"""torch_sdpa_bench.py on a stand-in torch (no torch here) whose "GPU" is
the host: a call is a sleep, an event the time it is recorded. The
sustained mode's settle lasts its wall-clock seconds whatever one call's
first timing said, the timed calls are counted from the settle's rate (not
from that first call), no settle keeps the first call's time
(KERNEL_BENCH_SETTLE=0, the earlier method); KERNEL_BENCH_TORCH_BACKENDS
picks backends and refuses names it does not know."""
import os
import sys
import time
import types
import unittest


def install_stand_in_torch():
    torch = types.ModuleType("torch")
    torch.bfloat16, torch.float32 = "bfloat16", "float32"

    class Event:
        def __init__(self, enable_timing=False):
            self.at = None

        def record(self):
            self.at = time.monotonic()

        def synchronize(self):
            pass

        def elapsed_time(self, end):
            return (end.at - self.at) * 1e3

    torch.cuda = types.SimpleNamespace(Event=Event, synchronize=lambda: None)
    nn = types.ModuleType("torch.nn")
    attention = types.ModuleType("torch.nn.attention")
    attention.SDPBackend = types.SimpleNamespace(FLASH_ATTENTION=1, CUDNN_ATTENTION=2,
                                                 EFFICIENT_ATTENTION=3)
    attention.sdpa_kernel = None
    functional = types.ModuleType("torch.nn.functional")
    torch.nn, nn.attention, nn.functional = nn, attention, functional
    sys.modules.update({"torch": torch, "torch.nn": nn, "torch.nn.attention": attention,
                        "torch.nn.functional": functional})


install_stand_in_torch()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_sdpa_bench as bench  # noqa: E402


class Calls:
    """A call that takes `ms` (a sleep) and counts itself."""

    def __init__(self, ms):
        self.ms, self.count = ms, 0

    def __call__(self):
        self.count += 1
        time.sleep(self.ms / 1e3)


class SettleTest(unittest.TestCase):
    def test_settle_lasts_its_seconds_and_measures_the_steady_rate(self):
        calls = Calls(1.0)
        begin = time.monotonic()
        # The first call read 50 ms (a first call at another clock, or
        # host-bound, reads otherwise; here: 50x the sleep).
        steady = bench.settle(calls, 0.3, one=50.0)
        elapsed = time.monotonic() - begin
        self.assertGreaterEqual(elapsed, 0.3)
        self.assertLess(elapsed, 0.3 + 1.0)  # a batch past the end, and a loaded machine's slack
        self.assertGreater(steady, 0.95)  # the sleeps' rate, not the 50 ms given
        self.assertLess(steady, 25.0)
        # Calls counted from the given 50 ms would have been 6.
        self.assertGreater(calls.count, 40)

    def test_no_settle_keeps_one_calls_time(self):
        calls = Calls(1.0)
        self.assertEqual(bench.settle(calls, 0, one=7.5), 7.5)
        self.assertEqual(calls.count, 0)

    def test_timed_calls_counted_from_the_settled_rate(self):
        class Energy:
            def joules(self):
                return 0.0

            def sm_clock_mhz(self):
                return 1500

        calls = Calls(1.0)
        original = bench.time_ms
        bench.time_ms = lambda fn, iterations: 50.0  # the first call reads 50x too long
        try:
            ms, joules, mhz = bench.time_sustained(calls, 0.2, 0.2, Energy())
        finally:
            bench.time_ms = original
        self.assertGreater(ms, 0.95)
        self.assertLess(ms, 25.0)
        self.assertEqual(mhz, 1500)
        # Settle (~0.2 s) and timed (~0.2 s) at ~1 ms a call: far more
        # than the 4 + 4 calls the 50-ms first reading would have counted.
        self.assertGreater(calls.count, 40)


class BackendsTest(unittest.TestCase):
    def backends(self, value):
        saved = os.environ.get("KERNEL_BENCH_TORCH_BACKENDS")
        try:
            if value is None:
                os.environ.pop("KERNEL_BENCH_TORCH_BACKENDS", None)
            else:
                os.environ["KERNEL_BENCH_TORCH_BACKENDS"] = value
            return [impl for impl, _ in bench.env_backends()]
        finally:
            if saved is None:
                os.environ.pop("KERNEL_BENCH_TORCH_BACKENDS", None)
            else:
                os.environ["KERNEL_BENCH_TORCH_BACKENDS"] = saved

    def test_unset_is_every_backend(self):
        self.assertEqual(self.backends(None), ["torch_flash", "torch_cudnn", "torch_efficient"])
        self.assertEqual(self.backends(""), ["torch_flash", "torch_cudnn", "torch_efficient"])

    def test_a_list_in_the_table_order(self):
        self.assertEqual(self.backends("cudnn"), ["torch_cudnn"])
        self.assertEqual(self.backends("efficient, cudnn"), ["torch_cudnn", "torch_efficient"])

    def test_unknown_names_are_refused_with_the_known_ones(self):
        for value, named in (("cudnn,math", "math"), (",", "no backend")):
            with self.assertRaises(SystemExit) as caught:
                self.backends(value)
            message = str(caught.exception.code)
            self.assertIn(f"KERNEL_BENCH_TORCH_BACKENDS names {named}", message)
            self.assertIn("expected a comma-separated list of flash, cudnn, efficient", message)


if __name__ == "__main__":
    unittest.main()
