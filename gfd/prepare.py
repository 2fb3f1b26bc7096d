"""Turn folders of real and GAN images into the dataset layouts ``gfd`` reads (Sec. 4.2 and 4.3).

Two commands, one engine::

    python -m gfd prepare attribution --out ROOT --source real=CELEBA,LSUN --source ProGAN=PG_CELEBA,PG_LSUN ...
    python -m gfd prepare attribution --out ROOT --manifest sources.json
    python -m gfd prepare detection   --out ROOT --train progan_train --val progan_val \\
                                      --test CNN_synth_testset --categories airplane

**Attribution** (Sec. 4.2, :func:`prepare_attribution`).  Each *source* (class) is a name and two
lists of folders: ``closed`` (the real images of the closed-world dataset, or samples of a GAN
trained on it) and ``open`` (the same GAN architecture trained on the open-world dataset, or its
real images).  From ``closed`` it draws ``train`` + ``val`` + ``test_closed`` images, from ``open``
``test_open`` images (paper: 15000 / 1000 / 4000 / 4000 per class), and writes
:mod:`gfd.layout`'s ``ROOT/{train,val,test_closed,test_open}/<source>/*``.  Either every source has
``open`` folders or none (then there is no ``test_open``).  A source with several folders in one
world draws from them in turn (equal shares, as the paper's 10k FFHQ + 10k CelebA-HQ real class).
On the command line, ``--source NAME=CLOSED[,OPEN]`` (repeat a NAME to add folders); or a JSON
manifest (relative paths are relative to the manifest)::

    {"sources": {"real":   {"closed": "celeba",        "open": "lsun_bedroom"},
                 "ProGAN": {"closed": ["progan_celeba"], "open": ["progan_lsun"]}},
     "counts": {"train": 15000, "val": 1000, "test_closed": 4000, "test_open": 4000},
     "seed": 0}

**Detection** (Sec. 4.3, Table 3, :func:`prepare_detection`).  Input in the ForenSynths /
CNNDetection layout ``<set>/[<category>/]{0_real,1_fake}/*``; output ::

    ROOT/train/{real,fake}/*          from --train (only --categories, e.g. airplane as in the paper)
    ROOT/val/{real,fake}/*            from --val, or a seeded --val-fraction of --train
    ROOT/test/<set>/{real,fake}/*     one folder per sub-folder of --test (progan, stylegan, ...)

``class_folders(ROOT, "train")`` and ``class_folders(ROOT / "test", "<set>")`` of :mod:`gfd.layout`
read it (``real`` first).  ``--limit N`` keeps at most N images per class and split.

**Rules** (both).  Files are listed recursively (sorted, hidden entries skipped, only
``gfd.layout.IMAGE_EXTENSIONS``), shuffled with a seed derived from ``--seed``, the source name and
the folder's position (not its path), and taken in that order: the selection is deterministic and
does not change when other sources are added.  Every taken file is decoded once with
:func:`gfd.data.load_rgb` (``--verify header`` reads only the header) and hashed (sha256);
unreadable files and images smaller than ``--min-side`` (or the transform preset's minimum, e.g.
``--transform p1024 --crop 224``) are skipped, listed in the report and counted; the next file
takes their place.  A file whose content was already taken (any split, any class) is a duplicate:
dropped and reported (``--on-duplicate drop``) or an error (``error``).  ``--strict`` turns any
skipped file into an error.  Too few usable images for the counts is an error naming the folder.

Symlinks: one resolving **outside** its source folder is an error (never followed); one inside is
ignored, since its target is listed under its real path anyway (a folder is never walked twice).
Sources are never modified: files are copied, or hard-linked with ``--link hardlink`` (falls back
to a copy across file systems; a hard link shares the bytes, so editing the output edits the source).

Output is built in ``.<ROOT name>.partial`` next to ROOT and renamed to ROOT only when complete; an
error or interruption removes it (a rerun also removes a stale one), and ROOT must not exist or be
empty, so nothing already there is ever touched.  ROOT gets ``classes.json``, ``prepare_report.json``
(inputs, counts per split and class, image sizes, every skipped file and why, warnings) and
``prepare_files.csv`` (each output file, its original path and its sha256).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import re
import shutil
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from PIL import Image

from gfd.data import BadImageError, load_rgb
from gfd.layout import IMAGE_EXTENSIONS, REAL, SPLITS, is_image_file
from gfd.utils import atomic_write, pbar

PAPER_COUNTS = {"train": 15000, "val": 1000, "test_closed": 4000, "test_open": 4000}
REPORT_NAME = "prepare_report.json"
FILES_NAME = "prepare_files.csv"
PARTIAL_MARKER = ".gfd-prepare-partial"
FAKE = "fake"
FORENSYNTHS_LABELS = {"0_real": REAL, "1_fake": FAKE}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_MAX_LISTED = 10


class PrepareError(ValueError):
    """Input or output that cannot be prepared; the message names the path and the fix."""


# --------------------------------------------------------------------------------------------------
# listing source folders
# --------------------------------------------------------------------------------------------------

@dataclass
class Listing:
    """Image files under one source folder, and what was passed over."""

    root: Path
    files: list[Path] = field(default_factory=list)
    non_images: int = 0
    symlinks_ignored: list[str] = field(default_factory=list)


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _check_link(link: Path, real_root: Path, what: str) -> None:
    target = link.resolve()
    if not _inside(target, real_root):
        raise PrepareError(
            f"{what}: {link} is a symlink to {target}, outside the source folder {real_root}. gfd prepare "
            f"does not follow links out of a source tree; give the link's target as a source folder "
            f"instead, or copy the files in.")


def list_source(folder: str | os.PathLike, what: str) -> Listing:
    """Image files under ``folder`` (recursive, sorted, hidden entries skipped), refusing symlinks
    that resolve outside it and ignoring those inside (their targets are listed under their real path)."""
    folder = Path(folder).absolute()
    if not folder.exists():
        raise PrepareError(f"{what}: folder {folder} does not exist")
    if not folder.is_dir():
        raise PrepareError(f"{what}: {folder} is not a folder")
    real_root = folder.resolve()
    listing = Listing(folder)
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        here = Path(dirpath)
        keep = []
        for d in sorted(dirnames):
            if d.startswith("."):
                continue
            if (here / d).is_symlink():
                _check_link(here / d, real_root, what)
                listing.symlinks_ignored.append(str(here / d))
                continue
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = here / name
            if path.is_symlink():
                _check_link(path, real_root, what)
                listing.symlinks_ignored.append(str(path))
            elif is_image_file(name):
                listing.files.append(path)
            else:
                listing.non_images += 1
    if not listing.files:
        raise PrepareError(
            f"{what}: folder {folder} holds no image file ({', '.join(IMAGE_EXTENSIONS)}; searched recursively, "
            f"{listing.non_images} other file(s), {len(listing.symlinks_ignored)} symlink(s) ignored)")
    return listing


def check_overlaps(folders: list[tuple[str, Path]]) -> None:
    """Each folder may feed one class of one split only: refuse folders that are equal or nested."""
    given = [(what, Path(root).resolve()) for what, root in folders]
    for i, (a, ra) in enumerate(given):
        for b, rb in given[i + 1:]:
            if _inside(ra, rb) or _inside(rb, ra):
                raise PrepareError(f"the folders of {a} ({ra}) and {b} ({rb}) overlap; each folder may feed "
                                   f"only one class and split, or the same images would land in two places")


def shuffled(files: list[Path], seed: int, key: str) -> list[Path]:
    """``files`` in a seeded order that depends on ``seed`` and ``key`` only (not on paths or Python's hash seed)."""
    out = list(files)
    random.Random(f"gfd-prepare/{seed}/{key}").shuffle(out)
    return out


def interleave(lists: list[list[Path]]) -> list[Path]:
    """Round-robin over several lists: equal shares from each folder while they last."""
    out, k = [], 0
    while any(k < len(x) for x in lists):
        out += [x[k] for x in lists if k < len(x)]
        k += 1
    return out


# --------------------------------------------------------------------------------------------------
# the engine: check, deduplicate and place files into a partial output folder
# --------------------------------------------------------------------------------------------------

@dataclass
class Checked:
    path: Path
    sha256: str = ""
    size: tuple[int, int] = (0, 0)
    error: str = ""


def _safe_stem(text: str, limit: int = 60) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:limit] or "img"


class Builder:
    """Fills ``<out>.partial/<folder>/`` with checked files; :meth:`finish` renames it to ``out``."""

    def __init__(self, out: str | os.PathLike, source_roots: Iterable[Path], *, min_side: int = 1,
                 link: str = "copy", on_duplicate: str = "drop", strict: bool = False, verify: str = "decode",
                 workers: int | None = None, progress: bool = True, total: int | None = None,
                 log: Callable[[str], None] = print):
        if link not in ("copy", "hardlink"):
            raise PrepareError(f"link must be 'copy' or 'hardlink', got {link!r}")
        if on_duplicate not in ("drop", "error"):
            raise PrepareError(f"on_duplicate must be 'drop' or 'error', got {on_duplicate!r}")
        if verify not in ("decode", "header"):
            raise PrepareError(f"verify must be 'decode' or 'header', got {verify!r}")
        if min_side < 1:
            raise PrepareError(f"min_side must be >= 1, got {min_side}")
        self.out = Path(out).absolute()
        self.min_side, self.link, self.on_duplicate = min_side, link, on_duplicate
        self.strict, self.verify, self.log = strict, verify, log
        self.workers = workers or min(4, os.cpu_count() or 1)
        self._check_output(list(source_roots))
        self.tmp = self.out.parent / f".{self.out.name}.partial"
        if self.tmp.exists():
            if not (self.tmp / PARTIAL_MARKER).exists():
                raise PrepareError(f"{self.tmp} exists and was not made by gfd prepare; remove or rename it")
            log(f"removing {self.tmp}, the unfinished output of an earlier run")
            shutil.rmtree(self.tmp)
        self.tmp.mkdir(parents=True)
        (self.tmp / PARTIAL_MARKER).touch()
        self.seen: dict[str, tuple[str, str]] = {}          # sha256 -> (output file, original)
        self.rows: list[tuple[str, str, str]] = []            # output file, original, sha256
        self.counts: dict[str, Counter] = defaultdict(Counter)   # folder -> Counter over "taken"
        self.sizes: dict[str, Counter] = defaultdict(Counter)    # folder -> Counter over "WxH"
        self.skipped: dict[str, list[dict]] = {"unreadable": [], "too_small": [], "duplicate": []}
        self.hardlink_fallbacks = 0
        self.bar = pbar(total=total, desc="prepare", unit="img", enabled=progress)
        self._pool = ThreadPoolExecutor(self.workers) if self.workers > 1 else None

    def _check_output(self, roots: list[Path]) -> None:
        out = self.out
        if out.exists():
            if not out.is_dir():
                raise PrepareError(f"output {out} exists and is not a folder; choose a new --out")
            entries = sorted(p.name for p in out.iterdir())
            if entries:
                raise PrepareError(f"output folder {out} is not empty ({len(entries)} entries, e.g. {entries[:3]}); "
                                   f"choose a new --out or empty it yourself: gfd prepare never writes into a "
                                   f"non-empty folder")
        real_out = out.resolve()
        for root in roots:
            real = Path(root).resolve()
            if _inside(real_out, real) or _inside(real, real_out):
                raise PrepareError(f"output {out} and source folder {root} overlap; put the output outside "
                                   f"every source folder")

    # -- one file ---------------------------------------------------------------------------------

    def _inspect(self, path: Path) -> Checked:
        c = Checked(path)
        try:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
            c.sha256 = h.hexdigest()
            if self.verify == "decode":
                c.size = load_rgb(path).size
            else:
                with Image.open(path) as img:
                    c.size = img.size
        except BadImageError as err:
            c.error = str(err.__cause__ or err)
        except Exception as err:          # PIL raises many kinds (DecompressionBombError is no OSError)
            c.error = f"{type(err).__name__}: {err}"
        return c

    def _checked(self, paths: list[Path]) -> Iterable[Checked]:
        return self._pool.map(self._inspect, paths) if self._pool else map(self._inspect, paths)

    def _place(self, c: Checked, folder: str, tag: str) -> str:
        index = self.counts[folder]["taken"]
        name = f"{index:06d}_{tag}{c.path.suffix.lower()}"
        dest = self.tmp / folder / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if self.link == "hardlink":
            try:
                os.link(c.path, dest)
            except OSError:
                self.hardlink_fallbacks += 1
                shutil.copyfile(c.path, dest)
        else:
            shutil.copyfile(c.path, dest)
        rel = f"{folder}/{name}"
        self.rows.append((rel, str(c.path), c.sha256))
        self.counts[folder]["taken"] += 1
        self.sizes[folder][f"{c.size[0]}x{c.size[1]}"] += 1
        return rel

    # -- a pool of candidates into one or more folders ----------------------------------------------

    def fill(self, candidates: list[Path], targets: list[tuple[str, int | None]], what: str,
             tag: Callable[[Path], str]) -> dict[str, int]:
        """Take files from ``candidates`` in order into ``targets`` (output folder, quota; None = all),
        filling one folder after the other.  Raises :class:`PrepareError` if a quota is not met."""
        need = [q for _, q in targets]
        ti, pos = 0, 0
        got = [0] * len(targets)
        skipped = Counter()
        while ti < len(targets) and pos < len(candidates):
            left = sum(q - g for q, g in zip(need[ti:], got[ti:]) if q is not None) if None not in need[ti:] else 256
            chunk = candidates[pos: pos + max(left, 4 * self.workers)]
            pos += len(chunk)
            for c in self._checked(chunk):
                if ti >= len(targets):
                    break
                folder = targets[ti][0]
                if c.error:
                    skipped["unreadable"] += 1
                    self.skipped["unreadable"].append({"path": str(c.path), "error": c.error, "for": folder})
                    continue
                if min(c.size) < self.min_side:
                    skipped["too_small"] += 1
                    self.skipped["too_small"].append({"path": str(c.path), "size": list(c.size),
                                                      "min_side": self.min_side, "for": folder})
                    continue
                if c.sha256 in self.seen:
                    first_out, first_src = self.seen[c.sha256]
                    if self.on_duplicate == "error":
                        raise PrepareError(f"{c.path} (for {folder}) has the same content as {first_src} "
                                           f"(already in {first_out}); remove one of them, or pass "
                                           f"--on-duplicate drop to skip and report duplicates")
                    skipped["duplicate"] += 1
                    self.skipped["duplicate"].append({"path": str(c.path), "same_as": first_src,
                                                      "already_in": first_out, "for": folder})
                    continue
                self.seen[c.sha256] = (self._place(c, folder, tag(c.path)), str(c.path))
                self.bar.update(1)
                got[ti] += 1
                while ti < len(targets) and need[ti] is not None and got[ti] >= need[ti]:
                    ti += 1
        short = [(f, q, g) for (f, q), g in zip(targets, got) if (q is not None and g < q) or g == 0]
        if short:
            wanted = " + ".join(f"{q if q is not None else 'some'} {f}" for f, q in targets)
            words = {"unreadable": "unreadable", "too_small": f"smaller than {self.min_side} px",
                     "duplicate": "duplicate(s)"}
            detail = ", ".join(f"{n} {words[k]}" for k, n in skipped.items()) or "none skipped"
            mine = {f for f, _ in targets}
            examples = [f"{Path(d['path']).name} ({d.get('error') or d.get('size') or 'duplicate'})"
                        for v in self.skipped.values() for d in v if d["for"] in mine][:3]
            raise PrepareError(
                f"{what}: needs {wanted} images but only {sum(got)} usable ones were found among "
                f"{len(candidates)} image files ({detail}{'; e.g. ' + ', '.join(examples) if examples else ''}). "
                f"Add images, or lower the counts (--counts).")
        return {f: g for (f, _), g in zip(targets, got)}

    # -- the end ----------------------------------------------------------------------------------

    def skipped_counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.skipped.items()}

    def size_summary(self) -> dict[str, dict]:
        out = {}
        for folder, sizes in sorted(self.sizes.items()):
            wh = [tuple(int(x) for x in s.split("x")) for s in sizes]
            out[folder] = {"min_side": min(min(x) for x in wh), "max_side": max(max(x) for x in wh),
                           "most_common": dict(sizes.most_common(5)), "distinct_sizes": len(sizes)}
        return out

    def finish(self, report: dict, classes: list[str] | None, groups: dict[str, list[str]]) -> dict:
        """Write ``classes.json``, the report and the file list, then rename the partial folder to ``out``."""
        self.bar.close()
        if self._pool:
            self._pool.shutdown()
        if self.strict and any(self.skipped.values()):
            examples = [d["path"] for v in self.skipped.values() for d in v][:_MAX_LISTED]
            raise PrepareError(f"--strict: {self.skipped_counts()} file(s) would be skipped, e.g. {examples}; "
                               f"fix or remove them, or run without --strict to skip them")
        report.update({
            "skipped_counts": self.skipped_counts(),
            "skipped": self.skipped,
            "image_sizes": self.size_summary(),
            "min_side": self.min_side,
            "verify": self.verify,
            "link": self.link,
            "hardlink_fallbacks_to_copy": self.hardlink_fallbacks,
            "files": FILES_NAME,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })
        _warn_sizes(report, groups, self.log)
        if classes is not None:
            (self.tmp / "classes.json").write_text(json.dumps(classes) + "\n")
        with open(self.tmp / FILES_NAME, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file", "original", "sha256"])
            w.writerows(self.rows)
        atomic_write(self.tmp / REPORT_NAME, lambda p: p.write_text(json.dumps(report, indent=1) + "\n"))
        (self.tmp / PARTIAL_MARKER).unlink()
        if self.out.exists():
            self.out.rmdir()                                   # checked empty at the start
        os.replace(self.tmp, self.out)
        return report

    def abort(self) -> None:
        self.bar.close()
        if self._pool:
            self._pool.shutdown(cancel_futures=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def _run(builder: Builder, body: Callable[[], tuple[dict, list[str] | None, dict[str, list[str]]]]) -> dict:
    try:
        return builder.finish(*body())
    except BaseException:
        builder.abort()
        raise


def _warn_sizes(report: dict, groups: dict[str, list[str]], log: Callable[[str], None]) -> None:
    """Warn when classes have different image sizes: a classifier could learn the size, not the fingerprint."""
    sizes = report["image_sizes"]
    for split, folders in groups.items():
        common = {f.rsplit("/", 1)[-1]: next(iter(sizes[f]["most_common"])) for f in folders if f in sizes}
        if len(set(common.values())) > 1:
            msg = (f"{split}: the classes' most common image sizes differ ({common}); a classifier can tell "
                   f"them apart by size or aspect alone. Consider cropping/resizing the sources to one size.")
            report.setdefault("warnings", []).append(msg)
            log(f"warning: {msg}")


def _log_summary(report: dict, log: Callable[[str], None]) -> None:
    for split, per in report["counts"].items():
        log(f"  {split}: " + ", ".join(f"{c} {n}" for c, n in per.items()))
    sc = report["skipped_counts"]
    log(f"  skipped: {sc['unreadable']} unreadable, {sc['too_small']} smaller than {report['min_side']} px, "
        f"{sc['duplicate']} duplicate(s) (listed in {REPORT_NAME})")
    smallest = min((v["min_side"] for v in report["image_sizes"].values()), default=0)
    log(f"  smallest image side: {smallest} px (p128 resizes, any size works; p1024 and mini crop, they need "
        f">= the crop, e.g. 224)")


# --------------------------------------------------------------------------------------------------
# attribution (Sec. 4.2)
# --------------------------------------------------------------------------------------------------

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
            entry = {"closed": entry}
        if not isinstance(entry, dict) or "closed" not in entry or set(entry) - {"closed", "open"}:
            raise PrepareError(f'manifest {path}: source {name!r} must be {{"closed": DIR or [DIRS], '
                               f'"open": DIR or [DIRS] (optional)}}, got {entry!r}')
        lists = {k: [entry[k]] if isinstance(entry.get(k), str) else list(entry.get(k) or []) for k in ("closed", "open")}
        specs.append(SourceSpec(name, *[[base / Path(d).expanduser() for d in lists[k]] for k in ("closed", "open")]))
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
                value["test_open"] = items[2]
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
    bad = [n for n in names if not _NAME.match(n) or n in SPLITS]
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
    closed_splits = ["train", "val", "test_closed"]
    splits = closed_splits + (["test_open"] if has_open else [])

    # list everything first: a missing folder, an empty one or an outside symlink fails before any copy
    listings: dict[tuple[str, str], list[Listing]] = {}
    for name in order:
        for world in ("closed", "open") if has_open else ("closed",):
            listings[name, world] = [list_source(d, f"source {name!r} ({world} world, folder {i + 1})")
                                     for i, d in enumerate(getattr(specs[name], world))]
    check_overlaps([(f"source {name!r} ({world} world)", x.root) for (name, world), ls in listings.items() for x in ls])
    for (name, world), ls in listings.items():
        need = sum(counts[s] for s in (closed_splits if world == "closed" else ["test_open"]))
        have = sum(len(x.files) for x in ls)
        if have < need:
            raise PrepareError(
                f"source {name!r} ({world} world): {have} image files in {[str(x.root) for x in ls]}, but "
                f"{need} are needed ({' + '.join(f'{counts[s]} {s}' for s in (closed_splits if world == 'closed' else ['test_open']))}). "
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
            targets = [(f"{s}/{name}", counts[s]) for s in (closed_splits if world == "closed" else ["test_open"])]
            rows_before = len(builder.rows)
            builder.fill(pool, targets, f"source {name!r} ({world} world, {[str(x.root) for x in ls]})",
                         tag=lambda p: _safe_stem(p.stem, 40))
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
            "sources": {n: {"closed": [str(p) for p in specs[n].closed], "open": [str(p) for p in specs[n].open]}
                        for n in order},
            "source_folders": per_folder,
            "counts": {s: {n: builder.counts[f"{s}/{n}"]["taken"] for n in order} for s in splits},
        }
        return report, order, {s: [f"{s}/{n}" for n in order] for s in splits}

    report = _run(builder, body)
    log(f"prepared {out} ({len(order)} classes: {', '.join(order)})")
    _log_summary(report, log)
    return report


# --------------------------------------------------------------------------------------------------
# detection (Sec. 4.3, ForenSynths)
# --------------------------------------------------------------------------------------------------

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
                _check_link(Path(dirpath) / d, real_root, what)
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
                tags[p] = _safe_stem("_".join(filter(None, [category, p.stem])), 60)
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
                _check_link(p, test.resolve(), "--test")
                continue
            names.append(p.name)
        if test_sets is not None:
            missing = sorted(set(test_sets) - set(names))
            if missing:
                raise PrepareError(f"--test-sets {missing} not in {test}; present: {names}")
            names = list(test_sets)
        for name in names:
            if not _NAME.match(name):
                raise PrepareError(f"test set folder {test / name}: its name cannot be used as an output folder")
            sets[name] = forensynths_groups(test / name, f"--test set {name!r}")
        if not sets:
            raise PrepareError(f"--test: {test} has no sub-folder (expected one folder per generator)")

    # list everything before writing anything
    pools: dict[tuple[str, str], tuple[list[Path], dict]] = {}
    folders: list[tuple[str, Path]] = []
    for label in (REAL, FAKE):
        for split, groups in (("train", train_groups), ("val", val_groups)):
            if groups is not None:
                pool, tags, ls = _label_pool(groups, label, seed, f"{split}/{label}", f"--{split}")
                pools[split, label] = (pool, tags)
                folders += [(f"--{split} class {label!r}", x.root) for x in ls]
        for name, groups in sets.items():
            pool, tags, ls = _label_pool(groups, label, seed, f"test/{name}/{label}", f"--test set {name!r}")
            pools[f"test/{name}", label] = (pool, tags)
            folders += [(f"--test set {name!r} class {label!r}", x.root) for x in ls]
    check_overlaps(folders)
    roots = [root for _, root in folders]

    def quota(n: int) -> int | None:
        return None if limit is None or limit >= n else limit

    total = sum(min(len(p), limit or len(p)) for p, _ in pools.values())
    builder = Builder(out, roots, min_side=min_side, link=link, on_duplicate=on_duplicate, strict=strict,
                      verify=verify, workers=workers, progress=progress, total=total, log=log)

    def body():
        counts: dict[str, dict[str, int]] = defaultdict(dict)
        for label in (REAL, FAKE):
            pool, tags = pools["train", label]
            if val_groups is None:        # carve val out of train: the first val_fraction of the shuffled pool
                n_val = max(1, round(val_fraction * len(pool)))
                if limit is not None:
                    n_val = min(n_val, limit)
                if len(pool) - n_val < 1:
                    raise PrepareError(f"--train class {label!r}: {len(pool)} image(s), too few to carve a "
                                       f"validation split; give --val")
                targets = [(f"val/{label}", n_val), (f"train/{label}", quota(len(pool) - n_val))]
            else:
                targets = [(f"train/{label}", quota(len(pool)))]
            got = builder.fill(pool, targets, f"--train class {label!r}", tag=tags.__getitem__)
            counts["train"][label] = got[f"train/{label}"]
            if val_groups is None:
                counts["val"][label] = got[f"val/{label}"]
            else:
                pool, tags = pools["val", label]
                counts["val"][label] = builder.fill(pool, [(f"val/{label}", quota(len(pool)))],
                                                    f"--val class {label!r}", tag=tags.__getitem__)[f"val/{label}"]
            for name in sets:
                pool, tags = pools[f"test/{name}", label]
                counts[f"test/{name}"][label] = builder.fill(
                    pool, [(f"test/{name}/{label}", quota(len(pool)))], f"--test set {name!r} class {label!r}",
                    tag=tags.__getitem__)[f"test/{name}/{label}"]
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
        return report, [REAL, FAKE], {"train": ["train/real", "train/fake"]}

    report = _run(builder, body)
    log(f"prepared {out} (detection: train {report['counts']['train']}, {len(sets)} test set(s))")
    _log_summary(report, log)
    return report


# --------------------------------------------------------------------------------------------------
# command line: python -m gfd prepare attribution|detection
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

DETECTION_HELP = """\
ForenSynths / CNNDetection folders <set>/[<category>/]{0_real,1_fake}/* -> the detection layout, Sec. 4.3:

  ROOT/train/{real,fake}/*         from --train, only --categories (the paper: airplane)
  ROOT/val/{real,fake}/*           from --val, or a seeded --val-fraction of --train
  ROOT/test/<set>/{real,fake}/*    one per sub-folder of --test (progan, stylegan, biggan, ...)

Example: --train progan_train --val progan_val --test CNN_synth_testset --categories airplane
The same checks and report as 'prepare attribution'; --limit N keeps at most N images per class and split."""


def _common_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output dataset root (must not exist or be empty)")
    p.add_argument("--seed", type=int, default=None, help="seed of the split assignment (default 0)")
    p.add_argument("--min-side", type=int, default=None,
                   help="skip (and report) images whose shorter side is below this many pixels")
    p.add_argument("--transform", default=None, metavar="PRESET",
                   help="derive --min-side from a transform preset of gfd.data (p128: any size; p1024, mini: "
                        ">= --crop)")
    p.add_argument("--crop", type=int, default=224, help="crop side for --transform (default 224)")
    p.add_argument("--link", choices=("copy", "hardlink"), default="copy",
                   help="copy files (default) or hard-link them (no extra disk; same file system only, "
                        "otherwise copied; editing the output then edits the source)")
    p.add_argument("--on-duplicate", choices=("drop", "error"), default="drop",
                   help="a file with the same content as one already taken: skip and report (default) or stop")
    p.add_argument("--strict", action="store_true", help="any unreadable / too small / duplicate file is an error")
    p.add_argument("--verify", choices=("decode", "header"), default="decode",
                   help="decode every image (default, catches truncated files) or read headers only (faster)")
    p.add_argument("--workers", type=int, default=None, help="threads checking images (default min(4, cores))")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``attribution`` and ``detection`` sub-commands to ``p`` (the ``prepare`` parser)."""
    sub = p.add_subparsers(dest="kind", required=True, metavar="{attribution,detection}")
    a = sub.add_parser("attribution", help="real + GAN folders -> ROOT/<split>/<source>/ (Sec. 4.2)",
                       description=ATTRIBUTION_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--source", action="append", default=[], metavar="NAME=CLOSED[,OPEN]",
                   help="a class and its closed-world (train/val/test_closed) and open-world (test_open) folders; "
                        "repeat for every class ('real' included); repeat a NAME to add folders")
    a.add_argument("--manifest", default=None, help="JSON manifest of the sources instead of --source")
    a.add_argument("--counts", default=None, metavar="TRAIN,VAL,TEST_CLOSED[,TEST_OPEN]",
                   help="images per class and split (default the paper's 15000,1000,4000,4000)")
    _common_arguments(a)

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
    _common_arguments(d)


def _min_side(args) -> int:
    if args.min_side is not None and args.transform is not None:
        raise PrepareError("give --min-side or --transform, not both")
    if args.transform is not None:
        from gfd.data import TRANSFORM_PRESETS, min_image_side
        if args.transform not in TRANSFORM_PRESETS:
            raise PrepareError(f"--transform {args.transform!r}: choose one of {sorted(TRANSFORM_PRESETS)}")
        return min_image_side(args.transform, args.crop)
    return args.min_side if args.min_side is not None else 1


def run(args: argparse.Namespace) -> int:
    """Run a parsed ``prepare`` command (what ``python -m gfd prepare`` calls)."""
    common = dict(min_side=_min_side(args), link=args.link, on_duplicate=args.on_duplicate, strict=args.strict,
                  verify=args.verify, workers=args.workers, progress=not args.no_progress)
    if args.kind == "attribution":
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
    else:
        split = lambda s: [x.strip() for x in s.split(",") if x.strip()] if s else None  # noqa: E731
        prepare_detection(args.out, train=args.train, val=args.val, test=args.test,
                          categories=split(args.categories), test_sets=split(args.test_sets),
                          val_fraction=args.val_fraction, limit=args.limit, seed=args.seed or 0, **common)
    return 0
