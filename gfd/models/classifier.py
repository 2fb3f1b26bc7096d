"""The auxiliary classifier C (Sec. 3.2): a torchvision backbone with a new source head.

The paper uses ResNet-50 (and DenseNet in Table 3); on a 2-core CPU the presets use ResNet-18.
C is trained on the input images first (Eq. 3), then judges the fingerprinted images (Eq. 2).

C takes the course's [-1, 1] images and normalises them internally to ImageNet statistics
(:class:`gfd.models.weights.ImageNetInput`), the input its ImageNet initialisation expects.
ImageNet initialisation follows the rule of :mod:`gfd.models.weights` (``cfg.classifier_weights``).
"""
from __future__ import annotations

import torch
from torch import nn

from gfd.models.weights import ImageNetInput, build_torchvision

ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "densenet121", "densenet169", "densenet201")


def replace_head(backbone: nn.Module, num_classes: int) -> nn.Module:
    """Swap the ImageNet head (ResNet ``fc``, DenseNet ``classifier``) for a ``num_classes`` one."""
    for name in ("fc", "classifier"):
        head = getattr(backbone, name, None)
        if isinstance(head, nn.Linear):
            setattr(backbone, name, nn.Linear(head.in_features, num_classes))
            return backbone
    raise ValueError(f"{type(backbone).__name__} has no linear 'fc' or 'classifier' head to replace")


class AuxiliaryClassifier(nn.Module):
    """C: ImageNet input normalisation, then a torchvision backbone ending in a ``num_classes`` head."""

    def __init__(self, arch: str, num_classes: int, weights: str = "random"):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown classifier_arch {arch!r}; choose one of {list(ARCHS)}")
        backbone, self.weights_used = build_torchvision(arch, weights, what=f"classifier C ({arch})")
        self.arch = arch
        self.normalize = ImageNetInput()
        self.backbone = replace_head(backbone, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.normalize(x))


def build_classifier(cfg, num_classes: int) -> AuxiliaryClassifier:
    """C sized by a :class:`gfd.config.Config` (``classifier_arch``, ``classifier_weights``)."""
    return AuxiliaryClassifier(cfg.classifier_arch, num_classes, cfg.classifier_weights)
