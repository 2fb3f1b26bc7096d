"""Figures of the course (matplotlib only; every function returns its Figure).

Drawing only: the signal analysis it shows comes from :mod:`gfd.analysis.spectra`, the folders it
browses from :mod:`gfd.layout`.  Nothing in the core imports this module.
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from gfd.analysis.families import instance_spectra, spectral_distances
from gfd.analysis.spectra import log_fft_spectrum, residuals
from gfd.benchmark.engine import read_manifest
from gfd.benchmark.sources import world_groups
from gfd.data import load_rgb
from gfd.detection_layout import FAKE, TEST_DIR
from gfd.layout import CLOSED, OPEN, REAL, TEST_CLOSED, class_folders, list_images


# Figures are drawn for a screen: at most MAX_WIDTH_PX pixels wide as stored in a notebook (the
# inline backend draws at the figure's own dpi), and image grids at SAMPLE_DPI, about one screen
# pixel per image pixel, so that a notebook of sample grids stays small.
MAX_WIDTH_PX = 1100
SAMPLE_DPI = 72


def screen_dpi(width_in: float) -> float:
    """The dpi for a figure ``width_in`` inches wide: matplotlib's ``figure.dpi`` (100 by default),
    lowered where that would make the figure more than :data:`MAX_WIDTH_PX` pixels wide."""
    return min(plt.rcParams["figure.dpi"], int(MAX_WIDTH_PX // width_in))


def _load(paths: list[Path]) -> np.ndarray:
    return np.stack([np.asarray(load_rgb(p)) for p in paths])


def _image_grid(rows: list[tuple[str, list[Path]]], n_cols: int, figsize: tuple[float, float],
                fontsize: float | None = None, dpi: float | None = None) -> plt.Figure:
    """One labelled row of up to ``n_cols`` image files per ``(label, paths)``; no ticks, no frames."""
    fig, axes = plt.subplots(len(rows), n_cols, figsize=figsize, squeeze=False, dpi=dpi)
    for (label, paths), row in zip(rows, axes):
        for j, ax in enumerate(row):
            if j < len(paths):
                ax.imshow(load_rgb(paths[j]))
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
        row[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=fontsize)
    return fig


def plot_sample_grid(root: str | os.PathLike, split: str = TEST_CLOSED, n_per_class: int = 8,
                     title: str | None = None) -> plt.Figure:
    """One row of ``n_per_class`` images per class of ``root/split`` (the first files, by name)."""
    rows = [(c, list_images(f)[:n_per_class]) for c, f in class_folders(root, split)]
    fig = _image_grid(rows, n_per_class, figsize=(1.2 * n_per_class, 1.25 * len(rows)))
    fig.suptitle(title or f"{Path(root).name}: {split}")
    fig.tight_layout()
    return fig


def plot_residual_spectra(root: str | os.PathLike, split: str = TEST_CLOSED, n_per_class: int = 200,
                          title: str | None = None) -> plt.Figure:
    """Each class's mean spectrum of the grey-level residual ``x - median3x3(x)``, log |FFT| (fftshifted).

    Up-sampling by 2 leaves peaks at half and quarter of the sampling frequency (the periodic
    "checkerboard" traces); the real class has a flat, peak-free spectrum.
    """
    folders = class_folders(root, split)
    fig, axes = plt.subplots(1, len(folders), figsize=(2.4 * len(folders), 2.8), squeeze=False,
                             dpi=screen_dpi(2.4 * len(folders)))
    for (name, folder), ax in zip(folders, axes[0]):
        paths = list_images(folder)[:n_per_class]
        if not paths:
            raise FileNotFoundError(f"{folder} holds no image")
        grey = torch.from_numpy(_load(paths).astype(np.float32).mean(axis=-1))[:, None]   # (n, 1, H, W)
        spec = log_fft_spectrum(residuals(grey, "median")[:, 0])
        ax.imshow(spec, cmap="magma", vmin=np.percentile(spec, 1), vmax=np.percentile(spec, 99.5))
        ax.set_title(f"{name}\n(n={len(paths)})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or f"{Path(root).name}: {split}, mean log|FFT| of x - median3x3(x)")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# networks, training and results
# --------------------------------------------------------------------------------------------------

def show_image(ax, img, title: str | None = None, signed: bool = False) -> None:
    """Show a (3, H, W) tensor/array in [-1, 1] on ``ax``, without ticks; ``signed`` rescales a
    fingerprint symmetrically (0 is mid-grey).  Works on any axes, pyplot's or a bare Figure's."""
    arr = np.asarray(img.detach().float().cpu() if hasattr(img, "detach") else img, dtype=np.float32)
    arr = arr.transpose(1, 2, 0)
    if signed:
        m = max(float(np.abs(arr).max()), 1e-8)
        arr = arr / m * 0.5 + 0.5
    else:
        arr = arr * 0.5 + 0.5
    ax.imshow(np.clip(arr, 0, 1), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def plot_mean_residuals(fingerprints, classes: list[str], title: str | None = None) -> plt.Figure:
    """Per-class mean noise residuals (Marra et al. 2019), each rescaled to its own range."""
    fig, axes = plt.subplots(1, len(classes), figsize=(2.2 * len(classes), 2.5), squeeze=False)
    for ax, fp, name in zip(axes[0], fingerprints, classes):
        show_image(ax, fp, name, signed=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _text_colour(rgba) -> str:
    """Black or white, whichever contrasts more with a cell of colour ``rgba``: black above the
    relative luminance (WCAG 2) of 0.179 where both contrast ratios are equal, white below."""
    rgb = np.asarray(rgba[:3], dtype=float)
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    luminance = float(linear @ np.array([0.2126, 0.7152, 0.0722]))
    return "black" if (luminance + 0.05) / 0.05 >= 1.05 / (luminance + 0.05) else "white"


def plot_matrix(mat, row_labels: list[str], col_labels: list[str], xlabel: str = "", ylabel: str = "",
                title: str | None = None, fmt: str = "{:.0f}", cmap: str | None = None,
                outline_diagonal: bool = False) -> plt.Figure:
    """A labelled heat map with the value written in every cell (confusion, correlation).

    Non-negative data (counts, accuracies, distances) use ``Blues`` from their minimum to their
    maximum.  Data with negative values (correlations) use the diverging ``RdBu_r`` centred on 0:
    the hue is the sign, the depth the size, and neither extreme is white.  Every value is written
    in black or white by the luminance of its own cell, so no value is white on white.
    ``outline_diagonal`` frames the diagonal cells (the ones to compare in a square matrix).
    """
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    mat = np.asarray(mat, dtype=float)
    finite = mat[np.isfinite(mat)]
    signed = bool(finite.size) and finite.min() < 0
    top = float(np.abs(finite).max()) if finite.size else 1.0
    if signed:
        norm = Normalize(-top, top)
    else:
        low = float(finite.min()) if finite.size else 0.0
        norm = Normalize(low, max(top, low + 1e-12))
    colours = plt.get_cmap(cmap or ("RdBu_r" if signed else "Blues"))
    fig, ax = plt.subplots(figsize=(0.9 * len(col_labels) + 2, 0.7 * len(row_labels) + 1.5))
    ax.imshow(mat, cmap=colours, norm=norm)
    ax.set_xticks(range(len(col_labels)), col_labels, rotation=30, ha="right")
    ax.set_yticks(range(len(row_labels)), row_labels)
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            colour = _text_colour(colours(norm(mat[i, j]))) if np.isfinite(mat[i, j]) else "black"
            ax.text(j, i, fmt.format(mat[i, j]), ha="center", va="center", fontsize=8, color=colour)
    if outline_diagonal:
        for i in range(min(mat.shape)):
            ax.add_patch(Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", lw=2))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_confusion(result: dict, title: str | None = None) -> plt.Figure:
    """The confusion matrix of a :func:`gfd.evaluate.evaluate_predictions` result (rows: true class)."""
    classes = list(result["classes"])
    return plot_matrix(result["confusion"], classes, classes, xlabel="predicted", ylabel="true",
                       title=title or f"accuracy {result['acc']:.1%}")


def plot_fingerprints(x, f, x_real, labels: list[str] | None = None, title: str | None = None) -> plt.Figure:
    """Rows: input image x, its fingerprint f, the real image x_real, and x_fp = x_real + f (Fig. 2)."""
    n = len(x)
    rows = [("input x", x, False), ("fingerprint f", f, True), ("real image", x_real, False),
            ("x_real + f", (x_real + f).clamp(-1, 1), False)]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.8 * n, 1.9 * len(rows)), squeeze=False)
    for r, (name, imgs, signed) in enumerate(rows):
        for c in range(n):
            show_image(axes[r][c], imgs[c], (labels[c] if labels and r == 0 else None), signed=signed)
        axes[r][0].set_ylabel(name, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_history(history: dict, keys: tuple[str, ...] = ("L_z", "L_adv_G", "L_cls_G", "L_percept", "L_adv_D",
                                                        "L_cls_C"), smooth: int = 10) -> plt.Figure:
    """Loss curves (moving average over ``smooth`` steps) and the validation accuracy of G_enc + H."""
    keys = [k for k in keys if history.get(k) and not np.all(np.isnan(history[k]))]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for k in keys:
        v = np.asarray(history[k], dtype=float)
        if smooth > 1 and len(v) >= smooth:
            v = np.convolve(v, np.ones(smooth) / smooth, mode="valid")
        axes[0].plot(np.arange(len(v)) + 1, v, label=k)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("iteration")
    axes[0].set_title("losses (moving average)")
    axes[0].legend(fontsize=8)
    axes[1].plot(history.get("eval_step", []), history.get("val_acc", []), "o-")
    axes[1].set_ylim(0, 1.02)
    axes[1].set_xlabel("iteration")
    axes[1].set_title("closed-world validation accuracy (G_enc + H)")
    fig.tight_layout()
    return fig


def plot_snapshots(snapshots: dict, max_steps: int = 6, title: str | None = None) -> plt.Figure:
    """Fingerprints of the same images at several moments of training (rows: images)."""
    steps = snapshots["step"]
    pick = np.unique(np.linspace(0, len(steps) - 1, min(max_steps, len(steps))).round().astype(int))
    n_img = snapshots["fingerprint"][0].shape[0]
    fig, axes = plt.subplots(n_img, len(pick), figsize=(1.6 * len(pick), 1.6 * n_img), squeeze=False)
    for c, i in enumerate(pick):
        for r in range(n_img):
            show_image(axes[r][c], snapshots["fingerprint"][i][r], f"step {steps[i]}" if r == 0 else None,
                        signed=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


WORLD_COLOURS = ("tab:blue", "tab:orange")   # closed world, open world: every closed/open chart


def grouped_bars(ax, positions, series, *, width: float | None = None, horizontal: bool = False,
                 errors=None, alpha: float | None = None, value_format: str | None = None,
                 chance: float | None = None) -> list[np.ndarray]:
    """Grouped bars on ``ax``: at each of ``positions``, one bar per series, side by side and centred
    on the position.  The one bar-chart drawing of the closed/open and per-method charts, on
    pyplot's axes (:mod:`gfd.plots`) or a bare Figure's (:mod:`gfd.widgets`).

    ``series``: ``[(label, values, colour), ...]``, a value of None or NaN draws no bar, a colour of
    None takes the axes' next colour.  ``width``: of one bar (default 0.8 / number of series).
    ``horizontal``: bars along x, groups down the y axis.  ``errors``: one list of error bars per
    series (or None).  ``value_format`` (e.g. ``"{:.0%}"``) writes each value beside its bar.
    ``chance``: a dashed grey line at that value, labelled "chance".  Ticks, limits and the legend
    are the caller's.  Returns the bar centres of each series.
    """
    positions = np.asarray(positions, dtype=float)
    width = width if width is not None else 0.8 / max(len(series), 1)
    centres = []
    for k, (label, values, colour) in enumerate(series):
        at = positions + (k - (len(series) - 1) / 2) * width
        vals = [np.nan if v is None else float(v) for v in values]
        style = {"label": label, "color": colour}
        if alpha is not None:
            style["alpha"] = alpha
        if errors is not None and errors[k] is not None:
            style.update({"xerr" if horizontal else "yerr": errors[k], "capsize": 3})
        (ax.barh if horizontal else ax.bar)(at, vals, width, **style)
        if value_format:
            for a, v in zip(at, vals):
                if np.isfinite(v):
                    if horizontal:
                        ax.text(v + 0.01, a, value_format.format(v), va="center", fontsize=7)
                    else:
                        ax.text(a, v + 0.01, value_format.format(v), ha="center", va="bottom", fontsize=7)
        centres.append(at)
    if chance is not None:
        (ax.axvline if horizontal else ax.axhline)(chance, color="grey", ls="--", lw=1, label="chance")
    return centres


def plot_world_bars(rows: dict[str, dict[str, float]], title: str = "accuracy per world",
                    chance: float | None = None) -> plt.Figure:
    """Grouped bars: for each method, its closed- and open-world accuracy."""
    names = list(rows)
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 3.4))
    xs = np.arange(len(names))
    grouped_bars(ax, xs, [(world, [rows[n].get(world, np.nan) for n in names], colour)
                          for world, colour in zip((CLOSED, OPEN), WORLD_COLOURS)],
                 width=0.38, chance=chance)
    ax.set_xticks(xs, names, rotation=15)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_table(table: dict, title: str | None = None, chance: float | None = None,
               worlds: tuple[str, str] = (CLOSED, OPEN)) -> plt.Figure:
    """A reproduced table (the JSON of :func:`gfd.runs.reproduce.write_table`): bars = mean over seeds,
    error bars = std, dots = single seeds, black ticks = the paper's number where the table has one.
    ``worlds``: the two metrics drawn (Table 2: ``("closed", "open_models")``)."""
    rows = table["rows"]
    names = [r["method"] for r in rows]
    ref = table.get("reference") or {}
    fig, ax = plt.subplots(figsize=(1.5 * len(names) + 2.5, 3.6))
    xs = np.arange(len(names))
    stats = {world: [r["summary"].get(world) for r in rows] for world in worlds}
    centres = grouped_bars(ax, xs, [(f"{world} (here)", [s["mean"] if s else np.nan for s in stats[world]], colour)
                                    for world, colour in zip(worlds, WORLD_COLOURS)],
                           width=0.38, alpha=0.8,
                           errors=[[s["std"] if s and s["std"] is not None else 0.0 for s in stats[world]]
                                   for world in worlds])
    for k, (world, x) in enumerate(zip(worlds, centres)):
        for xi, s in zip(x, stats[world]):
            if s:
                ax.scatter(np.full(len(s["values"]), xi), s["values"], s=10, color="black", zorder=3)
        paper = [ref.get(n, {}).get(world, np.nan) / 100 for n in names]
        ax.scatter(x, paper, marker="_", s=400, color="black", linewidths=2, zorder=4,
                   label="paper" if k == 0 else None)
    if chance is not None:     # after the paper's ticks, so the legend lists "paper" first
        ax.axhline(chance, color="grey", ls="--", lw=1, label="chance")
    ax.set_xticks(xs, names, rotation=15)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    meta = table.get("meta") or {}
    ax.set_title(title or f"Table {meta.get('table', '?')}, preset {meta.get('preset', '?')}, "
                          f"{len(meta.get('seeds', []))} seeds")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def plot_maps(maps, names: list[str], title: str | None = None, cmap: str = "RdBu_r",
              signed: bool = True) -> plt.Figure:
    """One 2-D map per class side by side (e.g. a DCT spectrum minus the mean over all classes).

    ``signed`` centres the colour scale on 0 with a range shared by all maps."""
    maps = [np.asarray(m.detach().cpu() if hasattr(m, "detach") else m, dtype=np.float32) for m in maps]
    fig, axes = plt.subplots(1, len(maps), figsize=(2.3 * len(maps), 2.6), squeeze=False,
                             dpi=screen_dpi(2.3 * len(maps)))
    top = max(float(np.abs(m).max()) for m in maps) or 1.0
    for ax, m, name in zip(axes[0], maps, names):
        kw = dict(vmin=-top, vmax=top) if signed else {}
        ax.imshow(m, cmap=cmap, interpolation="nearest", **kw)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# fingerprints (Sec. 4.5, Figs. 4-6)
# --------------------------------------------------------------------------------------------------

def plot_fingerprint_sources(singles, means, spectra, classes: list[str], title: str | None = None) -> plt.Figure:
    """Fig. 4 analogue, one column per source: ``singles`` (S, K, 3, H, W) single fingerprints (rows),
    then the mean fingerprint (K, 3, H, W) and the mean log |FFT| of the gray fingerprints (K, H, W)."""
    n_single = len(singles)
    rows = n_single + 2
    fig, axes = plt.subplots(rows, len(classes), figsize=(1.7 * len(classes), 1.75 * rows), squeeze=False)
    for k, name in enumerate(classes):
        for r in range(n_single):
            show_image(axes[r][k], singles[r][k], name if r == 0 else None, signed=True)
        show_image(axes[n_single][k], means[k], None, signed=True)
        spec = np.asarray(spectra[k], dtype=np.float32)
        axes[n_single + 1][k].imshow(spec, cmap="magma", vmin=np.percentile(spec, 1), vmax=np.percentile(spec, 99.5))
        axes[n_single + 1][k].set_xticks([])
        axes[n_single + 1][k].set_yticks([])
    for r in range(n_single):
        axes[r][0].set_ylabel(f"f, image {r + 1}", fontsize=8)
    axes[n_single][0].set_ylabel("mean f", fontsize=8)
    axes[n_single + 1][0].set_ylabel("log|FFT| (mean)", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_glcm_vectors(stats, classes: list[str], names: list[str], title: str | None = None) -> plt.Figure:
    """Fig. 6 analogue: per source, the mean GLCM correlation vector (16 values, distance-major) with
    a band of +- one standard deviation (the square root of the variance Fig. 6 reports)."""
    fig, ax = plt.subplots(figsize=(10, 3.8))
    xs = np.arange(len(names))
    for k, name in enumerate(classes):
        mean, sd = stats.mean[k], np.sqrt(stats.var[k])
        ax.plot(xs, mean, "o-", ms=3, lw=1.2, label=f"{name} (n={stats.count[k]})")
        ax.fill_between(xs, mean - sd, mean + sd, alpha=0.15)
    ax.set_xticks(xs, names, rotation=60, fontsize=7)
    ax.set_ylabel("GLCM correlation $C_{d\\theta}$")
    ax.axhline(0, color="grey", lw=0.6)
    ax.legend(fontsize=7, ncol=2, loc="best")
    ax.set_title(title or "GLCM correlation vectors of the fingerprints: mean ± std per source")
    fig.tight_layout()
    return fig


def plot_fingerprint_panels(x, x_real, panels: list[tuple[str, object, str]], title: str | None = None) -> plt.Figure:
    """Fig. 5 analogue: the input x and a real image, then for each ``(name, f, note)`` the fingerprint
    (top) and the fingerprinted image ``x_real + f`` clamped to the image range (bottom)."""
    fig, axes = plt.subplots(2, len(panels) + 1, figsize=(2.3 * (len(panels) + 1), 4.9), squeeze=False)
    show_image(axes[0][0], x, "input x")
    show_image(axes[1][0], x_real, "real image")
    for j, (name, f, note) in enumerate(panels, start=1):
        show_image(axes[0][j], f, f"{name}\n{note}", signed=True)
        show_image(axes[1][j], (x_real + f).clamp(-1, 1), "x_real + f")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# the built-in benchmark, world by world
# --------------------------------------------------------------------------------------------------

def plot_world_samples(root: str | os.PathLike, world: str, n_per_instance: int = 4):
    """One row per (class, instance) of a world, ``n_per_instance`` images each."""
    rows = [(f"{c} {p.split('-', 1)[1].rstrip('_')}", paths[:n_per_instance])
            for c, groups in world_groups(root, world).items() for p, paths in groups.items()]
    fig = _image_grid(rows, n_per_instance, figsize=(1.1 * n_per_instance + 1.2, 1.1 * len(rows)), fontsize=8,
                      dpi=SAMPLE_DPI)
    fig.suptitle(f"world {world}: samples per family and instance", fontsize=10)
    fig.tight_layout()
    return fig


def plot_family_spectra(root: str | os.PathLike, world: str, n_per_instance: int = 100, spectra=None):
    """Per class, the mean over its instances of their mean residual spectra, with the within/between ratio."""
    spectra = spectra or instance_spectra(root, world, n_per_instance)
    dist = spectral_distances(spectra)["per_family"]
    fig, axes = plt.subplots(1, len(spectra), figsize=(2.4 * len(spectra), 2.9), squeeze=False,
                             dpi=screen_dpi(2.4 * len(spectra)))
    for (name, per), ax in zip(spectra.items(), axes[0]):
        spec = np.mean(list(per.values()), axis=0)
        ax.imshow(spec, cmap="magma", vmin=np.percentile(spec, 1), vmax=np.percentile(spec, 99.5))
        r = dist.get(name, {}).get("ratio")
        ax.set_title(f"{name} ({len(per)} inst.)" + (f"\nwithin/between {r:.2f}" if r is not None else ""), fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"world {world}: mean log|FFT| of x - median3x3(x), per family", fontsize=10)
    fig.tight_layout()
    return fig


def save_benchmark_figures(root: str | os.PathLike, folder: str | os.PathLike, n_per_instance: int = 100) -> list[Path]:
    """For every world of a built benchmark, its samples per family and instance and its family
    spectra; then a sample grid and the residual spectra of the factor variants.  PNG files in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figures = []
    for world in read_manifest(root)["worlds"]:
        figures += [(f"bench_samples_{world}.png", plot_world_samples(root, world)),
                    (f"bench_spectra_{world}.png", plot_family_spectra(root, world, n_per_instance))]
    if (Path(root) / "variants").is_dir():
        figures += [("bench_samples_variants.png", plot_sample_grid(root, "variants")),
                    ("bench_spectra_variants.png", plot_residual_spectra(root, "variants"))]
    written = []
    for name, fig in figures:
        fig.savefig(folder / name, dpi=100)
        plt.close(fig)
        written.append(folder / name)
    return written


def plot_steps_over_seeds(summary: dict[str, dict], title: str | None = None) -> plt.Figure:
    """The Fig. 7 question over seeds (:func:`gfd.analysis.factors.steps_over_seeds`): per measure,
    each single-factor step's distance for every seed (dots) and their mean (bar); construction
    steps in blue, the width step in orange."""
    measures = list(summary)
    fig, axes = plt.subplots(1, len(measures), figsize=(4.2 * len(measures), 3.6), squeeze=False,
                             dpi=screen_dpi(4.2 * len(measures)))
    for ax, measure in zip(axes[0], measures):
        res = summary[measure]
        for i, (step, kind, values) in enumerate(res["steps"]):
            colour = "tab:orange" if kind == "width" else "tab:blue"
            ax.bar(i, float(np.mean(values)), color=colour, alpha=0.35, width=0.7)
            ax.plot(np.full(len(values), i) + np.linspace(-0.15, 0.15, len(values)), values, "o", color=colour, ms=4)
        ax.set_xticks(range(len(res["steps"])))
        ax.set_xticklabels([step.split(" (")[0] for step, _, _ in res["steps"]])
        ax.set_title(f"{measure}: width smallest on {res['holds']}/{len(res['seeds'])} seeds", fontsize=9)
        ax.set_ylabel("distance")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_detection(rows: dict[str, dict[str, float]], paper: dict[str, float] | None = None, chance: float = 0.5,
                   title: str = "cross-generator detection: accuracy per test set") -> plt.Figure:
    """Table 3 (Sec. 4.3) as bars: for each method, its accuracy on every test set and their average
    ``"Avg"`` (``rows``: ``{method: {test set: acc, ..., "Avg": acc}}``, fractions); ``paper``: the
    paper's averages (%) per printed row, drawn in a second panel beside ours."""
    names = list(rows)
    sets = [k for k in next(iter(rows.values())) if k != "Avg"] + ["Avg"]
    panels = 2 if paper else 1
    width = min(0.42 * len(sets) * max(len(names), 1) ** 0.5 + 2 + 3.2 * (panels - 1), MAX_WIDTH_PX / 100)
    fig, axes = plt.subplots(1, panels, figsize=(width, 3.8), squeeze=False,
                             gridspec_kw={"width_ratios": [4, 1][:panels]})
    ax = axes[0, 0]
    xs = np.arange(len(sets), dtype=float)
    xs[-1] += 0.6                                               # the average stands apart
    grouped_bars(ax, xs, [(name, [rows[name].get(s, np.nan) for s in sets], None) for name in names], chance=chance)
    ax.set_xticks(xs, sets, rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower left")
    if paper:
        ax2 = axes[0, 1]
        ax2.barh(range(len(paper)), [v / 100 for v in paper.values()], color="tab:grey")
        ax2.set_yticks(range(len(paper)), list(paper), fontsize=7)
        ax2.axvline(chance, color="grey", ls="--", lw=1)
        ax2.set_xlim(0, 1)
        ax2.invert_yaxis()
        ax2.set_title("paper: average (ForenSynths)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_detection_samples(root: str | os.PathLike, test_sets: list[str], n: int = 3) -> plt.Figure:
    """One row per detection test set (:mod:`gfd.detection` layout under ``root``): ``n`` real
    images, then ``n`` fake ones."""
    rows = [(f"{s}\n{n} real | {n} fake", list_images(Path(root) / TEST_DIR / s / REAL)[:n] +
             list_images(Path(root) / TEST_DIR / s / FAKE)[:n]) for s in test_sets]
    return _image_grid(rows, 2 * n, figsize=(1.3 * 2 * n + 1.5, 1.35 * len(rows)), fontsize=8)


def plot_crop_windows(path: str | os.PathLike, crop: int, n_train: int = 3, seed: int = 0) -> plt.Figure:
    """Where the crop-only protocol (``p1024``, Sec. 4.2.2) cuts its inputs from one image: the test
    centre crop (solid box) and ``n_train`` random training crops (dashed) on the full image, then each
    crop, enlarged for the eye (the network gets it at its own pixel size).  The windows come from
    torchvision's ``RandomCrop.get_params``, the crop of :func:`gfd.data.make_transform`."""
    from torchvision.transforms import RandomCrop
    img = np.asarray(load_rgb(path))
    h, w = img.shape[:2]
    boxes = [("test (centre)", (h - crop) // 2, (w - crop) // 2, "-")]
    with torch.random.fork_rng():          # the reader's global torch stream is left as it was
        torch.manual_seed(seed)
        boxes += [(f"train {k + 1} (random)", *RandomCrop.get_params(torch.empty(3, h, w), (crop, crop))[:2], "--")
                  for k in range(n_train)]
    fig, axes = plt.subplots(1, 1 + len(boxes), figsize=(2.6 + 1.6 * len(boxes), 2.8),
                             gridspec_kw={"width_ratios": [w / crop * 0.9] + [1] * len(boxes)})
    axes[0].imshow(img)
    axes[0].set_title(f"{w}x{h} px image", fontsize=8)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (name, top, left, style) in enumerate(boxes):
        colour = colours[k % len(colours)]
        axes[0].add_patch(plt.Rectangle((left - 0.5, top - 0.5), crop, crop, fill=False, lw=1.5, ls=style,
                                        edgecolor=colour))
        axes[k + 1].imshow(img[top:top + crop, left:left + crop])
        axes[k + 1].set_title(f"{name}\n{crop}x{crop} px", fontsize=8, color=colour)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig
