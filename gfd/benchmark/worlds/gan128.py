"""The ``gan128`` world: Sec. 4.2.1's 128 px GANs in miniature (Fig. 3(a); Tables 1, 3 and 4), 64 px images.

What gets built (by :mod:`gfd.benchmark.engine`, 64 px RGB PNG in the :mod:`gfd.data` layout)::

    ROOT/train|val|test_closed/<class>/A-<inst>_NNNNN.png   closed world: domain A (plays CelebA)
    ROOT/test_open/<class>/B1-<inst>_NNNNN.png               open world: domains B1 and B2 (play LSUN),
    ROOT/test_open/<class>/B2-<inst>_NNNNN.png               the same families, new generators
    ROOT/variants/<name>/NNNNN.png      factor analysis (Fig. 7 analogue): StyleGAN2-like configs,
                                        the base family and the real inputs they were all fed
    ROOT/classes.json, ROOT/manifest.json

Classes are ``real`` plus one folder per generator *family* (:data:`~gfd.benchmark.generators.FAMILIES`).
A family's images come from several generator **instances**, each trained from its own seed with a
modest change of width and training length (:data:`INSTANCE_VARIATION`): ``n_instances_closed``
(default 2) per family in the closed world, ``n_instances_open`` (default 3) per family in *each*
open domain.  Both open domains share the one ``test_open`` split (``n_open`` images per class and
domain), so every loader of :mod:`gfd.data` reads them unchanged.

**Frozen rules** (:data:`RULES`, also written into the manifest).  No parameter of this module is
chosen from an open-world number:

1. Domains: fixed a priori, pairwise disjoint in shapes, hue ranges and photos (checked at build).
2. Families: the structure of the paper's 128 px set (two families with one architecture and two
   objectives, two with other architectures and objectives), fixed a priori.
3. Generator training length: each generator's own plateau rule on its L1 training loss
   (:class:`~gfd.benchmark.zoo.TrainSettings`), capped by the time budget.
4. Sizes: time budgets on 2 cores, ``quick`` <= 90 s, ``default`` <= 15 min.
5. Acceptance on the closed world only: the direct classifier (Table 4's G row,
   :mod:`gfd.runs.calibrate`) reaches >= 95 % mean closed-world test accuracy over seeds 0-2.  If it
   does not, the only permitted changes are closed-world ones stated here: more training images per
   class, or a larger ``max_steps``.  Open-world accuracy is measured and printed, never read by a rule.

The cache folder is ``data/mini-<size>-s<seed>-<key>`` (:meth:`~gfd.benchmark.engine.World.load`).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np

from gfd.benchmark.domains import DOMAIN_A, DOMAIN_B1, DOMAIN_B2, Domain, disjoint, sample_images
from gfd.benchmark.engine import FORMAT_VERSION, Job, World, rng_for, shares
from gfd.benchmark.generators import FAMILIES, VARIANT_BASE, VARIANTS, GenConfig
from gfd.benchmark.zoo import TrainSettings
from gfd.layout import CLOSED, CLOSED_SPLITS, OPEN, REAL, TEST_OPEN
from gfd.utils import stable_hash

INSTANCE_VARIATION = ((1.0, 1.0), (0.75, 1.25), (1.25, 0.75))
"""(width scale, training-length scale) of instance k: entry k mod 3 (a modest within-family change)."""

RULES = (
    "domains: fixed a priori, pairwise disjoint in shapes, hue ranges and photos (checked at build)",
    "families: the structure of the paper's 128 px set (sngan and infomax share one architecture and "
    "differ in objective; progan and mmdgan differ in architecture and objective), fixed a priori",
    "generator training: Adam, lr halving every half_life steps; stop when the window mean of the L1 "
    "training loss improves by < tol after min_steps, or at max_steps",
    "sizes: time budgets on 2 cores, quick <= 90 s, default <= 15 min",
    "acceptance (closed world only): the direct classifier (Table 4 G row) reaches >= 95 % mean "
    "closed-world test accuracy over seeds 0-2; if not, only more training images per class or a "
    "larger max_steps may change. Open-world numbers are measured and printed, never read by a rule",
)


@dataclass(frozen=True)
class BenchmarkParams:
    """Everything that determines a built benchmark (its cache key is a hash of these)."""

    n_train: int = 750            # images per class in each split (paper: 15k / 1k / 4k / 4k)
    n_val: int = 50
    n_test: int = 200
    n_open: int = 200             # per class and per open domain (test_open holds 2 x n_open per class)
    n_variant: int = 200          # images per factor-analysis variant
    gen_pool: int = 600           # real images each generator is trained on (its own draw)
    image_size: int = 64
    seed: int = 0
    n_instances_closed: int = 2   # generator instances per family in the closed world
    n_instances_open: int = 3     # ... and in each open domain
    train: TrainSettings = field(default_factory=TrainSettings)
    domain_closed: Domain = DOMAIN_A
    domain_open: Domain = DOMAIN_B1
    domain_open2: Domain = DOMAIN_B2
    families: tuple[GenConfig, ...] = FAMILIES
    variant_base: str = VARIANT_BASE
    variants: tuple[GenConfig, ...] = VARIANTS

    def __post_init__(self):
        counts = {k: getattr(self, k) for k in ("n_train", "n_val", "n_test", "n_open", "n_variant", "gen_pool",
                                                "n_instances_closed", "n_instances_open")}
        bad = {k: v for k, v in counts.items() if not isinstance(v, int) or v < 1}
        if bad:
            raise ValueError(f"benchmark sizes must be positive integers, got {bad}")
        names = [REAL] + [f.name for f in self.families]
        if len(set(names)) != len(names):
            raise ValueError(f"class names must be unique and not {REAL!r}: {names}")
        if self.variant_base not in names[1:]:
            raise ValueError(f"variant_base {self.variant_base!r} is not one of the families {names[1:]}")
        worlds = self.worlds
        for i, a in enumerate(worlds):
            for b in worlds[i + 1:]:
                if a.name == b.name or not disjoint(a, b):
                    raise ValueError(f"domains {a.name} and {b.name} must have distinct names and share no "
                                     f"shape, hue or photo (rule 1)")

    @property
    def classes(self) -> list[str]:
        return [REAL] + [f.name for f in self.families]

    @property
    def worlds(self) -> tuple[Domain, ...]:
        """The closed-world domain, then the open ones."""
        return (self.domain_closed, self.domain_open, self.domain_open2)

    @property
    def closed_worlds(self) -> tuple[str]:
        return (self.domain_closed.name,)

    @property
    def n_closed(self) -> int:
        """Images per class in the closed world (train + val + test_closed)."""
        return self.n_train + self.n_val + self.n_test

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))  # tuples -> lists: the form stored in the manifest

    def key(self) -> str:
        """A short hash of the parameters and the format version (the cache key)."""
        return stable_hash({"format_version": FORMAT_VERSION, "params": self.to_dict()}, length=10)


SIZES: dict[str, dict[str, Any]] = {
    "quick": dict(n_train=150, n_val=20, n_test=60, n_open=60, n_variant=40, gen_pool=128,
                  train=TrainSettings(max_steps=40, min_steps=20, window=10, half_life=20)),
    "default": dict(n_train=750, n_val=50, n_test=200, n_open=200, n_variant=200, gen_pool=600,
                    train=TrainSettings(max_steps=600, min_steps=200, window=50, half_life=200)),
}


def real_images(p: BenchmarkParams) -> list[tuple[Domain, tuple[int, ...]]]:
    """The real class: ``n_closed`` images of the closed domain over its splits, ``n_open`` of each open one."""
    return [(p.domain_closed, (p.n_train, p.n_val, p.n_test))] + [(d, (p.n_open,)) for d in p.worlds[1:]]


def variant_inputs(p: BenchmarkParams) -> dict[str, np.ndarray]:
    """The real images every factor-analysis generator is fed (``variants/real``), of the closed domain."""
    d = p.domain_closed
    return {REAL: sample_images(rng_for(p.seed, f"{d.name}/feed/variants"), d, p.n_variant, p.image_size)}


def plan_jobs(p: BenchmarkParams, inputs: Mapping[str, np.ndarray]) -> list[Job]:
    """One job per generator: every family x instance in each world, then the variants (Fig. 7 analogue).

    A closed-world instance is fed its share of each of train / val / test_closed; an open-world
    instance its share of ``n_open``.  Instance 0 of the variant base family in world A and every
    variant are also fed the variant inputs.
    """
    fed = inputs[REAL]
    jobs = []
    for world in p.worlds:
        closed = world.name in p.closed_worlds
        k = p.n_instances_closed if closed else p.n_instances_open
        for cfg in p.families:
            for i in range(k):
                width_scale, steps_scale = INSTANCE_VARIATION[i % len(INSTANCE_VARIATION)]
                counts = (tuple(shares(n, k)[i] for n in (p.n_train, p.n_val, p.n_test)) if closed
                          else (shares(p.n_open, k)[i],))
                extra = fed if closed and i == 0 and cfg.name == p.variant_base else None
                jobs.append(Job(cfg.scaled(width_scale), cfg.name, world.name, i, p.train.scaled(steps_scale),
                                counts, extra))
    jobs += [Job(cfg, cfg.name, p.domain_closed.name, 0, p.train, (), fed) for cfg in p.variants]
    return jobs


def describe(p: BenchmarkParams) -> dict[str, Any]:
    """This world's manifest fields: its domains and roles, file names, the factor-analysis folders."""
    variant_names = [REAL, p.variant_base] + [v.name for v in p.variants]
    return {
        "worlds": {
            p.domain_closed.name: {"role": CLOSED, "splits": list(CLOSED_SPLITS),
                                   "instances_per_family": p.n_instances_closed, "domain": p.domain_closed.to_dict()},
            **{d.name: {"role": OPEN, "splits": [TEST_OPEN], "prefix": f"{d.name}-",
                        "instances_per_family": p.n_instances_open, "domain": d.to_dict()}
               for d in p.worlds[1:]},
        },
        "file_names": "<world>-g<k>_NNNNN.png: instance k of the family in that world; <world>-real_NNNNN.png: real",
        "variants": {"base": p.variant_base, "names": variant_names,
                     "counts": {v: p.n_variant for v in variant_names}},
    }


WORLD = World(name="gan128", cache_prefix="mini", params=BenchmarkParams, sizes=SIZES, rules=RULES,
              real=real_images, inputs=variant_inputs, plan=plan_jobs, describe=describe)

make_params = WORLD.make_params
cache_name = WORLD.cache_name
build_benchmark = WORLD.build
load_mini_benchmark = WORLD.load
