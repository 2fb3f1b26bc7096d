"""The built-in benchmarks by name (``Config.benchmark``): the two resolutions of Sec. 4.2.

``gan128`` plays Sec. 4.2.1's 128 px GANs (:mod:`gfd.benchmark.worlds.gan128`, 64 px images, Tables
1, 3, 4); ``gan1024`` plays Sec. 4.2.2's 1024 px GANs (:mod:`gfd.benchmark.worlds.gan1024`, 128 px
images cropped without resizing, Table 2).  Either is built on first use and read from its cache
afterwards.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from gfd.benchmark.worlds import gan128, gan1024
from gfd.benchmark.worlds.gan128 import load_mini_benchmark
from gfd.benchmark.worlds.gan1024 import load_gan1024_benchmark

BENCHMARKS = ("gan128", "gan1024")
WORLDS = {"gan128": gan128.WORLD, "gan1024": gan1024.WORLD}


def load_benchmark(benchmark: str = "gan128", size: str = "default", **kwargs: Any) -> Path:
    """The folder of built-in benchmark ``benchmark`` (one of :data:`BENCHMARKS`) of ``size``, built on
    first use; ``kwargs`` as for :func:`gfd.benchmark.load_mini_benchmark`."""
    loaders = {"gan128": load_mini_benchmark, "gan1024": load_gan1024_benchmark}
    if benchmark not in loaders:
        raise KeyError(f"unknown benchmark {benchmark!r}; choose one of {BENCHMARKS}")
    return loaders[benchmark](size, **kwargs)


def benchmark_name(benchmark: str = "gan128", size: str = "default", seed: int = 0) -> str:
    """The cache folder name :func:`load_benchmark` gives that benchmark (it holds the parameters'
    key), known without building it: a run's data identity."""
    if benchmark not in WORLDS:
        raise KeyError(f"unknown benchmark {benchmark!r}; choose one of {BENCHMARKS}")
    world = WORLDS[benchmark]
    return world.cache_name(world.make_params(size, seed), size)
