"""Receptive fields: the measured window agrees with the analytic one, and a clipped one is refused."""
import pytest
import torch
from torch import nn

from gfd.analysis.receptive import analytic_receptive_field, receptive_field
from gfd.models.generator import UNetEncoder


def pix2pix_like() -> nn.Sequential:
    """3 stride-2 4x4 convolutions, then two stride-1 ones: pix2pix's 70x70 PatchGAN."""
    layers, ch = [], 3
    for out, stride in ((8, 2), (16, 2), (32, 2), (32, 1), (1, 1)):
        layers += [nn.Conv2d(ch, out, 4, stride=stride, padding=1), nn.LeakyReLU(0.2)]
        ch = out
    return nn.Sequential(*layers[:-1])


def encoder_layers(enc: UNetEncoder) -> list[nn.Module]:
    out = []
    for i, level in enumerate(enc.levels):
        out += ([enc.pool] if i else []) + [level]
    return out


def test_analytic_field_of_known_chains():
    assert analytic_receptive_field([nn.Conv2d(3, 3, 3)]) == 3
    assert analytic_receptive_field([nn.Conv2d(3, 3, 3, dilation=2)]) == 5
    assert analytic_receptive_field([pix2pix_like()]) == 70
    for depth in (1, 2, 3):
        enc = UNetEncoder(3, [4 * 2 ** i for i in range(depth + 1)])
        # two 3x3 convs per level add 4 * 2^i, each pool before level i + 1 adds 2^i: 9 * 2^d - 4
        assert analytic_receptive_field(encoder_layers(enc)) == 9 * 2 ** depth - 4
    with pytest.raises(ValueError, match="up-samples"):
        analytic_receptive_field([nn.ConvTranspose2d(3, 3, 2, stride=2)])


@pytest.mark.parametrize("depth", [2, 3])
def test_measured_field_of_the_unet_encoder_is_the_analytic_one(depth):
    torch.manual_seed(0)
    enc = UNetEncoder(3, [4 * 2 ** i for i in range(depth + 1)]).eval()
    analytic = analytic_receptive_field(encoder_layers(enc))
    assert receptive_field(lambda t: enc(t)[0], size=2 * analytic) == analytic


def test_measured_field_of_a_patchgan():
    assert receptive_field(pix2pix_like().eval(), size=128) == 70


def test_a_window_clipped_by_the_input_is_refused():
    enc = UNetEncoder(3, [4, 8, 16, 32]).eval()           # field 68 px
    with pytest.raises(ValueError, match="border of the 48 px input"):
        receptive_field(lambda t: enc(t)[0], size=48)
    assert receptive_field(lambda t: enc(t)[0], size=48, allow_clipped=True) == 48


def test_measuring_leaves_the_global_random_stream_alone():
    conv = nn.Conv2d(3, 1, 3)
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    assert receptive_field(conv, size=16) == 3
    assert torch.equal(torch.rand(3), expected)


def test_patchforensics_field_is_the_analytic_walk_and_agrees_with_the_measured_one():
    """PatchForensics' patch size comes from :func:`analytic_receptive_field` over its widest path
    (stem, block bodies, head); the measured window of a patch logit is the same."""
    from gfd.baselines.patchforensics import PatchForensics

    for blocks, downsample, side in ((3, 1, 25), (2, 1, 17), (4, 2, 53)):
        model = PatchForensics(2, width=4, blocks=blocks, downsample=downsample).eval()
        assert model.receptive_field == side
        assert receptive_field(model.patch_logits, size=4 * side) == side
