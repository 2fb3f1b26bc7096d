"""Turn folders of real and GAN images into the dataset layouts ``gfd`` reads (Sec. 4.2 and 4.3).

Two commands, one engine::

    python -m gfd prepare attribution --out ROOT --source real=CELEBA,LSUN --source ProGAN=PG_CELEBA,PG_LSUN ...
    python -m gfd prepare attribution --out ROOT --manifest sources.json
    python -m gfd prepare detection   --out ROOT --train progan_train --val progan_val \\
                                      --test CNN_synth_testset --categories airplane

- :mod:`gfd.prepare.attribution` (Sec. 4.2, :func:`prepare_attribution`): per source (class),
  closed-world folders feed ``train`` / ``val`` / ``test_closed`` and open-world folders feed
  ``test_open``, written as :mod:`gfd.layout`'s ``ROOT/<split>/<source>/*``.
- :mod:`gfd.prepare.detection` (Sec. 4.3, :func:`prepare_detection`): ForenSynths
  ``{0_real,1_fake}`` folders -> ``ROOT/train|val/{real,fake}`` and ``ROOT/test/<set>/{real,fake}``.
- :mod:`gfd.prepare.builder`: what both share, i.e. listing source folders, the seeded selection,
  decoding / size / duplicate checks, the partial output folder renamed only when complete, and
  the report (``prepare_report.json``, ``prepare_files.csv``).

This file re-exports the public names, so ``from gfd.prepare import prepare_attribution`` works,
and holds the ``prepare`` command's parser and dispatcher (:func:`add_arguments`, :func:`run`).
"""
from __future__ import annotations

import argparse

from gfd.prepare import attribution, detection
from gfd.prepare.attribution import (PAPER_COUNTS, SourceSpec, load_manifest, parse_counts, parse_source_args,
                                     prepare_attribution)
from gfd.prepare.builder import (FILES_NAME, PARTIAL_MARKER, REPORT_NAME, Builder, Checked, Listing, PrepareError,
                                 check_overlaps, common_options, interleave, list_source, shuffled)
from gfd.prepare.detection import FAKE, FORENSYNTHS_LABELS, forensynths_groups, prepare_detection

__all__ = ["PAPER_COUNTS", "SourceSpec", "load_manifest", "parse_counts", "parse_source_args", "prepare_attribution",
           "FILES_NAME", "PARTIAL_MARKER", "REPORT_NAME", "Builder", "Checked", "Listing", "PrepareError",
           "check_overlaps", "interleave", "list_source", "shuffled", "FAKE", "FORENSYNTHS_LABELS",
           "forensynths_groups", "prepare_detection", "add_arguments", "run"]

_COMMANDS = {"attribution": attribution, "detection": detection}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``attribution`` and ``detection`` sub-commands to ``p`` (the ``prepare`` parser)."""
    sub = p.add_subparsers(dest="kind", required=True, metavar="{attribution,detection}")
    for module in _COMMANDS.values():
        module.add_parser(sub)


def run(args: argparse.Namespace) -> int:
    """Run a parsed ``prepare`` command (what ``python -m gfd prepare`` calls)."""
    _COMMANDS[args.kind].run(args, common_options(args))
    return 0
