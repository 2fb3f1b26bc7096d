"""Reading any fake-image-attribution dataset laid out as folders (Sec. 4.2 of the paper).

Layout::

    ROOT/<split>/<source>/*.{png,jpg,jpeg,webp,bmp}
    split  in  train, val, test_closed  (required)  and  test_open  (optional)
    source in  real, GAN1, ..., GANN

Class order is ``real`` first, then the other sources sorted by name, unless ``ROOT/classes.json``
(a JSON list of names) says otherwise.  The datasets are torchvision ``ImageFolder`` objects with
this class order, an RGB loader that accepts grayscale, RGBA, palette and 16-bit files, and the
transform presets of the paper:

``p128``   128 px GANs: resize to 512, then a random (train) / centre (test) 224 crop  (Sec. 4.2.1)
``p1024``  1024 px GANs: random / centre 224 crop, no resize                             (Sec. 4.2.2)
``mini``   the built-in 64 px benchmark: random / centre crop of ``crop`` pixels, no resize

No augmentation that could destroy a fingerprint is applied; horizontal flips only on request.
Images come out as float tensors in [-1, 1].
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision.transforms import v2

SPLITS = ("train", "val", "test_closed", "test_open")
REQUIRED_SPLITS = ("train", "val", "test_closed")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
REAL = "real"

# transform preset -> (resize side or None); the crop side comes from the config
TRANSFORM_PRESETS: dict[str, int | None] = {"p128": 512, "p1024": None, "mini": None}


class DataLayoutError(ValueError):
    """The folder does not follow ``ROOT/<split>/<source>/*.png``; the message says what was found."""


class BadImageError(ValueError):
    """An image file that cannot be used (corrupt, truncated, too small); the message names it."""


# --------------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------------

def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB.  16-bit and 32-bit grayscale are rescaled, not clipped."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, mode="L")
    if img.mode == "RGB":
        return img
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA")
    return img.convert("RGB")


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode an image as RGB; a corrupt or truncated file raises :class:`BadImageError`."""
    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb(img)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise BadImageError(f"cannot read image {path}: {err}. Remove or replace the file, "
                            f"or pass skip_bad=True to skip unreadable images.") from err


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the file header only; raises :class:`BadImageError` if unreadable."""
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise BadImageError(f"cannot read image {path}: {err}. Remove or replace the file, "
                            f"or pass skip_bad=True to skip unreadable images.") from err


# --------------------------------------------------------------------------------------------------
# transforms
# --------------------------------------------------------------------------------------------------

def make_transform(name: str, train: bool, crop: int, hflip: bool = False) -> v2.Compose:
    """Transform preset ``name`` (``p128``, ``p1024``, ``mini``) for training or testing."""
    if name not in TRANSFORM_PRESETS:
        raise KeyError(f"unknown transform preset {name!r}; choose one of {sorted(TRANSFORM_PRESETS)}")
    steps: list[Any] = [v2.ToImage()]
    if TRANSFORM_PRESETS[name] is not None:
        steps.append(v2.Resize(TRANSFORM_PRESETS[name], antialias=True))
    steps.append(v2.RandomCrop(crop) if train else v2.CenterCrop(crop))
    if train and hflip:
        steps.append(v2.RandomHorizontalFlip())
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.5] * 3)]
    return v2.Compose(steps)


def min_input_side(name: str, crop: int) -> int:
    """Smallest image side the preset can crop from (a preset that resizes accepts any size)."""
    return 1 if TRANSFORM_PRESETS[name] is not None else crop


# --------------------------------------------------------------------------------------------------
# folders
# --------------------------------------------------------------------------------------------------

def is_image_file(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p)) if folder.is_dir() else []


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
            f"(and optionally 'test_open').")
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
            raise DataLayoutError(f"{override} lists {classes} but the train folders are {sorted(sources)}")
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


class AttributionFolder(datasets.ImageFolder):
    """``ImageFolder`` with the course's class order, RGB loading and bad-file handling.

    The constructor reads every file's header (cheap) to reject images smaller than the crop.  With
    ``skip_bad=True`` it also decodes every file once, drops the unreadable ones and warns with
    their count; otherwise an unreadable file raises :class:`BadImageError` naming it when loaded.
    """

    def __init__(self, folder: str | os.PathLike, classes: list[str], transform=None,
                 min_side: int = 1, skip_bad: bool = False):
        self._classes = list(classes)
        super().__init__(str(folder), transform=transform, loader=load_rgb, is_valid_file=is_image_file)
        self.bad_files: list[tuple[str, str]] = []
        kept = []
        for path, target in self.samples:
            try:
                if skip_bad:
                    w, h = load_rgb(path).size
                else:
                    w, h = image_size(path)
            except BadImageError as err:
                if not skip_bad:
                    raise
                self.bad_files.append((path, str(err)))
                continue
            if min(w, h) < min_side:
                raise BadImageError(f"image {path} is {w}x{h} px, smaller than the {min_side} px crop; "
                                    f"use larger images, a smaller crop, or a transform that resizes (p128)")
            kept.append((path, target))
        if self.bad_files:
            warnings.warn(f"{folder}: skipped {len(self.bad_files)} unreadable image(s), "
                          f"e.g. {self.bad_files[0][0]}", stacklevel=2)
        self.samples = self.imgs = kept
        self.targets = [t for _, t in kept]

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        return self._classes, {c: i for i, c in enumerate(self._classes)}


# --------------------------------------------------------------------------------------------------
# loaders
# --------------------------------------------------------------------------------------------------

def default_num_workers() -> int:
    """0 on a 2-core CPU machine (the trainer already uses both cores), more with a GPU to feed."""
    cores = os.cpu_count() or 1
    if torch.cuda.is_available():
        return max(1, min(4, cores))
    return 0 if cores <= 2 else min(4, cores // 2)


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)


@dataclass
class DataBundle:
    """The loaders of every present split, their datasets and the class names."""

    root: Path
    classes: list[str]
    loaders: dict[str, DataLoader] = field(default_factory=dict)
    datasets: dict[str, AttributionFolder] = field(default_factory=dict)

    def __getitem__(self, split: str) -> DataLoader:
        if split not in self.loaders:
            raise KeyError(f"split {split!r} is not in {self.root}; present: {list(self.loaders)}")
        return self.loaders[split]

    def __contains__(self, split: str) -> bool:
        return split in self.loaders

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def real_index(self) -> int:
        if REAL not in self.classes:
            raise KeyError(f"no '{REAL}' class in {self.classes}: GFD-Net pairs fingerprints with real images")
        return self.classes.index(REAL)


def get_loaders(root: str | os.PathLike, cfg=None, *, transform: str | None = None, crop: int | None = None,
                batch_size: int | None = None, num_workers: int | None = None, seed: int | None = None,
                skip_bad: bool = False, splits: list[str] | tuple[str, ...] | None = None,
                hflip: bool | None = None) -> DataBundle:
    """Loaders for all present splits of ``root`` plus the class names, seeded.

    Values come from the keyword arguments, else from ``cfg`` (a :class:`gfd.config.Config`), else
    from defaults (``mini`` transform, 48 px crop, batch 32).  The train loader shuffles and drops
    the last incomplete batch; the others keep order.
    """
    def pick(value, name, default):
        if value is not None:
            return value
        return getattr(cfg, name, default) if cfg is not None else default

    transform = pick(transform, "transform", "mini")
    crop = pick(crop, "crop", 48)
    batch_size = pick(batch_size, "batch_size", 32)
    num_workers = pick(num_workers, "num_workers", None)
    num_workers = default_num_workers() if num_workers is None else num_workers
    seed = pick(seed, "seed", 0)
    hflip = pick(hflip, "hflip", False)

    root = Path(root)
    present = find_splits(root)
    wanted = [s for s in (splits or present) if s in present]
    unknown = [s for s in (splits or []) if s not in present]
    if unknown:
        raise DataLayoutError(f"split(s) {unknown} asked for but not in {root}; present: {present}")

    train_counts = split_sources(root, "train")
    if not train_counts:
        raise DataLayoutError(f"{root / 'train'} holds no source folders; expected train/<source>/*.png")
    classes = class_order(root, list(train_counts))
    for split in present:
        check_split(root, split, classes)

    side = min_input_side(transform, crop)
    bundle = DataBundle(root=root, classes=classes)
    for i, split in enumerate(wanted):
        train = split == "train"
        ds = AttributionFolder(root / split, classes, transform=make_transform(transform, train, crop, hflip),
                               min_side=side, skip_bad=skip_bad)
        left = {c: ds.targets.count(k) for k, c in enumerate(classes)}
        if min(left.values()) == 0:
            raise DataLayoutError(f"{root / split}: a class has no usable image left after skipping "
                                  f"bad files; usable images per class: {left}")
        gen = torch.Generator().manual_seed(seed * 1000 + i)
        bundle.datasets[split] = ds
        bundle.loaders[split] = DataLoader(
            ds, batch_size=batch_size, shuffle=train, drop_last=train and len(ds) >= batch_size,
            num_workers=num_workers, generator=gen, worker_init_fn=_seed_worker,
            persistent_workers=num_workers > 0, pin_memory=torch.cuda.is_available())
    return bundle


def examples_per_class(dataset: AttributionFolder, n: int = 1, labels: list[int] | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images of each class in ``labels`` (default: all), as a batch (x, y)."""
    labels = range(len(dataset.classes)) if labels is None else labels
    picked = [i for k in labels for i in [j for j, t in enumerate(dataset.targets) if t == k][:n]]
    if not picked:
        raise ValueError(f"no image of classes {list(labels)} in {dataset.root}")
    xs, ys = zip(*(dataset[i] for i in picked))
    return torch.stack(xs), torch.tensor(ys)
