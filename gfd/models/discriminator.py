"""The discriminator D (Sec. 3.2): a PatchGAN as in pix2pix's NLayerDiscriminator (ref. [14]).

``n_layers`` stride-2 4x4 convolutions (the first without normalisation), one stride-1 4x4
convolution, then a 4x4 convolution to one channel: every output pixel is a real/fake logit for
one overlapping patch of the input.  With ``n_layers = 3`` (the paper's "3 convolutional layers",
pix2pix's default) each logit sees a 70x70 patch.  Channels double per layer up to 8x ``width``.
D outputs *logits*; the losses (Eq. 4) apply the sigmoid.
"""
from __future__ import annotations

import torch
from torch import nn


def down(in_ch: int, out_ch: int, stride: int, norm: bool) -> list[nn.Module]:
    """4x4 conv (+ BatchNorm) + LeakyReLU(0.2); padding 1 as in pix2pix."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 4, stride=stride, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(out_ch))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers


class PatchDiscriminator(nn.Module):
    """PatchGAN D: image (B, C, H, W) -> patch logits (B, 1, H', W')."""

    def __init__(self, in_ch: int = 3, width: int = 64, n_layers: int = 3):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"disc_layers must be >= 1, got {n_layers}")
        mults = [min(2**i, 8) for i in range(n_layers + 1)]
        layers = down(in_ch, width, stride=2, norm=False)
        for prev, cur in zip(mults[:-2], mults[1:-1]):
            layers += down(width * prev, width * cur, stride=2, norm=True)
        layers += down(width * mults[-2], width * mults[-1], stride=1, norm=True)
        layers.append(nn.Conv2d(width * mults[-1], 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)
        self.n_layers = n_layers

    def min_input_side(self) -> int:
        """Smallest input side that still leaves a 1x1 patch map.

        Each stride-2 conv halves the side (rounding down), each stride-1 conv removes 1 pixel.
        """
        return 3 * 2**self.n_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < self.min_input_side():
            raise ValueError(f"PatchGAN D with {self.n_layers} layers needs inputs of at least "
                             f"{self.min_input_side()} px, got {tuple(x.shape[-2:])}")
        return self.net(x)


def build_discriminator(cfg) -> PatchDiscriminator:
    """D sized by a :class:`gfd.config.Config` (``disc_width``, ``disc_layers``)."""
    return PatchDiscriminator(3, width=cfg.disc_width, n_layers=cfg.disc_layers)
