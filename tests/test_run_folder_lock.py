"""A run folder belongs to one run at a time, and ``--fresh`` deletes only what gfd wrote (issue 32,
items 3 and 5).

A second ``train`` on a folder that a running ``train`` holds exits 2 with one line naming the holder
(pid, command), without deleting the first run's checkpoint write in progress; a killed holder leaves
no stale lock.  ``--fresh`` refuses a ``checkpoint.pt`` that is not a gfd checkpoint."""
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from gfd import checkpoint
from gfd.cli import main

LOCK_NAME = ".gfd-run.lock"

ROOT = Path(__file__).resolve().parents[1]
TINY = ["crop=32", "batch_size=4", "unet_depth=2", "unet_width=4", "unet_max_width=16", "disc_width=4",
        "classifier_width=4", "classifier_weights=random", "perceptual_weights=random", "steps=2",
        "c_pretrain_steps=1", "eval_every=1", "ckpt_every=1", "device=cpu", "num_workers=0"]

pytestmark = pytest.mark.usefixtures("one_thread")


def train_args(root, out, *extra):
    args = ["train", "--preset", "quick", "--out", str(out), "--no-progress", "--set", f"data_root={root}"]
    for item in TINY:
        args += ["--set", item]
    return args + list(extra)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


HOLDER = textwrap.dedent("""
    import sys, time
    from gfd import train
    from gfd.config import get_config
    from gfd.data import get_loaders

    root, run, sets = sys.argv[1], sys.argv[2], sys.argv[3:]
    cfg = get_config("quick", sets + [f"data_root={root}"])
    def slow_fit(self, *args, **kwargs):      # a run in the middle of its training
        print("training", flush=True)
        time.sleep(600)
    train.Trainer.fit = slow_fit
    train.load_or_train(cfg, get_loaders(root, cfg), out_dir=run, progress=False)
""")


def test_a_second_run_on_a_locked_folder_is_refused_naming_the_holder(make_dataset, tmp_path, capsys):
    root, run = make_dataset(n=4), tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(root), str(run), *TINY], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        assert holder.stdout.readline().strip() == "training", holder.stderr.read()
        in_progress = run / ".checkpoint.pt.abc123.tmp"         # the first run's checkpoint being written
        in_progress.write_bytes(b"half a checkpoint")

        assert main(train_args(root, run)) == 2
        line = one_line(capsys.readouterr().err)
        assert f"run folder {run} is in use" in line and f"pid {holder.pid}" in line and "-c" in line, line
        assert in_progress.read_bytes() == b"half a checkpoint"          # not deleted as "stale"
        assert not (run / "checkpoint.pt").exists()                       # and nothing trained
        assert main(train_args(root, run, "--fresh")) == 2                # --fresh waits its turn too
        assert in_progress.exists()
        capsys.readouterr()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the holder was killed: the kernel released its lock, the next run takes the folder over
    assert main(train_args(root, run)) == 0
    out = capsys.readouterr().out
    assert "partial checkpoint left by an interrupted run" in out and not in_progress.exists()
    assert (run / "checkpoint.pt").is_file() and not (run / LOCK_NAME).exists()


def test_the_lock_excludes_a_second_holder_and_is_gone_after(tmp_path):
    from gfd.checkpoint import RunFolderBusyError, run_lock
    assert checkpoint.LOCK_NAME == LOCK_NAME
    with run_lock(tmp_path) as path:
        assert path == tmp_path / LOCK_NAME and f'"pid": {os.getpid()}' in path.read_text()
        with pytest.raises(RunFolderBusyError, match=rf"in use by another gfd run \(pid {os.getpid()}, command: "):
            with run_lock(tmp_path):
                pass
    assert list(tmp_path.iterdir()) == []
    (tmp_path / LOCK_NAME).write_text('{"pid": 1, "command": "a killed run"}')   # left by a killed run: no lock
    with run_lock(tmp_path):
        assert "a killed run" not in (tmp_path / LOCK_NAME).read_text()


def test_only_rank_0_takes_the_lock(tmp_path, monkeypatch):
    from gfd import distributed
    calls = []
    monkeypatch.setattr(distributed, "active", lambda: True)
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    monkeypatch.setattr(distributed.dist, "broadcast_object_list", lambda box, src: calls.append(list(box)))
    assert distributed.on_main(lambda: calls.append("ran on rank 1")) is None
    assert calls == [[None]]                              # rank 1 only waits for rank 0's verdict
    monkeypatch.setattr(distributed.dist, "broadcast_object_list",
                        lambda box, src: box.__setitem__(0, "run folder x is in use by another gfd run (pid 7)"))
    with pytest.raises(distributed.EveryRankError, match="pid 7") as err:
        distributed.on_main(lambda: None)
    assert err.value.reported is False                    # rank 0 prints it; rank 1 stops quietly


@pytest.mark.parametrize("content", ["not torch", "torch, not gfd", "a folder"])
def test_fresh_refuses_a_checkpoint_pt_that_gfd_did_not_write(make_dataset, tmp_path, capsys, content):
    root, run = make_dataset(n=4), tmp_path / "run"
    run.mkdir()
    foreign = run / "checkpoint.pt"
    if content == "not torch":
        foreign.write_bytes(b"my own file that happens to be called checkpoint.pt")
    elif content == "torch, not gfd":
        torch.save({"model": torch.zeros(3), "epoch": 7}, foreign)
    else:
        foreign.mkdir()
        (foreign / "keep.txt").write_text("mine")
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    assert main(train_args(root, run, "--fresh")) == 2
    line = one_line(capsys.readouterr().err)
    assert f"{foreign} is not a checkpoint written by gfd" in line and "nothing was deleted" in line
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before


def test_fresh_still_deletes_a_gfd_checkpoint(make_dataset, tmp_path, capsys):
    root, run = make_dataset(n=4), tmp_path / "run"
    assert main(train_args(root, run)) == 0
    assert checkpoint.is_gfd_checkpoint(run / "checkpoint.pt")
    assert main(train_args(root, run, "--fresh")) == 0
    assert f"--fresh: deleted {run / 'checkpoint.pt'}" in capsys.readouterr().out
