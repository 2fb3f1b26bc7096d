"""The baselines on a tiny synthetic attribution task: 3 sources, each adding its own faint
high-frequency periodic pattern (a stand-in for a GAN's up-sampling fingerprint) to random smooth
content plus sensor-like noise; 32 px PNGs, 30 train / 4 val / 10 test images per source, 24 px crops
(random for training, centre for testing, as in the "mini" transform)."""
import numpy as np
import pytest
import scipy.fft
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from gfd.baselines import BASELINES, attnet, dct, fit_baseline, prnu
from gfd.evaluate import predict
from gfd.baselines.common import deterministic_loader, resolve_options
from gfd.config import get_config
from gfd.data import get_loaders
from gfd.evaluate import evaluate_model

SIZE, CROP, AMP, NOISE = 32, 24, 0.08, 0.04
SOURCES = ["real", "ganA", "ganB"]


def patterns(size):
    """Three mutually orthogonal periodic patterns: checkerboard, period-4 columns, period-2 rows."""
    i, j = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    return [(-1.0) ** (i + j), np.cos(np.pi * j / 2), (-1.0) ** i]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("val", 4), ("test_closed", 10)):
        for k, (name, pat) in enumerate(zip(SOURCES, patterns(SIZE))):
            folder = root / split / name
            folder.mkdir(parents=True)
            for m in range(n):
                low = torch.from_numpy(rng.uniform(-1, 1, (1, 3, 4, 4)))
                content = 0.6 * F.interpolate(low, size=(SIZE, SIZE), mode="bicubic")[0].numpy()
                img = content + AMP * pat[None] + rng.normal(0, NOISE, (3, SIZE, SIZE))
                u8 = np.clip((img + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)
                Image.fromarray(u8).save(folder / f"{m:03d}.png")
    return get_loaders(root, get_config("course"), crop=CROP, batch_size=16, num_workers=0, seed=0)


class Exploding:
    """A loader that fails if anyone iterates it (to prove a split is never read)."""

    def __iter__(self):
        raise AssertionError("a baseline read a split other than train")


class MemoryBundle:
    """Train and val in memory (val is where the training protocol selects); the test splits explode."""

    def __init__(self, x, y, classes):
        self.classes = classes
        self.loaders = {"train": DataLoader(TensorDataset(x, y), batch_size=8),
                        "val": DataLoader(TensorDataset(x[:4], y[:4]), batch_size=8),
                        "test_closed": Exploding(), "test_open": Exploding()}

    def __getitem__(self, split):
        return self.loaders[split]


def closed_acc(model, bundle):
    return evaluate_model(model, bundle)["test_closed"]["acc"]


def closed_acc_by_hand(model, root):
    """Accuracy on test_closed without gfd's loaders: PNGs read with PIL, centre-cropped and scaled
    here, labels from the folder names in SOURCES order."""
    off = (SIZE - CROP) // 2
    hits = total = 0
    for k, name in enumerate(SOURCES):
        for p in sorted((root / "test_closed" / name).glob("*.png")):
            img = np.asarray(Image.open(p), dtype=np.float32)[off:off + CROP, off:off + CROP]
            x = torch.from_numpy(img).permute(2, 0, 1)[None] / 127.5 - 1
            with torch.no_grad():
                hits += int(model(x).argmax(1).item() == k)
            total += 1
    assert total == 30
    return hits / total


# --- each baseline beats chance (1/3) ----------------------------------------------------------------

@pytest.mark.parametrize("name, changes", [
    ("prnu", {}),
    ("prnu", {"denoiser": "gaussian"}),
    ("dct", {"epochs": 30, "batch_size": 16}),
    ("dct", {"epochs": 30, "batch_size": 16, "classifier": "linear"}),
    # the toy's 200 steps are too few for Yu et al.'s beta1 = 0 (see notebook 07): torch's Adam betas here
    ("attnet", {"epochs": 35, "batch_size": 16, "width": 8, "lr": 2e-3, "betas": (0.9, 0.999)}),
])
def test_baseline_beats_chance(bundle, name, changes):
    model = fit_baseline(name, bundle, seed=0, progress=False, **changes)
    acc = closed_acc(model, bundle)
    assert acc >= 0.7, f"{name} {changes}: closed-world accuracy {acc:.3f} (chance 0.333)"
    model.eval()
    assert acc == pytest.approx(closed_acc_by_hand(model, bundle.root))   # measured independently
    labels, scores = predict(model, bundle["test_closed"])
    assert scores.shape == (30, 3) and torch.bincount(labels).tolist() == [10, 10, 10]


# --- PRNU -------------------------------------------------------------------------------------------

def test_prnu_fingerprints_are_class_means_of_centre_crop_residuals(bundle):
    model = prnu.fit(bundle, progress=False)
    ds = bundle.datasets["train"]
    off = (SIZE - CROP) // 2
    images = torch.stack([torch.from_numpy(np.asarray(Image.open(p), dtype=np.float32)).permute(2, 0, 1)
                          for p, _ in ds.samples]) / 127.5 - 1
    images = images[:, :, off:off + CROP, off:off + CROP]
    targets = torch.tensor(ds.targets)
    r = prnu.residuals(images)
    for k in range(3):
        expected = r[targets == k].mean(0)
        assert torch.allclose(model.fingerprints[k], expected, atol=1e-5)
    # the fingerprints are distinct: each correlates best with its own pattern
    pats = torch.tensor(np.stack(patterns(SIZE))[:, off:off + CROP, off:off + CROP], dtype=torch.float32)
    rho = prnu.correlation(model.fingerprints, pats[:, None].expand(-1, 3, -1, -1))
    assert rho.argmax(1).tolist() == [0, 1, 2]


def test_prnu_fit_fingerprints_on_memory_loader_and_correlation():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(12, 3, 16, 16, generator=g) * 2 - 1
    y = torch.tensor([0, 1] * 6)
    opts = prnu.PRNUOptions(denoiser="gaussian", gaussian_sigma=1.5)
    fp = prnu.fit_fingerprints(DataLoader(TensorDataset(x, y), batch_size=5), 2, opts)
    r = prnu.residuals(x, opts)
    assert torch.allclose(fp[0], r[y == 0].mean(0), atol=1e-6)
    assert torch.allclose(fp[1], r[y == 1].mean(0), atol=1e-6)
    rho = prnu.correlation(torch.stack([fp[0], -fp[0], 3 * fp[0] + 1]), fp[:1])
    assert rho.flatten().tolist() == pytest.approx([1.0, -1.0, 1.0], abs=1e-5)
    with pytest.raises(ValueError, match="no training image for class"):
        prnu.fit_fingerprints(DataLoader(TensorDataset(x, torch.zeros(12, dtype=torch.long))), 2, opts)


@pytest.mark.parametrize("denoiser", ["gaussian", "wavelet"])
def test_prnu_correlates_the_residual_not_the_image(denoiser):
    """A known answer: fingerprint 0 is a smooth ramp (no residual), fingerprint 1 a checkerboard.
    An image = strong ramp + faint checkerboard has the checkerboard as its residual, so PRNU must
    say 1 -- while the image itself correlates best with the ramp."""
    i, j = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    ramp = (j / (SIZE - 1) * 2 - 1).float().expand(3, -1, -1)
    checker = ((-1.0) ** (i + j)).float().expand(3, -1, -1)
    model = prnu.PRNU(torch.stack([ramp, checker]), prnu.PRNUOptions(denoiser=denoiser))
    x = (0.8 * ramp + 0.1 * checker)[None]
    rho = model(x)
    assert rho.shape == (1, 2) and rho.argmax(1).item() == 1
    assert rho[0, 1] > 0.9 and abs(rho[0, 0]) < 0.2
    assert prnu.correlation(x, model.fingerprints).argmax(1).item() == 0
    with pytest.raises(ValueError, match="crop the PRNU was fitted on"):
        model(x[..., :16, :16])


def test_correlation_is_pearson_by_hand():
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    b = torch.tensor([[1.0, 3.0, 2.0, 4.0], [4.0, 3.0, 2.0, 1.0]])
    # centred: a = (-1.5, -.5, .5, 1.5), b0 = (-1.5, .5, -.5, 1.5): <a, b0> = 4, |a| |b0| = 5
    assert prnu.correlation(a, b).tolist() == [pytest.approx([0.8, -1.0])]


def test_deterministic_loader_centre_crops_in_order(bundle):
    a = torch.cat([x for x, _ in deterministic_loader(bundle)])
    b = torch.cat([x for x, _ in deterministic_loader(bundle)])
    assert torch.equal(a, b) and a.shape == (90, 3, CROP, CROP)
    assert bundle["train"].dataset.transform is not deterministic_loader(bundle).dataset.transform


# --- DCT -------------------------------------------------------------------------------------------

def test_dct2_matches_scipy():
    x = torch.randn(2, 3, 12, 10, dtype=torch.float64)
    expected = scipy.fft.dctn(x.numpy(), type=2, norm="ortho", axes=(-2, -1))
    assert np.allclose(dct.dct2(x).numpy(), expected, atol=1e-10)


def test_dct_standardisation_uses_training_statistics_only():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(20, 3, 16, 16, generator=g) * 2 - 1
    y = torch.arange(20) % 2
    bundle = MemoryBundle(x, y, ["real", "gan"])  # any read of val/test raises
    with pytest.warns(UserWarning, match="deterministic"):        # statistics over the train loader as it is
        model = dct.fit(bundle, seed=0, progress=False, epochs=1, classifier="linear", device="cpu")
    f = dct.log_dct(x, model.eps).double()
    assert torch.allclose(model.mean.double(), f.mean(0), atol=1e-5)
    assert torch.allclose(model.std.double(), f.std(0), atol=1e-4)
    z = model.features(x)
    assert z.mean(0).abs().max() < 1e-3 and torch.allclose(z.std(0), torch.ones_like(z[0]), atol=1e-3)
    # the statistics are buffers: training the classifier did not move them
    assert not model.mean.requires_grad and "mean" in dict(model.named_buffers())


def test_dct_rejects_wrong_crop():
    model = dct.DCTClassifier(torch.zeros(3, 8, 8), torch.ones(3, 8, 8), 2)
    with pytest.raises(ValueError, match="crop the model was fitted on"):
        model(torch.zeros(1, 3, 16, 16))


# --- AttNet ------------------------------------------------------------------------------------------

def test_attnet_shape_and_reads_train_only():
    net = attnet.AttNet(5, 48, width=8, max_width=32)
    assert net(torch.zeros(2, 3, 48, 48)).shape == (2, 5)
    pools = [m for m in net.modules() if isinstance(m, torch.nn.AvgPool2d)]
    assert len(pools) == 3  # 48 -> 24 -> 12 -> 6
    with pytest.raises(ValueError, match="48 px crops"):
        net(torch.zeros(1, 3, 32, 32))
    x, y = torch.rand(8, 3, 16, 16) * 2 - 1, torch.arange(8) % 2
    model = attnet.fit(MemoryBundle(x, y, ["real", "gan"]), epochs=2, width=4, progress=False, device="cpu")
    assert model(x).shape == (8, 2)


def test_prnu_reads_train_only():
    x, y = torch.rand(8, 3, 16, 16) * 2 - 1, torch.arange(8) % 2
    with pytest.warns(UserWarning, match="deterministic"):
        model = prnu.fit(MemoryBundle(x, y, ["real", "gan"]), progress=False, denoiser="gaussian")
    assert model.fingerprints.shape == (2, 3, 16, 16)


# --- options -------------------------------------------------------------------------------------------

def test_options_from_config_dict_and_errors():
    cfg = get_config("quick", device="cpu", eval_every=7, patience=5, lr=0.5)
    opts = resolve_options(dct.DCTOptions, cfg)        # the protocol from the config, the recipe its own
    assert (opts.eval_every, opts.patience, opts.select, opts.device) == (7, 5, cfg.select, "cpu")
    assert (opts.lr, opts.batch_size, opts.betas) == (1e-3, 32, (0.9, 0.999))     # Frank et al.'s Adam
    assert resolve_options(attnet.AttNetOptions, cfg).betas == (0.0, 0.99)       # Yu et al.'s Adam
    assert resolve_options(dct.DCTOptions, cfg, epochs=7).epochs == 7
    assert resolve_options(attnet.AttNetOptions, {"width": 4}).width == 4
    with pytest.raises(KeyError, match="unknown DCTOptions option"):
        resolve_options(dct.DCTOptions, None, widht=3)
    with pytest.raises(ValueError, match="unknown PRNU denoiser"):
        prnu.PRNUOptions(denoiser="bm3d")
    with pytest.raises(KeyError, match="unknown baseline"):
        fit_baseline("xception", None)
    assert set(BASELINES) == {"prnu", "dct", "attnet", "cnndetect", "patchforensics", "resnet",   # Tables 1 and 3
                              "densenet"}
