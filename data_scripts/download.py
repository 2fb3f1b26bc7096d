#!/usr/bin/env python
"""Fetch public data sets: resumable, sha256-checked downloads and safe zip / tar extraction; a thin
wrapper over ``python -m gfd download``.

    python data_scripts/download.py list                       # the paper's sources (URLs not tested here)
    python data_scripts/download.py fetch forensynths-test --out data/downloads --extract
    python data_scripts/download.py fetch URL --sha256 HEX --out data/downloads
    python data_scripts/download.py extract ARCHIVE --out FOLDER
"""
import sys

from gfd.cli import main

if __name__ == "__main__":
    sys.exit(main(["download", *sys.argv[1:]]))
