"""DCT-domain attribution (Frank et al. 2020, "Leveraging frequency analysis for deep fake image
recognition"; ref. [10]), baseline 2) of Sec. 4.1.

Frank et al. observe that GAN up-sampling leaves grid artifacts that are easy to see in the 2-D
discrete cosine transform, and classify the transformed image instead of the pixels:

1. 2-D type-II DCT (orthonormal) of every colour channel;
2. log scale, ``log(|DCT| + eps)``;
3. standardise every coefficient (channel, u, v) with mean and std of the *training* set;
4. a classifier: a small CNN (default), or a linear model on the flattened coefficients
   (``classifier="linear"``: multinomial logistic regression with an L2 penalty, the counterpart of
   their ridge regression).

The CNN ends in a dense layer on the flattened feature map (no global pooling), because in the DCT
domain a position *is* a frequency.  The transform lives in :mod:`gfd.analysis.spectra` (the
figures use it too).  Training follows Frank et al.'s optimiser settings and the course's protocol
(:func:`gfd.baselines.common.train_to_plateau`) on a stream seeded by the run's seed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch import nn

from gfd.analysis.spectra import dct2, dct_matrix, log_dct  # noqa: F401 (the transform, re-exported)
from gfd.baselines.common import (ProtocolOptions, deterministic_loader, num_classes, resolve_options,
                                  train_to_plateau)
from gfd.layout import TRAIN
from gfd.utils import pbar, seeded

CLASSIFIERS = ("cnn", "linear")

__all__ = ["DCTOptions", "DCTClassifier", "dct_matrix", "dct2", "log_dct", "dct_statistics", "fit"]


@dataclass(frozen=True)
class DCTOptions(ProtocolOptions):
    """The DCT baseline's own recipe: Frank et al.'s released classifier trains with Adam, lr 1e-3,
    batch 32, and keeps the best weights on validation (early stopping).  Budget, schedule and
    selection follow the course's protocol (:mod:`gfd.protocol`)."""

    classifier: str = "cnn"      # "cnn" | "linear"
    width: int = 8               # channels of the CNN's first conv (then 2x, 4x, 4x)
    eps: float = 1e-6            # log(|x| + eps)
    epochs: float = 12           # budget, in epochs of the train split (early stop on a val plateau)
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = 32
    weight_decay: float = 0.0    # L2 penalty; defaults to 1e-4 for "linear" if left at 0

    def __post_init__(self):
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"unknown DCT classifier {self.classifier!r}; choose one of {CLASSIFIERS}")


@torch.no_grad()
def dct_statistics(loader: Iterable, eps: float = 1e-6, progress: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-coefficient mean and std (C, H, W) of the log-DCT over the images of ``loader``."""
    s = s2 = None
    n = 0
    for x, _ in pbar(loader, enabled=progress, desc="DCT statistics", leave=False):
        f = log_dct(x.float(), eps).double()  # the forward pass's precision, float64 sums
        if s is None:
            s, s2 = torch.zeros_like(f[0]), torch.zeros_like(f[0])
        s += f.sum(0)
        s2 += (f * f).sum(0)
        n += f.shape[0]
    if n < 2:
        raise ValueError("need at least 2 training images to standardise the DCT coefficients")
    mean = s / n
    var = (s2 - n * mean * mean).clamp_min(0) / (n - 1)
    return mean.float(), var.sqrt().clamp_min(1e-6).float()


# --- the classifier ----------------------------------------------------------------------------------

def small_cnn(in_ch: int, num_classes: int, size: int, width: int) -> nn.Sequential:
    """conv3-ReLU x2, avg-pool, conv3-ReLU, avg-pool, conv3-ReLU, flatten, dense."""
    c1, c2, c3 = width, 2 * width, 4 * width
    return nn.Sequential(
        nn.Conv2d(in_ch, c1, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(inplace=True),
        nn.AvgPool2d(2),
        nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(inplace=True),
        nn.AvgPool2d(2),
        nn.Conv2d(c3, c3, 3, padding=1), nn.ReLU(inplace=True),
        nn.Flatten(),
        nn.Linear(c3 * (size // 4) ** 2, num_classes),
    )


class DCTClassifier(nn.Module):
    """Standardised log-DCT features (fixed buffers ``mean``, ``std``) followed by a classifier."""

    scores_are_logits = True

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, num_classes: int,
                 classifier: str = "cnn", width: int = 8, eps: float = 1e-6):
        super().__init__()
        if mean.shape != std.shape or mean.ndim != 3:
            raise ValueError(f"mean and std must both be (C, H, W); got {tuple(mean.shape)}, {tuple(std.shape)}")
        c, h, w = mean.shape
        self.eps = eps
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        if classifier == "linear":
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, num_classes))
        elif classifier == "cnn":
            if h != w:
                raise ValueError(f"the DCT CNN expects square crops, got {h}x{w}")
            self.head = small_cnn(c, num_classes, h, width)
        else:
            raise ValueError(f"unknown DCT classifier {classifier!r}; choose one of {CLASSIFIERS}")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1:] != self.mean.shape:
            raise ValueError(f"images of shape {tuple(x.shape[1:])} but DCT statistics of shape "
                             f"{tuple(self.mean.shape)}: use the crop the model was fitted on")
        return (log_dct(x, self.eps) - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def fit(bundle: Any, options: Any = None, seed: int = 0, progress: bool = True, **changes: Any) -> DCTClassifier:
    """Statistics and classifier from the ``train`` split of ``bundle`` (selection on ``val``).

    The statistics are taken over centre crops of the train split in file order
    (:func:`gfd.baselines.common.deterministic_loader`): the same for every seed and every run order."""
    opts = resolve_options(DCTOptions, options, **changes)
    mean, std = dct_statistics(deterministic_loader(bundle, TRAIN), opts.eps, progress)
    with seeded(seed, "DCT"):
        model = DCTClassifier(mean, std, num_classes(bundle), opts.classifier, opts.width, opts.eps)
    wd = opts.weight_decay or (1e-4 if opts.classifier == "linear" else 0.0)
    train_to_plateau(model, bundle, dataclasses.replace(opts, weight_decay=wd), seed, progress,
                     f"DCT-{opts.classifier}")
    return model.eval()
