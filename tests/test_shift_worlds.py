"""The test-only shift worlds (gfd.benchmark.worlds.shifts): each differs from domain A in exactly its
factor; built, cached and resumed by the engine; readable by the evaluator.  Tiny parameters only."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from gfd.benchmark import engine as E
from gfd.benchmark.domains import (CAMERA_A, DOMAIN_A, ShiftDomain, render, sample_image,
                                   sample_images)
from gfd.benchmark.worlds import gan128
from gfd.benchmark.worlds import shifts as S
from gfd.benchmark.writer import write_pngs
from gfd.benchmark.zoo import TrainSettings
from gfd.layout import REAL, TEST_SPLIT

TINY = dict(n_test=4, n_instances=2, gen_pool=8, image_size=32,
            train=TrainSettings(max_steps=3, min_steps=1, window=2, batch_size=4, crop=16, disc_width=8))
FACTOR_FIELDS = {"instance": set(), "content": set(S.CONTENT), "acquisition": {"camera"}, "recipe": set(),
                 "paper": set(S.CONTENT) | {"camera"}}


def pixels(path):
    return np.asarray(Image.open(path).convert("RGB"))


def domain_changes(d: ShiftDomain) -> set[str]:
    """The fields of a shift domain that differ from domain A's (the name aside)."""
    a = ShiftDomain.like(DOMAIN_A, name=d.name).to_dict()
    return {k for k, v in d.to_dict().items() if a[k] != v and k != "name"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("shift")
    return root, {n: S.load_shift_world(n, "quick", root=root, progress=False, overrides=TINY, workers=1)
                  for n in ("instance", "acquisition")}


# --- parameters: one factor each ------------------------------------------------------------------

@pytest.mark.parametrize("name", list(S.GENERATOR_WORLDS))
def test_each_generator_world_changes_only_its_factor(name):
    p = S.shift_params(name, "quick")
    a = gan128.WORLD.make_params("quick")
    changed = domain_changes(p.domain)
    assert changed <= FACTOR_FIELDS[name] and bool(changed) == bool(FACTOR_FIELDS[name])
    assert p.classes == a.classes and p.families == a.families
    assert (p.n_test, p.gen_pool, p.image_size) == (a.n_test, a.gen_pool, a.image_size)
    recipe = name in ("recipe", "paper")
    settings = {f.name for f in dataclasses.fields(TrainSettings) if getattr(p.train, f.name) != getattr(a.train, f.name)}
    assert settings == (set(S.RECIPE) if recipe else set())
    assert p.width_scale == (S.RECIPE_WIDTH if recipe else 1.0)
    assert p.domain.name != DOMAIN_A.name and p.closed_worlds == ()


def test_recipe_worlds_generators_differ_only_in_recipe_fields():
    inst, rec = (S.plan_jobs(S.shift_params(n, "quick")) for n in ("instance", "recipe"))
    assert [(j.family, j.instance, j.feed_counts) for j in inst] == [(j.family, j.instance, j.feed_counts) for j in rec]
    for i, r in zip(inst, rec):
        cfg_diff = {k for k, v in r.cfg.to_dict().items() if i.cfg.to_dict()[k] != v}
        set_diff = {k for k, v in dataclasses.asdict(r.settings).items() if dataclasses.asdict(i.settings)[k] != v}
        assert cfg_diff <= {"width"} and set_diff == set(S.RECIPE)
        assert (cfg_diff | set_diff) <= set(S.RECIPE_FIELDS)
    assert any(r.cfg.width != i.cfg.width for i, r in zip(inst, rec))


def test_instance_world_has_new_seeds_but_as_closed_instances():
    """Same families, instance variation and settings as A's closed instances; other generator seeds."""
    p, a = S.shift_params("instance", "quick"), gan128.WORLD.make_params("quick")
    closed = {(j.family, j.instance): j for j in gan128.plan_jobs(a, {REAL: np.zeros((1, 8, 8, 3), np.uint8)})
              if j.world == "A" and j.feed_counts}
    for j in S.plan_jobs(p):
        if (j.family, j.instance) in closed:
            c = closed[(j.family, j.instance)]
            assert (j.cfg, j.settings) == (c.cfg, c.settings)
            assert E.torch_seed_for(p.seed, j.key) != E.torch_seed_for(a.seed, c.key)


def test_keys_names_and_sizes():
    keys = {n: S.shift_params(n, "quick").key() for n in S.GENERATOR_WORLDS}
    assert len(set(keys.values())) == len(keys)
    assert S.shift_params("instance", "default").n_test == gan128.WORLD.make_params("default").n_test
    post = S.shift_params("post-jpeg75", "quick")
    assert (post.op, post.strength) == ("jpeg", 75)
    assert post.source == gan128.WORLD.cache_name(gan128.WORLD.make_params("quick"), "quick")
    with pytest.raises(KeyError, match="unknown shift world"):
        S.shift_params("nope")
    assert all(sum(op == k for op, _ in S.POST.values()) >= 2 for k in ("jpeg", "resize", "blur"))


# --- images: the factor and nothing else ----------------------------------------------------------

def test_flat_domain_with_camera_a_draws_exactly_domain_a():
    d = ShiftDomain.like(DOMAIN_A, name="inst")
    for seed in range(6):
        assert np.array_equal(sample_image(np.random.default_rng(seed), d, 32),
                              sample_image(np.random.default_rng(seed), DOMAIN_A, 32))


def test_acquisition_images_are_a_content_through_the_other_camera():
    a_like = ShiftDomain.like(DOMAIN_A, name="x")
    acq = S.shift_params("acquisition", "quick").domain
    assert acq.camera == S.CAMERA_Q != CAMERA_A
    for seed in range(6):
        rng = np.random.default_rng(seed)
        kind, scene, light, flip = a_like.scene(rng, 32)                  # A's content ...
        through_q = render(rng, scene, 32, S.CAMERA_Q, light, flip)       # ... through camera Q
        assert np.array_equal(acq.draw(np.random.default_rng(seed), 32), through_q)
        rng = np.random.default_rng(seed)
        kind, scene, light, flip = a_like.scene(rng, 32)
        assert np.array_equal(render(rng, scene, 32, CAMERA_A, light, flip),
                              sample_image(np.random.default_rng(seed), DOMAIN_A, 32))


def test_built_acquisition_world_real_images_are_a_content_through_camera_q(built):
    root = built[1]["acquisition"]
    a_like = ShiftDomain.like(DOMAIN_A, name="x")
    rng = E.rng_for(0, "acq/real")
    files = sorted((root / TEST_SPLIT / REAL).glob("*.png"))
    assert len(files) == TINY["n_test"]
    for path in files:
        kind, scene, light, flip = a_like.scene(rng, 32)
        assert np.array_equal(pixels(path), render(rng, scene, 32, S.CAMERA_Q, light, flip))


def test_content_domain_changes_the_spectrum_not_the_colours():
    from gfd.analysis.shift_stats import mean_log_spectrum
    content = S.shift_params("content", "quick").domain
    a = sample_images(np.random.default_rng(0), DOMAIN_A, 24, 32)
    a2 = sample_images(np.random.default_rng(1), DOMAIN_A, 24, 32)
    c = sample_images(np.random.default_rng(0), content, 24, 32)
    d = lambda x, y: float(np.sqrt(np.mean((mean_log_spectrum(x) - mean_log_spectrum(y)) ** 2)))  # noqa: E731
    assert d(c, a) > 1.5 * d(a2, a)
    assert content.camera == CAMERA_A


def test_post_processing_world_is_the_source_test_images_processed(tmp_path):
    src = tmp_path / "mini-fake"
    rng = np.random.default_rng(0)
    for cls in ["real", "progan", "mmdgan", "sngan", "infomax"]:
        for prefix in (("A-real_",) if cls == REAL else ("A-g0_", "A-g1_")):
            write_pngs(src / "test_closed" / cls, rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8), prefix)
    (src / "manifest.json").write_text("{}")
    for tag in ("jpeg50", "resize50", "blur10"):
        op, strength = S.POST[tag]
        p = S.PostParams(world=f"post-{tag}", tag=tag, op=op, strength=strength, source=src.name,
                         source_size="quick", image_size=16)
        out = S.WORLDS[p.world].build(tmp_path / tag, p, progress=False, workers=1, root=tmp_path)
        assert E.check_benchmark(out, p, checksums=True) == []
        m = E.read_manifest(out)
        assert m["counts"] == {TEST_SPLIT: {"real": 3, "progan": 6, "mmdgan": 6, "sngan": 6, "infomax": 6}}
        for path in sorted((src / "test_closed" / "sngan").glob("*.png")):
            inst, index = path.name.split("-", 1)[1].split("_")
            mine = out / TEST_SPLIT / "sngan" / f"{tag}-{inst}_{index}"
            assert np.array_equal(pixels(mine), S.post_process(pixels(path)[None], op, strength)[0])


def test_post_processing_strengths_are_ordered():
    imgs = sample_images(np.random.default_rng(0), DOMAIN_A, 6, 32)
    err = lambda op, k: np.abs(S.post_process(imgs, op, k).astype(int) - imgs).mean()  # noqa: E731
    assert err("jpeg", 50) > err("jpeg", 75) > err("jpeg", 90) > 0
    assert err("resize", 0.5) > err("resize", 0.75) > 0
    assert err("blur", 1.0) > err("blur", 0.5) > 0


# --- building, caching, reading ---------------------------------------------------------------------

def test_built_world_layout_manifest_and_cache(built):
    root, worlds = built
    folder = worlds["instance"]
    m = E.read_manifest(folder)
    assert folder.name == S.WORLDS["instance"].cache_name(S.shift_params("instance", "quick", **TINY), "quick") == m["name"]
    assert E.check_benchmark(folder, checksums=True) == []
    assert json.loads((folder / "classes.json").read_text()) == m["classes"] == gan128.WORLD.make_params("quick").classes
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == [TEST_SPLIT]
    prefixes = {c: sorted({p.name.split("_")[0] for p in (folder / TEST_SPLIT / c).glob("*.png")}) for c in m["classes"]}
    assert prefixes[REAL] == ["inst-real"] and prefixes["sngan"] == ["inst-g0", "inst-g1"]
    again = S.load_shift_world("instance", "quick", root=root, progress=False, overrides=TINY, workers=1)
    assert again == folder and E.read_manifest(again)["build"] == m["build"]          # read from the cache


def test_interrupted_build_resumes_from_saved_generators(built, tmp_path):
    p = S.shift_params("instance", "quick", **TINY)
    partial = tmp_path / "partial"
    first = S.WORLDS["instance"].build(tmp_path / "a", p, progress=False, workers=1, partial=partial)
    again = S.WORLDS["instance"].build(tmp_path / "b", p, progress=False, workers=1, partial=partial)
    m1, m2 = E.read_manifest(first), E.read_manifest(again)
    assert m2["build"]["generators_reused"] == len(S.plan_jobs(p)) and m2["build"]["generators_trained"] == 0
    assert m1["checksums"] == m2["checksums"] == E.read_manifest(built[1]["instance"])["checksums"]


def test_world_is_readable_by_the_evaluators_loader(built):
    from gfd.config import get_config
    from gfd.runs.evaluate_worlds import world_bundle
    cfg = get_config("quick", crop=16, batch_size=4, num_workers=0, device="cpu")
    classes = gan128.WORLD.make_params("quick").classes
    b = world_bundle(built[1]["instance"], cfg, classes)
    x, y = next(iter(b[TEST_SPLIT]))
    assert x.shape == (4, 3, 16, 16) and len(b.datasets[TEST_SPLIT]) == 5 * TINY["n_test"]
