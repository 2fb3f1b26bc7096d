"""Empirical receptive field: which input pixels can change one output position?"""
from __future__ import annotations

from typing import Callable

import torch


def receptive_field(fn: Callable[[torch.Tensor], torch.Tensor], size: int, channels: int = 3) -> int:
    """Side (px) of the input window that influences the centre position of ``fn``'s output map.

    Back-propagates from the centre output position to a random input and measures the extent of
    the non-zero gradient.  Put networks with BatchNorm in eval mode first: in train mode the batch
    statistics connect every pixel to every output.  The answer is clipped by ``size``.
    """
    x = torch.randn(1, channels, size, size, requires_grad=True)
    out = fn(x)
    h, w = out.shape[-2:]
    out[0, :, h // 2, w // 2].sum().backward()
    g = x.grad.abs().sum(dim=(0, 1))
    rows = torch.nonzero(g.sum(dim=1) > 0)
    cols = torch.nonzero(g.sum(dim=0) > 0)
    if len(rows) == 0:
        return 0
    return int(max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1))
