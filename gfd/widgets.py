"""ipywidgets front-ends for the notebooks.  Callbacks only call plain functions of ``gfd``.

* :func:`ablation_panel` (notebook 05): the loss toggles, in :mod:`gfd.panel` (re-exported here).
* :func:`fingerprint_explorer` (notebook 09): one image, its fingerprint and its source's mean
  fingerprint.  Building it draws the default selection only (G on one image, one source's mean),
  which is fast and never waits for input.

Both keep a static copy of what they show (``_repr_mimebundle_``: HTML with the PNG, and text) for
viewers without a kernel or widget state.

Results reach the browser as widget state only (an :class:`ipywidgets.Image` holding PNG bytes drawn
with matplotlib's Agg renderer, an :class:`ipywidgets.HTML` table), never as output captured from
inside a callback: a callback that trains for minutes may see the kernel handle other messages
meanwhile, and output captured by an ``Output`` widget is then routed elsewhere (ipykernel 7).
State updates travel on the widget's own channel, whatever else the kernel does.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipywidgets as w
import numpy as np
import torch
from matplotlib.figure import Figure

from gfd.layout import WORLDS
from gfd.panel import (NOT_A_ROW, SWITCHES, WEIGHTS, AblationPanel, ablation_panel,  # noqa: F401 (the panel)
                       figure_png, table4_name, world_bars)

# --------------------------------------------------------------------------------------------------
# notebook 09: the fingerprint explorer
# --------------------------------------------------------------------------------------------------


@dataclass
class FingerprintView:
    """Everything the explorer shows for one selection (tensors on the CPU, images in [-1, 1])."""

    world: str
    split: str
    source: str
    label: int
    index: int                 # the index-th image of ``source`` in ``split`` (data set order)
    count: int                 # how many images ``source`` has in ``split``
    path: str
    x: torch.Tensor            # (3, H, W) the input image, test transform
    f: torch.Tensor            # (3, H, W) its fingerprint G(x)
    x_real: torch.Tensor       # (3, H, W) the real image the fingerprint is added to
    real_path: str
    mean: torch.Tensor         # (3, H, W) the mean fingerprint of ``source`` in ``split``
    n_mean: int                # over how many images
    spectrum: torch.Tensor     # (H, W) mean log |FFT| of the gray fingerprints of ``source``
    f_spectrum: torch.Tensor   # (H, W) log |FFT| of this gray fingerprint
    probs: torch.Tensor        # (K,) G_enc + H's source probabilities for x
    classes: list[str]
    energy: float
    periodicity: float
    glcm: np.ndarray | None = None        # (16,) GLCM correlation vector of f (Sec. 4.5, gfd.analysis.glcm)
    glcm_mean: np.ndarray | None = None   # (16,) mean GLCM vector of the source's fingerprints

    @property
    def x_fp(self) -> torch.Tensor:
        """``x_real + f`` clamped to the image range (Eq. 2)."""
        return (self.x_real + self.f).clamp(-1, 1)

    @property
    def predicted(self) -> str:
        return self.classes[int(self.probs.argmax())]

    def caption(self) -> str:
        return (f"{self.source} image {self.index} of {self.count} ({self.world} world, "
                f"{self.split}/{self.source}/{Path(self.path).name}); "
                f"G_enc + H says {self.predicted} ("
                + ", ".join(f"{c} {p:.1%}" for c, p in zip(self.classes, self.probs.tolist())) + "); "
                f"f: energy {self.energy:.3f}, periodicity {self.periodicity:.3f}; "
                f"mean f over {self.n_mean} {self.source} images")


def fingerprint_figure(view: FingerprintView) -> Figure:
    """The explorer's picture of one selection, 2 x 4 panels on a bare :class:`Figure`.

    Top: the input x, its fingerprint f, the real image and ``x_real + f`` clamped.  Bottom: the
    source's mean fingerprint, ``x_real + mean f``, the log |FFT| of this f and the mean log |FFT|
    of the source's fingerprints.  Images and fingerprints are drawn by :mod:`gfd.plots` (a
    fingerprint rescaled by its own largest absolute value, as in every fingerprint figure).
    """
    from gfd.plots import show_image
    fig = Figure(figsize=(8.2, 6.6))
    grid = fig.add_gridspec(3, 4, height_ratios=[1, 1, 0.8])
    axes = [[fig.add_subplot(grid[r, c]) for c in range(4)] for r in range(2)]
    show_image(axes[0][0], view.x, f"input x: {view.source} #{view.index}")
    show_image(axes[0][1], view.f, "fingerprint f", signed=True)
    show_image(axes[0][2], view.x_real, "real image")
    show_image(axes[0][3], view.x_fp, "x_real + f")
    show_image(axes[1][0], view.mean, f"mean f, {view.source} (n={view.n_mean})", signed=True)
    show_image(axes[1][1], (view.x_real + view.mean).clamp(-1, 1), "x_real + mean f")
    for ax, spec, title in ((axes[1][2], view.f_spectrum, "log|FFT| of f"),
                            (axes[1][3], view.spectrum, f"mean log|FFT|, {view.source}")):
        s = np.asarray(spec, dtype=np.float32)  # the colour scale of plots.plot_fingerprint_sources
        ax.imshow(s, cmap="magma", vmin=np.percentile(s, 1), vmax=np.percentile(s, 99.5))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=8)
    if view.glcm is not None:         # Fig. 6 for one image: its GLCM vector beside its source's mean
        ax = fig.add_subplot(grid[2, :3])
        ax.plot(view.glcm, marker="o", ms=3, lw=1, label="this f")
        if view.glcm_mean is not None:
            ax.plot(view.glcm_mean, marker="s", ms=3, lw=1, ls="--", label=f"mean, {view.source}")
        ax.set_xticks(range(0, len(view.glcm), 4))
        ax.set_xticklabels([f"d={d}" for d in (2, 4, 8, 16)][:len(range(0, len(view.glcm), 4))], fontsize=7)
        ax.set_ylim(-1.05, 1.05)
        ax.set_ylabel("GLCM corr.", fontsize=8)
        ax.set_title("GLCM correlation vector (4 angles per distance)", fontsize=8)
        ax.legend(fontsize=7, loc="lower right")
    ax = fig.add_subplot(grid[2, 3])
    ax.barh(range(len(view.classes)), view.probs.tolist(), color="tab:blue")
    ax.set_yticks(range(len(view.classes)))
    ax.set_yticklabels(view.classes, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_title("G_enc + H: P(source)", fontsize=8)
    fig.suptitle(f"{view.world} world ({view.split}): {view.source} image {view.index} of {view.count}; "
                 f"G_enc + H: {view.predicted} {view.probs.max().item():.0%}", fontsize=9)
    fig.tight_layout()
    return fig


class FingerprintExplorer(w.VBox):
    """The fingerprint explorer of notebook 09: see :func:`fingerprint_explorer`."""

    NOTE = "interactive fingerprint explorer: run the notebook's cells to use its controls"

    def __init__(self, model, bundle, worlds: dict[str, str] | None = None, source: str | None = None,
                 index: int = 0, world: str | None = None, real: int = 0,
                 fingerprints: dict[str, tuple[Any, Any]] | None = None, max_per_source: int | None = None):
        from gfd.inference import resolve
        self.G = resolve(model)[0]
        self.classes = list(bundle.classes)
        self.real_label = bundle.real_index
        worlds = dict(WORLDS if worlds is None else worlds)
        self.worlds = {name: split for name, split in worlds.items() if split in bundle.datasets}
        if not self.worlds:
            raise ValueError(f"none of the splits {list(worlds.values())} is in the data "
                             f"(present: {list(bundle.datasets)})")
        self.datasets = {name: bundle.datasets[split] for name, split in self.worlds.items()}
        self.members = {name: self._members(ds) for name, ds in self.datasets.items()}
        self.real = real
        self.max_per_source = max_per_source
        self.given = {k: v for k, v in (fingerprints or {}).items() if k in self.worlds}
        self.cache: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor, int, np.ndarray]] = {}  # (world, label)
        self.view: FingerprintView | None = None
        self.figure_: Figure | None = None
        self._hold = False

        world = world or next(iter(self.worlds))
        if world not in self.worlds:
            raise ValueError(f"unknown world {world!r}; choose one of {list(self.worlds)}")
        if source is None:
            source = next((c for k, c in enumerate(self.classes) if k != self.real_label), self.classes[0])
        if source not in self.classes:
            raise ValueError(f"unknown source {source!r}; choose one of {self.classes}")
        self.world = w.ToggleButtons(options=[(f"{name} world", name) for name in self.worlds], value=world,
                                     tooltips=[f"test split {split}" for split in self.worlds.values()],
                                     style={"button_width": "8em"}, layout=w.Layout(margin="0 0 0 4.6em"))
        self.source = w.Dropdown(options=self.classes, value=source, description="source",
                                 style={"description_width": "4em"}, layout=w.Layout(width="16em"))
        n = len(self.members[world][self.classes.index(source)])
        self.index = w.IntSlider(value=min(max(index, 0), n - 1), min=0, max=n - 1, description="image",
                                 continuous_update=False, style={"description_width": "4em"},
                                 layout=w.Layout(width="28em"))
        self.status = w.HTML(value="")
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%", height="auto"))
        for control in (self.world, self.source, self.index):
            control.observe(self._on_change, names="value")
        self.show()
        super().__init__([w.HBox([self.source, self.index], layout=w.Layout(align_items="center")),
                          self.world, self.status, self.image])

    # ------------------------------------------------------------------------------------------
    def _members(self, ds) -> list[list[int]]:
        """Per label, the data set indices of its images, in data set order."""
        out: list[list[int]] = [[] for _ in self.classes]
        for i, t in enumerate(ds.targets):
            out[int(t)].append(i)
        return out

    def source_mean(self, world: str, label: int) -> tuple[torch.Tensor, torch.Tensor, int, np.ndarray]:
        """(mean f, mean log |FFT| of the gray f, count, mean GLCM vector) of one source in one world,
        computed once.

        From the fingerprints handed in for that world if any, else by running G over that source's
        images (at most ``max_per_source``) on first use."""
        key = (world, label)
        if key not in self.cache:
            from torch.utils.data import Subset

            from gfd.analysis import fingerprints as fp
            from gfd.analysis.glcm import glcm_features
            if world in self.given:
                f, y = self.given[world]
                keep = torch.as_tensor(np.asarray(y)).reshape(-1).long() == label
                f_k = torch.as_tensor(np.asarray(f))[keep]
            else:
                idx = self.members[world][label][:self.max_per_source]
                f_k, _ = fp.extract_fingerprints(self.G, Subset(self.datasets[world], idx),
                                                 device=None, progress=False)
            if len(f_k) == 0:
                raise ValueError(f"no fingerprint of {self.classes[label]} in the {world} world")
            mean = fp.mean_fingerprint_by_source(f_k, torch.zeros(len(f_k), dtype=torch.long), 1)[0]
            self.cache[key] = (mean, fp.log_spectrum(f_k).float(), len(f_k), glcm_features(f_k).mean(0))
        return self.cache[key]

    def compute(self, world: str, source: str, index: int) -> FingerprintView:
        """The view of image ``index`` of ``source`` in ``world``: one image through G, the source's
        mean from the cache."""
        from gfd import inference
        from gfd.analysis import fingerprints as fp
        label = self.classes.index(source)
        members = self.members[world][label]
        if not 0 <= index < len(members):
            raise IndexError(f"{source} has {len(members)} images in the {world} world; index {index}")
        ds = self.datasets[world]
        x, _ = ds[members[index]]
        reals = self.members[world][self.real_label]
        x_real, _ = ds[reals[self.real % len(reals)]]
        f = inference.fingerprint(self.G, x)[0]
        probs = inference.attribute(self.G, x)[0]
        from gfd.analysis.glcm import glcm_features
        mean, spectrum, n_mean, glcm_mean = self.source_mean(world, label)
        return FingerprintView(world=world, split=self.worlds[world], source=source, label=label, index=index,
                               count=len(members), path=str(ds.samples[members[index]][0]), x=x, f=f,
                               x_real=x_real, real_path=str(ds.samples[reals[self.real % len(reals)]][0]),
                               mean=mean, n_mean=n_mean, spectrum=spectrum, f_spectrum=fp.log_spectrum(f).float(),
                               probs=probs, classes=self.classes, energy=fp.energy(f).item(),
                               periodicity=fp.periodicity(f).item(), glcm=glcm_features(f[None])[0],
                               glcm_mean=glcm_mean)

    def show(self, world: str | None = None, source: str | None = None, index: int | None = None) -> FingerprintView:
        """Draw a selection (default: the controls'), setting the controls to it; what a change does."""
        self._hold = True
        try:
            if world is not None:
                self.world.value = world
            if source is not None:
                self.source.value = source
            n = len(self.members[self.world.value][self.classes.index(self.source.value)])
            self.index.max = max(n - 1, 0)  # clamps the value, the hold keeps that from redrawing
            if index is not None:
                self.index.value = index
        finally:
            self._hold = False
        world, source, index = self.world.value, self.source.value, int(self.index.value)
        label = self.classes.index(source)
        if (world, label) not in self.cache and world not in self.given:
            self.status.value = f"computing the mean fingerprint of {html.escape(source)} ({world} world) ..."
        try:
            view = self.compute(world, source, index)
            fig = fingerprint_figure(view)
            self.image.value = figure_png(fig)
        except Exception as exc:  # shown in the explorer: a callback's exception would go nowhere visible
            self.status.value = (f"<span style='color:#b00'><b>{html.escape(source)} #{index} failed</b>: "
                                 f"{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</span>")
            raise
        self.view, self.figure_ = view, fig
        self.status.value = f"<span class='gfd-fp-caption' style='font-size:12px'>{self.caption_html()}</span>"
        return view

    def caption_html(self) -> str:
        v = self.view
        return (f"<b>{html.escape(v.source)}</b> image {v.index} of {v.count}, {v.world} world "
                f"(<code>{html.escape(Path(v.path).name)}</code>); G_enc + H says <b>{html.escape(v.predicted)}</b> "
                f"({v.probs.max().item():.1%}); f: energy {v.energy:.3f}, periodicity {v.periodicity:.3f}; "
                f"mean f over {v.n_mean} {html.escape(v.source)} images; real image "
                f"<code>{html.escape(Path(v.real_path).name)}</code>")

    def _on_change(self, change=None) -> None:
        if self._hold:
            return
        try:
            self.show()
        except Exception:
            pass  # already shown in the status line

    # ------------------------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs):
        """Besides the live widget, a static copy (the default selection's picture and caption)
        for viewers that cannot show it: an untrusted notebook, a file viewer without a kernel."""
        data = super()._repr_mimebundle_(**kwargs)
        if data is None:  # a closed widget
            return None
        caption = self.view.caption() if self.view is not None else ""
        data["text/plain"] = f"{self.NOTE}; shown: {caption}"
        img = ""
        if self.image.value:
            import base64
            img = (f"<img alt='fingerprint explorer' style='max-width:100%' "
                   f"src='data:image/png;base64,{base64.b64encode(self.image.value).decode()}'/>")
        data["text/html"] = (f"<div class='gfd-explorer-static'><p><i>{self.NOTE}.</i></p>{img}"
                             f"<p style='font-size:12px'>{self.caption_html() if self.view else ''}</p></div>")
        return data


def fingerprint_explorer(model, bundle, *, worlds: dict[str, str] | None = None, source: str | None = None,
                         index: int = 0, world: str | None = None, real: int = 0,
                         fingerprints: dict[str, tuple[Any, Any]] | None = None,
                         max_per_source: int | None = None) -> FingerprintExplorer:
    """Pick a source (dropdown), an image of it (slider) and a world (closed/open test split); see
    the image x, its fingerprint f = G(x), ``x_real + f`` clamped, and the source's mean fingerprint
    with its mean log-spectrum (Fig. 4, Sec. 4.5), plus what G_enc + H predicts for x.

    ``model``: a :class:`~gfd.models.generator.FingerprintGenerator`, a trainer or a checkpoint path
    (as :mod:`gfd.inference` takes); ``bundle``: the :class:`~gfd.data.DataBundle` (test transform);
    ``worlds``: world name -> split (default :data:`gfd.layout.WORLDS`).  ``x_real`` is real image number
    ``real`` of the chosen world.  Each selection runs G on one image; a source's mean fingerprint
    is computed once per world -- from ``fingerprints`` (world -> ``(f, labels)`` over that world's
    whole split, e.g. from :func:`gfd.analysis.fingerprints.extract_fingerprints`) when given, else
    by running G over that source's images (at most ``max_per_source``) on first use.  Building the
    explorer draws the default selection (``source``: default the first class that is not real),
    which is also its static copy.
    """
    return FingerprintExplorer(model, bundle, worlds=worlds, source=source, index=index, world=world, real=real,
                               fingerprints=fingerprints, max_per_source=max_per_source)
