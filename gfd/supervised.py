"""The one supervised training loop: cross-entropy on a seeded batch stream.

Everything that is "just a classifier" trains here: the auxiliary classifier C before GFD-Net's
alternating training (Eq. 3, "trained previously", Sec. 3.3, called by
:meth:`gfd.train.Trainer.pretrain_classifier`) and the learned baselines (DCT, AttNet).  GFD-Net's
own alternating training is :mod:`gfd.train`.  Batches come from a :class:`gfd.streams.BatchStream`
(or any iterator of ``(x, y)``), so the data order belongs to the run, not to the process.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator

import torch
from torch import nn

from gfd import losses
from gfd.utils import pbar


def fit_classifier(model: nn.Module, batches: Iterator, steps: int, *, lr: float = 1e-3,
                   weight_decay: float = 0.0, device: torch.device | str = "cpu",
                   prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
                   autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                   progress: bool = True, desc: str = "train") -> list[float]:
    """Train ``model`` with cross-entropy (Eq. 3 when the model is C) for ``steps`` Adam steps on
    ``batches``; return the loss of every step.

    ``prepare`` moves a batch tensor to the model's device (default ``.to(device)``; the trainer
    passes its own, which also sets channels_last on CUDA); ``autocast`` is a context factory for
    mixed precision.  A non-finite loss stops before any weight is touched by it.
    """
    prepare = prepare or (lambda t: t.to(device))
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    history: list[float] = []
    bar = pbar(range(steps), enabled=progress, desc=desc, leave=False)
    for step in bar:
        x, y = next(batches)
        x, y = prepare(x), prepare(y)
        with autocast():
            loss = losses.cls_c(model(x), y)
        value = loss.item()
        if not math.isfinite(value):
            raise losses.NonFiniteLossError(f"{desc}: cross-entropy {value} at step {step + 1}; training "
                                            f"stopped before the update. Try a lower lr.")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(value)
        if step % 10 == 9:
            bar.set_postfix(loss=f"{sum(history[-10:]) / 10:.3f}")
    return history
