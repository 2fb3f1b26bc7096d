"""Which generator factors shape the fingerprint?  The Fig. 7 question on the benchmark's variants.

The paper feeds images of StyleGAN2's configurations A-F to the trained fingerprint generator and
finds (Sec. 4.5) that replacing instance normalisation by demodulation (A -> B) and the feed-forward
network by skip and residual ones (D -> E) change the fingerprint, while doubling the feature maps
(E -> F) "has little influence": layer construction matters more than width.

The benchmark's ``variants/`` folder holds the same kind of steps on the ``progan`` family (see
:mod:`gfd.benchmark.generators`): A (AdaIN), B (demodulation), D (B + skip), E (B + residual),
F (E at double width), all fed the same real images.  Here, per configuration, the fingerprints
``f = G(x)`` of a trained GFD-Net, then three measures per pair of configurations:

* ``fingerprint``: RMS difference of the two mean fingerprints (what is common to each config);
* ``glcm``: Euclidean distance of the two mean GLCM correlation vectors (:mod:`gfd.analysis.glcm`);
* ``attribution``: total-variation distance of the two distributions of GFD-Net's predicted class.

:func:`factor_steps` names the single-factor steps and :func:`compare_steps` says, with the numbers,
whether the width step is smaller than every construction step.  :func:`steps_over_seeds` gathers
that answer over GFD-Nets trained with different seeds, step by step and measure by measure, with
the per-seed margin ``width step - smallest construction step`` (negative where the paper's reading
holds) that makes the seeds' verdicts comparable.
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from gfd.analysis.fingerprints import extract_fingerprints
from gfd.analysis.glcm import glcm_features

STEPS: tuple[tuple[str, str, str, str], ...] = (
    ("A", "B", "normalisation: AdaIN -> demodulation", "construction"),
    ("B", "D", "feed-forward -> skip", "construction"),
    ("B", "E", "feed-forward -> residual", "construction"),
    ("E", "F", "width x2", "width"),
)
"""(from, to, what changes, kind) for the single-factor steps between the configurations."""


def config_letter(name: str) -> str | None:
    """``"cfgB_demod"`` -> ``"B"``; ``None`` for a folder that is not a configuration."""
    return name[3] if name.startswith("cfg") and len(name) > 3 else None


def load_images(folder: str | os.PathLike, crop: int, n: int | None = None) -> torch.Tensor:
    """The first ``n`` images of a folder, centre-cropped to ``crop`` and scaled to [-1, 1] (the test
    transform of the ``mini`` preset): (N, 3, crop, crop)."""
    from gfd.data import load_rgb, make_transform
    from gfd.layout import list_images

    paths = list_images(Path(folder))[:n]
    if not paths:
        raise FileNotFoundError(f"{folder} holds no image")
    transform = make_transform("mini", train=False, crop=crop)
    return torch.stack([transform(load_rgb(p)) for p in paths])


@dataclass
class ConfigFingerprints:
    """Per configuration: fingerprints (N, 3, H, W), GLCM vectors (N, 16) and predicted classes (N,)."""

    fingerprints: dict[str, torch.Tensor]
    glcm: dict[str, np.ndarray]
    predicted: dict[str, np.ndarray]


def config_fingerprints(generator, root: str | os.PathLike, crop: int, n: int | None = None,
                        folder: str = "variants") -> ConfigFingerprints:
    """Fingerprints, GLCM vectors and GFD-Net's predictions for every configuration in ``root/folder``."""
    names = sorted(p.name for p in (Path(root) / folder).iterdir() if config_letter(p.name))
    if not names:
        raise FileNotFoundError(f"no configuration folder (cfgA_..., cfgB_...) in {Path(root) / folder}")
    fps, glcms, preds = {}, {}, {}
    for name in names:
        x = load_images(Path(root) / folder / name, crop, n)
        f, _ = extract_fingerprints(generator, x, progress=False)
        with torch.no_grad():
            was = generator.training
            generator.eval()
            preds[name] = generator.classify(x).argmax(1).numpy()
            generator.train(was)
        fps[name], glcms[name] = f, glcm_features(f)
    return ConfigFingerprints(fps, glcms, preds)


def fingerprint_distance(fa: torch.Tensor, fb: torch.Tensor) -> float:
    """RMS difference of the mean fingerprints of two sets of fingerprints."""
    return float((fa.double().mean(0) - fb.double().mean(0)).pow(2).mean().sqrt())


def glcm_distance(ga: np.ndarray, gb: np.ndarray) -> float:
    """Euclidean distance of the mean GLCM correlation vectors of two sets of fingerprints."""
    return float(np.linalg.norm(np.asarray(ga, np.float64).mean(0) - np.asarray(gb, np.float64).mean(0)))


def attribution_distance(pa: np.ndarray, pb: np.ndarray, num_classes: int) -> float:
    """Total-variation distance of two distributions of predicted classes (0: same, 1: disjoint)."""
    ha = np.bincount(pa, minlength=num_classes) / len(pa)
    hb = np.bincount(pb, minlength=num_classes) / len(pb)
    return float(0.5 * np.abs(ha - hb).sum())


def distance_matrices(cf: ConfigFingerprints, num_classes: int) -> dict[str, np.ndarray]:
    """The three (K, K) distance matrices over the configurations, in ``sorted(cf.fingerprints)`` order."""
    names = sorted(cf.fingerprints)
    out = {k: np.zeros((len(names), len(names))) for k in ("fingerprint", "glcm", "attribution")}
    for (i, a), (j, b) in itertools.combinations(enumerate(names), 2):
        d = {"fingerprint": fingerprint_distance(cf.fingerprints[a], cf.fingerprints[b]),
             "glcm": glcm_distance(cf.glcm[a], cf.glcm[b]),
             "attribution": attribution_distance(cf.predicted[a], cf.predicted[b], num_classes)}
        for k, v in d.items():
            out[k][i, j] = out[k][j, i] = v
    return out


def factor_steps(names: list[str]) -> list[tuple[str, str, str, str]]:
    """The :data:`STEPS` whose two configurations are both among ``names``, as folder names."""
    by_letter = {config_letter(n): n for n in names}
    return [(by_letter[a], by_letter[b], what, kind) for a, b, what, kind in STEPS
            if a in by_letter and b in by_letter]


def compare_steps(matrices: dict[str, np.ndarray], names: list[str]) -> dict[str, dict]:
    """Per measure, the distance of every single-factor step and whether the width step is smaller
    than every construction step (the paper's "layer construction matters more than width")."""
    index = {n: i for i, n in enumerate(names)}
    out = {}
    for measure, m in matrices.items():
        steps = [(f"{a} -> {b} ({what})", kind, float(m[index[a], index[b]])) for a, b, what, kind in factor_steps(names)]
        width = [d for _, kind, d in steps if kind == "width"]
        construction = [d for _, kind, d in steps if kind == "construction"]
        holds = bool(width and construction and max(width) < min(construction))
        out[measure] = {"steps": steps, "width_smallest": holds}
    return out


def seed_verdict(generator, root: str | os.PathLike, crop: int, num_classes: int, n: int | None = None) -> dict[str, dict]:
    """One trained GFD-Net's answer to the Fig. 7 question: :func:`compare_steps` on the distances of
    :func:`config_fingerprints` (the unit that :func:`steps_over_seeds` gathers over seeds)."""
    cf = config_fingerprints(generator, root, crop, n)
    return compare_steps(distance_matrices(cf, num_classes), sorted(cf.fingerprints))


def steps_over_seeds(verdicts: Mapping[int, dict[str, dict]]) -> dict[str, dict]:
    """Gather :func:`compare_steps` results of several seeds (``{seed: verdict}``), per measure:

    * ``seeds``: the seeds, sorted; ``steps``: ``[(step, kind, values)]``, one value per seed in that order;
    * ``margin``: per seed, the width step's distance minus the smallest construction step's
      (below 0 exactly where that seed's ``width_smallest`` is True);
    * ``width_smallest``: per seed, the verdict; ``holds``: on how many seeds it is True.

    Every seed must have measured the same steps (same configurations): else a ``ValueError``.
    """
    if not verdicts:
        raise ValueError("steps_over_seeds needs the verdict of at least one seed")
    seeds = sorted(verdicts)
    out: dict[str, dict] = {}
    for measure in verdicts[seeds[0]]:
        per_seed = [verdicts[s][measure]["steps"] for s in seeds]
        labels = [(step, kind) for step, kind, _ in per_seed[0]]
        for s, steps in zip(seeds, per_seed):
            if [(step, kind) for step, kind, _ in steps] != labels:
                raise ValueError(f"seed {s} measured other steps for {measure!r} than seed {seeds[0]}")
        values = np.array([[d for _, _, d in steps] for steps in per_seed])       # (seeds, steps)
        width = np.array([kind == "width" for _, kind in labels])
        if width.any() and (~width).any():
            margin = values[:, width].max(1) - values[:, ~width].min(1)
        else:
            margin = np.full(len(seeds), np.nan)
        verdict = [bool(verdicts[s][measure]["width_smallest"]) for s in seeds]
        out[measure] = {"seeds": seeds,
                        "steps": [(step, kind, values[:, i].tolist()) for i, (step, kind) in enumerate(labels)],
                        "margin": margin.tolist(), "width_smallest": verdict, "holds": sum(verdict)}
    return out
