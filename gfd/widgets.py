"""ipywidgets front-ends for the notebooks.  Callbacks only call plain functions of ``gfd``.

The panel never runs anything when it is built: headless runs (nbval, ``jupyter nbconvert``)
call the plain function once themselves and display the panel for readers who want to play.
"""
from __future__ import annotations

from typing import Callable

import ipywidgets as w
import matplotlib.pyplot as plt

from gfd.config import Config


def ablation_panel(base: Config, run: Callable[[Config], object], plot: Callable | None = None) -> w.VBox:
    """Toggles for D, C and L_percept, the weights w1..w4 and the number of steps (Eq. 7, Table 4).

    Clicking *train and compare* builds ``base.with_(...)`` from the controls, calls ``run(cfg)``
    (e.g. :func:`gfd.runs.train_and_measure`), and shows every result so far as a table and,
    if ``plot`` is given, ``plot(results)``.
    """
    toggles = {name: w.Checkbox(value=getattr(base, name), description=label, indent=False)
               for name, label in (("use_D", "discriminator D"), ("use_C", "auxiliary classifier C"),
                                   ("use_percept", "perceptual loss"))}
    weights = {name: w.FloatText(value=getattr(base, name), description=name, layout=w.Layout(width="150px"))
               for name in ("w1", "w2", "w3", "w4")}
    steps = w.IntText(value=base.steps, description="steps", layout=w.Layout(width="180px"))
    button = w.Button(description="train and compare", button_style="primary", icon="play")
    out = w.Output()
    results: list = []

    def on_click(_):
        cfg = base.with_(steps=steps.value, **{k: t.value for k, t in toggles.items()},
                         **{k: s.value for k, s in weights.items()})
        button.disabled = True
        try:
            with out:
                out.clear_output()
                results.append(run(cfg))
                out.clear_output()
                for r in results:
                    print(r.summary() if hasattr(r, "summary") else r)
                if plot is not None:
                    plot(results)
                    plt.show()
        finally:
            button.disabled = False

    button.on_click(on_click)
    return w.VBox([w.HBox(list(toggles.values())), w.HBox(list(weights.values())), w.HBox([steps, button]), out])
