"""The evaluate-only path (gfd.runs.evaluate_worlds): adding a world to existing run records gives the
same numbers as a fresh evaluation of the trained model.  On a tiny synthetic world built here only."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from gfd.config import get_config
from gfd.data import get_loaders
from gfd.evaluate import evaluate_model
from gfd.runs.evaluate_worlds import RefitMismatch, add_worlds, world_bundle
from gfd.runs.records import make_record, read_record, run_identity
from gfd.runs.variant import train_and_measure

CLASSES = ["real", "ganA", "ganB"]
TINY = dict(crop=32, batch_size=4, unet_depth=2, unet_width=4, unet_max_width=16, disc_width=4,
            classifier_arch="resnet18", classifier_width=4, classifier_weights="random",
            perceptual_weights="random", perceptual_layer="relu1_1", steps=4, c_pretrain_steps=2,
            eval_every=2, ckpt_every=0, num_workers=0, lr=1e-3, device="cpu", seed=0)


def write_split(root, split, n, seed, prefix=""):
    rng = np.random.default_rng(seed)
    for k, c in enumerate(CLASSES):
        (root / split / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = np.clip(rng.normal(60 + 60 * k, 40, (36, 36, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / split / c / f"{prefix}{i:05d}.png")


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("evalonly")
    data = tmp / "closed"
    for i, split in enumerate(("train", "val", "test_closed")):
        write_split(data, split, 6, i)
    world = tmp / "world"
    write_split(world, "test", 5, 9, prefix="W-g0_")
    (world / "classes.json").write_text(json.dumps(CLASSES))
    cfg = get_config("quick", **TINY).with_(data_root=str(data))
    bundle = get_loaders(data, cfg)
    return tmp, cfg, bundle, world


def record_run(tmp, cfg, bundle, method):
    """Train and measure ``method`` as reproduce does, and store its record; return (path, result)."""
    res = train_and_measure(cfg, bundle, method, runs_root=tmp / "runs", progress=False)
    options = None
    if method not in ("G", "GFD-Net"):
        from gfd.baselines import OPTIONS, TABLE_NAMES
        from gfd.baselines.common import resolve_options
        options = dataclasses.asdict(resolve_options(OPTIONS[TABLE_NAMES[method]], res.cfg))
    identity = run_identity(method, res.cfg.to_dict(), bundle.identity, options)
    record = make_record(method, cfg.seed, identity, results=res.results)
    record = json.loads(json.dumps(record))
    path = tmp / "records" / f"{method.lower()}-seed0.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))
    return path, res


def fresh(res, cfg, world):
    b = world_bundle(world, res.cfg, CLASSES)
    return evaluate_model(res.model, b, splits=("test",))["test"]


@pytest.mark.parametrize("method", ["G", "DCT", "PRNU"])
def test_added_world_equals_a_fresh_evaluation(setting, method):
    tmp, cfg, bundle, world = setting
    path, res = record_run(tmp, cfg, bundle, method)
    before = read_record(path)
    kept = sorted((tmp / "runs").rglob("*"))
    record = add_worlds(path, {"w": world}, runs_root=tmp / "runs", data=bundle)
    want = fresh(res, cfg, world)
    got = record["worlds"]["w"]
    assert got["acc"] == want["acc"] and got["confusion"] == want["confusion"] and got["n"] == 15
    assert got["by_source"] == want["by_source"]
    stored = read_record(path)
    assert stored["worlds"]["w"]["acc"] == want["acc"]
    assert {k: stored[k] for k in before} == before                     # key, config, results unchanged
    if method != "G":
        assert sorted((tmp / "runs").rglob("*")) == kept                # no model file is kept ...
        again = add_worlds(path, {"w2": world}, runs_root=tmp / "runs", data=bundle, write=False)
        assert again["worlds"]["w2"]["confusion"] == want["confusion"]   # ... the refit is the same model


def test_a_gfd_net_run_is_restored_from_its_checkpoint_not_retrained(setting, monkeypatch):
    tmp, cfg, bundle, world = setting
    path, res = record_run(tmp, cfg, bundle, "G")
    import gfd.train as T
    monkeypatch.setattr(T.Trainer, "fit", lambda *a, **k: pytest.fail("evaluate-only must not train"))
    record = add_worlds(path, {"w": world}, runs_root=tmp / "runs", data=bundle, write=False)
    assert record["worlds"]["w"]["acc"] == fresh(res, cfg, world)["acc"]


def test_a_refit_that_does_not_reproduce_the_record_adds_nothing(setting):
    tmp, cfg, bundle, world = setting
    path, _ = record_run(tmp, cfg, bundle, "DCT")
    record = read_record(path)
    record["results"]["val"]["confusion"][0][0] += 1                      # not this model's numbers
    path.write_text(json.dumps(record))
    with pytest.raises(RefitMismatch, match="other numbers"):
        add_worlds(path, {"w": world}, runs_root=tmp / "runs", data=bundle)
    assert "worlds" not in read_record(path)


def test_world_with_other_classes_is_refused(setting, tmp_path):
    from gfd.layout import DataLayoutError
    _, cfg, _, world = setting
    with pytest.raises(DataLayoutError, match="classes"):
        world_bundle(world, cfg, ["real", "ganB", "ganA"])
