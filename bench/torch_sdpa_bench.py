"""PyTorch SDPA on the rows of bench/kernel_bench.cc: the baseline our
kernels are measured against, in the same run on the same GPU.

Prints CSV (row, impl, pass, ms, tflops) for SDPA's flash, cuDNN and
efficient backends (those that accept the row): forward, backward alone
(autograd.grad of a kept forward graph) and forward + backward. FLOPs: 4*b*s*s*h*d, halved for causal; backward counts 2.5x.
Grouped-query rows (kv heads < heads) call SDPA with enable_gqa=True; a
backend that refuses it runs with K and V expanded to every query head
inside the timed call (repeat_interleave, what a caller of that backend
does; its gradients summed back by autograd), said on stderr.

  python3 bench/torch_sdpa_bench.py [ITERATIONS] [ROW]

KERNEL_BENCH_SECONDS=S (as kernel_bench's): each line runs back to back
for at least S seconds and prints its mean time and two more columns, the
joules per call from NVML's energy counter and the mean SM clock in MHz
while it ran (ctypes; bench/gpu_energy.h), after KERNEL_BENCH_SETTLE
seconds of wall-clock time (default 3) of the same calls untimed, the timed
calls counted from the rate those reached, as kernel_bench's.

KERNEL_BENCH_TORCH_BACKENDS=cudnn (or flash, efficient, comma-separated):
only those backends' lines.
"""
import ctypes
import math
import os
import sys
import threading
import time

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
import torch.nn.functional as F

ROWS = [  # name, dtype, batch, tokens, heads, kv heads, head dim, causal
    ("bf16_b1_s8192_h32_d128_causal", torch.bfloat16, 1, 8192, 32, 32, 128, True),
    ("bf16_b1_s8192_h32_d128_full", torch.bfloat16, 1, 8192, 32, 32, 128, False),
    ("bf16_b1_s16384_h32_d64_causal", torch.bfloat16, 1, 16384, 32, 32, 64, True),
    ("bf16_b1_s16384_h32_d256_causal", torch.bfloat16, 1, 16384, 32, 32, 256, True),
    ("bf16_b1_s32768_h32_d128_causal", torch.bfloat16, 1, 32768, 32, 32, 128, True),
    ("bf16_b16_s1024_h32_d128_causal", torch.bfloat16, 16, 1024, 32, 32, 128, True),
    ("fp32_b4_s4096_h12_d64_causal", torch.float32, 4, 4096, 12, 12, 64, True),
    ("fp32_b4_s4096_h12_d128_causal", torch.float32, 4, 4096, 12, 12, 128, True),
    ("bf16_b1_s8192_h32_kv8_d128_causal", torch.bfloat16, 1, 8192, 32, 8, 128, True),
    ("bf16_b16_s1024_h32_kv8_d128_causal", torch.bfloat16, 16, 1024, 32, 8, 128, True),
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


class GpuEnergy:
    """NVML's energy counter of torch's current CUDA device, in joules."""

    def __init__(self):
        try:
            self._nvml = ctypes.CDLL("libnvidia-ml.so.1")
        except OSError as error:
            raise RuntimeError("GPU energy: libnvidia-ml.so.1 (NVML, installed with the "
                               f"NVIDIA driver) could not be opened: {error}") from None
        if (code := self._nvml.nvmlInit_v2()) != 0:
            raise RuntimeError(f"GPU energy: nvmlInit_v2 failed with NVML code {code}")
        device = torch.cuda.current_device()
        props = torch.cuda.get_device_properties(device)
        self._handle = ctypes.c_void_p()
        if hasattr(props, "pci_bus_id"):
            bus_id = f"{props.pci_domain_id:08x}:{props.pci_bus_id:02x}:{props.pci_device_id:02x}.0"
            where = f"PCI bus id {bus_id}"
            code = self._nvml.nvmlDeviceGetHandleByPciBusId_v2(bus_id.encode(),
                                                               ctypes.byref(self._handle))
        else:  # a torch without PCI ids: NVML's index (right when no devices are hidden)
            where = f"index {device}"
            code = self._nvml.nvmlDeviceGetHandleByIndex_v2(device, ctypes.byref(self._handle))
        if code != 0:
            raise RuntimeError(f"GPU energy: NVML has no device at {where} (NVML code {code})")
        self.joules()

    def joules(self):
        millijoules = ctypes.c_ulonglong()
        if (code := self._nvml.nvmlDeviceGetTotalEnergyConsumption(
                self._handle, ctypes.byref(millijoules))) != 0:
            raise RuntimeError(f"GPU energy: reading the energy counter failed with NVML code {code}")
        return millijoules.value / 1e3

    def sm_clock_mhz(self):
        """The SM clock now (nvmlDeviceGetClockInfo, NVML_CLOCK_SM), or None."""
        mhz = ctypes.c_uint()
        if self._nvml.nvmlDeviceGetClockInfo(self._handle, 1, ctypes.byref(mhz)) != 0:
            return None
        return mhz.value


class ClockSampler:
    """The mean SM clock over a timed run: a thread reads it every 10 ms
    from start until mean_mhz() (as kernel_bench's SmClockSampler)."""

    def __init__(self, energy):
        self._samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(energy,), daemon=True)
        self._thread.start()

    def _run(self, energy):
        while not self._stop.is_set():
            if (mhz := energy.sm_clock_mhz()) is not None:
                self._samples.append(mhz)
            self._stop.wait(0.01)

    def mean_mhz(self):
        self._stop.set()
        self._thread.join()
        return sum(self._samples) / len(self._samples) if self._samples else -1.0


def settle(fn, seconds, one):
    """Untimed back-to-back calls for `seconds` of wall-clock time, about
    20 ms of them always queued behind the ones running, then a wait for
    them (as kernel_bench's Settle). Returns the ms per call over the
    second half, the rate at the clock the power cap holds by then, or
    `one` when there is no settle."""
    if seconds <= 0:
        return one
    begin = time.monotonic()
    batch = max(1, round(20.0 / one))
    done = [torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)]
    mark = torch.cuda.Event(enable_timing=True)
    mark.record()
    calls_after_mark, marked, batches = 0, False, 0
    while True:
        for _ in range(batch):
            fn()
        calls_after_mark += batch
        done[batches % 2].record()
        if batches > 0:
            done[(batches - 1) % 2].synchronize()  # one batch kept queued
        now = time.monotonic() - begin
        if now >= seconds:
            break
        if not marked and now >= seconds / 2:  # the second half's calls start behind this batch
            mark.record()
            marked, calls_after_mark = True, 0
        batches += 1
    done[batches % 2].synchronize()
    ms = mark.elapsed_time(done[batches % 2])
    return ms / calls_after_mark if calls_after_mark > 0 and ms > 0 else one


def time_sustained(fn, seconds, settle_seconds, energy):
    """Back-to-back calls for at least `seconds` after a warm-up and
    `settle_seconds` of untimed calls (the timed calls counted from the
    rate those reached): their mean ms, the joules per call and the mean SM
    clock."""
    one = max(time_ms(fn, 1), 1e-3)
    steady = settle(fn, settle_seconds, one)  # `one`, or a positive rate
    # The energy and the clock below are the timed calls' alone (settle waited).
    calls = max(1, math.ceil(seconds * 1e3 / steady))
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    before = energy.joules()
    clock = ClockSampler(energy)
    start.record()
    for _ in range(calls):
        fn()
    stop.record()
    torch.cuda.synchronize()
    mhz = clock.mean_mhz()
    after = energy.joules()
    return start.elapsed_time(stop) / calls, (after - before) / calls, mhz


def env_seconds(name, unset, zero_ok):
    """The environment's `name` in seconds ((0, 3600], or [0, 3600] where
    zero_ok), or `unset` when it is not set."""
    text = os.environ.get(name, "")
    if not text:
        return unset
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not (0 <= seconds if zero_ok else 0 < seconds) or seconds > 3600:
        sys.exit(f"torch_sdpa_bench: {name} must be seconds in {'[' if zero_ok else '('}0, 3600]: "
                 f"{text}")
    return seconds


def env_backends():
    """KERNEL_BENCH_TORCH_BACKENDS, a comma-separated list of flash, cudnn
    and efficient, as BACKENDS' entries in BACKENDS' order; every backend
    when unset (a table against cuDNN alone skips two thirds of torch's
    lines)."""
    text = os.environ.get("KERNEL_BENCH_TORCH_BACKENDS", "")
    if not text:
        return BACKENDS
    by_name = {entry[0].removeprefix("torch_"): entry for entry in BACKENDS}
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in by_name]
    if unknown or not names:
        sys.exit(f"torch_sdpa_bench: KERNEL_BENCH_TORCH_BACKENDS names "
                 f"{', '.join(unknown) if unknown else 'no backend'}; expected a comma-separated "
                 f"list of {', '.join(by_name)}: {text}")
    return [entry for name, entry in by_name.items() if name in names]


def main():
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    only = sys.argv[2] if len(sys.argv) > 2 else ""  # one row, as kernel_bench's
    seconds = env_seconds("KERNEL_BENCH_SECONDS", 0.0, zero_ok=False)
    settle_seconds = env_seconds("KERNEL_BENCH_SETTLE", 3.0, zero_ok=True)
    backends = env_backends()
    energy = GpuEnergy() if seconds else None
    torch.backends.cuda.matmul.allow_tf32 = False
    print("row,impl,pass,ms,tflops" + (",joules,sm_mhz" if energy else ""))
    for name, dtype, b, s, h, kv, d, causal in ROWS:
        if only and name != only:
            continue
        flops = 4.0 * b * s * s * h * d / (2 if causal else 1)

        def measure(fn):
            """(ms, joules per call, mean SM MHz); None outside the sustained mode."""
            if energy:
                return time_sustained(fn, seconds, settle_seconds, energy)
            return time_ms(fn, iterations), None, None
        q = torch.randn(b, h, s, d, device="cuda", dtype=dtype, requires_grad=True)
        k, v = (torch.randn(b, kv, s, d, device="cuda", dtype=dtype, requires_grad=True)
                for _ in range(2))

        def attention(expand):
            """SDPA on the row; grouped-query rows by enable_gqa, or with K
            and V expanded to every query head."""
            if kv == h:
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            if not expand:
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                                      enable_gqa=True)
            return F.scaled_dot_product_attention(
                q, k.repeat_interleave(h // kv, dim=1), v.repeat_interleave(h // kv, dim=1),
                is_causal=causal)
        for impl, backend in backends:
            fwd = None
            for expand in ((False, True) if kv < h else (False,)):
                try:
                    with sdpa_kernel(backend):
                        fwd = measure(lambda: attention(expand))
                        out = attention(expand)
                        grad = torch.randn_like(out)

                        bwd = measure(lambda: torch.autograd.grad(
                            out, (q, k, v), grad, retain_graph=True))

                        def fwd_bwd():
                            attention(expand).backward(grad)
                        both = measure(fwd_bwd)
                    if expand:
                        print(f"# {name} {impl}: K and V expanded to {h} heads in the timed "
                              "calls (enable_gqa refused)", file=sys.stderr)
                    break
                except RuntimeError as error:  # backend does not take this row
                    fwd = None
                    print(f"# {name} {impl}{' (K/V expanded)' if expand else ''}: "
                          f"{str(error).splitlines()[0]}", file=sys.stderr)
            if fwd is None:
                continue
            for pass_name, (ms, joules, mhz), factor in (("fwd", fwd, 1.0), ("bwd", bwd, 2.5),
                                                        ("fwd+bwd", both, 3.5)):
                line = f"{name},{impl},{pass_name},{ms:.3f},{factor * flops / ms / 1e9:.2f}"
                print(line + (f",{joules:.5g},{mhz:.0f}" if energy else ""))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
