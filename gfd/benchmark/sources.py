"""Where each benchmark image comes from, and accuracy averaged over generator instances and domains.

A built benchmark's file names say their source (:mod:`gfd.benchmark.engine`): ``<world>-g<k>_NNNNN.png``
is an image of instance ``k`` of its class's family in world ``<world>`` (``A``, ``B1``, ``B2``),
``<world>-real_NNNNN.png`` a real image of that world.  :func:`accuracy_by_source` turns per-image
predictions of a split into the accuracies the course reports: per source (one generator
instance, or the real images of one world), per world as the mean over its sources (each instance
weighs the same, whatever its image count), and overall as the mean over worlds.  It takes plain
lists, so any evaluation code can call it with the paths of its dataset (``dataset.samples``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from gfd.benchmark.engine import PREFIX_RE, image_groups, read_manifest
from gfd.layout import CLOSED, TEST_CLOSED


def source_of(path: str | os.PathLike) -> tuple[str, str] | None:
    """(world, instance) of a benchmark file (``("B1", "g2")``, ``("A", "real")``), None if unnamed."""
    m = PREFIX_RE.match(Path(path).name)
    return (m["world"], m["inst"]) if m else None


def accuracy_by_source(paths: Sequence[str | os.PathLike], y_true: Sequence[int], y_pred: Sequence[int],
                       classes: Sequence[str] | None = None) -> dict:
    """Accuracies per source (``"B1/sngan/g2"``), per world (mean over its sources) and the mean over
    worlds.  ``classes`` names the labels (default: their indices)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if not (len(paths) == len(y_true) == len(y_pred)):
        raise ValueError(f"{len(paths)} paths, {len(y_true)} labels, {len(y_pred)} predictions")
    hits: dict[str, list[bool]] = {}
    for path, t, p in zip(paths, y_true, y_pred):
        world, inst = source_of(path) or ("?", "?")
        name = classes[t] if classes is not None else str(int(t))
        hits.setdefault(f"{world}/{name}/{inst}", []).append(bool(t == p))
    per_source = {k: float(np.mean(v)) for k, v in sorted(hits.items())}
    worlds: dict[str, list[float]] = {}
    for k, acc in per_source.items():
        worlds.setdefault(k.split("/", 1)[0], []).append(acc)
    per_world = {w: float(np.mean(v)) for w, v in worlds.items()}
    return {"per_source": per_source, "per_world": per_world,
            "mean_over_worlds": float(np.mean(list(per_world.values()))) if per_world else None}


def world_split(root: str | os.PathLike, world: str) -> str:
    """The split that holds a world's images: ``test_closed`` for the closed world, else the open one."""
    worlds = read_manifest(root)["worlds"]
    if world not in worlds:
        raise KeyError(f"unknown world {world!r}; the benchmark has {sorted(worlds)}")
    return TEST_CLOSED if worlds[world]["role"] == CLOSED else worlds[world]["splits"][0]


def world_groups(root: str | os.PathLike, world: str) -> dict[str, dict[str, list[Path]]]:
    """{class: {prefix: paths}} of one world (prefixes ``"<world>-g<k>_"`` and ``"<world>-real_"``); a
    class with no image in that world is left out (in the gan1024 world, e.g., no StyleGAN trained on H)."""
    split = world_split(root, world)
    groups = image_groups(root, split)
    order = [c for c in read_manifest(root)["classes"] if c in groups]          # real first, as the classes
    mine = {c: {p: v for p, v in groups[c].items() if p.startswith(f"{world}-")} for c in order}
    return {c: g for c, g in mine.items() if g}
