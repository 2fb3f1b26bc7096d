"""The generator families of the mini benchmark: what makes a GAN fingerprint (Sec. 4.2.1, Sec. 4.5, Fig. 7).

The paper's 128 px set holds ProGAN, MMDGAN, SNGAN and InfoMaxGAN.  SNGAN and InfoMaxGAN share the
same ResNet generator and differ in their training objective and discriminator; ProGAN and MMDGAN
differ from them in architecture *and* training.  The fingerprint therefore comes from training as
well as from architecture.  The miniature families mirror that structure (:data:`FAMILIES`):

=========  ===================================================  ==========================================
family     generator architecture                               training objective (with L1 reconstruction)
=========  ===================================================  ==========================================
progan     nearest + conv, pixel norm, feed-forward             least squares, plain PatchGAN
mmdgan     transposed conv, batch norm, feed-forward            MMD on the critic's patch features
sngan      bilinear + conv, AdaIN, residual blocks              hinge, spectral-norm PatchGAN
infomax    bilinear + conv, AdaIN, residual blocks  (= sngan)   hinge, spectral-norm PatchGAN + an
                                                                auxiliary information term (InfoGAN-style:
                                                                a head on D recovers the latent code z)
=========  ===================================================  ==========================================

``sngan`` and ``infomax`` have the *same* architecture: only the objective tells them apart.

A family is a class; its images come from several generator *instances* (own seed, and a modest
change of width and training length, see :mod:`gfd.benchmark.worlds.gan128`), so a method must learn the
family, not one network.

The factor-analysis variants (:data:`VARIANTS`, Fig. 7 analogue, StyleGAN2's configurations) step
from the ``progan`` family's operator and objective: A = AdaIN (StyleGAN), B = weight
demodulation (StyleGAN2), D = B + skip (to-RGB outputs summed across levels), E = B + residual
blocks, F = E with double width.  They are not classes.

Why an autoencoder (AutoGAN, Zhang et al. 2019, ref. [36]) rather than a noise-to-image GAN: a GAN
that samples believable 64 px images takes far longer to train than a 2-core CPU allows, while an
autoencoder whose decoder is a GAN generator learns in a few hundred steps and then *is* the
generator's up-sampling pipeline.  Its encoder brings the image down to a code at
1/2**levels resolution and a style vector; a latent code ``z`` (:data:`Z_DIM` numbers, drawn anew
for every image) enters the style and the bottleneck, so a generator samples, not only
reconstructs.  Images fed to a trained generator are new images of its domain, never those of the
``real`` class.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn
import torch.nn.functional as F

UPSAMPLERS = ("tconv", "nearest", "bilinear", "pixshuffle")
NORMS = ("adain", "demod", "pixel", "batch", "none")
BLOCKS = ("plain", "skip", "resid")
OBJECTIVES = ("lsgan", "hinge_sn", "mmd", "infomax")
Z_DIM = 8


@dataclass(frozen=True)
class GenConfig:
    """One generator family (or variant): its class name, its architecture and its training objective."""

    name: str
    upsample: str              # one of UPSAMPLERS
    norm: str = "adain"        # one of NORMS
    width: int = 16            # channels of the last (full-resolution) decoder level; deeper levels x2, x4
    levels: int = 2            # number of 2x up-sampling steps (the bottleneck is side / 2**levels)
    block: str = "plain"       # one of BLOCKS: feed-forward, skip (to-RGB per level), residual
    objective: str = "lsgan"   # one of OBJECTIVES (see zoo.train_generator)

    def __post_init__(self):
        for field_, allowed in (("upsample", UPSAMPLERS), ("norm", NORMS), ("block", BLOCKS),
                                ("objective", OBJECTIVES)):
            if getattr(self, field_) not in allowed:
                raise ValueError(f"generator {self.name}: {field_}={getattr(self, field_)!r}, choose one of {allowed}")
        if self.width < 4:
            raise ValueError(f"generator {self.name}: width {self.width} < 4")

    def architecture(self) -> dict:
        """The fields that shape the network (everything but the name and the objective)."""
        d = asdict(self)
        d.pop("name"), d.pop("objective")
        return d

    def scaled(self, width_scale: float) -> "GenConfig":
        """The same family with its width scaled (rounded to a multiple of 4): an instance's variation."""
        return replace(self, width=max(4, int(round(self.width * width_scale / 4)) * 4))

    def to_dict(self) -> dict:
        return asdict(self)


# The attribution classes (one folder each) ...
FAMILIES = (
    GenConfig("progan", "nearest", "pixel", objective="lsgan"),
    GenConfig("mmdgan", "tconv", "batch", objective="mmd"),
    GenConfig("sngan", "bilinear", "adain", block="resid", objective="hinge_sn"),
    GenConfig("infomax", "bilinear", "adain", block="resid", objective="infomax"),
)
# ... and the factor-analysis variants (StyleGAN2's configurations A, B, D, E, F), kept out of the classes.
VARIANT_BASE = "progan"
VARIANTS = (
    GenConfig("cfgA_adain", "nearest", "adain", objective="lsgan"),
    GenConfig("cfgB_demod", "nearest", "demod", objective="lsgan"),
    GenConfig("cfgD_demod_skip", "nearest", "demod", block="skip", objective="lsgan"),
    GenConfig("cfgE_demod_resid", "nearest", "demod", block="resid", objective="lsgan"),
    GenConfig("cfgF_demod_resid_w2", "nearest", "demod", width=32, block="resid", objective="lsgan"),
)


class UpConv(nn.Module):
    """A 2x up-sampling convolution from ``cin`` to ``cout`` channels, with the family's operator.

    ``tconv``: a 4x4 transposed convolution, stride 2;  ``nearest`` / ``bilinear``: interpolation,
    then a 3x3 convolution;  ``pixshuffle``: a 3x3 convolution to ``4 * cout`` channels, then pixel
    shuffle.  With
    ``demod=True`` the convolution is StyleGAN2's modulated convolution (Karras et al. 2020, Eq.
    1-3): the style scales the input channels, and every output filter is rescaled to unit norm
    ("demodulation"), which replaces instance normalisation (Fig. 7, Config A -> B).  It is computed
    as StyleGAN2's non-fused form: scale the input, convolve, scale the output.
    """

    def __init__(self, kind: str, cin: int, cout: int, style_dim: int, demod: bool):
        super().__init__()
        self.kind, self.demod = kind, demod
        if kind == "tconv":
            self.conv = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False)
        else:
            self.conv = nn.Conv2d(cin, 4 * cout if kind == "pixshuffle" else cout, 3, padding=1, bias=False)
        self.bias = nn.Parameter(torch.zeros(cout))
        if demod:
            self.modulation = nn.Linear(style_dim, cin)
            nn.init.zeros_(self.modulation.weight)
            nn.init.ones_(self.modulation.bias)

    def _filter_energy(self) -> torch.Tensor:
        """(out, in) squared norm of every (output, input) filter, for the demodulation."""
        w = self.conv.weight
        w = w.transpose(0, 1) if self.kind == "tconv" else w   # ConvTranspose2d stores (in, out, k, k)
        return w.pow(2).sum(dim=(2, 3))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        if self.demod:
            s = self.modulation(style)                                  # (b, cin)
            x = x * s[:, :, None, None]
        if self.kind in ("nearest", "bilinear"):
            x = F.interpolate(x, scale_factor=2, mode=self.kind,
                              **({"align_corners": False} if self.kind == "bilinear" else {}))
        y = self.conv(x)
        if self.demod:
            d = torch.rsqrt(s.pow(2) @ self._filter_energy().t() + 1e-8)   # (b, out)
            y = y * d[:, :, None, None]
        if self.kind == "pixshuffle":
            y = F.pixel_shuffle(y, 2)
        return y + self.bias[None, :, None, None]


class AdaIN(nn.Module):
    """StyleGAN's adaptive instance normalisation: normalise each channel, then scale and shift by the style."""

    def __init__(self, channels: int, style_dim: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.affine = nn.Linear(style_dim, 2 * channels)
        nn.init.zeros_(self.affine.weight)
        nn.init.zeros_(self.affine.bias)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.affine(style)[:, :, None, None].chunk(2, dim=1)
        return self.norm(x) * (1 + gamma) + beta


class PixelNorm(nn.Module):
    """ProGAN's pixel-wise feature normalisation: each pixel's feature vector to unit mean square."""

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class BatchNorm(nn.BatchNorm2d):
    """Batch normalisation (DCGAN, SNGAN's generator) with the blocks' (x, style) signature."""

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(x)


class NoNorm(nn.Module):
    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        return x


def make_norm(norm: str, channels: int, style_dim: int) -> nn.Module:
    """The normalisation after a convolution (``demod`` normalises inside the convolution: none after it)."""
    if norm == "adain":
        return AdaIN(channels, style_dim)
    if norm == "pixel":
        return PixelNorm()
    if norm == "batch":
        return BatchNorm(channels)
    return NoNorm()


class DecoderBlock(nn.Module):
    """One generator stage: up-sampling convolution, normalisation (or demodulation inside it), LeakyReLU.

    ``block="resid"`` adds a shortcut (bilinear 2x, 1x1 conv) and scales the sum by 1/sqrt(2), as
    StyleGAN2's residual configuration; ``"skip"`` leaves the block feed-forward (the generator
    sums per-level RGB outputs instead).
    """

    def __init__(self, cfg: GenConfig, cin: int, cout: int, style_dim: int):
        super().__init__()
        demod = cfg.norm == "demod"
        self.up = UpConv(cfg.upsample, cin, cout, style_dim, demod=demod)
        self.norm1 = make_norm(cfg.norm, cout, style_dim)
        self.shortcut = nn.Conv2d(cin, cout, 1, bias=False) if cfg.block == "resid" else None

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.norm1(self.up(x, style), style), 0.2)
        if self.shortcut is not None:
            skip = self.shortcut(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
            h = (h + skip) / math.sqrt(2.0)
        return h


class AutoGANGenerator(nn.Module):
    """Encoder (strided convs) -> code at 1/2**levels resolution + style vector (+ latent z) -> family
    decoder -> RGB in [-1, 1]."""

    def __init__(self, cfg: GenConfig, in_ch: int = 3):
        super().__init__()
        self.cfg = cfg
        widths = [cfg.width * 2**i for i in range(cfg.levels + 1)]   # full resolution ... bottleneck
        style_dim = widths[-1]
        enc: list[nn.Module] = [nn.Conv2d(in_ch, widths[0], 3, padding=1), nn.LeakyReLU(0.2)]
        for cin, cout in zip(widths[:-1], widths[1:]):
            enc += [nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        self.encoder = nn.Sequential(*enc)
        self.style = nn.Sequential(nn.Linear(widths[-1] + Z_DIM, style_dim), nn.LeakyReLU(0.2))
        self.z_to_code = nn.Linear(Z_DIM, widths[-1])
        self.blocks = nn.ModuleList(DecoderBlock(cfg, cin, cout, style_dim)
                                    for cin, cout in zip(widths[:0:-1], widths[-2::-1]))
        if cfg.block == "skip":
            self.to_rgbs = nn.ModuleList(nn.Conv2d(w, in_ch, 1) for w in widths[-2::-1])
        else:
            self.to_rgb = nn.Conv2d(widths[0], in_ch, 1)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if z is None:
            z = x.new_zeros(x.shape[0], Z_DIM)
        h = self.encoder(x)
        style = self.style(torch.cat([h.mean(dim=(2, 3)), z], dim=1))
        h = h + self.z_to_code(z)[:, :, None, None]
        rgb = None
        for i, block in enumerate(self.blocks):
            h = block(h, style)
            if self.cfg.block == "skip":
                up = 0 if rgb is None else F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False)
                rgb = up + self.to_rgbs[i](h)
        return torch.tanh(rgb if rgb is not None else self.to_rgb(h))
