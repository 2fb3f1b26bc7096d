"""The networks of Sec. 3.2 -- G (U-Net + head H), D, C, F -- and the pretrained-weights rule."""
import math
import warnings

import pytest
import torch
import torchvision
from torch import nn

from gfd.config import PRESETS, get_config
from gfd.models import weights as W
from gfd.models.classifier import AuxiliaryClassifier, build_classifier
from gfd.models.discriminator import PatchDiscriminator, build_discriminator
from gfd.models.generator import EncoderHead, FingerprintGenerator, build_generator
from gfd.models.perceptual import VGG16_RELUS, PerceptualFeatures, build_perceptual


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_network_has_the_right_shapes_at_every_preset(preset):
    cfg = get_config(preset, classifier_weights="random", perceptual_weights="random")
    x = torch.rand(2, 3, cfg.crop, cfg.crop) * 2 - 1
    k = 5
    with torch.no_grad():
        out = build_generator(cfg, k).eval()(x)
        assert out.fingerprint.shape == x.shape and out.logits.shape == (2, k)
        d = build_discriminator(cfg).eval()(x)
        side = cfg.crop
        for _ in range(cfg.disc_layers):
            side //= 2
        assert d.shape == (2, 1, side - 2, side - 2)          # two stride-1 4x4 convs remove 1 px each
        assert build_classifier(cfg, k).eval()(x).shape == (2, k)
        feats = build_perceptual(cfg)(x)
        assert feats.shape[0] == 2 and feats.shape[1] in (64, 128, 256, 512)


# --- G: the U-Net generator and its head H ----------------------------------------------------------

def small_g(**kw):
    torch.manual_seed(0)
    return FingerprintGenerator(3, **({"depth": 2, "width": 4, "max_width": 16} | kw)).eval()


def test_unet_widths_levels_and_skip_concatenation_shapes():
    g = small_g(depth=3, width=4, max_width=8)
    assert g.widths == [4, 8, 8, 8]
    assert len(g.encoder.levels) == 4 and len(g.decoder.levels) == 3
    # each decoder level reads its up-sampled input concatenated with the skip of its level
    assert [lvl[0].in_channels for lvl in g.decoder.levels] == [16, 16, 8]
    x = torch.rand(2, 3, 24, 24) * 2 - 1
    z, skips = g.encoder(x)
    assert z.shape == (2, 8, 3, 3)
    assert [s.shape[-1] for s in skips] == [24, 12, 6]
    with pytest.raises(ValueError, match="depth must be >= 1"):
        FingerprintGenerator(3, depth=0)


def run_with_skips(g, x, change):
    """G's fingerprint with the encoder's skip features passed through ``change(i, skip)``."""
    def hook(module, inputs, output):
        z, skips = output
        return z, [change(i, s) for i, s in enumerate(skips)]
    handle = g.encoder.register_forward_hook(hook)
    try:
        with torch.no_grad():
            return g(x).fingerprint
    finally:
        handle.remove()


@pytest.mark.parametrize("depth", [1, 3])
def test_unet_output_depends_on_every_skip_connection(depth):
    """Perturbing the skip of any one level (z untouched) changes f: every skip path is used."""
    g = small_g(depth=depth)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    base = run_with_skips(g, x, lambda i, s: s)
    for level in range(depth):
        moved = run_with_skips(g, x, lambda i, s: s + 1.0 if i == level else s)
        assert (moved - base).abs().max() > 1e-4, f"f does not depend on the skip of level {level}"


def test_generator_output_bounds_and_the_encoder_head_path():
    g = small_g(fingerprint_scale=0.25)
    x = torch.rand(3, 3, 20, 20) * 2 - 1       # 20 px: 20 -> 10 -> 5, odd sizes padded back
    with torch.no_grad():
        out = g(x)
        assert out.fingerprint.shape == x.shape and out.fingerprint.abs().max() <= 0.25
        assert out.logits.shape == (3, 3) and out.z.shape == (3, 16, 5, 5)
        # H = global average pool + linear on z; classify() = G_enc + H gives the same logits
        torch.testing.assert_close(out.logits, g.head.fc(out.z.mean(dim=(2, 3))))
        torch.testing.assert_close(g.classify(x), out.logits)
        torch.testing.assert_close(EncoderHead(g)(x), out.logits)
        torch.testing.assert_close(g.fingerprint(x), out.fingerprint)
    # the decoder takes no part in classify(): its weights get no gradient from it
    g.train()
    g.classify(x).sum().backward()
    assert all(p.grad is None for p in g.decoder.parameters())
    assert all(p.grad is not None for p in g.encoder.parameters())


def test_build_generator_follows_the_config():
    cfg = get_config("quick", unet_depth=2, unet_width=6, unet_max_width=8, fingerprint_scale=0.5)
    g = build_generator(cfg, 4)
    assert g.widths == [6, 8, 8] and g.depth == 2 and g.fingerprint_scale == 0.5
    assert g.head.fc.out_features == 4


def test_a_narrower_decoder_keeps_the_encoder_and_the_fingerprint_shape():
    """decoder_width (the course preset's): G_dec's own widths, G_enc and H unchanged; at 0 the U-Net."""
    wide, narrow = small_g(depth=3, width=8, max_width=32), small_g(depth=3, width=8, max_width=32, decoder_width=4)
    assert narrow.widths == wide.widths == [8, 16, 32, 32]
    assert [lvl[-3].out_channels for lvl in narrow.decoder.levels] == [16, 8, 4]      # deep to shallow
    assert [lvl[-3].out_channels for lvl in wide.decoder.levels] == [32, 16, 8]
    # each level still concatenates the encoder's full skip with its own up-sampled channels
    assert [lvl[0].in_channels for lvl in narrow.decoder.levels] == [32 + 16, 16 + 8, 8 + 4]
    assert sum(p.numel() for p in narrow.decoder.parameters()) < sum(p.numel() for p in wide.decoder.parameters()) / 2.5
    x = torch.rand(2, 3, 24, 24) * 2 - 1
    with torch.no_grad():
        assert narrow(x).fingerprint.shape == x.shape
    cfg = get_config("quick", decoder_width=4)
    assert build_generator(cfg, 5).decoder.out.in_channels == 4
    assert build_generator(get_config("quick"), 5).decoder.out.in_channels == get_config("quick").unet_width
    assert get_config("course").decoder_width == 16 and get_config("course").perceptual_layer == "relu1_1"


def receptive_field_rows(d: nn.Module, side: int, row: int) -> tuple[int, int]:
    """First and last input row that output pixel (row, row) of ``d`` depends on."""
    x = torch.randn(1, 3, side, side, requires_grad=True)
    d.eval()(x)[0, 0, row, row].backward()
    rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero().flatten()
    return rows.min().item(), rows.max().item()


def test_patchgan_has_pix2pix_layers_and_a_70px_receptive_field():
    d = PatchDiscriminator(3, width=4, n_layers=3)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]
    assert [c.kernel_size[0] for c in convs] == [4, 4, 4, 4, 4]
    assert [c.out_channels for c in convs] == [4, 8, 16, 32, 1]
    assert [c.bias is not None for c in convs] == [True, False, False, False, True]   # no bias before a norm
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.modules()) == 3   # none after the first conv
    # a patch inside the image: stride 8, offset -23 (padding), 70 px wide
    assert receptive_field_rows(d, 96, 3) == (3 * 8 - 23, 3 * 8 - 23 + 69)
    with pytest.raises(ValueError, match="at least 24 px"):
        d(torch.zeros(1, 3, 16, 16))


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_discriminator_from_a_config_sees_patches_smaller_than_its_crop(preset):
    """The paper's 3 layers (70 px patches) at 224 px; 2 layers (34 px) at the CPU presets' 48 px,
    where 70 px patches would make D judge the whole image at once."""
    cfg = get_config(preset, classifier_weights="random", perceptual_weights="random")
    d = build_discriminator(cfg)
    layers, patch = (3, 70) if preset == "paper" else (2, 34)
    assert cfg.disc_layers == layers
    first, last = receptive_field_rows(d, 128, 4)
    assert last - first + 1 == patch < cfg.crop
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].out_channels == cfg.disc_width and convs[-2].out_channels == 2 ** layers * cfg.disc_width


def test_patchgan_width_is_capped_at_8x_unless_told_otherwise():
    capped = PatchDiscriminator(3, width=2, n_layers=5)
    assert [m.out_channels for m in capped.modules() if isinstance(m, nn.Conv2d)] == [2, 4, 8, 16, 16, 16, 1]
    free = PatchDiscriminator(3, width=2, n_layers=5, max_mult=None)
    assert [m.out_channels for m in free.modules() if isinstance(m, nn.Conv2d)] == [2, 4, 8, 16, 32, 64, 1]


def test_one_patchgan_also_builds_the_plain_benchmark_discriminator():
    """No norm, no stride-1 layer, a 3x3 last conv (the benchmark zoo's D): the patch map is side / 2**n."""
    d = PatchDiscriminator(3, width=8, n_layers=3, norm_layer=None, stride1_layer=False, final_kernel=3,
                           max_mult=None)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1]
    assert [c.kernel_size[0] for c in convs] == [4, 4, 4, 3]
    assert [c.out_channels for c in convs] == [8, 16, 32, 1]
    assert all(c.bias is not None for c in convs)
    assert [type(m) for m in d.net] == [nn.Conv2d, nn.LeakyReLU] * 3 + [nn.Conv2d]
    assert d(torch.zeros(2, 3, 16, 16)).shape == (2, 1, 2, 2)
    assert d.min_input_side() == 8 and d(torch.zeros(1, 3, 8, 8)).shape == (1, 1, 1, 1)
    with pytest.raises(ValueError, match="at least 8 px"):
        d(torch.zeros(1, 3, 7, 7))
    # its receptive field: 4 + 2*(4-1) + 4*(4-1) for the strided convs, + 8*(3-1) for the last one = 38
    first, last = receptive_field_rows(d, 64, 3)
    assert last - first + 1 == 38


@pytest.mark.parametrize("kw", [{}, {"stride1_layer": False}, {"final_kernel": 3},
                                {"stride1_layer": False, "final_kernel": 3}, {"n_layers": 2}])
def test_min_input_side_is_the_smallest_side_with_a_patch(kw):
    d = PatchDiscriminator(3, width=2, norm_layer=None, **kw).eval()
    side = d.min_input_side()
    assert d(torch.zeros(1, 3, side, side)).shape == (1, 1, 1, 1)
    assert d.net(torch.zeros(1, 3, side + 2**d.n_layers, side + 2**d.n_layers)).shape[-1] == 2
    with pytest.raises((ValueError, RuntimeError)):
        d.net(torch.zeros(1, 3, side - 1, side - 1))      # the layers themselves give nothing below it


def test_classifier_normalises_its_minus_one_to_one_input_for_imagenet():
    c = AuxiliaryClassifier("resnet18", 3, "random").eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    mean = torch.tensor(W.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(W.IMAGENET_STD).view(1, 3, 1, 1)
    by_hand = c.backbone(((x + 1) / 2 - mean) / std)
    torch.testing.assert_close(c(x), by_hand)
    assert c.backbone.fc.out_features == 3
    dense = AuxiliaryClassifier("densenet121", 4, "random")
    assert dense.backbone.classifier.out_features == 4
    with pytest.raises(ValueError, match="unknown classifier_arch"):
        AuxiliaryClassifier("vgg11", 3, "random")


def test_perceptual_extractor_is_frozen_in_eval_mode_and_cut_at_its_layer():
    vgg = torchvision.models.vgg16(weights=None).features
    for name, i in VGG16_RELUS.items():
        assert isinstance(vgg[i], nn.ReLU), name
        assert isinstance(vgg[i - 1], nn.Conv2d), name
    f = PerceptualFeatures("relu2_2", "random")
    assert isinstance(f.features[-1], nn.ReLU) and len(f.features) == VGG16_RELUS["relu2_2"] + 1
    assert not any(p.requires_grad for p in f.parameters())
    parent = nn.Sequential(f)
    parent.train()
    assert not f.training
    x = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_()
    f(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0       # gradients reach the input ...
    assert all(p.grad is None for p in f.parameters())          # ... but never F's weights
    by_hand = f.features(((x.detach() + 1) / 2 - torch.tensor(W.IMAGENET_MEAN).view(1, 3, 1, 1))
                         / torch.tensor(W.IMAGENET_STD).view(1, 3, 1, 1))
    torch.testing.assert_close(f(x.detach()), by_hand)
    with pytest.raises(ValueError, match="unknown perceptual_layer"):
        PerceptualFeatures("relu9_9", "random")


# --- the weights rule -------------------------------------------------------------------------------


def test_imagenet_without_cache_or_network_names_the_file_and_the_fix(offline_hub):
    with pytest.raises(W.WeightsUnavailableError) as err:
        W.build_torchvision("resnet18", "imagenet", "C")
    msg = str(err.value)
    assert str(offline_hub / "resnet18-f37072fd.pth") in msg
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in msg
    assert "'random'" in msg and "'auto'" in msg


def test_auto_falls_back_to_random_loudly_and_says_so(offline_hub):
    with pytest.warns(UserWarning, match="RANDOM initialisation"):
        c = AuxiliaryClassifier("resnet18", 3, "auto")
    assert c.weights_used == "random (imagenet unavailable)"


def test_imagenet_is_read_from_the_hub_cache_when_present(offline_hub):
    reference = torchvision.models.resnet18(weights=None)
    offline_hub.mkdir(parents=True)
    torch.save(reference.state_dict(), offline_hub / "resnet18-f37072fd.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model, used = W.build_torchvision("resnet18", "imagenet", "C")
    assert used == "imagenet:IMAGENET1K_V1"
    torch.testing.assert_close(model.conv1.weight, reference.conv1.weight)


def test_weights_from_a_state_dict_file(tmp_path):
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pt"
    torch.save(reference.state_dict(), path)
    c = AuxiliaryClassifier("resnet18", 3, str(path))
    assert c.weights_used == f"file:{path.resolve()}"
    torch.testing.assert_close(c.backbone.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)

    with pytest.raises(W.WeightsFileError, match="does not exist"):
        W.build_torchvision("resnet18", str(tmp_path / "missing.pt"), "C")
    with pytest.raises(W.WeightsFileError, match="do not fit"):
        W.build_torchvision("resnet34", str(path), "C")
    (tmp_path / "junk.pt").write_text("not a state dict")
    with pytest.raises(W.WeightsFileError, match="cannot read"):
        W.build_torchvision("resnet18", str(tmp_path / "junk.pt"), "C")


def test_vgg_from_a_file_keeps_the_file_weights(tmp_path):
    reference = torchvision.models.vgg16(weights=None)
    path = tmp_path / "vgg.pt"
    torch.save(reference.state_dict(), path)
    f = PerceptualFeatures("relu1_2", str(path))
    torch.testing.assert_close(f.features[2].weight, reference.features[2].weight)


def test_densenet_files_with_torchvision_legacy_key_names_load(tmp_path):
    reference = torchvision.models.densenet121(weights=None)
    legacy = {}
    for k, v in reference.state_dict().items():
        legacy[k.replace("denselayer1.norm1.", "denselayer1.norm.1.").replace("denselayer1.conv2.", "denselayer1.conv.2.")] = v
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    torch.save(legacy, tmp_path / "d.pt")
    model, _ = W.build_torchvision("densenet121", str(tmp_path / "d.pt"), "C")
    torch.testing.assert_close(model.features.denseblock1.denselayer1.conv2.weight,
                               reference.features.denseblock1.denselayer1.conv2.weight)


def test_imagenet_input_maps_the_image_range_to_imagenet_statistics():
    norm = W.ImageNetInput()
    white = norm(torch.ones(1, 3, 2, 2))
    for c in range(3):
        assert math.isclose(white[0, c, 0, 0].item(), (1 - W.IMAGENET_MEAN[c]) / W.IMAGENET_STD[c], rel_tol=1e-6)


# --- random weights where ImageNet weights are missing: said once, in one line --------------------

@pytest.mark.parametrize("arch, what, field", [("resnet18", "classifier C (resnet18)", "classifier_weights"),
                                               ("resnet18", "perceptual VGG-16 F", "perceptual_weights")])
def test_random_weights_warning_says_what_is_used_and_how_to_choose(offline_hub, arch, what, field):
    from gfd.models import weights as W
    with pytest.warns(UserWarning) as record:
        _, used = W.build_torchvision(arch, "auto", what)
    msg = str(record[0].message)
    assert used == "random (imagenet unavailable)"
    assert "RANDOM initialisation" in msg and f"{field}='auto'" in msg and f"--set {field}=random" in msg
    assert "python -m gfd weights" in msg and "\n" not in msg and len(msg) < 200          # one short line
    assert "'random' or 'auto'" not in msg
    with pytest.raises(W.WeightsUnavailableError) as err:
        W.build_torchvision(arch, "imagenet", what)
    assert f"{field}='imagenet' was asked for" in str(err.value) and f"--set {field}=random" in str(err.value)


def test_the_random_weights_note_is_said_once_per_process(offline_hub):
    import warnings as w
    from gfd.models import weights as W
    with w.catch_warnings(record=True) as caught:
        w.simplefilter("always")
        for _ in range(3):
            W.build_torchvision("resnet18", "auto", "classifier C (resnet18)")
        W.build_torchvision("vgg16", "auto", "perceptual VGG-16 F")
    notes = [str(c.message) for c in caught if "RANDOM initialisation" in str(c.message)]
    assert len(notes) == 2 and "classifier_weights" in notes[0] and "perceptual_weights" in notes[1]
