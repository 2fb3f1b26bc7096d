"""``python -m gfd`` train / evaluate / attribute, and the inference API, on a tiny fake dataset."""
import subprocess
import sys

import pytest
import torch

from gfd import inference
from gfd.cli import main

TINY = ["crop=32", "batch_size=4", "unet_depth=2", "unet_width=4", "unet_max_width=16", "disc_width=4",
        "classifier_weights=random", "perceptual_weights=random", "steps=2", "c_pretrain_steps=1",
        "eval_every=1", "ckpt_every=1", "device=cpu", "num_workers=0"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def trained(make_dataset, tmp_path, capsys):
    root = make_dataset(n=4)
    args = ["train", "--preset", "quick", "--out", str(tmp_path / "run"), "--no-progress",
            "--set", f"data_root={root}"]
    for item in TINY:
        args += ["--set", item]
    assert main(args) == 0
    return root, tmp_path / "run" / "checkpoint.pt", capsys.readouterr().out


def test_train_prints_accuracies_and_the_checkpoint(trained):
    root, ckpt, out = trained
    assert ckpt.is_file()
    assert "closed-world accuracy (test_closed):" in out
    assert "open-world accuracy (test_open):" in out
    assert f"checkpoint: {ckpt}" in out
    assert "weights: C random, F random" in out


def test_train_again_reuses_the_finished_run(trained, capsys):
    root, ckpt, _ = trained
    args = ["train", "--preset", "quick", "--out", str(ckpt.parent), "--no-progress", "--set", f"data_root={root}"]
    for item in TINY:
        args += ["--set", item]
    assert main(args) == 0
    assert "found the finished run" in capsys.readouterr().out


def test_evaluate_a_checkpoint(trained, capsys):
    _, ckpt, _ = trained
    assert main(["evaluate", "--checkpoint", str(ckpt), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "closed-world accuracy" in out and "open-world accuracy" in out


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
