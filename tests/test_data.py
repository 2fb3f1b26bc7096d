"""gfd.data: layout, class order, transforms, loaders (and loaders that keep a GPU fed), and every bad-input case."""
import json
import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from conftest import write_image
from gfd import Config, data, get_config, streams


def test_class_order_real_first_then_sorted(make_dataset):
    root = make_dataset(classes=("zeta", "alpha", "real"))
    bundle = data.get_loaders(root, Config(), batch_size=4)
    assert bundle.classes == ["real", "alpha", "zeta"]
    assert bundle.real_index == 0
    assert set(bundle.loaders) == set(data.SPLITS)


def test_classes_json_overrides_order(make_dataset):
    root = make_dataset(classes=("real", "a", "b"))
    (root / "classes.json").write_text(json.dumps(["b", "real", "a"]))
    bundle = data.get_loaders(root, Config(), batch_size=4)
    assert bundle.classes == ["b", "real", "a"]
    _, y = next(iter(bundle["val"]))
    # val keeps folder order within the loader; labels follow classes.json
    assert bundle.datasets["val"].class_to_idx == {"b": 0, "real": 1, "a": 2}
    assert y.max() < 3


def test_classes_json_must_match_folders(make_dataset):
    root = make_dataset(classes=("real", "a"))
    (root / "classes.json").write_text(json.dumps(["real", "a", "ghost"]))
    with pytest.raises(data.DataLayoutError, match="ghost"):
        data.get_loaders(root, Config())


def test_batches_are_in_minus_one_one_with_the_crop(make_dataset):
    root = make_dataset()
    bundle = data.get_loaders(root, Config(), crop=32, batch_size=5)
    x, y = next(iter(bundle["train"]))
    assert x.shape == (5, 3, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.min() < -0.5 and x.max() > 0.5
    assert y.dtype == torch.int64
    # train drops the last incomplete batch, val keeps every image
    assert sum(len(b[1]) for b in bundle["train"]) == (18 // 5) * 5
    assert sum(len(b[1]) for b in bundle["val"]) == 18


def test_test_transform_is_deterministic_centre_crop(make_dataset):
    root = make_dataset(splits=("train", "val", "test_closed"))
    bundle = data.get_loaders(root, Config(), crop=32)
    ds = bundle.datasets["test_closed"]
    a, b = ds[0][0], ds[0][0]
    assert torch.equal(a, b)
    full = data.make_transform("mini", False, 64)(Image.open(ds.samples[0][0]).convert("RGB"))
    assert torch.equal(a, full[:, 16:48, 16:48])


def test_loaders_are_seeded(make_dataset):
    root = make_dataset()
    def first_labels(seed):
        torch.manual_seed(0)
        return next(iter(data.get_loaders(root, Config(), batch_size=8, seed=seed)["train"]))[1]
    assert torch.equal(first_labels(1), first_labels(1))
    assert not torch.equal(first_labels(1), first_labels(2))


def test_values_come_from_config(make_dataset):
    root = make_dataset()
    cfg = get_config("quick", batch_size=3, crop=40)
    x, _ = next(iter(data.get_loaders(root, cfg)["train"]))
    assert x.shape == (3, 3, 40, 40)


def test_paper_presets():
    img = Image.new("RGB", (128, 128))
    assert data.make_transform("p128", True, 224)(img).shape == (3, 224, 224)
    assert data.make_transform("p1024", False, 224)(Image.new("RGB", (1024, 1024))).shape == (3, 224, 224)
    with pytest.raises(KeyError, match="p128"):
        data.make_transform("nope", True, 224)


def test_p128_accepts_images_smaller_than_the_crop(make_dataset):
    root = make_dataset(size=(128, 128), n=2)
    bundle = data.get_loaders(root, Config(), transform="p128", crop=224, batch_size=2)
    assert next(iter(bundle["val"]))[0].shape == (2, 3, 224, 224)


# ------------------------------------------------------------------------------------------ bad input

def test_corrupt_image_error_names_the_file(make_dataset):
    root = make_dataset()
    bad = root / "train" / "ganA" / "000.png"
    bad.write_bytes(b"this is not a png")
    with pytest.raises(data.BadImageError, match="000.png"):
        data.get_loaders(root, Config())


def test_truncated_image_error_names_the_file_when_loaded(make_dataset):
    root = make_dataset()
    bad = root / "val" / "ganB" / "002.png"
    bad.write_bytes(bad.read_bytes()[:200])  # header intact, pixel data cut
    bundle = data.get_loaders(root, Config(), batch_size=4)
    with pytest.raises(data.BadImageError, match="002.png"):
        for _ in bundle["val"]:
            pass


def test_skip_bad_skips_and_warns_with_count(make_dataset):
    root = make_dataset()
    (root / "train" / "ganA" / "000.png").write_bytes(b"garbage")
    p = root / "train" / "real" / "001.png"
    p.write_bytes(p.read_bytes()[:200])
    with pytest.warns(UserWarning, match="skipped 2 unreadable"):
        bundle = data.get_loaders(root, Config(), skip_bad=True)
    assert len(bundle.datasets["train"]) == 18 - 2
    assert len(bundle.datasets["train"].bad_files) == 2


def test_skip_bad_that_empties_a_class_is_an_error(make_dataset):
    root = make_dataset(n=2)
    for p in (root / "val" / "ganB").iterdir():
        p.write_bytes(b"junk")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(data.DataLayoutError, match="no usable image"):
            data.get_loaders(root, Config(), skip_bad=True)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16"])
def test_other_modes_become_rgb(tmp_path, mode):
    path = write_image(tmp_path / f"img_{mode.replace(';', '')}.png", mode=mode, seed=3)
    img = data.load_rgb(path)
    assert img.mode == "RGB" and img.size == (64, 64)
    if mode == "I;16":  # rescaled from 16 bit, not clipped to white
        import numpy as np
        arr = np.asarray(img)
        assert 60 < arr.mean() < 200 and arr.std() > 20


def test_image_smaller_than_crop_names_file_and_size(make_dataset):
    root = make_dataset()
    write_image(root / "test_closed" / "ganA" / "tiny.png", size=(30, 20))
    with pytest.raises(data.BadImageError, match=r"tiny\.png is 30x20 px"):
        data.get_loaders(root, Config(), crop=48)


def test_missing_split_lists_what_was_found(make_dataset):
    root = make_dataset(splits=("train", "test_closed"))
    with pytest.raises(data.DataLayoutError, match=r"\['val'\].*found \['test_closed', 'train'\]"):
        data.get_loaders(root, Config())


def test_missing_root_is_clear(tmp_path):
    with pytest.raises(data.DataLayoutError, match="does not exist"):
        data.get_loaders(tmp_path / "nowhere", Config())


def test_empty_class_folder_lists_counts(make_dataset):
    root = make_dataset()
    for p in (root / "train" / "ganB").iterdir():
        p.unlink()
    with pytest.raises(data.DataLayoutError, match=r"\['ganB'\] hold no image"):
        data.get_loaders(root, Config())


def test_test_classes_that_differ_from_train_are_named(make_dataset):
    root = make_dataset()
    (root / "test_open" / "ganB").rename(root / "test_open" / "ganC")
    with pytest.raises(data.DataLayoutError, match=r"test_open.*missing \['ganB'\].*not in train \['ganC'\]"):
        data.get_loaders(root, Config())


def test_non_image_files_are_ignored(make_dataset):
    root = make_dataset()
    (root / "train" / "real" / "notes.txt").write_text("hello")
    assert len(data.get_loaders(root, Config()).datasets["train"]) == 18


def test_unknown_split_request(make_dataset):
    root = make_dataset(splits=("train", "val", "test_closed"))
    with pytest.raises(data.DataLayoutError, match="test_open"):
        data.get_loaders(root, Config(), splits=["train", "test_open"])


def test_mini_x4_is_the_papers_resize_in_miniature():
    """64 px resized x4 to 256 (as the paper resizes 128 to 512), then cropped: a centre crop of the
    test transform equals the centre of the bilinearly up-sampled image, not a crop of the original."""
    from gfd.data import make_transform
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    out = make_transform("mini_x4", train=False, crop=48)(img)
    plain = make_transform("mini", train=False, crop=48)(img)
    up = torch.nn.functional.interpolate(torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float(),
                                         size=256, mode="bilinear", antialias=True, align_corners=False)[0]
    centre = up[:, 104:152, 104:152] / 127.5 - 1
    assert out.shape == plain.shape == (3, 48, 48)
    assert (out - centre).abs().max() < 0.05 and (out - plain).abs().max() > 0.5


def test_load_data_dispatches_on_the_task(make_dataset):
    """cfg.task picks the reader: an attribution folder reads as attribution data, and read as
    detection data it is refused for lacking the real/fake class folders."""
    root = make_dataset(splits=("train", "val", "test_closed"), n=2)
    cfg = get_config("quick", data_root=str(root), num_workers=0)
    bundle = data.load_data(cfg)
    assert type(bundle) is data.DataBundle and bundle.classes == ["real", "ganA", "ganB"]
    with pytest.raises(data.DataLayoutError, match=r"class folders \['real', 'fake'\]"):
        data.load_data(cfg.with_(task="detection"))
    with pytest.raises(ValueError, match="task='segmentation'"):
        cfg.with_(task="segmentation")


def test_loaders_need_a_config(make_dataset):
    """No loader falls back to default settings: the config that trains a run also shapes its data."""
    root = make_dataset(n=2)
    with pytest.raises(TypeError, match="cfg"):
        data.get_loaders(root)
    with pytest.raises(TypeError, match="cfg"):
        data.get_loaders(root, batch_size=4)
    with pytest.raises(TypeError, match="cfg"):
        data.load_data()


def test_data_identity_is_the_identity_of_the_data_load_data_reads(make_dataset, tmp_path):
    """Known without reading the data: a folder by its absolute path, a built-in benchmark by the name
    of its cache folder (which holds its parameters' key), for either task."""
    root = make_dataset(splits=("train", "val", "test_closed"), n=2)
    cfg = get_config("quick", data_root=str(root), num_workers=0)
    assert data.data_identity(cfg) == data.load_data(cfg).identity == str(root.resolve())
    name = data.data_identity(cfg.with_(data_root=None))
    assert name.startswith("mini-quick-s0-") and name != data.data_identity(get_config("course"))
    assert data.data_identity(cfg.with_(data_root=None, task="detection")) == f"detect-progan-{name}"
    assert data.data_identity(cfg.with_(data_root=None, benchmark="gan1024")).startswith("gan1024-quick-s0-")


# --- loaders that keep a GPU fed ---------------------------------------------------------------------

def test_loaders_pin_and_use_workers_when_the_run_is_on_cuda(tiny_cfg, make_dataset, monkeypatch):
    root = make_dataset(n=2)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpu = data.get_loaders(root, tiny_cfg.with_(num_workers=None))["train"]
    assert (cpu.num_workers, cpu.pin_memory) == (0, False)                        # the CPU: unchanged
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for device, fed in (("auto", True), ("cuda", True), ("cuda:0", True), ("cpu", False)):
        cfg = tiny_cfg.with_(num_workers=None, device=device)
        loader = data.get_loaders(root, cfg)["train"]
        assert data.feeds_cuda(cfg) is fed and loader.pin_memory is fed and (loader.num_workers > 0) is fed
    assert streams.stream_for(loader, seed=0).loader_kwargs["pin_memory"] is False
    fed = data.get_loaders(root, tiny_cfg.with_(num_workers=None, device="auto"))["train"]
    assert streams.stream_for(fed, seed=0).loader_kwargs == {"num_workers": 2, "worker_init_fn": data._seed_worker,
                                                           "pin_memory": True, "collate_fn": fed.collate_fn}


# --- transforms and datasets ----------------------------------------------------------------------

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
    flipped = data.get_loaders(root, get_config("course"), crop=32, batch_size=12, hflip=True, num_workers=0)
    plain = data.get_loaders(root, get_config("course"), crop=32, batch_size=12, num_workers=0)
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
    bundle = data.get_loaders(root, get_config("course"), crop=48, batch_size=2, num_workers=0)
    assert len(bundle.datasets["train"]) == 6
    root2 = make_dataset(n=2, size=(48, 47), root=root.parent / "short")
    with pytest.raises(data.BadImageError, match=r"48x47 px, smaller than the 48 px crop"):
        data.get_loaders(root2, get_config("course"), crop=48, num_workers=0)


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


# --- loaders and the bundle -----------------------------------------------------------------------

def test_a_one_pixel_image_is_accepted_by_default(tmp_path):
    (tmp_path / "train" / "real").mkdir(parents=True)
    Image.new("RGB", (1, 1)).save(tmp_path / "train" / "real" / "dot.png")
    assert len(data.AttributionFolder(tmp_path / "train", ["real"])) == 1


def test_a_train_split_without_class_folders_is_named(tmp_path):
    for split in ("train", "val", "test_closed"):
        (tmp_path / split).mkdir()
    with pytest.raises(data.DataLayoutError, match=r"train holds no source folders; expected train/<source>"):
        data.get_loaders(tmp_path, get_config("course"))


def test_worker_settings_come_from_the_config_or_the_machine(make_dataset, monkeypatch):
    root = make_dataset(n=2)
    monkeypatch.setattr(data, "default_num_workers", lambda cuda=None: 2)
    assert data.get_loaders(root, get_config("course"), crop=32, num_workers=0)["train"].num_workers == 0
    auto = data.get_loaders(root, get_config("course"), crop=32, num_workers=None)["val"]
    assert auto.num_workers == 2 and auto.persistent_workers           # no worker starts until iterated
    one = data.get_loaders(root, get_config("course"), crop=32, num_workers=1)["train"]
    assert one.num_workers == 1 and one.persistent_workers
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert data.get_loaders(root, get_config("course"), crop=32, num_workers=0)["val"].pin_memory is True


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
    b = data.get_loaders(root, get_config("course"), batch_size=2, num_workers=0, splits=["train", "val"])
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
    exact = data.get_loaders(root, get_config("course"), num_workers=0, batch_size=9, crop=32)      # 9 images, batch 9
    assert exact["train"].drop_last
    # a train split smaller than a batch keeps its images
    small = data.get_loaders(root, get_config("course"), num_workers=0, batch_size=16, crop=32)
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
    ds = data.get_loaders(root, get_config("course"), num_workers=0, crop=32).datasets["val"]
    x, y = data.examples_per_class(ds)
    assert x.shape == (3, 3, 32, 32) and y.tolist() == [0, 1, 2]
    x, y = data.examples_per_class(ds, n=2, labels=[2, 0])
    assert y.tolist() == [2, 2, 0, 0]
    first_b = [i for i, t in enumerate(ds.targets) if t == 2][0]
    assert torch.equal(x[0], ds[first_b][0])
    with pytest.raises(ValueError, match=r"no image of classes \[\]"):
        data.examples_per_class(ds, labels=[])


def test_split_and_world_names_are_the_folder_and_record_strings():
    """gfd.layout is the one home of the split and world names; their values are folder names and
    record keys, so they never change."""
    from gfd import evaluate, layout
    assert layout.SPLITS == ("train", "val", "test_closed", "test_open")
    assert layout.REQUIRED_SPLITS == layout.CLOSED_SPLITS == ("train", "val", "test_closed")
    assert layout.OPTIONAL_SPLITS == ("test_open",) and layout.TEST_SPLIT == "test"
    assert layout.WORLDS == {"closed": "test_closed", "open": "test_open"}
    assert layout.SPLIT_TO_WORLD == {"test_closed": "closed", "test_open": "open"}
    assert evaluate.SPLIT_TO_WORLD is layout.SPLIT_TO_WORLD and evaluate.SELECTION_SPLIT == "val"
