"""Test-only shift worlds: the closed world of ``gan128`` (domain A) with ONE factor changed at a time.

Sec. 4.2.1 trains every GAN on CelebA (closed world) and tests on the same architectures trained on
LSUN bedroom (open world, Table 1).  Between the two, several things change at once: the content
(faces vs rooms), the imaging history of the real images and of the GANs' training data (cameras,
JPEG, resizing), and the GANs themselves (separate models, their own training recipes).  The
``gan128`` world's open domains B1/B2 change content and colours but keep the camera and the recipe.
Each world here changes one factor relative to domain A, with the same five classes (``real``,
``progan``, ``mmdgan``, ``sngan``, ``infomax``) and several generator instances per family, so that an
attribution method trained on the closed world can be asked which shift breaks it:

=================  ===============================================================================
world              what differs from domain A (everything else is A's)
=================  ===============================================================================
``instance``       nothing but the draw: new generator instances (new seeds) trained on A's content
                   through A's camera with A's recipe; new real images of A
``content``        another content spectrum (:data:`CONTENT`): many small straight-edged shapes with
                   grating-textured fills, against A's large smooth flat disks and ellipses (same
                   colours, photos, camera and recipe)
``acquisition``    A's content through another camera (:data:`CAMERA_Q`: Lanczos reduction,
                   Poisson-Gaussian noise, unsharp mask, JPEG q85), for the real images and for the
                   generators' training data and inputs
``recipe``         generators trained by another recipe (:data:`RECIPE`: learning rate, adversarial
                   weight, discriminator width, batch size, generator width), A's content and camera
``post-<op><k>``   no new generators: the ``gan128`` build's own ``test_closed`` images after one
                   post-processing step (:data:`POST`: JPEG q90/75/50, down-and-up resizing to
                   0.75/0.5 of the side, Gaussian blur sigma 0.5/1.0)
``paper``          content + acquisition + recipe + new instances together (the paper's open world)
=================  ===============================================================================

Every world is test-only: its images lie in one split, :data:`gfd.layout.TEST_SPLIT`
(``ROOT/test/<class>/``, ``classes.json`` and ``manifest.json`` as every build), with file names
``<tag>-g<k>_NNNNN.png`` (instance k of the class's family; for a post-processing world, instance k
of the closed world) and ``<tag>-real_NNNNN.png``, so :mod:`gfd.benchmark.sources` averages over
instances as for the open world.  Each world is a :class:`~gfd.benchmark.engine.World` of the engine
(:data:`WORLDS`), declared with that one split: the generators, their plateau rule, the writing,
the manifest, the cache and resuming are the engine's.  A post-processing world's images are derived
from the ``gan128`` build of the same size and seed (built first if needed; its key holds that
build's name).

**Frozen rules** (:data:`RULES`, also in each manifest): the worlds and their parameters were fixed
from classifier-free statistics of the images only (:mod:`gfd.analysis.shift_stats`), before any
classifier saw a shift world; no parameter changes after ``results/preregistration.md`` is committed.

    root = load_shift_world("acquisition", "quick")     # built on first use, then read from the cache
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from PIL import Image

from gfd.benchmark.domains import DOMAIN_A, Camera, ShiftDomain
from gfd.benchmark.engine import FORMAT_VERSION, MANIFEST, Job, World, shares
from gfd.benchmark.generators import FAMILIES, GenConfig
from gfd.benchmark.worlds import gan128
from gfd.benchmark.writer import Writer
from gfd.benchmark.zoo import TrainSettings
from gfd.layout import REAL, TEST_CLOSED, TEST_SPLIT, list_images
from gfd.utils import data_dir, stable_hash

VERSION = 1
"""Bump when code that shapes a shift world's images changes (its caches then rebuild)."""
CACHE_PREFIX = "shift"

# --- the factors, fixed a priori (see RULES) --------------------------------------------------------
CONTENT = dict(shapes=("rect", "triangle"), n_shapes=700, r_min=0.01, r_max=0.15, size_power=1.5,
               fill="grating", texture=0.3, texture_period=(2.0, 8.0))
"""The content world's dead leaves: 700 straight-edged shapes of radius 0.01-0.15 of the side (A: 250
disks and ellipses of 0.02-0.5, size power 2.5), each filled with a grating of 30 % amplitude and a
2-8 px period (A: flat fills).  A's colours, photos and photo share are kept."""
CAMERA_Q = Camera(kernel="lanczos", noise="poisson-gaussian", gain=40.0, sigma=1.0, sharpen=0.5,
                  sharpen_radius=1.0, jpeg=85)
"""The acquisition world's camera (A: box reduction, Gaussian noise sigma 1.5, no sharpening, PNG):
Lanczos reduction, shot noise of 40 photo-electrons per level (std 1.8 levels at mid-grey) plus read
noise sigma 1, unsharp mask 50 % radius 1 px, JPEG quality 85."""
RECIPE = dict(lr=1e-3, adv_weight=0.3, disc_width=24, batch_size=8)
"""The recipe world's training changes (A: lr 2e-3, adversarial weight 0.1, discriminator width 16,
batch 16), and :data:`RECIPE_WIDTH` for the generators' width."""
RECIPE_WIDTH = 1.5
"""Generator width multiplier of the recipe world (on top of each instance's own variation)."""
RECIPE_FIELDS = (*RECIPE, "width")
POST = {"jpeg90": ("jpeg", 90), "jpeg75": ("jpeg", 75), "jpeg50": ("jpeg", 50),
        "resize75": ("resize", 0.75), "resize50": ("resize", 0.5),
        "blur05": ("blur", 0.5), "blur10": ("blur", 1.0)}
"""Post-processing worlds: tag -> (operation, strength).  ``jpeg``: PIL JPEG at that quality (4:2:0);
``resize``: bicubic (antialiased) down to that fraction of the side, bilinear back up; ``blur``:
Gaussian blur of that sigma in pixels (scipy, reflect borders)."""

RULES = (
    "factors: each world changes one factor relative to the gan128 world's domain A (instance, content, "
    "acquisition, recipe, post-processing) or, for 'paper', content + acquisition + recipe + instances; the "
    "factors' parameters are fixed a priori in this module",
    "classifier-free: every parameter was fixed from statistics of the images alone (gfd.analysis.shift_stats: "
    "real-class spectral distance to A against A's split-half distance, per-family spectral distance to A "
    "against the distance between families, colour-histogram distance); no classifier was evaluated on a "
    "shift world before results/preregistration.md was committed",
    "frozen: after the preregistration is committed no world or parameter changes; a change goes to "
    "docs/decisions.md with the numbers known then",
    "generators: the gan128 families, instance variation and plateau rule; 3 instances per family (quick: 2)",
    "sizes: the gan128 sizes' test count, generator pool and training settings; all shift worlds build in "
    "<= 15 min (default) / <= 90 s (quick) on 2 cores",
)


# --------------------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShiftParams:
    """Everything that determines a generator shift world (its cache key is a hash of these)."""

    world: str                    # the world's name (instance, content, acquisition, recipe, paper)
    domain: ShiftDomain           # its content and camera; domain.name is the file-name tag
    n_test: int = 200             # images per class
    n_instances: int = 3          # generator instances per family
    gen_pool: int = 600           # real images each generator is trained on (its own draw)
    image_size: int = 64
    seed: int = 0
    train: TrainSettings = field(default_factory=TrainSettings)
    width_scale: float = 1.0      # every instance's generator width times this (the recipe world)
    families: tuple[GenConfig, ...] = FAMILIES

    def __post_init__(self):
        bad = {k: getattr(self, k) for k in ("n_test", "n_instances", "gen_pool")
               if not isinstance(getattr(self, k), int) or getattr(self, k) < 1}
        if bad:
            raise ValueError(f"shift world sizes must be positive integers, got {bad}")
        if "-" in self.domain.name or "_" in self.domain.name:
            raise ValueError(f"domain name {self.domain.name!r} is a file-name tag: no '-' or '_'")

    @property
    def classes(self) -> list[str]:
        return [REAL] + [f.name for f in self.families]

    @property
    def worlds(self) -> tuple[ShiftDomain, ...]:
        return (self.domain,)

    @property
    def closed_worlds(self) -> tuple[str, ...]:
        return ()

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def key(self) -> str:
        return stable_hash({"benchmark": "shift", "version": VERSION, "format_version": FORMAT_VERSION,
                            "params": self.to_dict()}, length=10)


@dataclass(frozen=True)
class PostParams:
    """Everything that determines a post-processing world: the operation, and the ``gan128`` build
    (by its cache folder name, which holds its key) whose ``test_closed`` images it processes."""

    world: str                    # "post-<tag>"
    tag: str                      # the file-name tag (jpeg90, resize50, blur10, ...)
    op: str                       # jpeg / resize / blur
    strength: float
    source: str                   # the gan128 build's folder name
    source_size: str
    seed: int = 0
    image_size: int = 64
    families: tuple[GenConfig, ...] = FAMILIES

    @property
    def classes(self) -> list[str]:
        return [REAL] + [f.name for f in self.families]

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def key(self) -> str:
        return stable_hash({"benchmark": "shift-post", "version": VERSION, "format_version": FORMAT_VERSION,
                            "params": self.to_dict()}, length=10)


INSTANCES = {"quick": 2, "default": 3}
"""Generator instances per family and world, per size (quick: 2, as the closed world, for the 90 s budget)."""


def _size_fields(size: str) -> dict[str, Any]:
    """The gan128 size's test count, generator pool, training settings and image size, and this
    size's instances per family (:data:`INSTANCES`)."""
    base = gan128.WORLD.make_params(size)
    return dict(n_test=base.n_test, gen_pool=base.gen_pool, train=base.train, image_size=base.image_size,
                n_instances=INSTANCES[size])


SIZE_FIELDS = {size: _size_fields(size) for size in INSTANCES}
"""A generator world's fields per size, before its factor."""


def _domain(tag: str, content: bool = False, camera: Camera | None = None) -> ShiftDomain:
    return ShiftDomain.like(DOMAIN_A, name=tag, **(CONTENT if content else {}),
                            **({"camera": camera} if camera is not None else {}))


def _recipe(p: dict[str, Any]) -> dict[str, Any]:
    return {**p, "train": replace(p["train"], **RECIPE), "width_scale": RECIPE_WIDTH}


GENERATOR_WORLDS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "instance": lambda p: {**p, "domain": _domain("inst")},
    "content": lambda p: {**p, "domain": _domain("content", content=True)},
    "acquisition": lambda p: {**p, "domain": _domain("acq", camera=CAMERA_Q)},
    "recipe": lambda p: _recipe({**p, "domain": _domain("recipe")}),
    "paper": lambda p: _recipe({**p, "domain": _domain("paper", content=True, camera=CAMERA_Q)}),
}
"""Generator world -> how its parameters differ from the size's defaults (the one factor it changes)."""
POST_WORLDS = tuple(f"post-{tag}" for tag in POST)
SHIFT_WORLDS = (*GENERATOR_WORLDS, *POST_WORLDS)
"""Every shift world's name, in the order the tables list them."""


def _generator_params(name: str) -> Callable[..., ShiftParams]:
    """The parameters of generator world ``name`` from a size's fields and overrides: its factor on top."""
    return lambda **fields: ShiftParams(**GENERATOR_WORLDS[name]({"world": name, **fields}))


def _post_params(name: str) -> Callable[..., PostParams]:
    """The parameters of post-processing world ``name``: its operation, and the gan128 build of
    ``source_size`` and ``seed`` (with ``gan128_overrides``) it processes."""
    op, strength = POST[name[len("post-"):]]

    def make(source_size: str, seed: int = 0, gan128_overrides: Mapping[str, Any] | None = None,
             **fields: Any) -> PostParams:
        src = gan128.WORLD.make_params(source_size, seed, **dict(gan128_overrides or {}))
        return PostParams(**{"world": name, "tag": name[len("post-"):], "op": op, "strength": strength,
                             "source": gan128.WORLD.cache_name(src, source_size), "source_size": source_size,
                             "seed": seed, "image_size": src.image_size, **fields})
    return make


# --------------------------------------------------------------------------------------------------
# generator jobs and post-processing
# --------------------------------------------------------------------------------------------------

def plan_jobs(p: ShiftParams, inputs: Mapping[str, np.ndarray] | None = None) -> list[Job]:
    """One job per generator: every family x instance, each fed its share of ``n_test`` new images of
    the world's domain (instance k varies width and length as gan128's instance k does)."""
    jobs = []
    k = p.n_instances
    for cfg in p.families:
        for i in range(k):
            width_scale, steps_scale = gan128.INSTANCE_VARIATION[i % len(gan128.INSTANCE_VARIATION)]
            jobs.append(Job(cfg.scaled(width_scale * p.width_scale), cfg.name, p.domain.name, i,
                            p.train.scaled(steps_scale), (shares(p.n_test, k)[i],)))
    return jobs


def post_process(images: np.ndarray, op: str, strength: float) -> np.ndarray:
    """(n, H, W, 3) uint8 after one post-processing step (see :data:`POST`); deterministic."""
    out = []
    for img in images:
        pil = Image.fromarray(img)
        if op == "jpeg":
            buf = io.BytesIO()
            pil.save(buf, format="JPEG", quality=int(strength))
            arr = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        elif op == "resize":
            h, w = img.shape[:2]
            small = pil.resize((max(1, round(w * strength)), max(1, round(h * strength))), Image.Resampling.BICUBIC)
            arr = np.asarray(small.resize((w, h), Image.Resampling.BILINEAR))
        elif op == "blur":
            from scipy import ndimage
            arr = ndimage.gaussian_filter(img.astype(np.float64), sigma=(strength, strength, 0), mode="reflect")
            arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        else:
            raise ValueError(f"unknown post-processing {op!r}; choose jpeg, resize or blur")
        out.append(np.asarray(arr, dtype=np.uint8))
    return np.stack(out) if out else images.copy()


def read_pngs(paths: list[Path]) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])


# --------------------------------------------------------------------------------------------------
# the worlds, declared on the engine (one test split; built, cached and resumed by the engine)
# --------------------------------------------------------------------------------------------------

def real_images(p: ShiftParams) -> list[tuple[ShiftDomain, tuple[int, ...]]]:
    """The real class: ``n_test`` new images of the world's domain."""
    return [(p.domain, (p.n_test,))]


def post_images(p: PostParams, writer: Writer, root: Path) -> None:
    """Every ``test_closed`` image of the gan128 build ``root/<p.source>``, post-processed, under the
    same instance as ``<tag>-<inst>_NNNNN.png``."""
    src = root / p.source
    if not (src / MANIFEST).is_file():
        raise FileNotFoundError(f"{src} is not built: build the gan128 world of size {p.source_size!r} "
                                f"(and the same overrides) first, e.g. gfd.benchmark.load_mini_benchmark()")
    for cls in p.classes:
        groups: dict[str, list[Path]] = {}
        for path in list_images(src / TEST_CLOSED / cls):
            groups.setdefault(path.name.split("_", 1)[0], []).append(path)
        for prefix, paths in sorted(groups.items()):
            world, inst = prefix.split("-", 1)
            writer.add(TEST_SPLIT, cls, f"{world}/{cls}/{inst}", f"{p.tag}-{inst}_",
                       post_process(read_pngs(paths), p.op, p.strength))


def describe_generated(p: ShiftParams) -> dict[str, Any]:
    """A generator world's manifest fields."""
    d = p.domain
    return {"split": TEST_SPLIT, "world": p.world, "domain": d.to_dict(), "instances_per_family": p.n_instances,
            "file_names": f"{d.name}-g<k>_NNNNN.png: instance k of the family in this world; "
                          f"{d.name}-real_NNNNN.png: real"}


def describe_post(p: PostParams) -> dict[str, Any]:
    """A post-processing world's manifest fields."""
    return {"split": TEST_SPLIT, "world": p.world, "post_processing": {"op": p.op, "strength": p.strength},
            "source": p.source, "file_names": f"{p.tag}-<inst>_NNNNN.png: the source's test_closed image of "
                                              f"that instance, processed"}


def _world(name: str) -> World:
    common = dict(name=f"{CACHE_PREFIX}-{name}", cache_prefix=f"{CACHE_PREFIX}-{name}", rules=RULES,
                  test_split=TEST_SPLIT)
    if name in GENERATOR_WORLDS:
        return World(params=_generator_params(name), sizes=SIZE_FIELDS, real=real_images, plan=plan_jobs,
                     describe=describe_generated, **common)
    return World(params=_post_params(name), sizes={size: {"source_size": size} for size in INSTANCES},
                 real=lambda p: [], plan=lambda p, inputs: [], derived=post_images, describe=describe_post, **common)


WORLDS: dict[str, World] = {name: _world(name) for name in SHIFT_WORLDS}
"""Every shift world by name, each a :class:`~gfd.benchmark.engine.World` (cache folders
``shift-<name>-<size>-s<seed>-<key>``)."""


def shift_world(name: str) -> World:
    if name not in WORLDS:
        raise KeyError(f"unknown shift world {name!r}; choose one of {SHIFT_WORLDS}")
    return WORLDS[name]


def shift_params(name: str, size: str = "default", seed: int = 0, **overrides: Any) -> ShiftParams | PostParams:
    """The parameters of shift world ``name`` of ``size`` (``quick`` or ``default``, as the gan128
    world's), with field ``overrides`` of the size's fields (tests use tiny ones), then the world's
    factor on top.  A post-processing world's source is the gan128 build of the same size and seed
    (``gan128_overrides`` in ``overrides`` passes field changes to it)."""
    return shift_world(name).make_params(size, seed, **overrides)


def load_shift_world(name: str, size: str = "default", root: str | os.PathLike | None = None, seed: int = 0,
                     progress: bool = True, overrides: Mapping[str, Any] | None = None,
                     workers: int | None = None) -> Path:
    """The folder of shift world ``name`` (one of :data:`SHIFT_WORLDS`) of ``size``, built on first
    use and read from the cache afterwards (``<root>/shift-<name>-<size>-s<seed>-<key>``; ``root``
    default ``data/``), by :meth:`gfd.benchmark.engine.World.load`.  ``overrides`` change parameter
    fields (and the key).  A post-processing world builds its gan128 source (same size, seed and
    ``root``) first if it is missing."""
    world, overrides = shift_world(name), dict(overrides or {})
    parent = Path(root) if root is not None else data_dir()
    if name in POST_WORLDS and not (parent / world.make_params(size, seed, **overrides).source / MANIFEST).is_file():
        gan128.WORLD.load(size, root=parent, seed=seed, progress=progress,
                          overrides=overrides.get("gan128_overrides"), workers=workers)
    return world.load(size, parent, seed, progress, overrides, workers)


def load_shift_worlds(size: str = "default", names: tuple[str, ...] = SHIFT_WORLDS, **kwargs: Any) -> dict[str, Path]:
    """Every shift world of ``names`` (default all) of ``size``: {name: folder}."""
    return {name: load_shift_world(name, size, **kwargs) for name in names}
