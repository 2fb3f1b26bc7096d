"""Seeded, endless, resumable batch streams, and the RNG states a run owns.

Every training loop of the course (GFD-Net's alternating steps, C's pre-training, the direct
classifier, the learned baselines) draws its batches from a :class:`BatchStream`: epoch ``e`` is
shuffled by a generator seeded with ``(seed, e)`` and its random crops are drawn from a generator
seeded by the batch's place, so the batches are a function of the seed alone, not of what ran
before in the same process, and a stream can be saved and resumed exactly (:meth:`BatchStream.state_dict`).
"""
from __future__ import annotations

import contextlib
import random
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from gfd.utils import seeded


# --- the global RNG states, as weights_only-safe values (checkpoints store them) -------------------

def rng_state() -> dict[str, Any]:
    """The torch (CPU, CUDA), NumPy and Python RNG states as tensors, lists and numbers."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


@contextlib.contextmanager
def preserved_rng():
    """Run a block without changing the torch (CPU), NumPy and Python RNG states."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


# --- streams ---------------------------------------------------------------------------------------

class BatchStream:
    """An endless, resumable stream of batches over ``dataset``.

    Epoch ``e`` is shuffled (and the loader's worker seeds drawn) by a generator seeded with
    ``(seed, e)``.  After :meth:`load_state_dict` the next batch replays the saved epoch up to the
    saved position first (so that random crops drawn in worker processes repeat too); the replay
    leaves the global RNG states untouched.

    In a distributed run (:mod:`gfd.distributed`) ``batch_size`` is the *global* batch: every rank
    draws the same global batch -- same samples, same crops, as one process draws it -- and keeps
    its ``batch_size / world_size`` rows (rank ``r``: rows ``r*b`` to ``(r+1)*b - 1``).  Exact, at the
    price of every rank decoding the whole global batch.  The state (:meth:`state_dict`) counts
    global batches, so a checkpoint resumes on any number of ranks.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, num_workers: int = 0,
                 collate_fn=None, worker_init_fn=None, pin_memory: bool = False, *,
                 rank: int = 0, world_size: int = 1):
        if len(dataset) == 0:
            raise ValueError("cannot stream batches from an empty dataset")
        rows = min(batch_size, len(dataset))          # a dataset smaller than a batch: one short batch
        if rows % world_size:
            raise ValueError(f"a global batch of {rows} images does not split over {world_size} processes; "
                             f"use a batch_size (and datasets) divisible by the number of processes")
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.loader_kwargs = dict(num_workers=num_workers, worker_init_fn=worker_init_fn,
                                  pin_memory=pin_memory)
        if collate_fn is not None:
            self.loader_kwargs["collate_fn"] = collate_fn
        self.epoch, self.pos = 0, 0
        self._it: Iterator | None = None

    def _start_epoch(self) -> None:
        """Open the iterator of epoch ``self.epoch`` and skip the ``self.pos`` batches already used."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        loader = DataLoader(self.dataset, batch_size=self.batch_size, shuffle=True, generator=gen,
                            drop_last=len(self.dataset) >= self.batch_size, **self.loader_kwargs)
        self._it = iter(loader)
        if self.pos:
            with preserved_rng():  # crops drawn in this process during the replay must not count
                for _ in range(self.pos):
                    next(self._it)

    def __iter__(self) -> "BatchStream":
        return self

    def __next__(self):
        if self._it is None:
            self._start_epoch()
        try:
            batch = self._fetch()
        except StopIteration:
            self.epoch, self.pos = self.epoch + 1, 0
            self._start_epoch()
            batch = self._fetch()
        self.pos += 1
        return self._shard(batch) if self.world_size > 1 else batch

    def _shard(self, batch):
        """This rank's rows of a global batch (of every tensor in it)."""
        b = len(batch[0]) // self.world_size
        return type(batch)(t[self.rank * b:(self.rank + 1) * b] for t in batch)

    def _fetch(self):
        """The next batch.  Without worker processes its random crops are drawn here, from torch's
        generator seeded by (seed, epoch, position): they belong to the stream, not to whatever ran
        before in the process.  (Worker processes are seeded by the epoch's generator already.)"""
        if self.loader_kwargs["num_workers"]:
            return next(self._it)
        with seeded(self.seed, "batch", self.epoch, self.pos):
            return next(self._it)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
        self._it = None  # replayed lazily, by the next batch


def stream_for(loader: DataLoader, seed: int, dataset: Dataset | None = None, *, batch_size: int | None = None,
               rank: int = 0, world_size: int = 1) -> BatchStream:
    """A :class:`BatchStream` with the workers of ``loader`` and its batch size (or ``batch_size``),
    over its dataset (or over ``dataset``, e.g. a subset of it); ``rank`` / ``world_size`` shard it
    (distributed runs)."""
    return BatchStream(loader.dataset if dataset is None else dataset, batch_size or loader.batch_size, seed,
                       num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                       worker_init_fn=loader.worker_init_fn, pin_memory=loader.pin_memory,
                       rank=rank, world_size=world_size)


def class_indices(dataset: Dataset, label: int) -> list[int]:
    """Indices of the items of class ``label`` (from ``.targets`` when the dataset has them)."""
    targets = getattr(dataset, "targets", None)
    if targets is None and hasattr(dataset, "tensors"):
        targets = dataset.tensors[1].tolist()
    if targets is None:
        targets = [int(dataset[i][1]) for i in range(len(dataset))]
    return [i for i, t in enumerate(targets) if int(t) == label]
