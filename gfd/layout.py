"""The folder layout of an attribution dataset (Sec. 4.2): the contract between data and code.

::

    ROOT/<split>/<source>/*.{png,jpg,jpeg,webp,bmp}
    split  in  train, val, test_closed  (required)  and  test_open  (optional)
    source in  real, GAN1, ..., GANN

Class order is ``real`` first, then the other sources sorted by name, unless ``ROOT/classes.json``
(a JSON list of names) says otherwise.  The built-in benchmark writes this layout, :mod:`gfd.data`
reads it, the figures browse it.  This module only looks at folders; it opens no image.

What counts as an image of a class (:func:`list_images`, the one rule that the counts, the checks
and the loaders of :mod:`gfd.data` all use): a *regular file* with an image extension lying
*directly* in the class folder.  Sub-folders of a class folder are ignored (their images are not
used); a symbolic link inside a class folder -- to a file or to a folder -- is refused with a
:class:`DataLayoutError` naming it, because a link can pull in images from anywhere, or loop
(``train/ganA/loop -> .``).  Copy the files in instead (``cp -L``).  The split and class folders
themselves may be links.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

TRAIN = "train"
VAL = "val"
TEST_CLOSED = "test_closed"
TEST_OPEN = "test_open"
SPLITS = (TRAIN, VAL, TEST_CLOSED, TEST_OPEN)
"""The standard splits, in this order."""
REQUIRED_SPLITS = (TRAIN, VAL, TEST_CLOSED)
"""The splits every dataset has."""
CLOSED_SPLITS = REQUIRED_SPLITS
"""The splits drawn from the closed world (the domains a model trains on)."""
OPTIONAL_SPLITS = (TEST_OPEN,)
"""Splits a dataset may lack (the data contract makes ``test_open`` optional)."""
CLOSED = "closed"
OPEN = "open"
WORLDS: dict[str, str] = {CLOSED: TEST_CLOSED, OPEN: TEST_OPEN}
"""World name -> the test split of that world (Sec. 4.2)."""
SPLIT_TO_WORLD: dict[str, str] = {split: world for world, split in WORLDS.items()}
"""Test split -> its world name."""
TEST_SPLIT = "test"
"""The one split of a test-only world (``ROOT/test/<source>/``, e.g. the shift worlds of
:mod:`gfd.benchmark.worlds.shifts`): images a trained model is only measured on.  Not one of
:data:`SPLITS`: such a folder is no training dataset."""
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
REAL = "real"


class DataLayoutError(ValueError):
    """The folder does not follow ``ROOT/<split>/<source>/*.png``; the message says what was found."""


def is_image_file(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The images of a class folder, sorted by name: the regular image files directly in it.

    Sub-folders and hidden files (a name starting with ".", e.g. ``.hidden.png``, as ``prepare``
    and :mod:`gfd.data` skip them) are ignored; a symbolic link in the folder raises :class:`DataLayoutError` naming
    it (see the module docstring).  A missing folder has no images.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        if p.name.startswith("."):
            continue
        if p.is_symlink():
            target = "a folder" if p.is_dir() else "a file" if p.exists() else "nothing (broken)"
            raise DataLayoutError(
                f"{p} is a symbolic link (to {target}); class folders may hold only regular image files, "
                f"so that no image is counted twice, pulled in from elsewhere or reached through a loop. "
                f"Replace the link by a copy of the file (cp -L), or remove it.")
        if p.is_file() and is_image_file(p):
            found.append(p)
    return sorted(found)


def find_splits(root: str | os.PathLike) -> list[str]:
    """The standard splits present under ``root``; raises :class:`DataLayoutError` if a required one is missing."""
    root = Path(root)
    if not root.is_dir():
        raise DataLayoutError(f"dataset root {root} does not exist or is not a folder")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    missing = [s for s in REQUIRED_SPLITS if s not in found]
    if missing:
        raise DataLayoutError(
            f"dataset root {root} lacks split folder(s) {missing}; found {found or 'no folders'}. "
            f"Expected ROOT/<split>/<source>/*.png with splits {list(REQUIRED_SPLITS)} "
            f"(and optionally {TEST_OPEN!r}).")
    return [s for s in SPLITS if s in found]


def class_order(root: str | os.PathLike, sources: list[str]) -> list[str]:
    """``real`` first, then sorted sources; ``ROOT/classes.json`` overrides."""
    override = Path(root) / "classes.json"
    if override.exists():
        try:
            classes = json.loads(override.read_text())
        except json.JSONDecodeError as err:
            raise DataLayoutError(f"{override} is not valid JSON: {err}") from err
        if not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
            raise DataLayoutError(f"{override} must hold a JSON list of class names, got {classes!r}")
        if sorted(classes) != sorted(sources):
            raise DataLayoutError(f"{override} lists {classes} but the train folders are {sorted(sources)}; "
                                  f"classes.json must name every train class folder exactly once (or delete "
                                  f"it for the default order: '{REAL}' first, then by name)")
        return list(classes)
    rest = sorted(s for s in sources if s != REAL)
    return ([REAL] if REAL in sources else []) + rest


def split_sources(root: Path, split: str) -> dict[str, int]:
    """Source folder name -> number of image files, for one split."""
    folder = root / split
    return {p.name: len(list_images(p)) for p in sorted(folder.iterdir())
            if p.is_dir() and not p.name.startswith(".")}


def check_split(root: Path, split: str, classes: list[str]) -> None:
    """Every class present and non-empty, and no class the train split does not know."""
    counts = split_sources(root, split)
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise DataLayoutError(
            f"{root / split}: class folder(s) {empty} hold no image "
            f"({', '.join(IMAGE_EXTENSIONS)}); found counts {counts}")
    missing = sorted(set(classes) - set(counts))
    extra = sorted(set(counts) - set(classes))
    if missing or extra:
        raise DataLayoutError(
            f"{root / split}: classes differ from the train split: missing {missing}, "
            f"not in train {extra}; train classes are {classes}")


def class_folders(root: str | os.PathLike, split: str) -> list[tuple[str, Path]]:
    """(class, folder) pairs of ``root/split`` in the dataset's class order (``real`` first).

    Works for any sub-folder of sources, e.g. the benchmark's ``variants/`` (real first, then by name).
    """
    root = Path(root)
    folder = root / split
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist; splits/folders present in {root}: "
                                f"{sorted(p.name for p in root.iterdir() if p.is_dir())}")
    sources = list(split_sources(root, split))
    if split in SPLITS:
        names = [c for c in class_order(root, list(split_sources(root, TRAIN))) if c in sources]
    else:
        names = ([REAL] if REAL in sources else []) + sorted(s for s in sources if s != REAL)
    return [(c, folder / c) for c in names]
