"""Writing one build of :mod:`gfd.benchmark.engine`: its image folders, and the finished generators
an interrupted build resumes from.

:class:`Writer` writes every image folder of a build (``ROOT/<split>/<class>/<prefix>NNNNN.png`` and
``ROOT/variants/<name>/NNNNN.png``) and records, per split and class, how many images it holds and
which source prefixes (``<world>-g<k>_``, ``<world>-real_``) they carry: the manifest's ``counts``
and ``instances``.  Which splits a domain's images fill is the world's to say (the engine's
:class:`~gfd.benchmark.engine.World`); the writer only follows it.  :func:`save_partial` /
:func:`load_partial` keep each finished generator's outputs and record in the build's partial
folder (plain arrays and JSON, read without pickle), so a killed build loses no finished generator.
:class:`Job` is the unit of a build's plan: one generator instance to train and feed.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from gfd.benchmark.generators import GenConfig
from gfd.benchmark.zoo import TrainSettings
from gfd.layout import REAL


VARIANTS_DIR = "variants"


@dataclass(frozen=True)
class Job:
    """Train one generator instance on its own pool of a domain, then feed it new images of that domain."""

    cfg: GenConfig           # the instance's configuration (width already scaled)
    family: str              # the class (or variant) name
    world: str               # the domain it trains on and is fed from ("A", "B1", "F", ...)
    instance: int
    settings: TrainSettings  # the instance's training settings (length already scaled)
    feed_counts: tuple[int, ...]              # images fed, drawn from the domain: one per split of its world
    extra_feed: np.ndarray | None = None      # images fed besides (written to variants/<family>), if any

    @property
    def key(self) -> str:
        return f"{self.world}/{self.family}/{self.instance}"

    @property
    def cost(self) -> float:
        """Rough relative training cost, to start the slow jobs first."""
        return self.cfg.width ** 2 * self.settings.max_steps * (1.5 if self.cfg.block == "resid" else 1.0)



def write_pngs(folder: Path, images: np.ndarray, prefix: str = "") -> None:
    """Write ``images`` (n, H, W, 3) uint8 as ``folder/<prefix>00000.png ...``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        (folder / f"{prefix}{i:05d}.png").write_bytes(buf.getvalue())


@dataclass
class Writer:
    """Writes the image folders of one build and records counts and instance prefixes per folder.

    ``splits`` are every split the build writes, in the manifest's order; ``route(world)`` names the
    splits the images of domain ``world`` fill, in order (one image array per split)."""

    out: Path
    splits: tuple[str, ...]
    route: Callable[[str], tuple[str, ...]]
    counts: dict[str, dict[str, int]] = field(init=False)
    instances: dict[str, dict[str, list[dict]]] = field(init=False)

    def __post_init__(self) -> None:
        self.counts = {s: {} for s in self.splits}
        self.instances = {s: {} for s in self.splits}

    def add(self, split: str, cls: str, source: str, prefix: str, images: np.ndarray) -> None:
        write_pngs(self.out / split / cls, images, prefix)
        self.counts[split][cls] = self.counts[split].get(cls, 0) + len(images)
        self.instances[split].setdefault(cls, []).append({"source": source, "prefix": prefix, "count": len(images)})

    def real(self, world: str, images: np.ndarray, counts: Sequence[int]) -> None:
        """Real images of ``world``: the first ``counts[0]`` to its first split, the next to its second..."""
        start = 0
        for split, n in zip(self.route(world), counts):
            self.add(split, REAL, f"{world}/{REAL}", f"{world}-{REAL}_", images[start:start + n])
            start += n

    def variant(self, name: str, images: np.ndarray) -> None:
        write_pngs(self.out / VARIANTS_DIR / name, images)

    def generated(self, job: Job, outs: list[np.ndarray]) -> None:
        """What one generator made: its share of its family's class in each split of its world, and
        (the last output) what it made of ``extra_feed``."""
        if job.feed_counts:
            for split, arr in zip(self.route(job.world), outs):
                self.add(split, job.family, job.key, f"{job.world}-g{job.instance}_", arr)
        if job.extra_feed is not None:
            self.variant(job.family, outs[-1])

    def sorted_instances(self) -> dict:
        return {s: {c: sorted(v, key=lambda e: e["prefix"]) for c, v in sorted(per.items())}
                for s, per in self.instances.items()}


def partial_path(partial: Path, job: Job) -> Path:
    """Where one generator's outputs and record are kept in a build's partial folder."""
    return partial / (job.key.replace("/", "__") + ".npz")


def save_partial(partial: Path, job: Job, outs: list[np.ndarray], info: dict) -> None:
    """Save one finished generator's outputs and record atomically (write, then rename)."""
    partial.mkdir(parents=True, exist_ok=True)
    path = partial_path(partial, job)
    tmp = path.with_name(f".{path.stem}-{os.getpid()}.npz")
    np.savez(tmp, record=np.array(json.dumps(info)), **{f"out{i}": o for i, o in enumerate(outs)})
    os.replace(tmp, path)


def load_partial(partial: Path | None, job: Job) -> tuple[list[np.ndarray], dict] | None:
    """A finished generator's saved outputs and record, or None (not saved, or unreadable)."""
    if partial is None:
        return None
    path = partial_path(partial, job)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            info = json.loads(str(z["record"]))
            outs = [z[f"out{i}"] for i in range(len(z.files) - 1)]
    except Exception:  # noqa: BLE001 - a damaged file is retrained
        return None
    return outs, info
