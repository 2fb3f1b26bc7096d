"""Eq. 3: the auxiliary classifier C, "trained previously" (Sec. 3.3), once per run seed.

C is pre-trained on the input images with cross-entropy, by the course's training protocol
(:mod:`gfd.protocol`, through :func:`gfd.supervised.fit_classifier`): lr decaying over
``c_pretrain_steps``, val accuracy every ``eval_every`` steps, the best val weights kept, early stop
on a plateau.  Its data come from a stream of its own (seed derived from the run's seed and "C"), so
pre-training C does not move the batches G trains on.

The result is cached in ``<cache>/pretrained-C/<key>.pt``, keyed by the data (a
:attr:`gfd.data.DataBundle.identity`) and by every config field except those C's pre-training
provably does not read (:data:`NOT_READ_BY_C`: G, D, F, the loss weights, G's budget, the device).
All rows of Table 4 that use C (G+C, G+D+C, G+D+C+L_percept) with the same seed therefore start
from the *same* C: the rows are paired (experiment protocol, rule 4).  A field added to
:class:`~gfd.config.Config` enters the key until it is listed there, so a forgotten entry costs a
cache miss, never a C shared between runs that differ.  A cache file that cannot be read is
reported and recomputed, never trusted.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gfd.config import Config
from gfd.evaluate import accuracy
from gfd.layout import TRAIN, VAL
from gfd.streams import BatchStream, stream_for
from gfd.supervised import fit_classifier
from gfd.utils import atomic_write, derived_seed, stable_hash

NOT_READ_BY_C = frozenset({
    "preset", "unet_depth", "unet_width", "unet_max_width", "decoder_width", "disc_width", "disc_layers",
    "perceptual_weights", "perceptual_layer", "fingerprint_scale", "encoder_arch", "encoder_size", "encoder_weights",
    "backbone_depth", "backbone_width", "backbone_max_width", "w1", "w2", "w3", "w4", "use_D", "use_C", "use_percept",
    "steps", "ckpt_every", "device", "amp", "compile", "num_workers"})
"""The config fields that neither shape C nor its pre-training (Eq. 3) nor its input; every other
field enters C's cache key."""
CACHE_FOLDER = "pretrained-C"


def classifier_key(cfg: Config, data: str | None) -> str:
    """The cache key of a pre-trained C: the data and every field of ``cfg`` not in :data:`NOT_READ_BY_C`."""
    return stable_hash({"data": data, "C": {k: v for k, v in cfg.to_dict().items() if k not in NOT_READ_BY_C}})


def c_stream(cfg: Config, bundle) -> BatchStream:
    """C's own batch stream over the train split (seed derived from the run's seed and "C")."""
    return stream_for(bundle.loaders[TRAIN], derived_seed(cfg.seed, "C pre-training"), batch_size=cfg.batch_size)


def pretrain_classifier(C: nn.Module, cfg: Config, bundle, *, device: torch.device,
                        cache_dir: str | os.PathLike | None = None, prepare=None, autocast=None,
                        progress: bool = True, log=None, write: bool = True) -> dict[str, Any]:
    """Pre-train ``C`` (in place) with Eq. 3 on ``bundle``'s train split, or load the cached result;
    return the record (``loss``, ``eval_step``, ``val_acc``, ``best_val``, ``best_step``, ``stopped``,
    ``steps``, ``cached``).  Without ``cache_dir`` nothing is cached; with ``write=False`` the cache
    is read but never written (the ranks but 0 of a distributed run)."""
    say = log or (lambda msg: None)
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / CACHE_FOLDER / f"{classifier_key(cfg, getattr(bundle, 'identity', None))}.pt"
        if path.is_file():
            try:
                saved = torch.load(path, map_location="cpu", weights_only=True)
                C.load_state_dict(saved["state_dict"])
                say(f"pre-trained C loaded from {path}")
                return dict(saved["record"], cached=True)
            except Exception as err:   # torn or foreign file: recompute it, say so
                warnings.warn(f"cannot read the cached pre-trained C {path} ({type(err).__name__}: {err}); "
                              f"pre-training C again", stacklevel=2)
    if VAL not in bundle.loaders:
        raise ValueError(f"pre-training C by the course's protocol needs a {VAL!r} split to select on")
    val = bundle.loaders[VAL]
    kwargs = {} if autocast is None else {"autocast": autocast}
    record = fit_classifier(
        C, c_stream(cfg, bundle), cfg.c_pretrain_steps, lr=cfg.lr, lr_schedule=cfg.lr_schedule,
        validate=lambda m: accuracy(m, val, device), eval_every=cfg.eval_every, select=cfg.select,
        patience=cfg.patience, patience_after=cfg.patience_after, device=device, prepare=prepare, progress=progress,
        desc="pre-train C (Eq. 3)", **kwargs)
    C.train()
    if path is not None and write:
        state = {"state_dict": {k: v.detach().cpu() for k, v in C.state_dict().items()}, "record": record}
        atomic_write(path, lambda p: torch.save(state, p))
        say(f"pre-trained C saved to {path}")
    return dict(record, cached=False)
