"""Where the CLI writes, checked before any work, and the smaller items of issue 32 (items 6 and 7):
``train --out`` and ``evaluate --json`` are checked up front; C's pre-training cache never lands in
the file-system root or a read-only folder; ``evaluate --checkpoint DIR`` names the file it wanted;
``attribute`` classifies in batches; hidden files are no class's images; the benchmark's manifest
records its final name; a DDP batch that does not split is one line from rank 0 and exit 2 on every
rank."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gfd import checkpoint, data, inference
from gfd.cli import main
from gfd.config import get_config

ROOT = Path(__file__).resolve().parents[1]
TINY = ["crop=32", "batch_size=4", "unet_depth=2", "unet_width=4", "unet_max_width=16", "disc_width=4",
        "classifier_width=4", "classifier_weights=random", "perceptual_weights=random", "steps=2",
        "c_pretrain_steps=1", "device=cpu", "num_workers=0"]
UNWRITABLE = Path("/proc")          # not even root can create a file here

pytestmark = pytest.mark.usefixtures("one_thread")


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def no_work(monkeypatch):
    """Reading the data or the checkpoint is work: it must not start."""
    def work(*args, **kwargs):
        raise RuntimeError("the work started before the output path was checked")
    monkeypatch.setattr(data, "load_data", work)
    monkeypatch.setattr(inference, "load_for_evaluation", work)


def train_args(out):
    args = ["train", "--preset", "quick", "--out", str(out), "--no-progress"]
    for item in TINY:
        args += ["--set", item]
    return args


# --- item 6: --out ----------------------------------------------------------------------------------

@pytest.mark.skipif(not UNWRITABLE.is_dir(), reason="needs /proc")
@pytest.mark.parametrize("kind", ["file", "under a file", "unwritable"])
def test_train_out_is_checked_before_any_work(tmp_path, capsys, no_work, kind):
    (tmp_path / "a_file").write_text("x")
    out = {"file": tmp_path / "a_file", "under a file": tmp_path / "a_file" / "run",
           "unwritable": UNWRITABLE / "gfd-run"}[kind]
    assert main(train_args(out)) == 2
    line = one_line(capsys.readouterr().err)
    assert f"--out {out}" in line
    assert {"file": "is not a folder", "under a file": "cannot be created",
            "unwritable": "cannot be written"}[kind] in line


def test_c_cache_goes_beside_the_run_only_where_that_is_a_writable_folder(tmp_path, monkeypatch, bundle, tiny_cfg):
    from gfd import train, utils
    monkeypatch.setattr(utils, "runs_dir", lambda: tmp_path / "data" / "runs")
    seen = []

    def pretrain(C, cfg, bundle, **kwargs):
        seen.append(kwargs["cache_dir"])
        raise KeyboardInterrupt         # stop here: where the cache goes is all this test needs
    monkeypatch.setattr(train, "pretrain_classifier", pretrain)
    for out in (tmp_path / "runs" / "mine", Path("/"), UNWRITABLE / "gfd-run"):
        with pytest.raises(KeyboardInterrupt):
            train.Trainer(tiny_cfg, bundle, out).pretrain_classifier(progress=False)
    assert seen == [tmp_path / "runs", tmp_path / "data" / "runs", tmp_path / "data" / "runs"]
    assert checkpoint.pretrain_cache_dir(tmp_path / "runs" / "mine") == tmp_path / "runs"


# --- item 7: evaluate ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["unwritable", "missing folder", "a folder"])
def test_evaluate_json_is_checked_before_the_evaluation(tmp_path, capsys, no_work, kind):
    target = {"unwritable": UNWRITABLE / "x.json", "missing folder": tmp_path / "nope" / "x.json",
              "a folder": tmp_path}[kind]
    assert main(["evaluate", "--checkpoint", str(tmp_path / "checkpoint.pt"), "--json", str(target)]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"--json {target}" in line


def test_evaluate_a_folder_as_checkpoint_names_the_file_expected(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    assert main(["evaluate", "--checkpoint", str(run), "--no-progress"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "is a folder" in line and str(run / "checkpoint.pt") in line and "does not exist" not in line
    assert main(["attribute", str(tmp_path), "--checkpoint", str(run)]) == 2
    assert "is a folder" in capsys.readouterr().err


# --- item 7: attribute in batches ------------------------------------------------------------------

def test_attribute_classifies_in_batches_in_input_order(tmp_path, monkeypatch):
    from conftest import write_image
    from gfd.train import Trainer

    cfg = get_config("quick", TINY)
    ckpt = Trainer(cfg, classes=["real", "ganA", "ganB"]).save(tmp_path / "checkpoint.pt")
    folder = tmp_path / "imgs"
    for i in range(5):
        write_image(folder / f"{i}.png", seed=i)
    (folder / "5_bad.png").write_bytes(b"not a png")
    events = []
    real_attribute, real_to_batch = inference.attribute, inference.to_batch
    def to_batch(images, cfg):                  # a file decoded (not a batch of tensors passed on)
        if not isinstance(images, torch.Tensor):
            events.append("decode")
        return real_to_batch(images, cfg)
    monkeypatch.setattr(inference, "to_batch", to_batch)
    monkeypatch.setattr(inference, "attribute",
                        lambda g, x, bs: events.append(len(x)) or real_attribute(g, x, bs))
    rows = inference.attribute_files(ckpt, [folder, tmp_path / "missing.png"], batch_size=2)
    assert events == ["decode", "decode", 2, "decode", "decode", 2, "decode", "decode", "decode", 1]
    assert [p.name for p, _, _ in rows] == ["0.png", "1.png", "2.png", "3.png", "4.png", "5_bad.png", "missing.png"]
    assert [err is None for _, _, err in rows] == [True] * 5 + [False, False]
    monkeypatch.setattr(inference, "attribute", real_attribute)
    whole = inference.attribute(ckpt, sorted(folder.glob("[0-4].png")))
    assert torch.allclose(torch.stack([p for _, p, _ in rows[:5]]), whole, atol=1e-6)


# --- item 7: hidden files ------------------------------------------------------------------------------

def test_hidden_files_are_not_images_of_a_class(make_dataset, tiny_cfg):
    root = make_dataset(n=4)
    (root / "train" / "ganA" / ".hidden.png").write_bytes(b"an editor's droppings, not an image")
    (root / "train" / "ganA" / "._001.png").write_bytes(b"macOS resource fork")
    loaded = data.get_loaders(root, tiny_cfg).datasets["train"]
    names = [Path(p).name for p, _ in loaded.samples]
    assert len(names) == 12 and not any(n.startswith(".") for n in names)


# --- item 7: the benchmark manifest's name -------------------------------------------------------------

def test_the_manifest_names_the_final_folder_not_the_temporary_one(tmp_path):
    """A build writes into ``.tmp-<name>-<pid>`` and is renamed to ``<name>``: the manifest says ``<name>``."""
    from gfd.benchmark import load_mini_benchmark, read_manifest
    from gfd.benchmark.zoo import TrainSettings

    tiny = dict(n_train=4, n_val=2, n_test=2, n_open=3, n_variant=2, gen_pool=8, image_size=32,
                train=TrainSettings(max_steps=4, min_steps=1, window=2, batch_size=4, crop=16, disc_width=8))
    root = load_mini_benchmark("quick", root=tmp_path, progress=False, overrides=tiny, workers=1)
    assert read_manifest(root)["name"] == root.name and not root.name.startswith(".tmp-")


# --- item 7: a DDP batch that does not split ------------------------------------------------------------

@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without torch.distributed")
def test_a_batch_that_does_not_split_over_the_ranks_is_one_line_and_exit_2(make_dataset, tmp_path):
    root, out = make_dataset(n=4), tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "gfd", "train", "--preset", "quick", "--out", str(out), "--no-progress",
           "--set", f"data_root={root}", "--set", "batch_size=3"]
    for item in TINY:
        if not item.startswith("batch_size"):
            cmd += ["--set", item]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: config field batch_size=3: a global batch of 3 train images does not split over 2 "
                      "processes; use a batch_size (and datasets) divisible by 2"], done.stderr
    # rank 0 exits 2; rank 1 exits 2 too, unless torchrun, seeing rank 0 gone, stops it first (SIGTERM)
    assert "exitcode  : 2" in done.stderr and "exitcode  : 1 " not in done.stderr, done.stderr
    assert "/gfd/" not in done.stderr.replace(str(out), "")          # no traceback through gfd's code
    assert not out.exists()
