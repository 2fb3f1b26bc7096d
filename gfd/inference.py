"""Using a trained GFD-Net: attribution with G_enc + H, and fingerprint extraction with G.

At test time only the encoder and the head run (Sec. 3.2, Table 3: "only use the encoder with a
classification head at inference time"); the decoder is needed only to *show* the fingerprint f.

``model_or_checkpoint`` may be a :class:`~gfd.models.generator.FingerprintGenerator`, a
:class:`~gfd.train.Trainer`, or the path of a checkpoint or of its weights-only export
(:func:`gfd.checkpoint.export_weights`).  ``images`` may be a tensor in [-1, 1]
of shape (N, 3, H, W) or (3, H, W), a PIL image, an image path, or a list of PIL images / paths;
PIL images and files get the *test* transform of the checkpoint's config (centre crop).
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import torch
from PIL import Image

from gfd.config import Config
from gfd.evaluate import eval_mode
from gfd.models.generator import EncoderHead, FingerprintGenerator, build_generator  # noqa: F401 (re-export)
from gfd.utils import module_device

ImageInput = Any  # tensor | PIL.Image | path | list of PIL images / paths


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> tuple[FingerprintGenerator, Config, list[str]]:
    from gfd.checkpoint import load_checkpoint
    state = load_checkpoint(path, allow_export=True)
    cfg = Config.from_dict(state["config"])
    classes = list(state["classes"])
    generator = build_generator(cfg, len(classes), pretrained=False)   # the checkpoint holds its weights
    try:
        generator.load_state_dict(state["models"]["G"])
    except (KeyError, RuntimeError) as err:
        raise ValueError(f"checkpoint {path}: cannot load the generator G: {str(err)[:400]}") from err
    return generator.eval(), cfg, classes


def load_generator(path: str | os.PathLike) -> tuple[FingerprintGenerator, Config, list[str]]:
    """G + H, config and class names from a checkpoint or export file (G in eval mode, on the CPU)."""
    from gfd.checkpoint import check_checkpoint_file
    path = check_checkpoint_file(path)      # a folder or a missing file: one clear line
    return _load(str(path.resolve()), path.stat().st_mtime)


def resolve(model_or_checkpoint) -> tuple[FingerprintGenerator, Config | None, list[str] | None]:
    """(generator, config or None, class names or None) from any accepted model argument."""
    if isinstance(model_or_checkpoint, FingerprintGenerator):
        return model_or_checkpoint, None, None
    if isinstance(model_or_checkpoint, (str, os.PathLike)):
        return load_generator(model_or_checkpoint)
    if hasattr(model_or_checkpoint, "G") and hasattr(model_or_checkpoint, "cfg"):  # a Trainer
        return model_or_checkpoint.G, model_or_checkpoint.cfg, list(model_or_checkpoint.classes)
    raise TypeError(f"expected a FingerprintGenerator, a Trainer or a checkpoint path, "
                    f"got {type(model_or_checkpoint).__name__}")


def to_batch(images: ImageInput, cfg: Config | None) -> torch.Tensor:
    """A float batch (N, 3, H, W) in [-1, 1] from tensors, PIL images or image paths."""
    if isinstance(images, torch.Tensor):
        x = images.unsqueeze(0) if images.ndim == 3 else images
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images of shape (N, 3, H, W) or (3, H, W), got {tuple(images.shape)}")
        return x.float()
    items = list(images) if isinstance(images, (list, tuple)) else [images]
    if not items:
        raise ValueError("no images given")
    if cfg is None:
        raise ValueError("PIL images and files need the test transform of a config: pass a checkpoint "
                         "path or a Trainer, or pass tensors already cropped and scaled to [-1, 1]")
    from gfd.data import load_rgb, make_transform, min_image_side
    transform = make_transform(cfg.transform, train=False, crop=cfg.crop)
    min_side = min_image_side(cfg.transform, cfg.crop)
    tensors = []
    for item in items:
        if isinstance(item, Image.Image):
            img = item.convert("RGB")
        elif isinstance(item, (str, os.PathLike)):
            if not Path(item).is_file():
                raise FileNotFoundError(f"image {item} does not exist")
            img = load_rgb(item)
        else:
            raise TypeError(f"expected PIL images or paths, got {type(item).__name__}")
        if min(img.size) < min_side:
            raise ValueError(f"image {getattr(item, 'filename', item)} is {img.size[0]}x{img.size[1]} px, "
                             f"smaller than the {cfg.crop} px crop the model was trained with")
        tensors.append(transform(img))
    return torch.stack(tensors)


@torch.no_grad()
def _batched(model_or_checkpoint, images: ImageInput, batch_size: int, fn) -> torch.Tensor:
    """``fn(generator, batch)`` over ``images`` in eval mode, batch by batch; results on the CPU."""
    generator, cfg, _ = resolve(model_or_checkpoint)
    x = to_batch(images, cfg)
    dev = module_device(generator)
    with eval_mode(generator):
        out = [fn(generator, x[i:i + batch_size].to(dev)).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out)


@torch.no_grad()
def attribute(model_or_checkpoint, images: ImageInput, batch_size: int = 64) -> torch.Tensor:
    """Source probabilities (N, K) from G_enc + H only (the attribution path of the paper)."""
    return _batched(model_or_checkpoint, images, batch_size,
                    lambda g, x: torch.softmax(g.classify(x).float(), 1))


@torch.no_grad()
def fingerprint(model_or_checkpoint, images: ImageInput, batch_size: int = 64) -> torch.Tensor:
    """The fingerprints f = G(x) (N, 3, H, W), on the CPU."""
    return _batched(model_or_checkpoint, images, batch_size, lambda g, x: g.fingerprint(x).float())


def class_names(model_or_checkpoint) -> list[str] | None:
    """The class names a checkpoint or trainer was trained on (None for a bare generator)."""
    return resolve(model_or_checkpoint)[2]


def is_finished(path: str | os.PathLike) -> bool:
    """Has the run of this checkpoint (or export) reached its config's ``steps``?  False if unreadable."""
    from gfd.checkpoint import load_checkpoint
    try:
        state = load_checkpoint(path, allow_export=True)
        return int(state["step"]) >= Config.from_dict(state["config"]).steps
    except (ValueError, TypeError, KeyError, OSError):
        return False


LATEST_RULE = ("the newest finished run under data/runs: of the files data/runs/*/checkpoint.pt whose step "
               "reached their config's steps, the one modified last")


def latest_checkpoint(runs: Path | None = None) -> Path:
    """The checkpoint ``attribute`` uses by default: of ``runs/*/checkpoint.pt`` (``runs``: default
    ``data/runs``) the *finished* ones (step = the config's ``steps``), the newest by modification
    time.  An interrupted run is never picked; raises ``FileNotFoundError`` if no run is finished."""
    from gfd.utils import runs_dir
    runs = Path(runs) if runs is not None else runs_dir()
    found = sorted(runs.glob("*/checkpoint.pt"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in found:
        if is_finished(path):
            return path
    unfinished = f" ({len(found)} unfinished or unreadable)" if found else ""
    raise FileNotFoundError(f"no finished run under {runs}/{unfinished}: train one with `python -m gfd train "
                            f"--preset quick`, or pass --checkpoint PATH")


def image_files(inputs: list[str | os.PathLike]) -> list[Path]:
    """Files and folders -> files: a folder gives its image files (by extension), sorted, not recursive;
    a file is kept as given (whatever its name).  A folder without images raises ``FileNotFoundError``."""
    from gfd.layout import IMAGE_EXTENSIONS, is_image_file
    out: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.is_file() and is_image_file(p))
            if not found:
                raise FileNotFoundError(f"folder {item} holds no image file ({', '.join(IMAGE_EXTENSIONS)}) "
                                        f"directly in it (sub-folders are not searched)")
            out += found
        else:
            out.append(item)
    return out


def attribute_files(model_or_checkpoint, inputs: list[str | os.PathLike], batch_size: int = 64
                    ) -> list[tuple[Path, torch.Tensor | None, str | None]]:
    """Attribute image files and folders (see :func:`image_files`), going on past bad ones.

    Returns ``[(path, probabilities (K,) or None, error message or None)]`` in input order: a
    missing, unreadable, too large or too small file, or a folder without images, gets its error
    message and no probabilities; the others are attributed as by :func:`attribute`.  Images are
    decoded and classified ``batch_size`` at a time (:func:`iter_attribute_files`).
    """
    return list(iter_attribute_files(model_or_checkpoint, inputs, batch_size))


def iter_attribute_files(model_or_checkpoint, inputs: list[str | os.PathLike], batch_size: int = 64
                         ) -> Iterator[tuple[Path, torch.Tensor | None, str | None]]:
    """:func:`attribute_files` as a stream: at most ``batch_size`` decoded images are held at a time
    (a folder of any size fits in memory), and each row is yielded, in input order, as soon as its
    batch is classified (``python -m gfd attribute`` prints as it goes)."""
    from gfd.data import BadImageError
    generator, cfg, _ = resolve(model_or_checkpoint)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    rows: list[list] = []               # [path, index into tensors or None, error or None], not yet yielded
    tensors: list[torch.Tensor] = []

    def flush():
        probs = attribute(generator, torch.stack(tensors), batch_size) if tensors else None
        out = [(path, probs[k] if k is not None else None, err) for path, k, err in rows]
        rows.clear()
        tensors.clear()
        return out

    for item in inputs:
        try:
            paths = image_files([item])
        except FileNotFoundError as err:
            rows.append([Path(item), None, str(err)])
            continue
        for path in paths:
            try:
                tensors.append(to_batch(path, cfg)[0])
                rows.append([path, len(tensors) - 1, None])
            except (BadImageError, FileNotFoundError, ValueError) as err:
                rows.append([path, None, str(err)])
            if len(tensors) >= batch_size or not tensors:     # a full batch, or only errors waiting
                yield from flush()
        if not tensors:
            yield from flush()
    yield from flush()


def load_for_evaluation(checkpoint: str | os.PathLike, data_root: str | os.PathLike | None = None, *,
                        skip_bad: bool = False, progress: bool = True):
    """(generator, config, classes, bundle) to evaluate a checkpoint or export on its data.

    The data are :func:`gfd.data.load_data` of the checkpoint's config -- its own ``data_root``, or
    the built-in benchmark, read for its ``task`` (a detector's checkpoint gets detection data) --
    or ``data_root`` if given.  The generator is moved to the best device here (``auto``).  A data folder
    that has moved, or a dataset whose classes differ from the checkpoint's, is a ``ValueError``
    that says what to do (``--data-root``, ``classes.json``).
    """
    import json

    from gfd.data import load_data
    from gfd.layout import DataLayoutError
    from gfd.utils import choose_device

    generator, cfg, classes = load_generator(checkpoint)
    if data_root is not None:
        cfg = cfg.with_(data_root=str(data_root))
    elif cfg.data_root is not None and not Path(cfg.data_root).is_dir():
        raise DataLayoutError(f"checkpoint {checkpoint} was trained on the dataset {cfg.data_root}, which no "
                              f"longer exists there (moved or deleted?); pass --data-root NEW_FOLDER "
                              f"(data_root= in Python) to evaluate on it where it is now")
    bundle = load_data(cfg, progress=progress, skip_bad=skip_bad)
    if list(bundle.classes) != classes:
        if sorted(bundle.classes) == sorted(classes):
            raise DataLayoutError(
                f"checkpoint {checkpoint} was trained with the classes in the order {classes}, the dataset "
                f"{bundle.root} orders them {bundle.classes}; write {Path(bundle.root) / 'classes.json'} "
                f"holding {json.dumps(classes)} to use the checkpoint's order")
        raise DataLayoutError(f"checkpoint {checkpoint} was trained on the classes {classes}, the dataset "
                              f"{bundle.root} has {bundle.classes}; pass --data-root with a dataset of the "
                              f"checkpoint's classes")
    generator.to(choose_device("auto"))
    return generator, cfg, classes, bundle
