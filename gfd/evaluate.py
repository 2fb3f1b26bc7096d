"""Evaluation: accuracy per world and per class, confusion matrices, seeds -> tables (Sec. 4.1-4.2).

The paper's only metric is top-1 classification accuracy ("Evaluation Metric", Sec. 4.1), reported
in two *worlds* (Sec. 4.2): the **closed** world (test images from the very generators seen in
training, split ``test_closed``) and the **open** world (the same architectures trained on another
dataset, split ``test_open``).  Tables 1, 2 and 4 give one number per method and world; here every
number is a mean over seeds with its spread, because on the mini benchmark single runs swing by
10-20 points (see the sizing notes).

The rule that keeps the open world honest: nothing in this module *chooses* anything.  Checkpoints,
weights and thresholds are picked on the closed-world validation split (``SELECTION_SPLIT``) by
the trainer; these functions only measure.

Typical use::

    results = evaluate_model(model, bundle)              # {"test_closed": {...}, "test_open": {...}}
    runs = {seed: evaluate_model(...) for seed in seeds}  # one method, several seeds
    md = results_table({"DCT": runs_dct, "GFD-Net": runs_gfd}, "runs/table.md", "runs/table.json")
"""
from __future__ import annotations

import json
import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from gfd.utils import atomic_write

WORLDS: dict[str, str] = {"closed": "test_closed", "open": "test_open"}
"""World name -> split name (Sec. 4.2)."""
SPLIT_TO_WORLD: dict[str, str] = {split: world for world, split in WORLDS.items()}
SELECTION_SPLIT = "val"
"""The only split any model selection may look at (closed-world validation)."""
OPTIONAL_SPLITS = ("test_open",)
"""Splits a dataset may lack (the data contract makes ``test_open`` optional)."""


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

def _module_device(fn: Callable) -> torch.device:
    if isinstance(fn, nn.Module):
        for t in list(fn.parameters()) + list(fn.buffers()):
            return t.device
    return torch.device("cpu")


@torch.no_grad()
def predict_loader(predict_fn: Callable[[torch.Tensor], torch.Tensor], loader: Iterable,
                   device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``predict_fn`` (batch -> (B, K) scores) over a loader; return (labels, scores) on the CPU.

    An ``nn.Module`` is put in eval mode for the pass (and restored afterwards).
    """
    device = torch.device(device) if device is not None else _module_device(predict_fn)
    was_training = isinstance(predict_fn, nn.Module) and predict_fn.training
    if isinstance(predict_fn, nn.Module):
        predict_fn.eval()
    ys, ss = [], []
    try:
        for x, y in loader:
            s = predict_fn(x.to(device))
            if s.ndim != 2 or s.shape[0] != x.shape[0]:
                raise ValueError(f"predict_fn must return (B, K) scores; got shape {tuple(s.shape)} "
                                 f"for a batch of {x.shape[0]}")
            ss.append(s.float().cpu())
            ys.append(y.cpu())
    finally:
        if was_training:
            predict_fn.train()
    if not ys:
        raise ValueError("the loader yielded no batch: is the split empty?")
    return torch.cat(ys), torch.cat(ss)


def evaluate_model(predict_fn: Callable[[torch.Tensor], torch.Tensor], bundle: Any,
                   splits: Sequence[str] = ("test_closed", "test_open"),
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
        y, scores = predict_loader(predict_fn, loaders[split], device)
        if scores.shape[1] != len(classes):
            raise ValueError(f"the model scores {scores.shape[1]} classes but the dataset has "
                             f"{len(classes)} ({classes}); was it trained on another dataset?")
        out[split] = dict(evaluate_predictions(y, scores, classes), world=SPLIT_TO_WORLD.get(split, split))
    return out


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


# --- tables ---------------------------------------------------------------------------------------------

def format_cell(stats: Mapping[str, Any] | None, percent: bool = True, digits: int = 2) -> str:
    """``"mean ± std (n seeds)"``, in percent by default like the paper's tables; ``"–"`` if absent."""
    if stats is None:
        return "–"
    scale = 100.0 if percent else 1.0
    n = stats["n"]
    mean = f"{stats['mean'] * scale:.{digits}f}"
    if n < 2 or math.isnan(stats["std"]):
        return f"{mean} ({n} seed{'s' if n != 1 else ''})"
    return f"{mean} ± {stats['std'] * scale:.{digits}f} ({n} seeds)"


def _rows(rows: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> list[tuple[str, list, list]]:
    """Normalise ``{method: runs}`` / ``[(method, runs)]`` to ``[(method, seeds, results)]``."""
    pairs = list(rows.items()) if isinstance(rows, Mapping) else list(rows)
    out = []
    for method, runs in pairs:
        if isinstance(runs, Mapping) and runs and all(isinstance(v, Mapping) for v in runs.values()) \
                and not any(isinstance(v, Mapping) and "acc" in v for v in runs.values()):
            seeds, results = list(runs.keys()), list(runs.values())      # {seed: result}
        elif isinstance(runs, Mapping):
            seeds, results = [None], [runs]                              # a single result
        else:
            results = list(runs)
            seeds = list(range(len(results)))
        out.append((str(method), seeds, results))
    return out


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def results_table(rows: Mapping[str, Any] | Sequence[tuple[str, Any]], path_md: str | None = None,
                  path_json: str | None = None, metrics: Sequence[str] = ("closed", "open"),
                  percent: bool = True, digits: int = 2, title: str | None = None,
                  reference: Mapping[str, Mapping[str, float]] | None = None, reference_name: str = "paper",
                  notes: Sequence[str] = (), meta: Mapping[str, Any] | None = None) -> str:
    """A Markdown table, one row per method and one column per metric (Tables 1, 2, 4 of the paper).

    ``rows``: ``{method: runs}`` (or a list of ``(method, runs)`` pairs), where ``runs`` is a list of
    per-seed results, a dict ``{seed: result}``, or one result; results as for
    :func:`aggregate_runs`.  Cells read ``"mean ± std (n seeds)"`` (accuracy in percent by default).
    Writes the table to ``path_md`` and, to ``path_json``, the summary plus the raw per-seed numbers.
    ``reference`` (``{method: {metric: value}}``, already in the table's unit) adds a column per
    metric headed ``"<metric> (<reference_name>)"``, e.g. the paper's numbers; ``notes`` are
    paragraphs printed under the table; ``meta`` is stored in the JSON as is.  Returns the Markdown.
    """
    metrics = list(metrics)
    norm = _rows(rows)
    if not norm:
        raise ValueError("results_table got no rows")
    unit = " (%)" if percent else ""
    ref_metrics = [m for m in metrics if reference and any(m in r for r in reference.values())]
    header = "| Method | " + " | ".join([f"{m}{unit}" for m in metrics]
                                        + [f"{m} ({reference_name})" for m in ref_metrics]) + " |"
    lines = ([f"**{title}**", ""] if title else []) + [header, "|---" * (len(metrics) + len(ref_metrics) + 1) + "|"]
    records = []
    for method, seeds, results in norm:
        summary = aggregate_runs(results, per_class=True)
        ref = (reference or {}).get(method, {})
        cells = [format_cell(summary.get(m), percent, digits) for m in metrics]
        cells += [f"{ref[m]:.{digits}f}" if m in ref else "–" for m in ref_metrics]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
        records.append(dict(method=method, seeds=seeds, summary=summary,
                            per_seed=[flatten_metrics(r, per_class=True) for r in results],
                            per_seed_confusion=[{k: v["confusion"] for k, v in r.items()
                                                 if isinstance(v, Mapping) and "confusion" in v}
                                                for r in results]))
    for note in notes:
        lines += ["", note]
    text = "\n".join(lines) + "\n"
    if path_md is not None:
        atomic_write(path_md, lambda p: p.write_text(text, encoding="utf-8"))
    if path_json is not None:
        payload = _json_safe(dict(metrics=metrics, percent=percent, rows=records, reference=reference,
                                  meta=dict(meta or {})))
        atomic_write(path_json, lambda p: p.write_text(json.dumps(payload, indent=2), encoding="utf-8"))
    return text
