"""Table 2 (Sec. 4.2.2): the ``gan1024`` benchmark (128 px images, Sec. 4.2.2's roles), crops without
resizing, ``reproduce --table 2`` and its table beside the paper's numbers."""
import json
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from gfd import benchmark, config, report
from gfd.benchmark.worlds import gan128 as B
from gfd.benchmark import builtin
from gfd.benchmark.sources import world_groups
from gfd.benchmark import gan1024 as H
from gfd.benchmark.zoo import TrainSettings
from gfd.cli import main
from gfd.config import get_config
from gfd.data import get_loaders, load_data, make_transform
from gfd.paper import PAPER, TABLE2_COLUMNS, TABLES
from gfd.runs import reproduce as rep
from gfd.tables import TABLE_SPECS
from gfd.utils import results_dir

pytestmark = pytest.mark.usefixtures("one_thread")

# A tiny gan1024 world: 128 px images as the real one (the crop must fit without resizing), a handful
# per class, every generator trained for two steps.
TINY_WORLD = dict(n_train=6, n_val=2, n_test=2, n_open=2, gen_pool=8,
                  train=TrainSettings(max_steps=2, min_steps=1, window=1, half_life=2, batch_size=4, crop=64,
                                      disc_width=8))
TINY = ["batch_size=4", "unet_depth=2", "unet_width=4", "unet_max_width=16", "disc_width=4",
        "classifier_weights=random", "perceptual_weights=random", "steps=2", "c_pretrain_steps=1",
        "eval_every=0", "ckpt_every=0", "device=cpu", "num_workers=0"]


def tiny_world(root):
    return H.load_gan1024_benchmark("quick", root=root, progress=False, overrides=TINY_WORLD, workers=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    torch.set_num_threads(1)
    return tiny_world(tmp_path_factory.mktemp("gan1024"))


def pixels(path):
    return np.asarray(Image.open(path).convert("RGB"))


# --- the world -------------------------------------------------------------------------------------

def test_the_world_has_sec_422s_structure_and_images_larger_than_the_crop(world):
    m = benchmark.read_manifest(world)
    assert m["classes"] == ["real", "progan", "stylegan", "stylegan2"]
    assert benchmark.check_benchmark(world, H.make_params("quick", **TINY_WORLD), checksums=True) == []
    crop = get_config("course").crop
    for split in ("train", "test_closed", "test_open"):
        for cls in m["classes"]:
            first = sorted((world / split / cls).glob("*.png"))[0]
            assert pixels(first).shape == (128, 128, 3) and 128 > crop
    # closed world: ProGAN on H (CelebA-HQ), StyleGAN and StyleGAN2 on F (FFHQ), real from both
    prefixes = {c: {e["prefix"] for e in v} for c, v in m["instances"]["train"].items()}
    assert prefixes == {"real": {"F-real_", "H-real_"}, "progan": {"H-g0_"}, "stylegan": {"F-g0_"},
                        "stylegan2": {"F-g0_"}}
    assert m["counts"]["train"] == {c: 6 for c in m["classes"]}
    # open world: StyleGAN on O1-O3, StyleGAN2 on O1-O2 (Table 2's columns), + ProGAN on O1 and real
    assert [e["source"] for e in m["open_models"]] == ["O1/stylegan/g0", "O2/stylegan/g0", "O3/stylegan/g0",
                                                       "O1/stylegan2/g0", "O2/stylegan2/g0"]
    assert m["counts"]["test_open"] == {"real": 6, "progan": 2, "stylegan": 6, "stylegan2": 4}
    assert {w: v["role"] for w, v in m["worlds"].items()} == {"F": "closed", "H": "closed", "O1": "open",
                                                               "O2": "open", "O3": "open"}
    # per world only the classes it has (the figures and spectral distances read these)
    assert list(world_groups(world, "H")) == ["real", "progan"]
    assert list(world_groups(world, "O3")) == ["real", "stylegan"]


def test_the_build_is_deterministic_and_cached(world, tmp_path):
    again = tiny_world(tmp_path)
    a, b = benchmark.read_manifest(world), benchmark.read_manifest(again)
    assert a["checksums"] == b["checksums"] and a["key"] == b["key"] and again.name == world.name
    assert again.name.startswith("gan1024-quick-s0-")
    assert tiny_world(tmp_path) == again                                   # read from the cache, not rebuilt
    assert benchmark.read_manifest(again)["build"]["created"] == b["build"]["created"]


def test_domains_share_no_hue_or_photo_and_bad_params_fail():
    with pytest.raises(ValueError, match="share no hue or photo"):
        H.Gan1024Params(domains=(H.DOMAIN_F, H.DOMAIN_F.__class__(**{**H.DOMAIN_H.to_dict(), "photos": ("astronaut",)}),
                                 H.DOMAIN_O1, H.DOMAIN_O2, H.DOMAIN_O3))
    with pytest.raises(ValueError, match="unknown family or domain"):
        H.Gan1024Params(open_models=(("biggan", "O1"),))
    with pytest.raises(KeyError, match="unknown benchmark"):
        benchmark.load_benchmark("gan4096", "quick")


def test_rule_6_shapes_have_the_64_px_worlds_size_and_density_in_pixels():
    """Rule 6: a 48 px crop of a 128 px image holds as much structure as one of a 64 px image."""
    from gfd.benchmark.domains import DOMAIN_A, dead_leaves
    p = H.make_params("default")
    ratio = p.image_size / 64
    for d in p.domains:
        assert d.r_min * p.image_size == pytest.approx(DOMAIN_A.r_min * 64)       # radii in pixels
        assert d.r_max * p.image_size == pytest.approx(DOMAIN_A.r_max * 64)
        assert d.n_shapes / p.image_size ** 2 == pytest.approx(DOMAIN_A.n_shapes / 64 ** 2)   # shapes per pixel
    assert ratio == 2 and any("scale" in r for r in H.RULES)

    def edges(img, crop=48):               # share of a centre crop's pixels on a colour edge
        c = img[(len(img) - crop) // 2:][:crop, (len(img) - crop) // 2:][:, :crop].mean(axis=2)
        return float(((np.abs(np.diff(c, axis=0))[:, :-1] + np.abs(np.diff(c, axis=1))[:-1]) > 8).mean())

    rng = np.random.default_rng(0)
    small = np.mean([edges(dead_leaves(rng, DOMAIN_A, 64)) for _ in range(30)])       # about 0.15 each
    big = np.mean([edges(dead_leaves(rng, H.DOMAIN_F, 128)) for _ in range(30)])
    old = np.mean([edges(dead_leaves(rng, H.DOMAIN_F.__class__(**{**H.DOMAIN_F.to_dict(), "n_shapes": 250,
                                                                  "r_min": 0.02, "r_max": 0.5}), 128))
                   for _ in range(30)])
    assert big == pytest.approx(small, rel=0.35) and old < 0.7 * big     # the first design's crops were flatter


def test_the_128_px_world_keeps_its_cache_keys():
    """Adding the gan1024 world changed no byte of the existing builds (their caches and runs stay valid)."""
    assert B.make_params("default").key() == "dd5ed8d743"
    assert B.cache_name(B.make_params("default"), "default") == "mini-default-s0-dd5ed8d743"


def test_load_data_builds_the_gan1024_world_only_when_asked(monkeypatch, world):
    calls = []
    monkeypatch.setattr(builtin, "load_gan1024_benchmark", lambda size, **kw: calls.append(size) or world)
    monkeypatch.setattr(builtin, "load_mini_benchmark", lambda *a, **kw: pytest.fail("the 128 px world was built"))
    bundle = load_data(get_config("quick", TINY + ["benchmark=gan1024", "transform=p1024"]), progress=False)
    assert calls == ["quick"] and bundle.root == world and bundle.identity == world.name
    assert get_config("course").benchmark == "gan128"
    with pytest.raises(ValueError, match="config field benchmark='gan64' is not allowed"):
        get_config("quick", ["benchmark=gan64"])
    assert config.BENCHMARKS == benchmark.BENCHMARKS


# --- the transform: crops, never a resize ------------------------------------------------------------

def _to_uint8(x):
    return (x.permute(1, 2, 0).numpy() * 127.5 + 127.5).round().astype(np.uint8)


@pytest.mark.parametrize("name", ["p1024", "mini"])
def test_train_crops_are_windows_of_the_image_and_test_crops_are_centred(name):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    crop = 48
    windows = np.lib.stride_tricks.sliding_window_view(img, (crop, crop, 3))[:, :, 0]    # (81, 81, 48, 48, 3)
    torch.manual_seed(0)
    seen = set()
    for _ in range(5):
        out = _to_uint8(make_transform(name, train=True, crop=crop)(Image.fromarray(img)))
        hits = np.argwhere((windows == out).all(axis=(2, 3, 4)))
        assert len(hits) == 1                          # pixel for pixel one window: cropped, not resampled
        seen.add(tuple(hits[0]))
    assert len(seen) > 1                               # random position
    centred = _to_uint8(make_transform(name, train=False, crop=crop)(Image.fromarray(img)))
    assert np.array_equal(centred, img[40:88, 40:88])


def test_the_crop_figure_shows_the_centre_window_and_random_windows_of_the_image(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    from gfd import plots
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (100, 128, 3), dtype=np.uint8)          # not square: rows and columns differ
    Image.fromarray(img).save(tmp_path / "x.png")
    state = torch.random.get_rng_state()
    fig = plots.plot_crop_windows(tmp_path / "x.png", 48, n_train=3, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)            # the reader's stream is untouched
    panels = [ax.images[0].get_array() for ax in fig.axes[1:]]
    assert len(panels) == 4 and np.array_equal(panels[0], img[26:74, 40:88])    # the centre crop
    boxes = [(int(round(r.get_y() + 0.5)), int(round(r.get_x() + 0.5))) for r in fig.axes[0].patches]
    assert boxes[0] == (26, 40) and len(set(boxes)) == 4
    for (top, left), panel in zip(boxes, panels):                      # each box is the panel beside it
        assert np.array_equal(panel, img[top:top + 48, left:left + 48])
    again = plots.plot_crop_windows(tmp_path / "x.png", 48, n_train=3, seed=0)
    assert [(r.get_x(), r.get_y()) for r in again.axes[0].patches] == [(r.get_x(), r.get_y()) for r in fig.axes[0].patches]


# --- reproduce --table 2 -------------------------------------------------------------------------------

def test_paper_table2_as_printed():
    assert TABLES[2] == ("PRNU", "DCT", "AttNet", "GFD-Net")
    assert len(TABLE2_COLUMNS) == 15 and all(len(v) == 15 for v in PAPER[2].values())
    assert PAPER[2]["PRNU"]["Closed world"] == 76.32 and PAPER[2]["GFD-Net"]["StyleGAN2 Model"] == 63.95
    assert PAPER[2]["AttNet"]["StyleGAN2 Model"] == 0.00 and PAPER[2]["DCT"]["StyleGAN male"] == 40.15
    assert PAPER[2]["AttNet"]["StyleGAN kid"] == 98.13 and PAPER[2]["GFD-Net"]["StyleGAN smile"] == 99.30
    texts = [c.text for c in report.check_claims(2, {m: {report.OPEN_MODELS: {"mean": 0.5, "std": 0.0}}
                                                    for m in TABLES[2]})]
    assert texts == [f"open_models: GFD-Net > {b}" for b in ("AttNet", "DCT", "PRNU")]   # Sec. 4.2.2's ordering


def test_cli_reproduces_table2_with_every_row_beside_the_paper(world, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("gfd.train.runs_dir", lambda: tmp_path / "runs")
    out = tmp_path / "results"
    out.mkdir()
    subprocess.run(["git", "init", "-q", str(out)], check=True)           # --commit commits each record there
    for var in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{var}_NAME", "test")
        monkeypatch.setenv(f"GIT_{var}_EMAIL", "test@example.org")
    args = ["reproduce", "--table", "2", "--preset", "quick", "--seeds", "0", "1", "--out", str(out),
            "--no-progress", "--commit", *(f"--set={kv}" for kv in TINY + [f"data_root={world}"])]
    assert main(args) == 0
    md = capsys.readouterr().out
    for method in ("PRNU", "DCT", "AttNet", "GFD-Net"):
        assert f"| {method} |" in md
    header = next(line for line in md.splitlines() if line.startswith("| Method |"))
    for col in ("closed (%)", "stylegan O1 (%)", "stylegan O3 (%)", "stylegan2 O2 (%)", "open_models (%)",
                "closed (paper)"):
        assert col in header
    assert "progan O1" not in header                       # the open ProGAN is no column of the paper's table
    assert "99.43" in md and "| GFD-Net | 99.43 |" in md and "63.95" in md   # beside ours, and as printed
    table = report.load_table(2, out)
    assert table["reference"]["AttNet"] == {"closed": 99.20}
    assert [r["method"] for r in table["rows"]] == ["PRNU", "DCT", "AttNet", "GFD-Net"]
    row = table["rows"][3]["per_seed"][0]
    cols = [f"stylegan O{k}" for k in (1, 2, 3)] + [f"stylegan2 O{k}" for k in (1, 2)]
    assert row["open_models"] == pytest.approx(np.mean([row[c] for c in cols]))
    # records: runs/quick-table2/, never where Table 1 of the same preset writes
    records = sorted(p.name for p in (out / "runs" / "quick-table2").iterdir())
    assert records == sorted(f"{rep.run_slug(m)}-seed{s}.json" for m in TABLES[2] for s in (0, 1))
    assert not (out / "runs" / "quick").exists()
    cfg = get_config("quick", TINY)
    t1 = rep.RunSpec("DCT", 0, cfg, TABLE_SPECS[1].records_folder("quick")).path(out)
    t2 = rep.RunSpec("DCT", 0, cfg, TABLE_SPECS[2].records_folder("quick")).path(out)
    assert t1 != t2 and t1 == rep.RunSpec("DCT", 0, cfg).path(out)
    rec = json.loads((out / "runs" / "quick-table2" / "dct-seed0.json").read_text())
    assert "48 px crops" in rec["benchmark"] and rec["preset"] == "quick"
    log = subprocess.run(["git", "-C", str(out), "log", "--format=%s"], capture_output=True, text=True).stdout
    assert "reproduce: quick-table2/dct-seed0.json" in log and "reproduce: results/table2.md" in log
    # resumable: a second call reads every record
    monkeypatch.setattr(rep, "train_and_measure", lambda *a, **k: pytest.fail("a stored run was recomputed"))
    assert main(args) == 0


def test_table2_sets_the_gan1024_world_and_the_crop_only_transform(monkeypatch, world):
    seen = {}

    def collect(table, cfg, seeds, bundle, *a, **k):
        seen["cfg"] = cfg
        return {}
    monkeypatch.setattr(rep, "collect_runs", collect)
    monkeypatch.setattr(rep, "write_table", lambda *a, **k: None)
    rep.reproduce(2, "quick", (0,), overrides=["steps=3"], bundle=object(), progress=False)
    assert (seen["cfg"].benchmark, seen["cfg"].transform, seen["cfg"].steps) == ("gan1024", "p1024", 3)
    rep.reproduce(1, "quick", (0,), bundle=object(), progress=False)
    assert (seen["cfg"].benchmark, seen["cfg"].transform) == ("gan128", "mini")


def test_table2_with_the_course_preset_keeps_the_short_budget_it_was_measured_with():
    """Table 2's course runs were measured with the ``short-budget`` overlay; an override still wins,
    and the committed records ask for exactly the config the table's setting makes today."""
    from gfd.config import OVERLAYS
    cfg = rep.table_config(2, "course")
    assert {k: getattr(cfg, k) for k in OVERLAYS["short-budget"]} == OVERLAYS["short-budget"]
    assert (cfg.benchmark, cfg.transform, cfg.preset) == ("gan1024", "p1024", "course")
    assert rep.table_config(2, "course", ["steps=900"]).steps == 900
    assert rep.table_config(1, "course").perceptual_layer == "relu1_1"
    assert rep.table_config(2, "quick").perceptual_layer == get_config("quick").perceptual_layer
    record = json.loads((results_dir() / "runs" / "course-table2" / "g-d-c-lpercept-seed0.json").read_text())
    assert record["config"] == rep.RunSpec("GFD-Net", 0, cfg).config().to_dict()
