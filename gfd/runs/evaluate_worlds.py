"""Evaluate without retraining: add test-only worlds to existing run records (Sec. 4.2's protocol:
methods trained on the closed world, tested on worlds they never saw).

A run record (:mod:`gfd.runs.records`) stores the whole config, the data identity and a baseline's
options of one (method, seed).  :func:`add_worlds` gets the record's trained model back and measures
it on more worlds -- folders with one test split, such as the shift worlds of
:mod:`gfd.benchmark.worlds.shifts` (``ROOT/test/<class>/*.png``) -- by the same
:func:`gfd.evaluate.evaluate_model` and the same test transform (centre crop) as every table, then
writes the numbers into the record under ``worlds`` (not ``results``, so the tables made from
records do not change, and not into the key: the identity of the run is unchanged).

How the model is got back:

* **GFD-Net rows** (any row of Table 4): the run folder :func:`gfd.train.default_run_dir` of the
  record's config and data holds the checkpoint; the trainer is restored from it and the weights
  the protocol kept (``use_selected``) are measured, as :func:`gfd.train.load_or_train` does.  A
  missing checkpoint is trained again by :func:`gfd.train.load_or_train` on the record's data
  (training is deterministic per config and seed, rule 3 of the protocol).
* **Baselines** (PRNU, DCT, AttNet, ...) keep no checkpoint in their runs.  Each time, the
  baseline is fitted again by :func:`gfd.baselines.fit_baseline` with the record's config and seed,
  exactly as :func:`gfd.runs.train_and_measure` fitted it; the refit is accepted only if it
  reproduces the record's own ``val`` and ``test_closed`` predictions (accuracy and confusion matrix,
  exactly), otherwise nothing is added (:class:`RefitMismatch`).  Nothing is kept on disk: a stored
  module would have to be unpickled to be read back, and every ``torch.load`` of the package reads
  weights only (no pickled code ever runs); refitting is deterministic and checked instead.

With ``verify=True`` a GFD-Net model restored from its checkpoint is checked the same way on ``val``
before anything is added.  Nothing here looks at a world's numbers to decide anything.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from torch import nn

from gfd.config import Config
from gfd.data import AttributionFolder, DataBundle, folder_identity, make_loader, make_transform, min_image_side
from gfd.evaluate import evaluate_model
from gfd.layout import TEST_CLOSED, TEST_SPLIT, VAL, DataLayoutError
from gfd.paper import GFD_ROWS
from gfd.runs.records import read_record, run_slug
from gfd.utils import atomic_write

CHECKED_SPLITS = (VAL, TEST_CLOSED)
"""The record's own splits a refitted baseline must reproduce exactly."""


class RefitMismatch(RuntimeError):
    """A model got back for a record does not reproduce the record's own numbers: it is not the
    recorded model, so no world is added."""


def record_classes(record: Mapping[str, Any]) -> list[str]:
    """The class names the record's model scores, in its order (from its measured results)."""
    for split in (VAL, TEST_CLOSED, *record.get("results", {})):
        res = record.get("results", {}).get(split)
        if isinstance(res, Mapping) and res.get("classes"):
            return list(res["classes"])
    raise ValueError(f"record {record.get('method')} seed {record.get('seed')} holds no class list in its results")


def world_bundle(root: str | os.PathLike, cfg: Config, classes: list[str], split: str = TEST_SPLIT) -> DataBundle:
    """A :class:`gfd.data.DataBundle` holding one test split of a world folder: the test transform of
    ``cfg`` (centre crop), its batch size and loader settings, the model's ``classes`` in its order
    (the folder's ``classes.json``, if any, must list the same)."""
    root = Path(root)
    own = root / "classes.json"
    if own.is_file() and json.loads(own.read_text()) != list(classes):
        raise DataLayoutError(f"{root}: classes {json.loads(own.read_text())}, the model's are {classes}")
    folder = root / split
    if not folder.is_dir():
        raise DataLayoutError(f"{folder} does not exist: a world to evaluate holds {split}/<class>/*.png")
    ds = AttributionFolder(folder, classes, transform=make_transform(cfg.transform, False, cfg.crop),
                           min_side=min_image_side(cfg.transform, cfg.crop))
    bundle = DataBundle(root=root, classes=list(classes))
    bundle.datasets[split] = ds
    bundle.loaders[split] = make_loader(ds, cfg, train=False, index=0)
    return bundle


def _same_numbers(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return a.get("acc") == b.get("acc") and a.get("confusion") == b.get("confusion")


def check_reproduces(model: nn.Module, record: Mapping[str, Any], data: Any, splits=CHECKED_SPLITS) -> None:
    """Raise :class:`RefitMismatch` unless ``model`` gives the record's own numbers on ``splits``."""
    have = [s for s in splits if s in record.get("results", {}) and s in data]
    if not have:
        raise RefitMismatch(f"record {record['method']} seed {record['seed']}: none of {splits} to check against")
    got = evaluate_model(model, data, splits=have)
    bad = [s for s in have if not _same_numbers(got[s], record["results"][s])]
    if bad:
        diff = ", ".join(f"{s}: {got[s]['acc']:.4f} vs {record['results'][s]['acc']:.4f}" for s in bad)
        raise RefitMismatch(f"{record['method']} seed {record['seed']}: the model got back gives other numbers "
                            f"than its record ({diff}); nothing added")


def _record_data(record: Mapping[str, Any], cfg: Config, data: Any, progress: bool) -> Any:
    """The closed-world data of a record: ``data`` if given (its identity must be the record's), else
    :func:`gfd.data.load_data` of the record's config."""
    if data is None:
        from gfd.data import load_data
        data = load_data(cfg, progress=progress)
    if getattr(data, "identity", None) != record["data"]:
        raise ValueError(f"the data given are {getattr(data, 'identity', None)!r}, the record was measured on "
                         f"{record['data']!r}")
    return data


def model_for_record(record: Mapping[str, Any], *, runs_root: str | os.PathLike | None = None,
                     data: Any = None, data_loader: Callable[[], Any] | None = None, verify: bool = True,
                     progress: bool = False, log: Callable[[str], None] = lambda m: None) -> nn.Module:
    """The trained model of a run record (see the module docstring): restored from the GFD-Net run's
    checkpoint (or trained again where it is missing), or a baseline refitted deterministically and
    checked against the record.  ``data`` (or ``data_loader()``, called only when needed) are the record's closed-world
    data, needed to retrain, refit or verify."""
    from gfd.models.generator import EncoderHead
    from gfd.train import CHECKPOINT_NAME, Trainer, default_run_dir, load_or_train

    cfg = Config.from_dict(record["config"])
    classes = record_classes(record)
    cache: dict[str, Any] = {}

    def closed_data():
        if "data" not in cache:
            cache["data"] = _record_data(record, cfg, data if data is not None else
                                         (data_loader() if data_loader is not None else None), progress)
        return cache["data"]

    if record.get("options") is None:                     # a GFD-Net row
        if run_slug(record["method"]) not in {run_slug(m) for m in GFD_ROWS} | {run_slug("GFD-Net")}:
            raise ValueError(f"record method {record['method']!r} has no options and is no GFD-Net row")
        out = default_run_dir(cfg, runs_root, record["data"])
        ckpt = out / CHECKPOINT_NAME
        if ckpt.is_file():
            trainer = Trainer(cfg, None, out, classes=classes, pretrained=False).load(ckpt, resume_data=False)
            if not trainer.done:
                raise RefitMismatch(f"{ckpt} is an unfinished run (step {trainer.step}/{cfg.steps}); finish it first")
            trainer.use_selected()
            model = EncoderHead(trainer.G)
            log(f"{record['method']} seed {record['seed']}: restored {ckpt}")
            if verify:
                check_reproduces(model, record, closed_data(), splits=(VAL,))
        else:
            log(f"{record['method']} seed {record['seed']}: no checkpoint in {out}; training it again")
            trainer = load_or_train(cfg, closed_data(), out_dir=out, progress=progress)
            model = EncoderHead(trainer.G)
            check_reproduces(model, record, closed_data())
        return model
    from gfd.baselines import TABLE_NAMES, fit_baseline
    log(f"{record['method']} seed {record['seed']}: fitting it again (deterministic)")
    model = fit_baseline(TABLE_NAMES[record["method"]], closed_data(), options=cfg, seed=cfg.seed, progress=progress)
    check_reproduces(model, record, closed_data())
    return model


def evaluate_worlds(model: nn.Module, cfg: Config, classes: list[str], worlds: Mapping[str, str | os.PathLike],
                    split: str = TEST_SPLIT) -> dict[str, dict[str, Any]]:
    """``{world: evaluate_model result}`` of ``model`` on the test split of every world folder, with
    ``data`` (the folder's identity: a built world's name, which holds its key) added."""
    out = {}
    for name, root in worlds.items():
        bundle = world_bundle(root, cfg, classes, split)
        res = evaluate_model(model, bundle, splits=(split,))[split]
        out[name] = {**res, "world": name, "data": folder_identity(root, "manifest.json")}
    return out


def add_worlds(record_path: str | os.PathLike, worlds: Mapping[str, str | os.PathLike], *,
               runs_root: str | os.PathLike | None = None, data: Any = None,
               data_loader: Callable[[], Any] | None = None, verify: bool = True, write: bool = True,
               progress: bool = False, log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Measure the run of the record at ``record_path`` on every world of ``worlds`` ({name: folder})
    and add the results to the record's ``worlds`` field (kept for the others; replaced for the same
    name); write it back (unless ``write=False``) and return it.  The record's key and results are
    unchanged."""
    record_path = Path(record_path)
    record = read_record(record_path)
    if record is None:
        raise FileNotFoundError(f"{record_path}: no readable run record")
    model = model_for_record(record, runs_root=runs_root, data=data, data_loader=data_loader, verify=verify,
                             progress=progress, log=log)
    cfg = Config.from_dict(record["config"])
    record.setdefault("worlds", {}).update(evaluate_worlds(model, cfg, record_classes(record), worlds))
    if write:
        atomic_write(record_path, lambda p: p.write_text(json.dumps(record, indent=1), encoding="utf-8"))
    return record
