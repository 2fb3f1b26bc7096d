"""Classifier-free statistics of a shift world against the closed world (domain A): how far each
shift moves the images, measured before any classifier sees them.

The paper explains its open-world results (Sec. 4.2.1, Table 1) by the GANs' training data
("the training data of generation models largely influences the accuracy of fake image
attribution"); the shift worlds of :mod:`gfd.benchmark.worlds.shifts` change one factor at a time,
and these statistics say, from the images alone, how much each one moved:

* ``real``: the RMS distance between the mean residual log spectrum of the world's real images and
  of A's (the spectrum of :mod:`gfd.analysis.families`: grey ``x - median3x3(x)``, mean log |FFT|),
  beside A's own **split-half** distance (two disjoint halves of A's real images, the same number of
  images each), the distance that sampling alone gives.  ``ratio`` = shift / split-half: about 1 means
  no measurable shift.
* ``families``: per family, the distance between its mean spectrum in the world and in A
  (``shift``), A's split-half distance of that family, and the mean distance between that family and
  the *other* families in A (``between``, the separation an attribution method relies on);
  ``shift / between`` above 1 means the family moved further than families lie apart.
* ``colour``: the total-variation distance between joint RGB histograms (8 bins per channel) of the
  world's real images and A's, beside A's split-half value.

Every comparison uses the same number of images on both sides, so a larger distance is a larger
shift, not a smaller sample.  Functions take image arrays (n, H, W, 3) uint8, so they can be tested on
hand-made inputs; :func:`world_stats` reads built folders.  ``python -m gfd.analysis.shift_stats
--size quick`` builds every shift world and writes ``results/shift-worlds.{json,md}``.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from gfd.analysis.families import spectrum_distance
from gfd.analysis.spectra import log_fft_spectrum, residuals
from gfd.layout import REAL, TEST_CLOSED, TEST_SPLIT, list_images

BINS = 8
"""Histogram bins per RGB channel (8 x 8 x 8 joint bins)."""


# --------------------------------------------------------------------------------------------------
# on image arrays
# --------------------------------------------------------------------------------------------------

def mean_log_spectrum(images: np.ndarray) -> np.ndarray:
    """Mean log |FFT| (fftshifted) of the grey residuals ``x - median3x3(x)`` of (n, H, W, 3) uint8
    images: the spectrum of :func:`gfd.analysis.families.mean_spectrum`, from arrays."""
    images = np.asarray(images)
    if images.ndim != 4 or not len(images):
        raise ValueError(f"expected images (n, H, W, 3), got shape {images.shape}")
    grey = torch.from_numpy(images.astype(np.float32).mean(axis=-1))[:, None]
    return log_fft_spectrum(residuals(grey, "median")[:, 0])


def colour_histogram(images: np.ndarray, bins: int = BINS) -> np.ndarray:
    """The joint RGB histogram of (n, H, W, 3) uint8 images, ``bins`` per channel, normalised to sum 1."""
    q = (np.asarray(images, dtype=np.int64) * bins) // 256
    idx = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    h = np.bincount(idx.ravel(), minlength=bins ** 3).astype(np.float64)
    return h / h.sum()


def colour_distance(a: np.ndarray, b: np.ndarray, bins: int = BINS) -> float:
    """Total-variation distance (0: same colours, 1: no colour in common) of two image sets' joint
    RGB histograms."""
    return float(0.5 * np.abs(colour_histogram(a, bins) - colour_histogram(b, bins)).sum())


def halves(images: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``m`` and the next ``m`` images (two disjoint halves of the same size)."""
    if 2 * m > len(images) or m < 1:
        raise ValueError(f"need 2 x {m} images for two halves, got {len(images)}")
    return images[:m], images[m:2 * m]


def set_shift(world: np.ndarray, ref: np.ndarray) -> dict[str, Any]:
    """One image set against the reference set: the spectral distance of their means and the
    reference's split-half distance (``m`` images on each side of both), their ratio, and the same for
    colour.  ``ref`` needs at least twice the ``m`` images used (``m = min(len(world), len(ref) // 2)``)."""
    m = min(len(world), len(ref) // 2)
    r1, r2 = halves(ref, m)
    w = world[:m]
    s_ref1, s_ref2, s_w = mean_log_spectrum(r1), mean_log_spectrum(r2), mean_log_spectrum(w)
    shift, half = spectrum_distance(s_w, s_ref1), spectrum_distance(s_ref2, s_ref1)
    c_shift, c_half = colour_distance(w, r1), colour_distance(r2, r1)
    return {"n": m, "spectral_shift": shift, "spectral_split_half": half,
            "spectral_ratio": shift / half if half > 0 else (0.0 if shift == 0 else float("inf")),
            "colour_shift": c_shift, "colour_split_half": c_half}


def family_shifts(world: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per family (the classes of ``world`` but ``real``): its spectral distance to the same family of
    ``ref`` (``shift``), the family's split-half distance in ``ref``, and its mean distance to the other
    families in ``ref`` (``between``), all with the same number of images ``m`` per set; ``ratio`` =
    shift / between.  Means over families at the end."""
    fams = [f for f in world if f != REAL]
    m = min([len(world[f]) for f in fams] + [len(ref[f]) // 2 for f in fams])
    first = {f: mean_log_spectrum(halves(ref[f], m)[0]) for f in fams}
    second = {f: mean_log_spectrum(halves(ref[f], m)[1]) for f in fams}
    per = {}
    for f in fams:
        shift = spectrum_distance(mean_log_spectrum(world[f][:m]), first[f])
        between = float(np.mean([spectrum_distance(second[g], first[f]) for g in fams if g != f])) if len(fams) > 1 else None
        per[f] = {"shift": shift, "split_half": spectrum_distance(second[f], first[f]), "between": between,
                  "ratio": shift / between if between else None}
    mean = lambda k: float(np.mean([v[k] for v in per.values() if v[k] is not None]))  # noqa: E731
    return {"n": m, "per_family": per, "shift": mean("shift"), "split_half": mean("split_half"),
            "between": mean("between"), "ratio": mean("shift") / mean("between")}


def shift_stats(world: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, Any]:
    """Every statistic of one world's images ``{class: (n, H, W, 3)}`` against the reference's (A)."""
    return {"real": set_shift(world[REAL], ref[REAL]), "families": family_shifts(world, ref)}


# --------------------------------------------------------------------------------------------------
# on built folders
# --------------------------------------------------------------------------------------------------

def read_class(folder: Path, n: int | None = None) -> np.ndarray:
    """The images of a class folder (at most ``n``, spread evenly over its files so that every
    generator instance is represented), as (n, H, W, 3) uint8."""
    from PIL import Image

    paths = list_images(folder)
    if n is not None and len(paths) > n:
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, n).round().astype(int)]
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])


def reference_images(a_root: str | os.PathLike, classes: Sequence[str], split: str = TEST_CLOSED
                     ) -> dict[str, np.ndarray]:
    """Domain A's images per class from a gan128 build (``test_closed``: the closed world's test images,
    the images a method trained on A is tested on)."""
    return {c: read_class(Path(a_root) / split / c) for c in classes}


def world_stats(world_root: str | os.PathLike, ref: dict[str, np.ndarray], split: str | None = None) -> dict[str, Any]:
    """:func:`shift_stats` of a built shift world (its test split) against A's images ``ref``."""
    split = split or TEST_SPLIT
    classes = json.loads((Path(world_root) / "classes.json").read_text())
    world = {c: read_class(Path(world_root) / split / c) for c in classes}
    return shift_stats(world, ref)


def all_stats(size: str = "quick", root: str | os.PathLike | None = None, seed: int = 0, progress: bool = True,
              names: Sequence[str] | None = None, log=print) -> dict[str, Any]:
    """Build (or find) every shift world of ``size`` and the gan128 build they are compared with;
    return their parameters, build times and statistics (and A's own split-half values under
    ``"A"``, and the gan128 open world's B1 and B2 for scale)."""
    from gfd.benchmark.engine import read_manifest
    from gfd.benchmark.sources import world_groups
    from gfd.benchmark.worlds import gan128
    from gfd.benchmark.worlds.shifts import SHIFT_WORLDS, load_shift_world

    a_root = gan128.WORLD.load(size, root=root, seed=seed, progress=progress)
    classes = read_manifest(a_root)["classes"]
    ref = reference_images(a_root, classes)
    out: dict[str, Any] = {"size": size, "seed": seed, "reference": a_root.name, "worlds": {}}
    for name in names or SHIFT_WORLDS:
        t0 = time.perf_counter()
        folder = load_shift_world(name, size, root=root, seed=seed, progress=progress)
        m = read_manifest(folder)
        stats = world_stats(folder, ref)
        out["worlds"][name] = {"folder": folder.name, "params": m["params"], "build": m["build"],
                               "generator_seconds": {k: g.get("seconds") for k, g in m["generators"].items()},
                               "stats": stats}
        log(f"{name}: real spectral ratio {stats['real']['spectral_ratio']:.2f}, families shift/between "
            f"{stats['families']['ratio']:.2f}, colour TV {stats['real']['colour_shift']:.3f} "
            f"(A split-half {stats['real']['colour_split_half']:.3f}); {time.perf_counter() - t0:.0f} s")
    for world in ("B1", "B2"):        # the open world's domains, for scale (images, not accuracies)
        groups = world_groups(a_root, world)
        imgs = {c: _stack([p for paths in g.values() for p in paths]) for c, g in groups.items()}
        out.setdefault("open_world", {})[world] = shift_stats(imgs, ref)
    return out


def _stack(paths: list[Path]) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(paths)])


def format_markdown(stats: dict[str, Any]) -> str:
    """The statistics as the Markdown of ``results/shift-worlds.md``."""
    f = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [f"# Shift worlds: classifier-free statistics ({stats['size']} size, seed {stats['seed']})", "",
             f"Reference: domain A's `test_closed` images of `{stats['reference']}` (gan128 world). "
             "Spectral distances are RMS differences of mean residual log spectra (grey x - median3x3(x), "
             "log|FFT|); split-half: two disjoint halves of A with the same image count; colour: total "
             "variation of 8x8x8 RGB histograms. A post-processing world holds A's own test images processed, "
             "so its distances are paired (no sampling noise): its colour distance lies below A's split-half "
             "value by construction. Produced by `python -m gfd.analysis.shift_stats`; no classifier was run.", "",
             "| world | real: shift | real: A split-half | real: ratio | families: shift | families: A split-half "
             "| families: between (A) | families: shift / between | colour TV | colour TV A split-half | build s (wall) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = [(n, w["stats"], w["build"]["wall_seconds"]) for n, w in stats["worlds"].items()]
    rows += [(f"(open world {n}, for scale)", s, None) for n, s in stats.get("open_world", {}).items()]
    for name, s, wall in rows:
        r, fam = s["real"], s["families"]
        lines.append(f"| {name} | {f(r['spectral_shift'])} | {f(r['spectral_split_half'])} | {r['spectral_ratio']:.2f} "
                     f"| {f(fam['shift'])} | {f(fam['split_half'])} | {f(fam['between'])} | {fam['ratio']:.2f} "
                     f"| {f(r['colour_shift'])} | {f(r['colour_split_half'])} | {'-' if wall is None else wall} |")
    lines += ["", "Per family (shift / between):", "",
              "| world | " + " | ".join(next(iter(stats["worlds"].values()))["stats"]["families"]["per_family"]) + " |",
              "|---|" + "---|" * 4]
    for name, s, _ in rows:
        lines.append(f"| {name} | " + " | ".join(f"{v['ratio']:.2f}" for v in s["families"]["per_family"].values()) + " |")
    lines += ["", "Parameters of each world: `shift-worlds.json` (`worlds.<name>.params`) and "
              "`gfd/benchmark/worlds/shifts.py`."]
    return "\n".join(lines) + "\n"


def write_results(stats: dict[str, Any], out_dir: str | os.PathLike) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    js, md = out / "shift-worlds.json", out / "shift-worlds.md"
    js.write_text(json.dumps(stats, indent=1) + "\n")
    md.write_text(format_markdown(stats))
    return js, md


def main(argv: Sequence[str] | None = None) -> int:
    from gfd.utils import results_dir

    ap = argparse.ArgumentParser(prog="python -m gfd.analysis.shift_stats",
                                 description="build the shift worlds and write their classifier-free statistics")
    ap.add_argument("--size", default="quick", choices=("quick", "default"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--root", default=None, help="parent folder of the caches (default data/)")
    ap.add_argument("--out", default=None, help="where shift-worlds.{json,md} go (default results/)")
    ap.add_argument("--worlds", nargs="+", default=None, help="only these worlds")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    stats = all_stats(args.size, args.root, args.seed, progress=not args.no_progress, names=args.worlds)
    for path in write_results(stats, args.out or results_dir()):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
