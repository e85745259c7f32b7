"""Helpers of the package's tests."""

import threading

import numpy as np


def allowed_pairs(s, causal, window, cu_seqlens=None):
    """The (s, s) boolean mask of (query, key) pairs attention may use:
    causal, a window (left, right; -1 unbounded), documents."""
    i = np.arange(s)[:, None]
    j = np.arange(s)[None, :]
    allowed = np.ones((s, s), dtype=bool)
    if causal:
        allowed &= j <= i
    if window[0] >= 0:
        allowed &= j >= i - window[0]
    if window[1] >= 0:
        allowed &= j <= i + window[1]
    if cu_seqlens:
        doc = np.searchsorted(np.asarray(cu_seqlens), np.arange(s), side="right")
        allowed &= doc[:, None] == doc[None, :]
    return allowed


def run_ranks(world, fn):
    """Runs fn(rank) for every rank on a thread of its own (W ranks of an
    in-process ringattn.World); returns each rank's exception, or None."""
    errors = [None] * world

    def body(rank):
        try:
            fn(rank)
        except Exception as e:  # returned to the caller
            errors[rank] = e

    threads = [threading.Thread(target=body, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def expect_error(fn, text):
    """fn() must raise ValueError with `text` in its message."""
    try:
        fn()
    except ValueError as e:
        assert text in str(e), f"'{text}' not in '{e}'"
        print(f"ValueError as expected: {e}")
        return
    raise AssertionError(f"no ValueError (expected '{text}')")
