"""The runners: train_and_measure (one method, one config) and the benchmark's calibration."""
import pytest

from gfd.config import get_config
from gfd.data import get_loaders
from gfd.runs import train_and_measure
from gfd.runs.calibrate import CLOSED_MIN, calibrate, format_calibration

TINY = dict(crop=32, batch_size=4, unet_depth=2, unet_width=4, unet_max_width=16, disc_width=4,
            classifier_weights="random", perceptual_weights="random", steps=2, c_pretrain_steps=1,
            eval_every=0, ckpt_every=0, device="cpu", num_workers=0)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def setup(make_dataset, tmp_path, monkeypatch):
    root = make_dataset(n=4)
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


def test_calibration_is_the_g_row_and_judges_the_closed_world_only(setup):
    cfg, bundle = setup
    s = calibrate(cfg, bundle, seeds=(0, 1), progress=False)
    again = train_and_measure(cfg.with_(seed=1, use_D=False, use_C=False, use_percept=False), bundle, progress=False)
    assert s["runs"][1]["closed"] == again.closed and s["runs"][1]["open"] == again.open   # the same run
    assert s["closed_mean"] == pytest.approx(sum(r["closed"] for r in s["runs"]) / 2)
    assert s["meets_closed_rule"] == (s["closed_mean"] >= CLOSED_MIN)
    text = format_calibration(s)
    assert "closed-world rule" in text and "never tuned on" in text
    # the verdict never depends on the open world
    s_open = dict(s, open_mean=1.0 - s["open_mean"])
    assert ("NOT met" in format_calibration(s_open)) == ("NOT met" in text)
