"""Reading a fake-image-attribution dataset (Sec. 4.2): images, transforms, loaders, and
:func:`load_data`, the one way a config becomes data -- attribution data, or with
``cfg.task == "detection"`` the binary detection data of :mod:`gfd.detection` (Sec. 4.3), whose
loaders come from the same :func:`make_loader`.

The folder layout (``ROOT/<split>/<source>/*.png``, class order) is :mod:`gfd.layout`'s.  The
datasets are torchvision ``ImageFolder`` objects with the layout's class order, an RGB loader that
accepts grayscale, RGBA, palette and 16-bit files, and the transform presets of the paper:

``p128``   128 px GANs: resize to 512, then a random (train) / centre (test) 224 crop  (Sec. 4.2.1)
``p1024``  1024 px GANs: random / centre 224 crop, no resize                             (Sec. 4.2.2)
``mini``   the built-in 64 px benchmark: random / centre crop of ``crop`` pixels, no resize

No augmentation that could destroy a fingerprint is applied; horizontal flips only on request.
Images come out as float tensors in [-1, 1].

Which files are a class's images is :func:`gfd.layout.list_images`'s rule (regular image files
directly in the class folder; links refused, sub-folders ignored), and :class:`AttributionFolder`
loads exactly those but hidden files (``.name.png``: editors' and OS droppings, which ``gfd prepare``
skips as well).  An image larger than
:data:`MAX_IMAGE_PIXELS` (40 megapixels) is refused from its header, before anything is decoded.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision.transforms import v2

from gfd.config import Config
from gfd.layout import (IMAGE_EXTENSIONS, REAL, REQUIRED_SPLITS, SPLITS, TRAIN, VAL, DataLayoutError,  # noqa: F401
                        check_split, class_order, find_splits, is_image_file, list_images, split_sources)
from gfd.detection_layout import CLASSES, TEST_DIR, TRAIN_FAMILY, VIEW_FILE, detection_view, test_set_names, view_name

# transform preset -> (resize side or None); the crop side comes from the config.
#   p128     the paper's 128 px protocol (Sec. 4.2.1): resize to 512, then crop (224)
#   p1024    the paper's 1024 px protocol (Sec. 4.2.2): crop only
#   mini     the built-in benchmark's 64 px images: crop only (48)
#   mini_x4  the p128 protocol in miniature: 64 px resized x4 to 256, then crop; resizing moves the
#            generators' spectral peaks, as the paper's resize does
TRANSFORM_PRESETS: dict[str, int | None] = {"p128": 512, "p1024": None, "mini": None, "mini_x4": 256}


MAX_IMAGE_PIXELS = 40_000_000
"""The largest image (width x height) gfd reads: 40 megapixels, checked from the file header before
decoding.  Fingerprint attribution works on crops of a few hundred pixels; a larger file is far more
likely a mistake (or a decompression bomb) than an input, and decoding it would take gigabytes."""

SKIP_BAD_HINT = ("Remove or replace the file, or skip unusable images: --skip-bad on the command line, "
                 "skip_bad=True in gfd.load_data.")


class BadImageError(ValueError):
    """An image file that cannot be used (corrupt, truncated, too large, too small); the message names it."""


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


def _open(path: str | os.PathLike) -> Image.Image:
    """``Image.open`` (header only) with the pixel limit checked; every failure a :class:`BadImageError`."""
    try:
        with warnings.catch_warnings():  # Pillow's own bomb warning: the limit below is lower anyway
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        w, h = img.size
    except FileNotFoundError:
        raise
    except Image.DecompressionBombError as err:  # over Pillow's hard limit: its message names no file
        raise BadImageError(f"image {path} is larger than the {MAX_IMAGE_PIXELS // 1_000_000} megapixel limit "
                            f"of gfd.data.MAX_IMAGE_PIXELS ({err}). Downscale or crop it. {SKIP_BAD_HINT}") from err
    except Exception as err:  # noqa: BLE001 -- a file that cannot be parsed, whatever the parser raises
        raise BadImageError(f"cannot read image {path}: {type(err).__name__}: {err}. {SKIP_BAD_HINT}") from err
    if w * h > MAX_IMAGE_PIXELS:
        img.close()
        raise BadImageError(f"image {path} is {w}x{h} px ({w * h / 1e6:.1f} megapixels), over the limit of "
                            f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels (gfd.data.MAX_IMAGE_PIXELS); "
                            f"downscale or crop it. {SKIP_BAD_HINT}")
    return img


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode an image as RGB.  A corrupt, truncated or too large (over
    :data:`MAX_IMAGE_PIXELS`) file raises :class:`BadImageError` naming it; a missing one
    ``FileNotFoundError``."""
    with _open(path) as img:
        try:
            img.load()
            return to_rgb(img)
        except Exception as err:  # noqa: BLE001 -- decoders raise OSError, ValueError, SyntaxError, ...
            raise BadImageError(f"cannot read image {path}: {type(err).__name__}: {err}. {SKIP_BAD_HINT}") from err


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the file header only; raises :class:`BadImageError` if unreadable or too large."""
    with _open(path) as img:
        return img.size


# --------------------------------------------------------------------------------------------------
# transforms
# --------------------------------------------------------------------------------------------------

def make_transform(name: str, train: bool, crop: int, hflip: bool = False) -> v2.Compose:
    """Transform preset ``name`` (``p128``, ``p1024``, ``mini``, ``mini_x4``) for training or testing."""
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


def min_image_side(name: str, crop: int) -> int:
    """Smallest side an image file may have for transform preset ``name`` (a preset that resizes
    accepts any size; one that only crops needs at least ``crop`` pixels)."""
    return 1 if TRANSFORM_PRESETS[name] is not None else crop


class AttributionFolder(datasets.ImageFolder):
    """``ImageFolder`` with the course's class order, RGB loading and bad-file handling.

    Its samples are :func:`gfd.layout.list_images` of each class folder -- not torchvision's
    recursive walk, which follows links into sub-folders and loops -- so a dataset holds exactly
    the images the layout checks count.  The constructor reads every file's header (cheap) to
    reject images smaller than the crop or over :data:`MAX_IMAGE_PIXELS`.  With
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

    def make_dataset(self, directory: str, class_to_idx: dict[str, int], extensions=None, is_valid_file=None,
                     allow_empty: bool = False) -> list[tuple[str, int]]:
        """(path, label) of :func:`gfd.layout.list_images` per class, classes by name as torchvision does;
        hidden files (``.name.png``) are not images of the class, as ``prepare`` skips them too."""
        return [(str(path), class_to_idx[c]) for c in sorted(class_to_idx)
                for path in list_images(Path(directory) / c) if not path.name.startswith(".")]


# --------------------------------------------------------------------------------------------------
# loaders
# --------------------------------------------------------------------------------------------------

def default_num_workers(cuda: bool | None = None) -> int:
    """0 on a 2-core CPU machine (the trainer already uses both cores), more with a GPU to feed
    (``cuda``: the run trains on one, see :func:`feeds_cuda`; default: torch sees one)."""
    cores = os.cpu_count() or 1
    if torch.cuda.is_available() if cuda is None else cuda:
        return max(1, min(4, cores))
    return 0 if cores <= 2 else min(4, cores // 2)


def feeds_cuda(cfg: Config) -> bool:
    """The config trains on a CUDA GPU (``device`` auto or cuda, and torch sees one).  Its loaders
    then decode in worker processes and pin their batches, so that the copy to the GPU overlaps
    the step; a CPU run, or ``device=cpu`` on a GPU machine, does neither."""
    return torch.cuda.is_available() and cfg.device.split(":")[0] in ("auto", "cuda")


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)


def make_loader(dataset: AttributionFolder, cfg: Config, *, train: bool, index: int) -> DataLoader:
    """The loader of one split, for attribution and detection data alike.

    ``cfg`` gives the batch size, the seed and the machine settings: ``num_workers`` worker
    processes (``None``: :func:`default_num_workers` of the machine), kept alive between epochs,
    and pinned memory where :func:`feeds_cuda` (the run trains on a CUDA GPU).  A train loader
    (``train``) shuffles and drops the last incomplete batch (unless the split is smaller than one
    batch); the others keep the files' order.  ``index``, the split's place among the splits loaded
    together, seeds the loader's generator (``seed * 1000 + index``), so every split draws its own
    reproducible stream."""
    cuda = feeds_cuda(cfg)
    num_workers = default_num_workers(cuda) if cfg.num_workers is None else cfg.num_workers
    return DataLoader(dataset, batch_size=cfg.batch_size, shuffle=train,
                      drop_last=train and len(dataset) >= cfg.batch_size,
                      num_workers=num_workers, generator=torch.Generator().manual_seed(cfg.seed * 1000 + index),
                      worker_init_fn=_seed_worker, persistent_workers=num_workers > 0, pin_memory=cuda)


def folder_identity(root: str | os.PathLike, marker: str) -> str:
    """A data folder's identity (:attr:`DataBundle.identity`): its name if it holds ``marker`` (the
    file a built-in benchmark, or a view of one, writes; its name holds the benchmark's key), else
    its absolute path."""
    root = Path(root)
    return root.name if (root / marker).is_file() else str(root.resolve())


def data_identity(cfg: Config) -> str:
    """The :attr:`DataBundle.identity` of :func:`load_data` of ``cfg``, without reading or building
    the data: a run's key needs only this, so stored runs are found without building a benchmark.
    For the built-in benchmark it is the folder name its cache would have (detection: its view's)."""
    if cfg.data_root is not None:
        if cfg.task == "detection":
            return folder_identity(cfg.data_root, VIEW_FILE)
        return folder_identity(cfg.data_root, "manifest.json")
    from gfd.benchmark import benchmark_name
    name = benchmark_name(cfg.benchmark, cfg.benchmark_size, seed=0)
    if cfg.task == "detection":
        return view_name(name)
    return name


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
    def identity(self) -> str:
        """What these data are, for run keys: a built-in benchmark's folder name (it holds the
        benchmark's own key, so a rebuilt or other benchmark is other data), else the folder's
        absolute path."""
        return folder_identity(self.root, "manifest.json")

    @property
    def real_index(self) -> int:
        if REAL not in self.classes:
            raise KeyError(f"no '{REAL}' class in {self.classes}: GFD-Net pairs fingerprints with real images")
        return self.classes.index(REAL)


def add_splits(bundle: DataBundle, splits: list[str], cfg: Config, *, skip_bad: bool = False) -> None:
    """Read ``bundle.root / split`` for every split of ``splits`` into ``bundle`` (dataset and
    :func:`make_loader` loader), with the bundle's classes and ``cfg``'s transform, crop and flips:
    random crops for ``train``, centre crops elsewhere.  The i-th split of ``splits`` gets loader
    index i.  A split with a class left without a usable image is a :class:`DataLayoutError`."""
    side = min_image_side(cfg.transform, cfg.crop)
    for index, split in enumerate(splits):
        train = split == TRAIN
        ds = AttributionFolder(bundle.root / split, bundle.classes,
                               transform=make_transform(cfg.transform, train, cfg.crop, cfg.hflip),
                               min_side=side, skip_bad=skip_bad)
        left = {c: ds.targets.count(k) for k, c in enumerate(bundle.classes)}
        if min(left.values()) == 0:
            raise DataLayoutError(f"{bundle.root / split}: a class has no usable image (none there, or all "
                                  f"skipped as bad files); usable images per class: {left}")
        bundle.datasets[split] = ds
        bundle.loaders[split] = make_loader(ds, cfg, train=train, index=index)


def get_loaders(root: str | os.PathLike, cfg: Config, *, skip_bad: bool = False,
                splits: list[str] | tuple[str, ...] | None = None, **changes) -> DataBundle:
    """Loaders for the present splits of the attribution folder ``root`` (all, or those of
    ``splits`` in that order) plus the class names, seeded.

    Transform, crop, batch size, workers, seed and flips come from ``cfg`` with ``changes``
    applied, e.g. ``get_loaders(root, cfg, batch_size=64)``; the loaders are
    :func:`make_loader`'s.  Every present split is checked against the train split's classes, even
    one not loaded.  Most code should call :func:`load_data` instead.
    """
    cfg = cfg.with_(**changes)
    root = Path(root)
    present = find_splits(root)
    wanted = [s for s in (splits or present) if s in present]
    unknown = [s for s in (splits or []) if s not in present]
    if unknown:
        raise DataLayoutError(f"split(s) {unknown} asked for but not in {root}; present: {present}")

    train_counts = split_sources(root, TRAIN)
    if not train_counts:
        raise DataLayoutError(f"{root / TRAIN} holds no source folders; expected {TRAIN}/<source>/*.png")
    classes = class_order(root, list(train_counts))
    for split in present:
        check_split(root, split, classes)

    bundle = DataBundle(root=root, classes=classes)
    add_splits(bundle, wanted, cfg, skip_bad=skip_bad)
    return bundle


@dataclass
class DetectionBundle(DataBundle):
    """A :class:`DataBundle` of the binary detection layout (:mod:`gfd.detection_layout`): splits ``train``, ``val`` and
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
    those of ``splits``, in that order), read with ``cfg`` by :func:`add_splits` -- the
    loaders of attribution data, with the same transforms, seeds and machine settings.  Most code
    should call :func:`load_data` with ``task="detection"`` instead."""
    root = Path(root)
    for split in (TRAIN, VAL):
        found = sorted(p.name for p in (root / split).iterdir()) if (root / split).is_dir() else []
        if sorted(found) != sorted(CLASSES):
            raise DataLayoutError(f"{root / split}: expected the class folders {list(CLASSES)} of the detection "
                                  f"layout (python -m gfd prepare detection), found {found or 'nothing'}")
    names = test_set_names(root)
    bundle = DetectionBundle(root=root, classes=list(CLASSES), test_sets=names)
    present = [TRAIN, VAL, *bundle.test_splits]
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
    ``identity``) already names it in every run key.  :func:`load_data` uses the default
    family; for another, ``load_detection(detection_root(cfg, family=F), cfg)``."""
    if cfg.data_root is not None:
        return Path(cfg.data_root)
    from gfd.benchmark import load_benchmark
    bench = load_benchmark(cfg.benchmark, cfg.benchmark_size, seed=0, progress=progress)
    return detection_view(bench, family=family, log=log)



def load_data(cfg: Config, *, progress: bool = True, splits: list[str] | tuple[str, ...] | None = None,
              skip_bad: bool = False, log: Callable[[str], None] | None = print) -> DataBundle:
    """The data a config asks for, for its task (``cfg.task``).

    ``attribution``: ``cfg.data_root`` (the layout of this module) if set, else the built-in
    benchmark ``cfg.benchmark`` (``gan128``, or ``gan1024`` for Table 2) of size
    ``cfg.benchmark_size``, built and cached on first use; a :class:`DataBundle`.

    ``detection``: ``cfg.data_root`` (the layout of :mod:`gfd.detection_layout`, e.g. from ``python -m
    gfd prepare detection``) if set, else the detection view of that built-in benchmark, real vs.
    :data:`gfd.detection_layout.TRAIN_FAMILY` (written on first use; ``log`` reports it); a
    :class:`DetectionBundle`.

    The CLI, the runners and every notebook call this, so setting ``data_root`` switches all of
    them to a real dataset.  ``splits`` loads only those (all by default); ``skip_bad`` drops
    unreadable images with a warning instead of failing on them."""
    if cfg.task == "detection":
        return load_detection(detection_root(cfg, progress=progress, log=log), cfg, splits=splits,
                              skip_bad=skip_bad)
    root = cfg.data_root
    if root is None:
        from gfd.benchmark import load_benchmark  # the benchmark writes this module's layout
        root = load_benchmark(cfg.benchmark, cfg.benchmark_size, seed=0, progress=progress)
    return get_loaders(root, cfg, splits=splits, skip_bad=skip_bad)


def examples_per_class(dataset: AttributionFolder, n: int = 1, labels: list[int] | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images of each class in ``labels`` (default: all), as a batch (x, y)."""
    labels = range(len(dataset.classes)) if labels is None else labels
    picked = [i for k in labels for i in [j for j, t in enumerate(dataset.targets) if t == k][:n]]
    if not picked:
        raise ValueError(f"no image of classes {list(labels)} in {dataset.root}")
    xs, ys = zip(*(dataset[i] for i in picked))
    return torch.stack(xs), torch.tensor(ys)
