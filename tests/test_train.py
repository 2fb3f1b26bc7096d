"""The alternating trainer (Sec. 3.4), its checkpoints and load_or_train, on tiny models and data."""

import pytest
import torch

from gfd.checkpoint import CheckpointError, load_checkpoint
from gfd.data import get_loaders
from gfd.inference import attribute
from gfd.train import NonFiniteLossError, Trainer, fixed, load_or_train


pytestmark = pytest.mark.usefixtures("one_thread")


def a_batch(trainer, seed=0, b=4, s=32):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, s, s, generator=g) * 2 - 1
    y = torch.arange(b) % len(trainer.classes)
    x_real = torch.rand(b, 3, s, s, generator=g) * 2 - 1
    return x, y, x_real


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_g_step_leaves_d_and_c_unchanged_and_dc_step_leaves_g_unchanged(tiny_cfg, bundle):
    t = Trainer(tiny_cfg, bundle)
    x, y, x_real = a_batch(t)
    g0, d0, c0 = snapshot(t.G), snapshot(t.D), snapshot(t.C)
    values, x_fp = t.g_step(x, y, x_real)
    assert set(values) == {"L_z", "L_adv_G", "L_cls_G", "L_percept", "L_G"}
    assert not same(g0, snapshot(t.G))                       # G moved ...
    assert same(d0, snapshot(t.D)) and same(c0, snapshot(t.C))  # ... D and C (params and BN stats) did not
    assert all(p.requires_grad for p in t.D.parameters())     # and are trainable again afterwards
    g1 = snapshot(t.G)
    values = t.dc_step(x, y, x_fp)
    assert set(values) == {"L_cls_C", "L_adv_D", "L_DC"}
    assert same(g1, snapshot(t.G))
    assert not same(d0, snapshot(t.D)) and not same(c0, snapshot(t.C))


def test_g_gets_a_nonzero_gradient_through_c(tiny_cfg, bundle):
    # Only L_cls^G is on: if C judged C(x) instead of C(x_real + f), G's decoder would get nothing.
    t = Trainer(tiny_cfg.with_(use_D=False, use_percept=False, w1=0.0), bundle)
    x, y, x_real = a_batch(t)
    with fixed(t.D, t.C):
        terms, _ = t.generator_terms(x, y, x_real)
    terms["L_G"].backward()
    decoder_grads = [p.grad for p in t.G.decoder.parameters()]
    assert all(g is not None for g in decoder_grads)
    assert sum(g.abs().sum().item() for g in decoder_grads) > 0
    assert all(p.grad is None for p in t.C.parameters())      # C is fixed during the G step
    before = snapshot(t.G.decoder)
    t.g_step(x, y, x_real)
    assert not same(before, snapshot(t.G.decoder))


def test_frozen_vgg_gets_no_gradient_and_stays_in_eval(tiny_cfg, bundle):
    t = Trainer(tiny_cfg, bundle)
    f0 = snapshot(t.F)
    for i in range(2):
        t.train_step(*a_batch(t, seed=i))
    assert all(p.grad is None and not p.requires_grad for p in t.F.parameters())
    assert not t.F.training and same(f0, snapshot(t.F))


def test_ablation_switches_match_table_4(tiny_cfg, bundle):
    g_only = Trainer(tiny_cfg.with_(use_D=False, use_C=False, use_percept=False), bundle)
    assert g_only.cfg.g_only and g_only.D is g_only.C is g_only.F is None
    assert set(g_only.train_step(*a_batch(g_only))) == {"L_z", "L_G"}
    g_d_c = Trainer(tiny_cfg.with_(use_percept=False), bundle)
    assert set(g_d_c.train_step(*a_batch(g_d_c))) == {"L_z", "L_adv_G", "L_cls_G", "L_G",
                                                       "L_cls_C", "L_adv_D", "L_DC"}


def test_x_real_is_drawn_from_the_real_class(tiny_cfg, bundle):
    t = Trainer(tiny_cfg, bundle)
    real = bundle.real_index
    labels = torch.cat([next(t.real_stream)[1] for _ in range(4)])
    assert (labels == real).all()


def test_cpu_runs_without_amp_or_channels_last(tiny_cfg, bundle):
    t = Trainer(tiny_cfg, bundle)
    assert t.amp_dtype is None and t.meta["amp"] == "off"
    assert t.memory_format == torch.contiguous_format
    assert t.meta["classifier_weights"] == "random" and t.meta["perceptual_weights"] == "random"


def test_a_tiny_gfd_net_overfits_one_batch(tiny_cfg, bundle):
    t = Trainer(tiny_cfg.with_(lr=3e-3, unet_width=8, lr_schedule="constant"), bundle)
    x, y, x_real = a_batch(t, b=6)
    first = t.train_step(x, y, x_real)
    for _ in range(40):
        last = t.train_step(x, y, x_real)
    assert last["L_z"] < first["L_z"] / 5
    assert last["L_G"] < first["L_G"]
    t.G.eval()
    with torch.no_grad():
        assert (t.G.classify(x).argmax(1) == y).all()


def test_fit_records_history_snapshots_and_checkpoints(tiny_cfg, bundle, tmp_path):
    t = Trainer(tiny_cfg.with_(eval_every=2, ckpt_every=2), bundle, tmp_path / "run")     # evaluates, saves in the loop
    h = t.fit(progress=False)
    assert h["step"] == [1, 2, 3, 4] and len(h["L_G"]) == 4 and len(h["L_DC"]) == 4
    assert len(h["c_pretrain_loss"]) == 2 and len(h["c_val_acc"]) == 1
    assert h["eval_step"] == [2, 4] and all(0 <= a <= 1 for a in h["val_acc"])
    assert h["meta"]["classifier_weights"] == "random"
    assert t.snapshots["step"] == [2, 4]
    assert t.snapshots["fingerprint"][0].shape == t.snapshots["images"].shape
    # a plain torch.load with weights_only=True reads it
    raw = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert raw["step"] == 4 and raw["history"]["L_G"] == h["L_G"]


def test_stop_and_resume_equals_an_uninterrupted_run(tiny_cfg, bundle, tmp_path):
    cfg = tiny_cfg.with_(eval_every=2, ckpt_every=2)              # evaluations and checkpoints on both sides of the stop
    full = Trainer(cfg, bundle, tmp_path / "a")
    h_full = full.fit(steps=6, progress=False)

    first = Trainer(cfg, bundle, tmp_path / "b")
    first.fit(steps=3, progress=False)
    first.save()
    del first
    resumed = Trainer(cfg, bundle, tmp_path / "b", pretrained=False).load(tmp_path / "b" / "checkpoint.pt")
    assert resumed.step == 3
    h_res = resumed.fit(steps=6, progress=False)
    for name in ("L_z", "L_adv_G", "L_cls_G", "L_percept", "L_cls_C", "L_adv_D", "lr"):
        assert h_res[name] == h_full[name], name
    assert same(snapshot(full.G), snapshot(resumed.G))
    assert same(snapshot(full.D), snapshot(resumed.D))


def test_resume_is_exact_with_worker_processes_too(tiny_cfg, make_dataset, tmp_path):
    data = get_loaders(make_dataset(n=4), tiny_cfg.with_(num_workers=2))
    cfg = tiny_cfg.with_(num_workers=2, use_C=False, use_percept=False, eval_every=0, ckpt_every=2)
    full = Trainer(cfg, data).fit(steps=4, progress=False)
    part = Trainer(cfg, data, tmp_path / "w")
    part.fit(steps=2, progress=False)
    resumed = Trainer(cfg, data, tmp_path / "w").load(part.save())
    assert resumed.fit(steps=4, progress=False)["L_G"] == full["L_G"]


def test_non_finite_loss_stops_with_the_loss_and_step_and_keeps_the_checkpoint(tiny_cfg, bundle, tmp_path):
    t = Trainer(tiny_cfg.with_(eval_every=2, ckpt_every=2), bundle, tmp_path / "run")   # a checkpoint at step 2
    t.fit(steps=2, progress=False)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    with torch.no_grad():
        t.G.head.fc.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"L_z = nan at step 3 \(G step\).*checkpoint.pt"):
        t.fit(steps=4, progress=False)
    assert load_checkpoint(ckpt)["step"] == 2


def test_corrupt_or_foreign_checkpoints_give_clear_errors(tiny_cfg, bundle, tmp_path):
    t = Trainer(tiny_cfg, bundle, tmp_path / "run")
    good = t.save()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:2000])
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": {"w": torch.zeros(2)}}, foreign)
    for path in (truncated, text):
        with pytest.raises(CheckpointError, match=str(path.name) + ".*not a readable torch checkpoint"):
            load_checkpoint(path)
    with pytest.raises(CheckpointError, match="foreign.pt is a torch file but not a gfd checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")
    other = Trainer(tiny_cfg.with_(unet_width=8), bundle)
    with pytest.raises(ValueError, match="different config: unet_width=4"):
        other.load(good)


def test_load_or_train_reuses_a_finished_run(tiny_cfg, bundle, tmp_path, monkeypatch):
    cfg = tiny_cfg.with_(steps=2, c_pretrain_steps=1, eval_every=2, ckpt_every=2)
    cache = tmp_path / "cache"
    monkeypatch.setattr("gfd.train.runs_dir", lambda: cache)
    first = load_or_train(cfg, bundle, progress=False)
    assert first.step == 2

    def no_training(*args, **kwargs):
        raise AssertionError("should have been loaded, not trained")
    monkeypatch.setattr(Trainer, "fit", no_training)
    again = load_or_train(cfg, bundle, progress=False)
    assert again.step == 2 and again.history["L_G"] == first.history["L_G"]
    assert same(snapshot(again.G), snapshot(first.G))
    assert [p.name for p in cache.iterdir() if p.name != "pretrained-C"] == [first.out_dir.name]
    with pytest.raises(AssertionError):
        load_or_train(cfg.with_(seed=4), bundle, progress=False)   # another config trains


def test_a_checkpoint_rebuilds_for_inference_without_data(tiny_cfg, bundle, tmp_path):
    t = Trainer(tiny_cfg, bundle, tmp_path)
    t.fit(steps=1, progress=False)
    again = Trainer(tiny_cfg, classes=bundle.classes, pretrained=False).load(t.save(), resume_data=False)
    assert again.classes == bundle.classes and again.step == 1
    assert same(snapshot(again.G), snapshot(t.G))
    assert again.meta == t.meta


def test_fresh_deletes_only_the_run_checkpoint_and_refuses_other_folders(tiny_cfg, bundle, tmp_path):
    cfg = tiny_cfg.with_(steps=1, c_pretrain_steps=1)
    run = tmp_path / "run"
    load_or_train(cfg, bundle, out_dir=run, progress=False)
    (run / "notes.txt").write_text("mine")                        # a user's file in the run folder
    stale = run / ".checkpoint.pt.abc123.tmp"                      # left by a run killed mid-write
    stale.write_bytes(b"partial")
    load_or_train(cfg, bundle, out_dir=run, fresh=True, progress=False)
    assert (run / "notes.txt").read_text() == "mine" and not stale.exists()
    assert (run / "checkpoint.pt").exists()
    # a folder that is not a run folder: nothing deleted, a clear refusal
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    with pytest.raises(ValueError, match="not a run folder"):
        load_or_train(cfg, bundle, out_dir=home, fresh=True, progress=False)
    assert (home / "thesis.tex").read_text() == "years of work" and sorted(home.iterdir()) == [home / "thesis.tex"]


def test_a_stale_partial_checkpoint_is_removed_on_the_next_run(tiny_cfg, bundle, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    stale = run / ".checkpoint.pt.xyz.tmp"
    stale.write_bytes(b"partial")
    load_or_train(tiny_cfg.with_(steps=1, c_pretrain_steps=1), bundle, out_dir=run, progress=False)
    assert not stale.exists() and (run / "checkpoint.pt").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_uses_mixed_precision_and_channels_last_and_resumes(tiny_cfg, bundle, tmp_path):
    cfg = tiny_cfg.with_(device="cuda", eval_every=2, ckpt_every=2)
    t = Trainer(cfg, bundle, tmp_path / "gpu")
    assert t.amp_dtype in (torch.bfloat16, torch.float16)
    assert t.G.encoder.levels[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    h = t.fit(steps=3, progress=False)
    assert all(torch.isfinite(torch.tensor(h[k])).all() for k in ("L_G", "L_DC"))
    resumed = Trainer(cfg, bundle, tmp_path / "gpu", pretrained=False).load(t.save())
    assert resumed.step == 3 and next(resumed.G.parameters()).is_cuda
    assert len(resumed.fit(steps=4, progress=False)["L_G"]) == 4
    probs = attribute(t, torch.rand(2, 3, 32, 32) * 2 - 1)
    assert probs.shape == (2, 3)


def test_a_run_is_keyed_by_its_data_too(tiny_cfg, make_dataset, tmp_path, monkeypatch):
    """The same config on other data (a rebuilt benchmark, another folder) never loads the old run."""
    from gfd.data import get_loaders
    monkeypatch.setattr("gfd.train.runs_dir", lambda: tmp_path / "runs")
    cfg = tiny_cfg.with_(steps=1, c_pretrain_steps=1)
    first = get_loaders(make_dataset(root=tmp_path / "one", n=4), cfg)
    second = get_loaders(make_dataset(root=tmp_path / "two", n=4), cfg)
    a = load_or_train(cfg, first, progress=False)
    b = load_or_train(cfg, second, progress=False)
    assert a.out_dir != b.out_dir and len(list((tmp_path / "runs").glob("quick-*"))) == 2
    assert load_or_train(cfg, first, progress=False).out_dir == a.out_dir


# --- the trainer's steps off the happy path -------------------------------------------------------

def two_class_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(4, 3, 32, 32, generator=g) * 2 - 1, torch.tensor([1, 0, 1, 0]), torch.rand(4, 3, 32, 32, generator=g)


def test_g_step_trains_g_in_train_mode_and_updates_only_g(tiny_cfg):
    t = Trainer(tiny_cfg, classes=["real", "gan"])
    t.G.eval()
    g0 = [p.detach().clone() for p in t.G.parameters()]
    lr0 = t.sched_G.last_epoch
    x, y, x_real = two_class_batch()
    t.g_step(x, y, x_real)
    assert t.G.training                                        # BatchNorm on batch statistics
    assert all(not torch.equal(a, b) for a, b in zip(g0, t.G.parameters()) if b.grad is not None)
    assert t.sched_G.last_epoch == lr0 + 1 and t.sched_DC.last_epoch == 0
    t.dc_step(x, y, x_real)
    assert t.sched_G.last_epoch == lr0 + 1 and t.sched_DC.last_epoch == 1


def test_dc_step_with_d_only_or_c_only(tiny_cfg):
    x, y, x_real = two_class_batch()
    d_only = Trainer(tiny_cfg.with_(use_C=False), classes=["real", "gan"])
    assert set(d_only.dc_step(x, y, x_real)) == {"L_adv_D", "L_DC"}
    c_only = Trainer(tiny_cfg.with_(use_D=False), classes=["real", "gan"])
    values = c_only.dc_step(x, y, x_real)
    assert set(values) == {"L_cls_C", "L_DC"} and values["L_DC"] == pytest.approx(values["L_cls_C"])
    g_only = Trainer(tiny_cfg.with_(use_D=False, use_C=False, use_percept=False), classes=["real", "gan"])
    assert g_only.opt_DC is None and g_only.dc_step(x, y, x_real) == {}
    assert g_only.g_step(x, y, x_real)[1] is None


def test_non_finite_losses_name_the_step_they_happened_in(tiny_cfg):
    x, y, x_real = two_class_batch()
    t = Trainer(tiny_cfg, classes=["real", "gan"])
    with torch.no_grad():
        t.G.head.fc.bias.fill_(float("inf"))
    g0 = [p.detach().clone() for p in t.G.parameters()]
    with pytest.raises(NonFiniteLossError, match=r"loss L_z = nan at step 1 \(G step\).*no checkpoint"):
        t.g_step(x, y, x_real)
    assert all(torch.equal(a, b) for a, b in zip(g0, t.G.parameters()))   # stopped before the update
    t = Trainer(tiny_cfg.with_(use_C=False), classes=["real", "gan"])
    with torch.no_grad():
        list(t.D.parameters())[-1].fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"loss L_adv_D = nan at step 1 \(D/C step\)"):
        t.dc_step(x, y, x_real)
    t.step = 41
    with pytest.raises(NonFiniteLossError, match=r"at step 42 \(D/C step\)"):
        t.dc_step(x, y, x_real)
