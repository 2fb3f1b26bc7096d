"""The one training protocol of the course: how the lr decays, when training stops, which weights
are kept.  Every learned method uses it -- GFD-Net and its ablations (:mod:`gfd.train`), C's
pre-training (Eq. 3, :mod:`gfd.pretrain`) and the learned baselines (:mod:`gfd.supervised`) -- so
a comparison between them is between methods, not between training budgets.

The rule, written down once (``../notes/experiment-protocol.md``, rule 2):

1. **Schedule.**  ``lr_schedule="cosine"``: the lr falls from ``lr`` to ``FINAL_LR_RATIO * lr``
   along a half cosine over the step budget ``steps``.  ``"step"`` is the paper's StepLR
   (Sec. 4.1: every ``lr_step`` iterations multiply by ``lr_gamma``), kept by the ``paper`` preset.
2. **Evaluation.**  Every ``eval_every`` steps and at the last one, accuracy on the closed-world
   ``val`` split, never on a test split.
3. **Selection.**  ``select="best"`` keeps the weights of the evaluation with the highest val
   accuracy (the later one on a tie: it has seen more data at a lower lr); ``"last"`` keeps the
   last weights (the paper states no rule; ``paper`` preset).
4. **Stop.**  After ``patience`` evaluations in a row without a new best, training stops early
   ("plateau"); otherwise it stops at the budget ("budget").  ``patience=0`` never stops early.
   With ``patience_after`` (a share of the budget; the course preset's is 0.5) no plateau stop
   comes before that step: a decaying lr is still high in the first half of its schedule, where
   val accuracy swings, and a stop there keeps weights that never saw the low lr (measured: G+C,
   seed 0, course preset, stopped at step 700 of 1500 with val 92.8 %, where G and G+D of seed 3
   went on to 99.6 %).

:class:`Selection` keeps the record of 2-4 and is saved with a run, so a resumed run goes on
with the same best weights and the same count.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import torch

SCHEDULES = ("step", "cosine", "constant")
SELECTIONS = ("best", "last")
FINAL_LR_RATIO = 0.01


def lr_factor(step: int, schedule: str, steps: int, lr_step: int = 500, lr_gamma: float = 0.9) -> float:
    """The lr multiplier after ``step`` scheduler steps (rule 1)."""
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        return lr_gamma ** (step // lr_step)
    if schedule == "cosine":
        t = min(step, steps) / max(steps, 1)
        return FINAL_LR_RATIO + (1 - FINAL_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * t))
    raise ValueError(f"unknown lr_schedule {schedule!r}; choose one of {SCHEDULES}")


def min_stop_step(patience_after: float, steps: int) -> int:
    """The first step at which rule 4 may stop a run: ``patience_after`` of the budget ``steps``."""
    if not 0 <= patience_after <= 1:
        raise ValueError(f"patience_after is a share of the step budget, in [0, 1]; got {patience_after}")
    return math.ceil(patience_after * steps)


def make_scheduler(opt: torch.optim.Optimizer, schedule: str, steps: int, lr_step: int = 500,
                   lr_gamma: float = 0.9) -> torch.optim.lr_scheduler.LRScheduler:
    """A scheduler stepped once per iteration that follows :func:`lr_factor` (rule 1)."""
    if schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, lr_step, lr_gamma)
    lr_factor(0, schedule, steps)   # an unknown name fails here
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, schedule, steps))


class Selection:
    """Rules 2-4 for one run: feed it every val accuracy with :meth:`update`; it keeps a copy of the
    best weights (``select="best"``) and says when to stop (:attr:`stop`)."""

    def __init__(self, select: str = "best", patience: int = 0, min_step: int = 0):
        if select not in SELECTIONS:
            raise ValueError(f"unknown select {select!r}; choose one of {SELECTIONS}")
        if patience < 0:
            raise ValueError(f"patience must be >= 0, got {patience}")
        self.select, self.patience, self.min_step = select, patience, min_step
        self.last_step = 0
        self.best_acc = -math.inf
        self.best_step = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.since_best = 0
        self.stopped: str | None = None   # None (still training) | "plateau" | "budget"

    def update(self, step: int, acc: float, model: torch.nn.Module) -> bool:
        """Record the val accuracy ``acc`` measured at ``step``; return True if it is a new best."""
        self.last_step = step
        if acc >= self.best_acc:
            self.best_acc, self.best_step, self.since_best = acc, step, 0
            if self.select == "best":
                self.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            return True
        self.since_best += 1
        return False

    @property
    def stop(self) -> bool:
        """True once ``patience`` evaluations in a row brought no new best, from ``min_step`` on (rule 4)."""
        return self.patience > 0 and self.since_best >= self.patience and self.last_step >= self.min_step

    def finish(self, model: torch.nn.Module, reason: str) -> None:
        """End of training: record why, and load the kept weights into ``model`` (rule 3)."""
        self.stopped = reason
        if self.select == "best" and self.best_state is not None:
            model.load_state_dict(self.best_state)

    def summary(self) -> dict[str, Any]:
        """What a run record stores: the best val accuracy, its step, and why training stopped."""
        return {"select": self.select, "patience": self.patience, "best_val": self.best_acc
                if self.best_step is not None else None, "best_step": self.best_step, "stopped": self.stopped}

    def state_dict(self) -> dict[str, Any]:
        return {k: copy.copy(getattr(self, k)) for k in
                ("select", "patience", "min_step", "last_step", "best_acc", "best_step", "best_state",
                 "since_best", "stopped")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)
