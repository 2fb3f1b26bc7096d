"""The offline mini benchmark ("GAN zoo"): the structure of the paper's Sec. 4.2.1 without downloads.

``load_mini_benchmark()`` returns the folder of a built benchmark (building it on first use);
:mod:`~gfd.benchmark.domains` draws the real images, :mod:`~gfd.benchmark.generators` holds the
generator families, :mod:`~gfd.benchmark.zoo` trains them, :mod:`~gfd.benchmark.build` writes and
caches the splits.
"""
from gfd.benchmark.build import (FORMAT_VERSION, SIZES, BenchmarkParams, check_benchmark, load_mini_benchmark,
                                 make_params, read_manifest)
from gfd.benchmark.generators import FAMILIES, VARIANTS, GenConfig

__all__ = ["FORMAT_VERSION", "SIZES", "BenchmarkParams", "check_benchmark", "load_mini_benchmark",
           "make_params", "read_manifest", "FAMILIES", "VARIANTS", "GenConfig"]
