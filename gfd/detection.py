"""Cross-generator binary fake detection (Sec. 4.3, Table 3, Fig. 3(b)), on our data.

The paper trains real vs. ONE generator (ProGAN-airplane vs. LSUN-airplane, ForenSynths) and tests
on 13 other generators; it reports the accuracy on every test set and their average (Table 3).
Here the same protocol runs on the built-in benchmark (:mod:`gfd.benchmark`) or on a prepared
ForenSynths folder (``python -m gfd prepare detection``), through one folder layout, the one
:func:`gfd.prepare.prepare_detection` writes::

    ROOT/train/{real,fake}/*.png        real vs. the training family
    ROOT/val/{real,fake}/*.png          the same, for the training protocol's selection
    ROOT/test/<set>/{real,fake}/*.png   one binary test set per generator (family, domain, variant)
    ROOT/detection.json                 (benchmark views) the training family, the test sets in order

:func:`detection_view` writes that layout for a built benchmark, from hard links (class folders
hold regular files only, :mod:`gfd.layout`'s rule; a hard link is one), file names kept, so the
per-instance accuracies of :func:`gfd.evaluate.instance_accuracy` still come out.  Its test sets,
for training family F (default ``progan``, the role of ProGAN) in the closed domain A:

``A-F``                the seen generators' held-out images (the paper's first column, ProGAN)
``A-<other family>``   every other family of the closed domain (StyleGAN, BigGAN, ... in the paper)
``B1-<family>``        every family in each other content domain (new generator instances trained
``B2-<family>``        on other content): against the real images of that domain
``variant-<name>``     the factor-analysis variants (StyleGAN2-like configurations) against the
                       real images they were fed

Every test set is real vs. fake (about balanced); the metric is accuracy over its images.
:func:`load_detection` reads the layout into a :class:`DetectionBundle` (two classes, ``real``
first) with the loaders of :mod:`gfd.data`; a config with ``task="detection"`` gets it from
:func:`gfd.data.load_data` (its ``data_root``, else the view of the built-in benchmark, see
:func:`detection_root`).  :func:`evaluate_detection` measures a model on ``val`` and every test
set, and :func:`detection_accuracies` gives ``{test set: acc, "Avg": mean over test sets}`` -- the average
over *all* test sets, the seen one included, as the paper's last column.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from gfd.data import DetectionBundle, detection_root, load_detection  # noqa: F401 (the detection data, re-exported)
from gfd.detection_layout import (CLASSES, FAKE, TEST_DIR, TRAIN_FAMILY, VIEW_FILE, VIEW_VERSION,  # noqa: F401
                                  detection_sets, detection_view, read_view, test_set_names, view_name)
from gfd.layout import VAL

AVERAGE = "Avg"
"""The metric name of the average over test sets (the paper's last column)."""


# --------------------------------------------------------------------------------------------------
# measuring
# --------------------------------------------------------------------------------------------------

def evaluate_detection(model: Callable[[torch.Tensor], torch.Tensor], bundle: DetectionBundle,
                       device: torch.device | str | None = None) -> dict[str, dict[str, Any]]:
    """:func:`gfd.evaluate.evaluate_model` on ``val`` and every test set; each test set's result is
    named (``"world"``) by the test set, so tables get one metric per test set."""
    from gfd.evaluate import evaluate_model
    results = evaluate_model(model, bundle, splits=[VAL, *bundle.test_splits], device=device)
    for split in bundle.test_splits:
        results[split]["world"] = split.split("/", 1)[1]
    return results


def detection_accuracies(results: dict[str, dict[str, Any]],
                         test_sets: Sequence[str] | None = None) -> dict[str, float]:
    """``{test set: accuracy, ..., "Avg": mean over the test sets}`` from :func:`evaluate_detection`'s
    results (``test_sets`` picks and orders them; default: every ``test/<set>`` split, in order)."""
    names = list(test_sets) if test_sets is not None else \
        [k.split("/", 1)[1] for k in results if k.startswith(f"{TEST_DIR}/")]
    if not names:
        raise ValueError("no test set in these results")
    accs = {n: float(results[f"{TEST_DIR}/{n}"]["acc"]) for n in names}
    return accs | {AVERAGE: sum(accs.values()) / len(accs)}
