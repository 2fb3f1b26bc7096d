"""The training step kept fit for a GPU, checked on the CPU: no host sync per step inside the loop (values
stay tensors until the loop's flush points), fused Adam on CUDA only, and ``torch.compile`` wired in without
touching checkpoints.  CUDA is faked where a decision depends on it; nothing here is timed."""
from pathlib import Path

import pytest
import torch

import gfd
from gfd import stepper, train
from gfd.train import NonFiniteLossError, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")
PACKAGE = Path(gfd.__file__).parent


def a_batch(b=4, s=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, s, s, generator=g) * 2 - 1, torch.arange(b) % 3, torch.rand(b, 3, s, s, generator=g) * 2 - 1


# --- no host sync per step ---------------------------------------------------------------------------

SYNCS = ("item", "tolist", "__float__", "__int__", "__bool__", "__format__", "cpu", "numpy")


@pytest.fixture
def syncs(monkeypatch):
    """Calls that make a CUDA step wait for the GPU, made by gfd's own code: (method, caller, trainer step)."""
    calls, trainers = [], []

    def spy(name, real):
        def wrapper(self, *args, **kwargs):
            import sys
            caller = Path(sys._getframe(1).f_code.co_filename)
            if PACKAGE in caller.parents:
                calls.append((name, caller.name, trainers[0].step if trainers else None))
            return real(self, *args, **kwargs)
        return wrapper

    for name in SYNCS:
        monkeypatch.setattr(torch.Tensor, name, spy(name, getattr(torch.Tensor, name)))
    return calls, trainers


def test_train_steps_in_the_loop_do_not_sync(tiny_cfg, bundle, syncs):
    calls, _ = syncs
    t = Trainer(tiny_cfg, bundle)
    batch = a_batch()
    calls.clear()
    with t.deferred_checks():
        for _ in range(3):
            values = t.train_step(*batch)
        assert calls == [] and all(isinstance(v, torch.Tensor) for v in values.values())
    assert isinstance(t.train_step(*batch)["L_G"], float) and calls      # outside the loop: floats, as before


def test_the_loop_syncs_only_at_its_flush_points(tiny_cfg, bundle, syncs, monkeypatch):
    calls, trainers = syncs
    monkeypatch.setattr(stepper, "LOG_EVERY", 3)
    t = Trainer(tiny_cfg.with_(steps=7, eval_every=5), bundle)
    t.pretrain_classifier(progress=False)
    trainers.append(t)
    calls.clear()
    t.fit(progress=False)
    assert {step for *_, step in calls} == {3, 5, 6, 7}                 # log, eval, log, end
    assert [c for c in calls if c[1] == "stepper.py" and c[0] == "tolist"] == [
        ("tolist", "stepper.py", s) for s in (3, 5, 6, 7)]             # one conversion per flush
    assert t.history["step"] == list(range(1, 8))


def test_the_history_holds_the_values_of_immediate_checks(tiny_cfg, bundle):
    """The loop's deferred history equals the values a step checks and converts at once (floats per step)."""
    cfg = tiny_cfg.with_(steps=5)
    looped = Trainer(cfg, bundle)
    h = looped.fit(progress=False)
    by_hand = Trainer(cfg, bundle)
    by_hand.pretrain_classifier(progress=False)
    expected = {k: [] for k in ("lr", *stepper.G_TERMS, *stepper.DC_TERMS)}
    for _ in range(5):
        x, y = by_hand._next(by_hand.train_stream)
        values = by_hand.train_step(x, y, by_hand._next(by_hand.real_stream)[0])   # floats, checked now
        expected["lr"].append(by_hand.opt_G.param_groups[0]["lr"])
        for k in (*stepper.G_TERMS, *stepper.DC_TERMS):
            expected[k].append(values[k])
    assert all(h[k] == v for k, v in expected.items())
    assert all(torch.equal(a, b) for a, b in zip(looped.G.state_dict().values(), by_hand.G.state_dict().values()))


def test_a_non_finite_loss_in_the_loop_names_step_and_term_and_no_later_checkpoint(tiny_cfg, bundle, tmp_path, monkeypatch):
    t = Trainer(tiny_cfg.with_(steps=6, ckpt_every=2), bundle, tmp_path / "run")
    real_adv_d, calls = train.losses.adv_d, []

    def adv_d(*args):
        calls.append(1)
        value = real_adv_d(*args)
        return value * float("nan") if len(calls) == 3 else value      # the D/C step of iteration 3
    monkeypatch.setattr(train.losses, "adv_d", adv_d)
    with pytest.raises(NonFiniteLossError, match=r"loss L_adv_D = nan at step 3 \(D/C step\).*checkpoint.pt"):
        t.fit(progress=False)
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert saved["step"] == 2 and saved["history"]["step"] == [1, 2]
    assert all(torch.isfinite(v).all() for sd in saved["models"].values() for v in sd.values() if v.is_floating_point())
    assert t.history["step"] == [1, 2]                                # what came before it is recorded


# --- fused Adam, torch.compile --------------------------------------------------------------------------

def test_adam_is_fused_on_cuda_only(tiny_cfg, bundle, monkeypatch):
    assert stepper.adam_options(torch.device("cuda")) == {"fused": True}
    assert stepper.adam_options(torch.device("cuda:1")) == {"fused": True}
    assert stepper.adam_options(torch.device("cpu")) == {} == stepper.adam_options(torch.device("mps"))
    assert Trainer(tiny_cfg, bundle).opt_G.defaults["fused"] is None          # the CPU: plain Adam
    monkeypatch.setattr(train, "adam_options", lambda device: {"fused": True})
    try:
        t = Trainer(tiny_cfg, bundle)
    except RuntimeError as err:                                                 # an old torch: CUDA only
        pytest.skip(f"fused Adam needs CUDA in this torch: {err}")
    assert t.opt_G.defaults["fused"] is True and t.opt_DC.defaults["fused"] is True


def test_a_checkpoint_resumes_with_this_devices_adam():
    p = torch.nn.Parameter(torch.ones(3))
    plain = torch.optim.Adam([p], lr=0.1)
    p.grad = torch.ones(3)
    plain.step()
    saved = plain.state_dict()
    saved["param_groups"][0]["fused"] = True                         # as a CUDA run writes it
    here = torch.optim.Adam([torch.nn.Parameter(torch.ones(3))], lr=0.1)
    here.load_state_dict(saved)
    stepper.keep_device_adam(here)
    (q,) = here.param_groups[0]["params"]
    assert here.param_groups[0]["fused"] is None and here.state[q]["step"].device.type == "cpu"
    assert here.state[q]["step"].dtype == torch.float32 and here.state[q]["step"].item() == 1


def test_compile_wires_torch_compile_and_leaves_checkpoints_alone(tiny_cfg, bundle, monkeypatch):
    compiled = []

    def record(fn, *args, **kwargs):
        compiled.append(fn.__self__)                  # Module.compile hands over the module's bound _call_impl
        return fn
    monkeypatch.setattr(torch, "compile", record)
    assert Trainer(tiny_cfg, bundle) and compiled == []
    t = Trainer(tiny_cfg.with_(compile=True), bundle)
    assert compiled == [*t.G.children(), t.D, t.C, t.F]
    assert set(t.train_step(*a_batch())) == {*stepper.G_TERMS, *stepper.DC_TERMS}
    plain = Trainer(tiny_cfg, bundle)
    assert t.state_dict()["models"].keys() == plain.state_dict()["models"].keys()
    assert all(t.networks()[n].state_dict().keys() == m.state_dict().keys() for n, m in plain.networks().items())
