"""``python -m gfd speed``: speed and memory of one GFD-Net training iteration, and with ``--data``
the share of an iteration spent waiting on data.

For each preset (``course``; on a GPU also ``gpu`` and ``paper``; or those given with ``--preset``)
it times a **G-only** iteration (G_enc + H trained with L_z, Table 4's baseline) and a **full GFD**
iteration (G step with D, C and the VGG-16 loss, then the D/C step), on synthetic random batches of
the preset's size, so no dataset is needed.  Warm-up iterations are excluded.

Each measurement runs in a fresh subprocess so that peak memory is its own:

* on a GPU, ``torch.cuda.max_memory_allocated`` (tensors only, not the CUDA context);
* on the CPU, the peak resident set size of the process (``getrusage`` ``ru_maxrss``), which
  includes Python, torch and the model weights (about 0.3-0.5 GiB before any batch).

The last column is the ratio full / G-only of the time per iteration.

**Data** (``--data``, :func:`measure_loading`).  Batches are drawn from the preset's real training
streams -- the train loader of ``gfd.load_data(cfg)`` through the trainer's own
:func:`gfd.stepper.training_streams` (G's batch, and the batch of real images that carry the
fingerprints unless G-only), with the workers and pinned memory the config gets
(:func:`gfd.data.get_loaders`) -- and timed.  The share of an iteration spent waiting on data is then

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
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

MODES = ("G-only", "full GFD")


def default_presets() -> list[str]:
    """``course``, and on a GPU also ``gpu`` and ``paper``."""
    return ["course", "gpu", "paper"] if torch.cuda.is_available() else ["course"]


def measure(preset: str, mode: str, steps: int, warmup: int, batch_size: int | None = None,
            device: str = "auto", threads: int | None = None, overrides: list[str] | None = None) -> dict:
    """Time ``steps`` training iterations of ``mode`` at ``preset`` in this process."""
    from gfd.config import get_config
    from gfd.train import Trainer

    if threads:
        torch.set_num_threads(threads)

    changes = dict(classifier_weights="random", perceptual_weights="random", device=device)
    if mode == "G-only":
        changes |= dict(use_D=False, use_C=False, use_percept=False)
    if batch_size:
        changes["batch_size"] = batch_size
    cfg = get_config(preset, overrides, **changes)
    trainer = Trainer(cfg, num_classes=5)
    dev = trainer.device
    gen = torch.Generator().manual_seed(0)
    b, s = cfg.batch_size, cfg.crop

    def batch():
        x = torch.rand(b, 3, s, s, generator=gen) * 2 - 1
        y = torch.randint(0, 5, (b,), generator=gen)
        x_real = torch.rand(b, 3, s, s, generator=gen) * 2 - 1
        return trainer._to_device(x), trainer._to_device(y), trainer._to_device(x_real)

    batches = [batch() for _ in range(2)]

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for i in range(warmup):
        trainer.train_step(*batches[i % 2])
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    with trainer.deferred_checks():      # as in the training loop: no host sync per step
        for i in range(steps):
            trainer.train_step(*batches[i % 2])
    sync()
    dt = (time.perf_counter() - t0) / steps
    if dev.type == "cuda":
        peak, what = torch.cuda.max_memory_allocated() / 2**20, "cuda max allocated"
    else:
        peak, what = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process peak RSS"
    return {"preset": preset, "mode": mode, "device": str(dev), "amp": trainer.meta["amp"],
            "batch": b, "crop": s, "s_per_step": dt, "img_per_s": b / dt, "peak_mib": peak,
            "memory": what, "threads": torch.get_num_threads()}


def run_isolated(preset: str, mode: str, steps: int, warmup: int, batch_size: int | None,
                 device: str, threads: int | None = None, overrides: list[str] | None = None) -> dict:
    """:func:`measure` in a fresh Python process (own peak memory); returns its result."""
    cmd = [sys.executable, "-m", "gfd", "speed", "--worker", mode, "--preset", preset,
           "--steps", str(steps), "--warmup", str(warmup), "--device", device]
    if batch_size:
        cmd += ["--batch-size", str(batch_size)]
    if threads:
        cmd += ["--threads", str(threads)]
    for item in overrides or []:
        cmd += ["--set", item]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark of {preset}/{mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def format_table(rows: list[dict]) -> str:
    """One line per step row: img/s, peak memory and the full / G-only ratio of its preset."""
    lines = [f"{'preset':8} {'mode':9} {'device':7} {'amp':9} {'batch':>5} {'crop':>4} "
             f"{'s/step':>8} {'img/s':>8} {'peak MiB':>9}  full/G-only"]
    base = {r["preset"]: r["s_per_step"] for r in rows if r["mode"] == "G-only"}
    for r in rows:
        ratio = r["s_per_step"] / base[r["preset"]] if r["mode"] != "G-only" and r["preset"] in base else None
        lines.append(f"{r['preset']:8} {r['mode']:9} {r['device']:7} {r['amp']:9} {r['batch']:>5} "
                     f"{r['crop']:>4} {r['s_per_step']:8.3f} {r['img_per_s']:8.1f} {r['peak_mib']:9.0f}  "
                     + (f"{ratio:.2f}x" if ratio else ""))
    if rows:
        lines.append(f"memory = {rows[0]['memory']}; {rows[0]['threads']} CPU threads")
    return "\n".join(lines)


def measure_loading(preset: str, batches: int = 20, warmup: int = 2, batch_size: int | None = None,
                    device: str = "auto", threads: int | None = None, overrides: list[str] | None = None) -> dict:
    """Seconds per batch of the trainer's two training streams of ``preset``'s data (``x_real``'s
    ``None`` when the preset is G-only), after ``warmup`` untimed batches (worker start-up)."""
    from gfd.config import get_config
    from gfd.data import load_data
    from gfd.layout import TRAIN
    from gfd.stepper import training_streams

    if threads:
        torch.set_num_threads(threads)
    changes = {"device": device} | ({"batch_size": batch_size} if batch_size else {})
    cfg = get_config(preset, overrides, **changes)
    bundle = load_data(cfg, progress=False, splits=[TRAIN])
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
    """The step rows of :func:`speed`, each with the loading time of an iteration of its mode
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
    """:func:`format_table`, then one line per row on data loading (rows of :func:`with_loading`)."""
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


def speed(presets: list[str] | None = None, steps: int = 10, warmup: int = 3, batch_size: int | None = None,
          device: str = "auto", threads: int | None = None, overrides: list[str] | None = None,
          log=None, data: bool = False, batches: int = 20) -> list[dict]:
    """Time a G-only and a full GFD iteration for every preset (default :func:`default_presets`),
    each in its own process; return the rows for :func:`format_table`.  With ``data``, also time
    ``batches`` batches of each preset's training streams (:func:`measure_loading`) and return the
    rows of :func:`with_loading`, for :func:`format_report`."""
    presets = presets or default_presets()
    rows = []
    for preset in presets:
        for mode in MODES:
            rows.append(run_isolated(preset, mode, steps, warmup, batch_size, device, threads, overrides))
            if log:
                log(f"  {preset} / {mode}: {rows[-1]['img_per_s']:.1f} img/s")
    if not data:
        return rows
    loading = []
    for preset in presets:
        loading.append(measure_loading(preset, batches, batch_size=batch_size, device=device, threads=threads,
                                       overrides=overrides))
        if log:
            per_batch = ", ".join(f"{k} {v:.4f} s" for k, v in loading[-1]["s_per_batch"].items())
            log(f"  {preset} / data, per batch: {per_batch}")
    return with_loading(rows, loading)


# --------------------------------------------------------------------------------------------------
# command line: python -m gfd speed
# --------------------------------------------------------------------------------------------------

def add_arguments(s: argparse.ArgumentParser) -> None:
    """The options of ``python -m gfd speed`` (``s`` is its parser)."""
    from gfd.config import PRESETS

    s.add_argument("--preset", action="append", choices=sorted(PRESETS),
                   help="preset(s) to time (default: course; on a GPU also gpu and paper)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    s.add_argument("--steps", type=int, default=10, help="timed iterations per measurement")
    s.add_argument("--warmup", type=int, default=3, help="untimed iterations first")
    s.add_argument("--data", action="store_true",
                   help="also time the preset's training data streams and report the share of an iteration "
                        "spent waiting on data (needs the preset's data: data_root, or the built-in benchmark)")
    s.add_argument("--batches", type=int, default=20, help="with --data: timed batches per data stream")
    s.add_argument("--batch-size", type=int, default=None, help="override the preset's batch size")
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    s.add_argument("--json", default=None, help="also write the results to this JSON file")
    s.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Run a parsed ``speed`` command (what ``python -m gfd speed`` calls).  ``--worker`` (internal)
    makes one measurement in this process and prints it as JSON: :func:`run_isolated` starts one
    process per measurement that way."""
    if args.worker:
        preset = (args.preset or ["course"])[0]
        print(json.dumps(measure(preset, args.worker, args.steps, args.warmup, args.batch_size, args.device,
                                 args.threads, args.set)))
        return 0
    rows = speed(args.preset, args.steps, args.warmup, args.batch_size, args.device, args.threads, args.set,
                 log=lambda msg: print(msg, file=sys.stderr), data=args.data, batches=args.batches)
    print(format_report(rows) if args.data else format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0
