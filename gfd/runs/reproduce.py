"""``python -m gfd reproduce``: the paper's Tables 1 to 4, measured on our data over seeds.

Table 1 (Sec. 4.2.1) compares GFD-Net with three attribution baselines (PRNU, DCT, AttNet);
Table 2 (Sec. 4.2.2) makes the same comparison in the crop-only high-resolution setting (the
``gan1024`` world, 128 px images, crops without resizing), one column per open-world model;
Table 4 (Sec. 4.4) ablates GFD-Net: G, G+D, G+C, G+D+C, G+D+C+L_percept.  Table 3 (Sec. 4.3) is
binary fake detection across generators (:data:`gfd.paper.DETECTION_ROWS`, :mod:`gfd.detection`).
Every row is measured over several training seeds on one benchmark (the data stay fixed; the seed
changes initialisation and batch order).  Each table's preset, overlays and records folder are its
:class:`gfd.tables.TableSpec`.

How a table is made::

    reproduce(table=1, preset="course", seeds=(0, 1, 2))          # -> <repository>/results
    reproduce(table=3, seeds=(0, 1, 2))                           # detection: the detect preset

1. One *run* = one method, one seed, trained and measured by :func:`gfd.runs.train_and_measure`.
   Its record (:mod:`gfd.runs.records`: the whole config, the data identity, a baseline's options
   and the key hashed from them) goes to ``<out_dir>/runs/<folder>/<method>-seed<k>.json``.  A
   record with the key the table asks for is read, not recomputed, so an interrupted reproduction
   resumes run by run, and a table whose runs are all recorded is written without loading any data.
   The networks of GFD-Net runs stay in their run folders under ``data/runs``, where the notebooks
   that trained the same configuration find them.
2. Nothing is selected on a test split: every learned method trains by the protocol of
   :mod:`gfd.protocol` (the preset's budget, weights and early stop chosen on the closed-world val
   split only; the ``paper`` preset keeps the last weights); the val accuracy is recorded beside
   the test numbers.
3. :func:`gfd.report.write_table` writes ``table<N>.json`` (every per-seed number and confusion
   matrix) and ``table<N>.md`` beside the paper's numbers.

The GFD-Net row of Table 1 and the G+D+C+L_percept row of Table 4 are the same configuration and
share their runs.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from gfd.config import OVERLAYS, Config, default_preset, get_config
from gfd.data import data_identity, load_data
from gfd.paper import GFD_ROWS, TABLES
from gfd.report import benchmark_label, write_table
from gfd.tables import TABLE_SPECS
from gfd.runs.records import load_run, make_record, record_key, run_identity, run_slug
from gfd.runs.variant import train_and_measure
from gfd.utils import atomic_write, pbar, results_dir

DEFAULT_SEEDS = (0, 1, 2, 3, 4)


@dataclass
class RunSpec:
    """One method trained with one seed on the data of one config."""

    method: str
    seed: int
    cfg: Config                       # the preset's config (the seed and switches are set here)
    folder: str | None = None         # the records' folder under runs/ (default: the preset's name)

    def config(self) -> Config:
        return self.cfg.with_(seed=self.seed, **GFD_ROWS.get(self.method, {}))

    def options(self) -> dict[str, Any] | None:
        """A baseline's options resolved from the config (``None`` for a GFD-Net row)."""
        if self.method in GFD_ROWS:
            return None
        from gfd.baselines import OPTIONS, TABLE_NAMES
        from gfd.baselines.common import resolve_options
        return dataclasses.asdict(resolve_options(OPTIONS[TABLE_NAMES[self.method]], self.config()))

    def identity(self, data: str | None) -> dict[str, Any]:
        """What decides this run (:func:`gfd.runs.records.run_identity`), as its record stores it."""
        return run_identity(self.method, self.config().to_dict(), data, self.options())

    def key(self, data: str | None = None) -> str:
        """The run key: :func:`gfd.runs.records.record_key` of :meth:`identity`."""
        return record_key(self.identity(data))

    def path(self, out_dir: str | os.PathLike) -> Path:
        folder = self.folder or self.cfg.preset
        return Path(out_dir) / "runs" / folder / f"{run_slug(self.method)}-seed{self.seed}.json"


def select_methods(table: int, only: Sequence[str] | None = None) -> tuple[str, ...]:
    """The rows of Table ``table``, or those of ``only`` in the table's order (unknown names fail)."""
    if table not in TABLES:
        raise ValueError(f"the paper's tables reproduced here are {sorted(TABLES)}; got {table!r}")
    rows = TABLES[table]
    unknown = [m for m in only or () if m not in rows]
    if unknown:
        raise ValueError(f"Table {table} has no row {unknown}; its rows are {list(rows)}")
    return tuple(m for m in rows if not only or m in only)


class TableData:
    """A table's data, loaded only when a run has to be trained: a run's key needs only the data's
    identity, which the config gives (:func:`gfd.data.data_identity`), so a table whose runs are all
    recorded is rewritten without building its benchmark.  ``bundle``, if given, is used as it is."""

    def __init__(self, cfg: Config, bundle=None, progress: bool = True):
        from gfd.detection import DetectionBundle
        if bundle is not None and (cfg.task == "detection") != isinstance(bundle, DetectionBundle):
            raise ValueError(f"a {cfg.task} config needs {cfg.task} data (gfd.data.load_data of the config), "
                             f"got a {type(bundle).__name__}")
        self.cfg, self._bundle, self.progress = cfg, bundle, progress

    @property
    def identity(self) -> str:
        return self._bundle.identity if self._bundle is not None else data_identity(self.cfg)

    def load(self):
        """The data (built on first use); their identity must be the one the config predicted."""
        if self._bundle is None:
            expected = data_identity(self.cfg)
            self._bundle = load_data(self.cfg, progress=self.progress)
            if self._bundle.identity != expected:
                raise RuntimeError(f"the data loaded for this table are {self._bundle.identity!r}, not {expected!r} "
                                   f"as their config says; gfd.data.data_identity and load_data disagree")
        return self._bundle


def collect_runs(table: int, cfg: Config, seeds: Sequence[int], bundle, out_dir: str | os.PathLike,
                 runs_root: str | os.PathLike | None = None, progress: bool = True,
                 log: Callable[[str], None] = print, only: Sequence[str] | None = None,
                 on_record: Callable[[Path], None] | None = None) -> dict[str, dict[int, dict]]:
    """Every (method, seed) run of a table (or of the rows in ``only``), loaded if stored, else
    computed and stored at once.  ``bundle``: the data, or a :class:`TableData` that loads them only
    if a run has to be trained."""
    data = bundle if isinstance(bundle, TableData) else TableData(cfg, bundle)
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError(f"give distinct seeds, at least one; got {list(seeds)}")
    rows = select_methods(table, only)
    folder = TABLE_SPECS[table].records_folder(cfg.preset)
    specs = [RunSpec(m, s, cfg, folder) for s in seeds for m in rows]   # seed by seed: every finished seed is a full, paired set of rows
    runs: dict[str, dict[int, dict]] = {m: {} for m in rows}
    bar = pbar(specs, enabled=progress, desc=f"Table {table} runs", unit="run")
    for spec in bar:
        bar.set_postfix(method=spec.method, seed=spec.seed)
        identity = spec.identity(data.identity)
        path, key = spec.path(out_dir), record_key(identity)
        run = load_run(path, key)
        if run is None:
            bundle = data.load()
            res = train_and_measure(spec.config(), bundle, spec.method, runs_root=runs_root, progress=progress)
            run = make_record(spec.method, spec.seed, identity, preset=res.cfg.preset,
                              benchmark=benchmark_label(bundle, res.cfg), weights=res.weights, seconds=res.seconds,
                              deterministic=res.deterministic, training=res.training, results=res.results)
            atomic_write(path, lambda p: p.write_text(json.dumps(run, indent=1), encoding="utf-8"))
            c_val = f"  C val {res.c_val:.1%}" if res.c_val is not None else ""
            if res.detection is not None:
                measured = f"val {res.val:.1%}  average over test sets {res.detection['Avg']:.1%}"
            else:
                opened = f"{res.open:.1%}" if res.open is not None else "n/a"
                measured = f"closed {res.closed:.1%}  open {opened}"
            log(f"{spec.method:16s} seed {spec.seed}: {measured}{c_val}  ({res.seconds:.0f} s) -> {path}")
            if on_record is not None:
                on_record(path)
        runs[spec.method][spec.seed] = run
    return runs


def table_config(table: int, preset: str | None, overrides: Sequence[str] = ()) -> Config:
    """The config of a table's runs: the preset (default: the table's, else :func:`default_preset`),
    the table's overlays (:class:`gfd.tables.TableSpec`), then ``overrides``."""
    spec = TABLE_SPECS[table]
    name = preset or spec.preset or default_preset()
    cfg = get_config(name, list(overrides), overlays=spec.overlays_for(name))
    if spec.columns == "test sets" and cfg.task != "detection":
        raise ValueError(f"Table {table} measures detection (Sec. 4.3): use the 'detect' preset or the 'detection' "
                         f"overlay, not task={cfg.task!r}")
    paper_w2 = OVERLAYS["detection"]["w2"]
    if cfg.task == "detection" and cfg.w2 != paper_w2:
        warnings.warn(f"Table {table} with w2={cfg.w2}: the paper's detection experiment uses w2={paper_w2} "
                      f"(Sec. 4.1; the 'detection' overlay)", stacklevel=3)
    return cfg


def table_setting(table: int, preset: str | None, overrides: Sequence[str] = (), bundle=None,
                  progress: bool = True, log: Callable[[str], None] = print) -> tuple[Config, TableData]:
    """The config and data of a table (:func:`table_config`); ``bundle`` (if given) is used, else
    the config's data are loaded when a run needs them (:class:`TableData`)."""
    cfg = table_config(table, preset, overrides)
    return cfg, TableData(cfg, bundle, progress)


def collect_table_runs(table: int, preset: str | None, seeds: Sequence[int], out_dir: str | os.PathLike,
                       overrides: Sequence[str] = (), runs_root: str | os.PathLike | None = None,
                       progress: bool = True, only: Sequence[str] | None = None, commit: bool = False,
                       log: Callable[[str], None] = print) -> dict[str, dict[int, dict]]:
    """Train and record a table's runs for ``seeds`` without writing the table: the work of one
    ``--jobs`` worker (``python -m gfd reproduce --records-only``)."""
    select_methods(table, only)
    cfg, bundle = table_setting(table, preset, overrides, progress=progress, log=log)
    return collect_runs(table, cfg, list(seeds), bundle, out_dir, runs_root, progress=progress, log=log,
                        only=only, on_record=commit_record if commit else None)


def reproduce(table: int, preset: str | None = None, seeds: Sequence[int] = DEFAULT_SEEDS,
              out_dir: str | os.PathLike | None = None, overrides: Sequence[str] = (), bundle=None,
              runs_root: str | os.PathLike | None = None, progress: bool = True, command: str | None = None,
              log: Callable[[str], None] = print, only: Sequence[str] | None = None,
              commit: bool = False, jobs: int = 1,
              tables_dir: str | os.PathLike | None = None) -> dict[str, dict[int, dict]]:
    """Measure every row of Table ``table`` over ``seeds`` and write ``table<N>.{md,json}`` to
    ``tables_dir`` (default ``out_dir``; default ``out_dir``: :func:`gfd.utils.results_dir`, the
    committed ``results/``).  The run records always live under ``out_dir/runs/``, so tables of
    other seed sets (exploratory, confirmatory, pooled) read one set of records.

    ``preset`` and ``overrides`` (``"key=value"`` strings) make the config as for
    ``python -m gfd train``; the data are ``bundle``, else :func:`gfd.data.load_data` of the config.
    GFD-Net networks live under ``runs_root`` (default ``data/runs``).  ``only`` keeps some rows
    (e.g. ``["G", "G+C"]``).  Returns ``{method: {seed: run record}}``.

    The table's :class:`gfd.tables.TableSpec` sets its overlays before ``overrides`` (Table 2: the
    ``gan1024`` world; Table 3: the detection task and weights, preset ``detect`` by default).

    ``jobs`` > 1 trains the runs in that many parallel worker processes (:func:`run_jobs`), each with
    its share of the CPU threads; this process then reads their records and writes the table.  The
    records are the same as with one job (every run owns its randomness).  The workers load the
    data the config names (the built-in benchmark or ``data_root``), not ``bundle``.
    """
    select_methods(table, only)          # a typo fails before any data is loaded
    out_dir = Path(out_dir or results_dir())
    cfg, data = table_setting(table, preset, overrides, bundle, progress=progress, log=log)
    if jobs > 1:
        data.load()                      # built here once, so that no two workers build the same cache
        run_jobs(table, cfg.preset, list(seeds), out_dir, list(overrides), jobs, runs_root=runs_root, only=only,
                 commit=commit, log=log)
    runs = collect_runs(table, cfg, list(seeds), data, out_dir, runs_root, progress=progress, log=log,
                        only=only, on_record=commit_record if commit else None)
    tables_dir = Path(tables_dir) if tables_dir is not None else out_dir
    tables_dir.mkdir(parents=True, exist_ok=True)
    write_table(table, runs, tables_dir, command=command)
    if commit:
        for name in (f"table{table}.md", f"table{table}.json"):
            commit_record(tables_dir / name)
    return runs


def job_tasks(table: int, seeds: Sequence[int], only: Sequence[str] | None = None) -> list[tuple[int, list[str]]]:
    """The work of ``--jobs`` in units that share nothing: for each seed, its rows that use the
    pre-trained C (they share the seed's cached C, so one process trains them in turn) and its other
    rows.  Every C unit comes first (they are the longest), each list in seed order."""
    rows = select_methods(table, only)
    with_c = [m for m in rows if GFD_ROWS.get(m, {}).get("use_C")]
    other = [m for m in rows if m not in with_c]
    return [(s, with_c) for s in seeds if with_c] + [(s, other) for s in seeds if other]


def run_jobs(table: int, preset: str, seeds: Sequence[int], out_dir: str | os.PathLike, overrides: Sequence[str],
             jobs: int, runs_root: str | os.PathLike | None = None, only: Sequence[str] | None = None,
             commit: bool = False, log: Callable[[str], None] = print, threads: int | None = None) -> None:
    """Train a table's runs in ``jobs`` parallel worker processes (``python -m gfd reproduce
    --records-only``).  The units of :func:`job_tasks` wait in one queue and a free worker slot takes
    the next, so the slots stay busy to the end; no two processes ever train rows that share a seed's
    cached C.  Each worker gets ``threads`` CPU threads (default: the cores divided among the jobs, at
    least one).  The data must already be built (the caller loaded them), so that no two workers build
    the same cache.  A failed unit fails the call after the others finished; every record already
    written stays."""
    import queue
    import threading

    tasks = job_tasks(table, seeds, only)
    slots = max(1, min(jobs, len(tasks)))
    threads = threads or max(1, (os.cpu_count() or 1) // slots)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    todo: queue.Queue = queue.Queue()
    for n, task in enumerate(tasks, 1):
        todo.put((n, *task))
    failed: list[tuple[int, str]] = []
    lock = threading.Lock()          # one message at a time: print() from two threads can interleave

    def slot(k: int) -> None:
        while True:
            try:
                n, seed, rows = todo.get_nowait()
            except queue.Empty:
                return
            cmd = [sys.executable, "-m", "gfd", "reproduce", "--table", str(table), "--preset", preset,
                   "--seeds", str(seed), "--methods", *rows, "--out", str(out_dir), "--records-only",
                   "--no-progress", *(arg for kv in overrides for arg in ("--set", kv)),
                   *(["--runs-root", str(runs_root)] if runs_root is not None else []), *(["--commit"] if commit else [])]
            with lock:
                log(f"worker {k}/{slots}, unit {n}/{len(tasks)}: seed {seed}, {', '.join(rows)} ({threads} thread(s))")
            if subprocess.run(cmd, env=env).returncode != 0:
                failed.append((n, f"seed {seed}: {', '.join(rows)}"))

    workers = [threading.Thread(target=slot, args=(k,)) for k in range(1, slots + 1)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if failed:
        raise RuntimeError(f"the worker unit(s) {[unit for _, unit in sorted(failed)]} failed (their messages are above); the records they "
                           f"finished are kept, run the same command again to resume")


def commit_record(path: Path) -> None:
    """``git add`` + ``git commit`` one file (a run record or a table) in the repository that holds
    it, so that a long reproduction keeps what it finished even if the session ends.  Only that file
    is committed; other changes in the work tree are left alone.  Outside a git work tree: nothing."""
    path = Path(path).resolve()
    git = ["git", "-C", str(path.parent)]
    inside = subprocess.run([*git, "rev-parse", "--is-inside-work-tree"], capture_output=True, text=True)
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        return
    for attempt in range(5):        # another git command may hold the index lock for a moment
        add = subprocess.run([*git, "add", "--", str(path)], capture_output=True, text=True)
        staged = subprocess.run([*git, "diff", "--cached", "--quiet", "--", str(path)])
        if add.returncode == 0 and staged.returncode == 0:
            return                  # nothing new to commit
        done = subprocess.run([*git, "commit", "-q", "-m", f"reproduce: {path.parent.name}/{path.name}", "--",
                               str(path)], capture_output=True, text=True)
        if add.returncode == 0 and done.returncode == 0:
            return
        time.sleep(2 + 3 * attempt)
    warnings.warn(f"could not git-commit {path} ({(add.stderr or done.stderr).strip()[-200:]}); the record is "
                  f"written, commit it by hand", stacklevel=2)
