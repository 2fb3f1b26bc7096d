"""AttNet (Yu et al. 2019, "Attributing fake images to GANs: learning and analyzing GAN
fingerprints"; ref. [33]), baseline 3) of Sec. 4.1.

Yu et al.'s attribution classifier is the discriminator of ProGAN (Karras et al. 2018) with a
K-way output: a 1x1 "fromRGB" convolution, then blocks of two 3x3 convolutions with leaky ReLU
(slope 0.2) followed by 2x2 average-pool down-sampling, channels doubling up to a cap, and at the
lowest resolution one more 3x3 convolution and dense layers (the last one's weights are their
"model fingerprints").  No batch norm, as in ProGAN's D.  ProGAN's equalised learning rate is
replaced by its starting point, He-initialised weights (without it, i.e. with PyTorch's default
init, this plain 10-layer leaky-ReLU stack barely moves for hundreds of steps; with it, at Adam
lr 1e-3, the relative steps are too small for a CPU budget); the minibatch-stddev layer is left out
(a GAN-training device, not an attribution feature).

Down-sampling continues while the side is even and at least 8 (48 px -> 6 px, 224 px -> 7 px).
``width`` sizes it for the CPU.  Training follows Yu et al.'s optimiser settings and the course's
protocol (:func:`gfd.baselines.common.train_to_plateau`) on a stream seeded by the run's seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gfd.baselines.common import ProtocolOptions, num_classes, resolve_options, train_to_plateau
from gfd.layout import TRAIN
from gfd.utils import seeded

__all__ = ["AttNetOptions", "AttNet", "fit"]


@dataclass(frozen=True)
class AttNetOptions(ProtocolOptions):
    """AttNet's own recipe: Yu et al.'s released classifier configuration trains with Adam
    (beta1 0, beta2 0.99, eps 1e-8, the ProGAN settings), lr 1e-3 at 128 px and minibatch 32.
    Budget, schedule and weight selection follow the course's protocol (:mod:`gfd.protocol`)."""

    width: int = 8         # channels at full resolution (ProGAN: 16 at 1024 px, up to 512)
    max_width: int = 64    # channel cap for the low resolutions
    epochs: float = 30     # budget, in epochs of the train split (early stop on a val plateau): with
                           # beta1 = 0 it plateaus after about 27 epochs on the default benchmark
    lr: float = 1e-3
    betas: tuple[float, float] = (0.0, 0.99)
    batch_size: int = 32


def lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2, inplace=True)


def down_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """ProGAN D block: conv3-LReLU, conv3-LReLU, 2x2 average pool."""
    return nn.Sequential(nn.Conv2d(in_ch, in_ch, 3, padding=1), lrelu(),
                         nn.Conv2d(in_ch, out_ch, 3, padding=1), lrelu(),
                         nn.AvgPool2d(2))


class AttNet(nn.Module):
    """ProGAN-discriminator-like attribution network for ``size`` px crops; ``forward`` = logits."""

    scores_are_logits = True

    def __init__(self, num_classes: int, size: int, width: int = 8, max_width: int = 64, in_ch: int = 3):
        super().__init__()
        if size < 4:
            raise ValueError(f"AttNet needs crops of at least 4 px, got {size}")
        self.size = size
        layers: list[nn.Module] = [nn.Conv2d(in_ch, width, 1), lrelu()]  # fromRGB
        ch, side = width, size
        while side >= 8 and side % 2 == 0:
            nxt = min(2 * ch, max_width)
            layers.append(down_block(ch, nxt))
            ch, side = nxt, side // 2
        layers += [nn.Conv2d(ch, ch, 3, padding=1), lrelu(), nn.Flatten(),
                   nn.Linear(ch * side * side, ch), lrelu(),
                   nn.Linear(ch, num_classes)]
        self.net = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, a=0.2, nonlinearity="leaky_relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            raise ValueError(f"AttNet was built for {self.size} px crops, got {tuple(x.shape[-2:])}")
        return self.net(x)


def fit(bundle: Any, options: Any = None, seed: int = 0, progress: bool = True, **changes: Any) -> AttNet:
    """Train AttNet with cross-entropy on the ``train`` split of ``bundle`` (selection on ``val``)."""
    opts = resolve_options(AttNetOptions, options, **changes)
    x, _ = bundle[TRAIN].dataset[0]                  # one (C, H, W) crop: the network's input size
    with seeded(seed, "AttNet"):
        model = AttNet(num_classes(bundle), x.shape[-1], opts.width, opts.max_width, x.shape[0])
    train_to_plateau(model, bundle, opts, seed, progress, "AttNet")
    return model.eval()
