"""The fingerprint generator G = G_dec(G_enc(x)) and the classification head H (Sec. 3.2).

G is a U-Net (Ronneberger et al. 2015, ref. [30] of the paper): every level holds two 3x3
convolutions, the first level works at full resolution (so high-frequency traces are seen before
anything down-samples), max-pooling goes one level down, and the decoder concatenates the encoder's
feature map of the same level (the skip connections).  The bottleneck feature map is the latent
code ``z``; the head H (global average pool + linear) reads the source out of it.  At inference
time only G_enc + H are needed (``classify``); the decoder exists to produce the fingerprint f.

Depth and width come from the config: the ``paper`` preset (224 px crops) and the CPU presets
(48 px crops) use this same class; ``decoder_width`` may make G_dec narrower than G_enc (the
course preset's, to keep a full GFD step affordable on a CPU: the decoder only draws f).  For Table 3 (Sec. 4.3) G_enc may instead be a ResNet or DenseNet
backbone (``Config.encoder_arch``, :mod:`gfd.models.backbones`); the decoder then adapts its skip
concatenations to the backbone's stage widths.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


def double_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    """One U-Net level: (3x3 conv -> BatchNorm -> ReLU) twice, padding keeps the size."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class UNetEncoder(nn.Module):
    """G_enc: ``depth`` max-pool steps; returns the latent ``z`` and the skip features."""

    def __init__(self, in_ch: int, widths: list[int]):
        super().__init__()
        self.levels = nn.ModuleList()
        prev = in_ch
        for w in widths:
            self.levels.append(double_conv(prev, w))
            prev = w
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        # x: (B, 3, H, W); widths w_0 .. w_d, level i works at H / 2^i
        skips = []
        for i, level in enumerate(self.levels):
            if i > 0:
                x = self.pool(x)          # (B, w_{i-1}, H / 2^i, W / 2^i)
            x = level(x)                  # (B, w_i, H / 2^i, W / 2^i)
            skips.append(x)
        z = skips.pop()                   # z: (B, w_d, H / 2^d, W / 2^d), the latent code, not a skip
        return z, skips                   # skips[i]: (B, w_i, H / 2^i, W / 2^i), i < d


class UNetDecoder(nn.Module):
    """G_dec: transposed-conv up-sampling, concatenation with the skip of the same level.

    ``widths`` are the encoder's (skips ``widths[:-1]``, z ``widths[-1]``); ``dec_widths`` (one per
    skip) the decoder's own, by default the encoder's (the U-Net).  A backbone encoder
    (:mod:`gfd.models.backbones`) has other widths than the decoder: level i concatenates
    ``widths[i]`` skip channels with ``dec_widths[i]`` up-sampled ones."""

    def __init__(self, widths: list[int], out_ch: int, dec_widths: list[int] | None = None):
        super().__init__()
        dec = list(widths[:-1]) if dec_widths is None else list(dec_widths)
        if len(dec) != len(widths) - 1:
            raise ValueError(f"one decoder width per skip: {len(widths) - 1} skips, got {len(dec)} widths")
        self.ups = nn.ModuleList()
        self.levels = nn.ModuleList()
        deep = widths[-1]
        for skip, shallow in zip(widths[-2::-1], dec[::-1]):      # U-Net: skip == shallow
            self.ups.append(nn.ConvTranspose2d(deep, shallow, 2, stride=2))
            self.levels.append(double_conv(skip + shallow, shallow))
            deep = shallow
        self.out = nn.Conv2d(dec[0], out_ch, 1)

    def forward(self, z: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        x = z                                             # (B, w_d, H / 2^d, W / 2^d)
        for up, level, skip in zip(self.ups, self.levels, reversed(skips)):   # i = d-1 .. 0
            x = up(x)                                     # (B, w_i, H / 2^i, W / 2^i), rounded down
            if x.shape[-2:] != skip.shape[-2:]:  # odd sizes: pad to the skip's size
                dh, dw = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
                x = nn.functional.pad(x, (0, dw, 0, dh))  # (B, w_i, H / 2^i, W / 2^i)
            x = torch.cat([skip, x], dim=1)               # (B, 2 w_i, H / 2^i, W / 2^i)
            x = level(x)                                  # (B, w_i, H / 2^i, W / 2^i)
        return self.out(x)                                # (B, 3, H, W), before tanh


class ClassificationHead(nn.Module):
    """H: global average pooling over z, then one fully-connected layer (Sec. 3.2)."""

    def __init__(self, in_ch: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        pooled = z.mean(dim=(-2, -1))     # (B, w_d): global average pool
        return self.fc(pooled)            # (B, K) source logits


@dataclass
class GeneratorOutput:
    fingerprint: torch.Tensor  # f, same shape as the input (Eq. 1)
    logits: torch.Tensor       # H(z), the source prediction (Eq. 6)
    z: torch.Tensor            # the latent code (bottleneck of the U-Net)


class FingerprintGenerator(nn.Module):
    """G with head H.  ``forward`` returns f, H(z) and z; ``classify`` runs G_enc + H only.

    The fingerprint is ``fingerprint_scale * tanh(G_dec(z))``: images live in [-1, 1], so f is
    bounded by the same range and ``x_real + f`` stays comparable to an image.
    """

    def __init__(self, num_classes: int, depth: int = 3, width: int = 32, max_width: int = 256,
                 in_ch: int = 3, fingerprint_scale: float = 1.0, encoder_arch: str = "unet",
                 encoder_size: str = "small", encoder_weights: str = "random", decoder_width: int = 0):
        super().__init__()
        self.fingerprint_scale = fingerprint_scale
        self.encoder_arch = encoder_arch
        if encoder_arch == "unet":
            if depth < 1:
                raise ValueError(f"U-Net depth must be >= 1, got {depth}")
            self.widths = [min(width * 2**i, max_width) for i in range(depth + 1)]
            self.depth = depth
            self.encoder = UNetEncoder(in_ch, self.widths)
            dec = None if decoder_width <= 0 else [min(decoder_width * 2**i, max_width) for i in range(depth)]
            self.decoder = UNetDecoder(self.widths, in_ch, dec)
            self.weights_used = "random"
        else:   # a ResNet / DenseNet backbone as G_enc (Sec. 4.3), the U-Net decoder with its own widths
            from gfd.models.backbones import build_encoder
            self.encoder = build_encoder(encoder_arch, encoder_size, in_ch, width, depth, max_width, encoder_weights)
            self.widths = self.encoder.widths
            self.depth = len(self.widths) - 1
            self.decoder = UNetDecoder(self.widths, in_ch, [min(width * 2**i, max_width) for i in range(self.depth)])
            self.weights_used = self.encoder.weights_used
        self.head = ClassificationHead(self.widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> GeneratorOutput:
        # x: (B, 3, H, W) in [-1, 1]
        z, skips = self.encoder(x)        # z: (B, w_d, H / 2^d, W / 2^d); skips: d maps
        out = self.decoder(z, skips)      # (B, 3, H, W)
        f = self.fingerprint_scale * torch.tanh(out)   # (B, 3, H, W), |f| <= fingerprint_scale
        logits = self.head(z)             # (B, K)
        return GeneratorOutput(fingerprint=f, logits=logits, z=z)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Source logits from G_enc + H alone: the attribution path used at test time."""
        z, _ = self.encoder(x)            # (B, w_d, H / 2^d, W / 2^d)
        return self.head(z)               # (B, K)

    def fingerprint(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x).fingerprint


class EncoderHead(nn.Module):
    """G_enc + H of a generator as a plain classifier module: images (B, 3, H, W) -> logits (B, K).

    What is measured in every table: the paper attributes with the encoder and the head only."""

    def __init__(self, generator: FingerprintGenerator):
        super().__init__()
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.generator.classify(x)


def build_generator(cfg, num_classes: int, pretrained: bool = True) -> FingerprintGenerator:
    """G + H sized by a :class:`gfd.config.Config`: the U-Net (``encoder_arch="unet"``, ``unet_*`` and
    ``decoder_width``) or a ResNet / DenseNet encoder (:mod:`gfd.models.backbones`, ``encoder_size``,
    ``encoder_weights``; a small one and the decoder on it sized by ``backbone_*``).
    ``pretrained=False`` skips the encoder's pretrained weights (a checkpoint will overwrite them)."""
    if cfg.encoder_arch == "unet":
        return FingerprintGenerator(num_classes, depth=cfg.unet_depth, width=cfg.unet_width,
                                    max_width=cfg.unet_max_width, fingerprint_scale=cfg.fingerprint_scale,
                                    decoder_width=cfg.decoder_width)
    return FingerprintGenerator(num_classes, depth=cfg.backbone_depth, width=cfg.backbone_width,
                                max_width=cfg.backbone_max_width, fingerprint_scale=cfg.fingerprint_scale,
                                encoder_arch=cfg.encoder_arch, encoder_size=cfg.encoder_size,
                                encoder_weights=cfg.encoder_weights if pretrained else "random")
