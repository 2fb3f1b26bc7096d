"""The one engine that builds, caches and resumes every benchmark world of :mod:`gfd.benchmark.worlds`.

A world (:class:`World`) only declares what it holds: its parameters and named sizes, which real
images each content domain gives to which split, which generators train on which domain and what
they are fed, its frozen rules and its own manifest fields.  The engine does the rest, the same way
for every world: it draws the real images, trains each generator to its plateau
(:func:`gfd.benchmark.zoo.train_generator`) in worker processes, writes the images, the manifest
and the cache folder, and resumes an interrupted build.  A build holds (RGB PNG, :mod:`gfd.data`'s
layout)::

    ROOT/train|val|test_closed/<class>/<world>-<inst>_NNNNN.png   the closed worlds' images
    ROOT/test_open/<class>/<world>-<inst>_NNNNN.png               the open worlds' images
    ROOT/variants/<name>/NNNNN.png      images fed to generators besides the splits, and their outputs
                                        (the factor analysis of Fig. 7), where a world has them
    ROOT/classes.json, ROOT/manifest.json

A test-only world (:attr:`World.test_split`, e.g. the shift worlds) writes all its images to that
one split instead (``ROOT/test/<class>/``) and no other.  ``<inst>`` is ``g<k>`` (instance k of the
class's family trained on that world) or ``real``; the manifest's ``instances`` lists, per split and
class, every prefix with its generator and image count, so evaluation can average over instances
and domains (:func:`image_groups`).  :mod:`gfd.benchmark.writer` writes the folders.

Caching and resuming: :meth:`World.load` builds into ``<parent>/.tmp-<name>-<pid>`` and renames
the folder to ``<parent>/<cache_prefix>-<size>-s<seed>-<key>`` only once complete; the key hashes
every parameter and :data:`FORMAT_VERSION`.  Every generator's outputs and record are saved, as
soon as it finishes, in ``<parent>/.partial-<name>/``; a build that is interrupted (or killed)
leaves them there, and the next build of the same parameters reuses them instead of retraining,
then deletes the folder once complete.  A folder whose manifest is missing, incomplete or disagrees
with its files is rebuilt.

Determinism: every random draw comes from a generator seeded by (seed, purpose), and every
generator is trained with one thread and deterministic algorithms (several generators train in
parallel processes), so a given seed gives the same files on a given machine (same torch version
and CPU kind), whatever the number of processes and whether the build was resumed.
"""
from __future__ import annotations

import hashlib
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
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Collection, Iterator, Mapping, Protocol, Sequence

import numpy as np
import torch
from PIL import Image

from gfd.benchmark.domains import Domain, sample_images
from gfd.benchmark.writer import VARIANTS_DIR, Job, Writer, load_partial, save_partial  # noqa: F401 (Job: the plan's unit)
from gfd.benchmark.zoo import generate, train_generator
from gfd.layout import CLOSED_SPLITS, REAL, TEST_OPEN
from gfd.utils import data_dir, pbar

FORMAT_VERSION = 2  # bump when code that shapes the images changes (then every cache rebuilds)
MANIFEST = "manifest.json"


class WorldParams(Protocol):
    """What the engine reads from a world's parameters (a frozen dataclass of the world's module)."""

    seed: int
    gen_pool: int      # real images each generator is trained on (its own draw)
    image_size: int

    @property
    def classes(self) -> list[str]: ...          # ``real`` first, then the families

    @property
    def worlds(self) -> tuple[Domain, ...]: ...  # every domain, looked up by name

    @property
    def closed_worlds(self) -> Collection[str]: ...   # names of the domains whose images fill the closed splits

    def to_dict(self) -> dict[str, Any]: ...     # the form stored in the manifest

    def key(self) -> str: ...                    # the cache key


# --------------------------------------------------------------------------------------------------
# seeding, determinism and image files
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
# generator jobs
# --------------------------------------------------------------------------------------------------

def shares(n: int, k: int) -> list[int]:
    """``n`` images split over ``k`` instances as evenly as possible (the first ones get one more)."""
    return [n // k + (i < n % k) for i in range(k)]


def train_and_generate(job: Job, p: WorldParams, progress: bool) -> tuple[list[np.ndarray], dict]:
    """Run one :class:`Job` with one thread and deterministic algorithms; return the outputs and a record."""
    seed = torch_seed_for(p.seed, job.key)
    t0 = time.perf_counter()
    d = {w.name: w for w in p.worlds}[job.world]
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


def _run_jobs(jobs: list[Job], p: WorldParams, workers: int,
              progress: bool) -> Iterator[tuple[Job, list[np.ndarray], dict]]:
    """Yield (job, outputs, record) as jobs finish: in this process, or in ``workers`` processes.

    Every job seeds itself and uses one thread, so the outputs do not depend on ``workers``.
    Workers exit when this process dies (:func:`_exit_with_parent`).
    """
    if workers <= 1:
        for job in jobs:
            yield (job, *train_and_generate(job, p, progress))
        return
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited thread pools
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_exit_with_parent,
                             initargs=(os.getpid(),)) as ex:
        futures = {ex.submit(train_and_generate, job, p, False): job
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


def _train_and_write(p: WorldParams, jobs: list[Job], writer: Writer, workers: int, progress: bool,
                     partial: Path | None, desc: str) -> tuple[dict[str, dict], dict[str, int]]:
    """Run every job not already saved in ``partial`` (in ``workers`` processes), save it there as it
    finishes, write its images; return the records by job key and how many were trained / reused."""
    records: dict[str, dict] = {}
    todo = []
    with pbar(None, enabled=progress, total=len(jobs), desc=desc, unit="generator") as bar:
        for job in jobs:
            saved = load_partial(partial, job)
            if saved is None:
                todo.append(job)
                continue
            records[job.key] = saved[1]
            writer.generated(job, saved[0])
            bar.update(1)
        for job, outs, info in _run_jobs(todo, p, workers, progress):
            if partial is not None:
                save_partial(partial, job, outs, info)
            records[job.key] = info
            writer.generated(job, outs)
            bar.set_postfix_str(job.key)
            bar.update(1)
    return {k: records[k] for k in sorted(records)}, {"trained": len(todo), "reused": len(jobs) - len(todo)}


def build_record(workers: int, wall_seconds: float, cpu_seconds: float, jobs: dict[str, int]) -> dict[str, Any]:
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


def new_build_folder(out: str | os.PathLike) -> Path:
    """The folder a build writes into, created; a folder that already holds anything is refused
    (a build never mixes its files with another's)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; build into a new folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


@dataclass(frozen=True)
class World:
    """A benchmark world, declared by a module of :mod:`gfd.benchmark.worlds`; built by this engine.

    ``real(p)`` lists the real class as (domain, image counts): one count per split of that domain's
    world (three for a closed world, one for an open one).  ``inputs(p)`` names image sets fed to
    generators besides the splits (written to ``variants/<name>``), ``plan(p, inputs)`` lists the
    generator jobs, and ``describe(p)`` gives the world's own manifest fields (at least ``worlds``
    and ``file_names``; ``variants`` with per-folder counts where it has variant folders).

    A test-only world (``test_split`` set) writes every image to that one split, closed or open
    domain alike, and no other split.  ``derived(p, writer, root)`` writes images made from another
    build in the cache folder ``root`` (e.g. its test images post-processed) besides the drawn and
    generated ones.
    """

    name: str                              # the world's name (a built-in benchmark's is ``Config.benchmark``)
    cache_prefix: str                      # cache folders are <parent>/<cache_prefix>-<size>-s<seed>-<key>
    params: Callable[..., Any]             # makes the frozen dataclass of every parameter (a WorldParams)
    sizes: Mapping[str, Mapping[str, Any]]
    rules: tuple[str, ...]                 # the frozen rules, written into the manifest
    real: Callable[[Any], Sequence[tuple[Domain, tuple[int, ...]]]]
    plan: Callable[[Any, Mapping[str, np.ndarray]], list[Job]]
    describe: Callable[[Any], dict[str, Any]]
    inputs: Callable[[Any], dict[str, np.ndarray]] | None = None
    test_split: str | None = None          # a test-only world's one split
    derived: Callable[[Any, Writer, Path], None] | None = None

    @property
    def splits(self) -> tuple[str, ...]:
        """Every split a build of this world writes, in the manifest's order."""
        return (self.test_split,) if self.test_split else (*CLOSED_SPLITS, TEST_OPEN)

    def domain_splits(self, params: WorldParams, domain: str) -> tuple[str, ...]:
        """The splits the images of ``domain`` fill, one image array each."""
        if self.test_split:
            return (self.test_split,)
        return CLOSED_SPLITS if domain in params.closed_worlds else (TEST_OPEN,)

    def __repr__(self) -> str:
        return f"World({self.name!r})"

    def make_params(self, size: str = "default", seed: int = 0, **overrides: Any) -> Any:
        """The parameters of a named size, with a seed and optional field overrides (tests use tiny ones)."""
        if size not in self.sizes:
            raise KeyError(f"unknown benchmark size {size!r}; choose one of {sorted(self.sizes)}")
        return self.params(**{**self.sizes[size], "seed": seed, **overrides})

    def cache_name(self, params: WorldParams, size: str) -> str:
        return f"{self.cache_prefix}-{size}-s{params.seed}-{params.key()}"

    def build(self, out: str | os.PathLike, params: WorldParams, progress: bool = True,
              workers: int | None = None, partial: str | os.PathLike | None = None,
              root: str | os.PathLike | None = None) -> Path:
        """Build this world of ``params`` into the new folder ``out``; return it (:func:`build_world`)."""
        return build_world(self, out, params, progress, workers, partial, root)

    def load(self, size: str = "default", root: str | os.PathLike | None = None, seed: int = 0,
             progress: bool = True, overrides: dict[str, Any] | None = None, workers: int | None = None) -> Path:
        """The folder of this world of ``size``; builds it on first use, then reads it from the cache.

        ``root`` is the parent folder of the cache (default: ``data/`` of the repository);
        ``overrides`` changes fields of the parameters (e.g. ``{"n_train": 20}``), which changes the
        cache key.  ``workers`` processes train the generators (default: one per core, at most 4; the
        files do not depend on it).  A cached folder whose manifest is missing or incomplete, or whose
        file counts disagree with it, is deleted and rebuilt.  Generators finished by an interrupted
        build of the same parameters (``.partial-<name>``) are reused, not retrained.
        """
        params = self.make_params(size, seed, **(overrides or {}))
        parent = Path(root) if root is not None else data_dir()
        return load_or_build(params, parent / self.cache_name(params, size),
                             lambda out, p, **kw: build_world(self, out, p, root=parent, **kw), progress, workers)


def build_world(world: World, out: str | os.PathLike, params: WorldParams, progress: bool = True,
                workers: int | None = None, partial: str | os.PathLike | None = None,
                root: str | os.PathLike | None = None) -> Path:
    """Build ``world`` of ``params`` into the new folder ``out``; return it.

    ``workers`` processes train the generators (default: :func:`default_workers`); the files do
    not depend on it.  ``partial``: a folder where every finished generator is saved, and from
    which saved ones are reused (resuming an interrupted build).  ``root``: the cache folder a
    world's ``derived`` images are made from (default ``data/``).  Writes ``manifest.json`` last: a
    folder with a complete manifest is a complete benchmark.
    """
    out = new_build_folder(out)
    workers = default_workers() if workers is None else workers
    partial = Path(partial) if partial is not None else None
    t_wall, t_cpu = time.perf_counter(), _cpu_seconds()
    p = params
    writer = Writer(out, world.splits, lambda domain: world.domain_splits(p, domain))
    draws = world.real(p)
    with pbar(None, enabled=progress, total=len(draws) + 1, desc="real images", leave=False) as bar:
        inputs = world.inputs(p) if world.inputs else {}
        for name, images in inputs.items():
            writer.variant(name, images)
        bar.update(1)
        for d, counts in draws:
            writer.real(d.name, sample_images(rng_for(p.seed, f"{d.name}/{REAL}"), d, sum(counts), p.image_size),
                        counts)
            bar.update(1)
    if world.derived:
        world.derived(p, writer, Path(root) if root is not None else data_dir())
    jobs = world.plan(p, inputs)
    generators, done = _train_and_write(p, jobs, writer, workers, progress, partial, desc=f"{world.name} benchmark")
    build = build_record(workers, time.perf_counter() - t_wall, _cpu_seconds() - t_cpu, done)
    variants = list(dict.fromkeys([*inputs, *(j.family for j in jobs if j.extra_feed is not None)]))
    folders = [f"{s}/{c}" for s in world.splits for c in p.classes]
    folders += [f"{VARIANTS_DIR}/{v}" for v in variants]
    manifest = {
        "format_version": FORMAT_VERSION,
        "complete": True,
        "name": built_name(out),
        "key": p.key(),
        "seed": p.seed,
        "classes": p.classes,
        "counts": {split: {c: per.get(c, 0) for c in p.classes} for split, per in writer.counts.items()},
        **world.describe(p),
        "instances": writer.sorted_instances(),
        "rules": list(world.rules),
        "params": p.to_dict(),
        "generators": generators,
        "checksums": {rel: folder_checksum(out / rel) for rel in folders},
        "build": build,
    }
    (out / "classes.json").write_text(json.dumps(p.classes) + "\n")
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


def check_benchmark(root: str | os.PathLike, params: WorldParams | None = None,
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


TMP_NAME = re.compile(r"\.tmp-(?P<name>.+)-(?P<pid>\d+)")
"""The folder a build of ``<name>`` writes into before it is renamed: ``.tmp-<name>-<pid>`` (:func:`load_or_build`)."""


def built_name(out: Path) -> str:
    """The name a build in ``out`` will have: ``<name>`` for ``.tmp-<name>-<pid>`` (it is renamed to
    ``<name>`` once complete), else ``out``'s own name.  The manifest records it."""
    m = TMP_NAME.fullmatch(out.name)
    return m["name"] if m else out.name


def remove_stale_tmp(parent: Path, name: str) -> None:
    """Delete ``.tmp-<name>-<pid>`` folders left by builds whose process is gone (killed half-way)."""
    for tmp in parent.glob(f".tmp-{name}-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or not _pid_alive(int(pid)) or int(pid) == os.getpid():
            shutil.rmtree(tmp, ignore_errors=True)


def load_or_build(params: WorldParams, final: Path, build: Callable[..., Path], progress: bool = True,
                  workers: int | None = None) -> Path:
    """The cached build ``final`` of ``params`` if it is complete, else ``build(tmp, params, progress=,
    workers=, partial=)`` into ``<parent>/.tmp-<name>-<pid>``, renamed to ``final`` once complete (the
    caching and resuming rule of :meth:`World.load`)."""
    parent, name = final.parent, final.name
    if final.exists():
        problems = check_benchmark(final, params)
        if not problems:
            return final
        warnings.warn(f"{final} is incomplete or stale ({problems[0]}); rebuilding it", stacklevel=3)
        shutil.rmtree(final)
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(parent, name)
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
