"""The auxiliary classifier C (Sec. 3.2): a torchvision backbone with a new source head.

The paper uses ResNet-50 (and DenseNet in Table 3), and so does the ``paper`` preset.  C is trained
on the input images first (Eq. 3), then judges the fingerprinted images (Eq. 2).

The CPU presets use ``compact`` instead (:class:`CompactClassifier`), a deviation from the paper made
for 48 px crops: a ResNet's stem (7x7 stride-2 conv, then a stride-2 max-pool) shrinks a 48 px crop
to 12 px before anything is learned, which blurs away traces a few pixels wide, and a ResNet-18 from
random weights does not learn within a CPU budget (it stayed near chance, 23-27 % val, on the
benchmark).  ``compact`` starts with 3x3 stride-1 convolutions at full resolution.

C takes the course's [-1, 1] images and normalises them internally to ImageNet statistics
(:class:`gfd.models.weights.ImageNetInput`), the input its ImageNet initialisation expects.
ImageNet initialisation follows the rule of :mod:`gfd.models.weights` (``cfg.classifier_weights``).
"""
from __future__ import annotations

import torch
from torch import nn

from gfd.models.weights import ImageNetInput, build_torchvision, load_state_dict_file

ARCHS = ("compact", "resnet18", "resnet34", "resnet50", "resnet101", "densenet121", "densenet169", "densenet201")


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
        if arch not in ARCHS or arch == "compact":
            raise ValueError(f"unknown classifier_arch {arch!r}; choose one of {list(ARCHS)}")
        backbone, self.weights_used = build_torchvision(arch, weights, what=f"classifier C ({arch})")
        self.arch = arch
        self.normalize = ImageNetInput()
        self.backbone = replace_head(backbone, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.normalize(x))


def conv_bn_relu(in_ch: int, out_ch: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True)]


class CompactClassifier(nn.Module):
    """C for small crops: two 3x3 stride-1 convolutions at full resolution (no down-sampling before
    the first learned layer), then ``stages`` stages that halve the side and double the channels,
    global average pooling and a linear head.  Takes the course's [-1, 1] images as they are.

    At 48 px and ``width`` 16: 48 -> 24 -> 12 -> 6 px, 16 -> 128 channels, about 30 MFLOPs an image.
    There are no ImageNet weights for it: ``weights`` is ``"random"``/``"auto"`` or a state_dict file.
    """

    def __init__(self, num_classes: int, width: int = 16, stages: int = 3, weights: str = "random"):
        super().__init__()
        layers = conv_bn_relu(3, width) + conv_bn_relu(width, width)
        ch = width
        for _ in range(stages):
            layers += conv_bn_relu(ch, 2 * ch, stride=2) + conv_bn_relu(2 * ch, 2 * ch)
            ch *= 2
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(ch, num_classes)
        self.arch = "compact"
        if weights == "imagenet":
            raise ValueError("classifier C (compact) has no ImageNet weights: set classifier_weights to 'random' "
                             "(or 'auto'), or choose a torchvision classifier_arch such as resnet50")
        if weights in ("random", "auto"):
            self.weights_used = "random (compact C has no ImageNet weights)" if weights == "auto" else "random"
        else:
            load_state_dict_file(self, weights, "classifier C (compact)")
            self.weights_used = f"file:{weights}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:          # (B, 3, H, W) in [-1, 1]
        h = self.features(x)                                      # (B, 8w, H/8, W/8)
        return self.fc(h.mean(dim=(2, 3)))                        # (B, K) logits


def build_classifier(cfg, num_classes: int) -> nn.Module:
    """C sized by a :class:`gfd.config.Config` (``classifier_arch``, ``classifier_width``,
    ``classifier_weights``)."""
    if cfg.classifier_arch == "compact":
        return CompactClassifier(num_classes, cfg.classifier_width, weights=cfg.classifier_weights)
    return AuxiliaryClassifier(cfg.classifier_arch, num_classes, cfg.classifier_weights)
