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


def _shape_draws(rng: np.random.Generator, d, big: int) -> tuple[np.ndarray, ...]:
    """The geometry of ``d.n_shapes`` dead-leaves shapes on a ``big`` px canvas, in the order every
    scene draws them: radii (``r_min``..``r_max`` of the side, skewed by ``size_power``), centres
    (reaching 10 % past each border), outline kinds, aspect ratios, angles."""
    n = d.n_shapes
    r = big * (d.r_min + (d.r_max - d.r_min) * rng.random(n) ** d.size_power)
    cx, cy = rng.uniform(-0.1, 1.1, (2, n)) * big
    kinds = rng.integers(len(d.shapes), size=n)
    aspect = rng.uniform(0.25, 1.0, n)
    angle = rng.uniform(0, np.pi, n)
    return r, cx, cy, kinds, aspect, angle


def leaves_scene(rng: np.random.Generator, d: Domain, size: int) -> tuple[Image.Image, tuple[float, float]]:
    """The scene of one dead-leaves image before the camera: the shapes drawn at ``SUPERSAMPLE`` x the
    side (a PIL RGB image) and the illumination gradient (gx, gy) that light falls off by.  It draws
    from ``rng`` exactly what :func:`dead_leaves` draws, so a scene can go through another imaging
    pipeline (:func:`render`) with the same content."""
    unknown = set(d.shapes) - set(_OUTLINES) - {"disk"}
    if unknown:
        raise ValueError(f"domain {d.name}: unknown shape(s) {sorted(unknown)}; use disk, {', '.join(_OUTLINES)}")
    big, n = size * SUPERSAMPLE, d.n_shapes
    r, cx, cy, kinds, aspect, angle = _shape_draws(rng, d, big)
    colours = [tuple(c) for c in _colours(rng, d, n + 1).tolist()]
    outlines = _outlines(d, kinds, r, aspect, angle, cx, cy)
    img = Image.new("RGB", (big, big), colours[-1])
    draw = ImageDraw.Draw(img)
    for i in range(n):  # painter's order: later shapes occlude earlier ones
        if i in outlines:
            draw.polygon(outlines[i], fill=colours[i])
        else:
            draw.ellipse([cx[i] - r[i], cy[i] - r[i], cx[i] + r[i], cy[i] + r[i]], fill=colours[i])
    gx, gy = rng.uniform(-0.5, 0.5, 2)
    return img, (float(gx), float(gy))


def _outlines(d: Domain, kinds: np.ndarray, r: np.ndarray, aspect: np.ndarray, angle: np.ndarray,
              cx: np.ndarray, cy: np.ndarray) -> dict[int, list[float]]:
    """shape index -> flat vertex list of every polygon shape, computed per kind in one vectorised step."""
    outlines = {}
    for k, kind in enumerate(d.shapes):
        idx = np.flatnonzero(kinds == k)
        if kind == "disk" or not len(idx):
            continue
        ux, uy = _OUTLINES[kind]
        x, y = r[idx, None] * ux, (r * aspect)[idx, None] * uy
        c, s = np.cos(angle[idx, None]), np.sin(angle[idx, None])
        pts = np.stack([cx[idx, None] + c * x - s * y, cy[idx, None] + s * x + c * y], axis=2)
        outlines.update(zip(idx.tolist(), pts.reshape(len(idx), -1).tolist()))
    return outlines


def lit(arr: np.ndarray, light: tuple[float, float]) -> np.ndarray:
    """Multiply an (H, W, 3) image by the smooth illumination gradient ``light`` = (gx, gy) and clip to
    [0, 255]: light falling off across a scene."""
    size = arr.shape[0]
    yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
    gx, gy = light
    return np.clip(arr * (1.0 + gx * xx + gy * yy)[..., None], 0, 255)


def dead_leaves(rng: np.random.Generator, d: Domain, size: int) -> np.ndarray:
    """One dead-leaves image (H, W, 3) float in [0, 255], before noise and quantisation: the scene of
    :func:`leaves_scene` area-reduced (the anti-aliasing of a camera) and lit."""
    img, light = leaves_scene(rng, d, size)
    return lit(np.asarray(img.resize((size, size), Image.Resampling.BOX), dtype=np.float32), light)


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


def photo_scene(rng: np.random.Generator, d: Domain, size: int) -> tuple[Image.Image, bool]:
    """The scene of one photo crop before the camera: a random crop of one of the domain's photos at
    full resolution, and whether it is mirrored.  Draws what :func:`photo_crop` draws."""
    photo = _photo(d.photos[rng.integers(len(d.photos))])
    h, w = photo.shape[:2]
    side = int(rng.uniform(1.0, min(h, w) / size * 0.6) * size)  # crop side before the reduction
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = Image.fromarray(photo[y:y + side, x:x + side])
    return crop, bool(rng.random() < 0.5)


def photo_crop(rng: np.random.Generator, d: Domain, size: int) -> np.ndarray:
    """A random crop of one of the domain's photos, reduced by a random factor, as float [0, 255]."""
    crop, flip = photo_scene(rng, d, size)
    arr = np.asarray(crop.resize((size, size), Image.Resampling.BOX), dtype=np.float32)
    return arr[:, ::-1] if flip else arr


def sample_image(rng: np.random.Generator, d: Domain, size: int = 64) -> np.ndarray:
    """One image of domain ``d``: (size, size, 3) uint8, a dead-leaves image or a photo crop, with noise.
    A domain that draws its own way (a shift world's, :class:`ShiftDomain`) does so."""
    draw = getattr(d, "draw", None)
    if draw is not None:
        return draw(rng, size)
    arr = photo_crop(rng, d, size) if rng.random() < d.photo_fraction else dead_leaves(rng, d, size)
    arr = arr + rng.normal(0.0, d.noise, arr.shape)
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def sample_images(rng: np.random.Generator, d: Domain, n: int, size: int = 64) -> np.ndarray:
    """``n`` images of domain ``d`` as an (n, size, size, 3) uint8 array."""
    return np.stack([sample_image(rng, d, size) for _ in range(n)]) if n else np.zeros((0, size, size, 3), np.uint8)


# --------------------------------------------------------------------------------------------------
# shift worlds: the content (the scene) and the acquisition (the camera) as separate steps
# --------------------------------------------------------------------------------------------------
# The paper's open world (Sec. 4.2.1, CelebA -> LSUN) changes the content, the imaging history of the
# real images and of the GANs' training data, and the GANs' own training at once.  The shift worlds
# of gfd.benchmark.worlds.shifts change one of these at a time, so a scene is drawn first and a
# camera (Camera) then turns it into pixels; CAMERA_A is exactly the pipeline of every domain above.

KERNELS = {"box": Image.Resampling.BOX, "bilinear": Image.Resampling.BILINEAR,
           "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}
FILLS = ("flat", "grating")


@dataclass(frozen=True)
class Camera:
    """An imaging pipeline: how a scene becomes an 8-bit image (all fields enter a world's cache key).

    In order: reduction of the scene to the image side with the resampling ``kernel``; the
    illumination gradient (dead leaves only); sensor noise -- ``gaussian`` (std ``sigma`` levels) or
    ``poisson-gaussian`` (shot noise of ``gain`` photo-electrons per 8-bit level, i.e. variance
    ``x / gain``, plus read noise ``sigma``); rounding to 8 bits; an unsharp mask of ``sharpen``
    (PIL percent / 100) and ``sharpen_radius`` px; JPEG at ``jpeg`` quality (PIL's default 4:2:0
    chroma subsampling), decoded again.  :data:`CAMERA_A` is the pipeline of every built-in domain.
    """

    kernel: str = "box"
    noise: str = "gaussian"
    sigma: float = 1.5
    gain: float = 0.0
    """Sensor noise: ``gaussian`` (std ``sigma`` levels) or ``poisson-gaussian`` (``gain`` photo-electrons
    per level, plus read noise ``sigma``)."""
    sharpen: float = 0.0
    sharpen_radius: float = 1.0
    jpeg: int | None = None

    def __post_init__(self):
        if self.kernel not in KERNELS:
            raise ValueError(f"camera kernel {self.kernel!r}: choose one of {sorted(KERNELS)}")
        if self.noise not in ("gaussian", "poisson-gaussian") or (self.noise == "poisson-gaussian" and self.gain <= 0):
            raise ValueError(f"camera noise {self.noise!r} (gain {self.gain}): gaussian, or poisson-gaussian with gain > 0")
        if self.jpeg is not None and not 1 <= self.jpeg <= 95:
            raise ValueError(f"camera jpeg quality {self.jpeg}: 1-95 or None")


CAMERA_A = Camera()


def render(rng: np.random.Generator, scene: Image.Image, size: int, camera: Camera,
           light: tuple[float, float] | None = None, flip: bool = False) -> np.ndarray:
    """A scene through ``camera``: (size, size, 3) uint8.  ``light`` is a dead-leaves scene's gradient,
    ``flip`` a photo crop's mirroring; the noise is drawn from ``rng``.  With :data:`CAMERA_A` this is
    exactly the pipeline of :func:`sample_image` (same draws, same pixels)."""
    arr = np.asarray(scene.resize((size, size), KERNELS[camera.kernel]), dtype=np.float32)
    if light is not None:
        arr = lit(arr, light)
    if flip:
        arr = arr[:, ::-1]
    if camera.noise == "gaussian":
        arr = arr + rng.normal(0.0, camera.sigma, arr.shape)
    else:
        shot = rng.poisson(np.clip(arr, 0, None) * camera.gain) / camera.gain
        arr = shot + rng.normal(0.0, camera.sigma, arr.shape)
    out = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    if camera.sharpen > 0 or camera.jpeg is not None:
        from PIL import ImageFilter
        img = Image.fromarray(out)
        if camera.sharpen > 0:
            img = img.filter(ImageFilter.UnsharpMask(radius=camera.sharpen_radius,
                                                     percent=int(round(100 * camera.sharpen)), threshold=0))
        if camera.jpeg is not None:
            import io
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=camera.jpeg)
            img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
        out = np.asarray(img, dtype=np.uint8)
    return out


def grating_scene(rng: np.random.Generator, d: "ShiftDomain", size: int) -> tuple[Image.Image, tuple[float, float]]:
    """A dead-leaves scene whose shapes are filled with textures: each shape's colour times
    ``1 + texture * sin(2 pi (x cos t + y sin t) / period + phase)``, its own period (in image pixels,
    uniform in ``texture_period``), orientation and phase.  Drawn at ``SUPERSAMPLE`` x the side as a
    label map, then coloured; returns the scene and its illumination gradient like :func:`leaves_scene`."""
    big, n = size * SUPERSAMPLE, d.n_shapes
    r, cx, cy, kinds, aspect, angle = _shape_draws(rng, d, big)
    colours = _colours(rng, d, n + 1).astype(np.float32)
    period = rng.uniform(*d.texture_period, n + 1) * SUPERSAMPLE
    orient = rng.uniform(0, np.pi, n + 1)
    phase = rng.uniform(0, 2 * np.pi, n + 1)
    outlines = _outlines(d, kinds, r, aspect, angle, cx, cy)
    labels = Image.new("I", (big, big), n)           # the background is label n
    draw = ImageDraw.Draw(labels)
    for i in range(n):
        if i in outlines:
            draw.polygon(outlines[i], fill=i)
        else:
            draw.ellipse([cx[i] - r[i], cy[i] - r[i], cx[i] + r[i], cy[i] + r[i]], fill=i)
    lab = np.asarray(labels, dtype=np.int64)
    yy, xx = np.mgrid[0:big, 0:big].astype(np.float32)
    t = np.cos(orient)[lab] * xx + np.sin(orient)[lab] * yy
    wave = np.sin(2 * np.pi * t / period[lab] + phase[lab])
    img = np.clip(colours[lab] * (1.0 + d.texture * wave)[..., None], 0, 255)
    gx, gy = rng.uniform(-0.5, 0.5, 2)
    return Image.fromarray(np.rint(img).astype(np.uint8)), (float(gx), float(gy))


@dataclass(frozen=True)
class ShiftDomain(Domain):
    """A content domain of a shift world: a :class:`Domain` whose shapes may carry texture fills
    (``fill="grating"``: :func:`grating_scene`) and whose images go through its own ``camera``.

    With ``fill="flat"`` and :data:`CAMERA_A` it draws exactly what the :class:`Domain` of the same
    fields draws (same random draws, same pixels); its ``noise`` field is unused (the camera's
    ``sigma`` is the sensor noise)."""

    fill: str = "flat"
    texture: float = 0.0                          # grating amplitude (fraction of the colour)
    texture_period: tuple[float, float] = (2.0, 8.0)   # grating period range, image pixels
    camera: Camera = CAMERA_A

    def __post_init__(self):
        if self.fill not in FILLS:
            raise ValueError(f"domain {self.name}: fill {self.fill!r}, choose one of {FILLS}")

    @classmethod
    def like(cls, d: Domain, **changes) -> "ShiftDomain":
        """A shift domain with the fields of ``d`` (camera sigma = ``d.noise``), then ``changes``."""
        base = {k: v for k, v in d.to_dict().items()}
        camera = changes.pop("camera", Camera(sigma=d.noise))
        return cls(**{**base, **changes, "camera": camera})

    def scene(self, rng: np.random.Generator, size: int) -> tuple[str, Image.Image, tuple[float, float] | None, bool]:
        """(kind, scene, light, flip) of one image, before the camera: kind ``photo`` or ``leaves``."""
        if rng.random() < self.photo_fraction:
            crop, flip = photo_scene(rng, self, size)
            return "photo", crop, None, flip
        img, light = grating_scene(rng, self, size) if self.fill == "grating" else leaves_scene(rng, self, size)
        return "leaves", img, light, False

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """One image: :meth:`scene` through :attr:`camera` (what :func:`sample_image` returns)."""
        _, img, light, flip = self.scene(rng, size)
        return render(rng, img, size, self.camera, light, flip)
