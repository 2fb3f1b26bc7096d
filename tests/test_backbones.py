"""G's encoder on a ResNet or DenseNet backbone (Sec. 4.3, Table 3; gfd.models.backbones): the shapes
at the CPU presets' 48 px and the paper's 224 px, the decoder fitted to the backbone's widths, and the
default G unchanged (same parameters, same initial values)."""
import pytest
import torch
from torch import nn

from gfd.config import ENCODER_ARCHS, ENCODER_SIZES, get_config
from gfd.models import backbones
from gfd.models.generator import ClassificationHead, UNetEncoder, build_generator, double_conv
from gfd.utils import seeded

pytestmark = pytest.mark.usefixtures("one_thread")


def test_encoder_names_match_their_home_and_the_encoder_enters_the_key():
    assert ENCODER_ARCHS == backbones.ENCODER_ARCHS and ENCODER_SIZES == backbones.ENCODER_SIZES
    assert (get_config("course").encoder_arch, get_config("course").encoder_size) == ("unet", "small")
    assert get_config("course", encoder_arch="resnet").key() != get_config("course").key()
    assert get_config("course", backbone_width=8).key() != get_config("course").key()
    with pytest.raises(ValueError, match="encoder_arch"):
        get_config("course", encoder_arch="vgg")
    paper = get_config("paper")
    assert (paper.encoder_arch, paper.encoder_size, paper.encoder_weights) == ("unet", "full", "imagenet")


def _generator_as_before(num_classes, depth, width, max_width):
    """G exactly as the U-Net generator was built before backbones existed (module order included)."""
    widths = [min(width * 2**i, max_width) for i in range(depth + 1)]
    g = nn.Module()
    g.encoder = UNetEncoder(3, widths)
    g.decoder = nn.Module()
    g.decoder.ups, g.decoder.levels = nn.ModuleList(), nn.ModuleList()
    for deep, shallow in zip(widths[:0:-1], widths[-2::-1]):
        g.decoder.ups.append(nn.ConvTranspose2d(deep, shallow, 2, stride=2))
        g.decoder.levels.append(double_conv(2 * shallow, shallow))
    g.decoder.out = nn.Conv2d(widths[0], 3, 1)
    g.head = ClassificationHead(widths[-1], num_classes)
    return g


@pytest.mark.parametrize("preset", ["quick", "detect"])
def test_default_generator_is_the_unet_as_before_bit_for_bit(preset):
    cfg = get_config(preset)          # decoder_width 0: the plain U-Net (course's G_dec is narrower)
    with seeded(0, "G"):
        g = build_generator(cfg, 5)
    with seeded(0, "G"):
        ref = _generator_as_before(5, cfg.unet_depth, cfg.unet_width, cfg.unet_max_width)
    new, old = g.state_dict(), ref.state_dict()
    assert list(new) == list(old)
    assert all(torch.equal(new[k], old[k]) for k in old)
    assert g.encoder_arch == "unet" and g.weights_used == "random"


@pytest.mark.parametrize("arch", ["resnet", "densenet"])
def test_small_backbone_encoders_keep_48px_and_feed_the_decoder(arch):
    cfg = get_config("quick", encoder_arch=arch)
    with seeded(0, "G"):
        g = build_generator(cfg, 2)
    with seeded(0, "G"):
        again = build_generator(cfg, 2)                              # the same seed, the same initial G
    assert all(torch.equal(a, b) for a, b in zip(g.state_dict().values(), again.state_dict().values()))
    assert type(g.encoder).__name__ == "BackboneEncoder" and len(g.widths) == cfg.unet_depth + 1
    x = torch.randn(2, 3, 48, 48)
    z, skips = g.encoder(x)
    assert [s.shape[-1] for s in skips] == [48, 24, 12]          # the first stage keeps full resolution
    assert [s.shape[1] for s in skips] + [z.shape[1]] == g.widths and z.shape[-1] == 6
    out = g(x)
    assert out.fingerprint.shape == x.shape and out.logits.shape == (2, 2)
    assert out.fingerprint.abs().max() <= cfg.fingerprint_scale
    assert torch.equal(g.classify(x), out.logits)
    assert g(torch.randn(1, 3, 45, 45)).fingerprint.shape == (1, 3, 45, 45)      # odd sides
    if arch == "resnet":                                         # torchvision's BasicBlock, the U-Net's widths
        from torchvision.models.resnet import BasicBlock
        assert any(isinstance(m, BasicBlock) for m in g.encoder.modules())
        assert g.widths == [16, 32, 64, 128]
    else:
        from torchvision.models.densenet import _DenseBlock
        assert sum(isinstance(m, _DenseBlock) for m in g.encoder.modules()) == cfg.unet_depth + 1
    first = g.encoder.stages[0][0]
    assert first.kernel_size == (3, 3) and first.stride == (1, 1)


@pytest.mark.parametrize("arch,tv", [("resnet", "resnet50"), ("densenet", "densenet121")])
def test_full_backbones_are_torchvisions_at_224px(arch, tv):
    import torchvision
    cfg = get_config("paper", encoder_arch=arch, encoder_weights="random")
    with seeded(0, "G"):
        g = build_generator(cfg, 2).eval()
    ref = torchvision.models.get_model(tv, weights=None)
    n_ref = sum(p.numel() for name, p in ref.named_parameters() if not name.startswith(("fc.", "classifier.")))
    assert sum(p.numel() for p in g.encoder.parameters()) == n_ref     # the whole backbone, its head dropped
    assert g.widths == ([3, 64, 256, 512, 1024, 2048] if arch == "resnet" else [3, 64, 256, 512, 1024, 1024])
    x = torch.rand(1, 3, 224, 224) * 2 - 1
    with torch.no_grad():
        z, skips = g.encoder(x)
        out = g(x)
    assert [s.shape[-1] for s in skips] == [224, 112, 56, 28, 14] and z.shape[-2:] == (7, 7)
    assert torch.equal(skips[0], x)                               # the input is the full-resolution skip
    assert out.fingerprint.shape == x.shape and out.logits.shape == (1, 2)


def test_small_backbones_have_no_imagenet_weights_and_bad_names_fail():
    with pytest.raises(ValueError, match="no pretrained weights"):
        backbones.build_encoder("resnet", "small", weights="imagenet")
    with pytest.raises(ValueError, match="unknown backbone"):
        backbones.build_encoder("vgg")
    with pytest.raises(ValueError, match="encoder_size"):
        backbones.build_encoder("resnet", "huge")


def test_full_backbone_weights_follow_the_weights_rule(offline_hub):
    from gfd.models.weights import WeightsUnavailableError
    with pytest.raises(WeightsUnavailableError, match="encoder_weights|G_enc"):
        backbones.build_encoder("resnet", "full", weights="imagenet")


def test_trainer_records_a_backbone_encoders_weights_and_the_unet_run_stays_as_it_was():
    from gfd.train import Trainer
    base = get_config("quick", ["device=cpu", "num_workers=0", "use_percept=false", "use_D=false"])
    assert "encoder_weights" not in Trainer(base, None, num_classes=2).meta
    tr = Trainer(base.with_(encoder_arch="densenet"), None, num_classes=2)
    assert tr.G.encoder_arch == "densenet" and tr.meta["encoder_weights"] == "random"
