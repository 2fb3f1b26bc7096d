"""gfd.prepare on small fixture trees: the paper's closed / open-world protocol, the ForenSynths
detection layout, and every kind of bad input (duplicates across splits, unreadable files,
symlinks out of the tree, too-small images, empty or missing folders, a non-empty output)."""
import csv
import hashlib
import json
import os
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gfd import prepare as prep
from gfd.layout import check_split, class_folders, class_order, find_splits, split_sources

from gfd.cli import main as cli_main


def run_prepare(argv):
    """``python -m gfd prepare ...`` (the one command line of the course)."""
    return cli_main(["prepare", *argv])

_counter = iter(range(10**6))


def img(path: Path, side: int = 32, seed: int | None = None) -> Path:
    """A random RGB PNG (unique content unless ``seed`` repeats)."""
    rng = np.random.default_rng(next(_counter) if seed is None else 10**6 + seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(path)
    return path


def folder(path: Path, n: int, side: int = 32) -> Path:
    for i in range(n):
        img(path / f"im{i:03d}.png", side)
    return path


def snapshot(root: Path) -> dict:
    return {str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def quiet(**kw):
    return {"progress": False, "log": lambda m: None, **kw}


def paper_tree(tmp_path, n_closed=12, n_open=5, names=("real", "ganA", "ganB")):
    src = tmp_path / "src"
    specs = []
    for name in names:
        folder(src / f"{name}_celeba", n_closed)
        folder(src / f"{name}_lsun", n_open)
        specs.append(prep.SourceSpec(name, [src / f"{name}_celeba"], [src / f"{name}_lsun"]))
    return src, specs


def rows(root: Path) -> list[dict]:
    with open(root / prep.FILES_NAME) as f:
        return list(csv.DictReader(f))


def no_leftovers(tmp_path):
    return not list(tmp_path.rglob(".*.partial"))


# --------------------------------------------------------------------------------------------------
# the paper's protocol (Sec. 4.2.1)
# --------------------------------------------------------------------------------------------------

def test_paper_layout_closed_and_open_world(tmp_path, capsys):
    src, _ = paper_tree(tmp_path)
    before = snapshot(src)
    out = tmp_path / "ds"
    argv = ["attribution", "--out", str(out), "--counts", "6,2,3,4", "--no-progress"]
    for name in ("ganB", "real", "ganA"):
        argv += ["--source", f"{name}={src / (name + '_celeba')},{src / (name + '_lsun')}"]
    assert run_prepare(argv) == 0

    assert find_splits(out) == ["train", "val", "test_closed", "test_open"]
    classes = class_order(out, list(split_sources(out, "train")))
    assert classes == ["real", "ganA", "ganB"] == json.loads((out / "classes.json").read_text())
    for split, n in {"train": 6, "val": 2, "test_closed": 3, "test_open": 4}.items():
        assert split_sources(out, split) == {c: n for c in ("ganA", "ganB", "real")}
        check_split(out, split, classes)

    files = rows(out)
    assert len(files) == 3 * 15
    for r in files:                                  # closed world from *_celeba, open world from *_lsun
        split, source = r["file"].split("/")[:2]
        assert Path(r["original"]).parent.name == f"{source}_{'lsun' if split == 'test_open' else 'celeba'}"
        assert sha(out / r["file"]) == r["sha256"]
    assert len({r["sha256"] for r in files}) == len(files)

    report = json.loads((out / prep.REPORT_NAME).read_text())
    assert report["counts"]["test_open"] == {"real": 4, "ganA": 4, "ganB": 4}
    assert report["skipped_counts"] == {"unreadable": 0, "too_small": 0, "duplicate": 0}
    assert report["image_sizes"]["train/real"]["min_side"] == 32
    assert snapshot(src) == before and no_leftovers(tmp_path)
    assert "test_open: real 4, ganA 4, ganB 4" in capsys.readouterr().out

    # deterministic: the same seed picks the same files, another seed others
    again = run_prepare(argv[:2] + [str(tmp_path / "ds2")] + argv[3:])
    assert again == 0 and rows(tmp_path / "ds2") == files
    run_prepare(argv[:2] + [str(tmp_path / "ds3"), "--seed", "1"] + argv[3:])
    assert [r["original"] for r in rows(tmp_path / "ds3")] != [r["original"] for r in files]


def test_manifest_several_folders_equal_shares_no_open_world(tmp_path):
    src = tmp_path / "src"
    folder(src / "ffhq", 10)
    folder(src / "celebahq" / "nested", 10)           # files are found recursively
    folder(src / "stylegan", 10)
    manifest = tmp_path / "sources.json"
    manifest.write_text(json.dumps({"sources": {"real": {"closed": ["src/ffhq", "src/celebahq"]},
                                                "StyleGAN": "src/stylegan"},
                                    "counts": {"train": 4, "val": 2, "test_closed": 2}, "seed": 3}))
    out = tmp_path / "ds"
    assert run_prepare(["attribution", "--manifest", str(manifest), "--out", str(out), "--no-progress"]) == 0
    assert find_splits(out) == ["train", "val", "test_closed"]
    report = json.loads((out / prep.REPORT_NAME).read_text())
    assert report["seed"] == 3 and report["splits"] == ["train", "val", "test_closed"]
    taken = {Path(k).name: v["taken"] for k, v in report["source_folders"]["real/closed"].items()}
    assert taken == {"ffhq": 4, "celebahq": 4}          # 8 real images, equal shares


def test_hardlink_mode_links_and_never_modifies_sources(tmp_path):
    src, specs = paper_tree(tmp_path, n_closed=4, n_open=1)
    before = snapshot(src)
    out = tmp_path / "ds"
    prep.prepare_attribution(specs, out, counts="2,1,1,1", link="hardlink", **quiet())
    for r in rows(out):
        assert os.stat(out / r["file"]).st_ino == os.stat(r["original"]).st_ino
    assert snapshot(src) == before


def test_image_sizes_that_differ_between_classes_are_warned(tmp_path):
    src = tmp_path / "src"
    folder(src / "real", 4, side=32)
    folder(src / "gan", 4, side=24)
    specs = [prep.SourceSpec("real", [src / "real"]), prep.SourceSpec("gan", [src / "gan"])]
    report = prep.prepare_attribution(specs, tmp_path / "ds", counts="2,1,1", **quiet())
    assert any("differ" in w for w in report["warnings"])
    assert json.loads((tmp_path / "ds" / prep.REPORT_NAME).read_text())["warnings"] == report["warnings"]


# --------------------------------------------------------------------------------------------------
# ForenSynths -> detection layout (Sec. 4.3, Table 3)
# --------------------------------------------------------------------------------------------------

def forensynths_tree(tmp_path):
    fs = tmp_path / "fs"
    for cat in ("airplane", "bird"):
        folder(fs / "progan_train" / cat / "0_real", 4)
        folder(fs / "progan_train" / cat / "1_fake", 4)
        folder(fs / "progan_val" / cat / "0_real", 2)
        folder(fs / "progan_val" / cat / "1_fake", 2)
    test = fs / "CNN_synth_testset"
    for label in ("0_real", "1_fake"):
        folder(test / "progan" / "airplane" / label, 2)
        folder(test / "biggan" / label, 3)
        for cat in ("horse", "apple"):
            folder(test / "cyclegan" / cat / label, 1)
    return fs


def test_forensynths_to_the_detection_layout(tmp_path):
    fs = forensynths_tree(tmp_path)
    before = snapshot(fs)
    out = tmp_path / "det"
    assert run_prepare(["detection", "--out", str(out), "--train", str(fs / "progan_train"),
                      "--val", str(fs / "progan_val"), "--test", str(fs / "CNN_synth_testset"),
                      "--categories", "airplane", "--no-progress"]) == 0
    counts = json.loads((out / prep.REPORT_NAME).read_text())["counts"]
    assert counts == {"train": {"real": 4, "fake": 4}, "val": {"real": 2, "fake": 2},
                      "test/progan": {"real": 2, "fake": 2}, "test/biggan": {"real": 3, "fake": 3},
                      "test/cyclegan": {"real": 2, "fake": 2}}
    assert [c for c, _ in class_folders(out, "train")] == ["real", "fake"]
    assert [c for c, _ in class_folders(out / "test", "biggan")] == ["real", "fake"]
    assert json.loads((out / "classes.json").read_text()) == ["real", "fake"]
    for r in rows(out):
        label = r["file"].split("/")[-2]
        assert Path(r["original"]).parent.name == {"real": "0_real", "fake": "1_fake"}[label]
        if r["file"].startswith(("train/", "val/")):
            assert "/airplane/" in r["original"]          # the paper trains on ProGAN-airplane only
    assert snapshot(fs) == before and no_leftovers(tmp_path)


def test_detection_without_val_carves_it_from_train_and_limits(tmp_path):
    fs = forensynths_tree(tmp_path)
    out = tmp_path / "det"
    report = prep.prepare_detection(out, train=fs / "progan_train", val_fraction=0.25, limit=2,
                                    test=fs / "CNN_synth_testset", test_sets=["biggan"], **quiet())
    assert report["counts"] == {"train": {"real": 2, "fake": 2}, "val": {"real": 2, "fake": 2},
                                "test/biggan": {"real": 2, "fake": 2}}
    assert sorted(p.name for p in (out / "test").iterdir()) == ["biggan"]
    with pytest.raises(prep.PrepareError, match="no '0_real' or '1_fake' folder"):
        prep.prepare_detection(tmp_path / "x", train=tmp_path / "fs" / "CNN_synth_testset" / "biggan" / "0_real",
                               **quiet())
    with pytest.raises(prep.PrepareError, match="overlap"):
        prep.prepare_detection(tmp_path / "x", train=fs / "progan_train", val=fs / "progan_train", **quiet())
    with pytest.raises(prep.PrepareError, match=r"category\(ies\) \['car'\] not found"):
        prep.prepare_detection(tmp_path / "x", train=fs / "progan_train", categories=["car"], **quiet())


# --------------------------------------------------------------------------------------------------
# bad input: checked, reported, never silent
# --------------------------------------------------------------------------------------------------

def test_duplicates_across_splits_and_classes_are_dropped_and_reported(tmp_path):
    # a second, small folder per class comes early in the round-robin order, so that every file is read
    src = tmp_path / "src"
    real, gan = folder(src / "real", 10), folder(src / "gan", 10)
    real_extra, gan_extra = folder(src / "real_extra", 1), folder(src / "gan_extra", 1)
    (real_extra / "copy_of_im003.png").write_bytes((real / "im003.png").read_bytes())   # inside one class
    (gan_extra / "same_as_real.png").write_bytes((real / "im005.png").read_bytes())     # across classes
    specs = [prep.SourceSpec("real", [real, real_extra]), prep.SourceSpec("gan", [gan, gan_extra])]
    out = tmp_path / "ds"
    report = prep.prepare_attribution(specs, out, counts="6,2,3", **quiet())   # 11 usable of 12: all read
    assert report["skipped_counts"]["duplicate"] == 2
    pairs = {frozenset((Path(d["path"]).name, Path(d["same_as"]).name)) for d in report["skipped"]["duplicate"]}
    assert pairs == {frozenset(("im003.png", "copy_of_im003.png")), frozenset(("same_as_real.png", "im005.png"))}
    cross = [d for d in report["skipped"]["duplicate"] if Path(d["path"]).name == "same_as_real.png"][0]
    assert cross["already_in"].split("/")[1] == "real" and cross["for"].split("/")[1] == "gan"
    hashes = [sha(p) for p in out.rglob("*.png")]
    assert len(hashes) == 2 * 11 and len(set(hashes)) == len(hashes)

    with pytest.raises(prep.PrepareError, match="same content as"):
        prep.prepare_attribution(specs, tmp_path / "ds2", counts="6,2,3", on_duplicate="error", **quiet())
    assert not (tmp_path / "ds2").exists() and no_leftovers(tmp_path)


def test_unreadable_files_are_listed_skipped_and_counted(tmp_path):
    src = tmp_path / "src"
    real, mixed, gan = folder(src / "real", 5), folder(src / "mixed", 1), folder(src / "gan", 6)
    (mixed / "garbage.png").write_bytes(b"this is not a png")
    good = img(tmp_path / "whole.png", 64).read_bytes()
    (mixed / "truncated.png").write_bytes(good[: len(good) // 2])
    specs = [prep.SourceSpec("real", [real, mixed]), prep.SourceSpec("gan", [gan])]
    report = prep.prepare_attribution(specs, tmp_path / "ds", counts="3,1,2", **quiet())   # 6 usable: all read
    assert report["skipped_counts"]["unreadable"] == 2
    assert sorted(Path(d["path"]).name for d in report["skipped"]["unreadable"]) == ["garbage.png", "truncated.png"]
    assert all(d["error"] for d in report["skipped"]["unreadable"])
    assert split_sources(tmp_path / "ds", "train") == {"gan": 3, "real": 3}

    with pytest.raises(prep.PrepareError, match="--strict"):
        prep.prepare_attribution(specs, tmp_path / "strict", counts="3,1,2", strict=True, **quiet())
    assert not (tmp_path / "strict").exists() and no_leftovers(tmp_path)
    # reading only headers does not see the truncation (documented: --verify decode is the default)
    report = prep.prepare_attribution(specs, tmp_path / "hdr", counts="3,1,2", verify="header", **quiet())
    assert report["skipped_counts"]["unreadable"] == 1


def test_symlinks_out_of_the_tree_are_refused_inside_ignored(tmp_path):
    src = tmp_path / "src"
    real, gan = folder(src / "real", 4), folder(src / "gan", 4)
    outside = folder(tmp_path / "elsewhere", 2)
    (real / "inner_link.png").symlink_to(real / "im000.png")
    (real / "inner_dir").symlink_to(real, target_is_directory=True)
    specs = [prep.SourceSpec("real", [real]), prep.SourceSpec("gan", [gan])]
    report = prep.prepare_attribution(specs, tmp_path / "ok", counts="2,1,1", **quiet())
    assert report["skipped_counts"]["duplicate"] == 0                    # the links were not read twice
    assert report["source_folders"]["real/closed"][str(real)]["symlinks_ignored"] == 2

    (gan / "escape.png").symlink_to(outside / "im000.png")
    with pytest.raises(prep.PrepareError, match="outside the source folder") as err:
        prep.prepare_attribution(specs, tmp_path / "bad", counts="2,1,1", **quiet())
    assert "escape.png" in str(err.value)
    (gan / "escape.png").unlink()
    (gan / "escape_dir").symlink_to(outside, target_is_directory=True)
    with pytest.raises(prep.PrepareError, match="does not follow links out of a source tree"):
        prep.prepare_attribution(specs, tmp_path / "bad", counts="2,1,1", **quiet())
    assert not (tmp_path / "bad").exists() and no_leftovers(tmp_path)


def test_too_small_images_against_min_side_and_transform(tmp_path, capsys):
    src = tmp_path / "src"
    real, small, gan = folder(src / "real", 4), folder(src / "small", 1), folder(src / "gan", 5)
    for i in range(2):
        img(small / f"tiny{i}.png", side=8)
    specs = [prep.SourceSpec("real", [real, small]), prep.SourceSpec("gan", [gan])]
    report = prep.prepare_attribution(specs, tmp_path / "ds", counts="2,1,2", min_side=16, **quiet())  # all read
    assert report["skipped_counts"]["too_small"] == 2
    assert {tuple(d["size"]) for d in report["skipped"]["too_small"]} == {(8, 8)}
    assert report["image_sizes"]["train/real"]["min_side"] == 32

    base = ["attribution", "--source", f"real={real}", "--source", f"real={small}", "--source", f"gan={gan}",
            "--counts", "2,1,2", "--no-progress"]
    assert run_prepare(base + ["--out", str(tmp_path / "p128"), "--transform", "p128"]) == 0   # resizes: any size
    assert run_prepare(base + ["--out", str(tmp_path / "p1024"), "--transform", "p1024", "--crop", "224"]) == 2   # a user error: exit code 2
    assert "smaller than 224 px" in capsys.readouterr().err
    assert not (tmp_path / "p1024").exists() and no_leftovers(tmp_path)


def test_bad_input_gives_one_clear_error_and_keeps_what_exists(tmp_path, capsys):
    src, specs = paper_tree(tmp_path, n_closed=4, n_open=1)
    counts = "2,1,1,1"
    # output folder not empty: refused, its file untouched
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep me")
    with pytest.raises(prep.PrepareError, match="not empty"):
        prep.prepare_attribution(specs, busy, counts=counts, **quiet())
    assert (busy / "mine.txt").read_text() == "keep me"
    # an existing empty folder is fine
    (tmp_path / "empty").mkdir()
    prep.prepare_attribution(specs, tmp_path / "empty", counts=counts, **quiet())
    # missing folder, empty class (only a non-image file)
    missing = [prep.SourceSpec("real", [src / "nope"], [src / "real_lsun"])] + specs[1:]
    with pytest.raises(prep.PrepareError, match=r"folder .*nope does not exist"):
        prep.prepare_attribution(missing, tmp_path / "o1", counts=counts, **quiet())
    (src / "blank").mkdir()
    (src / "blank" / "readme.txt").write_text("no images here")
    blank = specs[:2] + [prep.SourceSpec("ganB", [src / "blank"], [src / "ganB_lsun"])]
    with pytest.raises(prep.PrepareError, match=r"'ganB' \(closed world.*blank holds no image file.*1 other file"):
        prep.prepare_attribution(blank, tmp_path / "o2", counts=counts, **quiet())
    # too few images for the counts, no 'real', a partial open world, overlapping folders
    with pytest.raises(prep.PrepareError, match="lower --counts"):
        prep.prepare_attribution(specs, tmp_path / "o3", counts="15000,1000,4000", **quiet())
    with pytest.raises(prep.PrepareError, match="no source named 'real'"):
        prep.prepare_attribution(specs[1:], tmp_path / "o4", counts=counts, **quiet())
    half = specs[:2] + [prep.SourceSpec("ganB", [src / "ganB_celeba"])]
    with pytest.raises(prep.PrepareError, match="test_open needs every class"):
        prep.prepare_attribution(half, tmp_path / "o5", counts=counts, **quiet())
    twice = specs[:2] + [prep.SourceSpec("ganB", [src / "ganA_celeba"], [src / "ganB_lsun"])]
    with pytest.raises(prep.PrepareError, match="overlap"):
        prep.prepare_attribution(twice, tmp_path / "o6", counts=counts, **quiet())
    with pytest.raises(prep.PrepareError, match="overlap"):
        prep.prepare_attribution(specs, src / "real_celeba" / "inside", counts=counts, **quiet())
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 7)) and no_leftovers(tmp_path)
    # on the command line: exit status 1 and one line naming the problem
    assert run_prepare(["attribution", "--out", str(tmp_path / "o7"), "--source", f"real={src / 'nope'}",
                      "--source", f"g={src / 'ganA_celeba'}", "--no-progress"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: source 'real'")


def test_an_interrupted_run_leaves_nothing_and_a_rerun_cleans_up(tmp_path, monkeypatch):
    _, specs = paper_tree(tmp_path, n_closed=4, n_open=1)
    out = tmp_path / "ds"
    place, calls = prep.Builder._place, []

    def dying_place(self, *a, **kw):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return place(self, *a, **kw)
    monkeypatch.setattr(prep.Builder, "_place", dying_place)
    with pytest.raises(KeyboardInterrupt):
        prep.prepare_attribution(specs, out, counts="2,1,1,1", **quiet())
    assert not out.exists() and no_leftovers(tmp_path)
    monkeypatch.setattr(prep.Builder, "_place", place)

    stale = tmp_path / ".ds.partial"               # e.g. left by a killed process
    stale.mkdir()
    (stale / prep.PARTIAL_MARKER).touch()
    (stale / "junk.png").write_bytes(b"x")
    prep.prepare_attribution(specs, out, counts="2,1,1,1", **quiet())
    assert out.is_dir() and not stale.exists()
    foreign = tmp_path / ".other.partial"           # not ours: never deleted
    foreign.mkdir()
    with pytest.raises(prep.PrepareError, match="not made by gfd prepare"):
        prep.prepare_attribution(specs, tmp_path / "other", counts="2,1,1,1", **quiet())
    assert foreign.is_dir()


def test_parsing_of_sources_and_counts():
    specs = prep.parse_source_args(["real=a,b", "gan=c", "real=d"])
    assert [(s.name, s.closed, s.open) for s in specs] == [("real", [Path("a"), Path("d")], [Path("b")]),
                                                          ("gan", [Path("c")], [])]
    assert prep.parse_counts(None) == {"train": 15000, "val": 1000, "test_closed": 4000, "test_open": 4000}
    assert prep.parse_counts("10,2,3") == {"train": 10, "val": 2, "test_closed": 3, "test_open": 3}
    assert prep.parse_counts("train=5,val=1") == {"train": 5, "val": 1, "test_closed": 4000, "test_open": 4000}
    for bad in ("1,2", "train=0", "tran=3", "a,b,c"):
        with pytest.raises(prep.PrepareError):
            prep.parse_counts(bad)
    with pytest.raises(prep.PrepareError, match="NAME=CLOSED_DIR"):
        prep.parse_source_args(["real"])


def test_the_data_scripts_wrappers_call_main(tmp_path, monkeypatch, capsys):
    src, _ = paper_tree(tmp_path, n_closed=4, n_open=1, names=("real", "g"))
    scripts = Path(__file__).resolve().parents[1] / "data_scripts"
    monkeypatch.setattr(sys, "argv", ["prepare_dataset.py", "attribution", "--out", str(tmp_path / "ds"),
                                      "--source", f"real={src / 'real_celeba'},{src / 'real_lsun'}",
                                      "--source", f"g={src / 'g_celeba'},{src / 'g_lsun'}",
                                      "--counts", "2,1,1,1", "--no-progress"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(scripts / "prepare_dataset.py"), run_name="__main__")
    assert done.value.code == 0 and find_splits(tmp_path / "ds")[-1] == "test_open"
    monkeypatch.setattr(sys, "argv", ["download.py", "list"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(scripts / "download.py"), run_name="__main__")
    assert done.value.code == 0 and "not tested here" in capsys.readouterr().out
