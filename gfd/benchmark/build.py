"""Build, cache and load the offline mini benchmark (v2: the structure of Sec. 4.2.1 and Fig. 3(a)).

What gets built (all 64 px RGB PNG, in the :mod:`gfd.data` layout)::

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
open domain.  The file-name prefix says where an image comes from: ``<world>-g<k>_`` (instance k
of that world) or ``<world>-real_``; the manifest's ``instances`` lists, per split and class, every
prefix with its generator and image count, so evaluation can average over instances and domains
(:func:`image_groups`).  Both open domains share the one ``test_open`` split (``n_open`` images per
class and domain), so every loader of :mod:`gfd.data` reads them unchanged.

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

Caching and resuming: ``load_mini_benchmark`` builds into ``<parent>/.tmp-<name>-<pid>`` and renames
the folder to ``<parent>/mini-<size>-s<seed>-<hash>`` only once complete; the hash covers every
parameter and :data:`FORMAT_VERSION`.  Every generator's outputs and record are saved, as soon as
it finishes, in ``<parent>/.partial-<name>/`` (keyed by the same name, hence by all parameters);
a build that is interrupted (or killed) leaves them there, and the next build of the same
parameters reuses them instead of retraining, then deletes the folder once complete.  A folder
whose manifest is missing, incomplete or disagrees with its files is rebuilt.

Determinism: every random draw comes from a generator seeded by (seed, purpose), and every
generator is trained with one thread and deterministic algorithms (several generators train in
parallel processes), so a given seed gives the same files on a given machine (same torch version
and CPU kind), whatever the number of processes and whether the build was resumed.
"""
from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import platform
import re
import shutil
import threading
import time
import warnings
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from PIL import Image

from gfd.benchmark.domains import DOMAIN_A, DOMAIN_B1, DOMAIN_B2, Domain, disjoint, sample_images
from gfd.benchmark.generators import FAMILIES, VARIANT_BASE, VARIANTS, GenConfig
from gfd.benchmark.zoo import TrainSettings, generate, train_generator
from gfd.layout import REAL
from gfd.utils import pbar, stable_hash

FORMAT_VERSION = 2  # bump when code that shapes the images changes (then every cache rebuilds)
CLOSED_SPLITS = ("train", "val", "test_closed")
OPEN_SPLIT = "test_open"
VARIANTS_DIR = "variants"
MANIFEST = "manifest.json"

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


def make_params(size: str = "default", seed: int = 0, **overrides: Any) -> BenchmarkParams:
    """The parameters of a named size, with a seed and optional field overrides (tests use tiny ones)."""
    if size not in SIZES:
        raise KeyError(f"unknown benchmark size {size!r}; choose one of {sorted(SIZES)}")
    return BenchmarkParams(**{**SIZES[size], "seed": seed, **overrides})


# --------------------------------------------------------------------------------------------------
# seeding and determinism
# --------------------------------------------------------------------------------------------------

def rng_for(seed: int, purpose: str) -> np.random.Generator:
    """An independent NumPy generator for one purpose (e.g. ``"A/real"``), stable across runs."""
    return np.random.default_rng([seed, zlib.crc32(purpose.encode())])


def torch_seed_for(seed: int, purpose: str) -> int:
    return int(rng_for(seed, "torch/" + purpose).integers(2**31))


@contextmanager
def deterministic_torch(threads: int = 1) -> Iterator[None]:
    """Fixed thread count and deterministic algorithms inside the block; the previous state after it."""
    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


# --------------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------------

def write_pngs(folder: Path, images: np.ndarray, prefix: str = "") -> None:
    """Write ``images`` (n, H, W, 3) uint8 as ``folder/<prefix>00000.png ...``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        (folder / f"{prefix}{i:05d}.png").write_bytes(buf.getvalue())


def folder_checksum(folder: Path) -> str:
    """sha256 over the names and bytes of the PNG files of ``folder``, in name order."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.png")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def count_pngs(folder: Path) -> int:
    return sum(1 for e in os.scandir(folder) if e.name.endswith(".png")) if folder.is_dir() else 0


PREFIX_RE = re.compile(r"^(?P<prefix>(?P<world>[^-_]+)-(?P<inst>g\d+|real)_)\d+\.png$")


def image_groups(root: str | os.PathLike, split: str) -> dict[str, dict[str, list[Path]]]:
    """The images of ``split``, per class and per source prefix (``"B1-g2_"``: instance 2 of world B1;
    ``"A-real_"``): the unit to average accuracies over instances and domains."""
    out: dict[str, dict[str, list[Path]]] = {}
    for cls_dir in sorted(p for p in (Path(root) / split).iterdir() if p.is_dir()):
        groups: dict[str, list[Path]] = {}
        for path in sorted(cls_dir.glob("*.png")):
            m = PREFIX_RE.match(path.name)
            groups.setdefault(m["prefix"] if m else "", []).append(path)
        out[cls_dir.name] = groups
    return out


# --------------------------------------------------------------------------------------------------
# building
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Job:
    """Train one generator instance on its own pool of a domain, then feed it new images of that domain."""

    cfg: GenConfig           # the instance's configuration (width already scaled)
    family: str              # the class (or variant) name
    world: str               # "A", "B1", "B2"
    instance: int
    settings: TrainSettings  # the instance's training settings (length already scaled)
    feed_counts: tuple[int, ...]              # images fed, drawn from the domain (one array per count)
    extra_feed: np.ndarray | None = None      # the variant inputs (the factor analysis), if any

    @property
    def key(self) -> str:
        return f"{self.world}/{self.family}/{self.instance}"

    @property
    def cost(self) -> float:
        """Rough relative training cost, to start the slow jobs first."""
        return self.cfg.width ** 2 * self.settings.max_steps * (1.5 if self.cfg.block == "resid" else 1.0)


def _domain(p: BenchmarkParams, world: str) -> Domain:
    return {d.name: d for d in p.worlds}[world]


def _train_and_generate(job: Job, p: BenchmarkParams, progress: bool) -> tuple[list[np.ndarray], dict]:
    """Run one :class:`Job` with one thread and deterministic algorithms; return the outputs and a record."""
    seed = torch_seed_for(p.seed, job.key)
    t0 = time.perf_counter()
    d = _domain(p, job.world)
    pool = sample_images(rng_for(p.seed, f"{job.world}/pool/{job.key}"), d, p.gen_pool, p.image_size)
    feeds = [sample_images(rng_for(p.seed, f"{job.world}/feed{i}/{job.key}"), d, n, p.image_size)
             for i, n in enumerate(job.feed_counts)]
    if job.extra_feed is not None:
        feeds.append(job.extra_feed)
    with deterministic_torch(threads=1):
        G, train_record = train_generator(job.cfg, pool, job.settings, seed=seed, progress=progress,
                                          desc=f"train {job.key}")
        outs = [generate(G, f, seed=seed + 1 + i) for i, f in enumerate(feeds)]
    diffs = [np.abs(o.astype(np.int16) - f).mean() for o, f in zip(outs, feeds) if len(f)]
    info = {"world": job.world, "family": job.family, "instance": job.instance, "config": job.cfg.to_dict(),
            "settings": asdict(job.settings), "torch_seed": seed, **train_record,
            "seconds": round(time.perf_counter() - t0, 2),
            "mean_abs_diff_to_input": round(float(np.mean(diffs)), 3) if diffs else None}
    return outs, info


def _exit_with_parent(parent_pid: int, poll_seconds: float = 0.5) -> None:
    """Worker initializer: the worker ends itself as soon as the process that builds is gone.

    Without it, a worker whose parent is killed (kill -9, a crashed notebook kernel) trains its
    generator to the end, holding its memory, before it notices.  A daemon thread checks twice a
    second whether the parent still exists: the worker's parent pid changed (POSIX re-parents
    orphans) or multiprocessing's sentinel of the parent closed (every platform).
    """
    parent = multiprocessing.parent_process()

    def watch() -> None:
        while os.getppid() == parent_pid and (parent is None or parent.is_alive()):
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _run_jobs(jobs: list[Job], p: BenchmarkParams, workers: int,
              progress: bool) -> Iterator[tuple[Job, list[np.ndarray], dict]]:
    """Yield (job, outputs, record) as jobs finish: in this process, or in ``workers`` processes.

    Every job seeds itself and uses one thread, so the outputs do not depend on ``workers``.
    Workers exit when this process dies (:func:`_exit_with_parent`).
    """
    if workers <= 1:
        for job in jobs:
            yield (job, *_train_and_generate(job, p, progress))
        return
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited thread pools
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_exit_with_parent,
                             initargs=(os.getpid(),)) as ex:
        futures = {ex.submit(_train_and_generate, job, p, False): job
                   for job in sorted(jobs, key=lambda j: -j.cost)}
        for fut in as_completed(futures):
            yield (futures[fut], *fut.result())


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its finished worker processes (where the OS reports them)."""
    try:
        import resource
    except ImportError:  # Windows
        return time.process_time()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + usage.ru_utime + usage.ru_stime


def default_workers() -> int:
    """Processes that train generators in parallel: one per usable core, at most 4."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(4, cores))


def _shares(n: int, k: int) -> list[int]:
    """``n`` images split over ``k`` instances as evenly as possible (the first ones get one more)."""
    return [n // k + (i < n % k) for i in range(k)]


def _plan_jobs(p: BenchmarkParams, variant_inputs: np.ndarray) -> list[Job]:
    """One job per generator: every family x instance in each world, then the variants (Fig. 7 analogue).

    A closed-world instance is fed its share of each of train / val / test_closed; an open-world
    instance its share of ``n_open``.  Instance 0 of the variant base family in world A and every
    variant are also fed ``variant_inputs``.
    """
    jobs = []
    for world in p.worlds:
        closed = world.name == p.domain_closed.name
        k = p.n_instances_closed if closed else p.n_instances_open
        for cfg in p.families:
            for i in range(k):
                width_scale, steps_scale = INSTANCE_VARIATION[i % len(INSTANCE_VARIATION)]
                counts = (tuple(_shares(n, k)[i] for n in (p.n_train, p.n_val, p.n_test)) if closed
                          else (_shares(p.n_open, k)[i],))
                extra = variant_inputs if closed and i == 0 and cfg.name == p.variant_base else None
                jobs.append(Job(cfg.scaled(width_scale), cfg.name, world.name, i, p.train.scaled(steps_scale),
                                counts, extra))
    jobs += [Job(cfg, cfg.name, p.domain_closed.name, 0, p.train, (), variant_inputs) for cfg in p.variants]
    return jobs


@dataclass
class _Writer:
    """Writes the image folders of one build and records counts and instance prefixes per folder."""

    out: Path
    params: BenchmarkParams
    counts: dict[str, dict[str, int]] = field(
        default_factory=lambda: {s: {} for s in (*CLOSED_SPLITS, OPEN_SPLIT)})
    instances: dict[str, dict[str, list[dict]]] = field(
        default_factory=lambda: {s: {} for s in (*CLOSED_SPLITS, OPEN_SPLIT)})

    def add(self, split: str, cls: str, source: str, prefix: str, images: np.ndarray) -> None:
        write_pngs(self.out / split / cls, images, prefix)
        self.counts[split][cls] = self.counts[split].get(cls, 0) + len(images)
        self.instances[split].setdefault(cls, []).append({"source": source, "prefix": prefix, "count": len(images)})

    def real(self, world: str, closed: bool, images: np.ndarray) -> None:
        p, start = self.params, 0
        if not closed:
            return self.add(OPEN_SPLIT, REAL, f"{world}/{REAL}", f"{world}-{REAL}_", images)
        for split, n in zip(CLOSED_SPLITS, (p.n_train, p.n_val, p.n_test)):
            self.add(split, REAL, f"{world}/{REAL}", f"{world}-{REAL}_", images[start:start + n])
            start += n

    def generated(self, job: Job, outs: list[np.ndarray]) -> None:
        """What one generator made: its share of its family's class, and variant images."""
        if job.feed_counts:
            prefix = f"{job.world}-g{job.instance}_"
            if job.world == self.params.domain_closed.name:
                for split, arr in zip(CLOSED_SPLITS, outs):
                    self.add(split, job.family, job.key, prefix, arr)
            else:
                self.add(OPEN_SPLIT, job.family, job.key, prefix, outs[0])
        if job.extra_feed is not None:
            write_pngs(self.out / VARIANTS_DIR / job.family, outs[-1])

    def sorted_instances(self) -> dict:
        return {s: {c: sorted(v, key=lambda e: e["prefix"]) for c, v in sorted(per.items())}
                for s, per in self.instances.items()}


def _partial_path(partial: Path, job: Job) -> Path:
    return partial / (job.key.replace("/", "__") + ".npz")


def _save_partial(partial: Path, job: Job, outs: list[np.ndarray], info: dict) -> None:
    """Save one finished generator's outputs and record atomically (write, then rename)."""
    partial.mkdir(parents=True, exist_ok=True)
    path = _partial_path(partial, job)
    tmp = path.with_name(f".{path.stem}-{os.getpid()}.npz")
    np.savez(tmp, record=np.array(json.dumps(info)), **{f"out{i}": o for i, o in enumerate(outs)})
    os.replace(tmp, path)


def _load_partial(partial: Path | None, job: Job) -> tuple[list[np.ndarray], dict] | None:
    """A finished generator's saved outputs and record, or None (not saved, or unreadable)."""
    if partial is None:
        return None
    path = _partial_path(partial, job)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            info = json.loads(str(z["record"]))
            outs = [z[f"out{i}"] for i in range(len(z.files) - 1)]
    except Exception:  # noqa: BLE001 - a damaged file is retrained
        return None
    return outs, info


def _train_and_write(p: BenchmarkParams, jobs: list[Job], writer: _Writer, workers: int, progress: bool,
                     partial: Path | None) -> tuple[dict[str, dict], dict[str, int]]:
    """Run every job not already saved in ``partial`` (in ``workers`` processes), save it there as it
    finishes, write its images; return the records by job key and how many were trained / reused."""
    records: dict[str, dict] = {}
    todo = []
    with pbar(None, enabled=progress, total=len(jobs), desc="mini benchmark", unit="generator") as bar:
        for job in jobs:
            saved = _load_partial(partial, job)
            if saved is None:
                todo.append(job)
                continue
            records[job.key] = saved[1]
            writer.generated(job, saved[0])
            bar.update(1)
        for job, outs, info in _run_jobs(todo, p, workers, progress):
            if partial is not None:
                _save_partial(partial, job, outs, info)
            records[job.key] = info
            writer.generated(job, outs)
            bar.set_postfix_str(job.key)
            bar.update(1)
    return {k: records[k] for k in sorted(records)}, {"trained": len(todo), "reused": len(jobs) - len(todo)}


def _build_record(workers: int, wall_seconds: float, cpu_seconds: float, jobs: dict[str, int]) -> dict[str, Any]:
    """How and where the benchmark was built (the manifest's ``build`` entry)."""
    return {
        "wall_seconds": round(wall_seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
        "workers": workers,
        "generators_trained": jobs["trained"],
        "generators_reused": jobs["reused"],
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__, "numpy": np.__version__, "pillow": Image.__version__,
        "python": platform.python_version(), "machine": platform.machine(),
        "processor": platform.processor(), "torch_threads_per_generator": 1,
        "determinism": ("same seed -> same files for the same torch/numpy/pillow versions and "
                        "CPU kind (one thread, torch deterministic algorithms), resumed or not; build "
                        "times, 'created', generator 'seconds' and the trained/reused counts are not "
                        "deterministic"),
    }


def _manifest(name: str, p: BenchmarkParams, writer: _Writer, generators: dict[str, dict],
              build: dict[str, Any]) -> dict[str, Any]:
    """The manifest of a complete build named ``name``."""
    variant_names = [REAL, p.variant_base] + [v.name for v in p.variants]
    folders = [f"{s}/{c}" for s in (*CLOSED_SPLITS, OPEN_SPLIT) for c in p.classes]
    folders += [f"{VARIANTS_DIR}/{v}" for v in variant_names]
    return {
        "format_version": FORMAT_VERSION,
        "complete": True,
        "name": name,
        "key": p.key(),
        "seed": p.seed,
        "classes": p.classes,
        "counts": {split: {c: per[c] for c in p.classes} for split, per in writer.counts.items()},
        "worlds": {
            p.domain_closed.name: {"role": "closed", "splits": list(CLOSED_SPLITS),
                                   "instances_per_family": p.n_instances_closed, "domain": p.domain_closed.to_dict()},
            **{d.name: {"role": "open", "splits": [OPEN_SPLIT], "prefix": f"{d.name}-",
                        "instances_per_family": p.n_instances_open, "domain": d.to_dict()}
               for d in (p.domain_open, p.domain_open2)},
        },
        "instances": writer.sorted_instances(),
        "file_names": "<world>-g<k>_NNNNN.png: instance k of the family in that world; <world>-real_NNNNN.png: real",
        "variants": {"base": p.variant_base, "names": variant_names,
                     "counts": {v: p.n_variant for v in variant_names}},
        "rules": list(RULES),
        "params": p.to_dict(),
        "generators": generators,
        "checksums": {rel: folder_checksum(writer.out / rel) for rel in folders},
        "build": build,
    }


def new_build_folder(out: str | os.PathLike) -> Path:
    """The folder a build writes into, created; a folder that already holds anything is refused
    (a build never mixes its files with another's)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; build into a new folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def build_benchmark(out: str | os.PathLike, params: BenchmarkParams, progress: bool = True,
                    workers: int | None = None, partial: str | os.PathLike | None = None) -> Path:
    """Build the benchmark described by ``params`` into the new folder ``out``; return it.

    ``workers`` processes train the generators (default: :func:`default_workers`); the files do
    not depend on it.  ``partial``: a folder where every finished generator is saved, and from
    which saved ones are reused (resuming an interrupted build).  Writes ``manifest.json`` last: a
    folder with a complete manifest is a complete benchmark.
    """
    out = new_build_folder(out)
    workers = default_workers() if workers is None else workers
    partial = Path(partial) if partial is not None else None
    t_wall, t_cpu = time.perf_counter(), _cpu_seconds()
    writer = _Writer(out, params)
    p = params
    with pbar(None, enabled=progress, total=len(p.worlds) + 1, desc="real images", leave=False) as bar:
        variant_inputs = sample_images(rng_for(p.seed, f"{p.domain_closed.name}/feed/variants"),
                                       p.domain_closed, p.n_variant, p.image_size)
        write_pngs(out / VARIANTS_DIR / REAL, variant_inputs)
        bar.update(1)
        for d in p.worlds:
            closed = d.name == p.domain_closed.name
            n = p.n_closed if closed else p.n_open
            writer.real(d.name, closed, sample_images(rng_for(p.seed, f"{d.name}/{REAL}"), d, n, p.image_size))
            bar.update(1)
    jobs = _plan_jobs(p, variant_inputs)
    generators, counts = _train_and_write(p, jobs, writer, workers, progress, partial)
    build = _build_record(workers, time.perf_counter() - t_wall, _cpu_seconds() - t_cpu, counts)
    (out / "classes.json").write_text(json.dumps(p.classes) + "\n")
    manifest = _manifest(out.name, p, writer, generators, build)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return out


# --------------------------------------------------------------------------------------------------
# checking and caching
# --------------------------------------------------------------------------------------------------

def read_manifest(root: str | os.PathLike) -> dict:
    """The manifest of a built benchmark; a clear error if it is missing or unreadable."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {root} is not a built mini benchmark "
                                f"(build one with gfd.benchmark.load_mini_benchmark())")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); delete {root} to rebuild it") from err


def check_benchmark(root: str | os.PathLike, params: BenchmarkParams | None = None,
                    checksums: bool = False) -> list[str]:
    """Problems that make ``root`` unusable (empty list: complete).  Counts files per folder;
    with ``checksums=True`` also re-hashes every file (slow)."""
    root = Path(root)
    try:
        m = read_manifest(root)
    except (FileNotFoundError, ValueError) as err:
        return [str(err)]
    problems = []
    if not m.get("complete"):
        problems.append("manifest does not say complete")
    if m.get("format_version") != FORMAT_VERSION:
        problems.append(f"format version {m.get('format_version')} != {FORMAT_VERSION}")
    if params is not None and m.get("key") != params.key():
        problems.append(f"built with other parameters (key {m.get('key')} != {params.key()})")
    expected = {f"{s}/{c}": n for s, per in m.get("counts", {}).items() for c, n in per.items()}
    expected.update({f"{VARIANTS_DIR}/{v}": n for v, n in m.get("variants", {}).get("counts", {}).items()})
    if not expected:
        problems.append("manifest lists no image folder")
    for rel, n in expected.items():
        found = count_pngs(root / rel)
        if found != n:
            problems.append(f"{rel}: {found} PNG files, manifest says {n}")
        elif checksums and folder_checksum(root / rel) != m.get("checksums", {}).get(rel):
            problems.append(f"{rel}: checksum differs from the manifest")
    return problems


def repo_data_dir() -> Path:
    """``<repository>/data`` for a source checkout (editable install), else ``./data``."""
    from gfd.utils import data_dir

    return data_dir()


def cache_name(params: BenchmarkParams, size: str) -> str:
    return f"mini-{size}-s{params.seed}-{params.key()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def partial_dir(parent: Path, name: str) -> Path:
    """Where the finished generators of an unfinished build of ``name`` are saved (resuming)."""
    return parent / f".partial-{name}"


def _remove_stale_tmp(parent: Path, name: str) -> None:
    """Delete ``.tmp-<name>-<pid>`` folders left by builds whose process is gone (killed half-way)."""
    for tmp in parent.glob(f".tmp-{name}-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or not _pid_alive(int(pid)) or int(pid) == os.getpid():
            shutil.rmtree(tmp, ignore_errors=True)


def load_mini_benchmark(size: str = "default", root: str | os.PathLike | None = None, seed: int = 0,
                        progress: bool = True, overrides: dict[str, Any] | None = None,
                        workers: int | None = None) -> Path:
    """The folder of the built-in benchmark; builds it on first use, then reads it from the cache.

    ``root`` is the parent folder of the cache (default: ``data/`` of the repository); ``overrides``
    changes fields of :class:`BenchmarkParams` (e.g. ``{"n_train": 20}``), which changes the cache
    key.  ``workers`` processes train the generators (default: one per core, at most 4; the files
    do not depend on it).  A cached folder whose manifest is missing or incomplete, or whose file counts disagree
    with it, is deleted and rebuilt.  Generators finished by an interrupted build of the same
    parameters (``.partial-<name>``) are reused, not retrained.
    """
    params = make_params(size, seed, **(overrides or {}))
    parent = Path(root) if root is not None else repo_data_dir()
    return load_or_build(params, parent / cache_name(params, size), build_benchmark, progress, workers)


def load_or_build(params: Any, final: Path, build: Any, progress: bool = True, workers: int | None = None) -> Path:
    """The cached build ``final`` of ``params`` if it is complete, else ``build(tmp, params, progress=,
    workers=, partial=)`` into ``<parent>/.tmp-<name>-<pid>``, renamed to ``final`` once complete (the
    caching and resuming rule of :func:`load_mini_benchmark`, shared by every built-in benchmark;
    ``params`` needs a ``key()``)."""
    parent, name = final.parent, final.name
    if final.exists():
        problems = check_benchmark(final, params)
        if not problems:
            return final
        warnings.warn(f"{final} is incomplete or stale ({problems[0]}); rebuilding it", stacklevel=3)
        shutil.rmtree(final)
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(parent, name)
    tmp = parent / f".tmp-{name}-{os.getpid()}"
    partial = partial_dir(parent, name)
    try:
        build(tmp, params, progress=progress, workers=workers, partial=partial)
        try:
            os.replace(tmp, final)
        except OSError:
            if check_benchmark(final, params):  # someone else finished first with a broken folder
                raise
        shutil.rmtree(partial, ignore_errors=True)  # complete: the saved generators are not needed
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
