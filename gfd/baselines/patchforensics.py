"""PatchForensics (Chai et al. 2020, "What makes fake images detectable? Understanding properties
that generalize"; ref. [3]), baseline 5) of Sec. 4.1, a detector of Table 3.

Chai et al. truncate a classifier backbone (Xception or ResNet) after an early block, so that each
output position sees only a small patch, and put a 1x1 convolution on it: one real/fake logit pair
per patch.  Training applies the cross-entropy to every patch (each patch gets its image's label);
an image's prediction averages the patches.  Here the image's scores are the patch-averaged logits.

Sized for the CPU and the course's 48 px crops: a truncated ResNet-style backbone -- a 3x3 stem,
then ``blocks`` basic residual blocks (3x3 conv, BN, ReLU, with an identity or 1x1 shortcut), the
first ``downsample`` of them with stride 2 -- and the 1x1 head.  With the defaults (width 16, three
blocks, one down-sampling) each patch logit sees a 25 px receptive field
(:attr:`PatchForensics.receptive_field`, walked by :func:`gfd.analysis.receptive.analytic_receptive_field`)
and a 48 px crop gives 24 x 24 patches.  Training follows Chai et al.'s optimiser (Adam, lr 1e-3, betas 0.9 / 0.999,
batch 32) and the course's protocol (:func:`gfd.baselines.common.train_to_plateau`) on a stream
seeded by the run's seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gfd.analysis.receptive import analytic_receptive_field
from gfd.baselines.common import ProtocolOptions, num_classes, resolve_options, train_to_plateau
from gfd.layout import TRAIN
from gfd.utils import seeded

__all__ = ["PatchForensicsOptions", "PatchForensics", "fit"]


@dataclass(frozen=True)
class PatchForensicsOptions(ProtocolOptions):
    """PatchForensics' own recipe (Chai et al.: Adam lr 1e-3, batch 32, per-patch cross-entropy).
    Budget, schedule and selection follow the course's protocol (:mod:`gfd.protocol`)."""

    width: int = 16              # channels of the stem (doubled by each down-sampling block); 16 keeps a
                                 # step at batch 32, 48 px near 0.4 s on 2 busy cores (32: 1.2 s)
    blocks: int = 3              # residual blocks kept: the truncation point
    downsample: int = 1          # how many of them (the first ones) have stride 2
    epochs: float = 20           # budget, in epochs of the train split (early stop on a val plateau)
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = 32


class BasicBlock(nn.Module):
    """ResNet's basic block: two 3x3 conv-BN, ReLU, identity (or strided 1x1) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False), nn.BatchNorm2d(out_ch),
                                  nn.ReLU(inplace=True), nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(out_ch))
        self.short = (nn.Identity() if stride == 1 and in_ch == out_ch else
                      nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.short(x))


class PatchForensics(nn.Module):
    """Truncated backbone + 1x1 head; ``patch_logits`` = (B, K, h, w), ``forward`` = their mean (B, K).
    ``receptive_field``: side (px) of the input patch each patch logit sees."""

    scores_are_logits = True

    def __init__(self, num_classes: int, width: int = 16, blocks: int = 3, downsample: int = 1, in_ch: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_ch, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                                   nn.ReLU(inplace=True)]
        ch = width
        for i in range(blocks):
            stride = 2 if i < downsample else 1
            nxt = ch * stride
            layers.append(BasicBlock(ch, nxt, stride))
            ch = nxt
        self.backbone = nn.Sequential(*layers)
        self.head = nn.Conv2d(ch, num_classes, 1)
        self.receptive_field = analytic_receptive_field(self.main_path())

    def main_path(self) -> list[nn.Module]:
        """The layers of the widest path from the input to a patch logit, in the order they run: the
        stem, each block's body (two 3x3 convs; its shortcut, a 1x1 conv at most, sees a window inside
        the body's) and the head."""
        stem, blocks = self.backbone[:3], self.backbone[3:]
        return [stem, *(block.body for block in blocks), self.head]

    def patch_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch_logits(x).mean(dim=(2, 3))

    @staticmethod
    def training_loss(model: "PatchForensics", x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of every patch against its image's label, averaged (Chai et al.)."""
        logits = model.patch_logits(x)
        return F.cross_entropy(logits, y[:, None, None].expand(-1, *logits.shape[2:]))


def fit(bundle: Any, options: Any = None, seed: int = 0, progress: bool = True,
        **changes: Any) -> PatchForensics:
    """Train PatchForensics with per-patch cross-entropy on ``train`` (selection on ``val``)."""
    opts = resolve_options(PatchForensicsOptions, options, **changes)
    x, _ = bundle[TRAIN].dataset[0]
    with seeded(seed, "PatchForensics"):
        model = PatchForensics(num_classes(bundle), opts.width, opts.blocks, opts.downsample, x.shape[0])
    train_to_plateau(model, bundle, opts, seed, progress, "PatchForensics")
    return model.eval()
