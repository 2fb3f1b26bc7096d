"""Fixtures for the unit tests (the environment is set in the root conftest.py)."""
import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(min(2, torch.get_num_threads()))


def write_image(path, size=(64, 64), seed=0, mode="RGB"):
    """Write a random image of ``size`` (w, h) and ``mode`` to ``path``; returns the path."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    if mode == "I;16":
        Image.fromarray(rng.integers(0, 65535, (h, w), dtype=np.uint16)).save(path)
    else:
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).convert(mode).save(path)
    return path


@pytest.fixture
def make_dataset(tmp_path):
    """Build ROOT/<split>/<class>/*.png with random 64 px images; returns the root."""
    def build(classes=("real", "ganA", "ganB"), splits=("train", "val", "test_closed", "test_open"),
              n=6, size=(64, 64), root=None):
        root = root or tmp_path / "ds"
        k = 0
        for split in splits:
            for c in classes:
                for i in range(n):
                    write_image(root / split / c / f"{i:03d}.png", size=size, seed=k)
                    k += 1
        return root
    return build


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from threads, and on a busy shared CPU two threads run ~5x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """torch's hub cache in an empty tmp folder, and a download that fails like a machine offline;
    returns the cache's checkpoints folder."""
    from gfd.models import weights
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def no_network(url, dst):
        raise OSError("[Errno -2] Name or service not known")
    monkeypatch.setattr(weights, "download", no_network)
    return tmp_path / "torch_home" / "hub" / "checkpoints"


def warmed_generator(side: int, num_classes: int = 3):
    """A tiny U-Net G (depth 2, width 8) whose BatchNorm running statistics are non-trivial, so that
    eval mode matters; inputs of ``side`` px."""
    from gfd.models.generator import FingerprintGenerator
    torch.manual_seed(0)
    g = FingerprintGenerator(num_classes=num_classes, depth=2, width=8, max_width=16)
    with torch.no_grad():
        g.train()
        for _ in range(3):
            g(torch.randn(4, 3, side, side) * 2 + 0.5)
    return g
