"""The losses of GFD-Net, one function per equation of Sec. 3.3-3.4.  No state, no networks.

Notation: ``x`` is an input image with source ``y``; ``f = G(x)`` its fingerprint;
``x_fp = x_real + f`` the fingerprinted image built on a randomly drawn real image ``x_real``.

Pairing (Eq. 1): the equation is printed as ``x_fp = x_y + f``, but the sentence introducing it
("we add it on a randomly selected real image x_real") and Fig. 2 add f to a *real* image; Eq. 5
compares x_fp with "the corresponding real image".  We follow the text: ``x_fp = x_real + f``
(see :func:`fingerprinted`).

Every function takes network outputs (logits, feature maps), so each can be checked by hand on
tiny tensors.  Means are over the batch (and over patches / feature elements where stated).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; training stopped before any weight was touched by it."""


def fingerprinted(x_real: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Eq. 1 as the text describes it: ``x_fp = x_real + f`` (not ``x_y + f`` as printed), clamped to
    the image range [-1, 1].  Unclamped, pixels reach [-2, 2], which no real image has: a free cue
    for D, and not the image the figures show.  (The paper does not say; clamping is our choice.
    Where a pixel is clamped, G gets no gradient through it.)"""
    return (x_real + f).clamp(-1.0, 1.0)


def cls_g(c_logits_fp: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. 2, L_cls^G = CE(C(x_fp), y): C must see the *fingerprinted* image, so G gets a gradient."""
    return F.cross_entropy(c_logits_fp, y)


def cls_c(c_logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. 3, L_cls^C = CE(C(x_y), y): C trained on the input images (before and during training)."""
    return F.cross_entropy(c_logits, y)


def adv_d(d_logits_x: torch.Tensor, d_logits_fp: torch.Tensor) -> torch.Tensor:
    """Eq. 4 (discriminator), as binary cross-entropy on D's patch logits.

    Eq. 4 writes L_adv^D = E[log(1 - D(x_fp))] + E[log D(x)] and says D is trained "by minimizing"
    it; read with D a probability, D *maximises* that sum (the GAN value), i.e. minimises its
    negative, which is exactly the BCE with target 1 for the input images x and 0 for x_fp:

        L_adv^D = BCE(D(x), 1) + BCE(D(x_fp), 0) = -E[log D(x)] - E[log(1 - D(x_fp))]

    The two terms are summed (not averaged), as in Eq. 4; each is a mean over images and patches.
    D's positives are the *input* images x (Sec. 3.2: "classify the input image x as real").
    """
    real = F.binary_cross_entropy_with_logits(d_logits_x, torch.ones_like(d_logits_x))
    fake = F.binary_cross_entropy_with_logits(d_logits_fp, torch.zeros_like(d_logits_fp))
    return real + fake


def adv_g(d_logits_fp: torch.Tensor) -> torch.Tensor:
    """Eq. 4 (generator), non-saturating: L_adv^G = BCE(D(x_fp), 1) = -E[log D(x_fp)].

    Eq. 4 writes L_adv^G = E[log D(x_fp)], the quantity G wants *large* (fool D); minimising its
    negative is the non-saturating generator loss of Goodfellow et al., which keeps a useful
    gradient while D is winning, unlike minimising E[log(1 - D(x_fp))].
    """
    return F.binary_cross_entropy_with_logits(d_logits_fp, torch.ones_like(d_logits_fp))


def percept(feat_fp: torch.Tensor, feat_real: torch.Tensor) -> torch.Tensor:
    """Eq. 5, L_percept = ||F(x_fp) - F(x_real)||_2, the feature reconstruction loss of ref. [16].

    As in Johnson et al., the l2 distance is squared and normalised by the feature map size
    (C * H * W), then averaged over the batch: the mean squared difference of the features.
    ``feat_real`` needs no gradient (x_real is data).
    """
    return F.mse_loss(feat_fp, feat_real)


def latent_cls(h_logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. 6, L_z = CE(H(z), y): the head H on G_enc's latent code predicts the source."""
    return F.cross_entropy(h_logits, y)


def generator_objective(terms: dict[str, torch.Tensor], w1: float, w2: float, w3: float,
                        w4: float) -> torch.Tensor:
    """Eq. 7, L_G = w1 L_z + w2 L_adv^G + w3 L_cls^G + w4 L_percept.

    ``terms`` maps ``"L_z"``, ``"L_adv_G"``, ``"L_cls_G"``, ``"L_percept"`` to their values; a term
    switched off by an ablation (Table 4) is simply absent.  ``L_z`` is always required.
    Paper weights: 10, 0.1, 1, 1 (attribution); 10, 0.01, 1, 1 (detection).
    """
    weights = {"L_z": w1, "L_adv_G": w2, "L_cls_G": w3, "L_percept": w4}
    unknown = set(terms) - set(weights)
    if unknown or "L_z" not in terms:
        raise KeyError(f"generator terms must include 'L_z' and only {sorted(weights)}; got {sorted(terms)}")
    return sum(weights[name] * value for name, value in terms.items())


def dc_objective(terms: dict[str, torch.Tensor]) -> torch.Tensor:
    """Eq. 8, L_{D,C} = L_cls^C + L_adv^D (unweighted); an ablated network's term is absent."""
    unknown = set(terms) - {"L_cls_C", "L_adv_D"}
    if unknown or not terms:
        raise KeyError(f"D/C terms must be a non-empty subset of ['L_adv_D', 'L_cls_C']; got {sorted(terms)}")
    return sum(terms.values())
