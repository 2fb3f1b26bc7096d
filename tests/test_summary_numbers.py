"""The conventions behind reported numbers, each checked on a case whose right answer is known by hand:
the spread of a paired difference is the sample standard deviation; ``open_inst`` averages the sources
of each world, then the worlds; GLCM quantisation spends exactly ``levels`` equal-width grey levels on
the value range."""
import math

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

from gfd import report
from gfd.analysis.glcm import to_gray_levels
from gfd.evaluate import flatten_metrics, instance_accuracy


# --- the paired difference's spread: sample std (ddof 1) and the t-interval on it ---------------------

def _table(rows):
    return {"rows": [{"method": m, "seeds": list(per), "per_seed": [{"open": v} for v in per.values()]}
                     for m, per in rows.items()]}


def test_paired_difference_spread_is_the_sample_std_and_its_interval_uses_it():
    a = {0: 0.61, 1: 0.53, 2: 0.75}
    b = {0: 0.60, 1: 0.50, 2: 0.70}                       # differences 0.01, 0.03, 0.05
    d = report.paired_difference(_table({"A": a, "B": b}), "A", "B")
    assert d["n"] == 3 and d["mean"] == pytest.approx(0.03)
    assert d["std"] == pytest.approx(0.02)                # sqrt(((-0.02)^2 + 0 + 0.02^2) / (3 - 1)); ddof 0: 0.0163
    half = scipy_stats.t.ppf(0.975, 2) * 0.02 / math.sqrt(3)
    assert d["ci"] == pytest.approx((0.03 - half, 0.03 + half))
    # one seed: no spread to speak of
    one = report.paired_difference(_table({"A": {0: 0.6}, "B": {0: 0.5}}), "A", "B")
    assert math.isnan(one["std"])


# --- open_inst: per world first, then over worlds -------------------------------------------------------

class _Named:
    """A dataset whose samples carry the benchmark's file names (world-instance_index.png)."""

    def __init__(self, paths, labels):
        self.samples = list(zip(paths, labels))


# world B1: ganA instance g0 (2 images, both right), ganA g1 (1 image, wrong), its real images (1, right);
# world B2: ganA g0 (4 images, 1 right).
PATHS = ["B1-g0_00000.png", "B1-g0_00001.png", "B1-g1_00000.png", "B1-real_00000.png",
         "B2-g0_00000.png", "B2-g0_00001.png", "B2-g0_00002.png", "B2-g0_00003.png"]
TRUE = [1, 1, 1, 0, 1, 1, 1, 1]
PRED = [1, 1, 0, 0, 1, 0, 0, 0]
WORLD_FIRST = ((1.0 + 0.0 + 1.0) / 3 + 0.25) / 2          # 0.458; per source 0.5625, per image 0.5


def test_open_inst_averages_the_sources_of_each_world_then_the_worlds():
    scores = torch.nn.functional.one_hot(torch.tensor(PRED), 2).float()
    out = instance_accuracy(_Named(PATHS, TRUE), torch.tensor(TRUE), scores, ["real", "ganA"])
    assert out["by_source"]["per_world"] == pytest.approx({"B1": 2 / 3, "B2": 0.25})
    assert out["acc_instances"] == pytest.approx(WORLD_FIRST)
    result = {"test_open": {"acc": 0.5, "world": "open", "per_class_acc": {}, **out}}
    assert flatten_metrics(result)["open_inst"] == pytest.approx(WORLD_FIRST)

    # the report's instance-level cells weigh the sources the same way: their weighted sum is open_inst
    table = {"rows": [{"method": "M", "seeds": [0], "per_seed": [flatten_metrics(result)],
                       "per_seed_sources": [out["by_source"]["per_source"]]}]}
    cells, weights = report.instance_cells(table, "M", "open_inst", [0])
    assert sum(weights.values()) == pytest.approx(1.0)
    assert sum(weights[c] * cells[c][0].mean() for c in cells) == pytest.approx(WORLD_FIRST)


# --- GLCM quantisation: exactly `levels` equal-width grey levels over the range ------------------------

@pytest.mark.parametrize("levels", [2, 7, 64, 256])
def test_glcm_quantisation_maps_the_range_onto_exactly_levels_equal_grey_levels(levels):
    per_level = 6
    ramp = np.linspace(-0.3, 0.7, levels * per_level, endpoint=False) + 0.5 / (levels * per_level)
    f = np.repeat(ramp.reshape(1, 1, -1), 3, axis=0)          # (3, 1, N): a ramp, all channels alike
    g = to_gray_levels(f, levels=levels)[0]
    assert g.min() == 0 and g.max() == levels - 1
    counts = np.bincount(g, minlength=levels)
    assert len(counts) == levels and (counts == per_level).all(), counts   # every level, equally wide
    assert (np.diff(g.astype(int)) >= 0).all()                              # in order

    # the fixed scale: [-s, s] onto the same levels, values outside clipped to the end levels
    s = 2.0
    ramp = np.linspace(-s, s, levels * per_level, endpoint=False) + s / (levels * per_level)
    g = to_gray_levels(np.repeat(ramp.reshape(1, 1, -1), 3, axis=0), levels=levels, scale=s)[0]
    assert (np.bincount(g, minlength=levels) == per_level).all()
    outside = to_gray_levels(np.array([[[-5.0, -s, s, 5.0]]] * 3), levels=levels, scale=s)[0]
    assert outside.tolist() == [0, 0, levels - 1, levels - 1]
