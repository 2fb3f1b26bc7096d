#!/usr/bin/env python
"""Build the offline mini benchmark; a thin wrapper over ``python -m gfd benchmark``.

    python data_scripts/make_mini_benchmark.py --size quick                 # build (or find) the quick size
    python data_scripts/make_mini_benchmark.py --calibrate --preset course  # + the direct classifier, 3 seeds
    python data_scripts/make_mini_benchmark.py --figures /tmp               # sample grids and residual spectra
"""
import sys

from gfd.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", *sys.argv[1:]]))
