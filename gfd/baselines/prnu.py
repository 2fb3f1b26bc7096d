"""PRNU-style attribution (Marra et al. 2019, "Do GANs leave artificial fingerprints?"; ref. [25]).

The PRNU recipe of camera forensics applied to GANs, baseline 1) of Sec. 4.1:

1. noise residual  ``r = x - f(x)``, with ``f`` a denoiser (Marra et al., Sec. 2);
2. fingerprint of source k = the average residual of its training images, ``F_k = mean_i r_i``;
3. attribution by normalised correlation, ``k* = argmax_k rho(r, F_k)`` with
   ``rho(a, b) = <a - mean a, b - mean b> / (||a - mean a|| ||b - mean b||)``.

Nothing is learned beyond the averages.  The denoiser:

The denoisers are those of :mod:`gfd.analysis.spectra`, which the figures use too:

``wavelet``   (default) scikit-image's ``denoise_wavelet`` (BayesShrink soft thresholding of an
              8-tap Daubechies ``db4`` decomposition, noise level estimated per image), close to
              the wavelet denoiser of the classic PRNU pipeline.  ~1 ms per 48 px image.
``gaussian``  a cheaper option: residual = image minus its Gaussian blur (torchvision), batched.

Fingerprints are position-specific, so they are averaged over the *centre-cropped* training images
(:func:`gfd.baselines.common.deterministic_loader`), the same view the test splits get.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Iterable

import torch
from torch import nn

from gfd.analysis import spectra
from gfd.baselines.common import deterministic_loader, num_classes, resolve_options
from gfd.layout import TRAIN
from gfd.utils import pbar

DENOISERS = ("wavelet", "gaussian")

__all__ = ["PRNUOptions", "PRNU", "residuals", "fit_fingerprints", "correlation", "fit"]


@dataclass(frozen=True)
class PRNUOptions:
    FROM_CONFIG: ClassVar[tuple[str, ...]] = ()   # nothing is learned: no budget taken from a Config
    denoiser: str = "wavelet"        # "wavelet" (skimage) | "gaussian" (cheap, torch)
    wavelet: str = "db4"             # wavelet family for denoise_wavelet
    wavelet_levels: int | None = None  # None = scikit-image's default for the image size
    gaussian_sigma: float = 1.0      # blur std (pixels) of the "gaussian" denoiser

    def __post_init__(self):
        if self.denoiser not in DENOISERS:
            raise ValueError(f"unknown PRNU denoiser {self.denoiser!r}; choose one of {DENOISERS}")


def residuals(x: torch.Tensor, options: PRNUOptions | None = None) -> torch.Tensor:
    """Noise residuals ``r = x - f(x)`` of a batch (B, C, H, W) (Marra et al., Sec. 2), with the
    denoiser of ``options`` (:func:`gfd.analysis.spectra.residuals`)."""
    opts = options or PRNUOptions()
    return spectra.residuals(x, opts.denoiser, wavelet=opts.wavelet, wavelet_levels=opts.wavelet_levels,
                             sigma=opts.gaussian_sigma)


def correlation(r: torch.Tensor, fingerprints: torch.Tensor) -> torch.Tensor:
    """Normalised cross-correlation rho(r_i, F_k) of every residual with every fingerprint: (B, K)."""
    a = r.flatten(1)
    b = fingerprints.flatten(1).to(a)
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)
    b = b / b.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return a @ b.T


class PRNU(nn.Module):
    """Per-source fingerprints ``F_k`` (a buffer, (K, C, H, W)); ``forward(x)`` = correlations (B, K)."""

    scores_are_logits = False  # scores are correlations in [-1, 1], argmax = attribution

    def __init__(self, fingerprints: torch.Tensor, options: PRNUOptions | None = None):
        super().__init__()
        self.options = options or PRNUOptions()
        self.register_buffer("fingerprints", fingerprints.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1:] != self.fingerprints.shape[1:]:
            raise ValueError(f"images of shape {tuple(x.shape[1:])} but fingerprints of shape "
                             f"{tuple(self.fingerprints.shape[1:])}: use the crop the PRNU was fitted on")
        return correlation(residuals(x, self.options), self.fingerprints)


@torch.no_grad()
def fit_fingerprints(loader: Iterable, num_classes: int, options: PRNUOptions | None = None,
                     progress: bool = False) -> torch.Tensor:
    """``F_k`` = mean residual of the images of class k in ``loader``; returns (K, C, H, W)."""
    opts = options or PRNUOptions()
    sums, counts = None, torch.zeros(num_classes, dtype=torch.float64)
    for x, y in pbar(loader, enabled=progress, desc="PRNU fingerprints", leave=False):
        r = residuals(x, opts).double()
        if sums is None:
            sums = torch.zeros(num_classes, *r.shape[1:], dtype=torch.float64)
        sums.index_add_(0, y.long(), r)
        counts += torch.bincount(y.long(), minlength=num_classes).double()
    if sums is None:
        raise ValueError("the training loader yielded no batch: is the train split empty?")
    if (counts == 0).any():
        missing = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"no training image for class index(es) {missing}: cannot build their fingerprints")
    return (sums / counts.view(-1, *[1] * (sums.ndim - 1))).float()


def fit(bundle: Any, options: Any = None, seed: int = 0, progress: bool = True, **changes: Any) -> PRNU:
    """Fingerprints from the centre-cropped training split of ``bundle`` (no other split is read)."""
    opts = resolve_options(PRNUOptions, options, **changes)   # deterministic: ``seed`` is not used
    loader = deterministic_loader(bundle, TRAIN)
    return PRNU(fit_fingerprints(loader, num_classes(bundle), opts, progress), opts)
