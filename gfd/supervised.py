"""The one supervised training loop: cross-entropy on a seeded batch stream, under the course's
training protocol (:mod:`gfd.protocol`: decaying lr, val evaluations, best weights, plateau stop).

Everything that is "just a classifier" trains here: the auxiliary classifier C before GFD-Net's
alternating training (Eq. 3, "trained previously", Sec. 3.3, called by :mod:`gfd.pretrain`) and
the learned baselines (DCT, AttNet).  GFD-Net's own alternating training is :mod:`gfd.train`.
Batches come from a :class:`gfd.streams.BatchStream` (or any iterator of ``(x, y)``), so the data
order belongs to the run, not to the process.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator

import torch
from torch import nn

from gfd import losses
from gfd.protocol import Selection, make_scheduler, min_stop_step
from gfd.utils import pbar


def fit_classifier(model: nn.Module, batches: Iterator, steps: int, *, lr: float = 1e-3,
                   betas: tuple[float, float] = (0.9, 0.999), weight_decay: float = 0.0,
                   lr_schedule: str = "constant", validate: Callable[[nn.Module], float] | None = None,
                   eval_every: int = 0, select: str = "last", patience: int = 0, patience_after: float = 0.0,
                   device: torch.device | str = "cpu",
                   prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
                   autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                   loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                   progress: bool = True, desc: str = "train") -> dict[str, Any]:
    """Train ``model`` with cross-entropy (Eq. 3 when the model is C) with Adam (``lr``, ``betas``,
    ``weight_decay``) for at most ``steps`` steps on ``batches``, by the protocol of
    :mod:`gfd.protocol`: ``lr_schedule`` over the budget; every ``eval_every`` steps and at the end
    ``validate(model)`` (an accuracy on the closed-world val split); ``select`` which weights stay in
    ``model``; stop after ``patience`` evaluations without a new best, not before ``patience_after``
    of the budget.

    Returns ``{"loss": [per step], "eval_step": [...], "val_acc": [...], "steps": n}`` plus the
    selection summary (``best_val``, ``best_step``, ``stopped``).  ``prepare`` moves a batch tensor
    to the model's device (default ``.to(device)``); ``autocast`` is a context factory for mixed
    precision.  ``loss_fn(model, x, y)`` replaces the cross-entropy of ``model(x)`` where a method
    trains on another loss than its scores' (PatchForensics: one cross-entropy per patch).  A
    non-finite loss stops before any weight is touched by it.
    """
    if select == "best" and validate is None:
        raise ValueError("select='best' needs a validate function (accuracy on the val split)")
    prepare = prepare or (lambda t: t.to(device))
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay)
    sched = make_scheduler(opt, lr_schedule, steps)
    selection = Selection(select, patience, min_stop_step(patience_after, steps))
    out: dict[str, Any] = {"loss": [], "eval_step": [], "val_acc": []}

    def evaluate(step: int) -> None:
        model.eval()
        with torch.random.fork_rng(devices=[]):
            acc = validate(model)
        model.train()
        out["eval_step"].append(step)
        out["val_acc"].append(acc)
        selection.update(step, acc, model)

    bar = pbar(enabled=progress, total=steps, desc=desc, leave=False)
    step = 0
    for step in range(1, steps + 1):
        x, y = next(batches)
        x, y = prepare(x), prepare(y)
        with autocast():
            loss = loss_fn(model, x, y) if loss_fn is not None else losses.cls_c(model(x), y)
        value = loss.item()
        if not math.isfinite(value):
            raise losses.NonFiniteLossError(f"{desc}: cross-entropy {value} at step {step}; training "
                                            f"stopped before the update. Try a lower lr.")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        out["loss"].append(value)
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{sum(out['loss'][-10:]) / 10:.3f}")
        if validate is not None and ((eval_every and step % eval_every == 0) or step == steps):
            evaluate(step)
            if selection.stop:
                break
    bar.close()
    selection.finish(model, "plateau" if selection.stop else "budget")
    out["steps"] = step
    return out | selection.summary()
