"""DistributedDataParallel: one model replica per rank, gradients averaged over ranks after backward.

    dist.init_process_group("mpi")
    model = DistributedDataParallel(net)        # rank 0's parameters and buffers reach every rank
    loss = crit(model(x), y); loss.backward()   # every rank's p.grad is now the mean over ranks
    with model.no_sync(): ...                   # gradient accumulation: no communication

Gradients travel in buckets of about `bucket_cap_mb` MB, formed in reverse parameter order (the
order backward produces them) and the same on every rank. A parameter's post-accumulate-grad
hook marks it ready; a bucket starts its allreduce (MPI Iallreduce) as soon as it and every
earlier bucket are ready, so communication overlaps the rest of backward. The last gradient
waits for all buckets. The same code runs under @graphc.compile: there the start and wait are
IR ops (graphc/ops/collective.py) in the one compiled graph of the step.

Checkpoints: like torch, DDP does not make graphc.save collective. Save on rank 0 and let the
others wait at dist.barrier() (graphc train --checkpoint does this); state_dict keys carry the
"module." prefix, as torch's do: load model.module.state_dict() into a bare model.
"""
from __future__ import annotations

import contextlib

import numpy as np

from .. import _context
from ..errors import GraphcError
from ..tensor import apply
from .module import Module


class DistributedDataParallel(Module):
    """torch.nn.parallel.DistributedDataParallel over graphc.distributed (MPI)."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0, broadcast_buffers=True,
                 process_group=None, bucket_cap_mb=25, find_unused_parameters=False, **kwargs):
        from .. import distributed as dist
        super().__init__()
        if not dist.is_initialized():
            raise GraphcError("DistributedDataParallel", "the default process group is not initialized",
                              hint="call graphc.distributed.init_process_group(backend='mpi') first")
        self.module = module
        self.broadcast_buffers = broadcast_buffers
        self.require_backward_grad_sync = True
        self._sync_module_states()
        params = [p for p in module.parameters() if p.requires_grad]
        self._buckets = _buckets(params, int(bucket_cap_mb * 1024 * 1024))
        self._bucket_of = {id(p): b for b, bucket in enumerate(self._buckets) for p in bucket}
        self._hooks = [p.register_post_accumulate_grad_hook(self._grad_ready) for p in params]
        self._reset()

    def _sync_module_states(self):
        """Every rank starts from rank 0's parameters and buffers."""
        from .. import distributed as dist
        tensors = list(self.module.parameters()) + list(self.module.buffers())
        for t in tensors:
            if not t._value.flags.c_contiguous:
                t._value = np.ascontiguousarray(t._value)
            dist.broadcast(t, src=0)

    def forward(self, *args, **kwargs):
        if any(self._ready):
            missing = [i for i, b in enumerate(self._buckets) if self._ready[i] < len(b)]
            self._reset()
            raise GraphcError("DistributedDataParallel", f"the previous backward left gradient buckets {missing} "
                                                         f"unreduced: some parameters got no gradient",
                              hint="every parameter that requires grad must take part in the loss; "
                                   "freeze the others with requires_grad_(False) before wrapping the model")
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self):
        """Backwards inside the block accumulate local gradients only; the next synced backward averages the sum."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    # --- the reduction, driven by the parameters' post-accumulate-grad hooks -------------------------
    def _reset(self):
        self._ready = [0] * len(self._buckets)
        self._started = []          # (bucket index, handle tensor), in start order

    def _grad_ready(self, param):
        if not self.require_backward_grad_sync:
            if _context.tracer is not None:   # the guard of a compiled step does not key on no_sync()
                raise GraphcError("DistributedDataParallel", "no_sync() inside a compiled step is not supported",
                                  hint="accumulate gradients in eager code, or compile a step without no_sync()")
            return
        b = self._bucket_of[id(param)]
        self._ready[b] += 1
        # Buckets start strictly in order, so every rank issues its collectives in one sequence.
        while len(self._started) < len(self._buckets) and \
                self._ready[len(self._started)] == len(self._buckets[len(self._started)]):
            self._start(len(self._started))
        if len(self._started) == len(self._buckets):
            self._finish()

    def _start(self, b):
        grads = [p.grad.reshape(-1) for p in self._buckets[b]]
        from ..functional import cat
        flat = cat(grads) if len(grads) > 1 else grads[0]
        handle = apply("allreduce_start", flat, _ordering_token(), reduce="avg", index=b)
        _set_ordering_token(handle)
        self._started.append((b, handle, flat.shape, flat.dtype))

    def _finish(self):
        for b, handle, shape, dtype in self._started:
            flat = apply("allreduce_wait", handle, reduce="avg", shape=tuple(shape), dtype=np.dtype(dtype))
            offset = 0
            for p in self._buckets[b]:
                n = p.numel()
                p.grad = flat[offset:offset + n].reshape(tuple(p.shape))
                offset += n
        self._reset()


def _buckets(params, cap_bytes):
    """Parameters in reverse order, cut into buckets of about cap_bytes (one dtype per bucket)."""
    buckets, current, size = [], [], 0
    for p in reversed(params):
        if current and (size >= cap_bytes or p.dtype != current[0].dtype):
            buckets.append(current)
            current, size = [], 0
        current.append(p)
        size += p._value.nbytes
    if current:
        buckets.append(current)
    return buckets


# One chain of collectives per trace (stored on the tracer), a fresh one per eager backward.
def _ordering_token():
    tracer = _context.tracer
    token = getattr(tracer, "collective_token", None) if tracer is not None else None
    return token if token is not None else apply("collective_token")


def _set_ordering_token(handle):
    if _context.tracer is not None:
        _context.tracer.collective_token = handle
