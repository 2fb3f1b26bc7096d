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

A *weights-only export* (:func:`export_weights`, ``python -m gfd export``) is the file to share or
to attribute with: format ``"gfd-weights"``, holding only ``config``, ``classes``, ``step``, ``meta``
and ``models = {"G": ...}`` (G_enc, H and the decoder; no D, C, F, optimiser or RNG state), about a
tenth of the size.  :func:`gfd.inference.load_generator` -- hence ``attribute`` and ``evaluate`` --
reads both kinds and gives identical outputs; training cannot resume from an export.

Files are written to a temporary file and renamed (:func:`gfd.utils.atomic_write`), so a crash
never leaves a truncated checkpoint; their mode follows the umask (0644 under umask 022).  Reading a
file that is truncated, not a torch file, or a torch file of another program raises
:class:`CheckpointError` naming the file and what is wrong.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from gfd.utils import atomic_write

FORMAT = "gfd-checkpoint"
EXPORT_FORMAT = "gfd-weights"
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


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu", *,
                    allow_export: bool = False) -> dict[str, Any]:
    """Read and check a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    With ``allow_export`` a weights-only export (:func:`export_weights`) is accepted too (its
    ``format`` is :data:`EXPORT_FORMAT`); without it, one is refused with a clear error.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"{path} is not a readable torch checkpoint ({type(err).__name__}: {str(err)[:300]}); it may "
            f"be truncated, corrupt, or not written by gfd. Re-create it with `python -m gfd train`.") from err
    if isinstance(state, dict) and state.get("format") == EXPORT_FORMAT and not allow_export:
        raise CheckpointError(f"{path} is a weights-only export (G, config and classes, for `python -m gfd "
                              f"attribute` / `evaluate`); training cannot resume from it: use the run's full "
                              f"checkpoint.pt")
    if not isinstance(state, dict) or state.get("format") not in (FORMAT, EXPORT_FORMAT):
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


def export_weights(checkpoint: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the weights-only export of a checkpoint to ``out`` (atomically) and return its path.

    The export keeps what inference needs -- G's state_dict, config, classes, step and meta -- in
    float as trained, so attribution from it is identical to attribution from the checkpoint.
    ``out`` may not be the checkpoint itself, nor overwrite another full checkpoint.
    """
    src, dst = Path(checkpoint), Path(out)
    state = load_checkpoint(src, allow_export=True)
    if dst.exists() and (dst.is_dir() or dst.resolve() == src.resolve()):
        raise ValueError(f"--out {dst} is {'a folder' if dst.is_dir() else 'the checkpoint itself'}; "
                         f"give the path of a new file, e.g. {src.with_suffix('.weights.pt').name}")
    if dst.is_file():
        try:
            existing = torch.load(dst, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 -- not a torch file: overwriting it is the user's call
            existing = None
        if isinstance(existing, dict) and existing.get("format") == FORMAT:
            raise ValueError(f"{dst} is a full gfd checkpoint; exporting over it would lose its training "
                             f"state. Give another --out path, or delete it yourself first.")
    if "G" not in state["models"]:
        raise CheckpointError(f"{src} holds no generator G (networks: {sorted(state['models'])})")
    payload = {"format": EXPORT_FORMAT, "version": FORMAT_VERSION, "config": state["config"],
               "classes": list(state["classes"]), "step": state["step"], "meta": state.get("meta", {}),
               "models": {"G": state["models"]["G"]}}
    return atomic_write(dst, lambda tmp: torch.save(payload, tmp))
