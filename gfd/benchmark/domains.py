"""Procedural "real" image domains A and B of the mini benchmark (the roles of CelebA and LSUN, Sec. 4.2.1).

The paper trains the same GAN architectures on two datasets (CelebA, LSUN bedroom) and tests
attribution across them (Fig. 3(a)).  Neither can be downloaded here, so two content domains are
drawn procedurally, with no download:

* **dead leaves** (Lee, Mumford & Huang 2001): opaque shapes with a power-law size distribution
  occlude each other.  Their images share the statistics that matter for fingerprints with
  photographs: a ~1/f^2 power spectrum, sharp occlusion edges between flat regions.  Shapes are
  drawn by PIL at 4x the resolution, shaded with a smooth illumination gradient, then reduced with
  an area filter (the anti-aliasing of a camera) and given a little sensor noise.
* **photo crops** (30%): random crops, at a random scale, of colour photographs that scikit-image
  ships (the textured content that dead leaves lack).

A :class:`Domain` says which shapes, hues and photos are used.  Three domains, fixed a priori by
one rule -- *pairwise disjoint in shapes, hue ranges and photos* -- and never changed after seeing
an accuracy (experiment protocol, rule 1; the previous version chose the split from an open-world
accuracy, which tuned the benchmark on its test set, and was removed):

* ``DOMAIN_A`` (closed world, plays CelebA): disks and ellipses, warm hues 0.95-0.20,
  astronaut / chelsea / coffee photos;
* ``DOMAIN_B1`` (open world 1, plays LSUN): rectangles, green-cyan hues 0.30-0.55,
  rocket / hubble_deep_field photos;
* ``DOMAIN_B2`` (open world 2): triangles, blue-purple hues 0.60-0.85, immunohistochemistry /
  retina photos.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from matplotlib.colors import hsv_to_rgb
from PIL import Image, ImageDraw

SUPERSAMPLE = 4  # shapes are drawn at this multiple of the image side, then area-reduced


@dataclass(frozen=True)
class Domain:
    """Parameters of one content domain (all of them enter the benchmark's cache key)."""

    name: str
    shapes: tuple[str, ...]            # drawn from uniformly: "disk", "ellipse", "rect", "triangle"
    hue: tuple[float, float]           # hue range in [0, 1] (wraps around 1)
    saturation: tuple[float, float]
    value: tuple[float, float]
    photos: tuple[str, ...]            # scikit-image sample names used for photo crops
    photo_fraction: float = 0.3        # share of images that are photo crops
    n_shapes: int = 250                # shapes per dead-leaves image
    r_min: float = 0.02                # radius range, as a fraction of the image side
    r_max: float = 0.5
    size_power: float = 2.5            # r = r_min + (r_max - r_min) * u**size_power
    noise: float = 1.5                 # sensor noise std, in 8-bit levels

    def to_dict(self) -> dict:
        return asdict(self)


DOMAIN_A = Domain(
    name="A", shapes=("disk", "ellipse"), hue=(0.95, 0.20), saturation=(0.2, 0.8), value=(0.3, 1.0),
    photos=("astronaut", "chelsea", "coffee"),
)
DOMAIN_B1 = Domain(
    name="B1", shapes=("rect",), hue=(0.30, 0.55), saturation=(0.1, 0.7),
    value=(0.2, 0.95), photos=("rocket", "hubble_deep_field"),
)
DOMAIN_B2 = Domain(
    name="B2", shapes=("triangle",), hue=(0.60, 0.85), saturation=(0.15, 0.75),
    value=(0.25, 0.95), photos=("immunohistochemistry", "retina"),
)
DOMAIN_B = DOMAIN_B1  # the first open domain (name kept for older code)
DOMAINS = {"A": DOMAIN_A, "B1": DOMAIN_B1, "B2": DOMAIN_B2}


def hue_ranges_overlap(a: Domain, b: Domain, steps: int = 3600) -> bool:
    """Whether the (wrapping) hue ranges of two domains share a hue."""
    grid = np.arange(steps) / steps

    def inside(d: Domain) -> np.ndarray:
        lo, hi = d.hue
        return ((grid - lo) % 1.0) <= ((hi - lo) % 1.0)

    return bool(np.any(inside(a) & inside(b)))


def disjoint(a: Domain, b: Domain) -> bool:
    """The rule the domains are fixed by: no shared shape, hue or photo."""
    return not (set(a.shapes) & set(b.shapes) or set(a.photos) & set(b.photos) or hue_ranges_overlap(a, b))


def _hues(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    """``n`` hues in [lo, hi], wrapping around 1 when lo > hi (e.g. reds: 0.95 -> 0.20)."""
    return (lo + ((hi - lo) % 1.0) * rng.random(n)) % 1.0


def _colours(rng: np.random.Generator, d: Domain, n: int) -> np.ndarray:
    """``n`` RGB colours (n, 3) uint8 drawn from the domain's HSV box."""
    hsv = np.stack([_hues(rng, *d.hue, n), rng.uniform(*d.saturation, n), rng.uniform(*d.value, n)], axis=1)
    return (255 * hsv_to_rgb(hsv)).astype(np.uint8)


# unit outlines (x, y) of the polygon shapes, before scaling by (r, r * aspect) and rotation
_OUTLINES = {
    "ellipse": (np.cos(np.linspace(0, 2 * np.pi, 24, endpoint=False)),
                np.sin(np.linspace(0, 2 * np.pi, 24, endpoint=False))),
    "rect": (np.array([-1.0, 1.0, 1.0, -1.0]), np.array([-1.0, -1.0, 1.0, 1.0])),
    "triangle": (np.cos(np.array([0.0, 2.1, 4.2])), np.sin(np.array([0.0, 2.1, 4.2]))),
}


def dead_leaves(rng: np.random.Generator, d: Domain, size: int) -> np.ndarray:
    """One dead-leaves image (H, W, 3) float in [0, 255], before noise and quantisation."""
    unknown = set(d.shapes) - set(_OUTLINES) - {"disk"}
    if unknown:
        raise ValueError(f"domain {d.name}: unknown shape(s) {sorted(unknown)}; use disk, {', '.join(_OUTLINES)}")
    big, n = size * SUPERSAMPLE, d.n_shapes
    r = big * (d.r_min + (d.r_max - d.r_min) * rng.random(n) ** d.size_power)
    cx, cy = rng.uniform(-0.1, 1.1, (2, n)) * big
    kinds = rng.integers(len(d.shapes), size=n)
    aspect = rng.uniform(0.25, 1.0, n)
    angle = rng.uniform(0, np.pi, n)
    colours = [tuple(c) for c in _colours(rng, d, n + 1).tolist()]
    outlines = {}  # shape index -> flat vertex list, computed per kind in one vectorised step
    for k, kind in enumerate(d.shapes):
        idx = np.flatnonzero(kinds == k)
        if kind == "disk" or not len(idx):
            continue
        ux, uy = _OUTLINES[kind]
        x, y = r[idx, None] * ux, (r * aspect)[idx, None] * uy
        c, s = np.cos(angle[idx, None]), np.sin(angle[idx, None])
        pts = np.stack([cx[idx, None] + c * x - s * y, cy[idx, None] + s * x + c * y], axis=2)
        outlines.update(zip(idx.tolist(), pts.reshape(len(idx), -1).tolist()))
    img = Image.new("RGB", (big, big), colours[-1])
    draw = ImageDraw.Draw(img)
    for i in range(n):  # painter's order: later shapes occlude earlier ones
        if i in outlines:
            draw.polygon(outlines[i], fill=colours[i])
        else:
            draw.ellipse([cx[i] - r[i], cy[i] - r[i], cx[i] + r[i], cy[i] + r[i]], fill=colours[i])
    arr = np.asarray(img.resize((size, size), Image.Resampling.BOX), dtype=np.float32)
    # smooth illumination: a random linear gradient, as light falling off across a scene
    yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
    gx, gy = rng.uniform(-0.5, 0.5, 2)
    light = 1.0 + gx * xx + gy * yy
    return np.clip(arr * light[..., None], 0, 255)


@lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    """A scikit-image sample photograph as (H, W, 3) uint8 (only images shipped with the package)."""
    import skimage.data

    try:
        img = getattr(skimage.data, name)()
    except Exception as err:  # noqa: BLE001 - a fetch error here means "not shipped"
        raise RuntimeError(f"scikit-image sample {name!r} is not available offline ({err}); "
                           f"choose another photo for the domain") from err
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3])


def photo_crop(rng: np.random.Generator, d: Domain, size: int) -> np.ndarray:
    """A random crop of one of the domain's photos, reduced by a random factor, as float [0, 255]."""
    photo = _photo(d.photos[rng.integers(len(d.photos))])
    h, w = photo.shape[:2]
    side = int(rng.uniform(1.0, min(h, w) / size * 0.6) * size)  # crop side before the reduction
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = Image.fromarray(photo[y:y + side, x:x + side]).resize((size, size), Image.Resampling.BOX)
    arr = np.asarray(crop, dtype=np.float32)
    return arr[:, ::-1] if rng.random() < 0.5 else arr


def sample_image(rng: np.random.Generator, d: Domain, size: int = 64) -> np.ndarray:
    """One image of domain ``d``: (size, size, 3) uint8, a dead-leaves image or a photo crop, with noise."""
    arr = photo_crop(rng, d, size) if rng.random() < d.photo_fraction else dead_leaves(rng, d, size)
    arr = arr + rng.normal(0.0, d.noise, arr.shape)
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def sample_images(rng: np.random.Generator, d: Domain, n: int, size: int = 64) -> np.ndarray:
    """``n`` images of domain ``d`` as an (n, size, size, 3) uint8 array."""
    return np.stack([sample_image(rng, d, size) for _ in range(n)]) if n else np.zeros((0, size, size, 3), np.uint8)
