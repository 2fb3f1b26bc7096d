"""ipywidgets front-ends for the notebooks.  Callbacks only call plain functions of ``gfd``.

The panel never runs anything when it is built: headless runs (nbval, ``jupyter nbconvert``)
call the plain function once themselves and hand the results to the panel, which shows them.

Results reach the browser as widget state only (an :class:`ipywidgets.Image` holding PNG bytes drawn
with matplotlib's Agg renderer, an :class:`ipywidgets.HTML` table), never as output captured from
inside a callback: a callback that trains for minutes may see the kernel handle other messages
meanwhile, and output captured by an ``Output`` widget is then routed elsewhere (ipykernel 7).
State updates travel on the widget's own channel, whatever else the kernel does.
"""
from __future__ import annotations

import html
import io
import textwrap
import traceback
from typing import Any, Callable, Iterable, Sequence

import ipywidgets as w
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gfd.config import Config
from gfd.runs.variant import describe_changes

SWITCHES = (("use_D", "discriminator D"), ("use_C", "auxiliary classifier C"), ("use_percept", "perceptual loss"))
WEIGHTS = ("w1", "w2", "w3", "w4")


def figure_png(fig: Figure, dpi: int = 90) -> bytes:
    """``fig`` as PNG bytes, drawn by Agg whatever the pyplot backend; a pyplot figure is closed."""
    buf = io.BytesIO()
    FigureCanvasAgg(fig)  # a fresh Agg canvas for the figure: no GUI or inline backend involved
    fig.savefig(buf, format="png", dpi=dpi)
    import matplotlib.pyplot as plt
    plt.close(fig)  # a no-op for a figure pyplot does not manage
    return buf.getvalue()


def world_bars(labels: Sequence[str], closed: Sequence[float], opened: Sequence[float | None],
               chance: float | None = None, title: str = "accuracy per world") -> Figure:
    """Horizontal grouped bars, one group per run (newest at the bottom), labels written in full.

    Built on a bare :class:`~matplotlib.figure.Figure`, so pyplot's state is never touched.
    """
    n = len(labels)
    fig = Figure(figsize=(7.0, 1.1 + 0.42 * max(n, 1)))
    ax = fig.add_subplot()
    ys = list(range(n))
    ax.barh([y - 0.19 for y in ys], closed, 0.38, label="closed", color="tab:blue")
    ax.barh([y + 0.19 for y in ys], [float("nan") if v is None else v for v in opened], 0.38,
            label="open", color="tab:orange")
    for y, c, o in zip(ys, closed, opened):
        ax.text(c + 0.01, y - 0.19, f"{c:.0%}", va="center", fontsize=7)
        if o is not None:
            ax.text(o + 0.01, y + 0.19, f"{o:.0%}", va="center", fontsize=7)
    if chance is not None:
        ax.axvline(chance, color="grey", ls="--", lw=1, label="chance")
    ax.set_yticks(ys, ["\n".join(textwrap.wrap(s, 34)) or s for s in labels], fontsize=8)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("accuracy")
    ax.set_title(title, fontsize=9, loc="right")
    ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0, 1), ncol=3, frameon=False, borderaxespad=0.2)
    fig.tight_layout()
    return fig


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"


class AblationPanel(w.VBox):
    """The loss-toggle panel of notebook 05: see :func:`ablation_panel`.

    ``results`` lists every result shown, ``labels`` their labels; :meth:`train` is what a click does.
    """

    def __init__(self, base: Config, run: Callable[[Config], Any], results: Iterable[Any] = (),
                 plot: Callable[[list, list[str]], Figure] | None = None, chance: float | None = None):
        self.base, self.run_fn, self.plot_fn, self.chance = base, run, plot, chance
        self.results: list = []
        self.labels: list[str] = []
        self.given = 0  # how many results were handed in (the rest came from clicks)
        self.busy = False
        self.toggles = {name: w.Checkbox(value=getattr(base, name), description=text, indent=False,
                                         layout=w.Layout(width="auto", margin="0 1.5em 0 0"))
                        for name, text in SWITCHES}
        self.weights = {name: w.FloatText(value=getattr(base, name), description=name,
                                          style={"description_width": "2em"}, layout=w.Layout(width="9em"))
                        for name in WEIGHTS}
        self.steps = w.BoundedIntText(value=base.steps, min=1, max=10**7, description="steps",
                                      style={"description_width": "3em"}, layout=w.Layout(width="10em"))
        self.button = w.Button(description="train and compare", button_style="primary", icon="play",
                               tooltip="train (or load) this configuration and add it to the comparison",
                               layout=w.Layout(width="auto", min_width="13em", flex="0 0 auto"))
        self.status = w.HTML(value="", layout=w.Layout(margin="0 0 0 1em"))
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%", height="auto", align_self="flex-start"))
        self.table = w.HTML(value="")
        self.button.on_click(self._on_click)
        for r in results:
            self._add(r)
        self.given = len(self.results)
        self._redraw()
        if self.results:
            self.status.value = "results so far below; change the settings and press <i>train and compare</i>"
        super().__init__([w.HBox(list(self.toggles.values())), w.HBox(list(self.weights.values())),
                          w.HBox([self.steps, self.button, self.status], layout=w.Layout(align_items="center")),
                          self.image, self.table])

    # ------------------------------------------------------------------------------------------
    def config(self) -> Config:
        """The configuration the controls describe."""
        return self.base.with_(steps=int(self.steps.value), **{k: bool(t.value) for k, t in self.toggles.items()},
                               **{k: float(s.value) for k, s in self.weights.items()})

    def label(self, result: Any) -> str:
        cfg = getattr(result, "cfg", None)
        return describe_changes(cfg, self.base) if cfg is not None else str(getattr(result, "method", result))

    def train(self, cfg: Config | None = None) -> Any:
        """Run ``run(cfg)`` (default: the controls' config), add the result, redraw; what a click does."""
        cfg = self.config() if cfg is None else cfg
        label = describe_changes(cfg, self.base)
        self.busy, self.button.disabled = True, True
        self.status.value = (f"training <b>{html.escape(label)}</b> ({cfg.steps} steps) ... "
                             "a new configuration takes minutes, one trained before a few seconds")
        try:
            result = self.run_fn(cfg)
            self._add(result)
            self._redraw()
        except Exception as exc:  # shown in the panel: a callback's exception would go nowhere visible
            self.status.value = (f"<span style='color:#b00'><b>{html.escape(label)} failed</b>: "
                                 f"{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</span>"
                                 f"<details><summary>traceback</summary><pre>"
                                 f"{html.escape(traceback.format_exc())}</pre></details>")
            raise
        finally:
            self.busy, self.button.disabled = False, False
        took = getattr(result, "seconds", None)
        self.status.value = f"done: <b>{html.escape(label)}</b>" + (f" in {took:.0f} s" if took is not None else "")
        return result

    def _on_click(self, _button=None) -> None:
        if self.busy:  # a second click that arrived before the button was disabled in the browser
            return
        try:
            self.train()
        except Exception:
            pass  # already shown in the status line

    # ------------------------------------------------------------------------------------------
    def _add(self, result: Any) -> None:
        self.results.append(result)
        self.labels.append(self.label(result))

    def _numbered(self) -> list[str]:
        return [f"{i}: {label}" for i, label in enumerate(self.labels, 1)]

    def _rows(self) -> list[tuple[str, ...]]:
        rows = []
        for i, (r, label) in enumerate(zip(self.results, self.labels), 1):
            secs = getattr(r, "seconds", None)
            rows.append((str(i), label, str(getattr(r, "method", "")), _pct(getattr(r, "val", None)),
                         _pct(getattr(r, "closed", None)), _pct(getattr(r, "open", None)),
                         "" if secs is None else f"{secs:.0f} s"))
        return rows

    HEADER = ("#", "run (changes from the preset)", "Table 4 row", "val", "closed", "open", "time")

    def table_html(self) -> str:
        cell = "padding:2px 10px;text-align:{};border-bottom:1px solid #ddd"
        head = "".join(f"<th style='{cell.format('left' if k < 3 else 'right')}'>{html.escape(h)}</th>"
                       for k, h in enumerate(self.HEADER))
        body = []
        for j, row in enumerate(self._rows()):
            style = "font-weight:bold" if j == len(self.results) - 1 and j >= self.given else ""  # newest click
            tds = "".join(f"<td style='{cell.format('left' if k < 3 else 'right')}'>{html.escape(v)}</td>"
                          for k, v in enumerate(row))
            body.append(f"<tr class='gfd-run' style='{style}'>{tds}</tr>")
        return (f"<table class='gfd-runs' style='border-collapse:collapse;font-size:12px'>"
                f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")

    def table_text(self) -> str:
        rows = [self.HEADER] + self._rows()
        widths = [max(len(r[k]) for r in rows) for k in range(len(self.HEADER))]
        return "\n".join("  ".join(v.ljust(wd) if k < 3 else v.rjust(wd) for k, (v, wd) in enumerate(zip(r, widths)))
                         for r in rows)

    def figure(self) -> Figure:
        if self.plot_fn is not None:
            return self.plot_fn(self.results, self._numbered())
        return world_bars(self._numbered(), [r.closed for r in self.results], [r.open for r in self.results],
                          chance=self.chance, title=f"one seed each, preset {self.base.preset}")

    def _redraw(self) -> None:
        self.table.value = self.table_html()
        self.image.value = figure_png(self.figure()) if self.results else b""

    # ------------------------------------------------------------------------------------------
    NOTE = "interactive panel: run the notebook's cells to use its controls"

    def _repr_mimebundle_(self, **kwargs):
        """Besides the live widget, a static copy (table and chart) for viewers that cannot show it:
        an untrusted notebook in JupyterLab, or a file viewer without a kernel."""
        data = super()._repr_mimebundle_(**kwargs)
        if data is None:  # a closed widget
            return None
        data["text/plain"] = f"{self.NOTE}; results so far:\n{self.table_text()}"
        img = ""
        if self.image.value:
            import base64
            img = (f"<img alt='accuracy per world' style='max-width:100%' "
                   f"src='data:image/png;base64,{base64.b64encode(self.image.value).decode()}'/>")
        data["text/html"] = f"<div class='gfd-panel-static'><p><i>{self.NOTE}.</i></p>{img}{self.table_html()}</div>"
        return data


def ablation_panel(base: Config, run: Callable[[Config], Any], results: Iterable[Any] = (), *,
                   plot: Callable[[list, list[str]], Figure] | None = None,
                   chance: float | None = None) -> AblationPanel:
    """Toggles for D, C and L_percept, the weights w1..w4 and the number of steps (Eq. 7, Table 4).

    ``results`` (e.g. the full model and the G-only baseline, already computed) are shown from the
    start.  Clicking *train and compare* builds ``base.with_(...)`` from the controls, calls
    ``run(cfg)`` (e.g. :func:`gfd.runs.train_and_measure`) and adds its result: every run is listed in
    a table and drawn in a chart (``plot(results, labels)`` if given, else closed/open bars with
    ``chance`` marked), each labelled by every field in which it differs from ``base``.  Building the
    panel trains nothing.
    """
    return AblationPanel(base, run, results, plot=plot, chance=chance)
