"""``python -m gfd.bench``: img/s, peak memory and the share of time spent waiting on data (issue 16).

The training step is timed by :mod:`gfd.speed`, reused as it is: a G-only and a full GFD iteration on
synthetic batches, each in its own process, so img/s and peak memory are the step's alone.  This
module adds the data side.  It draws batches from the preset's real training streams -- the train
loader of ``gfd.load_data(cfg)`` through the trainer's own :func:`gfd.train.training_streams` (G's
batch, and the batch of real images that carry the fingerprints unless G-only), with the workers and
pinned memory the config gets (:func:`gfd.data.get_loaders`) -- and times them.  The share of an
iteration spent waiting on data is then

    load / (load + step)        (seconds per iteration, each)

which is what the loop waits when its batches are made in its own process (``num_workers=0``, the CPU
presets).  With worker processes the batches are made while the step runs, and the loop waits about
``max(0, load - step)``: the share is then an upper bound, and the report says whether the workers
keep up (load below step).  The copy to the device is in neither number (the step times batches
already there; the loader pins them on CUDA, so the copy overlaps the step).

Numbers that depend on the machine are printed, never asserted: the tests check the arithmetic and
the report on made-up rows.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from gfd.speed import MODES, format_table, speed


def measure_loading(preset: str, batches: int = 20, warmup: int = 2, batch_size: int | None = None,
                    device: str = "auto", threads: int | None = None, overrides: list[str] | None = None) -> dict:
    """Seconds per batch of the trainer's two training streams of ``preset``'s data (``x_real``'s
    ``None`` when the preset is G-only), after ``warmup`` untimed batches (worker start-up)."""
    from gfd.config import get_config
    from gfd.data import load_data
    from gfd.train import training_streams

    if threads:
        torch.set_num_threads(threads)
    changes = {"device": device} | ({"batch_size": batch_size} if batch_size else {})
    cfg = get_config(preset, overrides, **changes)
    bundle = load_data(cfg, progress=False, splits=["train"])
    streams = dict(zip(("x", "x_real"), training_streams(cfg, bundle)))
    seconds = {name: 0.0 for name, s in streams.items() if s is not None}
    for i in range(warmup + batches):
        for name in seconds:
            t0 = time.perf_counter()
            next(streams[name])
            if i >= warmup:
                seconds[name] += time.perf_counter() - t0
    kwargs = streams["x"].loader_kwargs
    return {"preset": preset, "data": bundle.identity, "batch": cfg.batch_size, "crop": cfg.crop,
            "num_workers": kwargs["num_workers"], "pin_memory": kwargs["pin_memory"], "batches": batches,
            "s_per_batch": {name: t / batches for name, t in seconds.items()}}


def wait_share(load_s: float, step_s: float) -> float:
    """The share of an iteration spent loading, when loading and the step take turns."""
    return load_s / (load_s + step_s)


def with_loading(rows: list[dict], loading: list[dict]) -> list[dict]:
    """The step rows of :func:`gfd.speed.speed`, each with the loading time of an iteration of its mode
    (``data_s``: G's batch, plus x_real's for the full step), :func:`wait_share` and ``keeps_up``
    (loading faster than the step, what workers need to hide it)."""
    by_preset = {r["preset"]: r for r in loading}
    out = []
    for row in rows:
        load = by_preset.get(row["preset"])
        if load is None:
            out.append(dict(row))
            continue
        names = ("x",) if row["mode"] == MODES[0] else ("x", "x_real")     # MODES[0]: G-only, no x_real
        data_s = sum(load["s_per_batch"].get(n, 0.0) for n in names)
        out.append(row | {"data_s": data_s, "data_share": wait_share(data_s, row["s_per_step"]),
                          "keeps_up": data_s < row["s_per_step"], "num_workers": load["num_workers"],
                          "pin_memory": load["pin_memory"]})
    return out


def format_report(rows: list[dict]) -> str:
    """:func:`gfd.speed.format_table`, then one line per row on data loading (rows of :func:`with_loading`)."""
    lines = [format_table(rows), "",
             f"{'preset':8} {'mode':9} {'workers':>7} {'pinned':>6} {'data s/it':>9} {'step s/it':>9} "
             f"{'waiting on data':>15}  workers keep up"]
    for r in rows:
        if "data_s" not in r:
            continue
        keep = ("yes" if r["keeps_up"] else "no") if r["num_workers"] else "(no workers: the loop loads)"
        lines.append(f"{r['preset']:8} {r['mode']:9} {r['num_workers']:>7} {str(r['pin_memory']):>6} "
                     f"{r['data_s']:9.4f} {r['s_per_step']:9.4f} {100 * r['data_share']:14.1f}%  {keep}")
    lines.append("waiting on data = data / (data + step); an upper bound with workers, which load while the "
                 "step runs")
    return "\n".join(lines)


def bench(presets: list[str] | None = None, steps: int = 10, warmup: int = 3, batches: int = 20,
          batch_size: int | None = None, device: str = "auto", threads: int | None = None,
          overrides: list[str] | None = None, log=None) -> list[dict]:
    """:func:`gfd.speed.speed` and :func:`measure_loading` for every preset (default: ``course``; on
    a GPU also ``gpu`` and ``paper``); the rows of :func:`format_report`."""
    presets = presets or (["course", "gpu", "paper"] if torch.cuda.is_available() else ["course"])
    rows = speed(presets, steps, warmup, batch_size, device, threads, overrides, log=log)
    loading = []
    for preset in presets:
        loading.append(measure_loading(preset, batches, batch_size=batch_size, device=device, threads=threads,
                                       overrides=overrides))
        if log:
            per_batch = ", ".join(f"{k} {v:.4f} s" for k, v in loading[-1]["s_per_batch"].items())
            log(f"  {preset} / data, per batch: {per_batch}")
    return with_loading(rows, loading)


def main(argv: list[str] | None = None) -> int:
    from gfd.config import PRESETS

    p = argparse.ArgumentParser(prog="python -m gfd.bench", description=__doc__.split("\n")[0])
    p.add_argument("--preset", action="append", choices=sorted(PRESETS),
                   help="preset(s) to measure (default: course; on a GPU also gpu and paper)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--steps", type=int, default=10, help="timed training iterations per mode")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations first")
    p.add_argument("--batches", type=int, default=20, help="timed batches per data stream")
    p.add_argument("--batch-size", type=int, default=None, help="override the preset's batch size")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    rows = bench(args.preset, args.steps, args.warmup, args.batches, args.batch_size, args.device, args.threads,
                 args.set, log=lambda msg: print(msg, file=sys.stderr))
    print(format_report(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
