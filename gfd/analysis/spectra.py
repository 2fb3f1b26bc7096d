"""Noise residuals and spectra: the signal analysis shared by the figures and the baselines.

A GAN's traces live in the high frequencies, so every look at them starts by removing the image
content: a **noise residual** ``r = x - denoise(x)`` (the PRNU idea of camera forensics, Marra et
al. 2019, ref. [25] of the paper), then a **spectrum** of it.

* :func:`residuals` -- three denoisers: ``wavelet`` (scikit-image's BayesShrink wavelet denoiser,
  close to the classic PRNU pipeline; the PRNU baseline's default), ``gaussian`` (image minus its
  Gaussian blur; cheap) and ``median`` (image minus its 3x3 median; the figures of notebook 01).
* :func:`log_fft_spectrum` -- mean over images of log |FFT| of residuals, zero frequency centred:
  up-sampling by 2 shows as peaks at half and quarter of the sampling frequency.
* :func:`dct2` / :func:`log_dct` -- the orthonormal 2-D DCT-II and log |DCT| that Frank et al. 2020
  (ref. [10]) classify (the DCT baseline).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torchvision.transforms.v2 import functional as TF

DENOISERS = ("wavelet", "gaussian", "median")


def _wavelet_denoise(x: torch.Tensor, wavelet: str, levels: int | None) -> torch.Tensor:
    try:
        from skimage.restoration import denoise_wavelet
        import pywt  # noqa: F401  (denoise_wavelet needs PyWavelets)
    except ImportError as err:
        raise ImportError("the 'wavelet' denoiser needs PyWavelets: pip install PyWavelets, "
                          "or use denoiser='gaussian'") from err
    imgs = x.detach().cpu().permute(0, 2, 3, 1).double().numpy()          # (B, H, W, C)
    out = np.stack([denoise_wavelet(im, wavelet=wavelet, wavelet_levels=levels, mode="soft",
                                    method="BayesShrink", rescale_sigma=True, channel_axis=-1)
                    for im in imgs])
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(x.device, x.dtype)  # (B, C, H, W)


def residuals(x: torch.Tensor, denoiser: str = "wavelet", *, wavelet: str = "db4",
              wavelet_levels: int | None = None, sigma: float = 1.0, median_size: int = 3) -> torch.Tensor:
    """Noise residuals ``r = x - denoise(x)`` of a batch (B, C, H, W), same shape.

    ``wavelet`` / ``wavelet_levels`` configure the wavelet denoiser, ``sigma`` the Gaussian blur
    (pixels), ``median_size`` the median window (per channel).
    """
    if x.ndim != 4:
        raise ValueError(f"expected a batch (B, C, H, W), got shape {tuple(x.shape)}")
    if denoiser == "wavelet":
        den = _wavelet_denoise(x, wavelet, wavelet_levels)
    elif denoiser == "gaussian":
        k = 2 * int(np.ceil(3 * sigma)) + 1
        den = TF.gaussian_blur(x, kernel_size=[k, k], sigma=[sigma] * 2)
    elif denoiser == "median":
        arr = x.detach().cpu().numpy()
        den = torch.from_numpy(ndimage.median_filter(arr, size=(1, 1, median_size, median_size))).to(x)
    else:
        raise ValueError(f"unknown denoiser {denoiser!r}; choose one of {DENOISERS}")
    return x - den


def log_fft_spectrum(r: torch.Tensor | np.ndarray, eps: float = 1e-3, remove_mean: bool = True) -> np.ndarray:
    """Mean over images of log |FFT| of (N, H, W) maps (residuals, grey fingerprints), each made
    zero-mean first unless ``remove_mean=False``; the zero frequency in the centre (fftshift).
    The log is taken per image, then averaged.  Returns (H, W) float32."""
    r = np.asarray(r.detach().cpu() if hasattr(r, "detach") else r, dtype=np.float64)
    if remove_mean:
        r = r - r.mean(axis=(-2, -1), keepdims=True)
    spec = np.abs(np.fft.fft2(r))
    return np.fft.fftshift(np.log(spec + eps).mean(axis=0), axes=(-2, -1)).astype(np.float32)


def dct_matrix(n: int, dtype: torch.dtype = torch.float32, device: Any = None) -> torch.Tensor:
    """The orthonormal DCT-II matrix D (n, n): ``dct(v) = D @ v`` (same as scipy's norm="ortho")."""
    k = torch.arange(n, dtype=torch.float64).view(-1, 1)
    i = torch.arange(n, dtype=torch.float64).view(1, -1)
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.to(dtype=dtype, device=device)


def dct2(x: torch.Tensor) -> torch.Tensor:
    """2-D DCT-II over the last two axes (rows and columns) of ``x`` (..., H, W)."""
    dh = dct_matrix(x.shape[-2], x.dtype, x.device)
    dw = dct_matrix(x.shape[-1], x.dtype, x.device)
    return dh @ x @ dw.T


def log_dct(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``log(|DCT2(x)| + eps)`` per channel: the spectrum Frank et al. classify (their Sec. 4-5)."""
    return torch.log(dct2(x).abs() + eps)
