"""How different are the instances of a generator family?  Spectra within vs between families.

One mean residual spectrum per generator instance of a built benchmark (the residual and spectrum of
:mod:`gfd.analysis.spectra`: grey ``x - median3x3(x)``, mean log |FFT|), then per family the mean
pairwise distance (RMS difference of the log spectra) between its own instances ("within") and
between its instances and those of the other families ("between").  ``within`` much smaller than
``between`` means one stable fingerprint per family; comparable values mean the instances of a
family differ as much as families do (a measure of how hard the benchmark's open world is).
"""
from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import torch

from gfd.analysis.spectra import log_fft_spectrum, residuals
from gfd.benchmark.sources import world_groups
from gfd.layout import REAL


def _grey(paths: list[Path]) -> torch.Tensor:
    from PIL import Image

    arr = np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.float32).mean(axis=-1) for p in paths])
    return torch.from_numpy(arr)[:, None]                              # (n, 1, H, W)


def mean_spectrum(paths: list[Path]) -> np.ndarray:
    """Mean log |FFT| (fftshifted) of the grey residuals ``x - median3x3(x)`` of some images: (H, W)."""
    if not paths:
        raise FileNotFoundError("no image to take a spectrum of")
    return log_fft_spectrum(residuals(_grey(paths), "median")[:, 0])


def instance_spectra(root: str | os.PathLike, world: str, n_per_instance: int = 100
                     ) -> dict[str, dict[str, np.ndarray]]:
    """{class: {prefix: mean spectrum}} of every generator instance (and the real images) of a world,
    from the first ``n_per_instance`` images of each."""
    return {c: {p: mean_spectrum(paths[:n_per_instance]) for p, paths in groups.items()}
            for c, groups in world_groups(root, world).items()}


def spectrum_distance(a: np.ndarray, b: np.ndarray) -> float:
    """RMS difference of two log spectra."""
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def spectral_distances(spectra: dict[str, dict[str, np.ndarray]], exclude: tuple[str, ...] = (REAL,)) -> dict:
    """Per family, the mean pairwise distance of its instances' spectra (``within``) and the mean
    distance from its instances to those of the other families (``between``), and ``ratio`` =
    within / between; plus their means over families.  ``spectra``: {family: {instance: (H, W)}};
    classes in ``exclude`` (the real images: one source, no instances) are left out."""
    fams = {f: list(v.values()) for f, v in spectra.items() if f not in exclude}
    per = {}
    for f, specs in fams.items():
        within = [spectrum_distance(a, b) for a, b in itertools.combinations(specs, 2)]
        between = [spectrum_distance(a, b) for g, other in fams.items() if g != f for a in specs for b in other]
        w = float(np.mean(within)) if within else None
        b = float(np.mean(between)) if between else None
        per[f] = {"instances": len(specs), "within": w, "between": b,
                  "ratio": (w / b) if w is not None and b else None}
    ws = [v["within"] for v in per.values() if v["within"] is not None]
    bs = [v["between"] for v in per.values() if v["between"] is not None]
    w, b = (float(np.mean(ws)) if ws else None), (float(np.mean(bs)) if bs else None)
    return {"per_family": per, "within": w, "between": b, "ratio": (w / b) if w is not None and b else None}


def world_spectral_distances(root: str | os.PathLike, world: str, n_per_instance: int = 100) -> dict:
    """:func:`spectral_distances` of one world of a built benchmark."""
    return spectral_distances(instance_spectra(root, world, n_per_instance))


def format_distances(d: dict, world: str = "") -> str:
    f = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [f"spectral distances{' ' + world if world else ''} (RMS of log|FFT| differences): "
             f"within {f(d['within'])}, between {f(d['between'])}, ratio {f(d['ratio'])}"]
    lines += [f"  {name:>10}: {v['instances']} instances, within {f(v['within'])}, between {f(v['between'])}, "
              f"ratio {f(v['ratio'])}" for name, v in d["per_family"].items()]
    return "\n".join(lines)
