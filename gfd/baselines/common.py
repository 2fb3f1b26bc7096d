"""What the baselines share: options from a config, the class count, a deterministic training view.

Every baseline module (:mod:`~gfd.baselines.prnu`, :mod:`~gfd.baselines.dct`,
:mod:`~gfd.baselines.attnet`) has the same small interface::

    model = fit(bundle, options=None, seed=0, progress=True, **changes)   # an nn.Module

and ``model(x)`` maps a batch to (B, K) scores, so ``gfd.evaluate.evaluate_model(model, bundle)``
measures any of them the way it measures GFD-Net.  Fitting reads the ``train`` split only.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from typing import Any, ClassVar, Mapping, TypeVar

from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from gfd.config import Config
from gfd.evaluate import accuracy
from gfd.layout import TRAIN, VAL
from gfd.streams import stream_for
from gfd.supervised import fit_classifier
from gfd.utils import choose_device, derived_seed

@dataclasses.dataclass(frozen=True)
class ProtocolOptions:
    """The options every learned baseline shares: the course's training protocol (gfd.protocol) and
    the device, taken from a ``Config`` when given one.  Each baseline's options class adds its own
    recipe (optimiser, batch size, budget) and may override a default here."""

    FROM_CONFIG: ClassVar[tuple[str, ...]] = ("lr_schedule", "eval_every", "select", "patience", "patience_after",
                                              "device")
    lr_schedule: str = "cosine"
    eval_every: int = 100
    select: str = "best"
    patience: int = 3
    patience_after: float = 0.0
    device: str = "auto"


O = TypeVar("O")


def resolve_options(cls: type[O], options: Any = None, **changes: Any) -> O:
    """Build the options dataclass ``cls`` from ``None``, an instance, a dict or a gfd ``Config``.

    From a ``Config`` exactly the fields the class lists in ``cls.FROM_CONFIG`` are taken (e.g. the
    training budget and lr of the GFD-Net it is compared with); the rest keep the class's defaults.
    ``changes`` (keyword arguments) win over everything.  Unknown names raise a ``KeyError``.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    if options is None:
        base: dict[str, Any] = {}
    elif isinstance(options, cls):
        base = dataclasses.asdict(options)
    elif isinstance(options, Mapping):
        base = dict(options)
    elif isinstance(options, Config):
        base = {name: getattr(options, name) for name in cls.FROM_CONFIG}
    else:
        raise TypeError(f"{cls.__name__}: options must be None, a {cls.__name__}, a dict or a gfd Config, "
                        f"got {type(options).__name__}")
    base.update(changes)
    unknown = sorted(set(base) - names)
    if unknown:
        raise KeyError(f"unknown {cls.__name__} option(s) {unknown}; known: {sorted(names)}")
    return cls(**base)


def num_classes(bundle: Any) -> int:
    classes = getattr(bundle, "classes", None)
    if not classes:
        raise ValueError("the bundle has no class list; build it with gfd.data.load_data(cfg)")
    return len(classes)


def deterministic_loader(bundle: Any, split: str = TRAIN) -> DataLoader:
    """The ``split`` loader re-made without randomness: random crops become centre crops, no flips,
    no shuffling.  Needed where pixel positions must line up across images (PRNU fingerprints).

    Falls back to the bundle's own loader (with a warning) if its dataset has no v2 transform.
    """
    loader = bundle[split]
    ds = getattr(loader, "dataset", None)
    tf = getattr(ds, "transform", None)
    if not isinstance(tf, v2.Compose):
        warnings.warn(f"cannot make the {split!r} loader deterministic (its dataset has no torchvision v2 "
                      f"Compose transform); using it as is", stacklevel=2)
        return loader
    steps = []
    for t in tf.transforms:
        if isinstance(t, (v2.RandomHorizontalFlip, v2.RandomVerticalFlip)):
            continue
        steps.append(v2.CenterCrop(t.size) if isinstance(t, v2.RandomCrop) else t)
    ds = copy.copy(ds)
    ds.transform = v2.Compose(steps)
    return DataLoader(ds, batch_size=loader.batch_size or 32, shuffle=False, num_workers=loader.num_workers)


def train_to_plateau(model: nn.Module, bundle: Any, opts: Any, seed: int, progress: bool, desc: str) -> dict:
    """Train a learned baseline by its own recipe (``opts.lr``, ``opts.betas``, ``opts.batch_size``,
    ``opts.weight_decay`` if it has one) and the course's protocol (``opts.lr_schedule``, val
    accuracy every ``opts.eval_every`` steps, ``opts.select``, ``opts.patience``) for at most
    ``opts.epochs`` epochs of the ``train`` split, on a batch stream seeded by ``seed`` (and the
    baseline's name).  A model with a ``training_loss(model, x, y)`` method trains on that loss
    instead of the cross-entropy of its scores.  Returns :func:`gfd.supervised.fit_classifier`'s record."""
    loader = bundle[TRAIN]
    ds = loader.dataset
    steps = max(1, math.ceil(opts.epochs * len(ds) / opts.batch_size))
    stream = stream_for(loader, derived_seed(seed, desc), batch_size=opts.batch_size)
    device = choose_device(opts.device)
    val = bundle[VAL]
    record = fit_classifier(model, stream, steps, lr=opts.lr, betas=tuple(opts.betas),
                            weight_decay=getattr(opts, "weight_decay", 0.0), lr_schedule=opts.lr_schedule,
                            validate=lambda m: accuracy(m, val, device), eval_every=opts.eval_every,
                            select=opts.select, patience=opts.patience, patience_after=opts.patience_after,
                            device=device, progress=progress,
                            desc=desc, loss_fn=getattr(model, "training_loss", None))
    model.training_record = record
    return record
