"""Several processes (gfd.distributed): ``torchrun --nproc_per_node=2 -m gfd train`` on the CPU (gloo)
trains like one process with the same global batch, writes from rank 0 only, and resumes.

Tolerance: 2 processes compute the same update as 1 in another order of floating-point sums (BatchNorm
statistics summed over the ranks, gradients averaged by DDP), so weights and losses agree to ~1e-6
after 4 steps (measured: 2e-7 on the weights, 1e-6 on the losses; a G-only run 7e-6).  ``TOL`` = 1e-4
leaves room for other CPUs' rounding and is still far below what a real difference makes: with
per-rank BatchNorm statistics instead of the global batch's, the same run differs by 1e-2.
"""
import copy
import os
import shutil
import subprocess
import sys

import pytest
import torch

from gfd import distributed
from gfd.config import get_config
from gfd.data import get_loaders
from gfd.streams import BatchStream
from gfd.train import CHECKPOINT_NAME, Trainer

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without torch.distributed")]

TOL = 1e-4
TINY = dict(crop=32, batch_size=4, unet_depth=2, unet_width=4, unet_max_width=16, disc_width=4,
            classifier_arch="compact", classifier_width=4, perceptual_layer="relu1_1",
            perceptual_weights="random", c_pretrain_steps=2, eval_every=2, ckpt_every=2, num_workers=0,
            lr_schedule="constant", patience=0, device="cpu", seed=5)
"""A constant lr, so that a run of 2 steps continued to 4 is the run of 4 steps (cosine depends on
``steps``); no plateau stop."""


def settings(root, **changes):
    return [f"{k}={v}" for k, v in (TINY | {"data_root": root} | changes).items()]


def torchrun(root, out, steps):
    """``python -m torch.distributed.run --standalone --nproc_per_node=2 -m gfd train ...``: stdout."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "gfd", "train", "--preset", "quick", "--out", str(out), "--no-progress"]
    for kv in settings(root, steps=steps):
        cmd += ["--set", kv]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def max_diff(a, b):
    """Largest absolute difference between two state_dicts, or two histories' loss lists."""
    return max((torch.as_tensor(a[k], dtype=torch.float64) - torch.as_tensor(b[k], dtype=torch.float64))
               .nan_to_num().abs().max().item() for k in a)


LOSSES = ("L_z", "L_adv_G", "L_cls_G", "L_percept", "L_G", "L_cls_C", "L_adv_D", "L_DC", "lr", "val_acc",
          "c_pretrain_loss")


def assert_same_run(ckpt, reference):
    """A checkpoint's history and networks equal a single-process trainer's state, within TOL."""
    assert ckpt["step"] == reference["step"] and ckpt["history"]["eval_step"] == reference["history"]["eval_step"]
    assert max_diff({k: ckpt["history"][k] for k in LOSSES}, {k: reference["history"][k] for k in LOSSES}) < TOL
    assert ckpt["models"].keys() == reference["models"].keys()
    for name in ckpt["models"]:
        assert max_diff(ckpt["models"][name], reference["models"][name]) < TOL, name


def test_two_processes_train_like_one_write_from_rank_0_and_resume(make_dataset, tmp_path):
    root = make_dataset(n=4)
    cfg = get_config("quick", settings(root, steps=4))
    bundle = get_loaders(root, cfg)

    one = Trainer(cfg, bundle, tmp_path / "one" / "run")      # the reference: one process, same global batch
    one.fit(steps=2, progress=False)
    at_2 = copy.deepcopy(one.state_dict())
    one.fit(progress=False)
    at_4 = copy.deepcopy(one.state_dict())

    run = tmp_path / "two" / "run"
    log = torchrun(root, run, steps=2)                          # 2 processes, a new run ...
    assert log.count("new run in") == 1 and log.count("checkpoint:") == 1      # rank 0 alone logs
    ckpt = torch.load(run / CHECKPOINT_NAME, weights_only=True)
    assert ckpt["meta"]["processes"] == 2
    assert_same_run(ckpt, at_2)
    assert sorted(p.name for p in run.iterdir()) == [CHECKPOINT_NAME]
    assert len(list((run.parent / "pretrained-C").iterdir())) == 1   # C's pre-training cached once
    shutil.copy(run / CHECKPOINT_NAME, tmp_path / "two-at-2.pt")

    log = torchrun(root, run, steps=4)                          # ... continued on 2 processes
    assert log.count("resuming") == 1
    assert_same_run(torch.load(run / CHECKPOINT_NAME, weights_only=True), at_4)

    # the 2-process checkpoint also continues in one process
    alone = Trainer(cfg, bundle, tmp_path / "alone", pretrained=False).load(tmp_path / "two-at-2.pt")
    alone.fit(progress=False)
    assert_same_run(alone.state_dict(), at_4)


def test_ranks_share_the_global_batch_exactly(make_dataset):
    """Rank 0's rows then rank 1's rows are the batch one process draws: same images, same random crops."""
    cfg = get_config("quick", settings(make_dataset(n=4), batch_size=6))
    ds = get_loaders(cfg.data_root, cfg).datasets["train"]      # random 32 px crops of 64 px images
    streams = [BatchStream(ds, 6, seed=1, rank=r, world_size=w) for r, w in ((0, 1), (0, 2), (1, 2))]
    for _ in range(5):                                            # 12 images, 6 a batch: across epochs
        (x, y), (x0, y0), (x1, y1) = (next(s) for s in streams)
        assert len(x0) == len(x1) == 3
        assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)
    with pytest.raises(ValueError, match="does not split over 4 processes"):
        BatchStream(ds, 6, seed=1, rank=0, world_size=4)


def test_a_rank_other_than_0_writes_nothing(make_dataset, tmp_path, monkeypatch):
    """Neither the checkpoint nor the cache of C's pre-training: rank 0 writes them (the state is the same)."""
    root = make_dataset(n=4)
    cfg = get_config("quick", settings(root, steps=2))
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    t = Trainer(cfg, get_loaders(root, cfg), tmp_path / "run")
    t.fit(progress=False)
    assert t.step == 2 and t.last_checkpoint == tmp_path / "run" / CHECKPOINT_NAME
    assert not (tmp_path / "run").exists() and not (tmp_path / "pretrained-C").exists()


def test_sync_batchnorm_is_batchnorm_in_one_process_and_keeps_the_state_dict():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    x = torch.randn(5, 3, 8, 8)
    before, keys = net(x), net.state_dict().keys()
    distributed.sync_batchnorm(net)
    assert type(net[1]) is distributed.SyncBatchNorm2d and net.state_dict().keys() == keys
    assert torch.equal(net(x), before)                     # no process group: plain BatchNorm2d
    with pytest.raises(NotImplementedError, match="BatchNorm1d"):
        distributed.sync_batchnorm(torch.nn.Sequential(torch.nn.BatchNorm1d(3)))
