"""Tests of the offline mini benchmark (gfd.benchmark): determinism, caching, layout, generators."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from gfd.benchmark import engine as E
from gfd.benchmark import load_mini_benchmark, read_manifest
from gfd.benchmark.worlds import gan128 as W
from gfd.benchmark.domains import DOMAIN_A, DOMAIN_B1, DOMAIN_B2, DOMAINS, disjoint, sample_images
from gfd.benchmark.generators import FAMILIES, VARIANTS, AutoGANGenerator, GenConfig, UpConv
from gfd.benchmark.zoo import Plateau, TrainSettings, mmd2, zoo_discriminator
from gfd.models.discriminator import PatchDiscriminator
from gfd.utils import stable_hash

# A tiny benchmark: 32 px images, a handful per class, generators trained for a few steps.
TINY = dict(n_train=4, n_val=2, n_test=2, n_open=3, n_variant=2, gen_pool=8, image_size=32,
            train=TrainSettings(max_steps=4, min_steps=1, window=2, batch_size=4, crop=16, disc_width=8))
N_GENERATORS = len(FAMILIES) * (2 + 3 + 3) + len(VARIANTS)


def tiny(root, seed=0, workers=1, **changes):
    return load_mini_benchmark("quick", root=root, seed=seed, progress=False, overrides={**TINY, **changes},
                               workers=workers)


def pixels(path):
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return tiny(tmp_path_factory.mktemp("bench"))


# --- layout and manifest ------------------------------------------------------------------------

def test_layout_and_manifest_counts_match_files(built):
    m = read_manifest(built)
    assert m["complete"] and m["format_version"] == E.FORMAT_VERSION == 2
    assert m["classes"] == ["real"] + [f.name for f in FAMILIES]
    assert json.loads((built / "classes.json").read_text()) == m["classes"]
    for split, per_class in m["counts"].items():
        assert sorted(p.name for p in (built / split).iterdir()) == sorted(m["classes"])
        for cls, n in per_class.items():
            files = sorted((built / split / cls).glob("*.png"))
            # test_open: n_open per class from each of the two open domains
            assert len(files) == n == {"train": 4, "val": 2, "test_closed": 2, "test_open": 6}[split]
            assert pixels(files[0]).shape == (32, 32, 3)
            # the manifest's instance list accounts for every file, by prefix
            listed = m["instances"][split][cls]
            assert sum(e["count"] for e in listed) == n
            for e in listed:
                assert len([f for f in files if f.name.startswith(e["prefix"])]) == e["count"]
    assert set(m["variants"]["names"]) == {"real", "progan", *(v.name for v in VARIANTS)}
    for name, n in m["variants"]["counts"].items():
        assert len(list((built / "variants" / name).glob("*.png"))) == n
    assert E.check_benchmark(built, checksums=True) == []
    worlds = {"A": 2, "B1": 3, "B2": 3}
    assert set(m["generators"]) == {f"{w}/{f.name}/{k}" for w, n in worlds.items() for f in FAMILIES
                                    for k in range(n)} | {f"A/{v.name}/0" for v in VARIANTS}
    assert {w: m["worlds"][w]["instances_per_family"] for w in worlds} == worlds
    assert m["worlds"]["A"]["role"] == "closed" and m["worlds"]["B2"]["role"] == "open"
    for key, g in m["generators"].items():               # a loss curve and its final value per generator
        assert g["l1_curve"] and g["final_l1_window_mean"] == g["l1_curve"][-1]
        assert g["stop"].startswith(("plateau", "cap")) and g["steps"] <= g["settings"]["max_steps"]
    assert m["rules"] == list(W.RULES)


def test_instances_per_family_and_prefixes(built):
    m = read_manifest(built)
    closed = {e["prefix"] for e in m["instances"]["train"]["sngan"]}
    assert closed == {"A-g0_", "A-g1_"}
    open_ = {e["prefix"] for e in m["instances"]["test_open"]["sngan"]}
    assert open_ == {f"{w}-g{k}_" for w in ("B1", "B2") for k in range(3)}
    assert {e["prefix"] for e in m["instances"]["test_open"]["real"]} == {"B1-real_", "B2-real_"}
    groups = E.image_groups(built, "test_open")
    assert set(groups["sngan"]) == open_ and sum(map(len, groups["sngan"].values())) == 6
    # instances vary in width and training length (INSTANCE_VARIATION), and each has its own seed
    g = m["generators"]
    widths = {g[f"B1/sngan/{k}"]["config"]["width"] for k in range(3)}
    lengths = {g[f"B1/sngan/{k}"]["settings"]["max_steps"] for k in range(3)}
    seeds = {g[f"{w}/sngan/{k}"]["torch_seed"] for w, n in (("A", 2), ("B1", 3), ("B2", 3)) for k in range(n)}
    assert len(widths) == 3 and len(lengths) >= 2 and len(seeds) == 8


def test_readable_by_gfd_data(built):
    from gfd.config import Config
    from gfd.data import get_loaders

    bundle = get_loaders(built, Config(), transform="mini", crop=16, batch_size=4, num_workers=0)
    assert bundle.classes == read_manifest(built)["classes"]
    x, y = next(iter(bundle["train"]))
    assert x.shape == (4, 3, 16, 16) and x.min() >= -1 and x.max() <= 1
    assert "test_open" in bundle


def test_fakes_are_not_copies_and_real_class_is_disjoint(built):
    inputs = sorted((built / "variants" / "real").glob("*.png"))
    outputs = sorted((built / "variants" / "progan").glob("*.png"))
    for i, o in zip(inputs, outputs):
        assert i.read_bytes() != o.read_bytes()
        assert np.abs(pixels(i).astype(int) - pixels(o)).mean() > 1.0
    real_class = {pixels(p).tobytes() for s in ("train", "val", "test_closed") for p in (built / s / "real").glob("*.png")}
    fakes = {pixels(p).tobytes() for s in ("train", "test_closed") for c in ("progan", "mmdgan", "sngan")
             for p in (built / s / c).glob("*.png")}
    assert not real_class & fakes
    assert not real_class & {pixels(p).tobytes() for p in inputs}  # generator inputs are not real-class images


# --- determinism and caching --------------------------------------------------------------------

def test_same_seed_same_checksums_other_seed_differs(built, tmp_path):
    again = read_manifest(tiny(tmp_path / "a", workers=2))   # in 2 processes: the same files
    assert again["checksums"] == read_manifest(built)["checksums"]
    other = read_manifest(tiny(tmp_path / "b", seed=1))
    assert other["checksums"]["train/real"] != again["checksums"]["train/real"]
    assert other["checksums"]["train/sngan"] != again["checksums"]["train/sngan"]


def _prefix_bytes(root, split, cls):
    return {p: b"".join(f.read_bytes() for f in files) for p, files in E.image_groups(root, split)[cls].items()}


def test_instances_of_a_family_differ_in_files_and_spectra(built):
    from gfd.analysis.families import instance_spectra, spectrum_distance

    for cls in ("progan", "sngan"):
        per = _prefix_bytes(built, "test_open", cls)
        assert len(set(per.values())) == len(per) == 6          # six different instances
    spectra = instance_spectra(built, "B1")
    for cls in ("progan", "sngan", "infomax"):
        specs = list(spectra[cls].values())
        assert len(specs) == 3
        assert all(spectrum_distance(a, b) > 0 for i, a in enumerate(specs) for b in specs[i + 1:])


def test_cache_hit_and_changed_params_rebuild(tmp_path, monkeypatch):
    first = tiny(tmp_path)
    calls = []
    real_build = E.build_world
    monkeypatch.setattr(E, "build_world", lambda *a, **k: calls.append(1) or real_build(*a, **k))
    assert tiny(tmp_path) == first and calls == []                  # cached: not rebuilt
    changed = tiny(tmp_path, n_train=5)
    assert changed != first and calls == [1]                        # new parameters: new folder
    assert read_manifest(changed)["counts"]["train"]["real"] == 5
    assert read_manifest(first)["counts"]["train"]["real"] == 4     # the old one is untouched


def test_interrupted_build_resumes_without_retraining(built, tmp_path, monkeypatch):
    real_step = E.train_and_generate
    done = []

    def dies_on_third(*args, **kwargs):
        if len(done) == 2:
            raise KeyboardInterrupt("killed half-way")
        done.append(args[0].key)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(E, "train_and_generate", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        tiny(tmp_path)
    # only the finished generators are left, in the build's partial folder (no half-built benchmark)
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".partial-")
    assert len(list((tmp_path / left[0]).glob("*.npz"))) == 2
    trained = []
    monkeypatch.setattr(E, "train_and_generate", lambda *a, **k: trained.append(a[0].key) or real_step(*a, **k))
    root = tiny(tmp_path)
    assert E.check_benchmark(root, checksums=True) == []
    assert len(trained) == N_GENERATORS - 2 and not set(trained) & set(done)    # finished ones not retrained
    m = read_manifest(root)
    assert (m["build"]["generators_trained"], m["build"]["generators_reused"]) == (N_GENERATORS - 2, 2)
    assert m["checksums"] == read_manifest(built)["checksums"]                   # = an uninterrupted build
    assert [p.name for p in tmp_path.iterdir()] == [root.name]                   # partial folder removed


def test_killed_build_tmp_folder_is_cleaned(tmp_path):
    params = W.make_params("quick", 0, **TINY)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".tmp-{W.cache_name(params, 'quick')}-{dead}"
    (stale / "train" / "real").mkdir(parents=True)
    running = tmp_path / f".tmp-{W.cache_name(params, 'quick')}-{os.getppid()}"   # a live build's folder
    running.mkdir()
    root = tiny(tmp_path)
    assert not stale.exists() and E.check_benchmark(root) == []
    assert running.is_dir()


# A build in its own process, with 2 workers whose generators train for a long time.  The workers
# import this file as __mp_main__ (spawn), so the patched job, which marks its start, runs in them.
KILLED_BUILD = """
import os, sys
from pathlib import Path
import gfd.benchmark.engine as E
from gfd.benchmark import load_mini_benchmark
from gfd.benchmark.zoo import TrainSettings

root = Path(sys.argv[1])
train_and_generate = E.train_and_generate


def mark_then_train(*args):
    (root / "started" / str(os.getpid())).touch()
    return train_and_generate(*args)


E.train_and_generate = mark_then_train
if __name__ == "__main__":
    (root / "started").mkdir()
    load_mini_benchmark("quick", root=root / "cache", progress=False, workers=2, overrides=dict(
        n_train=4, n_val=2, n_test=2, n_open=3, n_variant=2, gen_pool=8, image_size=32,
        train=TrainSettings(max_steps=10**6, min_steps=10**6, batch_size=4, crop=16, disc_width=8)))
"""


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (an orphan nobody reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the OS
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_workers_exit_when_the_building_process_is_killed(tmp_path):
    script = tmp_path / "build_then_die.py"
    script.write_text(textwrap.dedent(KILLED_BUILD))
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)])
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 240
        while len(workers) < 2:
            assert proc.poll() is None, "the build ended before its workers started"
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.2)
            workers = [int(p.name) for p in (tmp_path / "started").glob("*")]
        assert proc.pid not in workers and all(running(w) for w in workers)   # both are training
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while any(running(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(running(w) for w in workers), "workers outlived the killed build"
        # the killed build's folder stays behind, and is what the next build of these parameters removes
        stale = list((tmp_path / "cache").glob(f".tmp-*-{proc.pid}"))
        assert len(stale) == 1
        E.remove_stale_tmp(tmp_path / "cache", stale[0].name[len(".tmp-"):].rsplit("-", 1)[0])
        assert not stale[0].exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for w in workers:
            if running(w):
                os.kill(w, signal.SIGKILL)


@pytest.mark.parametrize("damage", ["no_manifest", "incomplete", "missing_file"])
def test_damaged_cache_is_detected_and_rebuilt(tmp_path, damage):
    root = tiny(tmp_path)
    manifest = root / "manifest.json"
    if damage == "no_manifest":
        manifest.unlink()
    elif damage == "incomplete":
        manifest.write_text(manifest.read_text()[:100])
    else:
        next((root / "val" / "sngan").glob("*.png")).unlink()
    assert E.check_benchmark(root) != []
    with pytest.warns(UserWarning, match="rebuilding"):
        again = tiny(tmp_path)
    assert again == root and E.check_benchmark(root, checksums=True) == []


def test_bad_size_and_params_are_clear_errors(tmp_path):
    with pytest.raises(KeyError, match="quick"):
        load_mini_benchmark("huge", root=tmp_path)
    with pytest.raises(ValueError, match="n_train"):
        W.make_params("quick", n_train=0)
    with pytest.raises(FileNotFoundError, match="not a built mini benchmark"):
        read_manifest(tmp_path)


# --- domains and generators ---------------------------------------------------------------------

def test_domains_are_deterministic_and_different():
    a1 = sample_images(np.random.default_rng(3), DOMAIN_A, 24, 32)
    a2 = sample_images(np.random.default_rng(3), DOMAIN_A, 24, 32)
    b = sample_images(np.random.default_rng(3), DOMAIN_B1, 24, 32)
    assert a1.shape == (24, 32, 32, 3) and a1.dtype == np.uint8
    np.testing.assert_array_equal(a1, a2)
    warm = lambda x: (x[..., 0].astype(float) - x[..., 2]).mean()  # noqa: E731  red minus blue
    assert warm(a1) > warm(b) + 20


def test_domains_are_pairwise_disjoint():
    """Rule 1: the three domains share no shape, hue range or photo (checked by BenchmarkParams too)."""
    assert set(DOMAINS) == {"A", "B1", "B2"}
    assert disjoint(DOMAIN_A, DOMAIN_B1) and disjoint(DOMAIN_A, DOMAIN_B2) and disjoint(DOMAIN_B1, DOMAIN_B2)
    assert not disjoint(DOMAIN_A, DOMAIN_A)
    with pytest.raises(ValueError, match="share no"):
        W.make_params("quick", domain_open2=DOMAIN_B1)


def test_families_mirror_the_paper_structure():
    """One pair with the same architecture and different objectives; the others differ in both."""
    by = {f.name: f for f in FAMILIES}
    assert by["sngan"].architecture() == by["infomax"].architecture()
    assert by["sngan"].objective != by["infomax"].objective
    archs = {tuple(sorted(f.architecture().items())) for f in FAMILIES}
    assert len(archs) == len(FAMILIES) - 1 and len({f.objective for f in FAMILIES}) == len(FAMILIES)
    # the factor variants step A (AdaIN) -> B (demod) -> D (skip) / E (resid) -> F (double width)
    v = {c.name[:4]: c for c in VARIANTS}
    assert (v["cfgA"].norm, v["cfgB"].norm) == ("adain", "demod")
    assert (v["cfgD"].block, v["cfgE"].block, v["cfgF"].block) == ("skip", "resid", "resid")
    assert v["cfgF"].width == 2 * v["cfgE"].width


def test_plateau_rule():
    s = TrainSettings(max_steps=100, min_steps=20, window=5, tol=0.02)
    p, step = Plateau(s), 0
    while not p.update(step, 1.0 / (1 + step) if step < 10 else 0.1):   # improves, then flat
        step += 1
    assert step + 1 == 20 and p.reason.startswith("plateau") and len(p.curve) == 4
    p, step = Plateau(s), 0
    while not p.update(step, 1.0 - 0.009 * step):                       # keeps improving: the cap
        step += 1
    assert step + 1 == 100 and p.reason == "cap: max_steps"


def test_mmd_is_zero_for_equal_samples_and_positive_otherwise():
    torch.manual_seed(0)
    a = torch.randn(32, 4)
    assert abs(mmd2(a, a).item()) < 1e-6
    assert mmd2(a, a + 3).item() > 0.1


@pytest.mark.parametrize("cfg", FAMILIES + VARIANTS, ids=lambda c: c.name)
def test_generator_families_shapes_and_range(cfg):
    torch.manual_seed(0)
    y = AutoGANGenerator(cfg)(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert y.shape == (2, 3, 32, 32) and y.abs().max() <= 1


def test_zoo_discriminator_is_the_plain_patchgan():
    """The zoo trains its generators against the one PatchGAN class, configured as three stride-2 4x4
    convs (width, 2x, 4x), no normalisation, and a 3x3 conv to one logit per 8x8-strided patch."""
    from gfd.benchmark import generators

    assert not hasattr(generators, "PatchDiscriminator")         # one PatchGAN, in gfd.models
    d = zoo_discriminator(8)
    assert isinstance(d, PatchDiscriminator)
    assert [(k, tuple(v.shape)) for k, v in d.state_dict().items()] == [
        ("net.0.weight", (8, 3, 4, 4)), ("net.0.bias", (8,)), ("net.2.weight", (16, 8, 4, 4)), ("net.2.bias", (16,)),
        ("net.4.weight", (32, 16, 4, 4)), ("net.4.bias", (32,)), ("net.6.weight", (1, 32, 3, 3)), ("net.6.bias", (1,))]
    assert [type(m) for m in d.net] == [nn.Conv2d, nn.LeakyReLU] * 3 + [nn.Conv2d]
    assert all(m.negative_slope == 0.2 for m in d.net if isinstance(m, nn.LeakyReLU))
    assert [m.stride[0] for m in d.net if isinstance(m, nn.Conv2d)] == [2, 2, 2, 1]
    crop = TrainSettings().crop
    assert d(torch.zeros(2, 3, crop, crop)).shape == (2, 1, crop // 8, crop // 8)


@pytest.mark.parametrize("kind", ["tconv", "nearest", "bilinear", "pixshuffle"])
def test_demodulation_cancels_the_style_scale(kind):
    """Demodulation rescales each output filter to unit norm (StyleGAN2, Eq. 3), so scaling the style
    changes nothing, and unit-variance input noise does not blow up or vanish."""
    torch.manual_seed(0)
    up = UpConv(kind, 32, 16, style_dim=8, demod=True)
    torch.nn.init.normal_(up.modulation.weight)
    x, style = torch.randn(4, 32, 16, 16), torch.randn(4, 8)
    up.modulation.bias.data.zero_()  # the modulation is then linear in the style
    y = up(x, style)
    assert y.shape == (4, 16, 32, 32)
    torch.testing.assert_close(up(x, 7.0 * style), y, rtol=1e-4, atol=1e-4)
    assert 0.3 < y.std().item() < 1.5
    plain = UpConv(kind, 32, 16, style_dim=8, demod=False)
    assert plain(x, style).shape == y.shape


def test_genconfig_rejects_unknown_operator():
    with pytest.raises(ValueError, match="upsample"):
        GenConfig("x", "cubic")


# --- figures ------------------------------------------------------------------------------------

def spectrum_of(paths):
    """Mean log|FFT| of the grey residuals x - median3x3(x) of image files, from gfd.analysis.spectra."""
    from gfd.analysis.spectra import log_fft_spectrum, residuals

    grey = torch.from_numpy(np.stack([pixels(p) for p in paths]).astype(np.float32).mean(axis=-1))[:, None]
    return log_fft_spectrum(residuals(grey, "median")[:, 0])


def shown(ax):
    return np.asarray(ax.images[0].get_array())


def test_figures(built, tmp_path):
    """Each panel shows what it is labelled with: the sample grids the first files of the class or
    instance named beside them (pixel for pixel), the spectra the mean residual spectrum
    (gfd.analysis.spectra) of the images of the source named in their title.  Catches swapped rows,
    images of another class, world or instance, and a spectrum of other images or another residual."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from gfd.plots import plot_family_spectra, plot_world_samples, save_benchmark_figures
    from gfd.plots import plot_residual_spectra, plot_sample_grid

    m = read_manifest(built)
    files = lambda folder: sorted(Path(folder).glob("*.png"))  # noqa: E731
    # sample grid: row r is class r of the manifest, its images the class's first files, by name
    fig = plot_sample_grid(built, "test_open", n_per_class=3)
    assert len(fig.axes) == 5 * 3 and "test_open" in fig.get_suptitle()
    for r, c in enumerate(m["classes"]):
        row = fig.axes[3 * r: 3 * r + 3]
        assert row[0].get_ylabel() == c
        for ax, path in zip(row, files(built / "test_open" / c)[:3], strict=True):
            np.testing.assert_array_equal(shown(ax), pixels(path))
    plt.close(fig)
    # residual spectra of the variants: one panel per source, the spectrum of all its images
    fig = plot_residual_spectra(built, "variants")
    assert len(fig.axes) == 2 + len(VARIANTS)
    names = [ax.get_title().split("\n")[0] for ax in fig.axes]
    assert names == ["real", *sorted(set(m["variants"]["names"]) - {"real"})]          # real first, then by name
    for ax, name in zip(fig.axes, names):
        paths = files(built / "variants" / name)
        assert ax.get_title() == f"{name}\n(n={len(paths)})"
        np.testing.assert_allclose(shown(ax), spectrum_of(paths), rtol=1e-6, atol=1e-6)
    plt.close(fig)
    with pytest.raises(FileNotFoundError, match="nope"):
        plot_sample_grid(built, "nope")
    # world samples: row "<class> <instance>" shows that instance's first files of the world's split
    fig = plot_world_samples(built, "B2", n_per_instance=2)
    labels = [f"{c} {p}" for c in m["classes"] for p in (["real"] if c == "real" else ["g0", "g1", "g2"])]
    assert [fig.axes[2 * r].get_ylabel() for r in range(len(fig.axes) // 2)] == labels   # real + 4 x 3
    for r, label in enumerate(labels):
        c, inst = label.split()
        paths = [f for f in files(built / "test_open" / c) if f.name.startswith(f"B2-{inst}_")][:2]
        row = fig.axes[2 * r: 2 * r + 2]
        assert paths and [len(ax.images) for ax in row] == [1] * len(paths) + [0] * (2 - len(paths))
        for ax, path in zip(row, paths):
            np.testing.assert_array_equal(shown(ax), pixels(path))
    plt.close(fig)
    # family spectra of world A (test_closed): per class the mean over its instances' spectra
    fig = plot_family_spectra(built, "A")
    assert len(fig.axes) == 5
    for ax, c in zip(fig.axes, m["classes"], strict=True):
        insts = ["real"] if c == "real" else ["g0", "g1"]
        assert ax.get_title().startswith(f"{c} ({len(insts)} inst.)")
        per = [spectrum_of([f for f in files(built / "test_closed" / c) if f.name.startswith(f"A-{i}_")])
               for i in insts]
        np.testing.assert_allclose(shown(ax), np.mean(per, axis=0), rtol=1e-6, atol=1e-6)
    plt.close(fig)
    written = save_benchmark_figures(built, tmp_path)
    assert sorted(p.name for p in written) == sorted(
        [f"bench_{kind}_{w}.png" for w in ("A", "B1", "B2") for kind in ("samples", "spectra")]
        + ["bench_samples_variants.png", "bench_spectra_variants.png"])
    assert all(Image.open(p).size[0] > 100 for p in written)                   # PNG files, readable
    with pytest.raises(KeyError, match="world"):
        plot_world_samples(built, "C")


def test_spectral_distances_within_vs_between():
    from gfd.analysis.families import spectral_distances, spectrum_distance

    rng = np.random.default_rng(0)
    base = {f: rng.normal(size=(8, 8)) for f in ("f1", "f2", "f3")}
    spectra = {f: {f"g{k}": b + 0.01 * rng.normal(size=(8, 8)) for k in range(3)} for f, b in base.items()}
    spectra["real"] = {"A-real_": rng.normal(size=(8, 8))}
    d = spectral_distances(spectra)
    assert set(d["per_family"]) == {"f1", "f2", "f3"}                 # real is left out
    assert d["within"] < 0.05 < 1.0 < d["between"] and d["ratio"] < 0.05
    assert spectrum_distance(np.zeros((2, 2)), np.full((2, 2), 3.0)) == pytest.approx(3.0)
    one = spectral_distances({"f1": {"g0": np.zeros((2, 2))}, "f2": {"g0": np.ones((2, 2))}})
    assert one["per_family"]["f1"] == {"instances": 1, "within": None, "between": 1.0, "ratio": None}


# --- frozen without looking at the open world -----------------------------------------------------

def test_no_benchmark_parameter_is_read_from_a_result():
    """The benchmark's code cannot read an accuracy: it imports nothing that trains or evaluates a
    classifier (gfd.runs, gfd.train, gfd.evaluate, gfd.baselines, ...), in any of its modules or
    worlds, and the domains module does not say it was calibrated on one."""
    import gfd.benchmark as pkg
    from conftest import imported_modules

    forbidden = ("gfd.runs", "gfd.train", "gfd.evaluate", "gfd.baselines", "gfd.supervised", "gfd.report",
                 "gfd.paper", "gfd.inference", "gfd.data")
    modules = list(Path(pkg.__file__).parent.rglob("*.py"))
    assert {"engine.py", "gan128.py", "gan1024.py"} <= {p.name for p in modules}
    for path in modules:                               # module-level and function-level imports
        names = sorted(imported_modules(path))
        assert not [n for n in names if n.startswith(forbidden)], f"{path.name} imports {names}"
    domains_doc = (Path(pkg.__file__).parent / "domains.py").read_text()
    assert "74.77" not in domains_doc and "calibrated" not in domains_doc
    assert any("closed world only" in r for r in W.RULES)


def test_accuracy_by_source_averages_over_instances_and_worlds():
    from gfd.benchmark.sources import accuracy_by_source, source_of

    assert source_of("x/B1-g2_00003.png") == ("B1", "g2") and source_of("00003.png") is None
    paths = ["B1-g0_00000.png", "B1-g0_00001.png", "B1-g0_00002.png", "B1-g1_00000.png",
             "B2-g0_00000.png", "B2-real_00000.png"]
    r = accuracy_by_source(paths, [1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0], classes=["real", "fam"])
    assert r["per_source"] == {"B1/fam/g0": 1.0, "B1/fam/g1": 0.0, "B2/fam/g0": 0.0, "B2/real/real": 1.0}
    assert r["per_world"] == {"B1": 0.5, "B2": 0.5} and r["mean_over_worlds"] == 0.5   # not 4/6 per image


def test_both_builders_refuse_a_folder_that_holds_files(tmp_path):
    """One rule for every build (gfd.benchmark.engine.new_build_folder): never write into a used folder."""
    from gfd.benchmark import make_params
    from gfd.benchmark.engine import new_build_folder
    from gfd.benchmark.worlds.gan128 import build_benchmark
    from gfd.benchmark.worlds.gan1024 import Gan1024Params, build_gan1024
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        build_benchmark(used, make_params("quick"), progress=False)
    with pytest.raises(FileExistsError, match="not empty"):
        build_gan1024(used, Gan1024Params(), progress=False)
    assert [p.name for p in used.iterdir()] == ["keep.txt"] and (used / "keep.txt").read_text() == "mine"
    fresh = new_build_folder(tmp_path / "a" / "b")
    assert fresh.is_dir() and not any(fresh.iterdir())
    assert new_build_folder(tmp_path / "empty") == tmp_path / "empty"                     # empty: fine


# --- the tiny world's build output, pinned ------------------------------------------------------------
# Any change to the engine or to the gan128 world that changes what a build holds (which images, file
# names, splits, seeds, generator settings) changes one of these.  The parameters, layout and
# generator seeds do not depend on the machine; the files' bytes hold for the environment named in
# TINY_FILES_ENV (the determinism of gfd.benchmark.engine), elsewhere that check is skipped.
TINY_KEY = "ccb6e55608"
TINY_STRUCTURE = "db4521ba1fd1cc11"
TINY_CHECKSUMS = "c1362ca96f41a6ab"
TINY_FILES_ENV = {"torch": "2.14.1+cu130", "numpy": "2.4.6", "pillow": "13.0.0", "machine": "x86_64", "cpu": "AMD EPYC"}


def structure_digest(m):
    """A digest of what a manifest says the build holds, apart from any number the training computed."""
    seeds = {k: {f: g[f] for f in ("world", "family", "instance", "config", "settings", "torch_seed")}
             for k, g in m["generators"].items()}
    kept = {k: m[k] for k in ("key", "classes", "counts", "worlds", "instances", "file_names", "variants", "rules",
                              "params")}
    return stable_hash({**kept, "generators": seeds}, length=16)


def files_env():
    import platform

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "") if Path("/proc/cpuinfo").is_file() else ""
    return {"torch": torch.__version__, "numpy": np.__version__, "pillow": Image.__version__,
            "machine": platform.machine(), "cpu": cpu}


def test_the_tiny_worlds_build_output_is_pinned(built):
    m = read_manifest(built)
    assert m["key"] == TINY_KEY and built.name == f"mini-quick-s0-{TINY_KEY}"
    assert structure_digest(m) == TINY_STRUCTURE
    if files_env() != TINY_FILES_ENV:
        pytest.skip(f"file bytes are pinned for {TINY_FILES_ENV}, not {files_env()}")
    assert stable_hash(m["checksums"], length=16) == TINY_CHECKSUMS
