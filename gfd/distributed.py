"""Several processes, one run: what GFD-Net's training needs from ``torch.distributed``.

    torchrun --nproc_per_node=4 -m gfd train --preset paper           # one node, 4 GPUs

``torchrun`` starts one process per GPU (or per CPU share) and tells each, through the environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), who it is.  This module
is everything the course knows about that:

* :func:`session` (:func:`init`, :func:`teardown`): join the process group -- NCCL on CUDA, gloo on
  the CPU -- and leave it;
* :func:`rank`, :func:`world_size`, :func:`is_main`, :func:`active`, :func:`barrier`,
  :func:`main_first`: who does what (rank 0 alone writes checkpoints and logs);
* :func:`mean` and :func:`from_main`: the loss values averaged over the ranks, and rank 0's
  answer (a val accuracy) given to every rank, so that every rank takes the same decisions;
* :func:`on_main`, :func:`check_batch` and :class:`EveryRankError`: a user error found by rank 0
  (a locked or unwritable run folder) or by every rank (a batch that does not split) stops every
  rank at the same point, before any rank waits for another; rank 0 alone reports it (``python -m
  gfd`` prints one line and every rank exits 2, without a traceback);
* :class:`SyncBatchNorm2d` (:func:`sync_batchnorm`): BatchNorm with the statistics of the *global*
  batch, as one process computes them (``torch.nn.SyncBatchNorm`` refuses CPU tensors);
* :func:`wrap`: a network in ``DistributedDataParallel`` (gradients averaged over the ranks).

How :mod:`gfd.train` uses them, so that N processes train like one: the global batch stays
``cfg.batch_size``; every rank draws the same global batches (same order, same crops:
:class:`gfd.streams.BatchStream` with ``rank``/``world_size``) and keeps its ``batch_size / N`` rows;
BatchNorm layers use the global batch's statistics; DDP averages the gradients; so each update is the
single-process update, up to the order of floating-point sums.

Without torchrun (``WORLD_SIZE`` unset or 1) :func:`active` is False, every helper here does nothing,
and training runs the single-process code.
"""
from __future__ import annotations

import contextlib
import datetime
import os
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn

from gfd.utils import choose_device

__all__ = ["launched", "init", "teardown", "session", "active", "rank", "world_size", "local_rank",
           "is_main", "barrier", "main_first", "mean", "from_main", "EveryRankError", "on_main", "check_batch",
           "SyncBatchNorm2d", "sync_batchnorm", "wrap"]


# --- the process group ------------------------------------------------------------------------------

TIMEOUT = datetime.timedelta(minutes=60)
"""How long a rank waits for the others in a collective: rank 0 may be building the mini benchmark or
fetching ImageNet weights while they wait (:func:`main_first`); torch's default for NCCL is 10 min."""


def launched() -> bool:
    """This process was started by torchrun (or alike) as one of several: ``WORLD_SIZE`` > 1."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def local_rank() -> int:
    """This process's index on its node (torchrun's ``LOCAL_RANK``): which GPU it drives."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def init(device: str = "auto") -> bool:
    """Join the process group the environment describes, if any: NCCL when ``device`` resolves to
    CUDA (this process then drives GPU ``LOCAL_RANK``), gloo otherwise.  Return :func:`active`."""
    if not launched() or active():
        return active()
    cuda = choose_device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(local_rank())
    dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    return True


def teardown() -> None:
    """Leave the process group (if this process is in one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def session(device: str = "auto"):
    """``with session(cfg.device):`` -- :func:`init` on entry, :func:`teardown` on exit (only of a
    group joined here).  Outside torchrun it does nothing."""
    joined = launched() and not active()
    init(device)
    try:
        yield
    finally:
        if joined:
            teardown()


def active() -> bool:
    """This process trains together with others (a process group of more than one)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0: the process that writes checkpoints and logs (always True in a single process)."""
    return rank() == 0


def barrier() -> None:
    if active():
        dist.barrier(device_ids=[torch.cuda.current_device()] if dist.get_backend() == "nccl" else None)


@contextlib.contextmanager
def main_first():
    """Rank 0 runs the block first (creates a dataset, deletes a stale run, fetches weights); the
    other ranks run it after, and find what rank 0 left."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


# --- values every rank agrees on --------------------------------------------------------------------

def mean(t: torch.Tensor) -> torch.Tensor:
    """The mean of ``t`` over the ranks (the same tensor on every rank); ``t`` itself in one process.
    The mean over ranks of per-rank batch means is the mean over the global batch."""
    if not active():
        return t
    t = t.detach().clone()
    dist.all_reduce(t)
    return t / world_size()


def from_main(fn: Callable[[], Any]) -> Any:
    """Rank 0 calls ``fn()``; every rank gets its result (e.g. a val accuracy that decides the kept
    weights and the plateau stop: one measurement, so one decision)."""
    if not active():
        return fn()
    box = [fn() if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# --- errors every rank stops on ------------------------------------------------------------------------

class EveryRankError(ValueError):
    """A user error that every rank of a run raises at the same point; ``reported`` is True on the rank
    that reports it (rank 0, or the only process), False on the others, which stop silently."""

    def __init__(self, message: str):
        super().__init__(message)
        self.reported = is_main()


def on_main(fn: Callable[[], Any]) -> Any:
    """Rank 0 calls ``fn()`` (e.g. checks and locks the run folder) and gets its result; the other ranks
    get None.  If ``fn`` raises on rank 0, rank 0 raises that error and every other rank raises an
    :class:`EveryRankError` with its message (quietly: rank 0 reports it), so that no rank is left
    waiting for rank 0.  In one process it is ``fn()``."""
    if not active():
        return fn()
    result, error, message = None, None, None
    if is_main():
        try:
            result = fn()
        except Exception as err:  # noqa: BLE001 -- told to the other ranks, then raised here
            error, message = err, str(err)
    box = [message]
    dist.broadcast_object_list(box, src=0)
    if error is not None:
        raise error
    if box[0] is not None:
        raise EveryRankError(box[0])
    return result


def check_batch(batch_size: int, datasets: dict[str, int]) -> None:
    """Every rank: refuse a global batch that does not split over the processes, for each stream over
    a dataset of the given size (``{"train": 96, "real": 32}``: a stream over a dataset smaller than a
    batch draws batches of its size).  Computed alike on every rank, so every rank raises the same
    :class:`EveryRankError`, before any collective; rank 0 alone reports it."""
    n = world_size()
    if n == 1:
        return
    for what, size in datasets.items():
        rows = min(batch_size, size)
        if rows % n:
            raise EveryRankError(f"config field batch_size={batch_size}: a global batch of {rows} {what} images does "
                                 f"not split over {n} processes; use a batch_size (and datasets) divisible by {n}")


# --- BatchNorm over the global batch ------------------------------------------------------------------

class _SumOverRanks(torch.autograd.Function):
    """``all_reduce(SUM)`` with a gradient: the sum is the same on every rank, so its gradient is
    the sum of what every rank's loss sends back to it."""

    @staticmethod
    def forward(ctx, t):
        t = t.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad


class SyncBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` whose training-mode statistics are those of the global batch (all ranks).

    Same parameters, buffers and state_dict as ``BatchNorm2d``; in eval mode, or outside a process
    group, it *is* ``BatchNorm2d``.  In training mode it computes the global mean, then the global
    (biased) variance of the centred input (two sums over the ranks, in float32), normalises with
    them and updates the running statistics as ``BatchNorm2d`` does (unbiased variance, ``momentum``),
    so every rank keeps the same running statistics.  Gradients flow through the sums, as they do
    through one process's batch statistics.  Unlike ``torch.nn.SyncBatchNorm`` it runs on the CPU
    (gloo), so the CPU test checks the very code that runs on GPUs.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and active()):
            return super().forward(x)
        self._check_input_dim(x)
        dims, shape = (0, 2, 3), (1, -1, 1, 1)
        xf = x.float()
        count = torch.full((1,), x.numel() / x.shape[1], dtype=torch.float32, device=x.device)
        sums = _SumOverRanks.apply(torch.cat([xf.sum(dims), count]))
        n = sums[-1]
        mu = sums[:-1] / n                                               # (C,)
        centred = xf - mu.view(shape)
        var = _SumOverRanks.apply(centred.square().sum(dims)) / n        # (C,), biased
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mu.detach(), m)
                self.running_var.lerp_(var.detach() * n / (n - 1), m)
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def sync_batchnorm(module: nn.Module) -> nn.Module:
    """Turn every ``BatchNorm2d`` in ``module`` into a :class:`SyncBatchNorm2d`, in place: the same
    objects, parameters and buffers (optimisers and checkpoints see no change), only the forward
    changes.  Other BatchNorm kinds are refused rather than left per-rank."""
    for m in module.modules():
        if type(m) is nn.BatchNorm2d:
            m.__class__ = SyncBatchNorm2d
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(m, SyncBatchNorm2d):
            raise NotImplementedError(f"{type(m).__name__} has no synchronised version here: only BatchNorm2d")
    return module


def wrap(module: nn.Module, **kwargs) -> nn.Module:
    """``module`` in ``DistributedDataParallel``: its gradients are averaged over the ranks in the
    backward pass.  Call the wrapper for the forward; everything else (``state_dict``, methods) is ``module``'s."""
    device = next(module.parameters()).device
    return nn.parallel.DistributedDataParallel(
        module, device_ids=[device.index] if device.type == "cuda" else None, **kwargs)
