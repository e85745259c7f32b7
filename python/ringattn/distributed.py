"""ringattn over a torch.distributed process group: one rank per process
(as torchrun starts them), ringattn's messages carried by the group's
backend with isend/irecv. CPU tensors need a group that moves CPU tensors
(gloo).

    torch.distributed.init_process_group("gloo")
    out = ringattn.functions.zigzag_ring_flash_attn_func(q, k, v, causal=True)
                                                  # group=None: the default group

process_group_world(group) is the ringattn.World of this process's rank in
`group`, created once per group (again after a failed pass: a failure
stops the World on every rank); process_group_world(group, device=) for
CUDA tensors is a World over ringattn's own NCCL communicator on that GPU
(its id broadcast through `group`), created once per group and device. A
rank that fails stops its own ring; its peers, waiting for its messages,
raise RuntimeError when `timeout_s` passes (the process group has no
channel to abort them sooner).
"""

import ctypes
import datetime
import threading

import torch
import torch.distributed as dist

from . import World, _capi

_worlds = {}  # (id(group), device) -> (group, World)
_lock = threading.Lock()


class _GroupTransport:
    """ringattn_transport's callbacks over `group` (handles: pending Works)."""

    def __init__(self, group, timeout_s):
        self.group = group
        self.peers = [dist.get_global_rank(group, r) if hasattr(dist, "get_global_rank")
                      else dist.distributed_c10d._get_global_rank(group, r)
                      for r in range(dist.get_world_size(group))]
        self.timeout = datetime.timedelta(seconds=timeout_s)
        self.lock = threading.Lock()
        self.pending = {}
        self.next = 0
        # The C functions must stay referenced as long as the World.
        self.struct = _capi.Transport(None, _capi.SEND_FN(self._send), _capi.RECV_FN(self._recv),
                                      _capi.WAIT_FN(self._wait), _capi.ABORT_FN(self._abort))
        self.struct._owner = self

    def _start(self, op, peer, tag, data, nbytes, error, size):
        try:
            if nbytes == 0:
                work, buffer = None, None
            else:
                buffer = torch.frombuffer((ctypes.c_uint8 * nbytes).from_address(data),
                                          dtype=torch.uint8)
                work = op(buffer, self.peers[peer], group=self.group, tag=tag)
            with self.lock:
                handle = self.next
                self.next += 1
                self.pending[handle] = (work, buffer)
            return handle
        except Exception as e:  # back to C as an error, never through ctypes
            _capi.write_error(error, size, e)
            return -1

    def _send(self, _, peer, tag, data, nbytes, error, size):
        return self._start(dist.isend, peer, tag, data, nbytes, error, size)

    def _recv(self, _, peer, tag, data, nbytes, error, size):
        return self._start(dist.irecv, peer, tag, data, nbytes, error, size)

    def _wait(self, _, handle, error, size):
        try:
            with self.lock:
                work, _buffer = self.pending.pop(handle)
            if work is not None and not work.wait(self.timeout):
                raise RuntimeError(f"no answer within {self.timeout.total_seconds():g} s")
            return 0
        except Exception as e:
            _capi.write_error(error, size, e)
            return 1

    def _abort(self, _, reason):
        pass  # peers learn of it by their own timeout (see the module's text)


def process_group_world(group=None, timeout_s=120.0, device=None):
    """The World of this process's rank in `group` (default: the default
    group), created on first use with `timeout_s` and cached per group: over
    the group's isend/irecv (CPU tensors), or with a CUDA `device` (a
    torch.device) over NCCL on that GPU."""
    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError("ringattn: torch.distributed is not initialized "
                         "(init_process_group first, e.g. under torchrun)")
    group = dist.group.WORLD if group is None else group
    index = None
    if device is not None:
        index = device.index if device.index is not None else torch.cuda.current_device()
    key = (id(group), index)
    with _lock:
        cached = _worlds.get(key)
        if cached is not None and cached[0] is group and not cached[1].failed:
            return cached[1]
        size, rank = dist.get_world_size(group), dist.get_rank(group)
        if index is None:
            transport = _GroupTransport(group, timeout_s)
            world = World.over_transport(size, rank, transport.struct)
        else:
            # Rank 0's NCCL id to every rank, through the group itself.
            ids = [World.nccl_unique_id() if rank == 0 else None]
            source = (dist.get_global_rank(group, 0) if hasattr(dist, "get_global_rank")
                      else dist.distributed_c10d._get_global_rank(group, 0))
            backend = dist.get_backend(group)
            dist.broadcast_object_list(
                ids, src=source, group=group,
                device=torch.device("cuda", index) if backend == "nccl" else None)
            # A World that replaces a failed one keeps its passes' mode.
            # (The key's device makes a cached World here an NCCL one.)
            world = World.over_nccl(size, rank, ids[0], index, timeout_s,
                                    async_passes=cached[1].async_passes if cached else None)
        _worlds[key] = (group, world)
        return world
