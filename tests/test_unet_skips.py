"""G's U-Net skip connections carry the encoder's features: each decoder level reads the encoder's
feature map of its own resolution, and the fingerprint depends on every one of them."""
import pytest
import torch

from gfd.models.generator import FingerprintGenerator


@pytest.mark.parametrize("width, max_width", [(4, 64), (8, 8)])       # widths doubling, and all equal
def test_each_decoder_level_reads_the_encoder_features_of_its_resolution(width, max_width):
    torch.manual_seed(0)
    g = FingerprintGenerator(num_classes=3, depth=3, width=width, max_width=max_width).eval()
    seen_enc, seen_dec = {}, {}
    for i, level in enumerate(g.encoder.levels):
        level.register_forward_hook(lambda m, inp, out, i=i: seen_enc.__setitem__(i, out.detach()))
    for j, level in enumerate(g.decoder.levels):
        level.register_forward_pre_hook(lambda m, inp, j=j: seen_dec.__setitem__(j, inp[0].detach()))
    with torch.no_grad():
        g(torch.randn(2, 3, 32, 32))
    depth = len(g.encoder.levels) - 1
    for j, dec_in in seen_dec.items():
        i = depth - 1 - j                                   # decoder level j works at encoder level i's size
        enc = seen_enc[i]
        assert dec_in.shape[-2:] == enc.shape[-2:]
        blocks = [dec_in[:, k:k + enc.shape[1]] for k in range(dec_in.shape[1] - enc.shape[1] + 1)]
        assert any(torch.equal(b, enc) for b in blocks), f"decoder level {j} does not see encoder level {i}"


def test_the_fingerprint_depends_on_every_skip_feature_map():
    torch.manual_seed(0)
    g = FingerprintGenerator(num_classes=3, depth=3, width=8, max_width=8).eval()   # equal widths
    x = torch.randn(2, 3, 32, 32)
    z, skips = g.encoder(x)
    skips = [s.detach().requires_grad_(True) for s in skips]
    out = g.decoder(z.detach(), skips)
    with torch.no_grad():
        assert torch.allclose(g.fingerprint_scale * torch.tanh(out), g(x).fingerprint)
    out.square().sum().backward()
    for i, s in enumerate(skips):
        assert s.grad is not None and s.grad.abs().sum() > 0, f"skip {i} does not reach the fingerprint"
    # and swapping one level's encoder features for another image's changes the fingerprint
    _, other = g.encoder(torch.randn(2, 3, 32, 32))
    with torch.no_grad():
        base = g.decoder(z, [s.detach() for s in skips])
        for i in range(len(skips)):
            mixed = [o if k == i else s.detach() for k, (s, o) in enumerate(zip(skips, other))]
            assert not torch.equal(g.decoder(z, mixed), base), f"skip {i} is ignored"
