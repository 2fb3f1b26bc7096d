"""``python -m gfd prepare`` and the files that are not plain images (issue 32, items 1 and 7): a FIFO
named like an image is never opened (it would block forever), a symlink loop is one clear line, and
``prepare detection`` keeps its test sets independent and names only its own options."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gfd import prepare as prep
from gfd.cli import main

ROOT = Path(__file__).resolve().parents[1]
_seed = iter(range(10**6))


def img(path: Path, side: int = 32) -> Path:
    rng = np.random.default_rng(next(_seed))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(path)
    return path


def folder(path: Path, n: int) -> Path:
    for i in range(n):
        img(path / f"im{i:03d}.png")
    return path


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_named_like_an_image_is_skipped_not_opened(tmp_path):
    src = tmp_path / "src"
    real, gan = folder(src / "real", 6), folder(src / "gan", 6)
    os.mkfifo(gan / "x.png")                      # opening it for reading blocks until a writer comes
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "gfd", "prepare", "attribution", "--out", str(out), "--source", f"real={real}",
           "--source", f"gan={gan}", "--counts", "4,1,1", "--no-progress", "--workers", "1"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT,
                              env=dict(os.environ, OMP_NUM_THREADS="1"))
    except subprocess.TimeoutExpired:
        pytest.fail("prepare hung on a FIFO named x.png")
    assert done.returncode == 0, done.stderr
    report = json.loads((out / prep.REPORT_NAME).read_text())
    assert report["skipped_counts"]["unreadable"] == 0             # never opened, so never "unreadable"
    assert all(Path(r).name != "x.png" for r in (out / prep.FILES_NAME).read_text().split())
    listing = prep.list_source(gan, "gan")
    assert gan / "x.png" not in listing.files and listing.special_ignored == [str(gan / "x.png")]


def test_a_source_of_only_special_files_says_so(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this system")
    (tmp_path / "src").mkdir()
    os.mkfifo(tmp_path / "src" / "a.png")
    with pytest.raises(prep.PrepareError, match=r"holds no image file .*1 special file\(s\)"):
        prep.list_source(tmp_path / "src", "gan")


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_symlink_loop_in_a_source_is_one_line_not_a_traceback(tmp_path, capsys, kind):
    src = tmp_path / "src"
    real, gan = folder(src / "real", 6), folder(src / "gan", 6)
    if kind == "file":
        (gan / "a.png").symlink_to("b.png")
        (gan / "b.png").symlink_to("a.png")
    else:
        (gan / "loop").symlink_to("loop")
    rc = main(["prepare", "attribution", "--out", str(tmp_path / "ds"), "--source", f"real={real}",
               "--source", f"gan={gan}", "--counts", "4,1,1", "--no-progress"])
    line = one_line(capsys.readouterr().err)
    assert rc == 2 and "symlink" in line and "does not resolve" in line and str(gan) in line
    assert not (tmp_path / "ds").exists()


def test_a_symlink_loop_in_a_detection_set_is_one_line(tmp_path, capsys):
    train = tmp_path / "train"
    folder(train / "0_real", 4)
    folder(train / "1_fake", 4)
    (train / "0_real" / "loop").symlink_to("loop")
    rc = main(["prepare", "detection", "--out", str(tmp_path / "det"), "--train", str(train), "--no-progress"])
    assert rc == 2 and "does not resolve" in one_line(capsys.readouterr().err)


def detection_tree(tmp_path):
    fs = tmp_path / "fs"
    for label in ("0_real", "1_fake"):
        folder(fs / "train" / label, 4)
        folder(fs / "val" / label, 2)
        for name in ("progan", "stylegan"):
            folder(fs / "test" / name / label, 2)
    return fs


def test_detection_test_sets_are_deduplicated_each_on_its_own(tmp_path):
    """An image that two independent test sets share stays in both (each set is evaluated alone);
    one that a test set shares with train is still dropped (it would leak training data)."""
    fs = detection_tree(tmp_path)
    shared = fs / "test" / "progan" / "1_fake" / "im000.png"
    (fs / "test" / "stylegan" / "1_fake" / "copy.png").write_bytes(shared.read_bytes())
    (fs / "test" / "stylegan" / "0_real" / "leak.png").write_bytes((fs / "train" / "0_real" / "im001.png").read_bytes())
    report = prep.prepare_detection(tmp_path / "det", train=fs / "train", val=fs / "val", test=fs / "test",
                                    progress=False, log=lambda m: None)
    assert report["counts"]["test/stylegan"] == {"real": 2, "fake": 3}       # copy.png kept, leak.png dropped
    assert report["counts"]["test/progan"] == {"real": 2, "fake": 2}
    dropped = [Path(d["path"]).name for d in report["skipped"]["duplicate"]]
    assert dropped == ["leak.png"]
    with pytest.raises(prep.PrepareError, match="same content as"):        # --on-duplicate error: the leak
        prep.prepare_detection(tmp_path / "det2", train=fs / "train", val=fs / "val", test=fs / "test",
                               on_duplicate="error", progress=False, log=lambda m: None)


def test_detection_too_few_images_names_its_own_option(tmp_path, capsys):
    fs = detection_tree(tmp_path)
    for i in range(2):                             # progan's fakes: 2 good, 2 unreadable, and --limit 3
        (fs / "test" / "progan" / "1_fake" / f"bad{i}.png").write_bytes(b"not a png")
    rc = main(["prepare", "detection", "--out", str(tmp_path / "det"), "--train", str(fs / "train"),
               "--val", str(fs / "val"), "--test", str(fs / "test"), "--limit", "3", "--no-progress"])
    line = one_line(capsys.readouterr().err)
    assert rc == 2 and "--limit" in line and "--counts" not in line
