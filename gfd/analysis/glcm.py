"""GLCM texture correlation of fingerprints (Sec. 4.5, "Qualitative analysis on GAN fingerprints", Fig. 6).

The paper computes, for every extracted fingerprint, the gray-level co-occurrence matrix (GLCM,
Haralick et al. 1973, ref. [11]) at distances ``d in {2, 4, 8, 16}`` and angles
``theta in {0, pi/4, pi/2, 3pi/4}``, takes the texture *correlation* ``C_d,theta`` of each of the 16
matrices, reshapes the 4 x 4 matrix into a vector and reports the mean and variance of that vector
over 1000 fingerprints per GAN (Fig. 6).  This module does exactly that with
:func:`skimage.feature.graycomatrix` / :func:`skimage.feature.graycoprops`, and adds a statistical
check (:func:`glcm_distinctness`) of the paper's claim that "the fingerprints of different GANs have
distinct correlation vectors".

Conventions (all are module constants or arguments):

* **Gray levels.**  A fingerprint ``f`` is a float array ``(3, H, W)`` (values roughly in
  ``[-s, s]``, ``s = fingerprint_scale``).  The paper does not say how the colour residual becomes a
  single-channel image; here the three channels are **averaged with equal weights** (f is a residual
  that G produces alike for R, G and B, not a perceived colour, so luminance weights have no
  meaning; note that a pattern of opposite sign in two channels would cancel in the mean), then the
  image is **min-max scaled per image** to ``levels`` equal-width bins (``GRAY_SCALING = "minmax"``).
  GLCM correlation is, up to quantisation, the Pearson correlation of a pixel with its neighbour, so
  it does not change under an affine change of the gray values: a per-image scaling loses nothing
  and spends all the levels on the range the fingerprint actually uses.  A fixed symmetric scaling
  (``scale=s`` maps ``[-s, s]``, clipped) is offered too, but a trained f often fills only a small
  part of ``[-s, s]`` and would then be quantised to a handful of levels.
* **Number of levels.**  ``DEFAULT_LEVELS = 64``, not 256: graycoprops works on
  ``levels**2 x 16`` float arrays, so 256 levels cost ~20 ms per 48 px image against ~1 ms for 64
  (10 000 fingerprints: ~200 s against ~10 s on 2 cores), and the quantisation noise of 64 equal
  bins over the min-max range (variance ``(range/64)**2 / 12``, well under 0.1 % of the variance of
  a Gaussian-like fingerprint) moves a correlation by a few 1e-3 at most (measured: max 0.0035
  against 256 levels on blurred noise).
* **Offsets.**  skimage's: the neighbour of pixel ``(r, c)`` is
  ``(r + round(d sin theta), c + round(d cos theta))`` in array coordinates (rows go down), so
  ``theta = pi/2`` looks one row *down* and diagonal offsets are rounded (``d = 16`` at ``pi/4`` is
  ``(11, 11)``).  The GLCM is not made symmetric (skimage's default, ``symmetric=False``).
* **Flattening.**  ``(len(distances), len(angles))`` -> 16, **distance-major**:
  index ``i * len(angles) + j`` holds ``(distances[i], angles[j])``; see :func:`feature_names`.
* **Degenerate cases.**  When the reference or the neighbour pixels of an offset have zero variance
  (a constant image, or a pattern constant along that offset's pairs) correlation is ``0/0``; like
  graycoprops, this module returns **1.0** there (a constant signal is perfectly predictable from its
  neighbour), never NaN, so features stay finite.  A fingerprint whose channel mean is constant (to
  ``CONSTANT_ATOL``) becomes an all-zero gray image and thus a feature vector of 16 ones.
* **Size.**  Every side must be larger than the largest distance (> 16 px for the paper's set);
  otherwise an offset has no pixel pairs and a ``ValueError`` names the size.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from skimage.feature import graycomatrix, graycoprops

from gfd.utils import pbar

DISTANCES: tuple[int, ...] = (2, 4, 8, 16)
ANGLES: tuple[float, ...] = (0.0, math.pi / 4, math.pi / 2, 3 * math.pi / 4)
ANGLE_NAMES: tuple[str, ...] = ("0", "pi/4", "pi/2", "3pi/4")
DEFAULT_LEVELS = 64
GRAY_SCALING = "minmax"
CONSTANT_ATOL = 1e-12
CONSTANT_CORRELATION = 1.0  # what graycoprops (and this module) return for a zero-variance offset


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def feature_names(distances=DISTANCES, angles=ANGLES) -> list[str]:
    """Names of the flattened features in order (distance-major): ``"d=2,0"``, ``"d=2,pi/4"``, ..."""
    names = {a: n for a, n in zip(ANGLES, ANGLE_NAMES)}
    return [f"d={d},{names.get(float(a), f'{float(a):.3f}')}" for d in distances for a in angles]


def _check_levels(levels: int) -> None:
    if not 2 <= int(levels) <= 256:
        raise ValueError(f"levels must be in 2..256 (uint8 gray levels), got {levels}")


def _quantise(gray: np.ndarray, levels: int, scale: float | None) -> np.ndarray:
    """Gray images ``(..., H, W)`` float -> uint8 in ``[0, levels)``; the scaling is per image."""
    gray = gray.astype(np.float64, copy=False)
    if scale is None:
        lo = gray.min(axis=(-2, -1), keepdims=True)
        span = gray.max(axis=(-2, -1), keepdims=True) - lo
        constant = span <= CONSTANT_ATOL * np.maximum(1.0, np.abs(lo))
        span = np.where(constant, 1.0, span)
        u = (gray - lo) / span
        u = np.where(constant, 0.0, u)
    else:
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        u = (np.clip(gray, -scale, scale) + scale) / (2 * scale)
    q = np.floor(u * levels)
    return np.clip(q, 0, levels - 1).astype(np.uint8)


def _channel_mean(f: np.ndarray, batched: bool) -> np.ndarray:
    """``(C, H, W)`` -> ``(H, W)`` (or batched ``(N, C, H, W)`` -> ``(N, H, W)``); 2-D passes."""
    core = f.ndim - (1 if batched else 0)
    if core == 3:
        return f.mean(axis=-3, dtype=np.float64)
    if core == 2:
        return f
    raise ValueError(f"expected a fingerprint of shape {'(N, ' if batched else '('}C, H, W) or "
                     f"{'(N, ' if batched else '('}H, W), got shape {tuple(f.shape)}")


def to_gray_levels(f, levels: int = DEFAULT_LEVELS, scale: float | None = None) -> np.ndarray:
    """One fingerprint ``(C, H, W)`` or ``(H, W)`` (tensor or array) -> uint8 gray image ``(H, W)``.

    Channel mean, then ``levels`` equal-width bins: over the image's own ``[min, max]``
    (``scale=None``, the default, see the module docstring) or over the fixed ``[-scale, scale]``
    (values outside are clipped).  A constant image maps to all zeros.
    """
    _check_levels(levels)
    f = _as_numpy(f)
    return _quantise(_channel_mean(f, batched=False), int(levels), scale)


def _check_size(shape: tuple[int, ...], distances) -> None:
    h, w = shape[-2:]
    dmax = int(max(distances))
    if h <= dmax or w <= dmax:
        raise ValueError(f"image of {h}x{w} px is too small for GLCM distance {dmax}: both sides must be "
                         f"larger than the largest distance (> {dmax} px)")


def glcm_correlation(gray, distances=DISTANCES, angles=ANGLES, levels: int = DEFAULT_LEVELS,
                     symmetric: bool = False) -> np.ndarray:
    """GLCM texture correlation of one uint8 gray image ``(H, W)`` -> ``(len(distances), len(angles))``.

    One :func:`graycomatrix` call for all offsets, then ``graycoprops(P, "correlation")``.  Values
    are in ``[-1, 1]``; an offset whose pixel pairs have zero variance gives 1.0 (see module doc).
    Float input is refused (turn fingerprints into gray levels with :func:`to_gray_levels`).
    """
    _check_levels(levels)
    gray = _as_numpy(gray)
    if gray.ndim != 2:
        raise ValueError(f"expected one gray image (H, W), got shape {tuple(gray.shape)}")
    if not np.issubdtype(gray.dtype, np.integer):
        raise ValueError(f"expected integer gray levels (use to_gray_levels), got dtype {gray.dtype}")
    _check_size(gray.shape, distances)
    P = graycomatrix(np.ascontiguousarray(gray, dtype=np.uint8), list(distances), list(angles),
                     levels=int(levels), symmetric=symmetric, normed=False)
    return graycoprops(P, "correlation")


def _gray_batch(fingerprints, levels: int, scale: float | None) -> np.ndarray:
    x = _as_numpy(fingerprints)
    if x.ndim == 3 and x.dtype == np.uint8:  # already gray levels (N, H, W)
        if x.size and int(x.max()) >= levels:
            raise ValueError(f"uint8 gray images hold level {int(x.max())} >= levels={levels}")
        return x
    if x.ndim not in (3, 4):
        raise ValueError(f"expected fingerprints (N, C, H, W) or gray images (N, H, W), got {tuple(x.shape)}")
    return _quantise(_channel_mean(x, batched=True), levels, scale)


def _features_chunk(gray: np.ndarray, distances, angles, levels: int, symmetric: bool) -> np.ndarray:
    out = np.empty((len(gray), len(distances) * len(angles)), dtype=np.float64)
    for i, g in enumerate(gray):
        P = graycomatrix(g, distances, angles, levels=levels, symmetric=symmetric, normed=False)
        out[i] = graycoprops(P, "correlation").reshape(-1)
    return out


def glcm_features(fingerprints, distances=DISTANCES, angles=ANGLES, levels: int = DEFAULT_LEVELS,
                  scale: float | None = None, symmetric: bool = False, workers: int = 1,
                  progress: bool = False) -> np.ndarray:
    """GLCM correlation vectors of N fingerprints -> float64 ``(N, len(distances) * len(angles))``.

    ``fingerprints``: ``(N, C, H, W)`` floats (channel mean + scaling as :func:`to_gray_levels`, done
    vectorised for the whole batch), ``(N, H, W)`` floats (already one channel) or ``(N, H, W)``
    uint8 gray levels (used as they are).  Row ``n`` equals
    ``glcm_correlation(to_gray_levels(fingerprints[n]), ...).reshape(-1)`` (distance-major).
    ``workers > 1`` spreads chunks of 256 over a thread pool; graycoprops is NumPy code that holds
    the GIL part of the time, and on 2 cores this gained nothing measurable (1, the default, does
    10 000 fingerprints of 48 px in ~10 s).  ``progress`` shows a bar over chunks.
    """
    _check_levels(levels)
    levels = int(levels)
    distances = [int(d) for d in distances]
    angles = [float(a) for a in angles]
    gray = np.ascontiguousarray(_gray_batch(fingerprints, levels, scale))
    if len(gray) == 0:
        return np.empty((0, len(distances) * len(angles)), dtype=np.float64)
    _check_size(gray.shape, distances)
    chunk = 256
    starts = list(range(0, len(gray), chunk))

    def run(s: int) -> np.ndarray:
        return _features_chunk(gray[s:s + chunk], distances, angles, levels, symmetric)

    bar = pbar(total=len(gray), enabled=progress, desc="GLCM", unit="img")
    parts = []
    try:
        if workers > 1:
            with ThreadPoolExecutor(max_workers=int(workers)) as pool:
                for s, part in zip(starts, pool.map(run, starts)):
                    parts.append(part)
                    bar.update(len(part))
        else:
            for s in starts:
                parts.append(run(s))
                bar.update(len(parts[-1]))
    finally:
        bar.close()
    return np.concatenate(parts)


@dataclass
class GLCMStats:
    """Per-source mean and variance of the GLCM correlation vectors (what Fig. 6 plots)."""

    classes: np.ndarray  # the label values, sorted, one per row
    count: np.ndarray    # (K,) fingerprints per source
    mean: np.ndarray     # (K, F)
    var: np.ndarray      # (K, F), population variance (ddof=0) unless asked otherwise

    def matrix(self, which: str = "mean", n_distances: int = len(DISTANCES)) -> np.ndarray:
        """``mean`` or ``var`` back as ``(K, len(distances), len(angles))`` (distance-major)."""
        a = getattr(self, which)
        return a.reshape(len(a), n_distances, -1)


def glcm_stats(features, labels, ddof: int = 0) -> GLCMStats:
    """Mean and variance of the feature vectors of each source (label value), as in Fig. 6."""
    x = np.asarray(_as_numpy(features), dtype=np.float64)
    y = np.asarray(_as_numpy(labels)).reshape(-1)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"features (N, F) and labels (N,) do not match: {x.shape} vs {y.shape}")
    classes, inv, count = np.unique(y, return_inverse=True, return_counts=True)
    mean = np.stack([x[inv == k].mean(axis=0) for k in range(len(classes))]) if len(classes) else \
        np.empty((0, x.shape[1]))
    var = np.stack([x[inv == k].var(axis=0, ddof=ddof) if count[k] > ddof else
                    np.full(x.shape[1], np.nan) for k in range(len(classes))]) if len(classes) else \
        np.empty((0, x.shape[1]))
    return GLCMStats(classes=classes, count=count, mean=mean, var=var)


# --------------------------------------------------------------------------------------------------
# Are the sources' GLCM vectors distinct?  Held-out nearest-centroid accuracy + permutation test.
# --------------------------------------------------------------------------------------------------

@dataclass
class Distinctness:
    """Result of :func:`glcm_distinctness`.

    ``accuracy``: mean held-out accuracy of a nearest-centroid classifier over stratified folds;
    ``chance``: the share of the largest source (what guessing it always scores);
    ``p_value``: ``(1 + #{permuted accuracy >= accuracy}) / (1 + n_permutations)``, the labels
    shuffled and the whole cross-validation rerun each time; ``verdict``: ``"distinct"`` when
    ``p_value <= alpha``, else ``"not distinct"``.  Under the null (all sources one process) the
    verdict is wrongly "distinct" with probability ``alpha``.
    """

    accuracy: float
    chance: float
    p_value: float
    verdict: str
    alpha: float
    n_folds: int
    n_permutations: int
    classes: np.ndarray
    null_accuracies: np.ndarray = field(repr=False)

    def __str__(self) -> str:
        return (f"{self.verdict}: held-out nearest-centroid accuracy {self.accuracy:.3f} "
                f"(chance {self.chance:.3f}), permutation p = {self.p_value:.4f} "
                f"({self.n_permutations} permutations, {self.n_folds} folds, alpha {self.alpha})")


def _stratified_folds(y: np.ndarray, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """A fold index per sample: each class shuffled and dealt round-robin over the folds."""
    fold = np.empty(len(y), dtype=np.int64)
    offset = 0
    for k in np.unique(y):
        idx = np.flatnonzero(y == k)
        rng.shuffle(idx)
        fold[idx] = (np.arange(len(idx)) + offset) % n_folds
        offset += len(idx)  # start the next class where this one stopped: balanced fold sizes
    return fold


def _nearest_centroid_cv(x: np.ndarray, y: np.ndarray, fold: np.ndarray, n_folds: int, k: int) -> float:
    """Mean held-out accuracy; features standardised with the training part of each fold.  y in 0..k-1."""
    accs = []
    for i in range(n_folds):
        test = fold == i
        train = ~test
        xt, yt = x[train], y[train]
        mu, sd = xt.mean(axis=0), xt.std(axis=0)
        sd = np.where(sd > 1e-12, sd, 1.0)
        zt = (xt - mu) / sd
        counts = np.bincount(yt, minlength=k).astype(np.float64)
        cent = np.zeros((k, x.shape[1]))
        np.add.at(cent, yt, zt)
        cent /= np.maximum(counts, 1)[:, None]
        zs = (x[test] - mu) / sd
        d2 = (zs**2).sum(1)[:, None] - 2 * zs @ cent.T + (cent**2).sum(1)[None, :]
        d2[:, counts == 0] = np.inf
        accs.append(np.mean(d2.argmin(axis=1) == y[test]))
    return float(np.mean(accs))


def glcm_distinctness(features, labels, seed: int = 0, n_permutations: int = 200, n_folds: int = 5,
                      alpha: float = 0.05) -> Distinctness:
    """Do the sources have distinct GLCM correlation vectors?  (The paper's claim about Fig. 6.)

    A nearest-centroid classifier on standardised features is scored by stratified ``n_folds``-fold
    cross-validation (folds drawn with ``seed``; fewer folds when the smallest source is smaller),
    and the score is compared with ``n_permutations`` reruns on shuffled labels.  Works on any
    ``(N, F)`` feature matrix, not only GLCM vectors.
    """
    x = np.asarray(_as_numpy(features), dtype=np.float64)
    y_raw = np.asarray(_as_numpy(labels)).reshape(-1)
    if x.ndim != 2 or len(x) != len(y_raw):
        raise ValueError(f"features (N, F) and labels (N,) do not match: {x.shape} vs {y_raw.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("features hold NaN or inf")
    classes, y, counts = np.unique(y_raw, return_inverse=True, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"need at least two sources, got {len(classes)}")
    if counts.min() < 2:
        raise ValueError(f"every source needs >= 2 samples for held-out testing; counts {dict(zip(classes.tolist(), counts.tolist()))}")
    n_folds = int(min(n_folds, counts.min()))
    k = len(classes)
    rng = np.random.default_rng(seed)
    acc = _nearest_centroid_cv(x, y, _stratified_folds(y, n_folds, rng), n_folds, k)
    null = np.empty(int(n_permutations))
    for i in range(len(null)):
        yp = rng.permutation(y)
        null[i] = _nearest_centroid_cv(x, yp, _stratified_folds(yp, n_folds, rng), n_folds, k)
    p = float((1 + np.sum(null >= acc - 1e-12)) / (1 + len(null)))
    return Distinctness(accuracy=acc, chance=float(counts.max() / counts.sum()), p_value=p,
                        verdict="distinct" if p <= alpha else "not distinct", alpha=alpha,
                        n_folds=n_folds, n_permutations=len(null), classes=classes, null_accuracies=null)
