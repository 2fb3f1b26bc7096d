"""Training the generator zoo and sampling fakes from it (AutoGAN-style, Zhang et al. 2019, ref. [36]).

Each generator of :mod:`gfd.benchmark.generators` is trained on images of one content domain with
``L_G = |G(x, z) - x|_1 + adv_weight * L_adv (+ info_weight * L_info)``; the family's objective
picks the adversarial term and the discriminator (always the one PatchGAN of
:mod:`gfd.models.discriminator`, :func:`zoo_discriminator`):

* ``lsgan``: least squares (Mao et al. 2017), plain PatchGAN;
* ``hinge_sn``: hinge loss, spectral normalisation on every conv of D (SNGAN, Miyato et al. 2018);
* ``mmd``: D is a feature critic; G minimises, D maximises the squared MMD with a mixture of
  Gaussian kernels between the per-patch features of real and generated images (MMD GAN,
  Li et al. 2017);
* ``infomax``: ``hinge_sn`` plus an auxiliary information term: a linear head on D's features must
  recover the latent code ``z`` from the generated image, and G and D both minimise its squared
  error (InfoGAN's mutual-information bound; plays InfoMaxGAN's extra information objective).

Stopping rule (:class:`TrainSettings`, written before any result): Adam with a learning rate that
halves every ``half_life`` steps; every ``window`` steps the mean L1 reconstruction loss of the
window is compared with the previous window's; training stops at the first window that improves it
by less than ``tol`` (relative) once ``min_steps`` are done, or at ``max_steps``.  The window means
(the loss curve), the final value, the step count and the reason for stopping are returned and go
into the manifest.  A trained generator is then fed new images of its domain (and a fresh ``z`` per
image); its outputs are the fake class.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from gfd.benchmark.generators import Z_DIM, AutoGANGenerator, GenConfig
from gfd.models.discriminator import PatchDiscriminator
from gfd.utils import pbar

MMD_SIGMAS = (1.0, 2.0, 4.0, 8.0, 16.0)


@dataclass(frozen=True)
class TrainSettings:
    """How every generator of the zoo is trained, including its stopping rule (enters the cache key)."""

    max_steps: int = 900
    min_steps: int = 300
    window: int = 50          # steps per loss-curve point; the plateau test compares consecutive windows
    tol: float = 0.02         # stop when a window improves the mean L1 by less than this fraction
    half_life: int = 300      # the learning rate halves every half_life steps
    batch_size: int = 16
    crop: int = 32            # generators are fully convolutional: train on random crops (4x cheaper)
    lr: float = 2e-3
    adv_weight: float = 0.1
    info_weight: float = 1.0
    disc_width: int = 16

    def __post_init__(self):
        if not (0 < self.min_steps <= self.max_steps and self.window >= 1):
            raise ValueError(f"need 0 < min_steps <= max_steps and window >= 1: {self}")

    def scaled(self, steps_scale: float) -> "TrainSettings":
        """Training length scaled (an instance's variation): min_steps and max_steps."""
        return replace(self, min_steps=max(1, int(round(self.min_steps * steps_scale))),
                       max_steps=max(1, int(round(self.max_steps * steps_scale))))


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


def spectral_normalise(D: PatchDiscriminator) -> PatchDiscriminator:
    """Spectral normalisation on every convolution of ``D`` (in place; returns ``D``)."""
    for i, m in enumerate(D.net):
        if isinstance(m, nn.Conv2d):
            D.net[i] = nn.utils.parametrizations.spectral_norm(m)
    return D


def critic_features(D: PatchDiscriminator, x: torch.Tensor) -> torch.Tensor:
    """D's features before its last conv: (B, C, h, w)."""
    return D.net[:-1](x)


def mmd2(a: torch.Tensor, b: torch.Tensor, sigmas: tuple[float, ...] = MMD_SIGMAS) -> torch.Tensor:
    """Biased squared MMD between samples ``a`` (n, d) and ``b`` (m, d), mixture of Gaussian kernels."""
    x = torch.cat([a, b])
    d2 = torch.cdist(x, x).pow(2)
    k = sum(torch.exp(-d2 / (2 * s * s)) for s in sigmas)
    n = len(a)
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


def _patches(f: torch.Tensor) -> torch.Tensor:
    return f.permute(0, 2, 3, 1).reshape(-1, f.shape[1])


class Plateau:
    """The stopping rule: window means of a loss, stop on a relative improvement < tol after min_steps."""

    def __init__(self, s: TrainSettings):
        self.s, self.curve, self._acc, self.reason = s, [], [], None

    def update(self, step: int, loss: float) -> bool:
        """Record the loss of step ``step`` (0-based); True when training should stop after it."""
        self._acc.append(loss)
        done = step + 1
        if len(self._acc) == self.s.window:
            self.curve.append(float(np.mean(self._acc)))
            self._acc = []
            if done >= self.s.min_steps and len(self.curve) >= 2:
                prev, cur = self.curve[-2], self.curve[-1]
                if (prev - cur) / max(abs(prev), 1e-12) < self.s.tol:
                    self.reason = f"plateau: window mean improved {100 * (prev - cur) / prev:.2f}% < {100 * self.s.tol:g}%"
                    return True
        if done >= self.s.max_steps:
            if self._acc:
                self.curve.append(float(np.mean(self._acc)))
            self.reason = "cap: max_steps"
            return True
        return False


def _subsample(curve: list[float], n: int = 40) -> list[float]:
    idx = np.unique(np.linspace(0, len(curve) - 1, min(n, len(curve))).round().astype(int))
    return [round(curve[i], 5) for i in idx]


def train_generator(cfg: GenConfig, images: np.ndarray, settings: TrainSettings, seed: int,
                    progress: bool = True, desc: str | None = None) -> tuple[AutoGANGenerator, dict]:
    """Train one generator on ``images`` (n, H, W, 3) uint8 until the stopping rule; return it (eval
    mode) and its record (loss curve, final losses, steps, why it stopped)."""
    s = settings
    if len(images) < s.batch_size:
        raise ValueError(f"generator {cfg.name}: {len(images)} training images, need >= batch {s.batch_size}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    G, D = AutoGANGenerator(cfg), zoo_discriminator(s.disc_width)
    if cfg.objective in ("hinge_sn", "infomax"):
        spectral_normalise(D)
    d_params = list(D.parameters())
    Q = None
    if cfg.objective == "infomax":
        Q = nn.Linear(4 * s.disc_width, Z_DIM)
        d_params += list(Q.parameters())
    opt_g = torch.optim.Adam(G.parameters(), lr=s.lr, betas=(0.5, 0.99))
    opt_d = torch.optim.Adam(d_params, lr=s.lr, betas=(0.5, 0.99))
    data = to_tensor(images)
    side = min(data.shape[-2:])
    if s.crop > side or s.crop % 2 ** cfg.levels:
        raise ValueError(f"generator {cfg.name}: crop {s.crop} must be <= {side} and a multiple of "
                         f"{2 ** cfg.levels} (the bottleneck stride)")

    def info_loss(fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(Q(critic_features(D, fake).mean(dim=(2, 3))), z)

    plateau = Plateau(s)
    last = {}
    for step in pbar(range(s.max_steps), enabled=progress, desc=desc or f"train {cfg.name}", leave=False):
        lr = s.lr * 0.5 ** (step / s.half_life)
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                group["lr"] = lr
        x = data[torch.randint(len(data), (s.batch_size,), generator=gen)]
        top, left = torch.randint(side - s.crop + 1, (2,), generator=gen).tolist()
        x = x[:, :, top:top + s.crop, left:left + s.crop]
        z = torch.randn(s.batch_size, Z_DIM, generator=gen)
        fake = G(x, z)
        # --- discriminator / critic
        if cfg.objective == "lsgan":
            d_loss = (D(x) - 1).pow(2).mean() + D(fake.detach()).pow(2).mean()
        elif cfg.objective == "mmd":
            d_loss = -mmd2(_patches(critic_features(D, x)), _patches(critic_features(D, fake.detach())))
        else:
            d_loss = F.relu(1 - D(x)).mean() + F.relu(1 + D(fake.detach())).mean()
            if Q is not None:
                d_loss = d_loss + s.info_weight * info_loss(fake.detach(), z)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        # --- generator: reconstruct the input, and fool D
        rec = F.l1_loss(fake, x)
        if cfg.objective == "lsgan":
            adv = (D(fake) - 1).pow(2).mean()
        elif cfg.objective == "mmd":
            adv = mmd2(_patches(critic_features(D, x)).detach(), _patches(critic_features(D, fake)))
        else:
            adv = -D(fake).mean()
        loss = rec + s.adv_weight * adv
        info = None
        if Q is not None:
            info = info_loss(fake, z)
            loss = loss + s.info_weight * info
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        last = {"l1": rec.item(), "adv": adv.item(), "d": d_loss.item(), **({"info": info.item()} if info is not None else {})}
        if plateau.update(step, last["l1"]):
            break
    G.eval()
    record = {"steps": step + 1, "stop": plateau.reason, "final_l1_window_mean": round(plateau.curve[-1], 5),
              "final_losses": {k: round(v, 5) for k, v in last.items()},
              "l1_curve": _subsample(plateau.curve), "l1_curve_every": s.window}
    return G, record


@torch.no_grad()
def generate(G: AutoGANGenerator, images: np.ndarray, batch_size: int = 64, seed: int = 0) -> np.ndarray:
    """Feed ``images`` (n, H, W, 3) uint8 through a trained generator, with a fresh latent ``z`` per
    image drawn from ``seed``; return its outputs as uint8."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(len(images), Z_DIM, generator=gen)
    out = [to_uint8(G(to_tensor(images[i:i + batch_size]), z[i:i + batch_size]))
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else images[:0].copy()
