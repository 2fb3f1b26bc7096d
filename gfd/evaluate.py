"""Measuring: predictions, accuracy per world and per class, confusion matrices, mean over seeds
(Sec. 4.1-4.2).

The paper's only metric is top-1 classification accuracy ("Evaluation Metric", Sec. 4.1), reported
in two *worlds* (Sec. 4.2): the **closed** world (test images from the very generators seen in
training, split ``test_closed``) and the **open** world (the same architectures trained on another
dataset, split ``test_open``).

:func:`predict` is the one forward pass over a loader: validation during training, the tests and
the baselines all go through it.  Nothing in this module *chooses* anything; turning measurements
into tables is :mod:`gfd.report`'s job.

    results = evaluate_model(model, bundle)     # {"test_closed": {...}, "test_open": {...}}
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from gfd.layout import OPTIONAL_SPLITS, SPLIT_TO_WORLD, TEST_CLOSED, TEST_OPEN, VAL
from gfd.utils import module_device


SELECTION_SPLIT = VAL
"""The closed-world validation split: the only split anything is selected on.  The training protocol
(:mod:`gfd.protocol`) keeps the weights with the best accuracy here and stops on its plateau."""


# --- one set of predictions ------------------------------------------------------------------------

def _as_labels(y: Any, name: str) -> np.ndarray:
    """Labels from a 1-D array of ints, or the argmax of a 2-D (N, K) score array."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim == 2:
        y = y.argmax(axis=1)
    if y.ndim != 1:
        raise ValueError(f"{name}: expected labels (N,) or scores (N, K), got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError(f"{name}: labels must be integers, got dtype {y.dtype}")
        y = y.astype(np.int64)
    return y.astype(np.int64)


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int) -> np.ndarray:
    """(K, K) counts; row = true class, column = predicted class.  ``y_pred`` may be (N, K) scores."""
    t, p = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} labels but y_pred has {p.size}")
    for name, y in (("y_true", t), ("y_pred", p)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} holds labels outside 0..{num_classes - 1}: "
                             f"min {y.min()}, max {y.max()}; does the class list match the model?")
    return np.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def evaluate_predictions(y_true: Any, y_pred: Any, classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-class accuracy (recall; ``None`` for a class without test images) and confusion.

    ``y_pred`` may be predicted labels (N,) or class scores (N, K) (probabilities or logits).
    Returns ``dict(acc, per_class_acc={class: acc}, confusion=[[...]], classes, n)``.
    """
    classes = list(classes)
    cm = confusion_matrix(y_true, y_pred, len(classes))
    n = int(cm.sum())
    if n == 0:
        raise ValueError("no predictions to evaluate (empty split?)")
    support = cm.sum(axis=1)
    per_class = {c: (float(cm[i, i] / support[i]) if support[i] else None) for i, c in enumerate(classes)}
    return dict(acc=float(np.trace(cm) / n), per_class_acc=per_class, confusion=cm.tolist(),
                classes=classes, n=n)


# --- a model over the splits of a bundle ------------------------------------------------------------

@contextmanager
def eval_mode(model: Callable):
    """``model`` (and every sub-module) in eval mode inside the block, each back to its own mode after."""
    modes = [(m, m.training) for m in model.modules()] if isinstance(model, nn.Module) else []
    for m, _ in modes:
        m.training = False
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


@torch.no_grad()
def predict(model: Callable[[torch.Tensor], torch.Tensor], loader: Iterable,
            device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` (batch -> (B, K) scores) over a loader in eval mode; return (labels, scores) on
    the CPU.  Scores are what the model outputs (logits, or PRNU's correlations)."""
    device = torch.device(device) if device is not None else module_device(model)
    ys, ss = [], []
    with eval_mode(model):
        for x, y in loader:
            s = model(x.to(device))
            if s.ndim != 2 or s.shape[0] != x.shape[0]:
                raise ValueError(f"the model must return (B, K) scores; got shape {tuple(s.shape)} "
                                 f"for a batch of {x.shape[0]}")
            ss.append(s.float().cpu())
            ys.append(y.cpu())
    if not ys:
        raise ValueError("the loader yielded no batch: is the split empty?")
    return torch.cat(ys), torch.cat(ss)


def accuracy(model: Callable[[torch.Tensor], torch.Tensor], loader: Iterable,
             device: torch.device | str | None = None) -> float:
    """Top-1 accuracy of ``model`` on a loader."""
    y, s = predict(model, loader, device)
    return (s.argmax(1) == y).float().mean().item()


def evaluate_model(predict_fn: Callable[[torch.Tensor], torch.Tensor], bundle: Any,
                   splits: Sequence[str] = (TEST_CLOSED, TEST_OPEN),
                   device: torch.device | str | None = None) -> dict[str, dict[str, Any]]:
    """Evaluate ``predict_fn`` (batch tensor -> (B, K) scores) on each split of a ``DataBundle``.

    Returns ``{split: evaluate_predictions(...) + {"world": "closed"|"open"|split}}``.  A split the
    dataset lacks is skipped if it is optional (``test_open``), otherwise a ``KeyError`` names the
    available ones.  Nothing here selects a model: do that on ``SELECTION_SPLIT`` beforehand.
    """
    loaders = bundle.loaders
    classes = list(bundle.classes)
    out: dict[str, dict[str, Any]] = {}
    for split in splits:
        if split not in loaders:
            if split in OPTIONAL_SPLITS:
                continue
            raise KeyError(f"split {split!r} is not in the bundle loaded from {getattr(bundle, 'root', '?')}; "
                           f"available: {sorted(loaders)}")
        y, scores = predict(predict_fn, loaders[split], device)
        if scores.shape[1] != len(classes):
            raise ValueError(f"the model scores {scores.shape[1]} classes but the dataset has "
                             f"{len(classes)} ({classes}); was it trained on another dataset?")
        out[split] = dict(evaluate_predictions(y, scores, classes), world=SPLIT_TO_WORLD.get(split, split))
        out[split] |= instance_accuracy(loaders[split].dataset, y, scores, classes)
    return out


def instance_accuracy(dataset: Any, y_true: Any, scores: torch.Tensor, classes: Sequence[str]) -> dict[str, Any]:
    """On the built-in benchmark, whose file names say which generator instance made each image:
    ``acc_instances``, the accuracy averaged over sources (each generator instance, and each world's
    real images, weighs the same) and then over worlds, and ``by_source`` (see
    :func:`gfd.benchmark.sources.accuracy_by_source`).  Empty for data without such names."""
    samples = getattr(dataset, "samples", None)
    if samples is None or len(samples) != len(y_true):
        return {}
    from gfd.benchmark.sources import accuracy_by_source, source_of   # only the benchmark names files so
    paths = [s[0] for s in samples]
    if not all(source_of(p) for p in paths):
        return {}
    pred = torch.as_tensor(scores).argmax(1).tolist()
    by_source = accuracy_by_source(paths, torch.as_tensor(y_true).tolist(), pred, classes)
    return {"acc_instances": by_source["mean_over_worlds"], "by_source": by_source}


def beats_chance(acc: float, n: int, num_classes: int, z: float = 3.0) -> bool:
    """Is ``acc`` on ``n`` test images more than ``z`` standard errors of a guesser above chance
    ``1 / num_classes``?  The check the notebooks assert where numbers vary between runs."""
    chance = 1.0 / num_classes
    return acc > chance + z * math.sqrt(chance * (1 - chance) / n)


# --- seeds -> mean and spread -------------------------------------------------------------------------

def flatten_metrics(result: Mapping[str, Any], per_class: bool = False) -> dict[str, float]:
    """One run's numbers as a flat ``{metric: value}`` dict, metrics named by world.

    ``result`` is an :func:`evaluate_model` output (``{"closed": acc, "open": acc}`` and, with
    ``per_class``, ``"closed/<class>"``...) or already a flat dict of numbers (returned as is).
    """
    flat: dict[str, float] = {}
    for key, value in result.items():
        if isinstance(value, Mapping) and "acc" in value:
            world = value.get("world", SPLIT_TO_WORLD.get(key, key))
            flat[world] = float(value["acc"])
            if value.get("acc_instances") is not None:
                flat[f"{world}_inst"] = float(value["acc_instances"])
            if per_class:
                for c, a in value["per_class_acc"].items():
                    if a is not None:
                        flat[f"{world}/{c}"] = float(a)
        elif isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
            flat[key] = float(value)
        else:
            raise TypeError(f"metric {key!r}: expected a number or an evaluate_model result, got "
                            f"{type(value).__name__}")
    return flat


def aggregate_runs(runs: Sequence[Mapping[str, Any]] | Mapping[Any, Mapping[str, Any]],
                   per_class: bool = False) -> dict[str, dict[str, Any]]:
    """Mean and spread of each metric over runs (seeds).

    ``runs``: a list of per-run results, or a dict ``{seed: result}``; each result is an
    :func:`evaluate_model` output or a flat ``{metric: value}`` dict.  Returns
    ``{metric: dict(mean, std, n, values)}`` with the *sample* standard deviation (ddof=1; ``nan``
    for a single run).  A metric missing from some runs is aggregated over the runs that have it.
    """
    items = list(runs.values()) if isinstance(runs, Mapping) else list(runs)
    if not items:
        raise ValueError("aggregate_runs got no runs")
    flats = [flatten_metrics(r, per_class) for r in items]
    names: list[str] = []
    for f in flats:
        names += [k for k in f if k not in names]
    out = {}
    for name in names:
        values = [f[name] for f in flats if name in f]
        arr = np.asarray(values, dtype=np.float64)
        std = float(arr.std(ddof=1)) if arr.size > 1 else float("nan")
        out[name] = dict(mean=float(arr.mean()), std=std, n=int(arr.size), values=values)
    return out
