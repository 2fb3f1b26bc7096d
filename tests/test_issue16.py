"""Issue 16 on a machine without a GPU: the ``gpu`` preset and its automatic pick, the training step's
GPU hygiene (no host sync per step, fused Adam, torch.compile, loaders that feed a GPU) and the report
of ``python -m gfd speed --data``.  CUDA is faked where a decision depends on it; nothing here is timed."""
import math
from pathlib import Path

import pytest
import torch

import gfd
from gfd import config, data, speed, train
from gfd.config import get_config
from gfd.data import get_loaders
from gfd.train import NonFiniteLossError, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")
PACKAGE = Path(gfd.__file__).parent


def tiny_cfg(**changes):
    base = dict(crop=32, batch_size=4, unet_depth=2, unet_width=4, unet_max_width=16, disc_width=4,
                classifier_arch="compact", classifier_width=4, classifier_weights="random",
                perceptual_weights="random", steps=4, c_pretrain_steps=2, eval_every=0, ckpt_every=0,
                num_workers=0, lr=1e-3, device="cpu", seed=5, select="last", patience=0)
    return get_config("quick", **(base | changes))


@pytest.fixture
def bundle(make_dataset):
    return get_loaders(make_dataset(n=4), tiny_cfg())


def a_batch(b=4, s=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, s, s, generator=g) * 2 - 1, torch.arange(b) % 3, torch.rand(b, 3, s, s, generator=g) * 2 - 1


# --- the gpu preset and the automatic pick -------------------------------------------------------

@pytest.fixture
def fresh_pick(monkeypatch):
    monkeypatch.delenv("GFD_PRESET", raising=False)
    monkeypatch.setattr(config, "_told_gpu_pick", False)


def test_a_gpu_runtime_gets_the_gpu_preset_and_is_told_once(fresh_pick, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert gfd.default_preset() == "gpu" and get_config().preset == "gpu"
    told = capsys.readouterr().out.splitlines()
    assert len(told) == 1 and "'gpu'" in told[0] and "CUDA GPU" in told[0] and "GFD_PRESET=course" in told[0]
    assert get_config().preset == "gpu" and get_config("course").preset == "course"
    assert capsys.readouterr().out == ""                               # once per process


def test_gfd_preset_wins_and_the_cpu_keeps_course_silently(fresh_pick, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("GFD_PRESET", "quick")
    assert get_config().preset == "quick"
    monkeypatch.delenv("GFD_PRESET")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_config().preset == "course"
    assert capsys.readouterr().out == ""


def test_the_gpu_preset_runs_the_course_on_the_builtin_benchmark_sized_for_a_gpu():
    gpu, course = get_config("gpu"), get_config("course")
    assert gpu.data_root is None and (gpu.benchmark_size, gpu.transform, gpu.crop) == ("default", "mini", 48)
    assert gpu.batch_size > course.batch_size and gpu.unet_width > course.unet_width
    assert gpu.disc_width > course.disc_width and gpu.disc_layers == 2 and gpu.steps > course.steps   # 48 px: 34 px patches
    assert gpu.classifier_arch == "compact" and gpu.classifier_width > course.classifier_width
    assert gpu.perceptual_weights == "auto"
    assert (gpu.lr_schedule, gpu.select) == (course.lr_schedule, course.select)
    # its networks build and train on the benchmark's 48 px crops (random weights: offline)
    t = Trainer(gpu.with_(classifier_weights="random", perceptual_weights="random", device="cpu"), num_classes=5)
    x, y, x_real = a_batch(b=2, s=48)
    assert set(t.train_step(x, y, x_real)) == {*train.G_TERMS, *train.DC_TERMS}


def test_compile_is_off_by_default_and_enters_the_key():
    assert get_config("quick").compile is False
    assert get_config("quick", compile=True).key() != get_config("quick").key()


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


def test_train_steps_in_the_loop_do_not_sync(bundle, syncs):
    calls, _ = syncs
    t = Trainer(tiny_cfg(), bundle)
    batch = a_batch()
    calls.clear()
    with t.deferred_checks():
        for _ in range(3):
            values = t.train_step(*batch)
        assert calls == [] and all(isinstance(v, torch.Tensor) for v in values.values())
    assert isinstance(t.train_step(*batch)["L_G"], float) and calls      # outside the loop: floats, as before


def test_the_loop_syncs_only_at_its_flush_points(bundle, syncs, monkeypatch):
    calls, trainers = syncs
    monkeypatch.setattr(train, "LOG_EVERY", 3)
    t = Trainer(tiny_cfg(steps=7, eval_every=5), bundle)
    t.pretrain_classifier(progress=False)
    trainers.append(t)
    calls.clear()
    t.fit(progress=False)
    assert {step for *_, step in calls} == {3, 5, 6, 7}                 # log, eval, log, end
    assert [c for c in calls if c[1] == "stepper.py" and c[0] == "tolist"] == [
        ("tolist", "stepper.py", s) for s in (3, 5, 6, 7)]             # one conversion per flush
    assert t.history["step"] == list(range(1, 8))


def test_the_history_holds_the_values_of_immediate_checks(bundle):
    """The loop's deferred history equals step-by-step checked values (the behaviour before issue 16)."""
    cfg = tiny_cfg(steps=5)
    looped = Trainer(cfg, bundle)
    h = looped.fit(progress=False)
    by_hand = Trainer(cfg, bundle)
    by_hand.pretrain_classifier(progress=False)
    expected = {k: [] for k in ("lr", *train.G_TERMS, *train.DC_TERMS)}
    for _ in range(5):
        x, y = by_hand._next(by_hand.train_stream)
        values = by_hand.train_step(x, y, by_hand._next(by_hand.real_stream)[0])   # floats, checked now
        expected["lr"].append(by_hand.opt_G.param_groups[0]["lr"])
        for k in (*train.G_TERMS, *train.DC_TERMS):
            expected[k].append(values[k])
    assert all(h[k] == v for k, v in expected.items())
    assert all(torch.equal(a, b) for a, b in zip(looped.G.state_dict().values(), by_hand.G.state_dict().values()))


def test_a_non_finite_loss_in_the_loop_names_step_and_term_and_no_later_checkpoint(bundle, tmp_path, monkeypatch):
    t = Trainer(tiny_cfg(steps=6, ckpt_every=2), bundle, tmp_path / "run")
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

def test_adam_is_fused_on_cuda_only(bundle, monkeypatch):
    assert train.adam_options(torch.device("cuda")) == {"fused": True}
    assert train.adam_options(torch.device("cuda:1")) == {"fused": True}
    assert train.adam_options(torch.device("cpu")) == {} == train.adam_options(torch.device("mps"))
    assert Trainer(tiny_cfg(), bundle).opt_G.defaults["fused"] is None          # the CPU: as before
    monkeypatch.setattr(train, "adam_options", lambda device: {"fused": True})
    try:
        t = Trainer(tiny_cfg(), bundle)
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
    train.keep_device_adam(here)
    (q,) = here.param_groups[0]["params"]
    assert here.param_groups[0]["fused"] is None and here.state[q]["step"].device.type == "cpu"
    assert here.state[q]["step"].dtype == torch.float32 and here.state[q]["step"].item() == 1


def test_compile_wires_torch_compile_and_leaves_checkpoints_alone(bundle, monkeypatch):
    compiled = []

    def record(fn, *args, **kwargs):
        compiled.append(fn.__self__)                  # Module.compile hands over the module's bound _call_impl
        return fn
    monkeypatch.setattr(torch, "compile", record)
    assert Trainer(tiny_cfg(), bundle) and compiled == []
    t = Trainer(tiny_cfg(compile=True), bundle)
    assert compiled == [*t.G.children(), t.D, t.C, t.F]
    assert set(t.train_step(*a_batch())) == {*train.G_TERMS, *train.DC_TERMS}
    plain = Trainer(tiny_cfg(), bundle)
    assert t.state_dict()["models"].keys() == plain.state_dict()["models"].keys()
    assert all(t.networks()[n].state_dict().keys() == m.state_dict().keys() for n, m in plain.networks().items())


# --- loaders that keep a GPU fed ---------------------------------------------------------------------

def test_loaders_pin_and_use_workers_when_the_run_is_on_cuda(make_dataset, monkeypatch):
    root = make_dataset(n=2)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpu = get_loaders(root, tiny_cfg(num_workers=None))["train"]
    assert (cpu.num_workers, cpu.pin_memory) == (0, False)                        # the CPU: unchanged
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for device, fed in (("auto", True), ("cuda", True), ("cuda:0", True), ("cpu", False)):
        cfg = tiny_cfg(num_workers=None, device=device)
        loader = get_loaders(root, cfg)["train"]
        assert data.feeds_cuda(cfg) is fed and loader.pin_memory is fed and (loader.num_workers > 0) is fed
    assert train.stream_for(loader, seed=0).loader_kwargs["pin_memory"] is False
    fed = get_loaders(root, tiny_cfg(num_workers=None, device="auto"))["train"]
    assert train.stream_for(fed, seed=0).loader_kwargs == {"num_workers": 2, "worker_init_fn": data._seed_worker,
                                                           "pin_memory": True, "collate_fn": fed.collate_fn}


# --- python -m gfd speed --data -------------------------------------------------------------------------

def step_row(preset, mode, s_per_step):
    return {"preset": preset, "mode": mode, "device": "cpu", "amp": "off", "batch": 16, "crop": 48,
            "s_per_step": s_per_step, "img_per_s": 16 / s_per_step, "peak_mib": 800.0,
            "memory": "process peak RSS", "threads": 2}


def test_the_bench_report_shares_time_between_data_and_step():
    assert speed.wait_share(1.0, 3.0) == 0.25 and speed.wait_share(0.0, 2.0) == 0.0
    rows = [step_row("course", "G-only", 0.1), step_row("course", "full GFD", 0.5), step_row("paper", "G-only", 1.0)]
    loading = [{"preset": "course", "num_workers": 0, "pin_memory": False,
                "s_per_batch": {"x": 0.02, "x_real": 0.03}}]
    out = speed.with_loading(rows, loading)
    assert math.isclose(out[0]["data_s"], 0.02) and math.isclose(out[0]["data_share"], 0.02 / 0.12)
    assert math.isclose(out[1]["data_s"], 0.05) and math.isclose(out[1]["data_share"], 0.05 / 0.55)
    assert out[1]["keeps_up"] and "data_s" not in out[2]                  # paper: no loading measured
    text = speed.format_report(out)
    assert "img/s" in text and "peak MiB" in text and "waiting on data" in text
    assert "16.7%" in text and "9.1%" in text and "(no workers: the loop loads)" in text
    worked = speed.with_loading(rows[:2], [loading[0] | {"num_workers": 2, "s_per_batch": {"x": 0.3, "x_real": 0.3}}])
    assert [line.split()[-1] for line in speed.format_report(worked).splitlines()[-3:-1]] == ["no", "no"]


def test_measure_loading_draws_the_trainers_streams(make_dataset):
    root = make_dataset(n=4)
    got = speed.measure_loading("quick", batches=2, warmup=1, batch_size=2,
                                overrides=[f"data_root={root}", "crop=32", "num_workers=0"])
    assert (got["batch"], got["num_workers"], got["pin_memory"], got["batches"]) == (2, 0, False, 2)
    assert set(got["s_per_batch"]) == {"x", "x_real"} and all(v > 0 for v in got["s_per_batch"].values())
    g_only = speed.measure_loading("quick", batches=1, warmup=0, overrides=[
        f"data_root={root}", "crop=32", "num_workers=0", "use_D=false", "use_C=false", "use_percept=false"])
    assert set(g_only["s_per_batch"]) == {"x"}
