"""The loss-toggle panel of notebook 05: D, C and the perceptual loss switched on and off (Table 4).

It never trains when it is built: headless runs (nbval, ``jupyter nbconvert``) call the plain
function once themselves and hand the results to the panel, which shows them.  A click trains in a
background thread, with a progress bar and a stop button (see :class:`AblationPanel`).  It keeps a
static copy of what it shows (``_repr_mimebundle_``: HTML with the PNG, and text) for viewers
without a kernel or widget state.  Results reach the browser as widget state only (an
:class:`ipywidgets.Image` holding PNG bytes, an :class:`ipywidgets.HTML` table), never as output
captured from inside a callback (:mod:`gfd.widgets` says why).
"""
from __future__ import annotations

import html
import io
import textwrap
import threading
import time
import traceback
from typing import Any, Callable, Iterable, Sequence

import ipywidgets as w
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gfd.config import Config
from gfd.layout import CLOSED, OPEN
from gfd.paper import ABLATIONS, ablation_name
from gfd.runs.variant import describe_changes
from gfd.train import TrainingStopped, watch_steps

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
    """Horizontal grouped bars (:func:`gfd.plots.grouped_bars`), one group per run (newest at the
    bottom), labels written in full, each value written beside its bar.

    Built on a bare :class:`~matplotlib.figure.Figure`, so pyplot's state is never touched.
    """
    from gfd.plots import WORLD_COLOURS, grouped_bars

    n = len(labels)
    fig = Figure(figsize=(7.0, 1.1 + 0.42 * max(n, 1)))
    ax = fig.add_subplot()
    ys = list(range(n))
    grouped_bars(ax, ys, [(CLOSED, closed, WORLD_COLOURS[0]), (OPEN, opened, WORLD_COLOURS[1])],
                 width=0.38, horizontal=True, value_format="{:.0%}", chance=chance)
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


NOT_A_ROW = "not a Table 4 row"


def table4_name(cfg: Config) -> str:
    """The paper's name of the Table 4 row a config's switches make (``"G+D+C"``); a combination
    that Table 4 does not have (e.g. ``"G+C+L_percept"``) is named the same way and flagged."""
    name = ablation_name(cfg)
    return name if name in ABLATIONS else f"{name} ({NOT_A_ROW})"


def _in_kernel() -> bool:
    """Running inside an IPython kernel (where a button click arrives as a comm message)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return getattr(get_ipython(), "kernel", None) is not None


class AblationPanel(w.VBox):
    """The loss-toggle panel of notebook 05: see :func:`ablation_panel`.

    ``results`` lists every result shown, ``labels`` their labels, ``seconds`` their training times
    (``None``: loaded, shown as "cached"); :meth:`train` is what a click does.

    How a click trains without blocking the kernel: the kernel handles one shell message at a time,
    and a button click is such a message (a comm message), so a click that trained in its own handler
    would keep every later click -- the stop button's too -- queued until training ended.  In a kernel
    the click handler therefore only starts a background thread and returns; the thread runs
    ``run(cfg)`` inside :func:`gfd.train.watch_steps`, so the trainer reports every step to the panel.
    The panel moves its progress bar (an :class:`ipywidgets.IntProgress`) by setting widget state,
    which ipykernel sends from any thread on the widget's own channel (IOPub is thread-safe); nothing
    is printed or displayed from the thread, as output from a thread lands in no cell (ipykernel 7
    sends it to JupyterLab's log console).  The stop click, handled by the now idle kernel, sets an
    event; the trainer sees it at its next step, writes its checkpoint and raises
    :class:`gfd.train.TrainingStopped`, and the next click on the same settings resumes the run from
    that checkpoint (:func:`gfd.train.load_or_train`).  The step callback draws no random numbers, so
    a watched run is bit-identical to an unwatched one -- unless other cells run meanwhile: the
    kernel is free during training, and they share the CPU and the global random state with it.
    Outside a kernel (tests, scripts) a click trains in the caller's thread (``background``
    overrides either choice); headless notebook runs never click, so they neither wait nor change.
    """

    REFRESH = 0.25
    """Seconds between progress-bar updates sent to the browser (the first, the last step and a stop
    are always sent)."""

    def __init__(self, base: Config, run: Callable[[Config], Any], results: Iterable[Any] = (),
                 plot: Callable[[list, list[str]], Figure] | None = None, chance: float | None = None,
                 background: bool | None = None):
        self.base, self.run_fn, self.plot_fn, self.chance = base, run, plot, chance
        self.background = _in_kernel() if background is None else background
        self.results: list = []
        self.labels: list[str] = []
        self.seconds: list[float | None] = []
        self.given = 0  # how many results were handed in (the rest came from clicks)
        self.busy = False
        self.thread: threading.Thread | None = None
        self.stopped: dict[Config, float] = {}  # config -> training seconds of its stopped, resumable parts
        self._stop = threading.Event()
        self._clock: dict[str, float] = {}
        self._cfg: Config | None = None  # the config being trained
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
        self.stop_button = w.Button(description="stop", icon="stop", button_style="warning", disabled=True,
                                    tooltip="stop at the next step; the run is kept and the same settings resume it",
                                    layout=w.Layout(width="auto", min_width="6em", flex="0 0 auto",
                                                    margin="0 0 0 0.5em"))
        self.status = w.HTML(value="", layout=w.Layout(margin="0 0 0 1em"))
        self.progress = w.IntProgress(value=0, min=0, max=1, bar_style="info",
                                      layout=w.Layout(width="22em", margin="0 1em 0 0"))
        self.progress_text = w.HTML(value="")
        self.progress_row = w.HBox([self.progress, self.progress_text],
                                   layout=w.Layout(align_items="center", display="none"))  # shown from the first click
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%", height="auto", align_self="flex-start"))
        self.table = w.HTML(value="")
        self.button.on_click(self._on_click)
        self.stop_button.on_click(self._on_stop)
        for r in results:
            self._add(r)
        self.given = len(self.results)
        self._redraw()
        if self.results:
            self.status.value = "results so far below; change the settings and press <i>train and compare</i>"
        super().__init__([w.HBox(list(self.toggles.values())), w.HBox(list(self.weights.values())),
                          w.HBox([self.steps, self.button, self.stop_button, self.status],
                                 layout=w.Layout(align_items="center")),
                          self.progress_row, self.image, self.table])

    # ------------------------------------------------------------------------------------------
    def config(self) -> Config:
        """The configuration the controls describe."""
        return self.base.with_(steps=int(self.steps.value), **{k: bool(t.value) for k, t in self.toggles.items()},
                               **{k: float(s.value) for k, s in self.weights.items()})

    def label(self, result: Any) -> str:
        cfg = getattr(result, "cfg", None)
        return describe_changes(cfg, self.base) if cfg is not None else str(getattr(result, "method", result))

    def row_name(self, result: Any) -> str:
        """The paper's row name of a result (:func:`table4_name`), else its ``method``."""
        cfg = getattr(result, "cfg", None)
        return table4_name(cfg) if cfg is not None else str(getattr(result, "method", ""))

    def train(self, cfg: Config | None = None) -> Any:
        """Run ``run(cfg)`` (default: the controls' config) in this thread, watching its steps; add
        the result and redraw.  What a click does (in a background thread in a kernel).  Returns the
        result, or ``None`` when the stop button ended the run (its checkpoint is kept)."""
        cfg = self.config() if cfg is None else cfg
        label, name = describe_changes(cfg, self.base), table4_name(cfg)
        what = f"<b>{html.escape(name)}</b>: {html.escape(label)}"
        self.busy, self.button.disabled, self.stop_button.disabled = True, True, False
        self._stop.clear()
        self._clock, self._cfg = {}, cfg
        self.stop_button.description = "stop"
        with self.progress.hold_sync():
            self.progress.value, self.progress.max, self.progress.bar_style = 0, max(cfg.steps, 1), "info"
        self.progress_text.value = "loading or starting the run ..."
        self.progress_row.layout.display = "flex"
        self.status.value = (f"training {what} ({cfg.steps} steps) ... a new configuration takes minutes, "
                             "one trained before a few seconds")
        try:
            with watch_steps(self._on_step):
                result = self.run_fn(cfg)
        except TrainingStopped as stop:
            took = self._training_seconds()
            self.stopped[cfg] = self.stopped.get(cfg, 0.0) + took
            self._show_step(stop.step, stop.total, force=True)
            self.progress.bar_style = "warning"
            saved = "its checkpoint is kept" if stop.checkpoint is not None else "it has no run folder to keep"
            self.progress_text.value = f"stopped at step {stop.step} of {stop.total} after {took:.0f} s"
            self.status.value = (f"stopped {what} at step {stop.step} of {stop.total}; {saved}: press "
                                 "<i>train and compare</i> with the same settings to resume it")
            return None
        except Exception as exc:  # shown in the panel: a callback's exception would go nowhere visible
            self.progress.bar_style = "danger"
            self.status.value = (f"<span style='color:#b00'><b>{html.escape(label)} failed</b>: "
                                 f"{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</span>"
                                 f"<details><summary>traceback</summary><pre>"
                                 f"{html.escape(traceback.format_exc())}</pre></details>")
            raise
        finally:
            self.busy, self.button.disabled, self.stop_button.disabled = False, False, True
            self.stop_button.description = "stop"
        trained = getattr(result, "train_seconds", None)
        before = self.stopped.pop(cfg, None)
        if trained is not None and before is not None:
            trained += before  # the parts stopped earlier in this panel count too
        self._add(result, trained)
        self._redraw()
        training = getattr(result, "training", None) or {}
        steps = training.get("steps", cfg.steps)
        with self.progress.hold_sync():
            self.progress.max = max(cfg.steps, 1)
            self.progress.value = min(steps, self.progress.max)
            self.progress.bar_style = "success"
        if trained is None:
            self.progress_text.value = f"cached: trained before ({steps} of {cfg.steps} steps), loaded"
        else:
            plateau = " (val accuracy reached a plateau)" if training.get("stopped") == "plateau" else ""
            self.progress_text.value = f"trained to step {steps} of {cfg.steps}{plateau} in {trained:.0f} s"
        self.status.value = f"done: {what}, " + ("cached (trained before)" if trained is None else
                                                 f"trained in {trained:.0f} s")
        return result

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a click's background run to end; True when none is running any more."""
        thread = self.thread
        if thread is not None:
            thread.join(timeout)
        return thread is None or not thread.is_alive()

    def stop(self) -> None:
        """Ask the running training to stop at its next step (what the stop button does)."""
        if self.busy:
            self._stop.set()
            self.stop_button.disabled, self.stop_button.description = True, "stopping"
            self.progress_text.value = "stopping at the next step ..."

    def _on_step(self, step: int, total: int) -> bool:
        """The trainer's step callback (:func:`gfd.train.watch_steps`): show the step, say whether to
        stop.  Reads the clock and sets widget state only: no random numbers drawn."""
        now = time.perf_counter()
        self._clock.setdefault("start", now)
        self._clock["last"] = now
        self._show_step(step, total, force=step in (self._clock.setdefault("first", step), total))
        return self._stop.is_set()

    def _show_step(self, step: int, total: int, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._clock.get("shown", -1e9) < self.REFRESH:
            return
        self._clock["shown"] = now
        with self.progress.hold_sync():
            if total != self.progress.max:
                self.progress.value, self.progress.max = 0, max(total, 1)
            self.progress.value = step
        took = self._training_seconds()
        if step >= total:
            text = f"step {step} of {total} in {took:.0f} s; measuring on val and both worlds ..."
        elif step == self._clock.get("first") and step == 0:
            text = (f"0 of {total} steps; C is pre-trained (or loaded) first" if self._cfg_has_c() else
                    f"0 of {total} steps")
        elif step == self._clock.get("first"):
            text = f"resuming at step {step} of {total}"
        else:
            text = f"step {step} of {total}, {took:.0f} s"
        if self._stop.is_set() and step < total:
            text = f"step {step} of {total}: stopping ..."
        self.progress_text.value = text

    def _cfg_has_c(self) -> bool:
        return bool(getattr(self._cfg, "use_C", False))

    def _training_seconds(self) -> float:
        """Wall time from the run's first step report to its last one (the time spent training)."""
        return self._clock.get("last", 0.0) - self._clock.get("start", 0.0)

    def _on_click(self, _button=None) -> None:
        if self.busy:  # a second click that arrived before the button was disabled in the browser
            return
        if not self.background:
            self._train_quietly()
            return
        self.busy, self.button.disabled = True, True  # at once: the thread may start a moment later
        self.thread = threading.Thread(target=self._train_quietly, args=(self.config(),),
                                       name="gfd-ablation-panel", daemon=True)
        self.thread.start()

    def _train_quietly(self, cfg: Config | None = None) -> None:
        try:
            self.train(cfg)
        except Exception:
            pass  # already shown in the status line

    def _on_stop(self, _button=None) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------
    def _add(self, result: Any, seconds: float | None = None) -> None:
        self.results.append(result)
        self.labels.append(self.label(result))
        self.seconds.append(getattr(result, "train_seconds", None) if seconds is None else seconds)

    def _numbered(self) -> list[str]:
        return [f"{i}: {self.row_name(r)}: {label}" for i, (r, label) in enumerate(zip(self.results, self.labels), 1)]

    def _rows(self) -> list[tuple[str, ...]]:
        rows = []
        for i, (r, label, secs) in enumerate(zip(self.results, self.labels, self.seconds), 1):
            rows.append((str(i), label, self.row_name(r), _pct(getattr(r, "val", None)),
                         _pct(getattr(r, "closed", None)), _pct(getattr(r, "open", None)),
                         "cached" if secs is None else f"{secs:.0f} s"))
        return rows

    HEADER = ("#", "run (changes from the preset)", "Table 4 row", "val", "closed", "open", "training time")

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
                   chance: float | None = None, background: bool | None = None) -> AblationPanel:
    """Toggles for D, C and L_percept, the weights w1..w4 and the number of steps (Eq. 7, Table 4).

    ``results`` (e.g. the full model and the G-only baseline, already computed) are shown from the
    start.  Clicking *train and compare* builds ``base.with_(...)`` from the controls, calls
    ``run(cfg)`` (e.g. :func:`gfd.runs.train_and_measure`) and adds its result: every run is listed in
    a table and drawn in a chart (``plot(results, labels)`` if given, else closed/open bars with
    ``chance`` marked), each named by its Table 4 row (:func:`table4_name`) and labelled by every
    field in which it differs from ``base``; its time is the time spent training (a run loaded from
    its folder says "cached").  While it trains, a progress bar follows its steps and *stop* ends it
    at the next step, keeping its checkpoint: the same settings resume it.  In a kernel a click trains
    in a background thread (``background``; see :class:`AblationPanel` for why).  Building the panel
    trains nothing.
    """
    return AblationPanel(base, run, results, plot=plot, chance=chance, background=background)
