"""Runners: train (or load) a method and measure it, over one config or a table of seeds.

:mod:`~gfd.runs.variant`    one method, one config: the function behind the notebooks' loss toggles
:mod:`~gfd.runs.reproduce`  Tables 1 and 4 over seeds, resumable run by run (``python -m gfd reproduce``)
:mod:`~gfd.runs.calibrate`  how hard the benchmark is for the direct classifier (Table 4's G row)

Runners sit above everything they run (data, trainer, baselines, evaluation, reporting); nothing
below imports them.
"""
from gfd.runs.variant import RunResult, train_and_measure

__all__ = ["RunResult", "train_and_measure"]
