#!/usr/bin/env python3
"""torch_sdpa_bench's sustained-mode timing on a stand-in torch whose
"GPU" is the host: a call is a sleep, an event is the time it is recorded.
Checks that the settle lasts its wall-clock seconds whatever one call's
first timing said, that the timed calls are counted from the settle's
rate (not from that first call), and that no settle keeps the first
call's time (KERNEL_BENCH_SETTLE=0, the earlier method)."""
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


if __name__ == "__main__":
    unittest.main()
