"""A plain supervised training loop, shared by everything that is "just a classifier".

Used for the pre-training of the auxiliary classifier C (Eq. 3), for the direct classifier that
calibrates the mini benchmark, and for the learned baselines (DCT, AttNet).  GFD-Net's own
alternating training lives in :mod:`gfd.train`.
"""
from __future__ import annotations

import itertools
from typing import Callable, Iterable, Iterator

import torch
from torch import nn

from gfd.utils import pbar


def forever(loader: Iterable) -> Iterator:
    """Cycle through a loader epoch after epoch (a fresh shuffle each epoch)."""
    while True:
        yielded = False
        for batch in loader:
            yielded = True
            yield batch
        if not yielded:
            raise ValueError("the loader yielded no batch: is the split empty?")


def fit_classifier(model: nn.Module, loader: Iterable, steps: int, lr: float = 1e-3,
                   device: torch.device | str = "cpu", logits_fn: Callable | None = None,
                   weight_decay: float = 0.0, progress: bool = True, desc: str = "train") -> list[float]:
    """Train ``model`` with cross-entropy for ``steps`` Adam steps; return the loss per step.

    ``logits_fn(model, x)`` maps a batch to logits (default: ``model(x)``), so that e.g. G_enc + H
    of the fingerprint generator can be trained as a direct classifier.
    """
    logits_fn = logits_fn or (lambda m, x: m(x))
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    losses: list[float] = []
    bar = pbar(itertools.islice(forever(loader), steps), enabled=progress, total=steps, desc=desc,
               leave=False)
    for x, y in bar:
        x, y = x.to(device), y.to(device)
        loss = nn.functional.cross_entropy(logits_fn(model, x), y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: non-finite cross-entropy at step {len(losses)}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if len(losses) % 10 == 0:
            bar.set_postfix(loss=f"{sum(losses[-10:]) / 10:.3f}")
    return losses


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable, device: torch.device | str = "cpu",
            logits_fn: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` in eval mode over a loader; return (labels, class probabilities)."""
    logits_fn = logits_fn or (lambda m, x: m(x))
    was_training = model.training
    model.to(device).eval()
    ys, ps = [], []
    for x, y in loader:
        ps.append(torch.softmax(logits_fn(model, x.to(device)).float(), dim=1).cpu())
        ys.append(y)
    model.train(was_training)
    return torch.cat(ys), torch.cat(ps)


def accuracy(model: nn.Module, loader: Iterable, device: torch.device | str = "cpu",
             logits_fn: Callable | None = None) -> float:
    """Top-1 accuracy of ``model`` on a loader."""
    y, p = predict(model, loader, device, logits_fn)
    return (p.argmax(1) == y).float().mean().item()
