"""The offline mini benchmark ("GAN zoo", v2): the structure of the paper's Sec. 4.2.1 without downloads.

``load_mini_benchmark()`` returns the folder of a built benchmark (building it on first use);
:mod:`~gfd.benchmark.domains` draws the real images of the three content domains (A closed, B1 and
B2 open), :mod:`~gfd.benchmark.generators` holds the generator families, :mod:`~gfd.benchmark.zoo`
trains them (one plateau rule), :mod:`~gfd.benchmark.build` writes, caches and resumes the splits,
:mod:`~gfd.benchmark.sources` says where each image comes from (world, instance);
:mod:`~gfd.benchmark.gan1024` builds the high-resolution world of Sec. 4.2.2 (Table 2) from the same
parts (:mod:`~gfd.benchmark.builtin`'s :func:`load_benchmark` picks either by name); the figures of
each world are :mod:`gfd.plots`'s, the spectral distances within and between families
:mod:`gfd.analysis.families`'.
"""
from gfd.benchmark.build import (FORMAT_VERSION, RULES, SIZES, BenchmarkParams, check_benchmark, image_groups,
                                 load_mini_benchmark, make_params, read_manifest)
from gfd.benchmark.builtin import BENCHMARKS, load_benchmark
from gfd.benchmark.generators import FAMILIES, VARIANTS, GenConfig

__all__ = ["BENCHMARKS", "load_benchmark", "FORMAT_VERSION", "RULES", "SIZES", "BenchmarkParams", "check_benchmark",
           "image_groups", "load_mini_benchmark", "make_params", "read_manifest", "FAMILIES", "VARIANTS", "GenConfig"]
