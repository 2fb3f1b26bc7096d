"""The offline mini benchmark ("GAN zoo", v2): the structure of the paper's Sec. 4.2 without downloads.

``load_mini_benchmark()`` returns the folder of a built benchmark (building it on first use);
:mod:`~gfd.benchmark.domains` draws the real images of the content domains,
:mod:`~gfd.benchmark.generators` holds the generator families, :mod:`~gfd.benchmark.zoo` trains
them (one plateau rule), :mod:`~gfd.benchmark.engine` builds, writes, caches and resumes every
world, and :mod:`~gfd.benchmark.worlds` declares the worlds: ``gan128`` (Sec. 4.2.1, Tables 1, 3
and 4) and ``gan1024`` (Sec. 4.2.2, Table 2); :mod:`~gfd.benchmark.builtin`'s :func:`load_benchmark`
picks either by name.  The test-only shift worlds (:mod:`~gfd.benchmark.worlds.shifts`: domain A with
one factor changed -- instances, content, acquisition, recipe, post-processing -- or the paper's
several at once) are reached by name with :func:`load_shift_world`.  :mod:`~gfd.benchmark.sources`
says where each image comes from (world, instance); the figures of each world are :mod:`gfd.plots`'s, the spectral distances within and
between families :mod:`gfd.analysis.families`'.
"""
from gfd.benchmark.engine import FORMAT_VERSION, check_benchmark, image_groups, read_manifest
from gfd.benchmark.worlds import gan128, gan1024
from gfd.benchmark.worlds.gan128 import RULES, SIZES, BenchmarkParams, load_mini_benchmark, make_params
from gfd.benchmark.builtin import BENCHMARKS, benchmark_name, load_benchmark
from gfd.benchmark.generators import FAMILIES, VARIANTS, GenConfig
from gfd.benchmark.worlds import shifts
from gfd.benchmark.worlds.shifts import SHIFT_WORLDS, load_shift_world, load_shift_worlds

__all__ = ["BENCHMARKS", "benchmark_name", "load_benchmark", "FORMAT_VERSION", "RULES", "SIZES", "BenchmarkParams", "check_benchmark",
           "image_groups", "load_mini_benchmark", "make_params", "read_manifest", "FAMILIES", "VARIANTS", "GenConfig",
           "gan128", "gan1024", "shifts", "SHIFT_WORLDS", "load_shift_world", "load_shift_worlds"]
