"""The generator families of the mini benchmark: what makes a GAN fingerprint (Sec. 4.2.1, Sec. 4.5, Fig. 7).

The paper attributes images to ProGAN, MMDGAN, SNGAN and InfoMaxGAN, and (Fig. 7) finds that the
*construction of layers* (instance normalisation vs StyleGAN2's weight demodulation, the skip
architecture) dominates the fingerprint, while doubling the number of feature maps barely matters.
Periodic traces come mostly from the up-sampling operators (Odena et al. 2016, "Deconvolution and
checkerboard artifacts"; Zhang et al. 2019, ref. [36]).  A family here is therefore one choice of

* **up-sampling operator**: transposed convolution (DCGAN, ProGAN-like), nearest + conv, bilinear +
  conv (StyleGAN-like), or conv + pixel shuffle (sub-pixel convolution);
* **normalisation**: ``adain`` (instance norm followed by a style-driven scale and bias, as in
  StyleGAN) or ``demod`` (a modulated convolution whose weights are demodulated, as in StyleGAN2);
* **width**: channels of the last decoder level (x2, x4 deeper).

Why an autoencoder (AutoGAN, Zhang et al. 2019, ref. [36]) rather than a noise-to-image GAN: a GAN
that samples believable 64 px images takes far longer to train than a 2-core CPU allows, while an
autoencoder whose decoder is a GAN generator learns in a few hundred steps and then *is* the
generator's up-sampling pipeline; its outputs carry the decoder's traces.  Its encoder brings a
64 px image down to a 16 x 16 code (two stride-2 steps) and the decoder re-synthesises the image
from it, so an output is a lossy re-synthesis, never a copy, of its input.
A PatchGAN discriminator (pix2pix) adds the adversarial term that makes the outputs sharper and
"GAN-like".  The encoder maps the image to a style vector too, so that ``adain`` and ``demod``
really are style-based normalisations as in StyleGAN / StyleGAN2.  Images fed to a trained
generator are new images of its domain, never those of the ``real`` class.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
import torch.nn.functional as F

UPSAMPLERS = ("tconv", "nearest", "bilinear", "pixshuffle")
NORMS = ("adain", "demod")


@dataclass(frozen=True)
class GenConfig:
    """One generator family (or variant): its class name and the architecture knobs that make its fingerprint."""

    name: str
    upsample: str          # one of UPSAMPLERS
    norm: str = "adain"    # one of NORMS
    width: int = 16        # channels of the last (full-resolution) decoder level; deeper levels x2, x4
    levels: int = 2        # number of 2x up-sampling steps (the bottleneck is side / 2**levels)

    def __post_init__(self):
        if self.upsample not in UPSAMPLERS:
            raise ValueError(f"generator {self.name}: upsample={self.upsample!r}, choose one of {UPSAMPLERS}")
        if self.norm not in NORMS:
            raise ValueError(f"generator {self.name}: norm={self.norm!r}, choose one of {NORMS}")

    def to_dict(self) -> dict:
        return asdict(self)


# The attribution classes (one folder each) ...
FAMILIES = (
    GenConfig("tconv", "tconv", "adain"),
    GenConfig("nearest", "nearest", "adain"),
    GenConfig("bilinear", "bilinear", "adain"),
    GenConfig("pixshuffle", "pixshuffle", "demod"),
)
# ... and the factor-analysis variants of one family (Fig. 7 analogue), kept out of the classes.
VARIANT_BASE = "bilinear"
VARIANTS = (
    GenConfig("bilinear_w2", "bilinear", "adain", width=32),   # only the width changes (Config E -> F)
    GenConfig("bilinear_demod", "bilinear", "demod"),         # only the normalisation changes (A -> B)
)


class UpConv(nn.Module):
    """A 2x up-sampling convolution from ``cin`` to ``cout`` channels, with the family's operator.

    ``tconv``: a 4x4 transposed convolution, stride 2;  ``nearest`` / ``bilinear``: interpolation,
    then a 3x3 convolution;  ``pixshuffle``: a 3x3 convolution to ``4 * cout`` channels, then pixel
    shuffle.  With ``demod=True`` the convolution is StyleGAN2's modulated convolution (Karras et
    al. 2020, Eq. 1-3): the style scales the input channels, and every output filter is rescaled to
    unit norm ("demodulation"), which replaces instance normalisation (Fig. 7, Config A -> B).  It is
    computed as StyleGAN2's non-fused form: scale the input, convolve, scale the output.
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


class DecoderBlock(nn.Module):
    """One generator stage: up-sampling convolution, normalisation (AdaIN, or demodulation inside it), LeakyReLU."""

    def __init__(self, cfg: GenConfig, cin: int, cout: int, style_dim: int):
        super().__init__()
        self.up = UpConv(cfg.upsample, cin, cout, style_dim, demod=cfg.norm == "demod")
        self.norm = AdaIN(cout, style_dim) if cfg.norm == "adain" else None

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        x = self.up(x, style)
        if self.norm is not None:
            x = self.norm(x, style)
        return F.leaky_relu(x, 0.2)


class AutoGANGenerator(nn.Module):
    """Encoder (strided convs) -> code at 1/2**levels resolution + style vector -> family decoder -> RGB in [-1, 1]."""

    def __init__(self, cfg: GenConfig, in_ch: int = 3):
        super().__init__()
        self.cfg = cfg
        widths = [cfg.width * 2**i for i in range(cfg.levels + 1)]   # full resolution ... bottleneck
        style_dim = widths[-1]
        enc: list[nn.Module] = [nn.Conv2d(in_ch, widths[0], 3, padding=1), nn.LeakyReLU(0.2)]
        for cin, cout in zip(widths[:-1], widths[1:]):
            enc += [nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        self.encoder = nn.Sequential(*enc)
        self.style = nn.Sequential(nn.Linear(widths[-1], style_dim), nn.LeakyReLU(0.2))
        self.blocks = nn.ModuleList(DecoderBlock(cfg, cin, cout, style_dim)
                                    for cin, cout in zip(widths[:0:-1], widths[-2::-1]))
        self.to_rgb = nn.Conv2d(widths[0], in_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        style = self.style(h.mean(dim=(2, 3)))
        for block in self.blocks:
            h = block(h, style)
        return torch.tanh(self.to_rgb(h))

