"""How long does ``glcm_features`` take at the paper's scale (Sec. 4.5: 1000 fingerprints per GAN)?

10 sources x 1000 random 48 x 48 fingerprints (3 channels, values in [-1, 1]) -> (10000, 16).
Usage: ``python data_scripts/glcm_speed.py [--n-per-source 1000] [--sources 10] [--size 48]
[--levels 64] [--workers 1 2]``.  Target on a 2-core machine: <= 60 s.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from gfd.analysis.glcm import DEFAULT_LEVELS, glcm_features


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-per-source", type=int, default=1000)
    ap.add_argument("--sources", type=int, default=10)
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--levels", type=int, default=DEFAULT_LEVELS)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    n = args.n_per_source * args.sources
    rng = np.random.default_rng(0)
    f = rng.uniform(-1, 1, (n, 3, args.size, args.size)).astype(np.float32)
    for w in args.workers:
        t0 = time.perf_counter()
        feats = glcm_features(f, levels=args.levels, workers=w)
        dt = time.perf_counter() - t0
        print(f"glcm_features: {n} fingerprints ({args.sources} sources x {args.n_per_source}), "
              f"{args.size}x{args.size} px, {args.levels} levels, workers={w}: {dt:.1f} s "
              f"({1e3 * dt / n:.2f} ms/fingerprint) -> {feats.shape}")


if __name__ == "__main__":
    main()
