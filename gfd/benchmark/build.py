"""Build, cache and load the offline mini benchmark (the structure of Sec. 4.2.1 and Fig. 3(a)).

What gets built (all 64 px RGB PNG, in the :mod:`gfd.data` layout)::

    ROOT/train|val|test_closed/<class>/NNNNN.png   closed world: domain A (plays CelebA)
    ROOT/test_open/<class>/NNNNN.png               open world: domain B (plays LSUN), the same
                                                   families, new generators trained on domain B
    ROOT/variants/<name>/NNNNN.png                 factor analysis (Fig. 7 analogue): the width-x2
                                                   and normalisation variants of one family, that
                                                   family itself and the real inputs they were fed
    ROOT/classes.json, ROOT/manifest.json

Classes are ``real`` plus one folder per generator family (:data:`~gfd.benchmark.generators.FAMILIES`).
The paper's 15k / 1k / 4k images per class become, by default, 750 / 50 / 200 (and 200 per class in
the open world).  Real images used to train or feed a generator are drawn separately from the
``real`` class images, so the two never share an image.

Caching: ``load_mini_benchmark`` builds into ``<parent>/.tmp-<name>-<pid>`` and renames the folder to
``<parent>/mini-<size>-s<seed>-<hash>`` only once complete; the hash covers every parameter and
:data:`FORMAT_VERSION`.  A folder whose manifest is missing, incomplete or disagrees with its files
is rebuilt.  A build that is killed leaves its ``.tmp-`` folder behind (its worker processes exit
with it); the next ``load_mini_benchmark`` of the same parameters deletes it.

Determinism: every random draw comes from a generator seeded by (seed, purpose), and every
generator is trained with one thread and deterministic algorithms (several generators train in
parallel processes), so a given seed gives the same files on a given machine (same torch version
and CPU kind), whatever the number of processes; the manifest records the versions.
"""
from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import platform
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

from gfd.benchmark.domains import DOMAIN_A, DOMAIN_B, Domain, sample_images
from gfd.benchmark.generators import FAMILIES, VARIANT_BASE, VARIANTS, GenConfig
from gfd.benchmark.zoo import TrainSettings, generate, train_generator
from gfd.layout import REAL
from gfd.utils import pbar, stable_hash

FORMAT_VERSION = 1  # bump when code that shapes the images changes (then every cache rebuilds)
CLOSED_SPLITS = ("train", "val", "test_closed")
OPEN_SPLIT = "test_open"
VARIANTS_DIR = "variants"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class BenchmarkParams:
    """Everything that determines a built benchmark (its cache key is a hash of these)."""

    n_train: int = 750            # images per class in each split (paper: 15k / 1k / 4k / 4k)
    n_val: int = 50
    n_test: int = 200
    n_open: int = 200
    n_variant: int = 200          # images per factor-analysis variant
    gen_pool: int = 600           # real images per domain the generators are trained on
    image_size: int = 64
    seed: int = 0
    train: TrainSettings = field(default_factory=TrainSettings)
    domain_closed: Domain = DOMAIN_A
    domain_open: Domain = DOMAIN_B
    families: tuple[GenConfig, ...] = FAMILIES
    variant_base: str = VARIANT_BASE
    variants: tuple[GenConfig, ...] = VARIANTS

    def __post_init__(self):
        counts = {k: getattr(self, k) for k in ("n_train", "n_val", "n_test", "n_open", "n_variant", "gen_pool")}
        bad = {k: v for k, v in counts.items() if not isinstance(v, int) or v < 1}
        if bad:
            raise ValueError(f"benchmark sizes must be positive integers, got {bad}")
        names = [REAL] + [f.name for f in self.families]
        if len(set(names)) != len(names):
            raise ValueError(f"class names must be unique and not {REAL!r}: {names}")
        if self.variant_base not in names[1:]:
            raise ValueError(f"variant_base {self.variant_base!r} is not one of the families {names[1:]}")

    @property
    def classes(self) -> list[str]:
        return [REAL] + [f.name for f in self.families]

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
    "quick": dict(n_train=150, n_val=20, n_test=60, n_open=60, n_variant=40, gen_pool=256,
                  train=TrainSettings(steps=60)),
    "default": dict(n_train=750, n_val=50, n_test=200, n_open=200, n_variant=200, gen_pool=600,
                    train=TrainSettings(steps=200)),
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

def write_pngs(folder: Path, images: np.ndarray) -> str:
    """Write ``images`` (n, H, W, 3) uint8 as ``folder/00000.png ...``; return the folder's sha256.

    The checksum covers file names and bytes in name order, so it can be recomputed from disk
    (:func:`folder_checksum`).
    """
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    for i, img in enumerate(images):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        name = f"{i:05d}.png"
        (folder / name).write_bytes(buf.getvalue())
        digest.update(name.encode())
        digest.update(buf.getvalue())
    return digest.hexdigest()


def folder_checksum(folder: Path) -> str:
    """sha256 over the names and bytes of the PNG files of ``folder``, in name order."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.png")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def count_pngs(folder: Path) -> int:
    return sum(1 for e in os.scandir(folder) if e.name.endswith(".png")) if folder.is_dir() else 0


# --------------------------------------------------------------------------------------------------
# building
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Job:
    """Train one generator on ``pool`` of a domain, then feed it each array of ``feeds``."""

    cfg: GenConfig
    domain: str
    pool: np.ndarray
    feeds: tuple[np.ndarray, ...]

    @property
    def key(self) -> str:
        return f"{self.domain}/{self.cfg.name}"

    @property
    def cost(self) -> float:
        """Rough relative training cost, to start the slow jobs first."""
        return self.cfg.width ** 2 * (2.0 if self.cfg.upsample == "tconv" else 1.0)


def _train_and_generate(job: Job, p: BenchmarkParams, progress: bool) -> tuple[list[np.ndarray], dict]:
    """Run one :class:`Job` with one thread and deterministic algorithms; return the outputs and a record."""
    seed = torch_seed_for(p.seed, job.key)
    t0 = time.perf_counter()
    with deterministic_torch(threads=1):
        G, losses = train_generator(job.cfg, job.pool, p.train, seed=seed, progress=progress,
                                    desc=f"train {job.key}")
        outs = [generate(G, f) for f in job.feeds]
    info = {"domain": job.domain, "config": job.cfg.to_dict(), "torch_seed": seed, "final_losses": losses,
            "seconds": round(time.perf_counter() - t0, 2),
            "mean_abs_diff_to_input": round(float(np.mean([np.abs(o.astype(np.int16) - f).mean()
                                                           for o, f in zip(outs, job.feeds)])), 3)}
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


@dataclass
class _Writer:
    """Writes the image folders of one build and records, per folder, its checksum and image count."""

    out: Path
    params: BenchmarkParams
    checksums: dict[str, str] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(
        default_factory=lambda: {s: {} for s in (*CLOSED_SPLITS, OPEN_SPLIT)})

    def _write(self, top: str, name: str, images: np.ndarray) -> None:
        self.checksums[f"{top}/{name}"] = write_pngs(self.out / top / name, images)

    def closed_world(self, name: str, images: np.ndarray) -> None:
        """One class of the closed world: the first n_train images to train, then val, then test_closed."""
        p, start = self.params, 0
        for split, n in zip(CLOSED_SPLITS, (p.n_train, p.n_val, p.n_test)):
            self._write(split, name, images[start:start + n])
            self.counts[split][name] = n
            start += n

    def open_world(self, name: str, images: np.ndarray) -> None:
        self._write(OPEN_SPLIT, name, images)
        self.counts[OPEN_SPLIT][name] = len(images)

    def variant(self, name: str, images: np.ndarray) -> None:
        self._write(VARIANTS_DIR, name, images)


def _real_images(p: BenchmarkParams, domain: Domain, purpose: str, n: int) -> np.ndarray:
    """``n`` real images of ``domain``, drawn from the random stream of one ``purpose``."""
    return sample_images(rng_for(p.seed, f"{domain.name}/{purpose}"), domain, n, p.image_size)


def _write_real_classes(p: BenchmarkParams, writer: _Writer) -> np.ndarray:
    """Write the ``real`` class of both worlds and the real inputs of the factor analysis; return those inputs."""
    inputs = _real_images(p, p.domain_closed, "feed/variants", p.n_variant)
    writer.variant(REAL, inputs)
    writer.closed_world(REAL, _real_images(p, p.domain_closed, REAL, p.n_closed))
    writer.open_world(REAL, _real_images(p, p.domain_open, REAL, p.n_open))
    return inputs


def _plan_jobs(p: BenchmarkParams, variant_inputs: np.ndarray) -> list[Job]:
    """One job per generator: every family on each domain, then the variants of one family (Fig. 7 analogue).

    Each domain's generators train on one pool of real images and are fed their own new images
    (neither shared with the ``real`` class); the variant base family and its variants are all fed
    ``variant_inputs`` too.
    """
    dA, dB = p.domain_closed, p.domain_open
    pools = {d.name: _real_images(p, d, "generator-pool", p.gen_pool) for d in (dA, dB)}
    jobs = [Job(cfg, dA.name, pools[dA.name], (_real_images(p, dA, f"feed/{cfg.name}", p.n_closed),)
                + ((variant_inputs,) if cfg.name == p.variant_base else ()))
            for cfg in p.families]
    jobs += [Job(cfg, dB.name, pools[dB.name], (_real_images(p, dB, f"feed/{cfg.name}", p.n_open),))
             for cfg in p.families]
    jobs += [Job(cfg, dA.name, pools[dA.name], (variant_inputs,)) for cfg in p.variants]
    return jobs


def _write_generated(p: BenchmarkParams, writer: _Writer, job: Job, outs: list[np.ndarray]) -> None:
    """Write what one generator made: a variant, or its family's class in the closed or open world."""
    name = job.cfg.name
    if name in {v.name for v in p.variants}:
        writer.variant(name, outs[0])
    elif job.domain == p.domain_closed.name:
        writer.closed_world(name, outs[0])
        if name == p.variant_base:
            writer.variant(name, outs[1])
    else:
        writer.open_world(name, outs[0])


def _train_and_write(p: BenchmarkParams, jobs: list[Job], writer: _Writer, workers: int,
                     progress: bool) -> dict[str, dict]:
    """Run every job (in ``workers`` processes) and write its images; return the records by job key."""
    records: dict[str, dict] = {}
    with pbar(None, enabled=progress, total=len(jobs), desc="mini benchmark", unit="generator") as bar:
        for job, outs, info in _run_jobs(jobs, p, workers, progress):
            records[job.key] = info
            _write_generated(p, writer, job, outs)
            bar.set_postfix_str(job.key)
            bar.update(1)
    return {k: records[k] for k in sorted(records)}


def _build_record(workers: int, wall_seconds: float, cpu_seconds: float) -> dict[str, Any]:
    """How and where the benchmark was built (the manifest's ``build`` entry)."""
    return {
        "wall_seconds": round(wall_seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
        "workers": workers,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__, "numpy": np.__version__, "pillow": Image.__version__,
        "python": platform.python_version(), "machine": platform.machine(),
        "processor": platform.processor(), "torch_threads_per_generator": 1,
        "determinism": ("same seed -> same files for the same torch/numpy/pillow versions and "
                        "CPU kind (one thread, torch deterministic algorithms); build times "
                        "and 'created' are not deterministic"),
    }


def _manifest(name: str, p: BenchmarkParams, writer: _Writer, generators: dict[str, dict],
              build: dict[str, Any]) -> dict[str, Any]:
    """The manifest of a complete build named ``name``."""
    variant_names = [REAL, p.variant_base] + [v.name for v in p.variants]
    return {
        "format_version": FORMAT_VERSION,
        "complete": True,
        "name": name,
        "key": p.key(),
        "seed": p.seed,
        "classes": p.classes,
        "counts": {split: {c: per[c] for c in p.classes} for split, per in writer.counts.items()},
        "variants": {"base": p.variant_base, "names": variant_names,
                     "counts": {v: p.n_variant for v in variant_names}},
        "params": p.to_dict(),
        "generators": generators,
        "checksums": writer.checksums,
        "build": build,
    }


def build_benchmark(out: str | os.PathLike, params: BenchmarkParams, progress: bool = True,
                    workers: int | None = None) -> Path:
    """Build the benchmark described by ``params`` into the new folder ``out``; return it.

    ``workers`` processes train the generators (default: :func:`default_workers`); the files do
    not depend on it.  Writes ``manifest.json`` last: a folder with a complete manifest is a
    complete benchmark.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; build into a new folder")
    workers = default_workers() if workers is None else workers
    t_wall, t_cpu = time.perf_counter(), _cpu_seconds()
    out.mkdir(parents=True, exist_ok=True)
    writer = _Writer(out, params)
    with pbar(None, enabled=progress, total=2, desc="real images", leave=False) as bar:
        variant_inputs = _write_real_classes(params, writer)
        bar.update(1)
        jobs = _plan_jobs(params, variant_inputs)
        bar.update(1)
    generators = _train_and_write(params, jobs, writer, workers, progress)
    build = _build_record(workers, time.perf_counter() - t_wall, _cpu_seconds() - t_cpu)
    (out / "classes.json").write_text(json.dumps(params.classes) + "\n")
    manifest = _manifest(out.name, params, writer, generators, build)
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
    with it, is deleted and rebuilt.
    """
    params = make_params(size, seed, **(overrides or {}))
    parent = Path(root) if root is not None else repo_data_dir()
    name = cache_name(params, size)
    final = parent / name
    if final.exists():
        problems = check_benchmark(final, params)
        if not problems:
            return final
        warnings.warn(f"{final} is incomplete or stale ({problems[0]}); rebuilding it", stacklevel=2)
        shutil.rmtree(final)
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(parent, name)
    tmp = parent / f".tmp-{name}-{os.getpid()}"
    try:
        build_benchmark(tmp, params, progress=progress, workers=workers)
        try:
            os.replace(tmp, final)
        except OSError:
            if check_benchmark(final, params):  # someone else finished first with a broken folder
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
