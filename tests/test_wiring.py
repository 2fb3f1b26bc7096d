"""What the trainer feeds its networks and losses (Sec. 3.4), with inputs that tell the roles apart.

The losses have their own hand computations (test_losses.py); these tests check the *wiring*:
which tensor reaches which network in the G step and in the D/C step, with which targets, which
parameters get gradients, which split is read for selection, and how the learning rate is scheduled.

x, x_real and x_fp are drawn so that no two of them are equal, the labels are not sorted, and the
class ``real`` is not first (class order from ``classes.json``), so that a trainer that mixes
up x and x_real, D's two inputs, or class 0 and the real class gives different tensors.
Forward hooks record what each network receives and returns; spies on :mod:`gfd.losses` record
what each loss receives (by identity of the tensors the networks returned).
"""
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from gfd import losses
from gfd.data import get_loaders
from gfd.train import Trainer, fixed, load_or_train

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = ["ganA", "real", "ganB"]          # 'real' is NOT class 0
WEIGHTS = dict(w1=3.0, w2=0.7, w3=2.5, w4=0.4)   # all distinct: a swapped pair changes L_G
SIDE = 32


def distinct_batch(b=4):
    """x, y, x_real with no coincidences: x in [-1, 0), x_real in [0, 1), labels 1, 2, 0, 1."""
    g = torch.Generator().manual_seed(11)
    x = torch.rand(b, 3, SIDE, SIDE, generator=g) - 1
    x_real = torch.rand(b, 3, SIDE, SIDE, generator=g)
    y = torch.tensor([1, 2, 0, 1][:b])
    return x, y, x_real


class Recorder:
    """Forward hooks on G, D, C, F and spies on the losses; ``calls[name]`` = [(input, output), ...]."""

    LOSSES = ("fingerprinted", "latent_cls", "adv_g", "cls_g", "percept", "cls_c", "adv_d",
              "generator_objective", "dc_objective")

    def __init__(self, trainer, monkeypatch):
        self.calls = {name: [] for name in ("G", "D", "C", "F")}
        self.loss_args = {name: [] for name in self.LOSSES}
        for name, net in trainer.networks().items():
            net.register_forward_hook(lambda m, inp, out, name=name: self.calls[name].append((inp[0], out)))
        for name in self.LOSSES:
            real = getattr(losses, name)

            def spy(*args, _real=real, _name=name):
                self.loss_args[_name].append(args)
                return _real(*args)
            monkeypatch.setattr(losses, name, spy)

    def output_for(self, net, x):
        """The output of the one call of ``net`` whose input equals ``x``."""
        outs = [out for inp, out in self.calls[net] if inp.shape == x.shape and torch.allclose(inp, x)]
        assert len(outs) == 1, f"{net} was called {len(outs)} times on that input"
        return outs[0]


def grads(module):
    return [p.grad for p in module.parameters()]


def all_nonzero(gs):
    return all(g is not None for g in gs) and sum(g.abs().sum().item() for g in gs) > 0


# --- the G step (Eq. 1, 2, 4, 5, 6, 7) -------------------------------------------------------------

def test_g_step_feeds_x_to_g_and_x_real_plus_f_to_d_c_and_f(tiny_cfg, monkeypatch):
    t = Trainer(tiny_cfg.with_(**WEIGHTS), classes=CLASSES)
    x, y, x_real = distinct_batch()
    rec = Recorder(t, monkeypatch)
    values, x_fp_out = t.g_step(x, y, x_real)

    # G sees the input images x, once
    assert len(rec.calls["G"]) == 1 and torch.equal(rec.calls["G"][0][0], x)
    out = rec.calls["G"][0][1]
    f = out.fingerprint.detach()
    x_fp = (x_real + f).clamp(-1, 1)                          # Eq. 1 as the text reads it, clamped
    assert not torch.allclose(x_fp, (x + f).clamp(-1, 1))
    assert (x_real + f).abs().max() > 1                       # the clamp is exercised
    assert rec.loss_args["fingerprinted"][0][0] is x_real      # built on x_real, not on x
    torch.testing.assert_close(x_fp_out, x_fp)
    assert not x_fp_out.requires_grad                          # handed to the D/C step detached

    # D and C judge x_fp (once each); F sees x_fp and x_real, never x
    assert len(rec.calls["D"]) == 1 and torch.allclose(rec.calls["D"][0][0], x_fp)
    assert len(rec.calls["C"]) == 1 and torch.allclose(rec.calls["C"][0][0], x_fp)
    assert len(rec.calls["F"]) == 2
    assert not any(torch.allclose(inp, x) for inp, _ in rec.calls["F"])

    # each loss gets the right network output and the right target
    (h_logits, y_z), = rec.loss_args["latent_cls"]
    assert h_logits is out.logits and torch.equal(y_z, y)
    (d_out,), = rec.loss_args["adv_g"]
    assert d_out is rec.output_for("D", x_fp)
    (c_out, y_c), = rec.loss_args["cls_g"]
    assert c_out is rec.output_for("C", x_fp) and torch.equal(y_c, y)
    (feat_fp, feat_real), = rec.loss_args["percept"]
    assert feat_fp is rec.output_for("F", x_fp)                # Eq. 5: F(x_fp) ...
    assert feat_real is rec.output_for("F", x_real)            # ... against F(x_real), not F(x)

    # Eq. 7 with the config's four (distinct) weights, each on its own term
    (terms, *weights), = rec.loss_args["generator_objective"]
    assert tuple(weights) == (3.0, 0.7, 2.5, 0.4)
    by_hand = 3.0 * values["L_z"] + 0.7 * values["L_adv_G"] + 2.5 * values["L_cls_G"] + 0.4 * values["L_percept"]
    assert math.isclose(values["L_G"], by_hand, rel_tol=1e-5)

    # gradients: every parameter of G (encoder, decoder, head); none of D, C, F
    assert all_nonzero(grads(t.G.encoder)) and all_nonzero(grads(t.G.decoder)) and all_nonzero(grads(t.G.head))
    for net in (t.D, t.C, t.F):
        assert all(g is None for g in grads(net))


def test_each_g_term_reaches_the_right_part_of_g(tiny_cfg):
    """L_z trains G_enc + H only; the terms on x_fp train G_dec (through x_fp) but not H."""
    t = Trainer(tiny_cfg.with_(**WEIGHTS), classes=CLASSES)
    x, y, x_real = distinct_batch()
    parts = {"enc": list(t.G.encoder.parameters()), "dec": list(t.G.decoder.parameters()),
             "head": list(t.G.head.parameters())}
    with fixed(t.D, t.C):
        terms, _ = t.generator_terms(x, y, x_real)
        reached = {}
        for name in ("L_z", "L_adv_G", "L_cls_G", "L_percept"):
            for part, params in parts.items():
                gs = torch.autograd.grad(terms[name], params, retain_graph=True, allow_unused=True)
                reached[name, part] = any(g is not None and g.abs().sum() > 0 for g in gs)
    assert reached["L_z", "enc"] and reached["L_z", "head"] and not reached["L_z", "dec"]
    for name in ("L_adv_G", "L_cls_G", "L_percept"):
        assert reached[name, "dec"] and reached[name, "enc"] and not reached[name, "head"], name


# --- the D/C step (Eq. 3, 4, 8) --------------------------------------------------------------------

def test_dc_step_trains_d_on_x_against_x_fp_and_c_on_x(tiny_cfg, monkeypatch):
    t = Trainer(tiny_cfg.with_(**WEIGHTS), classes=CLASSES)
    x, y, x_real = distinct_batch()
    x_fp = x_real + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    rec = Recorder(t, monkeypatch)
    values = t.dc_step(x, y, x_fp)

    assert rec.calls["G"] == [] and rec.calls["F"] == []       # G fixed, F not part of Eq. 8
    # C is trained on the input images with their labels (Eq. 3)
    assert len(rec.calls["C"]) == 1 and torch.equal(rec.calls["C"][0][0], x)
    (c_out, y_c), = rec.loss_args["cls_c"]
    assert c_out is rec.calls["C"][0][1] and torch.equal(y_c, y)
    # D: the input images x are its positives, x_fp its negatives (Eq. 4), in that order
    assert len(rec.calls["D"]) == 2
    (d_pos, d_neg), = rec.loss_args["adv_d"]
    assert d_pos is rec.output_for("D", x)
    assert d_neg is rec.output_for("D", x_fp)
    assert not any(torch.allclose(inp, x_real) for inp, _ in rec.calls["D"])
    # Eq. 8, unweighted
    assert math.isclose(values["L_DC"], values["L_cls_C"] + values["L_adv_D"], rel_tol=1e-6)
    # gradients: D and C, not G
    assert all_nonzero(grads(t.D)) and all_nonzero(grads(t.C))
    assert all(g is None for g in grads(t.G))


def test_train_step_hands_the_g_step_x_fp_detached_to_the_dc_step(tiny_cfg, monkeypatch):
    t = Trainer(tiny_cfg.with_(**WEIGHTS), classes=CLASSES)
    x, y, x_real = distinct_batch()
    seen = {}
    real_g, real_dc = t.g_step, t.dc_step

    def g_spy(*args):
        seen["g"] = args
        seen["g_out"] = real_g(*args)
        return seen["g_out"]

    def dc_spy(*args):
        seen["dc"] = args
        return real_dc(*args)
    monkeypatch.setattr(t, "g_step", g_spy)
    monkeypatch.setattr(t, "dc_step", dc_spy)
    values = t.train_step(x, y, x_real)
    g_x, g_y, g_real = seen["g"]
    assert g_x is x and g_y is y and g_real is x_real
    dc_x, dc_y, dc_fp = seen["dc"]
    assert dc_x is x and dc_y is y
    assert dc_fp is seen["g_out"][1] and not dc_fp.requires_grad
    assert set(values) == {"L_z", "L_adv_G", "L_cls_G", "L_percept", "L_G", "L_cls_C", "L_adv_D", "L_DC"}


def test_g_only_runs_the_encoder_and_head_on_x(tiny_cfg, monkeypatch):
    t = Trainer(tiny_cfg.with_(**WEIGHTS, use_D=False, use_C=False, use_percept=False), classes=CLASSES)
    x, y, x_real = distinct_batch()
    t.G.train()
    with torch.no_grad():
        expected = t.G.classify(x)                              # before the update, in train mode
    rec = Recorder(t, monkeypatch)
    values = t.train_step(x, y, x_real)
    assert set(values) == {"L_z", "L_G"} and math.isclose(values["L_G"], 3.0 * values["L_z"], rel_tol=1e-6)
    assert rec.calls["G"] == []                                 # the decoder never runs ...
    (logits, y_z), = rec.loss_args["latent_cls"]
    torch.testing.assert_close(logits.detach(), expected)       # ... only G_enc + H, on x
    assert torch.equal(y_z, y)
    assert all(g is None for g in grads(t.G.decoder)) and all_nonzero(grads(t.G.head))


# --- data fed by the loop: real images from the real class, exactly as stored ----------------------

def write_images(root, classes, splits=("train", "val", "test_closed", "test_open"), n=4, size=SIDE):
    rng = np.random.default_rng(0)
    for split in splits:
        for c in classes:
            folder = root / split / c
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (root / "classes.json").write_text(json.dumps(classes))
    return root


def images_by_hand(root, split, classes):
    """Every image of ``split`` read with PIL and scaled to [-1, 1] by hand, with its class index."""
    xs, ys = [], []
    for k, c in enumerate(classes):
        for p in sorted((root / split / c).glob("*.png")):
            xs.append(torch.from_numpy(np.asarray(Image.open(p), dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1)
            ys.append(k)
    return torch.stack(xs), torch.tensor(ys)


def match(rows, images):
    """Index of the stored image equal to each row (-1 where none is)."""
    d = (rows[:, None] - images[None]).abs().flatten(2).amax(2)
    best = d.min(1)
    return torch.where(best.values < 1e-5, best.indices, torch.full_like(best.indices, -1))


@pytest.fixture
def real_second(tiny_cfg, tmp_path):
    root = write_images(tmp_path / "ds", CLASSES)
    return root, get_loaders(root, tiny_cfg)


def test_class_order_from_classes_json_puts_real_second(real_second):
    root, bundle = real_second
    assert bundle.classes == CLASSES and bundle.real_index == 1


def test_fit_draws_x_real_from_the_real_class_and_images_as_stored(tiny_cfg, real_second, monkeypatch):
    """Images exactly the crop size, no flips by default: every batch row is a stored image, pixel for pixel."""
    root, bundle = real_second
    t = Trainer(tiny_cfg.with_(**WEIGHTS, steps=6, use_C=False, use_percept=False), bundle)
    labels = torch.cat([next(t.real_stream)[1] for _ in range(3)])
    assert (labels == 1).all()                                  # the class named 'real', not class 0
    fed = []
    real_step = t.train_step

    def spy(x, y, x_real=None):
        fed.append((x, y, x_real))
        return real_step(x, y, x_real)
    monkeypatch.setattr(t, "train_step", spy)
    t.fit(progress=False)
    assert len(fed) == 6
    images, ys = images_by_hand(root, "train", CLASSES)
    for x, y, x_real in fed:
        i = match(x, images)
        assert (i >= 0).all(), "a training image was altered (flipped? resized?)"
        assert torch.equal(ys[i], y)                            # each image with its own label
        j = match(x_real, images)
        assert (j >= 0).all() and (ys[j] == 1).all()            # x_real: real images only


def test_train_loader_yields_stored_pixels_without_flips_or_crops(tiny_cfg, real_second):
    root, bundle = real_second
    images, ys = images_by_hand(root, "train", CLASSES)
    for _ in range(4):                                          # 4 epochs: a random flip would show
        for x, y in bundle["train"]:
            i = match(x, images)
            assert (i >= 0).all() and torch.equal(ys[i], y)
    assert not tiny_cfg.hflip


# --- selection reads val, never a test split --------------------------------------------------------

class Untouchable:
    """A loader / dataset that fails loudly when anyone reads it."""

    def __init__(self, split):
        self.split = split

    def _fail(self, *args):
        raise AssertionError(f"the {self.split} split was read during training or selection")

    __iter__ = __len__ = __getitem__ = _fail


class Counting:
    """A loader that counts how often it is iterated."""

    def __init__(self, loader):
        self.loader, self.reads = loader, 0

    def __iter__(self):
        self.reads += 1
        return iter(self.loader)

    def __getattr__(self, name):
        return getattr(self.loader, name)


def test_training_and_validation_never_touch_a_test_split(tiny_cfg, real_second, tmp_path, monkeypatch):
    _, bundle = real_second
    for split in ("test_closed", "test_open"):
        bundle.loaders[split] = Untouchable(split)
        bundle.datasets[split] = Untouchable(split)
    val = bundle.loaders["val"] = Counting(bundle.loaders["val"])
    cfg = tiny_cfg.with_(**WEIGHTS, steps=2, c_pretrain_steps=1, eval_every=1, ckpt_every=1)   # one C evaluation
    t = load_or_train(cfg, bundle, out_dir=tmp_path / "run", progress=False)
    assert t.step == 2 and t.history["eval_step"] == [1, 2]
    assert len(t.history["c_val_acc"]) == 1
    assert val.reads == 3                                       # C after pre-training, G at steps 1 and 2
    t.validate()
    t.validate(model="C")
    assert val.reads == 5
    again = load_or_train(cfg, bundle, out_dir=tmp_path / "run", progress=False)   # loads, reads nothing
    assert again.step == 2 and val.reads == 5


# --- the learning-rate schedule (StepLR per iteration, Sec. 4.1) -----------------------------------

def test_step_lr_decays_every_lr_step_iterations_for_both_optimisers(tiny_cfg, real_second):
    _, bundle = real_second
    cfg = tiny_cfg.with_(**WEIGHTS, steps=7, lr=1e-3, lr_step=3, lr_gamma=0.5, lr_schedule="step")
    t = Trainer(cfg, bundle)
    h = t.fit(progress=False)
    # the lr recorded after iteration n has seen n scheduler steps: 1e-3 * 0.5 ** (n // 3)
    assert h["lr"] == pytest.approx([1e-3 * 0.5 ** (n // 3) for n in range(1, 8)], rel=1e-9)
    assert t.opt_DC.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.25)
    assert t.sched_G.last_epoch == t.sched_DC.last_epoch == 7   # once per iteration, pre-training not counted
