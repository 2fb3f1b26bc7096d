"""Fixtures and helpers for the unit tests (the environment is set in the root conftest.py)."""
import ast
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gfd

torch.set_num_threads(min(2, torch.get_num_threads()))

PACKAGE = Path(gfd.__file__).parent

# The smallest GFD-Net that runs every code path on the CPU in a second: 32 px crops, batch 4, a two-level
# U-Net 4 channels wide, random weights for C (ResNet-18) and F (VGG-16 to relu1_1), 4 GAN steps after 2
# steps of C's pre-training, no evaluation or checkpoint inside the loop.  A test that needs something
# else says so with ``tiny_cfg.with_(...)``.
TINY = dict(crop=32, batch_size=4, unet_depth=2, unet_width=4, unet_max_width=16, disc_width=4,
            classifier_arch="resnet18", classifier_width=4, classifier_weights="random",
            perceptual_weights="random", perceptual_layer="relu1_1", steps=4, c_pretrain_steps=2,
            eval_every=0, ckpt_every=0, num_workers=0, lr=1e-3, device="cpu", seed=0)


@pytest.fixture
def tiny_cfg():
    """The ``quick`` preset shrunk to :data:`TINY`; derive variants with ``tiny_cfg.with_(...)``."""
    from gfd.config import get_config
    return get_config("quick", **TINY)




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


def png_header(width: int, height: int, mode: int = 0, depth: int = 1) -> bytes:
    """A PNG whose header says width x height (its pixel data are a few bytes: never decodable)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, depth, mode, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 8)) + \
        chunk(b"IEND", b"")


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
def dataset(make_dataset):
    """ROOT of a 3-class folder: real, ganA, ganB, 4 random 64 px images per class in each split."""
    return make_dataset(n=4)


@pytest.fixture
def bundle(dataset, tiny_cfg):
    """The loaders of :func:`dataset` under :func:`tiny_cfg`."""
    from gfd.data import get_loaders
    return get_loaders(dataset, tiny_cfg)


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


# --- the package's imports, read from its source --------------------------------------------------------

def module_name(path: Path, package: Path = PACKAGE) -> str:
    """``gfd/models/generator.py`` -> ``gfd.models.generator``; a package's ``__init__.py`` -> the package.
    ``package`` is the folder of ``gfd`` (a copy of it in a test)."""
    parts = path.resolve().relative_to(package.resolve().parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def gfd_modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package (``gfd`` itself included): name -> file."""
    return {module_name(p, package): p for p in sorted(package.rglob("*.py"))}


def imported_modules(path: Path, package: Path = PACKAGE) -> set[str]:
    """Every module the source file ``path`` imports, at module level AND inside functions, classes or
    ``if`` blocks (the whole syntax tree is walked).  ``import a.b`` gives ``a.b``; ``from a import b``
    gives ``a.b`` where that is a gfd module (``from gfd import losses``), else ``a``; relative imports
    are resolved against ``path``'s package."""
    known = set(gfd_modules(package))
    inside = package.resolve() in path.resolve().parents
    here = module_name(path, package) if inside else ""
    base_package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:                                  # from .x import y / from .. import y
                base = base_package.rsplit(".", node.level - 1)[0] if node.level > 1 else base_package
                module = f"{base}.{module}" if module else base
            for a in node.names:
                sub = f"{module}.{a.name}"
                found.add(sub if sub in known else module)
    return found


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """gfd module -> the gfd modules it imports (module-level and function-level imports).  The package
    ``gfd`` itself is left out on both sides: its ``__init__`` only re-exports for the notebooks."""
    files = gfd_modules(package)
    known = set(files) - {"gfd"}
    return {name: imported_modules(path, package) & known - {name} for name, path in files.items() if name != "gfd"}
