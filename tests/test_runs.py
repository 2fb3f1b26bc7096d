"""The runners: train_and_measure (one method, one config) and the benchmark's calibration."""
import pytest
import torch

import gfd.runs.calibrate as calibration
from gfd.config import Config, get_config
from gfd.data import get_loaders
from gfd.evaluate import accuracy
from gfd.models.generator import EncoderHead, build_generator
from gfd.runs import train_and_measure
from gfd.runs.calibrate import calibrate, format_calibration
from gfd.train import default_run_dir

TINY = dict(crop=32, batch_size=4, unet_depth=2, unet_width=4, unet_max_width=16, disc_width=4,
            classifier_weights="random", perceptual_weights="random", steps=2, c_pretrain_steps=1,
            eval_every=0, ckpt_every=0, device="cpu", num_workers=0)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def setup(make_dataset, tmp_path, monkeypatch):
    root = make_dataset(n=4)
    # unbalanced val and test_open (images per class real, ganA, ganB): a model that predicts one class
    # everywhere still scores differently on val, test_closed and test_open
    for split, counts in {"val": (1, 2, 4), "test_open": (4, 1, 2)}.items():
        for c, k in zip(("real", "ganA", "ganB"), counts):
            for f in sorted((root / split / c).glob("*.png"))[k:]:
                f.unlink()
    monkeypatch.setattr("gfd.train.runs_dir", lambda: tmp_path / "runs")
    cfg = get_config("quick", data_root=str(root), **TINY)
    return cfg, get_loaders(root, cfg)


def test_train_and_measure_a_gfd_row_and_a_baseline(setup):
    cfg, bundle = setup
    g = train_and_measure(cfg.with_(use_D=False, use_C=False, use_percept=False), bundle, progress=False)
    assert g.method == "G" and g.cfg.g_only and g.trainer is not None and g.trainer.step == 2
    assert set(g.results) == {"val", "test_closed", "test_open"}
    assert g.val == g.results["val"]["acc"] and g.weights.startswith("none")
    full = train_and_measure(cfg, bundle, "GFD-Net", progress=False)
    assert full.cfg.use_D and full.cfg.use_C and full.cfg.use_percept and "C random" in full.weights
    prnu = train_and_measure(cfg, bundle, "PRNU", progress=False)
    assert prnu.trainer is None and 0 <= prnu.closed <= 1
    with pytest.raises(ValueError, match="unknown method 'SVM'"):
        train_and_measure(cfg, bundle, "SVM", progress=False)


def measure_run(cfg, bundle, seed):
    """The accuracies per split of the G row's run of ``seed``, measured here from its checkpoint
    (torch.load, G rebuilt from the file's config), not through train_and_measure."""
    ckpt = default_run_dir(cfg.with_(seed=seed, use_D=False, use_C=False, use_percept=False), None,
                           bundle.identity) / "checkpoint.pt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    run_cfg = Config.from_dict(state["config"])
    assert run_cfg.g_only and run_cfg.seed == seed and state["step"] == cfg.steps   # the G row, this seed
    generator = build_generator(run_cfg, len(state["classes"]))
    generator.load_state_dict(state["models"]["G"])
    model = EncoderHead(generator.eval())
    return {world: accuracy(model, bundle[split], "cpu")
            for world, split in (("val", "val"), ("closed", "test_closed"), ("open", "test_open"))}


def test_calibration_reports_each_seeds_model_on_its_own_split(setup, monkeypatch):
    """Each seed's val / closed / open accuracy is that seed's G-row model measured on val / test_closed /
    test_open (catches calibration reading another split, seed or model), the means are theirs, and the
    verdict is ``closed_mean >= CLOSED_MIN`` whatever the open world says."""
    cfg, bundle = setup
    s = calibrate(cfg, bundle, seeds=(0, 1), progress=False)
    assert [r["seed"] for r in s["runs"]] == [0, 1] and s["chance"] == pytest.approx(1 / 3)
    for row in s["runs"]:
        measured = measure_run(cfg, bundle, row["seed"])
        for world in ("val", "closed", "open"):
            assert row[world] == pytest.approx(measured[world], abs=1e-6), (row["seed"], world)
    for world in ("val", "closed", "open"):
        assert s[f"{world}_mean"] == pytest.approx(sum(r[world] for r in s["runs"]) / 2)
    # the rule: the threshold just above / at / below the measured closed-world mean (runs are loaded)
    for threshold, met in ((s["closed_mean"] + 1e-6, False), (s["closed_mean"], True),
                           (s["closed_mean"] - 1e-6, True)):
        monkeypatch.setattr(calibration, "CLOSED_MIN", threshold)
        judged = calibrate(cfg, bundle, seeds=(0, 1), progress=False)
        assert judged["closed_mean"] == s["closed_mean"] and judged["meets_closed_rule"] is met
        text = format_calibration(judged)
        assert "closed-world rule" in text and "never tuned on" in text and ("NOT met" in text) != met
        # the verdict never depends on the open world
        assert ("NOT met" in format_calibration(dict(judged, open_mean=1.0 - judged["open_mean"]))) != met
