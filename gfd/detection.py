"""Cross-generator binary fake detection (Sec. 4.3, Table 3, Fig. 3(b)), on our data.

The paper trains real vs. ONE generator (ProGAN-airplane vs. LSUN-airplane, ForenSynths) and tests
on 13 other generators; it reports the accuracy on every test set and their average (Table 3).
Here the same protocol runs on the built-in benchmark (:mod:`gfd.benchmark`) or on a prepared
ForenSynths folder (``python -m gfd prepare detection``), through one folder layout, the one
:func:`gfd.prepare.prepare_detection` writes::

    ROOT/train/{real,fake}/*.png        real vs. the training family
    ROOT/val/{real,fake}/*.png          the same, for the training protocol's selection
    ROOT/test/<set>/{real,fake}/*.png   one binary test set per generator (family, domain, variant)
    ROOT/detection.json                 (benchmark views) the training family, the test sets in order

:func:`detection_view` writes that layout for a built benchmark, from hard links (class folders
hold regular files only, :mod:`gfd.layout`'s rule; a hard link is one), file names kept, so the
per-instance accuracies of :func:`gfd.evaluate.instance_accuracy` still come out.  Its test sets,
for training family F (default ``progan``, the role of ProGAN) in the closed domain A:

``A-F``                the seen generators' held-out images (the paper's first column, ProGAN)
``A-<other family>``   every other family of the closed domain (StyleGAN, BigGAN, ... in the paper)
``B1-<family>``        every family in each other content domain (new generator instances trained
``B2-<family>``        on other content): against the real images of that domain
``variant-<name>``     the factor-analysis variants (StyleGAN2-like configurations) against the
                       real images they were fed

Every test set is real vs. fake (about balanced); the metric is accuracy over its images.
:func:`load_detection` reads the layout into a :class:`DetectionBundle` (two classes, ``real``
first) with the loaders of :mod:`gfd.data`; a config with ``task="detection"`` gets it from
:func:`gfd.data.load_data` (its ``data_root``, else the view of the built-in benchmark, see
:func:`detection_root`).  :func:`evaluate_detection` measures a model on ``val`` and every test
set, and :func:`detection_accuracies` gives ``{test set: acc, "Avg": mean over test sets}`` -- the average
over *all* test sets, the seen one included, as the paper's last column.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from gfd.config import Config
from gfd.data import DataBundle, add_splits, folder_identity
from gfd.layout import REAL, DataLayoutError, list_images

FAKE = "fake"
CLASSES = (REAL, FAKE)
TRAIN_FAMILY = "progan"
"""The family trained on, in the role of the paper's ProGAN (ProGAN-airplane vs. LSUN-airplane)."""
TEST_DIR = "test"
VIEW_FILE = "detection.json"
VIEW_VERSION = 1
AVERAGE = "Avg"
"""The metric name of the average over test sets (the paper's last column)."""


# --------------------------------------------------------------------------------------------------
# the benchmark's detection view
# --------------------------------------------------------------------------------------------------

def detection_sets(bench_root: str | os.PathLike, family: str = TRAIN_FAMILY
                   ) -> dict[str, dict[str, list[Path]]]:
    """``{folder: {"real": files, "fake": files}}`` of the detection view of a built benchmark:
    ``train``, ``val`` and ``test/<set>`` for every test set (order as in the module docstring)."""
    from gfd.benchmark.engine import OPEN_SPLIT, VARIANTS_DIR, image_groups, read_manifest
    root = Path(bench_root)
    m = read_manifest(root)
    families = [c for c in m["classes"] if c != REAL]
    if family not in families:
        raise ValueError(f"no family {family!r} in the benchmark {root.name}; its families are {families}")
    sets: dict[str, dict[str, list[Path]]] = {}
    for split in ("train", "val"):
        sets[split] = {REAL: list_images(root / split / REAL), FAKE: list_images(root / split / family)}
    closed = [w for w, info in m["worlds"].items() if info["role"] == "closed"]
    opened = [w for w, info in m["worlds"].items() if info["role"] == "open"]
    for world in closed:
        real = list_images(root / "test_closed" / REAL)
        for f in [family] + [f for f in families if f != family]:          # the seen family first
            sets[f"{TEST_DIR}/{world}-{f}"] = {REAL: real, FAKE: list_images(root / "test_closed" / f)}
    groups = image_groups(root, OPEN_SPLIT)
    for world in opened:
        real = [p for prefix, ps in groups[REAL].items() if prefix.startswith(f"{world}-") for p in ps]
        for f in families:
            fake = [p for prefix, ps in groups[f].items() if prefix.startswith(f"{world}-") for p in ps]
            sets[f"{TEST_DIR}/{world}-{f}"] = {REAL: sorted(real), FAKE: sorted(fake)}
    variants = m.get("variants", {}).get("names", [])
    for name in variants:
        if name != REAL and REAL in variants:
            sets[f"{TEST_DIR}/variant-{name}"] = {REAL: list_images(root / VARIANTS_DIR / REAL),
                                                  FAKE: list_images(root / VARIANTS_DIR / name)}
    empty = [f"{k}/{c}" for k, v in sets.items() for c, files in v.items() if not files]
    if empty:
        raise DataLayoutError(f"benchmark {root}: no image for detection folder(s) {empty}")
    return sets


def _link(src: Path, dst: Path) -> None:
    """A hard link (a regular file: the layout refuses symbolic links in class folders), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def view_name(benchmark: str, family: str = TRAIN_FAMILY) -> str:
    """The folder name of the detection view (real vs. ``family``) of the benchmark folder named
    ``benchmark``: ``detect-<family>-<benchmark>``, so it holds the benchmark's own key."""
    return f"detect-{family}-{benchmark}"


def detection_view(bench_root: str | os.PathLike, out: str | os.PathLike | None = None,
                   family: str = TRAIN_FAMILY, log: Callable[[str], None] | None = None) -> Path:
    """Write (once) the detection layout of a built benchmark and return its folder.

    Default ``out``: ``<benchmark parent>/detect-<family>-<benchmark name>``, so the view's name (the
    run keys' data identity) holds the benchmark's own key.  A complete view is reused; the view is
    built in a temporary sibling folder and renamed when complete."""
    bench_root = Path(bench_root)
    out = Path(out) if out is not None else bench_root.parent / view_name(bench_root.name, family)
    info = read_view(out)
    if info is not None and info.get("version") == VIEW_VERSION and info.get("benchmark") == bench_root.name \
            and info.get("family") == family:
        return out
    if out.exists():
        raise FileExistsError(f"{out} exists but is not a complete detection view of {bench_root.name} "
                              f"(family {family}); remove it or choose another folder")
    sets = detection_sets(bench_root, family)
    tmp = out.parent / f".tmp-{out.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    for folder, labels in sets.items():
        for label, files in labels.items():
            target = tmp / folder / label
            target.mkdir(parents=True)
            for src in files:
                _link(src, target / src.name)
    test_sets = [k.split("/", 1)[1] for k in sets if k.startswith(f"{TEST_DIR}/")]
    meta = dict(version=VIEW_VERSION, kind="detection", benchmark=bench_root.name, family=family,
                classes=list(CLASSES), test_sets=test_sets, seen=test_sets[0],
                counts={k: {c: len(v) for c, v in labels.items()} for k, labels in sets.items()})
    (tmp / VIEW_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    (tmp / "classes.json").write_text(json.dumps(list(CLASSES)), encoding="utf-8")
    os.replace(tmp, out)
    if log:
        log(f"detection view of {bench_root.name}: real vs {family}, {len(test_sets)} test sets -> {out}")
    return out


def read_view(root: str | os.PathLike) -> dict[str, Any] | None:
    """The ``detection.json`` of a benchmark's detection view; ``None`` for other folders."""
    try:
        return json.loads((Path(root) / VIEW_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None


# --------------------------------------------------------------------------------------------------
# reading the layout
# --------------------------------------------------------------------------------------------------

def test_set_names(root: str | os.PathLike) -> list[str]:
    """The test sets of a detection folder: the order of ``detection.json`` (benchmark views), else
    that of ``prepare_report.json`` (``prepare detection``), else by name."""
    root = Path(root)
    present = sorted(p.name for p in (root / TEST_DIR).iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if (root / TEST_DIR).is_dir() else []
    order = (read_view(root) or {}).get("test_sets")
    if order is None:
        try:
            counts = json.loads((root / "prepare_report.json").read_text())["counts"]
            order = [k.split("/", 1)[1] for k in counts if k.startswith(f"{TEST_DIR}/")]
        except (OSError, json.JSONDecodeError, KeyError):
            order = present
    missing = [n for n in order if n not in present]
    if missing:
        raise DataLayoutError(f"{root}: test set folder(s) {missing} are missing under {root / TEST_DIR}")
    if not order:
        raise DataLayoutError(f"{root}: no test set; expected {TEST_DIR}/<set>/{{{REAL},{FAKE}}}/*.png")
    return list(order)


@dataclass
class DetectionBundle(DataBundle):
    """A :class:`gfd.data.DataBundle` of the binary detection layout: splits ``train``, ``val`` and
    ``test/<set>`` for every name in :attr:`test_sets` (in order)."""

    test_sets: list[str] = field(default_factory=list)

    @property
    def identity(self) -> str:
        """A benchmark view is named by its benchmark's key (its folder name); other data by path."""
        return folder_identity(self.root, VIEW_FILE)

    @property
    def test_splits(self) -> list[str]:
        return [f"{TEST_DIR}/{n}" for n in self.test_sets]


def load_detection(root: str | os.PathLike, cfg: Config, *, skip_bad: bool = False,
                   splits: Sequence[str] | None = None) -> DetectionBundle:
    """Loaders of the detection folder ``root``: ``train``, ``val`` and every ``test/<set>`` (or
    those of ``splits``, in that order), read with ``cfg`` by :func:`gfd.data.add_splits` -- the
    loaders of attribution data, with the same transforms, seeds and machine settings.  Most code
    should call :func:`gfd.data.load_data` with ``task="detection"`` instead."""
    root = Path(root)
    for split in ("train", "val"):
        found = sorted(p.name for p in (root / split).iterdir()) if (root / split).is_dir() else []
        if sorted(found) != sorted(CLASSES):
            raise DataLayoutError(f"{root / split}: expected the class folders {list(CLASSES)} of the detection "
                                  f"layout (python -m gfd prepare detection), found {found or 'nothing'}")
    names = test_set_names(root)
    bundle = DetectionBundle(root=root, classes=list(CLASSES), test_sets=names)
    present = ["train", "val", *bundle.test_splits]
    unknown = [s for s in splits or () if s not in present]
    if unknown:
        raise DataLayoutError(f"split(s) {unknown} asked for but not in {root}; present: {present}")
    add_splits(bundle, list(splits or present), cfg, skip_bad=skip_bad)
    return bundle


def detection_root(cfg: Config, family: str = TRAIN_FAMILY, *, progress: bool = True,
                   log: Callable[[str], None] | None = print) -> Path:
    """The folder of a config's detection data: ``cfg.data_root`` if set (a detection layout, e.g.
    from ``python -m gfd prepare detection``; it fixed its own training family), else the
    detection view of the built-in benchmark ``cfg.benchmark`` of size ``cfg.benchmark_size``,
    real vs. ``family`` (both built on first use).

    ``family`` is a keyword, not a config field: it only picks which of the benchmark's files
    the view holds, and the view's folder (``detect-<family>-<benchmark>``, the bundle's
    ``identity``) already names it in every run key.  :func:`gfd.data.load_data` uses the default
    family; for another, ``load_detection(detection_root(cfg, family=F), cfg)``."""
    if cfg.data_root is not None:
        return Path(cfg.data_root)
    from gfd.benchmark import load_benchmark
    bench = load_benchmark(cfg.benchmark, cfg.benchmark_size, seed=0, progress=progress)
    return detection_view(bench, family=family, log=log)


# --------------------------------------------------------------------------------------------------
# measuring
# --------------------------------------------------------------------------------------------------

def evaluate_detection(model: Callable[[torch.Tensor], torch.Tensor], bundle: DetectionBundle,
                       device: torch.device | str | None = None) -> dict[str, dict[str, Any]]:
    """:func:`gfd.evaluate.evaluate_model` on ``val`` and every test set; each test set's result is
    named (``"world"``) by the test set, so tables get one metric per test set."""
    from gfd.evaluate import evaluate_model
    results = evaluate_model(model, bundle, splits=["val", *bundle.test_splits], device=device)
    for split in bundle.test_splits:
        results[split]["world"] = split.split("/", 1)[1]
    return results


def detection_accuracies(results: dict[str, dict[str, Any]],
                         test_sets: Sequence[str] | None = None) -> dict[str, float]:
    """``{test set: accuracy, ..., "Avg": mean over the test sets}`` from :func:`evaluate_detection`'s
    results (``test_sets`` picks and orders them; default: every ``test/<set>`` split, in order)."""
    names = list(test_sets) if test_sets is not None else \
        [k.split("/", 1)[1] for k in results if k.startswith(f"{TEST_DIR}/")]
    if not names:
        raise ValueError("no test set in these results")
    accs = {n: float(results[f"{TEST_DIR}/{n}"]["acc"]) for n in names}
    return accs | {AVERAGE: sum(accs.values()) / len(accs)}
