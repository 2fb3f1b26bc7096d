"""Train-and-measure one configuration: the plain function behind the notebooks' loss toggles.

``run_variant`` is what the ablation widget of notebook 05 calls, and what a notebook or a script
calls directly: load the run of this exact config from the cache (or train it), then measure G_enc
+ H on the closed-world validation split and in both worlds (Sec. 4.2, Table 4).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gfd.config import Config
from gfd.evaluate import evaluate_model
from gfd.inference import EncoderHead
from gfd.train import Trainer, load_or_train

ABLATIONS: dict[str, dict[str, bool]] = {
    "G": dict(use_D=False, use_C=False, use_percept=False),
    "G+D": dict(use_D=True, use_C=False, use_percept=False),
    "G+C": dict(use_D=False, use_C=True, use_percept=False),
    "G+D+C": dict(use_D=True, use_C=True, use_percept=False),
    "G+D+C+L_percept": dict(use_D=True, use_C=True, use_percept=True),
}
"""The rows of Table 4: which networks and losses are switched on."""


def ablation_name(cfg: Config) -> str:
    """The Table 4 row a config belongs to (e.g. ``"G+D+C"``)."""
    parts = ["G"] + [n for n, on in (("D", cfg.use_D), ("C", cfg.use_C)) if on]
    name = "+".join(parts)
    return name + "+L_percept" if cfg.use_percept else name


@dataclass
class VariantResult:
    """What one trained configuration achieved."""

    name: str
    cfg: Config
    trainer: Trainer
    val: float                     # closed-world validation accuracy (the only split used to choose)
    results: dict[str, Any]        # gfd.evaluate.evaluate_model output per test split

    @property
    def closed(self) -> float:
        return self.results["test_closed"]["acc"]

    @property
    def open(self) -> float | None:
        return self.results["test_open"]["acc"] if "test_open" in self.results else None

    def summary(self) -> str:
        opened = f"{self.open:.1%}" if self.open is not None else "n/a"
        return f"{self.name:18s} val {self.val:6.1%}  closed {self.closed:6.1%}  open {opened:>6s}"


def run_variant(cfg: Config, bundle, cache_dir: str | os.PathLike, progress: bool = True) -> VariantResult:
    """Load or train ``cfg`` on ``bundle`` (cached by config), then measure it in both worlds."""
    trainer = load_or_train(cfg, bundle, cache_dir=Path(cache_dir), progress=progress)
    model = EncoderHead(trainer.G)
    return VariantResult(name=ablation_name(cfg), cfg=cfg, trainer=trainer, val=trainer.validate(),
                         results=evaluate_model(model, bundle))
