"""``python -m gfd speed``: speed and memory of one GFD-Net training iteration.

For each preset (``course``; ``paper`` too when a GPU is present; or those given with ``--preset``)
it times a **G-only** iteration (G_enc + H trained with L_z, Table 4's baseline) and a **full GFD**
iteration (G step with D, C and the VGG-16 loss, then the D/C step), on synthetic random batches of
the preset's size, so no dataset is needed.  Warm-up iterations are excluded.

Each measurement runs in a fresh subprocess so that peak memory is its own:

* on a GPU, ``torch.cuda.max_memory_allocated`` (tensors only, not the CUDA context);
* on the CPU, the peak resident set size of the process (``getrusage`` ``ru_maxrss``), which
  includes Python, torch and the model weights (about 0.3-0.5 GiB before any batch).

The last column is the ratio full / G-only of the time per iteration.  ``python -m gfd.bench``
(:mod:`gfd.bench`) prints this table too, with the share of time a training loop waits on data.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import torch

MODES = ("G-only", "full GFD")


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


def speed(presets: list[str] | None = None, steps: int = 10, warmup: int = 3, batch_size: int | None = None,
          device: str = "auto", threads: int | None = None, overrides: list[str] | None = None,
          log=None) -> list[dict]:
    """Time a G-only and a full GFD iteration for every preset (default: course, and paper on a GPU),
    each in its own process; return the rows for :func:`format_table`."""
    presets = presets or (["course", "paper"] if torch.cuda.is_available() else ["course"])
    rows = []
    for preset in presets:
        for mode in MODES:
            rows.append(run_isolated(preset, mode, steps, warmup, batch_size, device, threads, overrides))
            if log:
                log(f"  {preset} / {mode}: {rows[-1]['img_per_s']:.1f} img/s")
    return rows
