"""``python -m gfd prepare detection``: ForenSynths folders -> the detection layout (Sec. 4.3, Table 3).

Input in the ForenSynths / CNNDetection layout ``<set>/[<category>/]{0_real,1_fake}/*``; output ::

    ROOT/train/{real,fake}/*          from --train (only --categories, e.g. airplane as in the paper)
    ROOT/val/{real,fake}/*            from --val, or a seeded --val-fraction of --train
    ROOT/test/<set>/{real,fake}/*     one folder per sub-folder of --test (progan, stylegan, ...)

``class_folders(ROOT, "train")`` and ``class_folders(ROOT / "test", "<set>")`` of :mod:`gfd.layout`
read it (``real`` first).  ``--limit N`` keeps at most N images per class and split.  Selection,
checks, output and report follow :mod:`gfd.prepare.builder`; duplicates are content already taken
for train or val, or for the same test set: the test sets are independent (each is evaluated on its
own), so an image that two of them share stays in both, while one shared with train or val is
dropped from the later folder.
"""
from __future__ import annotations

import argparse
import os
from collections import defaultdict
from pathlib import Path
from typing import Callable

from gfd.layout import REAL, TEST_SPLIT, TRAIN, VAL
from gfd.prepare.builder import (SAFE_NAME, Builder, Listing, PrepareError, check_link, check_overlaps,
                                 common_arguments, list_source, log_summary, run_builder, safe_stem, shuffled)

FAKE = "fake"
FORENSYNTHS_LABELS = {"0_real": REAL, "1_fake": FAKE}

def forensynths_groups(folder: str | os.PathLike, what: str) -> dict[str, dict[str, list[Path]]]:
    """``{category: {"real": [label folders], "fake": [...]}}`` of a ForenSynths set: every ``0_real`` /
    ``1_fake`` folder under ``folder``; its category is the first path part below ``folder`` ("" when
    the label folders are directly inside)."""
    folder = Path(folder).absolute()
    if not folder.is_dir():
        raise PrepareError(f"{what}: folder {folder} does not exist or is not a folder")
    groups: dict[str, dict[str, list[Path]]] = defaultdict(lambda: {REAL: [], FAKE: []})
    real_root = folder.resolve()
    for dirpath, dirnames, _ in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for d in list(dirnames):
            if (Path(dirpath) / d).is_symlink():          # outside: refused; inside: walked by its real path
                check_link(Path(dirpath) / d, real_root, what)
                dirnames.remove(d)
                continue
            if d in FORENSYNTHS_LABELS:
                rel = (Path(dirpath) / d).relative_to(folder)
                category = rel.parts[0] if len(rel.parts) > 1 else ""
                groups[category][FORENSYNTHS_LABELS[d]].append(Path(dirpath) / d)
                dirnames.remove(d)
    if not groups:
        raise PrepareError(f"{what}: no '0_real' or '1_fake' folder under {folder}; expected the ForenSynths "
                           f"layout <set>/[<category>/]{{0_real,1_fake}}/*.png")
    return dict(sorted(groups.items()))


def _label_pool(groups: dict, label: str, seed: int, key: str, what: str) -> tuple[list[Path], dict, list[Listing]]:
    listings, tags = [], {}
    for category, labels in groups.items():
        for i, d in enumerate(labels[label]):
            ls = list_source(d, f"{what}, category {category or '-'}, {d.name}")
            listings.append(ls)
            for p in ls.files:
                tags[p] = safe_stem("_".join(filter(None, [category, p.stem])), 60)
    if not listings:
        raise PrepareError(f"{what}: no '{'0_real' if label == REAL else '1_fake'}' folder (class {label!r}) in "
                           f"categories {sorted(groups)}")
    files = sorted({p for ls in listings for p in ls.files})
    return shuffled(files, seed, key), tags, listings


def prepare_detection(out: str | os.PathLike, *, train: str | os.PathLike, val: str | os.PathLike | None = None,
                      test: str | os.PathLike | None = None, categories: list[str] | None = None,
                      test_sets: list[str] | None = None, val_fraction: float = 0.05, limit: int | None = None,
                      seed: int = 0, min_side: int = 1, link: str = "copy", on_duplicate: str = "drop",
                      strict: bool = False, verify: str = "decode", workers: int | None = None,
                      progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Build the binary detection layout (``train|val/{real,fake}``, ``test/<set>/{real,fake}``) from
    ForenSynths folders; returns the report (also in ``out/prepare_report.json``)."""
    if limit is not None and limit < 1:
        raise PrepareError(f"--limit must be >= 1, got {limit}")
    if val is None and not 0 < val_fraction < 1:
        raise PrepareError(f"--val-fraction must be between 0 and 1 (exclusive), got {val_fraction}")

    def select(groups: dict, what: str) -> dict:
        if categories is None:
            return groups
        missing = sorted(set(categories) - set(groups))
        if missing:
            raise PrepareError(f"{what}: category(ies) {missing} not found; present: {sorted(groups)}")
        return {c: groups[c] for c in categories}

    train_groups = select(forensynths_groups(train, "--train"), "--train")
    val_groups = select(forensynths_groups(val, "--val"), "--val") if val is not None else None
    sets: dict[str, dict] = {}
    if test is not None:
        test = Path(test).absolute()
        if not test.is_dir():
            raise PrepareError(f"--test: folder {test} does not exist or is not a folder")
        names = []
        for p in sorted(test.iterdir()):
            if p.name.startswith(".") or not p.is_dir():
                continue
            if p.is_symlink():            # outside: refused; inside: already listed under its real name
                check_link(p, test.resolve(), "--test")
                continue
            names.append(p.name)
        if test_sets is not None:
            missing = sorted(set(test_sets) - set(names))
            if missing:
                raise PrepareError(f"--test-sets {missing} not in {test}; present: {names}")
            names = list(test_sets)
        for name in names:
            if not SAFE_NAME.match(name):
                raise PrepareError(f"test set folder {test / name}: its name cannot be used as an output folder")
            sets[name] = forensynths_groups(test / name, f"--test set {name!r}")
        if not sets:
            raise PrepareError(f"--test: {test} has no sub-folder (expected one folder per generator)")

    # list everything before writing anything
    pools: dict[tuple[str, str], tuple[list[Path], dict]] = {}
    folders: list[tuple[str, Path]] = []
    for label in (REAL, FAKE):
        for split, groups in ((TRAIN, train_groups), (VAL, val_groups)):
            if groups is not None:
                pool, tags, ls = _label_pool(groups, label, seed, f"{split}/{label}", f"--{split}")
                pools[split, label] = (pool, tags)
                folders += [(f"--{split} class {label!r}", x.root) for x in ls]
        for name, groups in sets.items():
            pool, tags, ls = _label_pool(groups, label, seed, f"{TEST_SPLIT}/{name}/{label}", f"--test set {name!r}")
            pools[f"{TEST_SPLIT}/{name}", label] = (pool, tags)
            folders += [(f"--test set {name!r} class {label!r}", x.root) for x in ls]
    check_overlaps(folders)
    roots = [root for _, root in folders]

    def quota(n: int) -> int | None:
        return None if limit is None or limit >= n else limit

    total = sum(min(len(p), limit or len(p)) for p, _ in pools.values())
    builder = Builder(out, roots, min_side=min_side, link=link, on_duplicate=on_duplicate, strict=strict,
                      verify=verify, workers=workers, progress=progress, total=total, log=log)

    fewer = ("lower --limit (at most this many images per class and split)" if limit is not None
             else "replace the unusable files (or lower --min-side)")

    def body():
        counts: dict[str, dict[str, int]] = defaultdict(dict)
        for label in (REAL, FAKE):
            pool, tags = pools[TRAIN, label]
            if val_groups is None:        # carve val out of train: the first val_fraction of the shuffled pool
                n_val = max(1, round(val_fraction * len(pool)))
                if limit is not None:
                    n_val = min(n_val, limit)
                if len(pool) - n_val < 1:
                    raise PrepareError(f"--train class {label!r}: {len(pool)} image(s), too few to carve a "
                                       f"validation split; give --val")
                targets = [(f"{VAL}/{label}", n_val), (f"{TRAIN}/{label}", quota(len(pool) - n_val))]
            else:
                targets = [(f"{TRAIN}/{label}", quota(len(pool)))]
            got = builder.fill(pool, targets, f"--train class {label!r}", tag=tags.__getitem__, fewer=fewer)
            counts[TRAIN][label] = got[f"{TRAIN}/{label}"]
            if val_groups is None:
                counts[VAL][label] = got[f"{VAL}/{label}"]
            else:
                pool, tags = pools[VAL, label]
                counts[VAL][label] = builder.fill(pool, [(f"{VAL}/{label}", quota(len(pool)))],
                                                    f"--val class {label!r}", tag=tags.__getitem__,
                                                    fewer=fewer)[f"{VAL}/{label}"]
            for name in sets:
                pool, tags = pools[f"{TEST_SPLIT}/{name}", label]
                counts[f"{TEST_SPLIT}/{name}"][label] = builder.fill(
                    pool, [(f"{TEST_SPLIT}/{name}/{label}", quota(len(pool)))], f"--test set {name!r} class {label!r}",
                    tag=tags.__getitem__, scope=f"{TEST_SPLIT}/{name}", fewer=fewer)[f"{TEST_SPLIT}/{name}/{label}"]
        report = {
            "kind": "detection",
            "layout": "ROOT/train/{real,fake}/*, ROOT/val/{real,fake}/*, ROOT/test/<set>/{real,fake}/*",
            "classes": [REAL, FAKE],
            "inputs": {"train": str(Path(train).absolute()), "val": str(Path(val).absolute()) if val else None,
                       "test": str(test) if test else None},
            "categories": {"train": sorted(train_groups), "val": sorted(val_groups) if val_groups else None,
                           "test": {n: sorted(g) for n, g in sets.items()}},
            "val_from": "--val" if val_groups is not None else f"{val_fraction} of --train",
            "limit_per_class": limit,
            "seed": seed,
            "on_duplicate": on_duplicate,
            "counts": {k: dict(v) for k, v in counts.items()},
        }
        return report, [REAL, FAKE], {TRAIN: [f"{TRAIN}/{REAL}", f"{TRAIN}/{FAKE}"]}

    report = run_builder(builder, body)
    log(f"prepared {out} (detection: train {report['counts'][TRAIN]}, {len(sets)} test set(s))")
    log_summary(report, log)
    return report


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------

DETECTION_HELP = """\
ForenSynths / CNNDetection folders <set>/[<category>/]{0_real,1_fake}/* -> the detection layout, Sec. 4.3:

  ROOT/train/{real,fake}/*         from --train, only --categories (the paper: airplane)
  ROOT/val/{real,fake}/*           from --val, or a seeded --val-fraction of --train
  ROOT/test/<set>/{real,fake}/*    one per sub-folder of --test (progan, stylegan, biggan, ...)

Example: --train progan_train --val progan_val --test CNN_synth_testset --categories airplane
The same checks and report as 'prepare attribution'; --limit N keeps at most N images per class and split."""


def add_parser(sub) -> None:
    """Add the ``detection`` sub-command to ``sub`` (the ``prepare`` parser's sub-parsers)."""
    d = sub.add_parser("detection", help="ForenSynths {0_real,1_fake} -> ROOT/train|val/{real,fake}, "
                                         "ROOT/test/<set>/{real,fake} (Sec. 4.3)",
                       description=DETECTION_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("--train", required=True, help="ForenSynths training set, e.g. progan_train")
    d.add_argument("--val", default=None, help="ForenSynths validation set, e.g. progan_val")
    d.add_argument("--test", default=None, help="folder of test sets, e.g. CNN_synth_testset")
    d.add_argument("--categories", default=None,
                   help="comma-separated categories of --train/--val to use (paper: airplane; default all)")
    d.add_argument("--test-sets", default=None, help="comma-separated test sets to use (default all)")
    d.add_argument("--val-fraction", type=float, default=0.05,
                   help="without --val: this fraction of --train becomes val (default 0.05)")
    d.add_argument("--limit", type=int, default=None, help="at most this many images per class and split")
    common_arguments(d)


def run(args: argparse.Namespace, common: dict) -> None:
    """Run a parsed ``prepare detection`` command; ``common`` holds the engine's options."""
    split = lambda s: [x.strip() for x in s.split(",") if x.strip()] if s else None  # noqa: E731
    prepare_detection(args.out, train=args.train, val=args.val, test=args.test,
                      categories=split(args.categories), test_sets=split(args.test_sets),
                      val_fraction=args.val_fraction, limit=args.limit, seed=args.seed or 0, **common)
