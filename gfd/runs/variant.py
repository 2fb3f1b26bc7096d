"""Train (or load) one method with one config and measure it on the validation split and in both
worlds (Sec. 4.2): the one train-and-measure function of the course.

Notebook 05's loss toggles, ``reproduce``'s runs and the benchmark's calibration all call
:func:`train_and_measure`.  A GFD-Net configuration (any row of Table 4, or Table 1's GFD-Net) is
trained by :func:`gfd.train.load_or_train`, so a config that was trained before is loaded from its
run folder; a baseline (Table 1's PRNU, DCT, AttNet) is fitted by :mod:`gfd.baselines`.  Either
way the model is measured by :func:`gfd.evaluate.evaluate_model`.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from torch import nn

from gfd.config import Config
from gfd.evaluate import SELECTION_SPLIT, evaluate_model
from gfd.layout import TEST_CLOSED, TEST_OPEN, TEST_SPLIT
from gfd.models.generator import EncoderHead
from gfd.paper import GFD_ROWS, ablation_name
from gfd.report import NO_PRETRAINED
from gfd.train import Trainer, default_run_dir, load_or_train

MEASURED_SPLITS = (SELECTION_SPLIT, TEST_CLOSED, TEST_OPEN)


@dataclass
class RunResult:
    """What one trained method achieved."""

    method: str
    cfg: Config
    model: nn.Module                # what was measured: G_enc + H, or the baseline
    results: dict[str, Any]         # evaluate_model output per split (val, test_closed, test_open)
    weights: str                    # the pretrained weights C and F actually used
    seconds: float
    trainer: Trainer | None = None  # GFD-Net rows only
    deterministic: bool = False     # no randomness in training: every seed gives the same model
    training: dict[str, Any] | None = None   # how training ended (gfd.protocol): steps, best_step, stopped, c_val
    train_seconds: float | None = None       # wall time spent training in this call; None: loaded from its run folder

    @property
    def c_val(self) -> float | None:
        """Val accuracy of the pre-trained C (rows with C only)."""
        return (self.training or {}).get("c_val")

    @property
    def val(self) -> float:
        """Closed-world validation accuracy: the only split a user may select on."""
        return self.results[SELECTION_SPLIT]["acc"]

    @property
    def closed(self) -> float | None:
        """Closed-world test accuracy (``None`` for a detection run: see :attr:`detection`)."""
        return self.results[TEST_CLOSED]["acc"] if TEST_CLOSED in self.results else None

    @property
    def detection(self) -> dict[str, float] | None:
        """A detection run's accuracy per test set and their average (``"Avg"``), else ``None``."""
        from gfd.detection import detection_accuracies
        tests = [k for k in self.results if k.startswith(f"{TEST_SPLIT}/")]
        return detection_accuracies(self.results) if tests else None

    @property
    def open(self) -> float | None:
        return self.results[TEST_OPEN]["acc"] if TEST_OPEN in self.results else None

    def summary(self) -> str:
        if self.detection is not None:
            return f"{self.method:18s} val {self.val:6.1%}  average over test sets {self.detection['Avg']:6.1%}"
        opened = f"{self.open:.1%}" if self.open is not None else "n/a"
        return f"{self.method:18s} val {self.val:6.1%}  closed {self.closed:6.1%}  open {opened:>6s}"

    def label(self, base: Config) -> str:
        """What this run changed from ``base`` (e.g. the preset): see :func:`describe_changes`."""
        return describe_changes(self.cfg, base)


SWITCH_NAMES = {"use_D": "D", "use_C": "C", "use_percept": "L_percept"}


def config_changes(cfg: Config, base: Config) -> list[str]:
    """Every field in which ``cfg`` differs from ``base``, in the order of :class:`Config`'s fields:
    a switch as ``"no D"`` / ``"with D"``, any other field as ``"w2=0.01"``."""
    changes = []
    for name, value in cfg.to_dict().items():
        before = getattr(base, name)
        if value == before:
            continue
        if name in SWITCH_NAMES:
            changes.append(f"{'with' if value else 'no'} {SWITCH_NAMES[name]}")
        elif isinstance(value, float):
            short = f"{value:g}"
            changes.append(f"{name}={short if float(short) == value else repr(value)}")
        else:
            changes.append(f"{name}={value}")
    return changes


def describe_changes(cfg: Config, base: Config) -> str:
    """A run's label: what it changed from ``base`` (``"no D, w2=0.01"``), or ``"<preset> preset"``
    when it changed nothing.  Two different configs never share a label."""
    return ", ".join(config_changes(cfg, base)) or f"{base.preset} preset"


def train_and_measure(cfg: Config, bundle, method: str | None = None, *, runs_root: str | os.PathLike | None = None,
                      progress: bool = True) -> RunResult:
    """Train or load ``method`` (default: GFD-Net with ``cfg``'s switches, named like the Table 4 rows,
    e.g. ``"G+C+L_percept"`` also where Table 4 has no such row) on ``bundle`` with ``cfg`` and
    measure it.

    ``method`` is a GFD-Net row (``"G"`` ... ``"G+D+C+L_percept"``, ``"GFD-Net"``: its switches are
    set on ``cfg``) or a baseline of Table 1 (``"PRNU"``, ``"DCT"``, ``"AttNet"``) or Table 3
    (``"CNNDetect"``, ``"PatchForensics"``, ``"ResNet"``, ``"DenseNet"``; its GFD-Net rows ``"GFD-Net (U-Net)"``,
    ``"GFD-Net (ResNet)"``, ``"GFD-Net (DenseNet)"`` set G's encoder).  GFD-Net runs live under ``runs_root`` (default
    ``data/runs``).  A detection bundle (:mod:`gfd.detection`) is measured on ``val`` and its test
    sets (:func:`measure`).
    """
    gfd_net = method is None or method in GFD_ROWS  # no method: GFD-Net with cfg's own switches
    method = method or ablation_name(cfg)
    start = time.perf_counter()
    trainer = None
    if gfd_net:
        cfg = cfg.with_(**GFD_ROWS.get(method, {}))  # e.g. "G+C+L_percept" is no row of Table 4
        trainer = load_or_train(cfg, bundle, out_dir=default_run_dir(cfg, runs_root, bundle.identity),
                                progress=progress)
        model = EncoderHead(trainer.G)
        trained = trainer.fit_seconds          # None when the finished run was loaded, not trained
        training = training_summary(trainer)
        encoder = trainer.meta.get("encoder_weights", "random")     # a backbone G_enc's start (Table 3)
        parts = [f"G_enc {encoder}"] if encoder != "random" else []
        parts += [f"C {trainer.meta['classifier_weights']}"] if cfg.use_C else []
        parts += [f"F {trainer.meta['perceptual_weights']}"] if cfg.use_percept else []
        weights = ", ".join(parts) or NO_PRETRAINED
    else:
        from gfd.baselines import DETERMINISTIC, TABLE_NAMES, fit_baseline
        if method not in TABLE_NAMES:
            raise ValueError(f"unknown method {method!r}; choose a GFD-Net row {sorted(GFD_ROWS)} "
                             f"or a baseline {sorted(TABLE_NAMES)}")
        fit_start = time.perf_counter()
        model = fit_baseline(TABLE_NAMES[method], bundle, options=cfg, seed=cfg.seed, progress=progress)
        trained = time.perf_counter() - fit_start
        record = getattr(model, "training_record", None)
        training = ({k: record[k] for k in ("steps", "best_step", "best_val", "stopped")} if record else None)
        used = getattr(model, "weights_used", "random")         # CNNDetect may start from ImageNet
        weights = NO_PRETRAINED if used == "random" else f"{method} {used}"
    results = measure(model, bundle)
    deterministic = not gfd_net and TABLE_NAMES[method] in DETERMINISTIC
    return RunResult(method, cfg, model, results, weights, round(time.perf_counter() - start, 1), trainer,
                     deterministic, training, None if trained is None else round(trained, 1))


def measure(model: nn.Module, bundle) -> dict[str, Any]:
    """The splits a run is measured on: ``val`` and both worlds (attribution, Sec. 4.2), or ``val``
    and every test set of a :class:`gfd.detection.DetectionBundle` (detection, Sec. 4.3)."""
    from gfd.detection import DetectionBundle, evaluate_detection
    if isinstance(bundle, DetectionBundle):
        return evaluate_detection(model, bundle)
    return evaluate_model(model, bundle, splits=MEASURED_SPLITS)


def training_summary(trainer: Trainer) -> dict[str, Any]:
    """How a GFD-Net run's training ended: steps done, the kept weights' step and val accuracy, why
    it stopped ("plateau" / "budget"), and the val accuracy of its pre-trained C (rows with C)."""
    sel = trainer.history.get("selection") or trainer.selection.summary()
    out = {"steps": trainer.step, "best_step": sel.get("best_step"), "best_val": sel.get("best_val"),
           "stopped": sel.get("stopped")}
    if trainer.C is not None and trainer.history.get("c_val_acc"):
        out["c_val"] = trainer.history["c_val_acc"][-1]
        out["c_pretrain"] = trainer.meta.get("c_pretrain")
    return out
