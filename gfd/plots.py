"""Figures of the course (matplotlib; every function returns its Figure).

Nothing in the core imports this module.
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image
from scipy import ndimage

from gfd.data import REAL, SPLITS, class_order, list_images, load_rgb, split_sources


def _class_folders(root: Path, split: str) -> list[tuple[str, Path]]:
    """(class, folder) pairs of ``root/split`` in the dataset's class order (``real`` first)."""
    folder = root / split
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist; splits/folders present in {root}: "
                                f"{sorted(p.name for p in root.iterdir() if p.is_dir())}")
    sources = list(split_sources(root, split))
    if split in SPLITS:
        names = [c for c in class_order(root, list(split_sources(root, "train"))) if c in sources]
    else:  # e.g. the benchmark's variants/ folder: real first, then by name
        names = ([REAL] if REAL in sources else []) + sorted(s for s in sources if s != REAL)
    return [(c, folder / c) for c in names]


def _load(paths: list[Path]) -> np.ndarray:
    return np.stack([np.asarray(load_rgb(p)) for p in paths])


def plot_sample_grid(root: str | os.PathLike, split: str = "test_closed", n_per_class: int = 8,
                     title: str | None = None) -> plt.Figure:
    """One row of ``n_per_class`` images per class of ``root/split`` (the first files, by name)."""
    rows = [(c, list_images(f)[:n_per_class]) for c, f in _class_folders(Path(root), split)]
    fig, axes = plt.subplots(len(rows), n_per_class, figsize=(1.2 * n_per_class, 1.25 * len(rows)),
                             squeeze=False)
    for (name, paths), row in zip(rows, axes):
        for j, ax in enumerate(row):
            if j < len(paths):
                ax.imshow(load_rgb(paths[j]))
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
        row[0].set_ylabel(name, rotation=0, ha="right", va="center")
    fig.suptitle(title or f"{Path(root).name}: {split}")
    fig.tight_layout()
    return fig


def highpass_residual(images: np.ndarray, size: int = 3) -> np.ndarray:
    """Grey-level residual ``x - median3x3(x)`` of (n, H, W, 3) uint8 images: the high frequencies
    where the up-sampling traces live (the denoising-residual idea behind PRNU)."""
    grey = images.astype(np.float32).mean(axis=-1)
    return grey - ndimage.median_filter(grey, size=(1, size, size))


def mean_log_spectrum(residuals: np.ndarray) -> np.ndarray:
    """Mean over images of log |FFT| of (n, H, W) residuals, with the zero frequency in the centre."""
    spec = np.abs(np.fft.fft2(residuals - residuals.mean(axis=(1, 2), keepdims=True)))
    return np.fft.fftshift(np.log(spec + 1e-3).mean(axis=0))


def plot_residual_spectra(root: str | os.PathLike, split: str = "test_closed", n_per_class: int = 200,
                          title: str | None = None) -> plt.Figure:
    """Each class's mean spectrum of the high-pass residual, log |FFT| (fftshifted).

    Up-sampling by 2 leaves peaks at half and quarter of the sampling frequency (the periodic
    "checkerboard" traces); the real class has a flat, peak-free spectrum.
    """
    folders = _class_folders(Path(root), split)
    fig, axes = plt.subplots(1, len(folders), figsize=(2.4 * len(folders), 2.8), squeeze=False)
    for (name, folder), ax in zip(folders, axes[0]):
        paths = list_images(folder)[:n_per_class]
        if not paths:
            raise FileNotFoundError(f"{folder} holds no image")
        spec = mean_log_spectrum(highpass_residual(_load(paths)))
        ax.imshow(spec, cmap="magma", vmin=np.percentile(spec, 1), vmax=np.percentile(spec, 99.5))
        ax.set_title(f"{name}\n(n={len(paths)})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or f"{Path(root).name}: {split}, mean log|FFT| of x - median3x3(x)")
    fig.tight_layout()
    return fig
