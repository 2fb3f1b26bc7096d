"""ResNet- and DenseNet-style encoders G_enc for the fingerprint generator (Sec. 3.2, Sec. 4.3 / Table 3).

For cross-generator detection the paper builds G's encoder on a classification backbone: "Two our
models are trained with DenseNet and ResNet as backbone, denoted as GFD-Net(ResNet50) and
GFD-Net(DenseNet)", and at inference G_enc + H "have the same architectures with ResNet50 and
DenseNet" (Sec. 4.3).  The decoder G_dec stays the U-Net decoder of :mod:`gfd.models.generator`:
it up-samples the latent code z (the backbone's last stage) and concatenates the feature map of
every earlier stage (the skips), with its own widths (``backbone_width`` doubled per level, capped at
``backbone_max_width``).

Two sizes (``Config.encoder_size``), both from torchvision's own model definitions:

``small``  (CPU presets, 48 px crops) a stride-1 3x3 stem and no max-pool, so the first stage works
           at full resolution (the issue the compact C of :mod:`gfd.models.classifier` solves the same
           way: ResNet's 7x7 stride-2 stem + max-pool would shrink 48 px to 12 px), then ``depth``
           stages that halve the side.
           ``resnet``: torchvision's ``BasicBlock`` (ResNet-18's block), one after the stem, two per
           down-sampling stage, widths ``width * 2^i`` capped at ``max_width`` -- the U-Net's widths.
           ``densenet``: torchvision's ``DenseNet`` (growth ``width // 2``, 4 layers per dense block,
           ``depth + 1`` blocks, ``width`` initial features, transition layers halving side and channels)
           with the 3x3 stride-1 stem.
``full``   (the ``paper`` preset, 224 px) torchvision's ``resnet50`` / ``densenet121`` unchanged, with
           ImageNet weights by the rule of :mod:`gfd.models.weights` (``Config.encoder_weights``) and
           ImageNet input normalisation.  Their stem already halves the side, so the input image itself
           is the full-resolution skip: G_dec ends at full resolution as the U-Net's does.

Every encoder returns ``(z, skips)`` like :class:`gfd.models.generator.UNetEncoder`: ``skips[i]`` at
side ``H / 2^i`` with ``widths[i]`` channels, ``z`` at ``H / 2^d`` with ``widths[d]``.
"""
from __future__ import annotations

import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, conv1x1

from gfd.models.weights import ImageNetInput, build_torchvision

ENCODER_ARCHS = ("unet", "resnet", "densenet")
"""``Config.encoder_arch``: the course's U-Net encoder, or a ResNet / DenseNet backbone (this module)."""
ENCODER_SIZES = ("small", "full")
"""``Config.encoder_size``: CPU-size backbones, or torchvision's ResNet-50 / DenseNet-121 (paper)."""
FULL_ARCHS = {"resnet": "resnet50", "densenet": "densenet121"}
"""The torchvision networks of the ``full`` size: the paper's GFD-Net (ResNet50) and GFD-Net (DenseNet)."""


def _init_like_torchvision(module: nn.Module) -> None:
    """torchvision's ResNet / DenseNet initialisation: Kaiming-normal convolutions, BatchNorm 1 / 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


def _stem(in_ch: int, width: int) -> list[nn.Module]:
    """The stride-1 3x3 stem of the small backbones: the first stage keeps a 48 px crop's side."""
    return [nn.Conv2d(in_ch, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]


class BackboneEncoder(nn.Module):
    """G_enc from a backbone cut into stages: each stage halves the side (the first may keep it).

    ``input_skip``: the (un-normalised) input is the first skip, for backbones whose first stage is
    already at half resolution.  ``normalize``: ImageNet normalisation before the first stage."""

    def __init__(self, arch: str, stages: list[nn.Module], in_ch: int = 3, input_skip: bool = False,
                 normalize: bool = False, weights_used: str = "random"):
        super().__init__()
        self.arch = arch
        self.normalize = ImageNetInput() if normalize else nn.Identity()
        self.stages = nn.ModuleList(stages)
        self.input_skip = input_skip
        self.weights_used = weights_used
        self.widths = self._widths(in_ch)

    @torch.no_grad()
    def _widths(self, in_ch: int) -> list[int]:
        """Channels of every skip and of z, read off one small forward pass in eval mode (no BatchNorm
        statistics change, no random number is drawn)."""
        was = self.training
        self.eval()
        z, skips = self.forward(torch.zeros(1, in_ch, 32, 32))
        self.train(was)
        return [s.shape[1] for s in skips] + [z.shape[1]]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        # x: (B, 3, H, W) in [-1, 1]
        feats = [x] if self.input_skip else []
        h = self.normalize(x)
        for stage in self.stages:
            h = stage(h)                  # stage i: (B, widths[i], H / 2^i, W / 2^i)
            feats.append(h)
        z = feats.pop()                   # z: (B, widths[d], H / 2^d, W / 2^d), the latent code
        return z, feats


def small_resnet(in_ch: int, width: int, depth: int, max_width: int) -> BackboneEncoder:
    """ResNet-18-style G_enc for small crops: stem + one ``BasicBlock`` at full resolution, then
    ``depth`` stages of two ``BasicBlock`` s, the first with stride 2 and a 1x1 projection shortcut."""
    widths = [min(width * 2 ** i, max_width) for i in range(depth + 1)]
    stages: list[nn.Module] = [nn.Sequential(*_stem(in_ch, widths[0]), BasicBlock(widths[0], widths[0]))]
    for prev, w in zip(widths[:-1], widths[1:]):
        down = nn.Sequential(conv1x1(prev, w, 2), nn.BatchNorm2d(w))
        stages.append(nn.Sequential(BasicBlock(prev, w, 2, down), BasicBlock(w, w)))
    enc = BackboneEncoder("resnet", stages, in_ch)
    _init_like_torchvision(enc)
    return enc


def _densenet_stages(features: nn.Sequential, stem: list[nn.Module]) -> list[nn.Module]:
    """Cut torchvision's ``DenseNet.features`` into stages: the stem, then (transition +) dense block,
    the last one followed by ``norm5`` and a ReLU."""
    parts = dict(features.named_children())
    n = sum(name.startswith("denseblock") for name in parts)
    stages = []
    for i in range(1, n + 1):
        mods = [parts[f"transition{i - 1}"]] if i > 1 else []
        mods.append(parts[f"denseblock{i}"])
        if i == n:
            mods += [parts["norm5"], nn.ReLU()]       # torchvision applies this ReLU in forward()
        stages.append(mods)
    stages[0] = stem + stages[0]
    return [nn.Sequential(*s) for s in stages]


def small_densenet(in_ch: int, width: int, depth: int) -> BackboneEncoder:
    """DenseNet-style G_enc for small crops: torchvision's ``DenseNet`` with ``depth + 1`` dense blocks
    of 4 layers (growth ``width // 2``, ``width`` initial features), its 7x7 stride-2 stem and max-pool
    replaced by a stride-1 3x3 stem; the first dense block works at full resolution."""
    net = torchvision.models.DenseNet(growth_rate=max(width // 2, 4), block_config=(4,) * (depth + 1),
                                      num_init_features=width)
    stem = _stem(in_ch, width)
    _init_like_torchvision(nn.Sequential(*stem))
    return BackboneEncoder("densenet", _densenet_stages(net.features, stem), in_ch)


def full_backbone(arch: str, in_ch: int, weights: str) -> BackboneEncoder:
    """torchvision's ``resnet50`` / ``densenet121`` (:data:`FULL_ARCHS`) as G_enc, weights as ``weights``
    says (:func:`gfd.models.weights.build_torchvision`), ImageNet input normalisation, and the input
    as the full-resolution skip (their stem halves the side)."""
    if in_ch != 3:
        raise ValueError(f"the {FULL_ARCHS[arch]} encoder takes RGB images (3 channels), got {in_ch}")
    net, used = build_torchvision(FULL_ARCHS[arch], weights, what=f"generator encoder G_enc ({FULL_ARCHS[arch]})")
    if arch == "resnet":
        stages = [nn.Sequential(net.conv1, net.bn1, net.relu), nn.Sequential(net.maxpool, net.layer1),
                  net.layer2, net.layer3, net.layer4]
    else:
        parts = dict(net.features.named_children())
        stem = [parts["conv0"], parts["norm0"], parts["relu0"]]
        first, *rest = _densenet_stages(net.features, [parts["pool0"]])
        stages = [nn.Sequential(*stem), first, *rest]
    return BackboneEncoder(arch, stages, in_ch, input_skip=True, normalize=True, weights_used=used)


def build_encoder(arch: str, size: str = "small", in_ch: int = 3, width: int = 32, depth: int = 3,
                  max_width: int = 256, weights: str = "random") -> BackboneEncoder:
    """A ResNet or DenseNet G_enc (``arch``) of ``size`` (:data:`ENCODER_SIZES`).  ``width``, ``depth``
    and ``max_width`` size the ``small`` backbones; ``weights`` initialises the ``full`` ones (the
    small ones have no ImageNet weights: random initialisation, ``"imagenet"`` is refused)."""
    if arch not in FULL_ARCHS:
        raise ValueError(f"unknown backbone encoder_arch {arch!r}; choose one of {list(FULL_ARCHS)} (or 'unet')")
    if size not in ENCODER_SIZES:
        raise ValueError(f"unknown encoder_size {size!r}; choose one of {list(ENCODER_SIZES)}")
    if size == "full":
        return full_backbone(arch, in_ch, weights)
    if weights not in ("random", "auto"):
        raise ValueError(f"the small {arch} encoder has no pretrained weights: set encoder_weights to 'random' "
                         f"(or use encoder_size='full', torchvision's {FULL_ARCHS[arch]})")
    if depth < 1:
        raise ValueError(f"encoder depth (backbone_depth) must be >= 1, got {depth}")
    return small_resnet(in_ch, width, depth, max_width) if arch == "resnet" else small_densenet(in_ch, width, depth)
