"""The perceptual feature extractor F of Eq. 5: a frozen VGG-16 (Johnson et al., ref. [16]).

F is torchvision's VGG-16 ``features`` cut after the ReLU named by ``cfg.perceptual_layer``
(``relu2_2`` by default, the layer Johnson et al. use for their feature reconstruction loss).
It takes the course's [-1, 1] images, maps them to [0, 1] and normalises with ImageNet statistics.
F is frozen: its parameters never require gradients and it stays in eval mode even when a parent
module calls ``.train()``; gradients still flow through it to its *input* (the fingerprinted image).
Weights follow the rule of :mod:`gfd.models.weights` (``cfg.perceptual_weights``).
"""
from __future__ import annotations

import torch
import torchvision
from torch import nn

from gfd.models.weights import ImageNetInput, build_torchvision

# name -> index of that ReLU in torchvision's vgg16().features
VGG16_RELUS = {
    "relu1_1": 1, "relu1_2": 3,
    "relu2_1": 6, "relu2_2": 8,
    "relu3_1": 11, "relu3_2": 13, "relu3_3": 15,
    "relu4_1": 18, "relu4_2": 20, "relu4_3": 22,
    "relu5_1": 25, "relu5_2": 27, "relu5_3": 29,
}


def vgg16_features(weights: str) -> tuple[nn.Sequential, str]:
    """VGG-16's convolutional part, initialised as ``weights`` says (see :mod:`gfd.models.weights`).

    Random initialisation skips building the 120M-parameter classifier that F never uses (seconds
    on a CPU): the convolutions are built on the meta device, then given torchvision's VGG init
    (Kaiming normal, fan-out, zero bias).
    """
    if weights != "random":
        vgg, used = build_torchvision("vgg16", weights, what="perceptual VGG-16 F")
        return vgg.features, used
    with torch.device("meta"):
        features = torchvision.models.vgg16(weights=None).features
    features = features.to_empty(device="cpu")
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return features, "random"


class PerceptualFeatures(nn.Module):
    """F: [-1, 1] image -> frozen VGG-16 feature map at ``layer``."""

    def __init__(self, layer: str = "relu2_2", weights: str = "random"):
        super().__init__()
        if layer not in VGG16_RELUS:
            raise ValueError(f"unknown perceptual_layer {layer!r}; choose one of {list(VGG16_RELUS)}")
        features, self.weights_used = vgg16_features(weights)
        self.layer = layer
        self.normalize = ImageNetInput()
        self.features = features[: VGG16_RELUS[layer] + 1]
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "PerceptualFeatures":
        """F is frozen: always eval mode, whatever a parent asks."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.normalize(x))


def build_perceptual(cfg) -> PerceptualFeatures:
    """F as a :class:`gfd.config.Config` says (``perceptual_layer``, ``perceptual_weights``)."""
    return PerceptualFeatures(cfg.perceptual_layer, cfg.perceptual_weights)
