"""Each loss of Sec. 3.3-3.4 against a computation by hand on tiny tensors."""
import math

import pytest
import torch

from gfd import losses


def log_softmax_by_hand(row, k):
    return row[k] - math.log(sum(math.exp(v) for v in row))


def sigmoid(v):
    return 1 / (1 + math.exp(-v))


LOGITS = [[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]]
LABELS = [0, 2]
CE_BY_HAND = -(log_softmax_by_hand(LOGITS[0], 0) + log_softmax_by_hand(LOGITS[1], 2)) / 2


@pytest.mark.parametrize("fn", [losses.cls_g, losses.cls_c, losses.latent_cls])
def test_cross_entropy_terms_eq2_eq3_eq6(fn):
    value = fn(torch.tensor(LOGITS), torch.tensor(LABELS))
    assert math.isclose(value.item(), CE_BY_HAND, rel_tol=1e-6)


def test_adversarial_d_loss_eq4_is_minus_the_gan_value():
    d_x = torch.tensor([[[[1.5, -0.5]]], [[[0.0, 2.0]]]])      # (B=2, 1, 1, 2 patches)
    d_fp = torch.tensor([[[[-1.0, 0.3]]], [[[0.7, -2.0]]]])
    real = -sum(math.log(sigmoid(v)) for v in [1.5, -0.5, 0.0, 2.0]) / 4
    fake = -sum(math.log(1 - sigmoid(v)) for v in [-1.0, 0.3, 0.7, -2.0]) / 4
    assert math.isclose(losses.adv_d(d_x, d_fp).item(), real + fake, rel_tol=1e-6)
    # the sign convention: D minimises -(E[log D(x)] + E[log(1 - D(x_fp))]) of Eq. 4
    gan_value = (torch.log(torch.sigmoid(d_x)).mean() + torch.log(1 - torch.sigmoid(d_fp)).mean()).item()
    assert math.isclose(losses.adv_d(d_x, d_fp).item(), -gan_value, rel_tol=1e-6)


def test_adversarial_g_loss_eq4_is_non_saturating():
    d_fp = torch.tensor([[[[-1.0, 0.3]]], [[[0.7, -2.0]]]], requires_grad=True)
    by_hand = -sum(math.log(sigmoid(v)) for v in [-1.0, 0.3, 0.7, -2.0]) / 4
    value = losses.adv_g(d_fp)
    assert math.isclose(value.item(), by_hand, rel_tol=1e-6)
    value.backward()
    # non-saturating: where D is sure x_fp is fake (logit -2), G still gets a large gradient
    assert abs(d_fp.grad[1, 0, 0, 1].item()) > abs(d_fp.grad[0, 0, 0, 1].item())
    assert math.isclose(d_fp.grad[1, 0, 0, 1].item(), -(1 - sigmoid(-2.0)) / 4, rel_tol=1e-5)


def test_perceptual_loss_eq5_is_the_mean_squared_feature_distance():
    a = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])              # (1, 1, 2, 2) feature maps
    b = torch.tensor([[[[1.5, 2.0], [1.0, 4.0]]]])
    by_hand = (0.5**2 + 0 + 2.0**2 + 0) / 4                      # ||.||_2^2 / (C H W), batch of 1
    assert math.isclose(losses.percept(a, b).item(), by_hand, rel_tol=1e-6)
    # squared, not absolute or root: a uniform shift of 3 costs 9, whatever the map's size
    assert losses.percept(a, a + 3).item() == pytest.approx(9.0)
    assert losses.percept(torch.zeros(2, 4, 3, 5), torch.full((2, 4, 3, 5), -3.0)).item() == pytest.approx(9.0)
    # a mean over the batch: one image off by 2, one exact -> (4 + 0) / 2
    two = torch.zeros(2, 1, 2, 2)
    shifted = two.clone()
    shifted[0] += 2
    assert losses.percept(shifted, two).item() == pytest.approx(2.0)
    # the gradient goes to F(x_fp) only; F(x_real) is data
    fp = a.clone().requires_grad_()
    losses.percept(fp, b).backward()
    torch.testing.assert_close(fp.grad, 2 * (a - b) / a.numel())


def test_eq1_pairs_the_fingerprint_with_the_real_image():
    x_real, f = torch.full((1, 3, 2, 2), 0.25), torch.full((1, 3, 2, 2), -0.5)
    assert torch.equal(losses.fingerprinted(x_real, f), torch.full((1, 3, 2, 2), -0.25))


def test_generator_objective_eq7_weights_the_terms():
    terms = {"L_z": torch.tensor(0.7), "L_adv_G": torch.tensor(2.0),
             "L_cls_G": torch.tensor(1.1), "L_percept": torch.tensor(0.3)}
    # four distinct weights, so that swapping any two of them changes the value
    value = losses.generator_objective(terms, 10, 0.1, 2.0, 0.5)
    assert math.isclose(value.item(), 10 * 0.7 + 0.1 * 2.0 + 2.0 * 1.1 + 0.5 * 0.3, rel_tol=1e-6)
    for name, w in (("L_z", 10), ("L_adv_G", 0.1), ("L_cls_G", 2.0), ("L_percept", 0.5)):
        one = {"L_z": torch.tensor(0.0), name: torch.tensor(1.0)}
        assert math.isclose(losses.generator_objective(one, 10, 0.1, 2.0, 0.5).item(), w, rel_tol=1e-6), name
    g_only = losses.generator_objective({"L_z": torch.tensor(0.7)}, 10, 0.1, 2.0, 0.5)
    assert math.isclose(g_only.item(), 7.0, rel_tol=1e-6)
    # an ablated term is simply absent (Table 4)
    no_d = {k: v for k, v in terms.items() if k != "L_adv_G"}
    assert math.isclose(losses.generator_objective(no_d, 10, 0.1, 2.0, 0.5).item(), 7.0 + 2.2 + 0.15, rel_tol=1e-6)
    with pytest.raises(KeyError, match="must include 'L_z'.*got \\['L_adv_G'\\]"):
        losses.generator_objective({"L_adv_G": torch.tensor(1.0)}, 10, 0.1, 1, 1)
    with pytest.raises(KeyError, match="generator terms must include 'L_z' and only"):
        losses.generator_objective({"L_z": torch.tensor(1.0), "L_typo": torch.tensor(1.0)}, 1, 1, 1, 1)


def test_dc_objective_eq8_sums_the_terms():
    value = losses.dc_objective({"L_cls_C": torch.tensor(0.4), "L_adv_D": torch.tensor(1.3)})
    assert math.isclose(value.item(), 1.7, rel_tol=1e-6)
    assert losses.dc_objective({"L_adv_D": torch.tensor(1.3)}).item() == pytest.approx(1.3)
    with pytest.raises(KeyError, match="non-empty subset"):
        losses.dc_objective({})
    with pytest.raises(KeyError, match=r"non-empty subset of \['L_adv_D', 'L_cls_C'\]; got \['L_adv_D', 'L_typo'\]"):
        losses.dc_objective({"L_adv_D": torch.tensor(1.3), "L_typo": torch.tensor(1.0)})


def test_fingerprinted_image_is_clamped_to_the_image_range_at_both_ends():
    """x_fp = x_real + f stays in [-1, 1] (no pixel D could tell by its range alone), and only the
    pixels outside it change."""
    x_real = torch.tensor([[[[-0.9, 0.9], [0.2, -0.2]]]])
    f = torch.tensor([[[[-0.5, 0.5], [0.3, -0.3]]]])
    out = losses.fingerprinted(x_real, f)
    torch.testing.assert_close(out, torch.tensor([[[[-1.0, 1.0], [0.5, -0.5]]]]))
