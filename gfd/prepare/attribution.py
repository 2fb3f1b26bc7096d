"""``python -m gfd prepare attribution``: real and GAN image folders -> :mod:`gfd.layout` (Sec. 4.2).

Each *source* (class) is a name and two lists of folders: ``closed`` (the real images of the
closed-world dataset, or samples of a GAN trained on it) and ``open`` (the same GAN architecture
trained on the open-world dataset, or its real images).  From ``closed`` it draws ``train`` +
``val`` + ``test_closed`` images, from ``open`` ``test_open`` images (paper: 15000 / 1000 / 4000 /
4000 per class), and writes ``ROOT/{train,val,test_closed,test_open}/<source>/*``.  Either every
source has ``open`` folders or none (then there is no ``test_open``).  A source with several
folders in one world draws from them in turn (equal shares, as the paper's 10k FFHQ + 10k
CelebA-HQ real class).  On the command line, ``--source NAME=CLOSED[,OPEN]`` (repeat a NAME to add
folders); or a JSON manifest (relative paths are relative to the manifest)::

    {"sources": {"real":   {"closed": "celeba",        "open": "lsun_bedroom"},
                 "ProGAN": {"closed": ["progan_celeba"], "open": ["progan_lsun"]}},
     "counts": {"train": 15000, "val": 1000, "test_closed": 4000, "test_open": 4000},
     "seed": 0}

Selection, checks, output and report follow :mod:`gfd.prepare.builder`.
"""
from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from gfd.layout import CLOSED, CLOSED_SPLITS, OPEN, REAL, SPLITS, TEST_CLOSED, TEST_OPEN, TRAIN, VAL
from gfd.prepare.builder import (SAFE_NAME, Builder, Listing, PrepareError, check_overlaps, common_arguments,
                                 interleave, list_source, log_summary, run_builder, safe_stem, shuffled)

PAPER_COUNTS = {TRAIN: 15000, VAL: 1000, TEST_CLOSED: 4000, TEST_OPEN: 4000}

@dataclass
class SourceSpec:
    """One class: its name and the folders of its closed-world and open-world images."""

    name: str
    closed: list[Path] = field(default_factory=list)
    open: list[Path] = field(default_factory=list)


def parse_source_args(values: list[str]) -> list[SourceSpec]:
    """``["real=celeba,lsun", "ProGAN=pg_celeba,pg_lsun", "real=ffhq"]`` -> specs (a repeated name adds folders)."""
    specs: dict[str, SourceSpec] = {}
    for value in values:
        name, sep, dirs = value.partition("=")
        if not sep or not dirs:
            raise PrepareError(f"--source {value!r}: expected NAME=CLOSED_DIR[,OPEN_DIR]")
        parts = dirs.split(",")
        if len(parts) > 2 or not parts[0]:
            raise PrepareError(f"--source {value!r}: expected NAME=CLOSED_DIR[,OPEN_DIR] (one comma at most; "
                               f"repeat --source {name}=... to add folders, or use --manifest)")
        spec = specs.setdefault(name.strip(), SourceSpec(name.strip()))
        spec.closed.append(Path(parts[0]))
        if len(parts) == 2 and parts[1]:
            spec.open.append(Path(parts[1]))
    return list(specs.values())


def load_manifest(path: str | os.PathLike) -> tuple[list[SourceSpec], dict | None, int | None]:
    """Sources, counts and seed of a JSON manifest (see the module docstring)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise PrepareError(f"manifest {path} does not exist") from None
    except json.JSONDecodeError as err:
        raise PrepareError(f"manifest {path} is not valid JSON: {err}") from err
    if not isinstance(data, dict) or not isinstance(data.get("sources"), dict):
        raise PrepareError(f'manifest {path} must be a JSON object with a "sources" object; see '
                           f'python -m gfd prepare attribution --help')
    unknown = sorted(set(data) - {"sources", "counts", "seed", "comment"})
    if unknown:
        raise PrepareError(f"manifest {path}: unknown key(s) {unknown}; allowed: sources, counts, seed, comment")
    base = path.parent
    specs = []
    for name, entry in data["sources"].items():
        if isinstance(entry, str):
            entry = {CLOSED: entry}
        if not isinstance(entry, dict) or CLOSED not in entry or set(entry) - {CLOSED, OPEN}:
            raise PrepareError(f'manifest {path}: source {name!r} must be {{"closed": DIR or [DIRS], '
                               f'"open": DIR or [DIRS] (optional)}}, got {entry!r}')
        lists = {k: [entry[k]] if isinstance(entry.get(k), str) else list(entry.get(k) or []) for k in (CLOSED, OPEN)}
        specs.append(SourceSpec(name, *[[base / Path(d).expanduser() for d in lists[k]] for k in (CLOSED, OPEN)]))
    return specs, data.get("counts"), data.get("seed")


def parse_counts(value: str | dict | list | None) -> dict[str, int]:
    """``"15000,1000,4000[,4000]"``, ``"train=15000,val=1000,..."``, a dict or None -> counts per split."""
    counts = dict(PAPER_COUNTS)
    if value is None:
        return counts
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
        if all("=" in v for v in items):
            value = {k.strip(): v for k, v in (i.split("=", 1) for i in items)}
        elif all("=" not in v for v in items) and len(items) in (3, 4):
            value = dict(zip(SPLITS, items))
            if len(items) == 3:
                value[TEST_OPEN] = items[2]
        else:
            raise PrepareError(f"--counts {value!r}: give TRAIN,VAL,TEST_CLOSED[,TEST_OPEN] "
                               f"(paper: 15000,1000,4000,4000) or train=N,val=N,...")
    if isinstance(value, (list, tuple)):
        value = dict(zip(SPLITS, value))
    unknown = sorted(set(value) - set(SPLITS))
    if unknown:
        raise PrepareError(f"counts: unknown split(s) {unknown}; splits are {list(SPLITS)}")
    for k, v in value.items():
        try:
            counts[k] = int(v)
        except (TypeError, ValueError):
            raise PrepareError(f"counts: {k}={v!r} is not a whole number") from None
        if counts[k] < 1:
            raise PrepareError(f"counts: {k}={counts[k]}; every split needs at least 1 image per class")
    return counts


def _check_specs(specs: list[SourceSpec]) -> None:
    names = [s.name for s in specs]
    bad = [n for n in names if not SAFE_NAME.match(n) or n in SPLITS]
    if bad:
        raise PrepareError(f"source name(s) {bad} cannot be folder names: use letters, digits, '.', '_' or '-', "
                           f"not starting with '.', and not a split name {list(SPLITS)}")
    if len(set(names)) != len(names):
        raise PrepareError(f"source names repeat: {names}")
    if REAL not in names:
        raise PrepareError(f"no source named '{REAL}': GFD-Net pairs fingerprints with real images, so the real "
                           f"images' source must be called '{REAL}' (e.g. --source real=CELEBA_DIR,LSUN_DIR); "
                           f"sources given: {names}")
    if len(specs) < 2:
        raise PrepareError(f"attribution needs '{REAL}' and at least one GAN source; got {names}")
    with_open = [s.name for s in specs if s.open]
    if with_open and len(with_open) != len(specs):
        raise PrepareError(f"open world: source(s) {sorted(set(names) - set(with_open))} have no open-world folder "
                           f"but {with_open} do; test_open needs every class (give NAME=CLOSED,OPEN for all, "
                           f"or no open folder at all)")


def prepare_attribution(sources: list[SourceSpec], out: str | os.PathLike, *, counts: dict | str | None = None,
                        seed: int = 0, min_side: int = 1, link: str = "copy", on_duplicate: str = "drop",
                        strict: bool = False, verify: str = "decode", workers: int | None = None,
                        progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Build ``out`` in :mod:`gfd.layout`'s layout from closed- and open-world folders per source
    (Sec. 4.2.1's protocol); returns the report (also written to ``out/prepare_report.json``)."""
    _check_specs(sources)
    counts = parse_counts(counts)
    has_open = bool(sources[0].open)
    order = [REAL] + sorted(s.name for s in sources if s.name != REAL)
    specs = {s.name: s for s in sources}
    world_splits = {CLOSED: list(CLOSED_SPLITS), OPEN: [TEST_OPEN]}
    splits = world_splits[CLOSED] + (world_splits[OPEN] if has_open else [])

    # list everything first: a missing folder, an empty one or an outside symlink fails before any copy
    listings: dict[tuple[str, str], list[Listing]] = {}
    for name in order:
        for world in (CLOSED, OPEN) if has_open else (CLOSED,):
            listings[name, world] = [list_source(d, f"source {name!r} ({world} world, folder {i + 1})")
                                     for i, d in enumerate(getattr(specs[name], world))]
    check_overlaps([(f"source {name!r} ({world} world)", x.root) for (name, world), ls in listings.items() for x in ls])
    for (name, world), ls in listings.items():
        need = sum(counts[s] for s in world_splits[world])
        have = sum(len(x.files) for x in ls)
        if have < need:
            raise PrepareError(
                f"source {name!r} ({world} world): {have} image files in {[str(x.root) for x in ls]}, but "
                f"{need} are needed ({' + '.join(f'{counts[s]} {s}' for s in world_splits[world])}). "
                f"Add images or lower --counts (e.g. --counts {max(1, have * 15 // 20)},{max(1, have // 20)},"
                f"{max(1, have * 4 // 20)}).")

    total = sum(counts[s] for s in splits) * len(order)
    roots = [x.root for ls in listings.values() for x in ls]
    builder = Builder(out, roots, min_side=min_side, link=link, on_duplicate=on_duplicate, strict=strict,
                      verify=verify, workers=workers, progress=progress, total=total, log=log)

    def body():
        per_folder: dict[str, dict] = {}
        for (name, world), ls in listings.items():
            pools = [shuffled(x.files, seed, f"{name}/{world}/{i}") for i, x in enumerate(ls)]
            pool = interleave(pools)
            origin = {p: i for i, x in enumerate(ls) for p in x.files}
            targets = [(f"{s}/{name}", counts[s]) for s in world_splits[world]]
            rows_before = len(builder.rows)
            builder.fill(pool, targets, f"source {name!r} ({world} world, {[str(x.root) for x in ls]})",
                         tag=lambda p: safe_stem(p.stem, 40))
            taken = Counter(origin[Path(r[1])] for r in builder.rows[rows_before:])
            per_folder[f"{name}/{world}"] = {str(x.root): {"image_files": len(x.files), "taken": taken[i],
                                                           "non_image_files": x.non_images,
                                                           "symlinks_ignored": len(x.symlinks_ignored)}
                                             for i, x in enumerate(ls)}
        report = {
            "kind": "attribution",
            "layout": "ROOT/<split>/<source>/* (gfd.layout)",
            "classes": order,
            "splits": splits,
            "counts_requested": {s: counts[s] for s in splits},
            "seed": seed,
            "on_duplicate": on_duplicate,
            "sources": {n: {CLOSED: [str(p) for p in specs[n].closed], OPEN: [str(p) for p in specs[n].open]}
                        for n in order},
            "source_folders": per_folder,
            "counts": {s: {n: builder.counts[f"{s}/{n}"]["taken"] for n in order} for s in splits},
        }
        return report, order, {s: [f"{s}/{n}" for n in order] for s in splits}

    report = run_builder(builder, body)
    log(f"prepared {out} ({len(order)} classes: {', '.join(order)})")
    log_summary(report, log)
    return report


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------

ATTRIBUTION_HELP = """\
Real and GAN image folders -> ROOT/{train,val,test_closed,test_open}/<source>/ (gfd.layout), Sec. 4.2.

Each source (class) has closed-world folders (the closed-world dataset's real images, or samples of a
GAN trained on it: train + val + test_closed are drawn from them) and open-world folders (the same
GAN architecture trained on the open-world dataset, or that dataset's real images: test_open).
The real images' source must be called 'real'.  Either every source has an open-world folder or none.

  --source real=CELEBA,LSUN --source ProGAN=PROGAN_CELEBA,PROGAN_LSUN --source SNGAN=...
  --source real=FFHQ --source real=CELEBAHQ ...       (a repeated name adds folders: equal shares)
  --manifest sources.json                             (relative paths: relative to the manifest)

      {"sources": {"real":   {"closed": "celeba", "open": "lsun_bedroom"},
                   "ProGAN": {"closed": ["progan_celeba"], "open": ["progan_lsun"]}},
       "counts": {"train": 15000, "val": 1000, "test_closed": 4000, "test_open": 4000},
       "seed": 0}

Seeded, deterministic selection; unreadable, too small (--min-side / --transform) and duplicate
files are skipped and listed in ROOT/prepare_report.json; symlinks out of a source folder are an
error; sources are never modified; ROOT appears only when complete."""


def add_parser(sub) -> None:
    """Add the ``attribution`` sub-command to ``sub`` (the ``prepare`` parser's sub-parsers)."""
    a = sub.add_parser("attribution", help="real + GAN folders -> ROOT/<split>/<source>/ (Sec. 4.2)",
                       description=ATTRIBUTION_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--source", action="append", default=[], metavar="NAME=CLOSED[,OPEN]",
                   help="a class and its closed-world (train/val/test_closed) and open-world (test_open) folders; "
                        "repeat for every class ('real' included); repeat a NAME to add folders")
    a.add_argument("--manifest", default=None, help="JSON manifest of the sources instead of --source")
    a.add_argument("--counts", default=None, metavar="TRAIN,VAL,TEST_CLOSED[,TEST_OPEN]",
                   help="images per class and split (default the paper's 15000,1000,4000,4000)")
    common_arguments(a)


def run(args: argparse.Namespace, common: dict) -> None:
    """Run a parsed ``prepare attribution`` command; ``common`` holds the engine's options."""
    if bool(args.manifest) == bool(args.source):
        raise PrepareError("give the sources either as --source NAME=CLOSED[,OPEN] (repeated) or as "
                           "--manifest FILE.json, one of the two")
    counts, seed = None, None
    if args.manifest:
        specs, counts, seed = load_manifest(args.manifest)
    else:
        specs = parse_source_args(args.source)
    counts = args.counts if args.counts is not None else counts
    seed = args.seed if args.seed is not None else (seed or 0)
    prepare_attribution(specs, args.out, counts=counts, seed=seed, **common)
