"""The attribution baselines of Sec. 4.1 / Tables 1-2, re-implemented small, on the same data and
evaluated by the same :mod:`gfd.evaluate`:

``prnu``    Marra et al. 2019: averaged noise residuals, attribution by correlation   (ref. [25])
``dct``     Frank et al. 2020: standardised log-DCT spectrum + a classifier         (ref. [10])
``attnet``  Yu et al. 2019: ProGAN-discriminator-like CNN                            (ref. [33])

and the detectors of Sec. 4.3 / Table 3 (binary real / fake, :mod:`gfd.detection`):

``cnndetect``       Wang et al. 2020: a ResNet binary classifier, blur+JPEG optional      (ref. [32])
``patchforensics``  Chai et al. 2020: truncated backbone, per-patch 1x1 head, averaged    (ref. [3])
``resnet``          plain ResNet: G_enc + H of GFD-Net (ResNet), cross-entropy only     (backbone.py)
``densenet``        plain DenseNet (Huang et al., ref. [13]): G_enc + H of GFD-Net (DenseNet)

Each module offers ``fit(bundle, options=None, seed=0, progress=True, **changes) -> model``;
``model(x)`` gives (B, K) scores, measured by :func:`gfd.evaluate.predict` like every other model.
The direct classifier (G-only of Table 4) is a GFD-Net configuration trained by :mod:`gfd.train`.

    >>> model = fit_baseline("dct", bundle, seed=0, steps=200)      # doctest: +SKIP
    >>> gfd.evaluate.evaluate_model(model, bundle)                   # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any

from torch import nn

from gfd.baselines import attnet, backbone, cnndetect, dct, patchforensics, prnu

BASELINES = {"prnu": prnu, "dct": dct, "attnet": attnet, "cnndetect": cnndetect, "patchforensics": patchforensics,
             "resnet": backbone.resnet, "densenet": backbone.densenet}
"""name -> module (or, for the plain backbones, one row of :mod:`~gfd.baselines.backbone`); names as in
the paper's tables: PRNU, DCT, AttNet, CNNDetect, PatchForensics, DenseNet (and ResNet, ours)."""
OPTIONS = {"prnu": prnu.PRNUOptions, "dct": dct.DCTOptions, "attnet": attnet.AttNetOptions,
           "cnndetect": cnndetect.CNNDetectOptions, "patchforensics": patchforensics.PatchForensicsOptions,
           "resnet": backbone.ResNetOptions, "densenet": backbone.DenseNetOptions}
"""name -> the options dataclass its ``fit`` resolves: each baseline's knobs and defaults, in one place
(the fields it takes from a ``Config`` are listed in its ``FROM_CONFIG``)."""
TABLE_NAMES = {"PRNU": "prnu", "DCT": "dct", "AttNet": "attnet", "CNNDetect": "cnndetect",
               "PatchForensics": "patchforensics", "ResNet": "resnet", "DenseNet": "densenet"}
"""The paper's row name -> baseline name."""
DETERMINISTIC = frozenset({"prnu"})
"""Baselines with no randomness at all: every seed gives the same model (tables say so)."""


def fit_baseline(name: str, bundle: Any, options: Any = None, seed: int = 0, progress: bool = True,
                 **changes: Any) -> nn.Module:
    """``BASELINES[name].fit(...)`` with a clear error for an unknown name."""
    key = name.lower()
    if key not in BASELINES:
        raise KeyError(f"unknown baseline {name!r}; choose one of {sorted(BASELINES)}")
    return BASELINES[key].fit(bundle, options, seed=seed, progress=progress, **changes)


__all__ = ["BASELINES", "OPTIONS", "TABLE_NAMES", "DETERMINISTIC", "fit_baseline", "prnu", "dct", "attnet", "cnndetect",
           "patchforensics", "backbone"]
