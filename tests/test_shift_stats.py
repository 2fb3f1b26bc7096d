"""The classifier-free shift statistics (gfd.analysis.shift_stats) on hand-made inputs: identical sets
give 0, a known shift gives a known ordering."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from gfd.analysis import shift_stats as SS


def images(n=24, size=32, seed=0):
    """Smooth random colour images: Gaussian-blurred noise plus a little pixel noise, uint8."""
    rng = np.random.default_rng(seed)
    x = ndimage.gaussian_filter(rng.normal(128, 60, (n, size, size, 3)), sigma=(0, 1.5, 1.5, 0))
    return np.clip(x + rng.normal(0, 3, x.shape), 0, 255).astype(np.uint8)


def blur(x, sigma):
    return np.clip(np.rint(ndimage.gaussian_filter(x.astype(float), sigma=(0, sigma, sigma, 0))), 0, 255).astype(np.uint8)


def checker(x, amp):
    """Add a period-2 checkerboard (an up-sampling artifact) of amplitude ``amp`` levels."""
    yy, xx = np.mgrid[0:x.shape[1], 0:x.shape[2]]
    return np.clip(x + amp * ((yy + xx) % 2 * 2 - 1)[None, :, :, None], 0, 255).astype(np.uint8)


def test_identical_sets_give_zero():
    a = images()
    assert SS.colour_distance(a, a) == 0.0
    s = SS.set_shift(a[:12], a)                       # the world is the reference's first half itself
    assert s["spectral_shift"] == 0.0 and s["colour_shift"] == 0.0 and s["n"] == 12
    assert s["spectral_split_half"] > 0 and s["spectral_ratio"] == 0.0
    fam = SS.family_shifts({"real": a, "f": a, "g": checker(a, 20)}, {"real": a, "f": a, "g": checker(a, 20)})
    assert fam["per_family"]["f"]["shift"] == 0.0 and fam["per_family"]["g"]["shift"] == 0.0
    assert fam["per_family"]["f"]["between"] > 0


def test_histogram_is_normalised_and_disjoint_colours_are_one_apart():
    a = np.zeros((2, 4, 4, 3), np.uint8)
    b = np.full((2, 4, 4, 3), 255, np.uint8)
    assert SS.colour_histogram(images()).sum() == pytest.approx(1.0)
    assert SS.colour_distance(a, b) == 1.0


def test_stronger_blur_is_a_larger_spectral_shift():
    ref, world = images(48, seed=0), images(24, seed=1)
    d = [SS.set_shift(blur(world, s) if s else world, ref)["spectral_shift"] for s in (0, 0.6, 1.2)]
    assert d[0] < d[1] < d[2]
    assert SS.set_shift(blur(world, 1.2), ref)["spectral_ratio"] > 3


def test_a_colour_offset_moves_colour_not_much_spectrum():
    ref, world = images(48, seed=0), images(24, seed=1)
    warm = lambda x, k: np.clip(x.astype(int) + np.array([k, 0, -k]), 0, 255).astype(np.uint8)  # noqa: E731
    c = [SS.set_shift(warm(world, k), ref)["colour_shift"] for k in (0, 30, 80)]
    assert c[0] < c[1] < c[2]
    s = SS.set_shift(warm(world, 30), ref)
    assert s["colour_shift"] > 3 * s["colour_split_half"]


def test_family_shift_against_between_families():
    """A family that keeps its artifact in the world stays close to itself and far from the other
    family (small ratio); one whose artifact weakens moves further (larger ratio)."""
    base = images(48, seed=0)
    ref = {"real": base, "f": checker(base, 12), "g": blur(base, 1.0)}
    w = images(24, seed=1)
    same = SS.family_shifts({"real": w, "f": checker(w, 12), "g": blur(w, 1.0)}, ref)
    moved = SS.family_shifts({"real": w, "f": checker(w, 4), "g": blur(w, 1.0)}, ref)
    assert same["per_family"]["f"]["ratio"] < moved["per_family"]["f"]["ratio"]
    assert same["per_family"]["f"]["ratio"] < 0.5                        # same family: close, far from g
    assert moved["per_family"]["g"]["shift"] == same["per_family"]["g"]["shift"]


def test_shift_stats_and_markdown():
    a = images(48, seed=0)
    w = images(24, seed=1)
    stats = SS.shift_stats({"real": w, "f": checker(w, 10), "g": w}, {"real": a, "f": checker(a, 10), "g": a})
    assert set(stats) == {"real", "families"}
    table = {"size": "tiny", "seed": 0, "reference": "ref",
             "worlds": {"x": {"stats": stats, "build": {"wall_seconds": 1.0}}}}
    md = SS.format_markdown(table)
    assert "| x |" in md and "shift / between" in md
