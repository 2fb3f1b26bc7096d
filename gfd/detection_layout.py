"""The binary detection layout (Sec. 4.3) and the detection view of a built benchmark: data only.

::

    ROOT/train/{real,fake}/*.png        real vs. the training family
    ROOT/val/{real,fake}/*.png          the same, for the training protocol's selection
    ROOT/test/<set>/{real,fake}/*.png   one binary test set per generator (family, domain, variant)
    ROOT/detection.json                 (benchmark views) the training family, the test sets in order

:func:`detection_view` writes that layout for a built benchmark from hard links (see
:mod:`gfd.detection` for its test sets); :func:`test_set_names` reads the order of a folder's test
sets.  :func:`gfd.data.load_data` reads the layout for a config with ``task="detection"``.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from gfd.layout import CLOSED, OPEN, REAL, TEST_CLOSED, TEST_OPEN, TEST_SPLIT, TRAIN, VAL, DataLayoutError, list_images

FAKE = "fake"
CLASSES = (REAL, FAKE)
TRAIN_FAMILY = "progan"
"""The family trained on, in the role of the paper's ProGAN (ProGAN-airplane vs. LSUN-airplane)."""
TEST_DIR = TEST_SPLIT
"""The folder of the binary test sets (``ROOT/test/<set>/``), the test-only split of :mod:`gfd.layout`."""
VIEW_FILE = "detection.json"
VIEW_VERSION = 1


# --------------------------------------------------------------------------------------------------
# the benchmark's detection view
# --------------------------------------------------------------------------------------------------

def detection_sets(bench_root: str | os.PathLike, family: str = TRAIN_FAMILY
                   ) -> dict[str, dict[str, list[Path]]]:
    """``{folder: {"real": files, "fake": files}}`` of the detection view of a built benchmark:
    ``train``, ``val`` and ``test/<set>`` for every test set (order as in the module docstring)."""
    from gfd.benchmark.engine import VARIANTS_DIR, image_groups, read_manifest
    root = Path(bench_root)
    m = read_manifest(root)
    families = [c for c in m["classes"] if c != REAL]
    if family not in families:
        raise ValueError(f"no family {family!r} in the benchmark {root.name}; its families are {families}")
    sets: dict[str, dict[str, list[Path]]] = {}
    for split in (TRAIN, VAL):
        sets[split] = {REAL: list_images(root / split / REAL), FAKE: list_images(root / split / family)}
    closed = [w for w, info in m["worlds"].items() if info["role"] == CLOSED]
    opened = [w for w, info in m["worlds"].items() if info["role"] == OPEN]
    for world in closed:
        real = list_images(root / TEST_CLOSED / REAL)
        for f in [family] + [f for f in families if f != family]:          # the seen family first
            sets[f"{TEST_DIR}/{world}-{f}"] = {REAL: real, FAKE: list_images(root / TEST_CLOSED / f)}
    groups = image_groups(root, TEST_OPEN)
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
