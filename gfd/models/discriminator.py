"""The discriminator D (Sec. 3.2): a PatchGAN as in pix2pix's NLayerDiscriminator (ref. [14]).

``n_layers`` stride-2 4x4 convolutions (the first without normalisation), one stride-1 4x4
convolution, then a 4x4 convolution to one channel: every output pixel is a real/fake logit for
one overlapping patch of the input.  With ``n_layers = 3`` (the paper's "3 convolutional layers",
pix2pix's default) each logit sees a 70x70 patch.  Channels double per layer up to 8x ``width``.
D outputs *logits*; the losses (Eq. 4) apply the sigmoid.

The same class, with no normalisation, no stride-1 layer, a 3x3 last convolution and uncapped
widths, is the small D that trains the generators of the mini benchmark (:mod:`gfd.benchmark.zoo`).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

NormLayer = Callable[[int], nn.Module]


def down(in_ch: int, out_ch: int, stride: int, norm_layer: NormLayer | None) -> list[nn.Module]:
    """4x4 conv (+ norm, then no conv bias) + LeakyReLU(0.2); padding 1 as in pix2pix."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 4, stride=stride, padding=1, bias=norm_layer is None)]
    if norm_layer is not None:
        layers.append(norm_layer(out_ch))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers


class PatchDiscriminator(nn.Module):
    """PatchGAN D of Sec. 3.2 (pix2pix's NLayerDiscriminator, ref. [14]): image (B, C, H, W) -> logits (B, 1, H', W').

    ``norm_layer``: the normalisation after every conv but the first and the last (pix2pix's
    ``norm_layer``; ``None``: none, and every conv has a bias).  ``stride1_layer``: add pix2pix's
    stride-1 4x4 conv before the last one.  ``final_kernel``: kernel of the last conv (padding 1:
    4 removes one pixel, 3 keeps the size).  ``max_mult``: channels are ``width * 2**i``, capped at
    ``width * max_mult`` (``None``: no cap).
    """

    def __init__(self, in_ch: int = 3, width: int = 64, n_layers: int = 3,
                 norm_layer: NormLayer | None = nn.BatchNorm2d, stride1_layer: bool = True,
                 final_kernel: int = 4, max_mult: int | None = 8):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"disc_layers must be >= 1, got {n_layers}")
        if final_kernel < 3:
            raise ValueError(f"final_kernel must be >= 3 (padding is 1), got {final_kernel}")
        n_convs = n_layers + stride1_layer
        chans = [width * (2**i if max_mult is None else min(2**i, max_mult)) for i in range(n_convs)]
        layers = down(in_ch, chans[0], stride=2, norm_layer=None)
        for i in range(1, n_convs):
            layers += down(chans[i - 1], chans[i], stride=2 if i < n_layers else 1, norm_layer=norm_layer)
        layers.append(nn.Conv2d(chans[-1], 1, final_kernel, stride=1, padding=1))
        self.net = nn.Sequential(*layers)
        self.n_layers = n_layers
        self.shrink = stride1_layer + final_kernel - 3   # pixels the stride-1 convs remove

    def min_input_side(self) -> int:
        """Smallest input side that still leaves a 1x1 patch map.

        Each stride-2 conv halves the side (rounding down), the stride-1 convs then remove
        ``shrink`` pixels (one per 4x4 conv).
        """
        return (1 + self.shrink) * 2**self.n_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < self.min_input_side():
            raise ValueError(f"PatchGAN D with {self.n_layers} layers needs inputs of at least "
                             f"{self.min_input_side()} px, got {tuple(x.shape[-2:])}")
        return self.net(x)


def build_discriminator(cfg) -> PatchDiscriminator:
    """D sized by a :class:`gfd.config.Config` (``disc_width``, ``disc_layers``)."""
    return PatchDiscriminator(3, width=cfg.disc_width, n_layers=cfg.disc_layers)
