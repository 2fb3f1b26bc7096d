"""What the command line reads and writes, nothing lost and nothing silently wrong: ``--fresh`` keeps the
user's files, a bad input is one line ``error: ...`` with exit code 2 naming the file or field and what is
allowed, advice that can be followed, ``attribute`` on folders past bad files, ``evaluate``'s numbers and
``--json``, weights-only exports, file modes, and ``python -m gfd weights``."""
import json
import os
import shutil
from contextlib import contextmanager

import pytest
import torch

from conftest import png_header, write_image
from gfd import checkpoint, data, inference
from gfd.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gfd.cli import main


TINY = ["crop=32", "batch_size=4", "unet_depth=2", "unet_width=4", "unet_max_width=16", "disc_width=4",
        "classifier_weights=random", "perceptual_weights=random", "steps=2", "c_pretrain_steps=1",
        "eval_every=1", "ckpt_every=1", "device=cpu", "num_workers=0"]


CLASSES = ("real", "ganA", "ganB")


def build_dataset(root, n=4, classes=CLASSES):
    k = 0
    for split in ("train", "val", "test_closed", "test_open"):
        for c in classes:
            for i in range(n):
                write_image(root / split / c / f"{i:03d}.png", seed=k)
                k += 1
    return root


def sets(*items):
    out = []
    for item in (*TINY, *items):
        out += ["--set", item]
    return out


def train_args(root, out, *extra):
    return ["train", "--preset", "quick", "--out", str(out), "--no-progress", *sets(f"data_root={root}"), *extra]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny finished run, shared by the read-only tests of this module: (dataset root, checkpoint)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("cli_io")
    root = build_dataset(base / "ds")
    assert main(train_args(root, base / "run")) == 0
    yield root, base / "run" / "checkpoint.pt"
    torch.set_num_threads(threads)


def one_line_error(err: str) -> str:
    """The CLI's stderr: exactly one line ``error: ...`` and no traceback."""
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


# --- --fresh deletes nothing of the user's, on the command line too -------------------------------

def test_cli_fresh_keeps_user_files_and_refuses_a_non_run_folder(dataset, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train_args(dataset, run)) == 0
    (run / "notes.txt").write_text("mine")
    assert main(train_args(dataset, run, "--fresh")) == 0
    assert (run / "notes.txt").read_text() == "mine" and (run / "checkpoint.pt").is_file()
    assert "--fresh: deleted" in capsys.readouterr().out

    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    assert main(train_args(dataset, home, "--fresh")) == 2
    assert "not a run folder" in one_line_error(capsys.readouterr().err)
    assert sorted(p.name for p in home.iterdir()) == ["thesis.tex"]
    assert (home / "thesis.tex").read_text() == "years of work"


# --- one line, exit code 2, the file or field and what is allowed ---------------------------------

def test_a_too_large_image_in_a_dataset_stops_the_cli_with_one_line(dataset, tmp_path, capsys):
    (dataset / "train" / "ganB" / "big.png").write_bytes(png_header(8000, 6000))
    assert main(train_args(dataset, tmp_path / "run")) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "big.png is 8000x6000 px" in line and "40 megapixels" in line


@pytest.mark.parametrize("item, expected", [
    ("transform=p256", ["transform", "'p128', 'p1024', 'mini'"]),
    ("benchmark_size=huge", ["benchmark_size", "'quick', 'default'"]),
    ("device=gpu", ["device", "'cpu'", "'cuda'"]),
    ("classifier_arch=vgg99", ["classifier_arch", "'resnet18'", "'resnet50'"]),
    ("steps=abc", ["steps", "integer", "'abc'"]),
    ("lr=fast", ["lr", "number", "'fast'"]),
])
def test_invalid_set_values_are_one_line_and_exit_code_2(dataset, tmp_path, capsys, item, expected):
    args = train_args(dataset, tmp_path / "run", "--set", item)
    assert main(args) == 2
    line = one_line_error(capsys.readouterr().err)
    assert all(e in line for e in expected), line
    assert not (tmp_path / "run").exists()


# --- advice that can be followed ------------------------------------------------------------------

def test_skip_bad_on_the_command_line_for_train_and_evaluate(dataset, tmp_path, capsys):
    (dataset / "test_closed" / "ganA" / "000.png").write_bytes(b"garbage")
    run = tmp_path / "run"
    assert main(train_args(dataset, run)) == 2
    assert "000.png" in one_line_error(capsys.readouterr().err)
    assert main(train_args(dataset, run, "--skip-bad")) == 0
    ckpt = str(run / "checkpoint.pt")
    assert main(["evaluate", "--checkpoint", ckpt, "--no-progress"]) == 2
    assert "--skip-bad" in one_line_error(capsys.readouterr().err)
    assert main(["evaluate", "--checkpoint", ckpt, "--no-progress", "--skip-bad"]) == 0
    assert "(n = 11)" in capsys.readouterr().out


def test_evaluate_with_another_class_order_points_to_classes_json(trained, tmp_path, capsys):
    root, ckpt = trained
    other = tmp_path / "reordered"
    shutil.copytree(root, other)
    (other / "classes.json").write_text(json.dumps(["ganB", "ganA", "real"]))
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data-root", str(other), "--no-progress"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "classes.json" in line and '["real", "ganA", "ganB"]' in line


def test_evaluate_on_a_moved_data_folder_points_to_data_root(dataset, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train_args(dataset, run)) == 0
    moved = dataset.rename(tmp_path / "moved")
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--no-progress"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "--data-root" in line and str(dataset) in line
    assert main(["evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--data-root", str(moved),
                 "--no-progress"]) == 0


# --- attribute folders, go on past bad files, say which checkpoint --------------------------------

def attributed_lines(out: str) -> dict[str, str]:
    return {l.split(": ", 1)[0]: l.split(": ", 1)[1] for l in out.splitlines() if not l.startswith("checkpoint:")}


def test_attribute_a_folder_sorted_and_not_recursive(trained, tmp_path, capsys):
    root, ckpt = trained
    folder = tmp_path / "imgs"
    shutil.copytree(root / "test_closed" / "ganA", folder)
    write_image(folder / "sub" / "deep.png")
    (folder / "notes.txt").write_text("not an image")
    assert main(["attribute", str(folder), "--checkpoint", str(ckpt)]) == 0
    got = list(attributed_lines(capsys.readouterr().out))
    assert got == [str(p) for p in sorted(folder.glob("*.png"))]


def test_one_bad_file_does_not_abort_the_batch(trained, tmp_path, capsys):
    root, ckpt = trained
    good = sorted((root / "test_closed" / "ganB").glob("*.png"))[:2]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"junk")
    missing = tmp_path / "missing.png"
    assert main(["attribute", str(good[0]), str(bad), str(missing), str(good[1]), "--checkpoint", str(ckpt)]) == 2
    captured = capsys.readouterr()
    assert list(attributed_lines(captured.out)) == [str(good[0]), str(good[1])]
    errors = captured.err.splitlines()
    assert all(l.startswith("error: ") for l in errors) and "Traceback" not in captured.err
    assert any("bad.png" in l for l in errors) and any("missing.png" in l for l in errors)
    probs = inference.attribute(ckpt, good)          # the good ones are attributed as on their own
    classes = inference.class_names(ckpt)
    first = attributed_lines(captured.out)[str(good[0])]
    assert first.startswith(f"{classes[int(probs[0].argmax())]} ({probs[0].max():.3f})")


def test_without_checkpoint_attribute_picks_the_newest_finished_run(trained, tmp_path, monkeypatch, capsys):
    root, ckpt = trained
    runs = tmp_path / "runs"
    older, newer, unfinished = runs / "older" / "checkpoint.pt", runs / "newer" / "checkpoint.pt", \
        runs / "unfinished" / "checkpoint.pt"
    for path in (older, newer):
        path.parent.mkdir(parents=True)
        shutil.copy(ckpt, path)
    state = load_checkpoint(ckpt)
    save_checkpoint(unfinished, {**state, "step": 1})                 # interrupted at step 1 of 2
    for t, path in enumerate((older, newer, unfinished)):
        os.utime(path, (1_000_000 + t, 1_000_000 + t))
    assert inference.latest_checkpoint(runs) == newer
    monkeypatch.setattr("gfd.utils.runs_dir", lambda: runs)
    image = sorted((root / "val" / "real").glob("*.png"))[0]
    assert main(["attribute", str(image)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"checkpoint: {newer} (the newest finished run")
    for path in (older, newer):
        path.unlink()
    with pytest.raises(FileNotFoundError, match="no finished run"):
        inference.latest_checkpoint(runs)


# --- evaluate's per-class lines and --json are evaluate_model's numbers ---------------------------

def test_evaluate_prints_and_writes_the_numbers_of_evaluate_model(trained, tmp_path, capsys):
    from gfd.evaluate import evaluate_model
    from gfd.models.generator import EncoderHead

    root, ckpt = trained
    out_json = tmp_path / "res.json"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--json", str(out_json), "--no-progress"]) == 0
    out = capsys.readouterr().out
    generator, cfg, classes = inference.load_generator(ckpt)
    expected = evaluate_model(EncoderHead(generator), data.load_data(cfg, progress=False))
    assert json.loads(out_json.read_text()) == json.loads(json.dumps(expected))
    lines = out.splitlines()
    for split, res in expected.items():
        head = lines.index(f"{res['world']}-world accuracy ({split}): {res['acc']:.4f}  (n = {res['n']})")
        for k, c in enumerate(classes):
            name, acc = lines[head + 1 + k].split()
            assert name == c and acc == f"{res['per_class_acc'][c]:.4f}"
        matrix = [[int(v) for v in lines[head + 3 + len(classes) + k].split()[1:]] for k in range(len(classes))]
        assert matrix == res["confusion"]


# --- weights-only export, and file modes ----------------------------------------------------------

def test_export_is_small_and_gives_identical_attribution_and_evaluation(trained, tmp_path, capsys):
    root, ckpt = trained
    export = tmp_path / "gfd.weights.pt"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(export)]) == 0
    capsys.readouterr()
    assert export.stat().st_size * 10 < ckpt.stat().st_size
    images = [str(p) for p in sorted((root / "test_open").glob("*/*.png"))]
    outputs = {}
    for name, path in (("full", ckpt), ("export", export)):
        js = tmp_path / f"{name}.json"
        assert main(["attribute", *images, "--checkpoint", str(path)]) == 0
        attributed = attributed_lines(capsys.readouterr().out)
        assert main(["evaluate", "--checkpoint", str(path), "--json", str(js), "--no-progress"]) == 0
        evaluated = [l for l in capsys.readouterr().out.splitlines() if not l.startswith(("checkpoint:", "json:"))]
        outputs[name] = (attributed, evaluated, json.loads(js.read_text()))
    assert outputs["full"] == outputs["export"] and list(outputs["full"][0]) == images
    torch.testing.assert_close(inference.attribute(export, images), inference.attribute(ckpt, images),
                               rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="weights-only export"):
        load_checkpoint(export)                           # training cannot resume from it
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(ckpt)]) == 2     # nothing lost
    assert load_checkpoint(ckpt)["format"] == "gfd-checkpoint"


@contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_saved_checkpoints_and_exports_follow_the_umask(trained, tmp_path, mask, mode):
    _, ckpt = trained
    state = load_checkpoint(ckpt)
    with umask(mask):
        saved = save_checkpoint(tmp_path / "checkpoint.pt", state)
        exported = checkpoint.export_weights(saved, tmp_path / "export.pt")
    assert saved.stat().st_mode & 0o777 == mode
    assert exported.stat().st_mode & 0o777 == mode


# --- python -m gfd weights ------------------------------------------------------------------------

def test_weights_command_imports_a_checked_file_into_the_hub_cache(offline_hub, tmp_path, capsys):
    import hashlib

    import torch
    import torchvision
    from gfd.models import weights as W
    good = tmp_path / "brought.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), good)
    # a real torchvision file's name carries the first hex digits of its sha256; ours cannot match
    assert main(["weights", "--arch", "resnet18", "--from", str(good)]) == 2
    assert "sha256" in capsys.readouterr().err
    target = W.cache_path(W.imagenet_weights("resnet18"))
    digest = hashlib.sha256(good.read_bytes()).hexdigest()[:8]
    fake = type("Weights", (), {"url": f"https://example.invalid/resnet18-{digest}.pth", "name": "X"})()
    import unittest.mock as mock
    with mock.patch.object(W, "imagenet_weights", lambda arch: fake):
        assert main(["weights", "--arch", "resnet18", "--from", str(good)]) == 0
        installed = W.cache_path(fake)
    assert installed.is_file() and installed.read_bytes() == good.read_bytes() and installed != target
    assert main(["weights", "--arch", "resnet18"]) == 1                       # offline: not installed, says why
    assert "not installed" in capsys.readouterr().err
