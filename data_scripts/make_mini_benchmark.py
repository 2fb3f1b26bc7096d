#!/usr/bin/env python
"""Build the offline mini benchmark ("GAN zoo"), and optionally calibrate it or draw its figures.

    python data_scripts/make_mini_benchmark.py --size quick            # build (or find) the quick size
    python data_scripts/make_mini_benchmark.py --calibrate             # default size + G-only calibration
    python data_scripts/make_mini_benchmark.py --figures /tmp          # sample grids and residual spectra

The benchmark is cached under ``data/`` of the repository (``--out`` picks another parent folder);
the folder it prints is what ``gfd.benchmark.load_mini_benchmark()`` returns in the notebooks.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from gfd.benchmark import SIZES, load_mini_benchmark, read_manifest


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="parent folder of the cache (default: data/ of the repository)")
    ap.add_argument("--size", choices=sorted(SIZES), default="default", help="benchmark size (default: default)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the build (default: 0)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    ap.add_argument("--calibrate", action="store_true",
                    help="train the direct classifier (G_enc + H) on the train split and print closed- and "
                         "open-world accuracy, mean +- std over --calib-seeds")
    ap.add_argument("--calib-seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the calibration")
    ap.add_argument("--calib-steps", type=int, default=None, help="training steps per seed (default: fixed recipe)")
    ap.add_argument("--device", default="cpu", help="device of the calibration (default: cpu)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads for the calibration")
    ap.add_argument("--figures", default=None, metavar="DIR",
                    help="save a sample grid and residual spectra per world (and the variants) as PNG in DIR")
    return ap.parse_args(argv)


def save_figures(root: Path, folder: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from gfd.plots import plot_residual_spectra, plot_sample_grid

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for split, tag in (("test_closed", "closed"), ("test_open", "open"), ("variants", "variants")):
        for fn, kind in ((plot_sample_grid, "grid"), (plot_residual_spectra, "spectra")):
            fig = fn(root, split)
            path = folder / f"bench_{kind}_{tag}.png"
            fig.savefig(path, dpi=100)
            plt.close(fig)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    root = load_mini_benchmark(args.size, root=args.out, seed=args.seed, progress=not args.no_progress)
    m = read_manifest(root)
    print(f"benchmark: {root}")
    print(f"classes: {m['classes']}; per class: " + ", ".join(
        f"{s} {next(iter(c.values()))}" for s, c in m["counts"].items()))
    print(f"built in {m['build']['wall_seconds']} s wall / {m['build']['cpu_seconds']} s CPU "
          f"(this call: {time.perf_counter() - t0:.1f} s)")
    if args.figures:
        for path in save_figures(root, Path(args.figures)):
            print(f"figure: {path}")
    if args.calibrate:
        import torch
        from gfd.benchmark.calibrate import CALIBRATION_STEPS, calibrate, format_calibration

        if args.threads:
            torch.set_num_threads(args.threads)
        result = calibrate(root, seeds=tuple(args.calib_seeds), steps=args.calib_steps or CALIBRATION_STEPS,
                           device=args.device, progress=not args.no_progress)
        print(format_calibration(result))
        print("json: " + json.dumps({k: v for k, v in result.items() if k != "runs"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
