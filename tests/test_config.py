"""gfd.config, gfd.utils and the project files that must agree with each other."""
import re
import tomllib
from pathlib import Path

import pytest
import torch

import gfd
from gfd import config, stepper, train
from gfd.config import PRESETS, Config, get_config
from gfd.train import Trainer
from gfd.utils import atomic_write, choose_device, pbar, seed_everything

ROOT = Path(__file__).resolve().parents[1]


def test_version():
    assert re.fullmatch(r"\d+\.\d+\.\d+", gfd.__version__)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build(name):
    cfg = get_config(name)
    assert cfg.preset == name and cfg.crop > 0 and cfg.steps > 0


def test_paper_preset_follows_sec_4_1():
    cfg = get_config("paper")
    assert (cfg.lr, cfg.lr_step, cfg.lr_gamma) == (1e-4, 500, 0.9)
    assert (cfg.w1, cfg.w2, cfg.w3, cfg.w4) == (10, 0.1, 1, 1)
    assert cfg.crop == 224 and cfg.transform == "p128" and cfg.classifier_arch == "resnet50"


def test_overrides_are_typed():
    cfg = get_config("quick", ["steps=7", "use_D=false", "w2=0.01", "data_root=/x", "num_workers=2"])
    assert cfg.steps == 7 and cfg.use_D is False and cfg.w2 == 0.01
    assert cfg.data_root == "/x" and cfg.num_workers == 2


def test_bad_overrides_are_clear():
    with pytest.raises(KeyError, match="unknown config field"):
        get_config("quick", ["nope=1"])
    with pytest.raises(ValueError, match="key=value"):
        get_config("quick", ["steps"])
    with pytest.raises(ValueError, match="boolean"):
        get_config("quick", ["use_D=maybe"])
    with pytest.raises(KeyError, match="unknown preset"):
        get_config("huge")


def test_named_values_are_checked_with_the_allowed_ones_in_the_message():
    from gfd.config import Config
    for field, bad, allowed in (("transform", "p256", "'p128', 'p1024', 'mini'"),
                                ("benchmark_size", "huge", "'quick', 'default'"),
                                ("classifier_arch", "vgg99", "'resnet18'"),
                                ("device", "gpu", "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")):
        with pytest.raises(ValueError, match=f"{field}='{bad}' is not allowed; choose.*{re.escape(allowed)}"):
            get_config("quick", [f"{field}={bad}"])
        with pytest.raises(ValueError, match=field):
            Config(**{field: bad})
    for device in ("auto", "cpu", "cuda", "cuda:1", "mps"):
        assert get_config("quick", [f"device={device}"]).device == device


def test_set_values_that_do_not_parse_name_the_field_and_the_type():
    with pytest.raises(ValueError, match=r"config field steps: expected an integer \(e\.g\. 200\), got 'abc'"):
        get_config("quick", ["steps=abc"])
    with pytest.raises(ValueError, match=r"config field lr: expected a number"):
        get_config("quick", ["lr=fast"])
    with pytest.raises(ValueError, match=r"config field num_workers: expected an integer .* or none, got 'x'"):
        get_config("quick", ["num_workers=x"])
    assert get_config("quick", ["num_workers=none", "data_root=none"]).num_workers is None


def test_the_allowed_names_equal_their_homes():
    from gfd import benchmark, config, data
    from gfd.models import classifier
    assert config.BENCHMARK_SIZES == tuple(benchmark.SIZES)
    assert config.TRANSFORMS == tuple(data.TRANSFORM_PRESETS)
    assert config.CLASSIFIER_ARCHS == classifier.ARCHS


def test_default_preset_reads_env(monkeypatch):
    monkeypatch.setenv("GFD_PRESET", "paper")
    assert get_config().preset == "paper"
    monkeypatch.delenv("GFD_PRESET")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)   # a GPU machine defaults to "gpu"
    assert get_config().preset == "course"


def test_g_only_and_dict_roundtrip():
    cfg = get_config("quick", use_D=False, use_C=False, use_percept=False)
    assert cfg.g_only and not get_config("quick").g_only
    assert type(cfg).from_dict(cfg.to_dict()) == cfg


def test_seed_everything_repeats():
    seed_everything(3)
    a = torch.rand(3)
    seed_everything(3)
    assert torch.equal(a, torch.rand(3))


def test_choose_device():
    assert choose_device("cpu").type == "cpu"
    assert choose_device("auto").type in {"cpu", "cuda", "mps"}
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            choose_device("cuda")


def test_tqdm_disable_silences_notebook_bars_too(monkeypatch):
    import tqdm.notebook
    monkeypatch.setattr("tqdm.auto.tqdm", tqdm.notebook.tqdm)      # what tqdm.auto picks in a kernel
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert pbar(range(3)).disable
    monkeypatch.delenv("TQDM_DISABLE")
    assert pbar(range(3), enabled=False).disable


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write(target, lambda p: p.write_text("old"))

    def crash(p):
        p.write_text("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_write(target, crash)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def _requirements(deps):
    """name -> requirement, both lower-case (conda and pip spell some names differently)."""
    return {re.split(r"[<>=!\[ ]", d, maxsplit=1)[0].lower(): d.replace(" ", "").lower() for d in deps}


def test_environment_yml_agrees_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _requirements(project["dependencies"] + project["optional-dependencies"]["dev"])
    text = (ROOT / "environment.yml").read_text().split("dependencies:", 1)[1]
    env_lines = [l.strip()[2:].strip() for l in text.splitlines() if l.strip().startswith("- ")]
    env = _requirements([l for l in env_lines if not l.startswith(("-e", "python", "pip"))])
    assert env == wanted


def test_torch_ranges_admit_this_machine_and_colab():
    deps = _requirements(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    from packaging.specifiers import SpecifierSet
    assert "2.14.1" in SpecifierSet(deps["torch"][len("torch"):])
    assert "2.9.0" in SpecifierSet(deps["torch"][len("torch"):])
    assert "0.29.1" in SpecifierSet(deps["torchvision"][len("torchvision"):])
    assert "0.24.0" in SpecifierSet(deps["torchvision"][len("torchvision"):])


def test_every_field_enters_the_key_and_a_stored_config_gives_it_back():
    from dataclasses import fields
    cfg = get_config("course")
    for f in fields(Config):
        value = getattr(cfg, f.name)
        if isinstance(value, bool):
            changed = not value
        elif isinstance(value, int):
            changed = value + 1
        elif isinstance(value, float):
            changed = value / 2 if value else 0.5      # stays inside every float field's range
        elif value is None:
            changed = "/somewhere" if f.name == "data_root" else 2
        else:
            continue          # named values are checked against their allowed lists elsewhere
        assert cfg.with_(**{f.name: changed}).key() != cfg.key(), f.name
    assert Config.from_dict(cfg.to_dict()) == cfg and Config.from_dict(cfg.to_dict()).key() == cfg.key()
    with pytest.raises(KeyError, match="colour"):
        Config.from_dict({**cfg.to_dict(), "colour": "red"})


def test_config_defaults_are_the_course_preset_and_presets_are_its_differences():
    from gfd.config import OVERLAYS, PRESETS
    assert Config() == get_config("course") and PRESETS["course"] == {}
    for name, diff in PRESETS.items():
        cfg = get_config(name)
        assert {k: v for k, v in cfg.to_dict().items() if v != getattr(Config(), k)} == \
            {**{k: v for k, v in diff.items() if v != getattr(Config(), k)}, **({"preset": name} if name != "course" else {})}
    assert get_config("detect") == get_config("course", overlays=["short-budget", "detection"]).with_(preset="detect")
    assert get_config("quick", overlays=["detection"]).task == "detection" and set(OVERLAYS) >= {"detection", "gan1024"}
    with pytest.raises(KeyError, match="overlay"):
        get_config("quick", overlays=["nonsense"])


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


@pytest.mark.usefixtures("one_thread")
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
    g = torch.Generator().manual_seed(0)
    x, y, x_real = torch.rand(2, 3, 48, 48, generator=g) * 2 - 1, torch.arange(2) % 3, torch.rand(2, 3, 48, 48, generator=g) * 2 - 1
    assert set(t.train_step(x, y, x_real)) == {*stepper.G_TERMS, *stepper.DC_TERMS}


def test_compile_is_off_by_default_and_enters_the_key():
    assert get_config("quick").compile is False
    assert get_config("quick", compile=True).key() != get_config("quick").key()
