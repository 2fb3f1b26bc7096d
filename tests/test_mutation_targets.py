"""Tests added where mutation testing (data_scripts/mutation_test.sh) showed code that no fast test
judged: exact values of the image conversion, the limits of the image checks, the loader settings,
the checkpoint checks, and the trainer's step functions outside the happy path."""
import os
import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from gfd import data
from gfd.checkpoint import FORMAT, FORMAT_VERSION, CheckpointError, load_checkpoint, save_checkpoint
from gfd.config import get_config
from gfd.train import NonFiniteLossError, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


# --- gfd.data: images -------------------------------------------------------------------------------

SIXTEEN = [0, 257, 33025, 49151, 65535]
SIXTEEN_AS_8 = [0, 1, 129, 191, 255]      # floor(v * 255 / 65535 + 1/2), worked out with fractions


@pytest.mark.parametrize("mode, dtype", [("I;16", "<u2"), ("I;16B", ">u2"), ("I;16L", "<u2")])
def test_sixteen_bit_grayscale_is_rescaled_and_rounded_exactly(tmp_path, mode, dtype):
    img = Image.frombytes(mode, (5, 1), np.array(SIXTEEN, dtype=dtype).tobytes())
    rgb = np.asarray(data.to_rgb(img))
    for c in range(3):
        assert rgb[0, :, c].tolist() == SIXTEEN_AS_8
    # a 16-bit file is read on the 16-bit scale even when its values are small
    dark = Image.frombytes(mode, (3, 1), np.array([0, 100, 255], dtype=dtype).tobytes())
    assert np.asarray(data.to_rgb(dark))[0, :, 0].tolist() == [0, 0, 1]
    if mode == "I;16":
        Image.fromarray(np.array([SIXTEEN], dtype=np.uint16)).save(tmp_path / "g16.png")
        assert np.asarray(data.load_rgb(tmp_path / "g16.png"))[0, :, 1].tolist() == SIXTEEN_AS_8


@pytest.mark.parametrize("mode, values, expected", [
    ("I", [[0, 100, 255]], [[0, 100, 255]]),            # 32-bit ints within 8 bits: kept
    ("I", [[0, 1000, 65535]], [[0, 4, 255]]),           # beyond 8 bits: read as 16 bit
    ("I", [[0, 128, 256]], [[0, 0, 1]]),                # 256 is already beyond 8 bits
    ("F", [[0.0, 99.6, 255.0]], [[0, 100, 255]]),       # floats: rounded, not truncated
    ("F", [[-1000.0, 70000.0, 1000.0]], [[0, 255, 4]]), # out of range: clipped, never wrapped
])
def test_wide_grayscale_modes_become_rgb(mode, values, expected):
    arr = np.array(values, dtype=np.int32 if mode == "I" else np.float32)
    img = data.to_rgb(Image.fromarray(arr, mode=mode))
    assert img.mode == "RGB" and np.asarray(img)[..., 1].tolist() == expected


def test_palette_and_alpha_images_keep_their_colours():
    p = Image.new("P", (2, 1))
    p.putpalette([10, 20, 30, 200, 100, 0] + [0] * 762)
    p.putpixel((1, 0), 1)
    assert np.asarray(data.to_rgb(p)).tolist() == [[[10, 20, 30], [200, 100, 0]]]
    rgba = Image.new("RGBA", (1, 1), (5, 6, 7, 0))
    assert np.asarray(data.to_rgb(rgba)).tolist() == [[[5, 6, 7]]]
    rgb = Image.new("RGB", (1, 1), (1, 2, 3))
    assert data.to_rgb(rgb) is rgb


def test_image_size_is_width_then_height_and_missing_files_are_not_bad_images(tmp_path):
    Image.new("RGB", (40, 24)).save(tmp_path / "wide.png")
    assert data.image_size(tmp_path / "wide.png") == (40, 24)
    assert data.load_rgb(tmp_path / "wide.png").size == (40, 24)
    with pytest.raises(FileNotFoundError):
        data.load_rgb(tmp_path / "missing.png")
    with pytest.raises(FileNotFoundError):
        data.image_size(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"junk")
    with pytest.raises(data.BadImageError, match="junk.png"):
        data.image_size(tmp_path / "junk.png")


def png_header(w, h):
    """A PNG file that is only a header claiming w x h pixels (no pixel data)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


def test_huge_images_are_refused_from_the_header_with_numbers_and_no_pillow_warning(tmp_path):
    (tmp_path / "big.png").write_bytes(png_header(10000, 10000))     # over ours, in Pillow's warning band
    (tmp_path / "bomb.png").write_bytes(png_header(20000, 20000))    # over Pillow's own hard limit
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                # Pillow's bomb warning is silenced
        for fn in (data.image_size, data.load_rgb):
            with pytest.raises(data.BadImageError, match=r"big\.png is 10000x10000 px \(100\.0 megapixels\), "
                                                         r"over the limit of 40 megapixels"):
                fn(tmp_path / "big.png")
            with pytest.raises(data.BadImageError, match=r"bomb\.png is larger than the 40 megapixel limit"):
                fn(tmp_path / "bomb.png")


def test_unreadable_files_are_named_with_the_decoder_error(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    with pytest.raises(data.BadImageError, match=r"cannot read image .*junk\.png: UnidentifiedImageError: "):
        data.image_size(tmp_path / "junk.png")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 7).save(tmp_path / "cut.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "cut.png").read_bytes()[:60])
    with pytest.raises(data.BadImageError, match=r"cannot read image .*cut\.png: (OSError|SyntaxError|ValueError): "):
        data.load_rgb(tmp_path / "cut.png")


def test_the_pixel_limit_is_inclusive(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MAX_IMAGE_PIXELS", 40 * 25)
    Image.new("RGB", (40, 25)).save(tmp_path / "at.png")
    Image.new("RGB", (41, 25)).save(tmp_path / "over.png")
    assert data.image_size(tmp_path / "at.png") == (40, 25)
    assert data.load_rgb(tmp_path / "at.png").size == (40, 25)
    for fn in (data.image_size, data.load_rgb):
        with pytest.raises(data.BadImageError, match=r"over\.png is 41x25 px"):
            fn(tmp_path / "over.png")


# --- gfd.data: transforms and datasets --------------------------------------------------------------

def test_transforms_flip_only_when_asked_and_only_for_training():
    def kinds(*args, **kw):
        return [type(t) for t in data.make_transform(*args, **kw).transforms]
    assert v2.RandomHorizontalFlip not in kinds("mini", True, 32)
    assert v2.RandomHorizontalFlip in kinds("mini", True, 32, hflip=True)
    assert v2.RandomHorizontalFlip not in kinds("mini", False, 32, hflip=True)
    assert v2.RandomCrop in kinds("mini", True, 32) and v2.CenterCrop in kinds("mini", False, 32)
    resize = [t for t in data.make_transform("p128", False, 224).transforms if isinstance(t, v2.Resize)]
    assert len(resize) == 1 and resize[0].size == [512]
    assert not any(isinstance(t, v2.Resize) for t in data.make_transform("p1024", True, 224).transforms)
    # p128 down-scales with antialiasing: a 1000 px checkerboard becomes flat grey, not a moire
    i, j = np.meshgrid(np.arange(1000), np.arange(1000), indexing="ij")
    checker = Image.fromarray(np.repeat((((i + j) % 2) * 255).astype(np.uint8)[..., None], 3, axis=2))
    assert data.make_transform("p128", False, 224)(checker).std() < 0.01
    # pixel values: 0 -> -1, 255 -> 1, 51 -> -0.6
    img = Image.fromarray(np.array([[[0, 255, 51]] * 2] * 2, dtype=np.uint8))
    x = data.make_transform("mini", False, 2)(img)
    assert x[:, 0, 0].tolist() == pytest.approx([-1.0, 1.0, -0.6])


def test_hflip_config_flips_some_training_images(make_dataset):
    root = make_dataset(n=4, size=(32, 32))
    flipped = data.get_loaders(root, crop=32, batch_size=12, hflip=True, num_workers=0)
    plain = data.get_loaders(root, crop=32, batch_size=12, num_workers=0)
    ds_f, ds_p = flipped.datasets["train"], plain.datasets["train"]
    torch.manual_seed(0)
    n_flipped = sum(not torch.equal(ds_f[i][0], ds_p[i][0]) for i in range(len(ds_p)) for _ in range(2))
    assert 0 < n_flipped < 2 * len(ds_p)
    for i in range(len(ds_p)):
        a = ds_f[i][0]
        assert torch.equal(a, ds_p[i][0]) or torch.equal(a.flip(-1), ds_p[i][0])   # a flip, nothing else


def test_min_image_side_and_an_image_exactly_the_crop(make_dataset):
    assert data.min_image_side("mini", 48) == 48 and data.min_image_side("p1024", 224) == 224
    assert data.min_image_side("p128", 224) == 1
    root = make_dataset(n=2, size=(48, 48))
    bundle = data.get_loaders(root, crop=48, batch_size=2, num_workers=0)
    assert len(bundle.datasets["train"]) == 6
    root2 = make_dataset(n=2, size=(48, 47), root=root.parent / "short")
    with pytest.raises(data.BadImageError, match=r"48x47 px, smaller than the 48 px crop"):
        data.get_loaders(root2, crop=48, num_workers=0)


def test_attribution_folder_lists_the_class_folders_in_the_given_order(make_dataset):
    root = make_dataset(classes=("real", "b", "a"), n=2, splits=("train",))
    ds = data.AttributionFolder(root / "train", ["b", "real", "a"], min_side=1)
    assert ds.classes == ["b", "real", "a"] and ds.class_to_idx == {"b": 0, "real": 1, "a": 2}
    by_folder = {os.path.basename(os.path.dirname(p)): t for p, t in ds.samples}
    assert by_folder == {"b": 0, "real": 1, "a": 2}
    assert ds.targets == [t for _, t in ds.samples] and ds.imgs == ds.samples
    assert sorted(ds.targets) == [0, 0, 1, 1, 2, 2] and ds.bad_files == []


def test_skip_bad_decodes_and_records_each_bad_file(make_dataset):
    root = make_dataset(classes=("real", "a"), n=3, splits=("train",))
    bad = root / "train" / "a" / "001.png"
    bad.write_bytes(bad.read_bytes()[:200])                       # header fine, pixels cut
    with pytest.raises(data.BadImageError):                      # header-only check passes it ...
        ds = data.AttributionFolder(root / "train", ["real", "a"])
        [ds[i] for i in range(len(ds))]                           # ... decoding fails
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image\(s\), e\.g\. \S*001\.png$") as caught:
        ds = data.AttributionFolder(root / "train", ["real", "a"], skip_bad=True)
    assert os.path.basename(caught[0].filename) != "data.py"    # the warning points at the caller
    assert len(ds) == 5 and [os.path.basename(p) for p, _ in ds.bad_files] == ["001.png"]
    assert "001.png" in ds.bad_files[0][1]


# --- gfd.data: loaders and the bundle ---------------------------------------------------------------

def test_a_one_pixel_image_is_accepted_by_default(tmp_path):
    (tmp_path / "train" / "real").mkdir(parents=True)
    Image.new("RGB", (1, 1)).save(tmp_path / "train" / "real" / "dot.png")
    assert len(data.AttributionFolder(tmp_path / "train", ["real"])) == 1


def test_a_train_split_without_class_folders_is_named(tmp_path):
    for split in ("train", "val", "test_closed"):
        (tmp_path / split).mkdir()
    with pytest.raises(data.DataLayoutError, match=r"train holds no source folders; expected train/<source>"):
        data.get_loaders(tmp_path)


def test_worker_settings_come_from_the_config_or_the_machine(make_dataset, monkeypatch):
    root = make_dataset(n=2)
    monkeypatch.setattr(data, "default_num_workers", lambda cuda=None: 2)
    assert data.get_loaders(root, crop=32, num_workers=0)["train"].num_workers == 0
    auto = data.get_loaders(root, crop=32, num_workers=None)["val"]
    assert auto.num_workers == 2 and auto.persistent_workers           # no worker starts until iterated
    one = data.get_loaders(root, crop=32, num_workers=1)["train"]
    assert one.num_workers == 1 and one.persistent_workers
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert data.get_loaders(root, crop=32, num_workers=0)["val"].pin_memory is True


def test_default_num_workers_follows_the_machine(monkeypatch):
    def workers(cores, cuda):
        monkeypatch.setattr(os, "cpu_count", lambda: cores)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        return data.default_num_workers()
    assert [workers(c, False) for c in (None, 1, 2, 3, 4, 8, 16)] == [0, 0, 0, 1, 2, 4, 4]
    assert [workers(c, True) for c in (None, 1, 2, 3, 8)] == [1, 1, 2, 3, 4]


def test_seed_worker_seeds_numpy_from_torch():
    torch.manual_seed(2**32 + 7)
    data._seed_worker(0)
    a = np.random.rand()
    np.random.seed(7)
    assert a == np.random.rand()


def test_bundle_lookup_and_real_index(make_dataset):
    root = make_dataset(classes=("real", "a"), n=2)
    b = data.get_loaders(root, batch_size=2, num_workers=0, splits=["train", "val"])
    assert list(b.loaders) == ["train", "val"] and "val" in b and "test_closed" not in b
    assert b["val"] is b.loaders["val"] and b.num_classes == 2 and b.real_index == 0
    with pytest.raises(KeyError, match=r"'test_closed' is not in .*present: \['train', 'val'\]"):
        b["test_closed"]
    nameless = data.DataBundle(root=root, classes=["a", "b"])
    with pytest.raises(KeyError, match="no 'real' class"):
        nameless.real_index


def test_loader_settings(make_dataset):
    root = make_dataset(n=3)
    b = data.get_loaders(root, get_config("quick", num_workers=0, batch_size=4, crop=32, seed=3))
    train, val = b["train"], b["val"]
    assert train.batch_size == val.batch_size == 4 and train.num_workers == 0
    assert train.drop_last and not val.drop_last
    assert isinstance(train.sampler, torch.utils.data.RandomSampler)
    assert isinstance(val.sampler, torch.utils.data.SequentialSampler)
    assert not train.persistent_workers and train.pin_memory == torch.cuda.is_available()
    assert train.worker_init_fn is data._seed_worker
    assert train.generator.initial_seed() == 3000 and val.generator.initial_seed() == 3001
    exact = data.get_loaders(root, num_workers=0, batch_size=9, crop=32)      # 9 images, batch 9
    assert exact["train"].drop_last
    # a train split smaller than a batch keeps its images
    small = data.get_loaders(root, num_workers=0, batch_size=16, crop=32)
    assert not small["train"].drop_last and sum(len(y) for _, y in small["train"]) == 9


def test_load_data_reads_data_root_or_builds_the_benchmark(make_dataset, monkeypatch):
    root = make_dataset(n=2)
    cfg = get_config("quick", data_root=str(root), num_workers=0, crop=32)
    b = data.load_data(cfg, splits=["train", "val"])
    assert b.root == root and list(b.loaders) == ["train", "val"]
    import gfd.benchmark
    asked = {}

    def fake_benchmark(benchmark, size, seed, progress):
        asked.update(benchmark=benchmark, size=size, seed=seed, progress=progress)
        return root
    monkeypatch.setattr(gfd.benchmark, "load_benchmark", fake_benchmark)
    x, _ = next(iter(b["val"]))
    assert x.shape[-1] == 32 and b["val"].batch_size == cfg.batch_size     # the config's crop and batch
    b = data.load_data(cfg.with_(data_root=None, benchmark_size="quick"), progress=False)
    assert asked == {"benchmark": "gan128", "size": "quick", "seed": 0, "progress": False} and b.root == root
    data.load_data(cfg.with_(data_root=None, benchmark="gan1024"), progress=False)
    assert asked["benchmark"] == "gan1024"                                   # Table 2's world, by name
    assert set(b.loaders) == set(data.SPLITS)
    data.load_data(cfg.with_(data_root=None))
    assert asked["progress"] is True                                         # progress shown by default
    # bad files stop loading unless skip_bad is asked for
    (root / "val" / "ganA" / "000.png").write_bytes(b"junk")
    with pytest.raises(data.BadImageError):
        data.load_data(cfg)
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        assert len(data.load_data(cfg, skip_bad=True).datasets["val"]) == 5


def test_examples_per_class(make_dataset):
    root = make_dataset(n=3, classes=("real", "a", "b"))
    ds = data.get_loaders(root, num_workers=0, crop=32).datasets["val"]
    x, y = data.examples_per_class(ds)
    assert x.shape == (3, 3, 32, 32) and y.tolist() == [0, 1, 2]
    x, y = data.examples_per_class(ds, n=2, labels=[2, 0])
    assert y.tolist() == [2, 2, 0, 0]
    first_b = [i for i, t in enumerate(ds.targets) if t == 2][0]
    assert torch.equal(x[0], ds[first_b][0])
    with pytest.raises(ValueError, match=r"no image of classes \[\]"):
        data.examples_per_class(ds, labels=[])


# --- gfd.checkpoint ---------------------------------------------------------------------------------

STATE = {"config": {"a": 1}, "classes": ["real", "x"], "step": 3, "models": {"G": {"w": torch.ones(2)}}}


def test_checkpoint_round_trip_and_format_tag(tmp_path):
    path = save_checkpoint(tmp_path / "sub" / "c.pt", dict(STATE))
    assert path == tmp_path / "sub" / "c.pt"
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT == "gfd-checkpoint" and raw["version"] == FORMAT_VERSION == 1
    state = load_checkpoint(str(path))
    assert state["step"] == 3 and torch.equal(state["models"]["G"]["w"], torch.ones(2))
    for key in ("config", "classes", "step", "models"):
        with pytest.raises(KeyError, match=key):
            save_checkpoint(tmp_path / "bad.pt", {k: v for k, v in STATE.items() if k != key})
    assert not (tmp_path / "bad.pt").exists()


@pytest.mark.parametrize("change, message", [
    ({"version": 2}, "format version 2, this code reads version 1"),
    ({"format": "other"}, "not a gfd checkpoint"),
    ({"models": None}, None),
])
def test_checkpoint_checks(tmp_path, change, message):
    payload = {"format": FORMAT, "version": FORMAT_VERSION, **STATE, **change}
    if change == {"models": None}:
        del payload["models"]
        message = r"incomplete gfd checkpoint: missing \['models'\]"
    torch.save(payload, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path / "c.pt")


def test_a_torch_file_that_is_not_a_dict_is_refused(tmp_path):
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="list.pt is a torch file but not a gfd checkpoint .*holds list"):
        load_checkpoint(tmp_path / "list.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path)                                     # a folder is not a checkpoint
    torch.save({f"k{i:02d}": i for i in range(12)}, tmp_path / "many.pt")
    keys = ", ".join(f"'k{i:02d}'" for i in range(10))               # the first ten, sorted
    with pytest.raises(CheckpointError, match=rf"holds a dict with keys \[{keys}\], without format="):
        load_checkpoint(tmp_path / "many.pt")


def test_checkpoint_map_location(tmp_path):
    save_checkpoint(tmp_path / "c.pt", dict(STATE))
    assert load_checkpoint(tmp_path / "c.pt", map_location="meta")["models"]["G"]["w"].is_meta


# --- the trainer's steps off the happy path ---------------------------------------------------------

def tiny_cfg(**changes):
    base = dict(crop=32, batch_size=4, unet_depth=1, unet_width=4, unet_max_width=8, disc_width=4,
                classifier_arch="resnet18", classifier_weights="random", perceptual_weights="random",
                perceptual_layer="relu1_1", device="cpu", seed=2, lr=1e-3)
    return get_config("quick", **(base | changes))


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(4, 3, 32, 32, generator=g) * 2 - 1, torch.tensor([1, 0, 1, 0]), torch.rand(4, 3, 32, 32, generator=g)


def test_g_step_trains_g_in_train_mode_and_updates_only_g():
    t = Trainer(tiny_cfg(), classes=["real", "gan"])
    t.G.eval()
    g0 = [p.detach().clone() for p in t.G.parameters()]
    lr0 = t.sched_G.last_epoch
    x, y, x_real = batch()
    t.g_step(x, y, x_real)
    assert t.G.training                                        # BatchNorm on batch statistics
    assert all(not torch.equal(a, b) for a, b in zip(g0, t.G.parameters()) if b.grad is not None)
    assert t.sched_G.last_epoch == lr0 + 1 and t.sched_DC.last_epoch == 0
    t.dc_step(x, y, x_real)
    assert t.sched_G.last_epoch == lr0 + 1 and t.sched_DC.last_epoch == 1


def test_dc_step_with_d_only_or_c_only():
    x, y, x_real = batch()
    d_only = Trainer(tiny_cfg(use_C=False), classes=["real", "gan"])
    assert set(d_only.dc_step(x, y, x_real)) == {"L_adv_D", "L_DC"}
    c_only = Trainer(tiny_cfg(use_D=False), classes=["real", "gan"])
    values = c_only.dc_step(x, y, x_real)
    assert set(values) == {"L_cls_C", "L_DC"} and values["L_DC"] == pytest.approx(values["L_cls_C"])
    g_only = Trainer(tiny_cfg(use_D=False, use_C=False, use_percept=False), classes=["real", "gan"])
    assert g_only.opt_DC is None and g_only.dc_step(x, y, x_real) == {}
    assert g_only.g_step(x, y, x_real)[1] is None


def test_non_finite_losses_name_the_step_they_happened_in():
    x, y, x_real = batch()
    t = Trainer(tiny_cfg(), classes=["real", "gan"])
    with torch.no_grad():
        t.G.head.fc.bias.fill_(float("inf"))
    g0 = [p.detach().clone() for p in t.G.parameters()]
    with pytest.raises(NonFiniteLossError, match=r"loss L_z = nan at step 1 \(G step\).*no checkpoint"):
        t.g_step(x, y, x_real)
    assert all(torch.equal(a, b) for a, b in zip(g0, t.G.parameters()))   # stopped before the update
    t = Trainer(tiny_cfg(use_C=False), classes=["real", "gan"])
    with torch.no_grad():
        list(t.D.parameters())[-1].fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"loss L_adv_D = nan at step 1 \(D/C step\)"):
        t.dc_step(x, y, x_real)
    t.step = 41
    with pytest.raises(NonFiniteLossError, match=r"at step 42 \(D/C step\)"):
        t.dc_step(x, y, x_real)


def test_export_keeps_what_inference_needs_and_is_refused_for_training(tmp_path):
    from gfd.checkpoint import EXPORT_FORMAT, export_weights

    full = dict(STATE, models={"G": {"w": torch.ones(2)}, "D": {"v": torch.zeros(3)}}, meta={"device": "cpu"},
                optim={"G": None})
    src = save_checkpoint(tmp_path / "checkpoint.pt", full)
    out = export_weights(src, tmp_path / "w.pt")
    assert out == tmp_path / "w.pt" and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "w.pt"]
    raw = torch.load(out, weights_only=True)
    assert raw["format"] == EXPORT_FORMAT == "gfd-weights" and raw["version"] == FORMAT_VERSION
    assert set(raw) == {"format", "version", "config", "classes", "step", "meta", "models"}
    assert list(raw["models"]) == ["G"] and torch.equal(raw["models"]["G"]["w"], torch.ones(2))
    assert (raw["config"], raw["classes"], raw["step"], raw["meta"]) == ({"a": 1}, ["real", "x"], 3, {"device": "cpu"})
    with pytest.raises(CheckpointError, match="w.pt is a weights-only export"):
        load_checkpoint(out)
    assert load_checkpoint(out, allow_export=True)["format"] == EXPORT_FORMAT
    # an export of an export is the same export; a checkpoint without meta gets an empty one
    assert torch.load(export_weights(out, tmp_path / "w2.pt"), weights_only=True)["meta"] == {"device": "cpu"}
    bare = save_checkpoint(tmp_path / "bare.pt", dict(STATE))
    assert torch.load(export_weights(bare, tmp_path / "w3.pt"), weights_only=True)["meta"] == {}


def test_export_never_overwrites_a_checkpoint_or_a_folder(tmp_path):
    from gfd.checkpoint import export_weights

    src = save_checkpoint(tmp_path / "checkpoint.pt", dict(STATE))
    before = src.read_bytes()
    with pytest.raises(ValueError, match=r"checkpoint\.pt is the checkpoint itself; give the path of a new "
                                         r"file, e\.g\. checkpoint\.weights\.pt"):
        export_weights(src, src)
    with pytest.raises(ValueError, match=r" is a folder; give the path"):
        export_weights(src, tmp_path)
    other = save_checkpoint(tmp_path / "other.pt", dict(STATE, step=9))
    with pytest.raises(ValueError, match="other.pt is a full gfd checkpoint"):
        export_weights(src, other)
    assert src.read_bytes() == before and load_checkpoint(other)["step"] == 9
    # a file that is not a gfd checkpoint (or not a torch file) may be replaced
    (tmp_path / "junk.pt").write_text("junk")
    torch.save({"format": "gfd-weights"}, tmp_path / "old_export.pt")
    for name in ("junk.pt", "old_export.pt"):
        assert torch.load(export_weights(src, tmp_path / name), weights_only=True)["format"] == "gfd-weights"
    no_g = save_checkpoint(tmp_path / "no_g.pt", dict(STATE, models={"D": {}}))
    with pytest.raises(CheckpointError, match=r"holds no generator G \(networks: \['D'\]\)"):
        export_weights(no_g, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()
