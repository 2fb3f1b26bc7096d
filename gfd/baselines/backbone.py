"""Plain ResNet and DenseNet binary classifiers, baselines 6) of Sec. 4.1 and rows of Table 3.

The paper compares GFD-Net (DenseNet) with a plain DenseNet ("two widely-used CNNs for image
representation", Sec. 4.1) and GFD-Net (ResNet50) with CNNDetect, a plain ResNet-50: at inference
GFD-Net's G_enc + H "have the same architectures with ResNet50 and DenseNet" (Sec. 4.3), so each
pair differs only in how the network was trained.  Here the plain rows are exactly the G_enc + H of
the GFD-Net rows -- the encoder of :mod:`gfd.models.backbones` (``small`` on the CPU presets, the
paper's ResNet-50 / DenseNet-121 with ``encoder_size="full"``) and the head H (global average pool,
one linear layer) -- trained with the cross-entropy of their scores alone.  ``ResNet`` pairs with
``GFD-Net (ResNet)`` (CNNDetect stays Wang et al.'s recipe on torchvision's own ResNet), ``DenseNet``
with ``GFD-Net (DenseNet)``.  Xception is left out: torchvision has no Xception.

Training: the learning rate and batch size of the GFD-Net they are paired with (taken from the
config), Adam, the course's protocol (:func:`gfd.baselines.common.train_to_plateau`) on a stream
seeded by the run's seed, for at most ``epochs`` epochs (default 6: about the course GFD-Net's 600
steps of 16 on the 1500 training images of the benchmark's detection view).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from gfd.baselines.common import ProtocolOptions, num_classes, resolve_options, train_to_plateau
from gfd.models.backbones import build_encoder
from gfd.models.generator import ClassificationHead
from gfd.utils import seeded

__all__ = ["BackboneOptions", "ResNetOptions", "DenseNetOptions", "BackboneClassifier", "fit", "resnet", "densenet"]


@dataclass(frozen=True)
class BackboneOptions(ProtocolOptions):
    """A plain backbone classifier: the encoder's size as the paired GFD-Net's (``encoder_size``,
    ``encoder_weights``, ``backbone_depth``, ``backbone_width``, ``backbone_max_width``), its lr and
    batch size."""

    FROM_CONFIG: ClassVar[tuple[str, ...]] = ProtocolOptions.FROM_CONFIG + (
        "encoder_size", "encoder_weights", "backbone_depth", "backbone_width", "backbone_max_width", "lr", "batch_size")
    arch: str = "resnet"              # "resnet" | "densenet" (gfd.models.backbones)
    encoder_size: str = "small"
    encoder_weights: str = "random"
    backbone_depth: int = 3
    backbone_width: int = 32
    backbone_max_width: int = 256
    epochs: float = 6
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = 16


@dataclass(frozen=True)
class ResNetOptions(BackboneOptions):
    """The ``ResNet`` row of Table 3 (paired with ``GFD-Net (ResNet)``)."""

    arch: str = "resnet"


@dataclass(frozen=True)
class DenseNetOptions(BackboneOptions):
    """The ``DenseNet`` row of Table 3 (the paper's DenseNet, paired with ``GFD-Net (DenseNet)``)."""

    arch: str = "densenet"


class BackboneClassifier(nn.Module):
    """G_enc of :mod:`gfd.models.backbones` + the head H: images (B, 3, H, W) -> logits (B, K)."""

    scores_are_logits = True

    def __init__(self, num_classes: int, arch: str = "resnet", size: str = "small", width: int = 32, depth: int = 3,
                 max_width: int = 256, weights: str = "random"):
        super().__init__()
        self.encoder = build_encoder(arch, size, 3, width, depth, max_width, weights)
        self.head = ClassificationHead(self.encoder.widths[-1], num_classes)
        self.weights_used = self.encoder.weights_used

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z, _ = self.encoder(x)            # (B, C, H / 2^d, W / 2^d)
        return self.head(z)               # (B, K)


def fit(bundle: Any, options: Any = None, seed: int = 0, progress: bool = True, *,
        _cls: type[BackboneOptions] = BackboneOptions, **changes: Any) -> BackboneClassifier:
    """Train a plain backbone classifier with cross-entropy on ``train`` (selection on ``val``)."""
    opts = resolve_options(_cls, options, **changes)
    name = "ResNet" if opts.arch == "resnet" else "DenseNet"
    with seeded(seed, name):
        model = BackboneClassifier(num_classes(bundle), opts.arch, opts.encoder_size, opts.backbone_width,
                                   opts.backbone_depth, opts.backbone_max_width, opts.encoder_weights)
    train_to_plateau(model, bundle, opts, seed, progress, name)
    return model.eval()


class _Row:
    """One Table 3 row of this module, with the ``fit`` interface of a baseline module."""

    def __init__(self, options: type[BackboneOptions]):
        self.Options = options
        self.__doc__ = options.__doc__

    def fit(self, bundle: Any, options: Any = None, seed: int = 0, progress: bool = True,
            **changes: Any) -> BackboneClassifier:
        return fit(bundle, options, seed, progress, _cls=self.Options, **changes)


resnet = _Row(ResNetOptions)
densenet = _Row(DenseNetOptions)
