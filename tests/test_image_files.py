"""Which files are a class's images and how each image file is read: the regular files directly in a
class folder (no symbolic links, no sub-folders), exact colour conversion of every Pillow mode, the pixel
limit read from the header, bad files named with the decoder's error and advice that can be followed,
and ``load_rgb`` on arbitrary bytes (never a hang, never anything but an RGB image or a BadImageError)."""
import signal
import struct
import warnings
import zlib
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path

import hypothesis
import numpy as np
import pytest
import torch
from hypothesis import strategies as st
from PIL import Image

from conftest import png_header, write_image
from gfd import data, layout
from gfd.config import Config


# --- the images of a class are the regular files directly in its folder ---------------------------

def test_a_directory_symlink_loop_in_a_class_folder_is_refused(dataset):
    loop = dataset / "train" / "ganA" / "loop"
    loop.symlink_to(".", target_is_directory=True)
    with pytest.raises(data.DataLayoutError, match=r"loop is a symbolic link \(to a folder\)"):
        data.get_loaders(dataset, Config())
    with pytest.raises(data.DataLayoutError, match="loop"):
        layout.list_images(dataset / "train" / "ganA")


def test_a_symlinked_file_in_a_class_folder_is_refused(dataset):
    link = dataset / "train" / "ganA" / "link.png"
    link.symlink_to(dataset / "val" / "ganA" / "000.png")
    with pytest.raises(data.DataLayoutError, match=r"link\.png is a symbolic link \(to a file\)"):
        data.get_loaders(dataset, Config())


def test_images_in_a_sub_folder_are_ignored_and_the_loader_agrees_with_the_counts(dataset):
    for i in range(3):
        write_image(dataset / "train" / "ganA" / "extra" / f"x{i}.png", seed=100 + i)
    counts = layout.split_sources(dataset, "train")
    assert counts == {"ganA": 4, "ganB": 4, "real": 4}
    ds = data.get_loaders(dataset, Config()).datasets["train"]
    per_class = {c: ds.targets.count(k) for k, c in enumerate(ds.classes)}
    assert per_class == counts
    assert not any("extra" in path for path, _ in ds.samples)
    assert [Path(p) for p, t in ds.samples if t == ds.class_to_idx["ganA"]] == \
        layout.list_images(dataset / "train" / "ganA")


# --- colours: every mode becomes RGB, exactly -----------------------------------------------------

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


# --- the pixel limit, read from the header; bad files named with the reason -----------------------

def rgb_png_header(w, h):
    """A PNG file that is only a header claiming w x h pixels (no pixel data)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("size", [(8000, 6000), (10000, 10000), (20000, 10000), (65535, 65535)])
def test_images_over_the_pixel_limit_are_refused_from_the_header(tmp_path, size):
    path = tmp_path / "huge.png"
    path.write_bytes(png_header(*size))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # Pillow's DecompressionBombWarning must not escape either
        for read in (data.image_size, data.load_rgb):
            with pytest.raises(data.BadImageError) as err:
                read(path)
            msg = str(err.value)
            assert str(path) in msg and "40 megapixel" in msg
            if size[0] * size[1] < 2 * Image.MAX_IMAGE_PIXELS:   # below Pillow's own hard limit
                assert f"{size[0]}x{size[1]} px" in msg
    assert data.MAX_IMAGE_PIXELS == 40_000_000


def test_huge_images_are_refused_from_the_header_with_numbers_and_no_pillow_warning(tmp_path):
    (tmp_path / "big.png").write_bytes(rgb_png_header(10000, 10000))     # over ours, in Pillow's warning band
    (tmp_path / "bomb.png").write_bytes(rgb_png_header(20000, 20000))    # over Pillow's own hard limit
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


def test_bad_image_advice_names_the_cli_flag_and_the_python_argument(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(data.BadImageError) as err:
        data.load_rgb(bad)
    assert "--skip-bad" in str(err.value) and "skip_bad=True in gfd.load_data" in str(err.value)


# --- load_rgb on arbitrary bytes ------------------------------------------------------------------

MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16", "F", "CMYK"]


FORMATS = ["PNG", "JPEG", "BMP", "WEBP", "TIFF", "GIF"]


@contextmanager
def time_limit(seconds: int):
    """Fail instead of hanging (SIGALRM: the tests run on Unix)."""
    def boom(*_):
        raise TimeoutError(f"load_rgb took more than {seconds} s")
    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def encoded(mode, fmt, w, h, seed) -> bytes | None:
    """A random image of that mode and size encoded as fmt, or None where Pillow cannot write it."""
    g = torch.Generator().manual_seed(seed)
    img = Image.frombytes("RGB", (w, h), torch.randint(0, 256, (w * h * 3,), generator=g,
                                                       dtype=torch.uint8).numpy().tobytes())
    try:
        img = img.convert(mode)
        buf = BytesIO()
        img.save(buf, format=fmt)
        return buf.getvalue()
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_load(tmp_path, payload: bytes, name: str):
    path = tmp_path / name
    path.write_bytes(payload)
    with time_limit(10):
        try:
            img = data.load_rgb(path)
        except data.BadImageError as err:
            assert str(path) in str(err)
            return None
    assert isinstance(img, Image.Image) and img.mode == "RGB"
    return img


settings = hypothesis.settings(max_examples=60, deadline=3000, derandomize=True, database=None,
                               suppress_health_check=list(hypothesis.HealthCheck))


@settings
@hypothesis.given(payload=st.binary(max_size=2048), ext=st.sampled_from([".png", ".jpg", ".webp", ".bmp"]))
def test_load_rgb_on_random_bytes(tmp_path, payload, ext):
    check_load(tmp_path, payload, "random" + ext)


@settings
@hypothesis.given(mode=st.sampled_from(MODES), fmt=st.sampled_from(FORMATS), w=st.integers(1, 80),
                  h=st.integers(1, 80), seed=st.integers(0, 2**16), cut=st.floats(0, 1), whole=st.booleans())
def test_load_rgb_on_real_encodings_whole_or_truncated(tmp_path, mode, fmt, w, h, seed, cut, whole):
    payload = encoded(mode, fmt, w, h, seed)
    hypothesis.assume(payload is not None)
    if not whole:
        payload = payload[:int(len(payload) * cut)]
    img = check_load(tmp_path, payload, "image." + fmt.lower())
    if whole:
        assert img is not None and img.size == (w, h)


@settings
@hypothesis.given(w=st.integers(1, 2**31 - 1), h=st.integers(1, 2**31 - 1),
                  mode_depth=st.sampled_from([(0, 1), (0, 8), (0, 16), (2, 8), (3, 8), (4, 8), (6, 16)]),
                  tail=st.binary(max_size=64))
def test_load_rgb_on_png_headers_of_any_size(tmp_path, w, h, mode_depth, tail):
    payload = png_header(w, h, *mode_depth) + tail
    img = check_load(tmp_path, payload, "header.png")
    assert img is None or img.size[0] * img.size[1] <= data.MAX_IMAGE_PIXELS
