"""CNNDetect (Wang et al. 2020, "CNN-generated images are surprisingly easy to spot... for now";
ref. [32]), baseline 4) of Sec. 4.1, a detector of Table 3.

Wang et al. train a binary real/fake classifier, ResNet-50 pre-trained on ImageNet, on ProGAN
images against their real training images (ForenSynths), with Adam (lr 1e-4, betas 0.9 / 0.999,
batch 64) and, in their best models, augmentation by Gaussian blur (sigma ~ U[0, 3]) and JPEG
re-compression (quality ~ U{30..100}), each applied with probability 0.5 ("Blur+JPEG (0.5)").
The paper under reproduction compares "with no data augmentation for fair comparison" (Sec. 4.3),
so augmentation is an option here, off by default (``augment="blur_jpeg"`` switches it on).

Sized for the CPU: the backbone is any torchvision ResNet/DenseNet of :mod:`gfd.models.classifier`
(default ``resnet18``), from random weights by default (no download; ``weights="imagenet"`` is
Wang et al.'s start, for a GPU).  Training follows Wang et al.'s optimiser settings and the course's
protocol (:func:`gfd.baselines.common.train_to_plateau`) on a stream seeded by the run's seed.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.transforms.v2 import functional as TF

from gfd.baselines.common import ProtocolOptions, num_classes, resolve_options, train_to_plateau
from gfd.models.classifier import AuxiliaryClassifier
from gfd.utils import seeded

__all__ = ["CNNDetectOptions", "CNNDetect", "blur_jpeg", "jpeg", "fit"]

AUGMENTATIONS = ("none", "blur_jpeg")


@dataclass(frozen=True)
class CNNDetectOptions(ProtocolOptions):
    """CNNDetect's own recipe (Wang et al.): Adam lr 1e-4, betas (0.9, 0.999), batch 64; optional
    blur + JPEG augmentation with probability 0.5 each.  Budget, schedule and selection follow the
    course's protocol (:mod:`gfd.protocol`)."""

    arch: str = "resnet18"       # Wang et al.: resnet50 (gfd.models.classifier.ARCHS, not "compact")
    weights: str = "random"      # Wang et al.: "imagenet" (see gfd.models.weights)
    augment: str = "none"        # "none" | "blur_jpeg" (Wang et al.'s Blur+JPEG)
    p_blur: float = 0.5
    p_jpeg: float = 0.5
    blur_sigma: tuple[float, float] = (0.0, 3.0)
    jpeg_quality: tuple[int, int] = (30, 100)
    epochs: float = 10           # budget, in epochs of the train split (early stop on a val plateau); a
                                 # ResNet-18 step at batch 64, 48 px takes about 2 s on 2 busy cores
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = 64
    eval_every: int = 50                # validation more often than the protocol's default

    def __post_init__(self):
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"CNNDetect augment={self.augment!r}; choose one of {AUGMENTATIONS}")


def jpeg(img: torch.Tensor, quality: int) -> torch.Tensor:
    """One (3, H, W) image in [-1, 1] through a JPEG encode / decode at ``quality`` (PIL, as Wang et al.)."""
    u8 = ((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    out = torch.from_numpy(np.asarray(Image.open(buf).convert("RGB")).copy()).permute(2, 0, 1)
    return out.float() / 127.5 - 1


def blur_jpeg(x: torch.Tensor, p_blur: float = 0.5, p_jpeg: float = 0.5, sigma: tuple[float, float] = (0.0, 3.0),
              quality: tuple[int, int] = (30, 100), generator: torch.Generator | None = None) -> torch.Tensor:
    """Wang et al.'s augmentation of a batch in [-1, 1]: each image is blurred (Gaussian, sigma ~
    U[sigma]) with probability ``p_blur``, then JPEG re-compressed (quality ~ U{quality}) with
    probability ``p_jpeg``.  Draws from ``generator`` (default: torch's global one)."""
    out = []
    for img in x.detach().cpu():
        if torch.rand((), generator=generator) < p_blur:
            s = float(sigma[0] + (sigma[1] - sigma[0]) * torch.rand((), generator=generator))
            if s > 0:
                k = 2 * math.ceil(3 * s) + 1
                img = TF.gaussian_blur(img, [k, k], [s, s])
        if torch.rand((), generator=generator) < p_jpeg:
            q = int(torch.randint(quality[0], quality[1] + 1, (), generator=generator))
            img = jpeg(img, q)
        out.append(img)
    return torch.stack(out).to(x.device, x.dtype)


class CNNDetect(nn.Module):
    """A torchvision classifier (ImageNet input normalisation, ``num_classes`` head); with
    ``augment``, blur + JPEG on the training batches only.  ``forward`` = logits."""

    scores_are_logits = True

    def __init__(self, num_classes: int, arch: str = "resnet18", weights: str = "random", augment: str = "none",
                 **aug: Any):
        super().__init__()
        self.net = AuxiliaryClassifier(arch, num_classes, weights)
        self.weights_used = self.net.weights_used
        self.augment, self.aug = augment, aug

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.augment == "blur_jpeg":
            x = blur_jpeg(x, **self.aug)
        return self.net(x)


def fit(bundle: Any, options: Any = None, seed: int = 0, progress: bool = True, **changes: Any) -> CNNDetect:
    """Train CNNDetect with cross-entropy on the ``train`` split of ``bundle`` (selection on ``val``)."""
    opts = resolve_options(CNNDetectOptions, options, **changes)
    with seeded(seed, "CNNDetect"):
        model = CNNDetect(num_classes(bundle), opts.arch, opts.weights, opts.augment, p_blur=opts.p_blur,
                          p_jpeg=opts.p_jpeg, sigma=opts.blur_sigma, quality=opts.jpeg_quality)
    train_to_plateau(model, bundle, opts, seed, progress, "CNNDetect")
    return model.eval()
