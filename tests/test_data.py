"""gfd.data: layout, class order, transforms, loaders, and every bad-input case of the issue."""
import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import write_image
from gfd import data, get_config


def test_class_order_real_first_then_sorted(make_dataset):
    root = make_dataset(classes=("zeta", "alpha", "real"))
    bundle = data.get_loaders(root, batch_size=4)
    assert bundle.classes == ["real", "alpha", "zeta"]
    assert bundle.real_index == 0
    assert set(bundle.loaders) == set(data.SPLITS)


def test_classes_json_overrides_order(make_dataset):
    root = make_dataset(classes=("real", "a", "b"))
    (root / "classes.json").write_text(json.dumps(["b", "real", "a"]))
    bundle = data.get_loaders(root, batch_size=4)
    assert bundle.classes == ["b", "real", "a"]
    _, y = next(iter(bundle["val"]))
    # val keeps folder order within the loader; labels follow classes.json
    assert bundle.datasets["val"].class_to_idx == {"b": 0, "real": 1, "a": 2}
    assert y.max() < 3


def test_classes_json_must_match_folders(make_dataset):
    root = make_dataset(classes=("real", "a"))
    (root / "classes.json").write_text(json.dumps(["real", "a", "ghost"]))
    with pytest.raises(data.DataLayoutError, match="ghost"):
        data.get_loaders(root)


def test_batches_are_in_minus_one_one_with_the_crop(make_dataset):
    root = make_dataset()
    bundle = data.get_loaders(root, crop=32, batch_size=5)
    x, y = next(iter(bundle["train"]))
    assert x.shape == (5, 3, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.min() < -0.5 and x.max() > 0.5
    assert y.dtype == torch.int64
    # train drops the last incomplete batch, val keeps every image
    assert sum(len(b[1]) for b in bundle["train"]) == (18 // 5) * 5
    assert sum(len(b[1]) for b in bundle["val"]) == 18


def test_test_transform_is_deterministic_centre_crop(make_dataset):
    root = make_dataset(splits=("train", "val", "test_closed"))
    bundle = data.get_loaders(root, crop=32)
    ds = bundle.datasets["test_closed"]
    a, b = ds[0][0], ds[0][0]
    assert torch.equal(a, b)
    full = data.make_transform("mini", False, 64)(Image.open(ds.samples[0][0]).convert("RGB"))
    assert torch.equal(a, full[:, 16:48, 16:48])


def test_loaders_are_seeded(make_dataset):
    root = make_dataset()
    def first_labels(seed):
        torch.manual_seed(0)
        return next(iter(data.get_loaders(root, batch_size=8, seed=seed)["train"]))[1]
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
    bundle = data.get_loaders(root, transform="p128", crop=224, batch_size=2)
    assert next(iter(bundle["val"]))[0].shape == (2, 3, 224, 224)


# ------------------------------------------------------------------------------------------ bad input

def test_corrupt_image_error_names_the_file(make_dataset):
    root = make_dataset()
    bad = root / "train" / "ganA" / "000.png"
    bad.write_bytes(b"this is not a png")
    with pytest.raises(data.BadImageError, match="000.png"):
        data.get_loaders(root)


def test_truncated_image_error_names_the_file_when_loaded(make_dataset):
    root = make_dataset()
    bad = root / "val" / "ganB" / "002.png"
    bad.write_bytes(bad.read_bytes()[:200])  # header intact, pixel data cut
    bundle = data.get_loaders(root, batch_size=4)
    with pytest.raises(data.BadImageError, match="002.png"):
        for _ in bundle["val"]:
            pass


def test_skip_bad_skips_and_warns_with_count(make_dataset):
    root = make_dataset()
    (root / "train" / "ganA" / "000.png").write_bytes(b"garbage")
    p = root / "train" / "real" / "001.png"
    p.write_bytes(p.read_bytes()[:200])
    with pytest.warns(UserWarning, match="skipped 2 unreadable"):
        bundle = data.get_loaders(root, skip_bad=True)
    assert len(bundle.datasets["train"]) == 18 - 2
    assert len(bundle.datasets["train"].bad_files) == 2


def test_skip_bad_that_empties_a_class_is_an_error(make_dataset):
    root = make_dataset(n=2)
    for p in (root / "val" / "ganB").iterdir():
        p.write_bytes(b"junk")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(data.DataLayoutError, match="no usable image"):
            data.get_loaders(root, skip_bad=True)


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
        data.get_loaders(root, crop=48)


def test_missing_split_lists_what_was_found(make_dataset):
    root = make_dataset(splits=("train", "test_closed"))
    with pytest.raises(data.DataLayoutError, match=r"\['val'\].*found \['test_closed', 'train'\]"):
        data.get_loaders(root)


def test_missing_root_is_clear(tmp_path):
    with pytest.raises(data.DataLayoutError, match="does not exist"):
        data.get_loaders(tmp_path / "nowhere")


def test_empty_class_folder_lists_counts(make_dataset):
    root = make_dataset()
    for p in (root / "train" / "ganB").iterdir():
        p.unlink()
    with pytest.raises(data.DataLayoutError, match=r"\['ganB'\] hold no image"):
        data.get_loaders(root)


def test_test_classes_that_differ_from_train_are_named(make_dataset):
    root = make_dataset()
    (root / "test_open" / "ganB").rename(root / "test_open" / "ganC")
    with pytest.raises(data.DataLayoutError, match=r"test_open.*missing \['ganB'\].*not in train \['ganC'\]"):
        data.get_loaders(root)


def test_non_image_files_are_ignored(make_dataset):
    root = make_dataset()
    (root / "train" / "real" / "notes.txt").write_text("hello")
    assert len(data.get_loaders(root).datasets["train"]) == 18


def test_unknown_split_request(make_dataset):
    root = make_dataset(splits=("train", "val", "test_closed"))
    with pytest.raises(data.DataLayoutError, match="test_open"):
        data.get_loaders(root, splits=["train", "test_open"])


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
