"""Training the generator zoo and sampling fakes from it (AutoGAN-style, Zhang et al. 2019, ref. [36]).

Each generator of :mod:`gfd.benchmark.generators` is trained on images of one content domain with
an L1 reconstruction loss plus a least-squares adversarial term from a PatchGAN discriminator
(Mao et al. 2017; pix2pix), i.e. ``L_G = |G(x) - x|_1 + adv_weight * (D(G(x)) - 1)^2``.  A trained
generator is then fed new images of its domain; its outputs are the fake class.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from gfd.benchmark.generators import AutoGANGenerator, GenConfig
from gfd.models.discriminator import PatchDiscriminator
from gfd.utils import pbar


@dataclass(frozen=True)
class TrainSettings:
    """How every generator of the zoo is trained (enters the benchmark's cache key)."""

    steps: int = 300
    batch_size: int = 16
    crop: int = 32          # generators are fully convolutional: train on random crops (4x cheaper)
    lr: float = 2e-3
    adv_weight: float = 0.05
    disc_width: int = 16


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(n, H, W, 3) uint8 -> (n, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(n, 3, H, W) float in [-1, 1] -> (n, H, W, 3) uint8, rounded."""
    return x.add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def zoo_discriminator(width: int) -> PatchDiscriminator:
    """The small PatchGAN that trains a generator of the zoo: three stride-2 4x4 convs (``width``,
    2x, 4x channels), no normalisation, then a 3x3 conv to one logit per patch."""
    return PatchDiscriminator(3, width=width, n_layers=3, norm_layer=None, stride1_layer=False,
                              final_kernel=3, max_mult=None)


def train_generator(cfg: GenConfig, images: np.ndarray, settings: TrainSettings, seed: int,
                    progress: bool = True, desc: str | None = None) -> tuple[AutoGANGenerator, dict]:
    """Train one generator on ``images`` (n, H, W, 3) uint8; return it (eval mode) and its final losses."""
    if len(images) < settings.batch_size:
        raise ValueError(f"generator {cfg.name}: {len(images)} training images, need >= batch {settings.batch_size}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    G, D = AutoGANGenerator(cfg), zoo_discriminator(settings.disc_width)
    opt_g = torch.optim.Adam(G.parameters(), lr=settings.lr, betas=(0.5, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), lr=settings.lr, betas=(0.5, 0.99))
    data = to_tensor(images)
    side = min(data.shape[-2:])
    if settings.crop > side or settings.crop % 2 ** cfg.levels:
        raise ValueError(f"generator {cfg.name}: crop {settings.crop} must be <= {side} and a multiple of "
                         f"{2 ** cfg.levels} (the bottleneck stride)")
    rec = adv = d_loss = torch.tensor(0.0)
    for _ in pbar(range(settings.steps), enabled=progress, desc=desc or f"train {cfg.name}", leave=False):
        x = data[torch.randint(len(data), (settings.batch_size,), generator=gen)]
        top, left = torch.randint(side - settings.crop + 1, (2,), generator=gen).tolist()
        x = x[:, :, top:top + settings.crop, left:left + settings.crop]
        fake = G(x)
        # discriminator: real patches -> 1, generated patches -> 0 (least squares)
        d_loss = (D(x) - 1).pow(2).mean() + D(fake.detach()).pow(2).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        # generator: reconstruct the input, and fool D
        rec = F.l1_loss(fake, x)
        adv = (D(fake) - 1).pow(2).mean()
        opt_g.zero_grad(set_to_none=True)
        (rec + settings.adv_weight * adv).backward()
        opt_g.step()
    G.eval()
    return G, {"l1": round(rec.item(), 5), "adv": round(adv.item(), 5), "d": round(d_loss.item(), 5)}


@torch.no_grad()
def generate(G: AutoGANGenerator, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Feed ``images`` (n, H, W, 3) uint8 through a trained generator; return its outputs as uint8."""
    out = [to_uint8(G(to_tensor(images[i:i + batch_size]))) for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else images[:0].copy()
