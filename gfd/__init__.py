"""gfd: GFD-Net (GAN Fingerprint Disentangling Network, Yang et al. 2021) for the course notebooks.

This file only re-exports the names the notebooks use; each idea lives in its own module.  Data
flow one way: folders (or the built-in benchmark) -> :func:`load_data` -> :mod:`gfd.train` ->
checkpoint -> :mod:`gfd.evaluate` / :mod:`gfd.analysis` -> :mod:`gfd.report` -> notebooks.
``gfd.plots``, ``gfd.widgets``, ``gfd.baselines``, ``gfd.runs`` and ``gfd.report`` load on first
use, so the core and the command line do not pay for them.
"""
__version__ = "0.1.0"

import importlib
import os

# OpenMP threads that spin while waiting make torch ~20x slower on a 2-core machine with any other
# load (measured); this must be set before torch is first imported to take effect.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from gfd.config import PRESETS, Config, default_preset, describe_presets, get_config  # noqa: E402
from gfd.utils import choose_device, runs_dir, seed_everything  # noqa: E402
from gfd import analysis, benchmark, data, evaluate, inference, layout, paper, train, utils  # noqa: E402
from gfd.benchmark import load_mini_benchmark  # noqa: E402
from gfd.data import load_data  # noqa: E402

__all__ = ["PRESETS", "Config", "default_preset", "describe_presets", "get_config", "choose_device", "runs_dir",
           "seed_everything", "analysis", "benchmark", "data", "evaluate", "inference", "layout", "paper", "train",
           "utils", "load_mini_benchmark", "load_data"]

_LAZY = ("plots", "widgets", "baselines", "runs", "report")


def __getattr__(name: str):
    if name in _LAZY:
        return importlib.import_module(f"gfd.{name}")
    raise AttributeError(f"module 'gfd' has no attribute {name!r}")
