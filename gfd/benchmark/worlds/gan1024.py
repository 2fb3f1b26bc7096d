"""The benchmark's high-resolution world: the roles of Sec. 4.2.2's 1024 px GANs in miniature (Table 2).

Sec. 4.2.2 attributes four classes, real, ProGAN, StyleGAN and StyleGAN2.  Closed world: real
images sampled equally from FFHQ and CelebA-HQ, and images of the public StyleGAN-FFHQ,
StyleGAN2-FFHQ and ProGAN-CelebA-HQ (15k / 1k / 4k per class).  Open world: StyleGAN models trained
on ten other face data sets (seeprettyface) and StyleGAN2 models trained on four of them, 4k images
each; every open model is a column of Table 2.  Images are randomly (train) or centrally (test)
cropped to 224 px, never resized.

The miniature (128 px RGB PNG, so that the CPU presets' 48 px crop is a crop without resizing:
transform ``p1024``; the layout of :mod:`gfd.data`)::

    domain   plays                      trained on it
    F        FFHQ (closed)              stylegan, stylegan2 (one generator each); half of real
    H        CelebA-HQ (closed)         progan (one generator);                   the other half
    O1-O3    seeprettyface data sets    stylegan on O1, O2, O3; stylegan2 on O1, O2 (the open models,
             (open)                     Table 2's columns); progan on O1 and O1-O3's real images (below)

    ROOT/train|val|test_closed/<class>/{F,H}-{g0,real}_NNNNN.png
    ROOT/test_open/<class>/O<k>-{g0,real}_NNNNN.png
    ROOT/classes.json, ROOT/manifest.json      (manifest["open_models"]: Table 2's columns)

Families (:data:`FAMILIES`, generators of :mod:`gfd.benchmark.generators`, trained by
:mod:`gfd.benchmark.zoo`): ``progan`` is the 128 px world's (nearest up-sampling, pixel norm,
feed-forward, least squares); ``stylegan`` up-samples by nearest + conv with AdaIN, feed-forward
(StyleGAN2's config A, the official StyleGAN); ``stylegan2`` up-samples by transposed convolution with
weight demodulation and a skip generator (config F's generator; StyleGAN2 up-samples by a transposed
convolution).  The two style-based families share one objective (hinge, spectral-norm PatchGAN), as
StyleGAN and StyleGAN2 share theirs; ``progan`` differs in architecture and objective, as ProGAN does.

**One deviation from the paper**, forced by the layout (every class in every split): the paper's open
world holds no real image and no ProGAN, ours also holds the real images of O1-O3 and one ProGAN
trained on O1.  They are no column of Table 2 (each run's record keeps their accuracy).

**Frozen rules** (:data:`RULES`, also in the manifest); 1-5 are fixed a priori, 6 rests on closed-world
numbers only (no open-world number enters any rule):

1. Domains: all five draw disks and ellipses (all of the paper's data sets are faces) and are pairwise
   disjoint in hue range and photos (checked at build).
2. Families and which generator trains on which domain: the structure of Sec. 4.2.2, as above.
3. Generator training: the 128 px world's plateau rule (:class:`~gfd.benchmark.zoo.TrainSettings`) on
   random 64 px crops (half the image side, as the 128 px world's 32 of 64).
4. Sizes: time budgets on 2 cores, ``quick`` <= 90 s, ``default`` <= 15 min; per class as the 128 px
   world (750 / 50 / 200), ``n_open`` images per open model.
5. No acceptance rule reads an open-world number.
6. Scale: the shapes keep the 64 px world's size and density *in pixels* (1000 shapes of radius
   0.01-0.25 of the 128 px side, :data:`SCALE`), so a 48 px crop holds as many edges as a 48 px crop
   of a 64 px image (a 224 px crop of a 1024 px face is full of detail too).  Drawn at the 64 px
   world's fractions of the side instead, the shapes would be twice as large in pixels and most
   48 px crops would hold a few flat shapes, too little for the direct classifier (Table 4's G row)
   to meet the closed-world acceptance rule of the 64 px world.

Building, caching, resuming and determinism are :mod:`gfd.benchmark.engine`'s (one thread per
generator, every draw seeded by (seed, purpose)); the cache folder is
``data/gan1024-<size>-s<seed>-<key>``.  Nothing is built until the ``gan1024`` benchmark is asked for
(``Config.benchmark``, ``reproduce --table 2``).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np

from gfd.benchmark.domains import Domain, hue_ranges_overlap
from gfd.benchmark.engine import FORMAT_VERSION, Job, World, shares
from gfd.benchmark.generators import GenConfig
from gfd.benchmark.zoo import TrainSettings
from gfd.layout import CLOSED, CLOSED_SPLITS, OPEN, REAL, TEST_OPEN
from gfd.utils import stable_hash

VERSION = 1
"""Bump when code that shapes this world's images changes (its caches then rebuild)."""

FACES = ("disk", "ellipse")
SCALE = dict(n_shapes=1000, r_min=0.01, r_max=0.25)
"""Rule 6: shape sizes and density of the 64 px world (:mod:`gfd.benchmark.domains`: 250 shapes, radius
0.02-0.5 of the side) kept *in pixels* at 128 px, so a 48 px crop sees as much structure here as there."""
DOMAIN_F = Domain(name="F", shapes=FACES, hue=(0.95, 0.12), saturation=(0.2, 0.7), value=(0.35, 1.0),
                  photos=("astronaut",), **SCALE)
DOMAIN_H = Domain(name="H", shapes=FACES, hue=(0.14, 0.28), saturation=(0.2, 0.7), value=(0.35, 1.0),
                  photos=("chelsea",), **SCALE)
DOMAIN_O1 = Domain(name="O1", shapes=FACES, hue=(0.32, 0.46), saturation=(0.2, 0.7), value=(0.35, 1.0),
                   photos=("coffee",), **SCALE)
DOMAIN_O2 = Domain(name="O2", shapes=FACES, hue=(0.50, 0.64), saturation=(0.2, 0.7), value=(0.35, 1.0),
                   photos=("rocket",), **SCALE)
DOMAIN_O3 = Domain(name="O3", shapes=FACES, hue=(0.68, 0.82), saturation=(0.2, 0.7), value=(0.35, 1.0),
                   photos=("hubble_deep_field",), **SCALE)
PLAYS = {"F": "FFHQ", "H": "CelebA-HQ", "O1": "a seeprettyface data set", "O2": "a seeprettyface data set",
         "O3": "a seeprettyface data set"}

FAMILIES = (
    GenConfig("progan", "nearest", "pixel", objective="lsgan"),
    GenConfig("stylegan", "nearest", "adain", objective="hinge_sn"),
    GenConfig("stylegan2", "tconv", "demod", block="skip", objective="hinge_sn"),
)
CLOSED_MODELS = (("progan", "H"), ("stylegan", "F"), ("stylegan2", "F"))
"""(family, domain) of the closed world's generators: ProGAN-CelebA-HQ, StyleGAN-FFHQ, StyleGAN2-FFHQ."""
OPEN_MODELS = (("stylegan", "O1"), ("stylegan", "O2"), ("stylegan", "O3"), ("stylegan2", "O1"),
               ("stylegan2", "O2"))
"""(family, domain) of the open models: Table 2's columns (StyleGAN on every open data set, StyleGAN2
on some, as in the paper)."""
OPEN_EXTRA = (("progan", "O1"),)
"""Open-world generators that are no column of Table 2: the layout needs a ProGAN image in test_open."""

RULES = (
    "domains: all draw disks and ellipses (the paper's data sets are all faces); pairwise disjoint in hue "
    "range and photos (checked at build)",
    "families and domains: Sec. 4.2.2's structure: closed world ProGAN on H (CelebA-HQ), StyleGAN and "
    "StyleGAN2 on F (FFHQ), real half F half H; open world StyleGAN on O1-O3 and StyleGAN2 on O1-O2 (the "
    "Table 2 columns), plus a ProGAN on O1 and O1-O3's real images because the layout needs every class",
    "generator training: the 128 px world's plateau rule, on random crops of half the image side",
    "sizes: time budgets on 2 cores, quick <= 90 s, default <= 15 min",
    "no acceptance rule reads an open-world number",
    "scale (added after the first design missed the calibration rule on closed-world val): shapes keep "
    "the 64 px world's size and density in pixels (1000 shapes, radius 0.01-0.25 of the 128 px side)",
)


@dataclass(frozen=True)
class Gan1024Params:
    """Everything that determines a built ``gan1024`` world (its cache key is a hash of these)."""

    n_train: int = 750            # images per class (real: half F, half H); paper 15k / 1k / 4k
    n_val: int = 50
    n_test: int = 200
    n_open: int = 200             # images per open model (and real images per open domain); paper 4k
    gen_pool: int = 600           # real images each generator is trained on (its own draw)
    image_size: int = 128
    seed: int = 0
    train: TrainSettings = field(default_factory=lambda: TrainSettings(crop=64))
    domains: tuple[Domain, ...] = (DOMAIN_F, DOMAIN_H, DOMAIN_O1, DOMAIN_O2, DOMAIN_O3)
    families: tuple[GenConfig, ...] = FAMILIES
    closed_models: tuple[tuple[str, str], ...] = CLOSED_MODELS
    open_models: tuple[tuple[str, str], ...] = OPEN_MODELS
    open_extra: tuple[tuple[str, str], ...] = OPEN_EXTRA

    def __post_init__(self):
        counts = {k: getattr(self, k) for k in ("n_train", "n_val", "n_test", "n_open", "gen_pool")}
        bad = {k: v for k, v in counts.items() if not isinstance(v, int) or v < 1}
        if bad:
            raise ValueError(f"benchmark sizes must be positive integers, got {bad}")
        if self.train.crop > self.image_size:
            raise ValueError(f"generator crop {self.train.crop} > image size {self.image_size}")
        names = [d.name for d in self.domains]
        for i, a in enumerate(self.domains):
            for b in self.domains[i + 1:]:
                if a.name == b.name or set(a.photos) & set(b.photos) or hue_ranges_overlap(a, b):
                    raise ValueError(f"domains {a.name} and {b.name} must have distinct names and share no "
                                     f"hue or photo (rule 1)")
        fams = {f.name for f in self.families}
        for fam, dom in (*self.closed_models, *self.open_models, *self.open_extra):
            if fam not in fams or dom not in names:
                raise ValueError(f"model ({fam}, {dom}): unknown family or domain ({sorted(fams)}, {names})")
        closed, opened = self.closed_worlds, self.open_worlds
        if not closed or set(closed) & set(opened):
            raise ValueError(f"closed domains {closed} and open domains {opened} must be disjoint, closed non-empty")
        missing = fams - {f for f, _ in self.closed_models}
        missing_open = fams - {f for f, _ in (*self.open_models, *self.open_extra)}
        if missing or missing_open:
            raise ValueError(f"every family needs a closed and an open generator; missing {missing} / {missing_open}")

    @property
    def classes(self) -> list[str]:
        return [REAL] + [f.name for f in self.families]

    @property
    def closed_worlds(self) -> list[str]:
        """Domains of the closed world (those with a closed model), in ``domains`` order."""
        used = {d for _, d in self.closed_models}
        return [d.name for d in self.domains if d.name in used]

    @property
    def open_worlds(self) -> list[str]:
        used = {d for _, d in (*self.open_models, *self.open_extra)}
        return [d.name for d in self.domains if d.name in used]

    @property
    def worlds(self) -> tuple[Domain, ...]:
        """Every domain (the name :func:`gfd.benchmark.engine.train_and_generate` looks them up by)."""
        return self.domains

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def key(self) -> str:
        """A short hash of the parameters and both format versions (the cache key)."""
        return stable_hash({"benchmark": "gan1024", "version": VERSION, "format_version": FORMAT_VERSION,
                            "params": self.to_dict()}, length=10)


SIZES: dict[str, dict[str, Any]] = {
    "quick": dict(n_train=150, n_val=20, n_test=60, n_open=60, gen_pool=128,
                  train=TrainSettings(max_steps=40, min_steps=20, window=10, half_life=20, crop=64)),
    "default": dict(n_train=750, n_val=50, n_test=200, n_open=200, gen_pool=600,
                    train=TrainSettings(max_steps=600, min_steps=200, window=50, half_life=200, crop=64)),
}
"""The same names as :data:`gfd.benchmark.worlds.gan128.SIZES` (``Config.benchmark_size`` picks either world's)."""


def real_images(p: Gan1024Params) -> list[tuple[Domain, tuple[int, ...]]]:
    """The real class: each closed split shared between the closed domains (F first), and ``n_open``
    real images of every open domain in test_open."""
    closed, domains = p.closed_worlds, {d.name: d for d in p.domains}
    draws = [(domains[name], tuple(shares(n, len(closed))[k] for n in (p.n_train, p.n_val, p.n_test)))
             for k, name in enumerate(closed)]
    return draws + [(domains[name], (p.n_open,)) for name in p.open_worlds]


def plan_jobs(p: Gan1024Params, inputs: Mapping[str, np.ndarray] | None = None) -> list[Job]:
    """One job per generator: a closed model is fed one array per closed split (n_train, n_val,
    n_test images), an open one ``n_open`` images; every generator is instance 0 of its domain."""
    fams = {f.name: f for f in p.families}
    jobs = [Job(fams[f], f, d, 0, p.train, (p.n_train, p.n_val, p.n_test)) for f, d in p.closed_models]
    jobs += [Job(fams[f], f, d, 0, p.train, (p.n_open,)) for f, d in (*p.open_models, *p.open_extra)]
    return jobs


def describe(p: Gan1024Params) -> dict[str, Any]:
    """This world's manifest fields: its name and version, domains and roles (and what each plays),
    the closed models, Table 2's open models and the open extras, and its file names."""
    models = lambda pairs: [{"family": f, "world": d, "source": f"{d}/{f}/g0"} for f, d in pairs]  # noqa: E731
    return {
        "benchmark": "gan1024",
        "version": VERSION,
        "worlds": {d.name: ({"role": CLOSED, "splits": list(CLOSED_SPLITS)} if d.name in p.closed_worlds
                            else {"role": OPEN, "splits": [TEST_OPEN], "prefix": f"{d.name}-"})
                   | {"plays": PLAYS.get(d.name, ""), "domain": d.to_dict()} for d in p.domains},
        "closed_models": models(p.closed_models),
        "open_models": models(p.open_models),
        "open_extra": models(p.open_extra),
        "file_names": "<world>-g0_NNNNN.png: the family's generator trained on that world; "
                      "<world>-real_NNNNN.png: real",
    }


WORLD = World(name="gan1024", cache_prefix="gan1024", params=Gan1024Params, sizes=SIZES, rules=RULES,
              real=real_images, plan=plan_jobs, describe=describe)

make_params = WORLD.make_params
cache_name = WORLD.cache_name
build_gan1024 = WORLD.build
load_gan1024_benchmark = WORLD.load
