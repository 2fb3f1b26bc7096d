"""``python -m gfd`` train / evaluate / attribute, and the inference API, on a tiny fake dataset."""
import json
import math
import subprocess
import sys

import pytest
import torch

from gfd import inference
from gfd.cli import main
from gfd.config import Config
from gfd.data import get_loaders
from gfd.evaluate import confusion_matrix, predict
from gfd.models.generator import EncoderHead, build_generator

TINY = ["crop=32", "batch_size=4", "unet_depth=2", "unet_width=4", "unet_max_width=16", "disc_width=4",
        "classifier_weights=random", "perceptual_weights=random", "steps=2", "c_pretrain_steps=1",
        "eval_every=1", "ckpt_every=1", "device=cpu", "num_workers=0"]


pytestmark = pytest.mark.usefixtures("one_thread")


# images per class (real, ganA, ganB) of the splits that are not 4 each: unbalanced, so that a model
# that predicts one class everywhere still scores differently on val, test_closed and test_open
COUNTS = {"val": (1, 2, 4), "test_open": (4, 1, 2)}


def unbalanced_dataset(make_dataset):
    root = make_dataset(n=4)
    for split, counts in COUNTS.items():
        for c, k in zip(("real", "ganA", "ganB"), counts):
            for f in sorted((root / split / c).glob("*.png"))[k:]:
                f.unlink()
    return root


def measure(ckpt, root, split):
    """(accuracy, confusion, n) of the checkpoint's G_enc + H on ``root/split``, measured here: the
    file read with torch.load, G rebuilt from its config, nothing of the CLI's loading path."""
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    cfg = Config.from_dict(state["config"])
    generator = build_generator(cfg, len(state["classes"]))
    generator.load_state_dict(state["models"]["G"])
    y, scores = predict(EncoderHead(generator.eval()), get_loaders(root, cfg, splits=[split])[split], "cpu")
    cm = confusion_matrix(y, scores, len(state["classes"]))
    return (scores.argmax(1) == y).double().mean().item(), cm.tolist(), len(y)


@pytest.fixture
def trained(make_dataset, tmp_path, capsys):
    root = unbalanced_dataset(make_dataset)
    args = ["train", "--preset", "quick", "--out", str(tmp_path / "run"), "--no-progress",
            "--set", f"data_root={root}"]
    for item in TINY:
        args += ["--set", item]
    assert main(args) == 0
    return root, tmp_path / "run" / "checkpoint.pt", capsys.readouterr().out


def test_train_prints_accuracies_and_the_checkpoint(trained):
    """The accuracies train prints are its checkpoint's, each on its own split (not another split's,
    not another model's), and the validation accuracy printed is the last one of the history."""
    root, ckpt, out = trained
    assert ckpt.is_file()
    for world, split in (("closed", "test_closed"), ("open", "test_open")):
        acc, _, n = measure(ckpt, root, split)
        assert f"{world}-world accuracy ({split}): {acc:.4f}  (n = {n})" in out
    history = torch.load(ckpt, map_location="cpu", weights_only=True)["history"]
    assert f"validation accuracy (closed world, val): {history['val_acc'][-1]:.4f}" in out
    assert f"checkpoint: {ckpt}" in out
    assert "weights: C random, F random" in out


def test_train_checkpoint_has_the_requested_steps_and_their_losses(trained):
    """The checkpoint is the run asked for (its step is ``steps``, not one short or the C pre-training's),
    and its history holds one finite value of every loss term per step, L_G being Eq. 7's weighted sum
    of the recorded terms and L_DC Eq. 8's sum (catches a history that records the wrong values)."""
    _, ckpt, _ = trained
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    cfg = state["config"]
    assert state["step"] == cfg["steps"] == 2 and state["classes"] == ["real", "ganA", "ganB"]
    h = state["history"]
    assert h["step"] == [1, 2] and h["eval_step"] == [1, 2] and len(h["val_acc"]) == 2
    terms = ("L_z", "L_adv_G", "L_cls_G", "L_percept", "L_G", "L_cls_C", "L_adv_D", "L_DC")
    assert all(len(h[t]) == 2 and all(math.isfinite(v) for v in h[t]) for t in terms)
    for k in range(2):
        l_g = (cfg["w1"] * h["L_z"][k] + cfg["w2"] * h["L_adv_G"][k] + cfg["w3"] * h["L_cls_G"][k]
               + cfg["w4"] * h["L_percept"][k])
        assert h["L_G"][k] == pytest.approx(l_g, rel=1e-5)
        assert h["L_DC"][k] == pytest.approx(h["L_cls_C"][k] + h["L_adv_D"][k], rel=1e-5)
    assert h["c_pretrain_loss"] and all(math.isfinite(v) for v in h["c_pretrain_loss"])


def test_train_again_reuses_the_finished_run(trained, capsys):
    root, ckpt, _ = trained
    args = ["train", "--preset", "quick", "--out", str(ckpt.parent), "--no-progress", "--set", f"data_root={root}"]
    for item in TINY:
        args += ["--set", item]
    assert main(args) == 0
    assert "found the finished run" in capsys.readouterr().out


def test_evaluate_a_checkpoint(trained, tmp_path, capsys):
    """evaluate prints and writes (--json) the accuracy, n and confusion matrix of the checkpoint's
    G_enc + H on each split, equal to a measurement made here (catches a wrong split, model or count)."""
    root, ckpt, _ = trained
    out_json = tmp_path / "results.json"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--no-progress", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    results = json.loads(out_json.read_text())
    assert set(results) == {"test_closed", "test_open"}
    for world, split in (("closed", "test_closed"), ("open", "test_open")):
        acc, cm, n = measure(ckpt, root, split)
        assert results[split]["acc"] == pytest.approx(acc, abs=1e-12)
        assert results[split]["confusion"] == cm and results[split]["n"] == n
        assert results[split]["world"] == world and results[split]["classes"] == ["real", "ganA", "ganB"]
        assert f"{world}-world accuracy ({split}): {acc:.4f}  (n = {n})" in out


def test_attribute_images_prints_the_top_source_and_probabilities(trained, capsys):
    root, ckpt, _ = trained
    images = sorted((root / "test_closed" / "ganA").glob("*.png"))[:2]
    assert main(["attribute", *map(str, images), "--checkpoint", str(ckpt)]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith(str(images[0].parent))]
    assert len(lines) == 2
    assert all("real=" in l and "ganA=" in l and "ganB=" in l for l in lines)
    probs = inference.attribute(ckpt, images)
    assert probs.shape == (2, 3) and torch.allclose(probs.sum(1), torch.ones(2))
    top = inference.class_names(ckpt)[int(probs[0].argmax())]
    assert lines[0].split(": ")[1].startswith(top)


def test_inference_api_uses_g_enc_and_h_only(trained):
    _, ckpt, _ = trained
    generator, cfg, classes = inference.load_generator(ckpt)
    x = torch.rand(3, 3, cfg.crop, cfg.crop) * 2 - 1
    with torch.no_grad():
        expected = torch.softmax(generator.eval().classify(x), 1)
    torch.testing.assert_close(inference.attribute(ckpt, x), expected)
    torch.testing.assert_close(inference.attribute(generator, x), expected)
    f = inference.fingerprint(ckpt, x[0])
    assert f.shape == (1, 3, cfg.crop, cfg.crop)
    with pytest.raises(ValueError, match="need the test transform"):
        inference.attribute(generator, ["some.png"])


def test_bad_checkpoints_and_images_give_clear_errors(tmp_path, trained, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_text("definitely not a checkpoint")
    assert main(["evaluate", "--checkpoint", str(bad)]) == 2        # a user error: exit code 2, one line
    err = capsys.readouterr().err
    assert "bad.pt is not a readable torch checkpoint" in err and len(err.splitlines()) == 1
    _, ckpt, _ = trained
    assert main(["attribute", str(tmp_path / "nope.png"), "--checkpoint", str(ckpt)]) == 2
    assert "nope.png does not exist" in capsys.readouterr().err


def test_unknown_config_field_is_a_clear_usage_error(capsys):
    assert main(["train", "--preset", "quick", "--set", "stepz=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown config field(s) ['stepz']") and len(err.splitlines()) == 1


def test_a_failed_run_exits_1_and_a_bad_command_line_2(monkeypatch, capsys):
    from gfd.losses import NonFiniteLossError

    def diverge(args):
        raise NonFiniteLossError("loss L_G = nan at step 3")
    monkeypatch.setattr("gfd.cli.cmd_train", diverge)
    assert main(["train", "--preset", "quick"]) == 1
    assert capsys.readouterr().err == "error: NonFiniteLossError: loss L_G = nan at step 3\n"
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--preset", "nope"])
    assert exit_.value.code == 2


def test_module_entry_point_shows_the_subcommands():
    out = subprocess.run([sys.executable, "-m", "gfd", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert all(cmd in out.stdout for cmd in ("train", "evaluate", "attribute"))


def test_speed_is_one_command_and_data_adds_the_loading_share(monkeypatch, capsys, tmp_path):
    """``python -m gfd speed`` prints the step table; ``--data`` adds the share of time spent on data.
    Nothing is timed: the measurements are faked, the command's wiring and arithmetic are checked."""
    from gfd import speed

    def step(preset, mode, steps, warmup, batch_size, device, threads=None, overrides=None):
        s = 0.1 if mode == "G-only" else 0.4
        return {"preset": preset, "mode": mode, "device": "cpu", "amp": "off", "batch": 16, "crop": 48,
                "s_per_step": s, "img_per_s": 16 / s, "peak_mib": 800.0, "memory": "process peak RSS", "threads": 1}
    asked = {}

    def loading(preset, batches, **kwargs):
        asked.update(preset=preset, batches=batches)
        return {"preset": preset, "num_workers": 0, "pin_memory": False, "s_per_batch": {"x": 0.01, "x_real": 0.02}}
    monkeypatch.setattr(speed, "run_isolated", step)
    monkeypatch.setattr(speed, "measure_loading", loading)
    assert main(["speed", "--preset", "course"]) == 0
    out = capsys.readouterr().out
    assert "img/s" in out and "4.00x" in out and "waiting on data" not in out and not asked
    assert main(["speed", "--preset", "course", "--data", "--batches", "3", "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "4.00x" in out and "waiting on data" in out and asked == {"preset": "course", "batches": 3}
    rows = json.loads((tmp_path / "s.json").read_text())
    assert [r["mode"] for r in rows] == ["G-only", "full GFD"]
    assert math.isclose(rows[0]["data_s"], 0.01) and math.isclose(rows[1]["data_s"], 0.03)
    assert math.isclose(rows[1]["data_share"], 0.03 / 0.43)
