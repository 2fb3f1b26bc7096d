"""The course's training protocol (gfd.protocol) and the randomness a run owns (experiment protocol,
rules 2-4): the lr schedule, best-val selection and plateau stop; results that do not depend on what
ran before in the process; and Table 4 rows that are paired (same seed: same G init, same batches,
same pre-trained C)."""
import math

import pytest
import torch
from torch import nn

from gfd.config import get_config
from gfd.protocol import FINAL_LR_RATIO, Selection, lr_factor, make_scheduler, min_stop_step
from gfd.runs.variant import train_and_measure
from gfd.supervised import fit_classifier
from gfd.train import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


# --- rule 1: the schedule ---------------------------------------------------------------------------

def test_cosine_falls_from_lr_to_the_final_ratio_and_step_is_the_papers_steplr():
    assert lr_factor(0, "cosine", 100) == 1.0
    assert lr_factor(50, "cosine", 100) == pytest.approx((1 + FINAL_LR_RATIO) / 2)
    assert lr_factor(100, "cosine", 100) == pytest.approx(FINAL_LR_RATIO)
    assert lr_factor(400, "cosine", 100) == pytest.approx(FINAL_LR_RATIO)       # stays at the floor
    assert [lr_factor(s, "step", 0, lr_step=3, lr_gamma=0.5) for s in (0, 2, 3, 6)] == [1, 1, 0.5, 0.25]
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = make_scheduler(opt, "cosine", 10)
    seen = []
    for _ in range(10):
        opt.step()
        sched.step()
        seen.append(opt.param_groups[0]["lr"])
    assert seen == pytest.approx([2.0 * lr_factor(s, "cosine", 10) for s in range(1, 11)])
    with pytest.raises(ValueError, match="lr_schedule"):
        make_scheduler(opt, "linear", 10)


def test_trainer_lr_follows_the_cosine_over_the_budget(tiny_cfg, bundle):
    t = Trainer(tiny_cfg.with_(steps=4, patience=0, use_D=False, use_percept=False), bundle)
    h = t.fit(progress=False)
    assert h["lr"] == pytest.approx([t.cfg.lr * lr_factor(s, "cosine", 4) for s in range(1, 5)])


# --- rules 2-4: evaluation, selection, stop ------------------------------------------------------------

def test_selection_keeps_the_best_weights_and_stops_after_patience_evaluations():
    net = nn.Linear(1, 1, bias=False)
    sel = Selection("best", patience=2)
    for step, (w, acc) in enumerate([(1.0, 0.5), (2.0, 0.7), (3.0, 0.6), (4.0, 0.7), (5.0, 0.1), (6.0, 0.2)]):
        net.weight.data.fill_(w)
        sel.update(step, acc, net)
        if sel.stop:
            break
    assert (sel.best_step, sel.best_acc, step) == (3, 0.7, 5)     # the later of two equal bests; stop at 5
    sel.finish(net, "plateau")
    assert net.weight.item() == 4.0 and sel.summary()["stopped"] == "plateau"
    last = Selection("last")
    last.update(0, 0.9, net)
    net.weight.data.fill_(-1.0)
    last.finish(net, "budget")
    assert net.weight.item() == -1.0                                   # "last" keeps the last weights


def test_no_plateau_stop_before_patience_after_of_the_budget():
    """Rule 4 with patience_after: a plateau in the first half of the budget does not stop the run."""
    net = nn.Linear(1, 1, bias=False)
    assert min_stop_step(0.5, 1500) == 750 and min_stop_step(0.0, 1500) == 0 and min_stop_step(0.5, 7) == 4
    with pytest.raises(ValueError, match="share of the step budget"):
        min_stop_step(1.5, 100)
    sel = Selection("best", patience=2, min_step=750)
    stops = []
    for step, acc in [(100, 0.9), (200, 0.5), (300, 0.5), (400, 0.5), (700, 0.5), (800, 0.5), (900, 0.95)]:
        sel.update(step, acc, net)
        stops.append(sel.stop)
    assert stops == [False] * 5 + [True, False]        # patience was reached at 300, the stop waits for 750
    assert Selection("best", 2, min_step=0).state_dict().keys() >= {"min_step", "last_step"}
    # fit_classifier: val falls after the first evaluation, budget 20, evaluations every 2 steps
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    batches = iter(lambda: (torch.randn(4, 3, 2, 2), torch.tensor([0, 1, 2, 0])), None)
    for after, stopped_at in ((0.0, 6), (0.5, 10), (0.8, 16)):
        falling = iter([0.9 - 0.01 * i for i in range(20)])
        out = fit_classifier(model, batches, 20, lr=0.1, lr_schedule="cosine", validate=lambda m: next(falling),
                             eval_every=2, select="best", patience=2, patience_after=after, progress=False)
        assert (out["steps"], out["stopped"]) == (stopped_at, "plateau")


def test_the_course_protocol_waits_half_its_budget_and_tables_2_3_keep_theirs():
    from gfd.config import OVERLAYS
    assert get_config("course").patience_after == 0.5 and get_config("detect").patience_after == 0.0
    assert OVERLAYS["short-budget"]["patience_after"] == 0.0
    t = Trainer(get_config("course"), num_classes=5)
    assert (t.selection.patience, t.selection.min_step) == (3, 750)


def test_fit_classifier_keeps_the_best_val_weights_and_stops_on_a_plateau():
    """validate() returns a scripted accuracy per call; the kept weights must be those of the best call."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    batches = iter(lambda: (torch.randn(4, 3, 2, 2), torch.tensor([0, 1, 2, 0])), None)
    script = iter([0.3, 0.8, 0.5, 0.4, 0.9])
    states = []

    def validate(m):
        states.append({k: v.clone() for k, v in m.state_dict().items()})
        return next(script)

    out = fit_classifier(model, batches, 100, lr=0.1, lr_schedule="cosine", validate=validate, eval_every=2,
                         select="best", patience=2, progress=False)
    assert out["eval_step"] == [2, 4, 6, 8] and out["steps"] == 8 and out["stopped"] == "plateau"
    assert out["best_step"] == 4 and out["best_val"] == 0.8
    assert all(torch.equal(model.state_dict()[k], v) for k, v in states[1].items())
    assert not torch.equal(model.state_dict()["1.weight"], states[-1]["1.weight"])


def test_trainer_stops_on_a_plateau_keeps_the_best_g_and_a_reload_gives_the_same(tiny_cfg, bundle, tmp_path, monkeypatch):
    accs = iter([0.5, 0.9, 0.4, 0.3, 0.2, 0.1])
    monkeypatch.setattr(Trainer, "validate", lambda self, split="val", model="G": next(accs))
    cfg = tiny_cfg.with_(steps=12, eval_every=1, patience=2, patience_after=0.0, use_D=False, use_C=False)
    t = Trainer(cfg, bundle, tmp_path / "run")
    kept = {}
    original = t.selection.update

    def spy(step, acc, model):
        if step == 2:
            kept.update({k: v.clone() for k, v in model.state_dict().items()})
        return original(step, acc, model)

    t.selection.update = spy
    t.fit(progress=False)
    assert t.step == 4 and t.done and t.history["selection"]["stopped"] == "plateau"
    assert t.history["selection"]["best_step"] == 2
    assert all(torch.equal(t.G.state_dict()[k], v) for k, v in kept.items())
    from gfd.train import load_or_train
    again = load_or_train(cfg, bundle, out_dir=tmp_path / "run", progress=False)
    assert again.step == 4 and all(torch.equal(again.G.state_dict()[k], v) for k, v in kept.items())


# --- rule 3: a run owns its randomness ---------------------------------------------------------------

def measure(method, bundle, cfg):
    res = train_and_measure(cfg, bundle, method, runs_root=None, progress=False)
    return res.results["test_closed"]["confusion"], res.results["val"]["acc"], \
        [p.detach().clone() for p in res.model.parameters()]


def test_two_methods_give_the_same_results_in_either_order(tiny_cfg, bundle, tmp_path, monkeypatch):
    """DCT then the G+C row, or the G+C row then DCT, in one process (with stray draws from the global
    generators in between): identical numbers and weights."""
    monkeypatch.setattr("gfd.train.runs_dir", lambda: tmp_path / "runs")
    cfg = tiny_cfg.with_(steps=3, eval_every=1)
    dct_opts = dict(epochs=1, eval_every=1, width=2)

    def run(order, where):
        monkeypatch.setattr("gfd.train.runs_dir", lambda: tmp_path / where)
        torch.manual_seed(123)
        out = {}
        for method in order:
            torch.rand(17)                                  # whatever ran before must not matter
            if method == "DCT":
                from gfd.baselines import fit_baseline
                from gfd.evaluate import evaluate_model
                model = fit_baseline("dct", bundle, options=cfg, seed=cfg.seed, progress=False, **dct_opts)
                out[method] = (evaluate_model(model, bundle)["test_closed"]["confusion"],
                               [p.detach().clone() for p in model.parameters()])
            else:
                conf, _, params = measure(method, bundle, cfg)
                out[method] = (conf, params)
        return out

    ab, ba = run(["DCT", "G+C"], "one"), run(["G+C", "DCT"], "two")
    for method in ("DCT", "G+C"):
        assert ab[method][0] == ba[method][0]
        assert all(torch.equal(p, q) for p, q in zip(ab[method][1], ba[method][1]))


def test_a_stream_draws_the_same_crops_whatever_the_global_generator_did(bundle):
    from gfd.streams import stream_for
    loader = bundle.loaders["train"]
    torch.manual_seed(1)
    a = next(stream_for(loader, seed=3))[0]
    torch.manual_seed(2)
    b = next(stream_for(loader, seed=3))[0]
    c = next(stream_for(loader, seed=4))[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


# --- rule 4: paired rows ----------------------------------------------------------------------------

@pytest.mark.parametrize("switches", [dict(use_D=False, use_C=False, use_percept=False), dict(use_C=False),
                                      dict(use_D=False, use_percept=False)])
def test_rows_of_table4_share_g_init_and_g_batches(tiny_cfg, bundle, switches):
    full = Trainer(tiny_cfg, bundle)
    row = Trainer(tiny_cfg.with_(**switches), bundle)
    assert all(torch.equal(p, q) for p, q in zip(full.G.state_dict().values(), row.G.state_dict().values()))
    for _ in range(3):
        assert torch.equal(next(full.train_stream)[0], next(row.train_stream)[0])


def test_rows_with_c_share_one_pretrained_c_and_the_pretraining_leaves_g_batches_alone(tiny_cfg, bundle, tmp_path):
    gc = Trainer(tiny_cfg.with_(use_D=False, use_percept=False), bundle, tmp_path / "gc")
    first_batch = next(Trainer(tiny_cfg.with_(use_C=False), bundle).train_stream)[0]
    rec = gc.pretrain_classifier(progress=False)
    assert not rec["cached"] and len(rec["loss"]) == rec["steps"]
    assert torch.equal(next(gc.train_stream)[0], first_batch)           # C drew from its own stream
    full = Trainer(tiny_cfg, bundle, tmp_path / "full")
    again = full.pretrain_classifier(progress=False)
    assert again["cached"] and again["best_val"] == rec["best_val"]
    assert all(torch.equal(p, q) for p, q in zip(gc.C.state_dict().values(), full.C.state_dict().values()))
    other_seed = Trainer(tiny_cfg.with_(seed=8), bundle, tmp_path / "s8").pretrain_classifier(progress=False)
    assert not other_seed["cached"]
    assert math.isfinite(gc.history["c_val_acc"][-1])


def test_a_torn_pretrained_c_cache_file_is_recomputed_with_a_warning(tiny_cfg, bundle, tmp_path):
    t = Trainer(tiny_cfg.with_(use_D=False, use_percept=False), bundle, tmp_path / "run")
    t.pretrain_classifier(progress=False)
    (cached,) = (tmp_path / "pretrained-C").glob("*.pt")
    cached.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="pre-training C again"):
        rec = Trainer(tiny_cfg.with_(use_D=False, use_percept=False), bundle, tmp_path / "run2").pretrain_classifier(progress=False)
    assert not rec["cached"]
