"""Checkpoints of the GFD-Net trainer: safe to load, written atomically, checked when read.

A checkpoint is one ``torch.save`` file holding only tensors, numbers, strings, lists, tuples and
dicts, so that ``torch.load(path, weights_only=True)`` reads it (no pickled code runs).  It holds::

    format, version       "gfd-checkpoint", FORMAT_VERSION
    config                cfg.to_dict()
    classes               class names, in label order
    step                  alternating iterations done
    models / optim / sched / scaler   state_dicts
    rng                   torch (CPU and CUDA), NumPy and Python RNG states, as tensors and lists
    streams, history, meta, snapshots the trainer's own bookkeeping (see gfd.train)

Files are written to a temporary file and renamed (:func:`gfd.utils.atomic_write`), so a crash
never leaves a truncated checkpoint.  Reading a file that is truncated, not a torch file, or a
torch file of another program raises :class:`CheckpointError` naming the file and what is wrong.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from gfd.utils import atomic_write

FORMAT = "gfd-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("config", "classes", "step", "models")


class CheckpointError(ValueError):
    """A file that is not a readable gfd checkpoint; the message names the file and the problem."""


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` (plus the format tag) to ``path`` atomically; return the path."""
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise KeyError(f"checkpoint state lacks {missing}")
    payload = {"format": FORMAT, "version": FORMAT_VERSION, **state}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint written by :func:`save_checkpoint` (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"{path} is not a readable torch checkpoint ({type(err).__name__}: {str(err)[:300]}); it may "
            f"be truncated, corrupt, or not written by gfd. Re-create it with `python -m gfd train`.") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        what = f"a dict with keys {sorted(map(str, state))[:10]}" if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} is a torch file but not a gfd checkpoint (it holds {what}, "
                              f"without format={FORMAT!r}); was it written by another program?")
    if state.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} is a gfd checkpoint of format version {state.get('version')}, "
                              f"this code reads version {FORMAT_VERSION}; retrain or use the matching gfd")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path} is an incomplete gfd checkpoint: missing {missing}")
    return state
