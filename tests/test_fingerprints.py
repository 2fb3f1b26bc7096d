"""Fingerprint analysis (Sec. 4.5, Figs. 4 and 6): GLCM correlation, distinctness, extraction, summaries."""
import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from conftest import warmed_generator

from gfd.analysis.fingerprints import (cosine_similarity_within_between, extract_fingerprints,
                                       log_spectrum, mean_fingerprint_by_source)
from gfd.analysis.glcm import (ANGLES, DISTANCES, feature_names, glcm_correlation, glcm_distinctness,
                               glcm_features, glcm_stats, to_gray_levels)

SIZE = 48


def stripes(period: int, size: int = SIZE, vertical: bool = True) -> np.ndarray:
    """Binary square-wave stripes (levels 0/1) of ``period`` px; vertical stripes vary along x."""
    wave = ((np.arange(size) % period) >= period // 2).astype(np.uint8)
    img = np.tile(wave, (size, 1))
    return img if vertical else np.ascontiguousarray(img.T)


def pearson_reference(gray: np.ndarray, distances=DISTANCES, angles=ANGLES) -> np.ndarray:
    """Correlation of each pixel with its neighbour at (round(d sin a), round(d cos a)), by hand."""
    h, w = gray.shape
    g = gray.astype(np.float64)
    out = np.empty((len(distances), len(angles)))
    for i, d in enumerate(distances):
        for j, a in enumerate(angles):
            dr, dc = round(math.sin(a) * d), round(math.cos(a) * d)
            r0, r1 = max(0, -dr), min(h, h - dr)
            c0, c1 = max(0, -dc), min(w, w - dc)
            ref = g[r0:r1, c0:c1]
            nb = g[r0 + dr:r1 + dr, c0 + dc:c1 + dc]
            out[i, j] = np.corrcoef(ref.ravel(), nb.ravel())[0, 1]
    return out


def smooth_noise(n: int, seed: int, kx: int = 3, ky: int = 3, size: int = SIZE) -> np.ndarray:
    """``n`` random fingerprints (n, 3, size, size): Gaussian noise box-blurred over ky x kx."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, size + ky - 1, size + kx - 1, generator=g)
    return torch.nn.functional.avg_pool2d(x, (ky, kx), stride=1).numpy()


# ------------------------------------------------------------------------------------------- GLCM

def test_vertical_stripes_exact_correlations():
    img = stripes(4)  # period 4: a shift of 2 swaps the two levels, a shift of 4k repeats them
    c = glcm_correlation(img, levels=2)
    assert c.shape == (4, 4)
    np.testing.assert_allclose(c[:, 0], [-1, 1, 1, 1], atol=1e-6)  # horizontal offsets d = 2, 4, 8, 16
    np.testing.assert_allclose(c[:, 2], [1, 1, 1, 1], atol=1e-6)   # vertical offsets see equal pixels


def test_horizontal_stripes_swap_the_directions():
    c = glcm_correlation(stripes(4, vertical=False), levels=2)
    np.testing.assert_allclose(c[:, 2], [-1, 1, 1, 1], atol=1e-6)
    np.testing.assert_allclose(c[:, 0], [1, 1, 1, 1], atol=1e-6)
    c8 = glcm_correlation(stripes(8, vertical=False), levels=2)  # period 8: d = 4 is half a period
    np.testing.assert_allclose(c8[1:, 2], [-1, 1, 1], atol=1e-6)  # (d = 2 is near 0, not exact)


def test_matches_pearson_of_shifted_pixels_on_random_images():
    rng = np.random.default_rng(0)
    for levels in (8, 64):
        gray = rng.integers(0, levels, (40, 52), dtype=np.uint8)
        np.testing.assert_allclose(glcm_correlation(gray, levels=levels), pearson_reference(gray), atol=1e-9)


def test_flattening_is_distance_major():
    f = np.repeat(stripes(4)[None].astype(np.float32) * 2 - 1, 3, axis=0)[None]  # (1, 3, H, W)
    feats = glcm_features(f)
    assert feats.shape == (1, 16)
    np.testing.assert_allclose(feats[0, [0, 4, 8, 12]], [-1, 1, 1, 1], atol=1e-6)  # angle 0, d = 2..16
    np.testing.assert_allclose(feats[0].reshape(4, 4), glcm_correlation(stripes(4), levels=2), atol=1e-6)
    names = feature_names()
    assert names[:5] == ["d=2,0", "d=2,pi/4", "d=2,pi/2", "d=2,3pi/4", "d=4,0"]


def test_too_small_image_raises_with_the_size():
    with pytest.raises(ValueError, match="16x16"):
        glcm_correlation(np.zeros((16, 16), np.uint8))
    with pytest.raises(ValueError, match="30x12"):
        glcm_features(np.zeros((2, 3, 30, 12), np.float32))
    glcm_correlation(np.zeros((17, 17), np.uint8))  # 17 > 16 is enough


def test_constant_image_gives_ones():
    f = np.full((3, SIZE, SIZE), 0.25, np.float32)
    gray = to_gray_levels(f)
    assert gray.dtype == np.uint8 and gray.max() == 0
    np.testing.assert_array_equal(glcm_correlation(gray), np.ones((4, 4)))
    feats = glcm_features(np.stack([f, -f]))
    np.testing.assert_array_equal(feats, np.ones((2, 16)))
    assert np.all(np.isfinite(feats))


def test_gray_levels_minmax_and_fixed_scale():
    f = torch.linspace(-0.1, 0.1, SIZE * SIZE).reshape(1, SIZE, SIZE).repeat(3, 1, 1)
    g = to_gray_levels(f, levels=64)
    assert g.dtype == np.uint8 and g.min() == 0 and g.max() == 63  # per-image min-max uses all levels
    g_fixed = to_gray_levels(f, levels=64, scale=1.0)               # [-1, 1] -> a few middle levels
    assert 28 <= g_fixed.min() and g_fixed.max() <= 35
    with pytest.raises(ValueError):
        to_gray_levels(f, levels=300)
    with pytest.raises(ValueError, match="integer"):
        glcm_correlation(np.zeros((20, 20), np.float32))


def test_glcm_features_equals_loop_over_glcm_correlation():
    f = smooth_noise(12, seed=1, kx=5, ky=1)
    loop = np.stack([glcm_correlation(to_gray_levels(x)).reshape(-1) for x in f])
    np.testing.assert_allclose(glcm_features(f), loop, atol=1e-12)
    np.testing.assert_allclose(glcm_features(torch.from_numpy(f), workers=2), loop, atol=1e-12)
    gray = np.stack([to_gray_levels(x) for x in f])
    np.testing.assert_allclose(glcm_features(gray), loop, atol=1e-12)  # uint8 gray input is used as is


def test_glcm_stats_per_source():
    feats = np.array([[0.0, 1.0], [2.0, 3.0], [10.0, 10.0], [12.0, 14.0], [14.0, 12.0]])
    s = glcm_stats(feats, [1, 1, 0, 0, 0])
    np.testing.assert_array_equal(s.classes, [0, 1])
    np.testing.assert_array_equal(s.count, [3, 2])
    np.testing.assert_allclose(s.mean, [[12, 12], [1, 2]])
    np.testing.assert_allclose(s.var, [[8 / 3, 8 / 3], [1, 1]])


# ----------------------------------------------------------------------------------- distinctness

def test_distinct_textures_are_distinct():
    a = smooth_noise(30, seed=2, kx=7, ky=1)   # horizontally correlated
    b = smooth_noise(30, seed=3, kx=1, ky=7)   # vertically correlated
    feats = glcm_features(np.concatenate([a, b]))
    r = glcm_distinctness(feats, [0] * 30 + [1] * 30, n_permutations=99)
    assert r.verdict == "distinct"
    assert r.accuracy > 0.95 and r.chance == 0.5
    assert r.p_value == pytest.approx(0.01)
    assert "distinct" in str(r)


def test_same_process_is_not_distinct():
    f = smooth_noise(60, seed=4, kx=3, ky=3)   # one process, split into two "sources"
    feats = glcm_features(f)
    r = glcm_distinctness(feats, [0] * 30 + [1] * 30, n_permutations=99)
    assert r.verdict == "not distinct"
    assert r.p_value > 0.05


def test_distinctness_false_positive_rate_is_about_alpha():
    labels = np.repeat(np.arange(3), 15)
    verdicts = [glcm_distinctness(np.random.default_rng(s).normal(size=(45, 16)), labels,
                                  seed=s, n_permutations=39).verdict for s in range(20)]
    assert verdicts.count("distinct") <= 4  # expected 1 of 20 at alpha = 0.05


def test_distinctness_is_reproducible_and_checks_input():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 4)), [0, 1] * 10
    assert glcm_distinctness(x, y, seed=3, n_permutations=20).p_value == \
        glcm_distinctness(x, y, seed=3, n_permutations=20).p_value
    with pytest.raises(ValueError, match="two sources"):
        glcm_distinctness(x, [0] * 20)
    with pytest.raises(ValueError, match=">= 2 samples"):
        glcm_distinctness(x, [0] * 19 + [1])


# ------------------------------------------------------------------------------------- extraction

@pytest.fixture
def tiny_generator():
    return warmed_generator(16)


def test_extract_restores_mode_and_batches_consistently(tiny_generator, one_thread):
    g = tiny_generator
    g.train()
    g.head.eval()  # a mixed state must come back as it was
    x = torch.randn(11, 3, 16, 16)
    y = torch.tensor([0, 1, 2] * 3 + [0, 1])
    bn = g.encoder.levels[0][1]
    stats = bn.running_mean.clone()
    f1, y1 = extract_fingerprints(g, (x, y), batch_size=1, progress=False)
    f5, y5 = extract_fingerprints(g, x, labels=y, batch_size=5, progress=False)
    assert g.training and g.encoder.training and bn.training and not g.head.training
    assert torch.equal(bn.running_mean, stats)
    assert f1.shape == (11, 3, 16, 16) and f1.dtype == torch.float32 and not f1.requires_grad
    torch.testing.assert_close(f1, f5, atol=1e-5, rtol=1e-5)
    assert torch.equal(y1, y) and torch.equal(y5, y)
    g.eval()
    with torch.no_grad():
        torch.testing.assert_close(f1, g.fingerprint(x), atol=1e-5, rtol=1e-5)


def test_extract_from_dataset_and_loader_with_max_per_class(tiny_generator, one_thread):
    g = tiny_generator
    x = torch.randn(12, 3, 16, 16)
    y = torch.tensor([0, 0, 1, 0, 1, 2, 0, 1, 2, 2, 0, 2])
    keep = torch.tensor([0, 1, 2, 4, 5, 8])  # the first two of each label, in input order
    ref, ref_y = extract_fingerprints(g, (x, y), max_per_class=2, progress=False)
    assert torch.equal(ref_y, y[keep])
    ds = TensorDataset(x, y)
    for src in (ds, DataLoader(ds, batch_size=4)):
        f, labels = extract_fingerprints(g, src, batch_size=3, max_per_class=2, progress=False)
        assert torch.equal(labels, y[keep])
        torch.testing.assert_close(f, ref, atol=1e-5, rtol=1e-5)
    f_all, y_all = extract_fingerprints(g, DataLoader(ds, batch_size=5), progress=False)
    assert len(f_all) == 12 and torch.equal(y_all, y)
    none, _ = extract_fingerprints(g, x, max_per_class=0, progress=False)
    assert none.numel() == 0


# -------------------------------------------------------------------------------------- summaries

def test_cosine_within_higher_than_between_and_exact():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 3, 8, 8))
    labels = np.repeat([0, 1, 2], [5, 6, 7])
    f = base[labels] + 0.5 * rng.normal(size=(len(labels), 3, 8, 8))
    r = cosine_similarity_within_between(torch.from_numpy(f), torch.from_numpy(labels))
    assert r.within > 0.6 > 0.2 > r.between
    u = f.reshape(len(f), -1)
    u = u / np.linalg.norm(u, axis=1, keepdims=True)
    sim = u @ u.T
    i, j = np.triu_indices(len(f), 1)
    same = labels[i] == labels[j]
    assert r.within == pytest.approx(sim[i, j][same].mean(), abs=1e-12)
    assert r.between == pytest.approx(sim[i, j][~same].mean(), abs=1e-12)
    for k in range(3):
        m = same & (labels[i] == k)
        assert r.per_source_within[k] == pytest.approx(sim[i, j][m].mean(), abs=1e-12)
    np.testing.assert_allclose(np.diag(r.pair_matrix), r.per_source_within)
    assert r.n_excluded == 0


def test_mean_fingerprint_by_source():
    f = torch.arange(4.0).reshape(4, 1, 1, 1).expand(4, 3, 2, 2)
    m = mean_fingerprint_by_source(f, torch.tensor([0, 0, 2, 2]), num_classes=3)
    assert m.shape == (3, 3, 2, 2)
    assert torch.all(m[0] == 0.5) and torch.all(m[2] == 2.5) and torch.isnan(m[1]).all()


def test_log_spectrum_peaks_at_the_stripe_frequency():
    h = w = 32
    xs = torch.arange(w, dtype=torch.float64)
    f = torch.cos(2 * math.pi * 4 * xs / w).expand(5, 3, h, w)  # 4 cycles along x
    s = log_spectrum(f, remove_mean=True)
    assert s.shape == (h, w)
    peak = divmod(int(s.argmax()), w)
    assert peak in [(h // 2, w // 2 + 4), (h // 2, w // 2 - 4)]


# --- energy and periodicity (Fig. 5 numbers) ---------------------------------------------------------

def test_energy_is_the_rms_of_each_fingerprint():
    from gfd.analysis.fingerprints import energy
    f = torch.zeros(2, 3, 8, 8)
    f[0] = 0.5
    f[1, 0] = 1.0                     # one channel at 1: mean square 1/3
    assert torch.allclose(energy(f), torch.tensor([0.5, (1 / 3) ** 0.5]))


def test_periodicity_separates_a_grid_pattern_from_noise():
    from gfd.analysis.fingerprints import grid_frequencies, periodicity
    h = w = 48
    assert len(grid_frequencies(h, w)) == 15 and (12, 24) in grid_frequencies(h, w)
    tile = torch.randn(4, 4, generator=torch.Generator().manual_seed(0))
    grid = tile.repeat(h // 4, w // 4)                             # repeats every 4 px: all power on the grid
    noise = torch.randn(200, h, w, generator=torch.Generator().manual_seed(1))
    p_grid = periodicity(grid[None, None].expand(1, 3, h, w))
    p_noise = periodicity(noise[:, None])                         # (N, 1, H, W): 200 noise images
    assert p_grid.item() == pytest.approx(1.0, abs=1e-6)
    assert p_noise.mean().item() == pytest.approx(15 / (h * w - 1), rel=0.15)   # white noise: its share of bins
    stripes = torch.arange(w).remainder(3).float().expand(h, w)     # period 3: off the 4-px grid
    assert periodicity(stripes).item() < 0.05


# --- the Fig. 7 question: which factors dominate (gfd.analysis.factors) ---------------------------

def test_factor_steps_and_the_width_verdict():
    from gfd.analysis import factors
    names = ["cfgA_adain", "cfgB_demod", "cfgD_demod_skip", "cfgE_demod_resid", "cfgF_demod_resid_w2"]
    steps = factors.factor_steps(names)
    assert [(a[3], b[3], kind) for a, b, _, kind in steps] == [
        ("A", "B", "construction"), ("B", "D", "construction"), ("B", "E", "construction"), ("E", "F", "width")]
    assert factors.factor_steps(names[:2]) == [(names[0], names[1], "normalisation: AdaIN -> demodulation",
                                                "construction")]
    k = len(names)
    m = np.ones((k, k)) - np.eye(k)                     # every pair at distance 1 ...
    m[3, 4] = m[4, 3] = 0.2                             # ... but E and F nearly equal: width matters least
    res = factors.compare_steps({"fingerprint": m}, names)["fingerprint"]
    assert res["width_smallest"] and res["steps"][-1][2] == pytest.approx(0.2)
    m[3, 4] = m[4, 3] = 1.5                             # width changes f the most: the claim fails
    assert not factors.compare_steps({"fingerprint": m}, names)["fingerprint"]["width_smallest"]


def test_factor_distances_on_hand_made_fingerprints():
    from gfd.analysis import factors
    a = torch.zeros(4, 3, 8, 8)
    b = torch.full((4, 3, 8, 8), 0.5)
    assert factors.fingerprint_distance(a, a) == 0 and factors.fingerprint_distance(a, b) == pytest.approx(0.5)
    assert factors.glcm_distance(np.zeros((3, 16)), np.ones((2, 16))) == pytest.approx(4.0)
    assert factors.attribution_distance(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1]), 3) == 0
    assert factors.attribution_distance(np.array([0, 0]), np.array([2, 2]), 3) == pytest.approx(1.0)


def test_config_fingerprints_reads_every_configuration(tmp_path):
    from PIL import Image
    from gfd.analysis import factors
    from gfd.models.generator import FingerprintGenerator
    rng = np.random.default_rng(0)
    for name in ("cfgA_adain", "cfgB_demod", "real"):
        (tmp_path / "variants" / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "variants" / name / f"{i}.png")
    torch.manual_seed(0)
    g = FingerprintGenerator(num_classes=3, depth=2, width=4, max_width=8)
    cf = factors.config_fingerprints(g, tmp_path, crop=32, n=2)
    assert sorted(cf.fingerprints) == ["cfgA_adain", "cfgB_demod"]                  # "real" is no configuration
    assert cf.fingerprints["cfgA_adain"].shape == (2, 3, 32, 32) and cf.glcm["cfgB_demod"].shape == (2, 16)
    assert g.training                                                                 # mode restored
    mats = factors.distance_matrices(cf, num_classes=3)
    assert mats["fingerprint"].shape == (2, 2) and mats["fingerprint"][0, 1] > 0
    verdict = factors.seed_verdict(g, tmp_path, crop=32, num_classes=3, n=2)     # the unit gathered over seeds
    assert verdict == factors.compare_steps(mats, sorted(cf.fingerprints))
    assert verdict["fingerprint"]["steps"][0][2] == pytest.approx(mats["fingerprint"][0, 1])


def _verdict(distances: list[float], names=("cfgA_adain", "cfgB_demod", "cfgD_demod_skip", "cfgE_demod_resid",
                                              "cfgF_demod_resid_w2")) -> dict:
    """A compare_steps verdict on one measure whose four steps have the given distances."""
    from gfd.analysis import factors
    k = len(names)
    m = np.full((k, k), 9.0)
    np.fill_diagonal(m, 0)
    for (a, b, _, _), d in zip(factors.factor_steps(list(names)), distances):
        i, j = names.index(a), names.index(b)
        m[i, j] = m[j, i] = d
    return factors.compare_steps({"fingerprint": m}, list(names))


def test_steps_over_seeds_gathers_values_margins_and_verdicts():
    from gfd.analysis import factors
    summary = factors.steps_over_seeds({3: _verdict([0.5, 0.4, 0.3, 0.1]),     # width smallest: holds
                                        1: _verdict([0.5, 0.2, 0.3, 0.6])})    # width largest: fails
    res = summary["fingerprint"]
    assert res["seeds"] == [1, 3]                                               # sorted, values in that order
    assert [kind for _, kind, _ in res["steps"]] == ["construction"] * 3 + ["width"]
    assert res["steps"][0][2] == [0.5, 0.5] and res["steps"][3][2] == [0.6, 0.1]
    assert res["margin"] == pytest.approx([0.6 - 0.2, 0.1 - 0.3])               # width - smallest construction
    assert res["width_smallest"] == [False, True] and res["holds"] == 1
    assert [m < 0 for m in res["margin"]] == res["width_smallest"]


def test_steps_over_seeds_refuses_seeds_that_measured_other_steps():
    from gfd.analysis import factors
    short = factors.compare_steps({"fingerprint": np.array([[0.0, 1.0], [1.0, 0.0]])}, ["cfgA_adain", "cfgB_demod"])
    with pytest.raises(ValueError, match="seed 1 measured other steps"):
        factors.steps_over_seeds({0: _verdict([0.5, 0.4, 0.3, 0.1]), 1: short})
    with pytest.raises(ValueError, match="at least one seed"):
        factors.steps_over_seeds({})


def test_plot_steps_over_seeds_draws_every_seed_and_the_mean():
    import matplotlib.pyplot as plt
    from gfd import plots
    from gfd.analysis import factors
    summary = factors.steps_over_seeds({0: _verdict([0.5, 0.4, 0.3, 0.1]), 1: _verdict([0.5, 0.2, 0.3, 0.6])})
    fig = plots.plot_steps_over_seeds(summary)
    (ax,) = fig.axes
    assert ax.get_title() == "fingerprint: width smallest on 1/2 seeds"
    assert [b.get_height() for b in ax.patches] == pytest.approx([0.5, 0.3, 0.3, 0.35])
    dots = [line.get_ydata().tolist() for line in ax.lines]
    assert dots == [[0.5, 0.5], [0.4, 0.2], [0.3, 0.3], [0.1, 0.6]]
    plt.close(fig)
