"""The engine both ``prepare`` commands share: list source folders, check, deduplicate and place files.

**Rules.**  Files are listed recursively (sorted, hidden entries skipped, only regular files with
``gfd.layout.IMAGE_EXTENSIONS``: a FIFO named ``x.png`` is never opened), shuffled with a seed
derived from ``--seed``, the source name and the folder's position (not its path), and taken in
that order: the selection is deterministic and does not change when other sources are added.
Every taken file is decoded once with :func:`gfd.data.load_rgb` (``--verify header`` reads only the
header) and hashed (sha256);
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
from gfd.layout import IMAGE_EXTENSIONS, is_image_file
from gfd.utils import atomic_write, pbar

REPORT_NAME = "prepare_report.json"
FILES_NAME = "prepare_files.csv"
PARTIAL_MARKER = ".gfd-prepare-partial"
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")   # a source or test-set name usable as a folder name
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
    special_ignored: list[str] = field(default_factory=list)   # image-named FIFOs, sockets, devices


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def check_link(link: Path, real_root: Path, what: str) -> None:
    """Refuse a symlink that resolves outside ``real_root``, or that never resolves (a loop)."""
    try:
        target = link.resolve(strict=False)
        if target.is_symlink():         # Python >= 3.13 resolves a loop to a link instead of raising
            raise RuntimeError(f"symlink loop from {link}")
    except (RuntimeError, OSError) as err:
        raise PrepareError(f"{what}: {link} is a symlink that does not resolve ({type(err).__name__}: {err}); "
                           f"a link loop? Remove it, or replace it by the files it should point to.") from None
    if not _inside(target, real_root):
        raise PrepareError(
            f"{what}: {link} is a symlink to {target}, outside the source folder {real_root}. gfd prepare "
            f"does not follow links out of a source tree; give the link's target as a source folder "
            f"instead, or copy the files in.")


def list_source(folder: str | os.PathLike, what: str) -> Listing:
    """Image files under ``folder`` (recursive, sorted, hidden entries skipped), refusing symlinks
    that resolve outside it or not at all (a loop), and ignoring those inside (their targets are
    listed under their real path).  Only regular files are listed (as :func:`gfd.layout.list_images`):
    a FIFO, socket or device named like an image is ignored (and counted), never opened."""
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
                check_link(here / d, real_root, what)
                listing.symlinks_ignored.append(str(here / d))
                continue
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = here / name
            if path.is_symlink():
                check_link(path, real_root, what)
                listing.symlinks_ignored.append(str(path))
            elif is_image_file(name) and path.is_file():    # a regular file: never a FIFO, socket or device
                listing.files.append(path)
            elif is_image_file(name):
                listing.special_ignored.append(str(path))
            else:
                listing.non_images += 1
    if not listing.files:
        raise PrepareError(
            f"{what}: folder {folder} holds no image file ({', '.join(IMAGE_EXTENSIONS)}; searched recursively, "
            f"{listing.non_images} other file(s), {len(listing.symlinks_ignored)} symlink(s), "
            f"{len(listing.special_ignored)} special file(s) (FIFO, socket, device) ignored)")
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


def safe_stem(text: str, limit: int = 60) -> str:
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
        self.seen: dict[str, list[tuple[str, str, str | None]]] = {}   # sha256 -> [(output file, original, scope)]
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

    def _first_copy(self, sha256: str, scope: str | None) -> tuple[str, str] | None:
        """(output file, original) of a file already taken with this content that a file of ``scope``
        may not repeat: any in the shared scope (``None``: train, val, an attribution dataset), and
        any of the same scope.  Independent test sets (scopes ``"test/<set>"``) may share images."""
        for out, src, other in self.seen.get(sha256, []):
            if scope is None or other is None or other == scope:
                return out, src
        return None

    def fill(self, candidates: list[Path], targets: list[tuple[str, int | None]], what: str,
             tag: Callable[[Path], str], *, scope: str | None = None,
             fewer: str = "lower the counts (--counts)") -> dict[str, int]:
        """Take files from ``candidates`` in order into ``targets`` (output folder, quota; None = all),
        filling one folder after the other.  Raises :class:`PrepareError` if a quota is not met
        (``fewer`` says how to ask for fewer images).  Duplicates are content already taken in the
        shared scope or in ``scope`` (:meth:`_first_copy`)."""
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
                first = self._first_copy(c.sha256, scope)
                if first is not None:
                    first_out, first_src = first
                    if self.on_duplicate == "error":
                        raise PrepareError(f"{c.path} (for {folder}) has the same content as {first_src} "
                                           f"(already in {first_out}); remove one of them, or pass "
                                           f"--on-duplicate drop to skip and report duplicates")
                    skipped["duplicate"] += 1
                    self.skipped["duplicate"].append({"path": str(c.path), "same_as": first_src,
                                                      "already_in": first_out, "for": folder})
                    continue
                self.seen.setdefault(c.sha256, []).append((self._place(c, folder, tag(c.path)), str(c.path), scope))
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
                f"Add images, or {fewer}.")
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


def run_builder(builder: Builder, body: Callable[[], tuple[dict, list[str] | None, dict[str, list[str]]]]) -> dict:
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


def log_summary(report: dict, log: Callable[[str], None]) -> None:
    for split, per in report["counts"].items():
        log(f"  {split}: " + ", ".join(f"{c} {n}" for c, n in per.items()))
    sc = report["skipped_counts"]
    log(f"  skipped: {sc['unreadable']} unreadable, {sc['too_small']} smaller than {report['min_side']} px, "
        f"{sc['duplicate']} duplicate(s) (listed in {REPORT_NAME})")
    smallest = min((v["min_side"] for v in report["image_sizes"].values()), default=0)
    log(f"  smallest image side: {smallest} px (p128 resizes, any size works; p1024 and mini crop, they need "
        f">= the crop, e.g. 224)")


# --------------------------------------------------------------------------------------------------
# the options both sub-commands take
# --------------------------------------------------------------------------------------------------

def common_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of the engine (output, seed, checks, copying) to a sub-command's parser."""
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


def _min_side(args) -> int:
    if args.min_side is not None and args.transform is not None:
        raise PrepareError("give --min-side or --transform, not both")
    if args.transform is not None:
        from gfd.data import TRANSFORM_PRESETS, min_image_side
        if args.transform not in TRANSFORM_PRESETS:
            raise PrepareError(f"--transform {args.transform!r}: choose one of {sorted(TRANSFORM_PRESETS)}")
        return min_image_side(args.transform, args.crop)
    return args.min_side if args.min_side is not None else 1


def common_options(args: argparse.Namespace) -> dict:
    """The engine's keyword arguments of ``prepare_attribution`` / ``prepare_detection``, from the
    options :func:`common_arguments` added."""
    return dict(min_side=_min_side(args), link=args.link, on_duplicate=args.on_duplicate, strict=args.strict,
                verify=args.verify, workers=args.workers, progress=not args.no_progress)
