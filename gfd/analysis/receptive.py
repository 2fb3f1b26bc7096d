"""Receptive fields: which input pixels can change one output position?

Two answers that must agree:

* :func:`analytic_receptive_field` walks a chain of layers and adds up what each convolution and
  pooling window contributes (``r += (k - 1) * dilation * jump``, ``jump *= stride``);
* :func:`receptive_field` asks the network: it back-propagates from the centre output position to
  a random input and measures where the gradient is not zero.

The measured window is only the receptive field when it lies inside the input: on an input smaller
than the field it stops at the border.  :func:`receptive_field` therefore refuses to answer when the
window touches the border (``allow_clipped=True`` returns the clipped side anyway).
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn


def _pair(v, name: str) -> int:
    """One side of a square kernel/stride/dilation; a non-square one is an error."""
    a, b = (v, v) if isinstance(v, int) else tuple(v)
    if a != b:
        raise ValueError(f"{name} {tuple(v)} is not square; this walk handles square windows only")
    return int(a)


def analytic_receptive_field(layers: Iterable[nn.Module]) -> int:
    """Side (px) of the theoretical receptive field of ``layers`` applied one after another.

    Every module is walked in its registration order (the execution order of an ``nn.Sequential``);
    ``Conv2d``, ``MaxPool2d`` and ``AvgPool2d`` grow the field, pointwise layers (BatchNorm,
    activations) add nothing.  Pass the layers in the order the network runs them, e.g. for G_enc
    ``[levels[0], pool, levels[1], pool, ...]``.  A residual block is two parallel branches, which
    this walk would chain: pass its widest branch only (as
    :meth:`gfd.baselines.patchforensics.PatchForensics.main_path` does).  An up-sampling layer is an
    error: this is the field of a down-sampling path.
    """
    r, jump = 1, 1
    for layer in layers:
        for m in layer.modules():
            if isinstance(m, (nn.ConvTranspose2d, nn.Upsample)):
                raise ValueError(f"{type(m).__name__} up-samples: walk the down-sampling path only")
            if isinstance(m, nn.Conv2d):
                k, s, d = (_pair(m.kernel_size, "kernel"), _pair(m.stride, "stride"),
                           _pair(m.dilation, "dilation"))
            elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
                k = _pair(m.kernel_size, "kernel")
                s = _pair(m.stride if m.stride is not None else m.kernel_size, "stride")
                d = _pair(getattr(m, "dilation", 1), "dilation")
            else:
                continue
            r += (k - 1) * d * jump
            jump *= s
    return r


def receptive_field(fn: Callable[[torch.Tensor], torch.Tensor], size: int, channels: int = 3,
                    seed: int = 0, allow_clipped: bool = False) -> int:
    """Side (px) of the input window that influences the centre position of ``fn``'s output map.

    Back-propagates from the centre output position (all channels) to a random ``size`` x ``size``
    input and measures the extent of the non-zero gradient.  Put networks with BatchNorm in eval
    mode first: in train mode the batch statistics connect every pixel to every output.  The input
    is drawn from its own generator (``seed``), so the caller's random stream is left alone.

    If the window reaches the border of the input, the field may be larger than the input and the
    answer would only be ``size``: a ``ValueError`` says so, unless ``allow_clipped``.
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, channels, size, size, generator=gen).requires_grad_(True)
    out = fn(x)
    h, w = out.shape[-2:]
    out[0, :, h // 2, w // 2].sum().backward()
    g = x.grad.abs().sum(dim=(0, 1))
    rows = torch.nonzero(g.sum(dim=1) > 0).flatten()
    cols = torch.nonzero(g.sum(dim=0) > 0).flatten()
    if len(rows) == 0:
        return 0
    first, last = int(min(rows.min(), cols.min())), int(max(rows.max(), cols.max()))
    side = int(max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1))
    touches = first == 0 or last == size - 1
    if touches and not allow_clipped:
        raise ValueError(f"the window of the centre output reaches the border of the {size} px input, so "
                         f"the receptive field is at least {side} px and may be larger: measure on a larger "
                         f"input (or pass allow_clipped=True)")
    return side
