"""What keeps two runs paired and a resumed run the same run: C's pre-training is shared (cached) only
between runs whose C would train identically; the real images that carry the fingerprints come from
a stream of their own; a resumed trainer continues from exactly where the stopped one was."""
import random

import numpy as np
import pytest
import torch
from PIL import Image

from gfd.data import get_loaders
from gfd.models.classifier import build_classifier
from gfd.pretrain import NOT_READ_BY_C, classifier_key, pretrain_classifier
from gfd.stepper import training_streams
from gfd.train import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


# --- C's cache: one C per (data, everything C's pre-training reads) --------------------------------

# A field that changes what C is, what it trains on, how it trains, or which of its states is kept,
# with another valid value for it.  ``step`` marks the StepLR fields (read only under lr_schedule="step").
C_READS = {
    "data_root": "/somewhere/else", "task": "detection", "benchmark_size": "default", "benchmark": "gan1024",
    "transform": "mini_x4", "crop": 40, "hflip": True, "batch_size": 8,                      # its input
    "classifier_arch": "compact", "classifier_width": 8, "classifier_weights": "auto",     # C itself
    "lr": 5e-4, "lr_schedule": "step", "c_pretrain_steps": 100, "seed": 1,                 # its training
    "eval_every": 25, "select": "last", "patience": 5, "patience_after": 0.25,             # what is kept
    "lr_step": ("step", 100), "lr_gamma": ("step", 0.5),
}


def test_c_cache_key_changes_with_every_field_that_changes_cs_training_or_input(tiny_cfg):
    base = tiny_cfg
    for name, value in C_READS.items():
        cfg = base
        if isinstance(value, tuple):                   # a StepLR field: compared under the step schedule
            cfg, value = base.with_(lr_schedule=value[0]), value[1]
        assert getattr(cfg, name) != value, name
        changed = cfg.with_(**{name: value})
        assert classifier_key(changed, "data") != classifier_key(cfg, "data"), \
            f"{name}={value!r} trains another C but shares its cache key"
    # the data themselves: another dataset never gets this dataset's C
    assert classifier_key(base, "dataset-a") != classifier_key(base, "dataset-b")
    assert classifier_key(base, "dataset-a") != classifier_key(base, None)
    # and nothing C reads is declared unread
    assert not set(C_READS) & NOT_READ_BY_C


def test_c_cache_key_ignores_what_only_g_d_and_f_read(tiny_cfg):
    """The rows of Table 4 that use C share it: G's, D's and F's fields and G's budget leave the key alone."""
    key = classifier_key(tiny_cfg, "data")
    for change in (dict(unet_width=8), dict(disc_width=8), dict(w1=3.0), dict(use_D=False),
                   dict(use_percept=False), dict(steps=9), dict(ckpt_every=3), dict(perceptual_layer="relu1_2")):
        assert classifier_key(tiny_cfg.with_(**change), "data") == key, change


def test_a_cached_c_is_reused_only_by_runs_whose_c_trains_the_same(tiny_cfg, dataset, tmp_path):
    def pretrain(cfg):
        C = build_classifier(cfg, 3)
        record = pretrain_classifier(C, cfg, get_loaders(dataset, cfg), device=torch.device("cpu"),
                                     cache_dir=tmp_path, progress=False)
        return record["cached"], C

    cached, first = pretrain(tiny_cfg)
    assert not cached
    cached, again = pretrain(tiny_cfg.with_(unet_width=8, use_D=False))        # a G/D change: the same C
    assert cached and all(torch.equal(a, b) for a, b in zip(first.state_dict().values(),
                                                            again.state_dict().values()))
    for change in (dict(crop=24), dict(lr=2e-3), dict(c_pretrain_steps=3), dict(seed=1)):
        cached, _ = pretrain(tiny_cfg.with_(**change))
        assert not cached, f"{change}: another C's training, yet the cached C was used"


# --- the x_real stream is its own: own seed, own crops ----------------------------------------------

def coordinate_dataset(root, n=4, side=64):
    """Every image is the same picture whose red channel is 4x its column and green 4x its row, so a
    crop's top-left corner can be read off the crop (whatever flip): ROOT/<split>/<class>/*.png."""
    yy, xx = np.mgrid[0:side, 0:side]
    picture = np.stack([4 * xx, 4 * yy, np.zeros_like(xx)], -1).astype(np.uint8)
    for split in ("train", "val", "test_closed"):
        for c in ("real", "ganA", "ganB"):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(picture).save(root / split / c / f"{i:03d}.png")
    return root


def corners(x):
    """(column, row) of the top-left corner of each crop of a batch made by :func:`coordinate_dataset`."""
    v = ((x[:, :2] * 0.5 + 0.5) * 255).round()                    # back to the picture's 0..252
    return [tuple(int(round(c / 4)) for c in row) for row in v.amin(dim=(-2, -1)).tolist()]


def test_the_real_image_stream_has_its_own_seed_and_its_own_crops(tiny_cfg, tmp_path):
    bundle = get_loaders(coordinate_dataset(tmp_path / "coords"), tiny_cfg)
    g_stream, real_stream = training_streams(tiny_cfg, bundle)
    steps = [(next(g_stream)[0], next(real_stream)[0]) for _ in range(6)]
    g_corners = [corners(x) for x, _ in steps]
    real_corners = [corners(x_real) for _, x_real in steps]
    assert len({c for cs in g_corners + real_corners for c in cs}) > 8      # crops do move
    for step, (g, r) in enumerate(zip(g_corners, real_corners), 1):
        assert g != r, f"step {step}: x_real was cropped with the very draws of G's batch ({g})"

    # the real images do not depend on how far G's stream has gone, nor G's batches on the real stream
    for g_ahead in (0, 5):
        g_stream, real_stream = training_streams(tiny_cfg, bundle)
        for _ in range(g_ahead):
            next(g_stream)
        assert [corners(next(real_stream)[0]) for _ in range(6)] == real_corners
    g_stream, real_stream = training_streams(tiny_cfg, bundle)
    for _ in range(4):
        next(real_stream)
    assert [corners(next(g_stream)[0]) for _ in range(6)] == g_corners

    # and another run seed gives other real crops (the stream is seeded by the run)
    _, other = training_streams(tiny_cfg.with_(seed=1), bundle)
    assert [corners(next(other)[0]) for _ in range(6)] != real_corners


# --- resuming: everything a later step draws from is where the stopped run left it ------------------

def global_rng():
    return (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())


def same_rng(a, b):
    return torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def scramble_global_rng(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def test_a_resumed_trainer_holds_the_stopped_runs_stream_positions_and_rng_states(tiny_cfg, bundle, tmp_path):
    cfg = tiny_cfg.with_(eval_every=2, ckpt_every=0)
    full = Trainer(cfg, bundle, tmp_path / "full")
    h_full = full.fit(steps=6, progress=False)

    stopped = Trainer(cfg, bundle, tmp_path / "run")
    stopped.fit(steps=3, progress=False)               # G's stream mid-epoch, the real one in its 3rd epoch
    streams = {"train": stopped.train_stream.state_dict(), "real": stopped.real_stream.state_dict()}
    assert streams["train"] != streams["real"]
    path = stopped.save()
    rng_at_stop = global_rng()

    resumed = Trainer(cfg, bundle, tmp_path / "run", pretrained=False)
    scramble_global_rng(1234)                            # the new process has moved its RNGs
    resumed.load(path)
    assert resumed.train_stream.state_dict() == streams["train"]
    assert resumed.real_stream.state_dict() == streams["real"]
    assert same_rng(global_rng(), rng_at_stop), "the RNG states were not restored"
    # the next batches of both streams are the ones the uninterrupted run drew at step 4
    replay = Trainer(cfg, bundle, tmp_path / "replay", pretrained=False)
    for _ in range(3):
        next(replay.train_stream), next(replay.real_stream)
    for mine, theirs in ((resumed.train_stream, replay.train_stream), (resumed.real_stream, replay.real_stream)):
        a, b = next(mine), next(theirs)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    resumed.load(path)                                   # (undo the draws just made)
    h = resumed.fit(steps=6, progress=False)
    for name in ("L_z", "L_adv_G", "L_cls_G", "L_percept", "L_G", "L_cls_C", "L_adv_D", "lr"):
        assert h[name] == h_full[name], name          # (val_acc: the stopped run also validated at its end)


def test_training_steps_draw_nothing_from_the_global_rngs(tiny_cfg, bundle, tmp_path):
    """So that a resume cannot depend on them: what a step draws (batches, crops) comes from the
    streams, whatever the process's RNGs hold when the step runs."""
    cfg = tiny_cfg.with_(eval_every=2, ckpt_every=0)
    runs = []
    for seed in (1, 2):
        t = Trainer(cfg, bundle, tmp_path / f"r{seed}")
        t.fit(steps=2, progress=False)
        scramble_global_rng(seed)
        runs.append(t.fit(steps=5, progress=False))
    for name in ("L_z", "L_adv_G", "L_cls_G", "L_percept", "L_cls_C", "L_adv_D", "val_acc"):
        assert runs[0][name] == runs[1][name], name
