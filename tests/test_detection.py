"""Table 3 (Sec. 4.3): the detection view of the benchmark, per-test-set accuracy, the detectors,
the ``detect`` preset, the table writer and ``python -m gfd reproduce --table 3``.  Tiny synthetic
data only: a hand-written benchmark folder whose real images are dark and fakes bright, except
where a test set says otherwise, so the right answers are known."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gfd import data
from gfd import detection as det
from gfd.baselines import OPTIONS, TABLE_NAMES, fit_baseline
from gfd.baselines.cnndetect import CNNDetect, blur_jpeg
from gfd.baselines.patchforensics import PatchForensics
from gfd.config import get_config
from gfd.layout import DataLayoutError
from gfd.paper import PAPER, TABLE3_COLUMNS, TABLES
from gfd.report import write_table
from gfd.runs import reproduce as rep

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["crop=16", "batch_size=4", "unet_depth=2", "unet_width=4", "unet_max_width=16", "disc_width=4",
        "classifier_weights=random", "perceptual_weights=random", "steps=2", "c_pretrain_steps=1",
        "eval_every=0", "ckpt_every=0", "device=cpu", "num_workers=0"]
DARK, BRIGHT = 40, 215


def _png(path, level, seed):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.clip(level + rng.integers(-20, 21, (24, 24, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path)


@pytest.fixture
def bench(tmp_path):
    """A benchmark folder in build.py's layout: families progan and sngan, closed world A, open world
    B1, variants.  Reals dark, fakes bright, except B1's sngan (3 dark fakes: g0 two, g1 one) and the
    variant cfgA (dark): a brightness detector gets those wrong."""
    root = tmp_path / "mini-tiny-s0-0123456789"
    k = 0

    def put(folder, prefix, n, level):
        nonlocal k
        for i in range(n):
            _png(root / folder / f"{prefix}{i:05d}.png", level, k)
            k += 1
    for split, n in (("train", 4), ("val", 2), ("test_closed", 2)):
        put(f"{split}/real", "A-real_", 2 * n, DARK)
        for fam in ("progan", "sngan"):
            put(f"{split}/{fam}", "A-g0_", n, BRIGHT)
            put(f"{split}/{fam}", "A-g1_", n, BRIGHT)
    put("test_open/real", "B1-real_", 2, DARK)
    put("test_open/progan", "B1-g0_", 2, BRIGHT)
    put("test_open/sngan", "B1-g0_", 2, DARK)
    _png(root / "test_open/sngan/B1-g1_00009.png", DARK, 99)
    put("variants/real", "", 2, DARK)
    put("variants/progan", "", 2, BRIGHT)
    put("variants/cfgA", "", 2, DARK)
    manifest = {"classes": ["real", "progan", "sngan"],
                "worlds": {"A": {"role": "closed", "splits": ["train", "val", "test_closed"]},
                           "B1": {"role": "open", "splits": ["test_open"]}},
                "variants": {"base": "progan", "names": ["real", "progan", "cfgA"]}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


class Brightness(torch.nn.Module):
    """Says "fake" for a bright image: (B, 2) scores (real, fake)."""

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([-m, m], 1)


def _bundle(bench, tmp_path, **changes):
    view = det.detection_view(bench, tmp_path / "view")
    return det.load_detection(view, get_config("detect", TINY, **changes))


# --- the preset and the data ------------------------------------------------------------------------

def test_detect_preset_has_the_paper_detection_weights_and_otherwise_the_course_with_half_as_wide_a_g():
    cfg = get_config("detect")
    assert cfg.task == "detection"                                             # load_data reads detection data
    assert (cfg.w1, cfg.w2, cfg.w3, cfg.w4) == (10.0, 0.01, 1.0, 1.0)          # Sec. 4.1, detection
    course = get_config("course", overlays=["short-budget"])                   # as Table 3 was measured
    assert (cfg.unet_width, cfg.unet_max_width) == (course.unet_width // 2, course.unet_max_width // 2)
    assert cfg.with_(preset="course", task=course.task, w2=course.w2, unet_width=course.unet_width,
                     unet_max_width=course.unet_max_width, backbone_width=course.backbone_width,
                     backbone_max_width=course.backbone_max_width) == course
    assert cfg.key() != course.key() and get_config("course").lr == cfg.lr
    assert (cfg.perceptual_layer, cfg.decoder_width, cfg.steps) != (get_config("course").perceptual_layer,
                                                                  get_config("course").decoder_width, get_config("course").steps)


def test_detection_view_two_classes_every_test_set_hard_links(bench, tmp_path):
    view = det.detection_view(bench, tmp_path / "view")
    assert det.test_set_names(view) == ["A-progan", "A-sngan", "B1-progan", "B1-sngan", "variant-progan",
                                        "variant-cfgA"]                    # the seen family first
    assert not any(p.is_symlink() for p in view.rglob("*"))               # the layout's rule: no links
    b1 = sorted(p.name for p in (view / "test/B1-sngan/real").iterdir())
    assert b1 == ["B1-real_00000.png", "B1-real_00001.png"]               # that domain's reals, names kept
    assert len(list((view / "test/B1-sngan/fake").iterdir())) == 3
    assert len(list((view / "train/fake").iterdir())) == 8                # both instances of progan
    bundle = det.load_detection(view, get_config("detect", TINY))
    assert bundle.classes == ["real", "fake"] and bundle.num_classes == 2 and bundle.real_index == 0
    assert bundle.test_splits[0] == "test/A-progan" and bundle.identity == "view"
    assert det.detection_view(bench, tmp_path / "view") == view            # complete: reused, not rebuilt
    with pytest.raises(ValueError, match="no family 'stylegan'"):
        det.detection_sets(bench, "stylegan")


def test_load_data_with_task_detection_reads_the_detection_view_of_the_configs_benchmark(bench, monkeypatch):
    import gfd.benchmark
    calls = []
    monkeypatch.setattr(gfd.benchmark, "load_benchmark", lambda *a, **k: calls.append((a, k)) or bench)
    cfg = get_config("quick", TINY, task="detection")
    bundle = data.load_data(cfg, progress=False, log=None)
    assert calls == [(("gan128", "quick"), dict(seed=0, progress=False))]
    assert isinstance(bundle, det.DetectionBundle) and bundle.classes == ["real", "fake"]
    assert bundle.root == bench.parent / f"detect-{det.TRAIN_FAMILY}-{bench.name}"
    assert bundle.identity == bundle.root.name                     # names the benchmark: run keys see other data
    assert data.data_identity(cfg.with_(data_root=str(bundle.root))) == bundle.identity
    assert list(bundle.loaders) == ["train", "val", *bundle.test_splits]
    attribution = data.load_data(cfg.with_(task="attribution"), progress=False)
    assert type(attribution) is data.DataBundle and attribution.root == bench


def test_load_data_with_task_detection_reads_data_root_in_the_detection_layout(bench, tmp_path):
    view = det.detection_view(bench, tmp_path / "view")
    cfg = get_config("quick", TINY, task="detection", data_root=str(view))
    bundle = data.load_data(cfg)
    assert isinstance(bundle, det.DetectionBundle) and bundle.root == view and bundle.test_sets[0] == "A-progan"
    part = data.load_data(cfg, splits=["val", "test/B1-sngan"])
    assert list(part.loaders) == ["val", "test/B1-sngan"] and part.test_sets == bundle.test_sets
    with pytest.raises(DataLayoutError, match="test/nowhere"):
        data.load_data(cfg, splits=["test/nowhere"])
    with pytest.raises(DataLayoutError, match="class folders"):       # an attribution folder is not one
        data.load_data(cfg.with_(data_root=str(bench)))


def test_detection_loaders_are_seeded_split_by_split_as_attribution_loaders(bench, tmp_path):
    bundle = _bundle(bench, tmp_path, seed=3)
    assert [ld.generator.initial_seed() for ld in bundle.loaders.values()] == \
        [3000 + i for i in range(len(bundle.loaders))]
    train = bundle["train"]
    assert isinstance(train.sampler, torch.utils.data.RandomSampler) and train.drop_last
    assert all(isinstance(bundle[s].sampler, torch.utils.data.SequentialSampler) for s in ["val", *bundle.test_splits])


def test_detection_loaders_get_the_cuda_settings_of_attribution_loaders(bench, tmp_path, monkeypatch):
    """Workers, pinned memory and persistent workers follow data.feeds_cuda for both kinds of data: a
    GPU run feeds its detection batches as fast as its attribution ones, and a CPU run pins nothing."""
    view = det.detection_view(bench, tmp_path / "view")
    monkeypatch.setattr(data, "default_num_workers", lambda cuda=None: 2 if cuda else 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)      # loaders are built, never iterated
    for device, fed in (("auto", True), ("cuda", True), ("cpu", False)):
        cfg = get_config("quick", TINY, num_workers=None, device=device)
        settings = lambda ld: (ld.pin_memory, ld.num_workers, ld.persistent_workers)  # noqa: E731
        detection = det.load_detection(view, cfg)
        attribution = data.get_loaders(bench, cfg)
        assert data.feeds_cuda(cfg) is fed
        assert {settings(ld) for ld in detection.loaders.values()} == {(fed, 2 if fed else 1, True)}
        assert {settings(ld) for ld in attribution.loaders.values()} == {(fed, 2 if fed else 1, True)}
    pinned = det.load_detection(view, get_config("quick", TINY, num_workers=2, device="auto"))
    assert {(ld.pin_memory, ld.num_workers) for ld in pinned.loaders.values()} == {(True, 2)}


def test_detection_loaders_need_a_config(bench, tmp_path):
    view = det.detection_view(bench, tmp_path / "view")
    with pytest.raises(TypeError, match="cfg"):
        det.load_detection(view)


def test_per_test_set_accuracy_known_answer(bench, tmp_path):
    bundle = _bundle(bench, tmp_path)
    results = det.evaluate_detection(Brightness(), bundle)
    accs = det.detection_accuracies(results)
    expected = {"A-progan": 1.0, "A-sngan": 1.0, "B1-progan": 1.0, "B1-sngan": 2 / 5,   # 2 reals right, 3 fakes wrong
                "variant-progan": 1.0, "variant-cfgA": 0.5}
    assert accs == pytest.approx(expected | {"Avg": sum(expected.values()) / 6})
    assert results["val"]["acc"] == 1.0 and results["test/B1-sngan"]["world"] == "B1-sngan"
    per_source = results["test/B1-sngan"]["by_source"]["per_source"]    # per generator instance, from names
    assert per_source == {"B1/fake/g0": 0.0, "B1/fake/g1": 0.0, "B1/real/real": 1.0}
    assert det.detection_accuracies(results, ["A-sngan", "B1-sngan"])["Avg"] == pytest.approx(0.7)


# --- the detectors ----------------------------------------------------------------------------------

def test_detectors_are_registered_with_the_protocol_options():
    assert TABLE_NAMES["CNNDetect"] == "cnndetect" and TABLE_NAMES["PatchForensics"] == "patchforensics"
    for name in ("cnndetect", "patchforensics"):
        assert OPTIONS[name].FROM_CONFIG == ("lr_schedule", "eval_every", "select", "patience", "patience_after", "device")
    assert OPTIONS["cnndetect"]().augment == "none"                        # blur+JPEG off by default


def test_patchforensics_scores_are_patch_averages_trained_per_patch():
    torch.manual_seed(0)
    model = PatchForensics(2, width=4, blocks=2, downsample=1).eval()
    x = torch.randn(3, 3, 20, 20, requires_grad=True)
    patches = model.patch_logits(x)
    assert patches.shape == (3, 2, 10, 10)
    assert torch.allclose(model(x), patches.mean(dim=(2, 3)))
    y = torch.tensor([0, 1, 1])
    per_patch = F.cross_entropy(patches.permute(0, 2, 3, 1).reshape(-1, 2), y.repeat_interleave(100))
    assert torch.allclose(PatchForensics.training_loss(model, x, y), per_patch)
    patches[0, 1, 5, 5].backward()                                        # one patch sees a limited field
    seen = (x.grad[0].abs().sum(0) > 0).nonzero()
    side = int(seen[:, 0].max() - seen[:, 0].min() + 1)
    assert side == model.receptive_field == 17


def test_cnndetect_blur_jpeg_only_when_training():
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.equal(blur_jpeg(x, p_blur=0, p_jpeg=0), x)
    g = torch.Generator().manual_seed(0)
    y = blur_jpeg(x, p_blur=1, p_jpeg=1, generator=g)
    assert y.shape == x.shape and not torch.allclose(y, x) and y.abs().max() <= 1
    model = CNNDetect(2, "resnet18", augment="blur_jpeg").eval()
    assert torch.equal(model(x), model(x))                                # no augmentation at test time


@pytest.mark.parametrize("name", ["cnndetect", "patchforensics", "resnet", "densenet"])
def test_detectors_fit_two_classes(bench, tmp_path, name):
    bundle = _bundle(bench, tmp_path)
    model = fit_baseline(name, bundle, get_config("detect", TINY), seed=0, progress=False, epochs=2)
    assert model(torch.zeros(1, 3, 16, 16)).shape == (1, 2)
    assert model.training_record["steps"] >= 1


@pytest.mark.parametrize("row,arch", [("ResNet", "resnet"), ("DenseNet", "densenet")])
def test_plain_backbone_rows_are_the_gfd_rows_encoder_and_head(row, arch):
    """The paper's pairing (Sec. 4.3): GFD-Net's G_enc + H has the plain network's architecture."""
    from gfd.baselines import backbone
    from gfd.models.generator import build_generator
    cfg = get_config("detect", TINY, encoder_arch=arch)
    model = backbone.BackboneClassifier(2, OPTIONS[TABLE_NAMES[row]]().arch, cfg.encoder_size, cfg.backbone_width,
                                        cfg.backbone_depth, cfg.backbone_max_width)
    g = build_generator(cfg, 2)
    shapes = lambda m: [(k, tuple(v.shape)) for k, v in m.state_dict().items()]  # noqa: E731
    assert shapes(model.encoder) == shapes(g.encoder) and shapes(model.head) == shapes(g.head)
    resolved = rep.RunSpec(row, 0, cfg.with_(encoder_arch="unet")).key("data")
    assert resolved != rep.RunSpec(row, 0, cfg.with_(encoder_arch="unet", backbone_width=8)).key("data")  # sized by cfg


@pytest.mark.parametrize("row,arch", [("GFD-Net (ResNet)", "resnet"), ("GFD-Net (DenseNet)", "densenet")])
def test_gfd_backbone_rows_train_two_classes_with_the_detection_weights(bench, tmp_path, row, arch):
    from gfd.runs.variant import train_and_measure
    bundle = _bundle(bench, tmp_path)
    spec = rep.RunSpec(row, 0, get_config("detect", TINY))
    cfg = spec.config()
    assert (cfg.encoder_arch, cfg.w1, cfg.w2, cfg.w3, cfg.w4) == (arch, 10.0, 0.01, 1.0, 1.0)
    assert cfg.use_D and cfg.use_C and cfg.use_percept                    # the full model
    res = train_and_measure(cfg, bundle, row, runs_root=tmp_path / "runs", progress=False)
    assert res.trainer.G.encoder_arch == arch and res.trainer.G.head.fc.out_features == 2
    assert res.results["val"]["classes"] == ["real", "fake"] and set(res.detection) == {*bundle.test_sets, "Avg"}
    assert rep.run_slug(row) == f"gfd-net-{arch}" and rep.run_slug("GFD-Net (U-Net)") == rep.run_slug("GFD-Net")


# --- the table --------------------------------------------------------------------------------------

def test_paper_table3_as_printed():
    assert TABLES[3] == ("DenseNet", "PatchForensics", "CNNDetect", "ResNet", "GFD-Net (U-Net)", "GFD-Net (DenseNet)",
                         "GFD-Net (ResNet)")
    assert len(TABLE3_COLUMNS) == 14 and TABLE3_COLUMNS[-1] == "Avg."
    assert PAPER[3]["CNNDetect"]["Avg."] == 73.71 and PAPER[3]["GFD-Net (ResNet50)"]["StarGAN"] == 93.40
    for row, cells in PAPER[3].items():
        mean = sum(cells[c] for c in TABLE3_COLUMNS[:-1]) / 13
        assert abs(mean - cells["Avg."]) < (0.2 if row == "Xception" else 0.006), row


def _record(method, seed, accs):
    res = lambda a: {"acc": a, "per_class_acc": {"real": a, "fake": a}, "confusion": [[1, 0], [0, 1]],  # noqa: E731
                     "classes": ["real", "fake"], "n": 2}
    results = {"val": dict(res(0.9), world="val")}
    results |= {f"test/{n}": dict(res(a), world=n) for n, a in accs.items()}
    return dict(method=method, seed=seed, preset="detect", key="k", benchmark="a view", weights="none",
                seconds=1.0, deterministic=False, training=None, results=results)


def test_table_writer_includes_every_test_set_and_the_average(tmp_path):
    runs = {"CNNDetect": {0: _record("CNNDetect", 0, {"A-progan": 1.0, "B1-sngan": 0.5}),
                          1: _record("CNNDetect", 1, {"A-progan": 0.8, "B1-sngan": 0.6})},
            "GFD-Net": {0: _record("GFD-Net", 0, {"A-progan": 1.0, "B1-sngan": 0.7})}}
    md = write_table(3, runs, tmp_path, command="python -m gfd reproduce --table 3")
    lines = {line.split(" | ")[0]: line for line in md.splitlines() if line.startswith("| ")}
    assert "| A-progan" in lines and "| B1-sngan" in lines and "| **Avg**" in lines
    assert lines["| **Avg**"].split(" | ")[1].startswith("72.50 ± ")         # mean of 75 and 70
    assert lines["| **Avg**"].split(" | ")[2].startswith("85.00 (1 seed)")
    assert lines["| Avg (paper)"].split(" | ")[1:] == ["73.71", "– |"]          # GFD-Net: no paper row matches
    assert "| GFD-Net (ResNet50) | 95.53" in md and "| SAN | STID | FF++ | Avg. |" in md
    table = json.loads((tmp_path / "table3.json").read_text())
    assert table["metrics"][:3] == ["A-progan", "B1-sngan", "Avg"] and table["meta"]["test_sets"] == ["A-progan",
                                                                                                      "B1-sngan"]
    cnn = table["rows"][0]
    assert cnn["method"] == "CNNDetect" and cnn["summary"]["Avg"]["values"] == pytest.approx([0.75, 0.7])


def test_table_writer_puts_the_backbone_rows_beside_the_papers(tmp_path):
    runs = {m: {0: _record(m, 0, {"A-progan": 1.0, "B1-sngan": 0.5})} for m in TABLES[3]}
    md = write_table(3, runs, tmp_path)
    head = next(line for line in md.splitlines() if line.startswith("| Test set"))
    assert head == "| Test set | " + " | ".join(f"{m} (%)" for m in TABLES[3]) + " |"
    paper = next(line for line in md.splitlines() if line.startswith("| Avg (paper)"))
    assert paper.split(" | ")[1:] == ["75.07", "67.81", "73.71", "–", "–", "80.81", "79.92 |"]   # (ResNet50)
    assert "Xception is left out" in md and "| GFD-Net (DenseNet) | 93.85" in md


def test_reproduce_table3_every_row_seed_and_test_set_then_resumes(bench, tmp_path, monkeypatch):
    bundle = _bundle(bench, tmp_path)
    out = tmp_path / "results"
    kw = dict(bundle=bundle, runs_root=tmp_path / "runs", progress=False, log=lambda *_: None)
    runs = rep.reproduce(3, "detect", (0, 1), out, TINY, **kw)
    assert list(runs) == list(TABLES[3])
    for by_seed in runs.values():
        assert sorted(by_seed) == [0, 1]
        for r in by_seed.values():
            assert r["results"]["val"]["classes"] == ["real", "fake"]
            assert [k for k in r["results"] if k.startswith("test/")] == bundle.test_splits
    md = (out / "table3.md").read_text()
    for name in bundle.test_sets + ["**Avg**"]:
        assert f"| {name} |" in md
    assert "Preset `detect`" in md and "real vs progan" in md and "67.81" in md
    assert (out / "runs" / "detect" / "cnndetect-seed1.json").is_file()

    def fail(*a, **k):
        raise AssertionError("a stored run was recomputed")
    monkeypatch.setattr(rep, "train_and_measure", fail)
    assert rep.reproduce(3, "detect", (0, 1), out, TINY, **kw) == runs
    with pytest.raises(ValueError, match="detection data"):
        rep.reproduce(3, "detect", (0,), out, TINY, bundle=object(), progress=False)


def test_cli_accepts_table_3_with_the_detect_preset(monkeypatch, tmp_path):
    from gfd.cli import main
    seen = {}

    def fake(table, preset, seeds, out, overrides, **kw):
        seen.update(table=table, preset=preset, command=kw["command"])
        (out / f"table{table}.md").write_text("| table |\n")
    monkeypatch.setattr(rep, "reproduce", fake)
    assert main(["reproduce", "--table", "3", "--seeds", "0", "--out", str(tmp_path), "--no-progress"]) == 0
    assert seen["table"] == 3 and seen["preset"] == "detect" and "--preset detect" in seen["command"]
    assert main(["reproduce", "--table", "1", "--seeds", "0", "--out", str(tmp_path), "--no-progress"]) == 0
    assert seen["preset"] == "course"


def test_detection_figures(bench, tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from gfd import plots
    fig = plots.plot_detection({"a": {"A-progan": 0.9, "B1-sngan": 0.6, "Avg": 0.75},
                                "b": {"A-progan": 0.8, "B1-sngan": 0.5, "Avg": 0.65}}, paper={"CNNDetect": 73.71})
    ours, paper = fig.axes
    assert len(ours.patches) == 6 and [t.get_text() for t in ours.get_xticklabels()] == ["A-progan", "B1-sngan", "Avg"]
    assert paper.patches[0].get_width() == pytest.approx(0.7371)
    plt.close(fig)
    view = det.detection_view(bench, tmp_path / "view")
    fig = plots.plot_detection_samples(view, ["A-progan", "B1-sngan"], n=2)
    assert len(fig.axes) == 8 and sum(bool(ax.images) for ax in fig.axes) == 8
    plt.close(fig)
