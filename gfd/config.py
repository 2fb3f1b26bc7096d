"""One configuration object for the whole course, with named presets.

Every entry point (notebooks, ``python -m gfd``, the reproduction scripts) builds a
:class:`Config` from a preset and a few overrides, instead of passing scattered keyword
arguments.  ``Config()`` *is* the course preset; every other preset is written as its differences
from it, so a preset reads as what it changes.

Presets (one size axis, then named settings)
--------------------------------------------
``quick``   CI and notebooks under test: the ``quick`` mini benchmark, networks half as wide, a few
            hundred steps on a 2-core CPU.
``course``  the notebooks' default on a CPU: the ``default`` mini benchmark, a small U-Net.
``gpu``     the notebooks' default on a CUDA GPU: the same chapters and data, sized for one GPU
            (batch 64, networks twice as wide, VGG-16 to relu2_2, more steps).
``paper``   the paper's setting for a GPU (Sec. 4.1): 224 px crops (``p128`` transform), ResNet-50
            as C, ImageNet weights, Adam lr 1e-4 with StepLR 500 / 0.9.  Point ``data_root`` at a
            real dataset.
``detect``  Sec. 4.3 / Table 3 on a CPU: ``course`` with the :data:`OVERLAYS` ``short-budget`` and
            ``detection`` (the paper's detection loss weights, a half-width G).

Overlays (:data:`OVERLAYS`) are named groups of changes that a table or a notebook applies on top
of a preset (``get_config(preset, overlays=[...])``): one place for every table-specific setting.

A run is named by :meth:`Config.key`, a hash of every field; a run record stores its whole
config (:mod:`gfd.runs.records`), so a key can always be recomputed from what is stored.  Knobs
that belong to one method only (the baselines' options, the benchmark's parameters) live in their
own dataclasses next to that method (``gfd.baselines.OPTIONS``, ``gfd.benchmark.SIZES``).

Environment variables: ``GFD_PRESET`` picks the default preset (:func:`default_preset`; the tests
set it to ``quick`` so that notebooks run fast under nbval, while a reader who opens a notebook gets
``course``, or ``gpu`` where torch sees a CUDA GPU).  The only other one ``gfd`` reads is
``TQDM_DISABLE`` (:func:`gfd.utils.pbar`).
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, fields, replace
from typing import Any, Sequence

from gfd.utils import stable_hash

PRESET_ENV = "GFD_PRESET"
DEFAULT_PRESET = "course"
GPU_PRESET = "gpu"          # the default where torch sees a CUDA GPU (default_preset)

# The allowed values of the fields that name something.  Written out here so that this module stays
# import-light; the tests check that they equal their homes: gfd.data.TRANSFORM_PRESETS,
# gfd.benchmark.SIZES, gfd.models.classifier.ARCHS, gfd.protocol.SCHEDULES and gfd.protocol.SELECTIONS.
TASKS = ("attribution", "detection")
TRANSFORMS = ("p128", "p1024", "mini", "mini_x4")
BENCHMARK_SIZES = ("quick", "default")
BENCHMARKS = ("gan128", "gan1024")
CLASSIFIER_ARCHS = ("compact", "resnet18", "resnet34", "resnet50", "resnet101", "densenet121", "densenet169", "densenet201")
ENCODER_ARCHS = ("unet", "resnet", "densenet")
ENCODER_SIZES = ("small", "full")
LR_SCHEDULES = ("step", "cosine", "constant")
SELECTIONS = ("best", "last")
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
DEVICES = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"


PRESET_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_INF = float("inf")
_RANGE_GROUPS: tuple[tuple[tuple[float, float, str], tuple[str, ...]], ...] = (
    # (lowest, highest, kind), fields.  "int" fields take integers, "float" fields finite numbers,
    # "int|None" None too.  Bounds are inclusive, but for the exclusive ones marked "float>" (low < value).
    ((1, _INF, "int"), ("crop", "batch_size", "unet_width", "unet_max_width", "disc_width", "classifier_width",
                        "backbone_width", "backbone_max_width", "lr_step", "steps", "c_pretrain_steps")),
    ((1, 16, "int"), ("unet_depth", "disc_layers", "backbone_depth")),
    # 0 means: the encoder's widths (decoder_width); validate only at the end of the budget (eval_every);
    # never stop early (patience); a checkpoint only at the end (ckpt_every)
    ((0, _INF, "int"), ("decoder_width", "eval_every", "patience", "ckpt_every")),
    ((0, _INF, "int|None"), ("num_workers",)),
    ((0, _INF, "float"), ("w1", "w2", "w3", "w4")),
    ((0, _INF, "float>"), ("fingerprint_scale", "lr")),
    ((0, 1, "float>"), ("lr_gamma",)),
    ((0, 1, "float"), ("patience_after",)),                 # a share of the step budget
    ((0, 2**31 - 1, "int"), ("seed",)),
)
NUMERIC_RANGES: dict[str, tuple[float, float, str]] = {name: rule for rule, names in _RANGE_GROUPS for name in names}
"""The allowed range of every numeric field of :class:`Config` (``Config.__post_init__`` refuses
any other value, naming the field, the value and the range)."""


def _check_range(name: str, value: Any, low: float, high: float, kind: str) -> None:
    """Refuse ``value`` for field ``name`` unless it is of ``kind`` and within [low, high] (low excluded
    for a ``"float>"`` kind), in one message that names the field, the value and the allowed range."""
    if kind == "int|None" and value is None:
        return
    integer = kind.startswith("int")
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise ValueError(f"config field {name}={value!r} is not allowed; it must be "
                         f"{'an integer' if integer else 'a number'}{' or None' if kind == 'int|None' else ''}")
    if not math.isfinite(value):
        raise ValueError(f"config field {name}={value!r} is not allowed; it must be a finite number")
    exclusive = kind.endswith(">")
    if (value <= low if exclusive else value < low) or value > high:
        lower = f"{'>' if exclusive else '>='} {low:g}" if not integer else f">= {low}"
        rule = f"{lower} and <= {high if integer else format(high, 'g')}" if high != _INF else lower
        raise ValueError(f"config field {name}={value!r} is not allowed; it must be {rule}")


@dataclass(frozen=True)
class Config:
    """All knobs of data, networks, losses and training; the defaults are the ``course`` preset.
    Build one with :func:`get_config`."""

    preset: str = "course"

    # --- data --------------------------------------------------------------------------------
    data_root: str | None = None        # a folder in the gfd.data layout; None = built-in benchmark
    task: str = "attribution"           # "attribution" (Sec. 4.2, K classes) | "detection" (Sec. 4.3, real vs fake)
    benchmark_size: str = "default"     # size of the built-in benchmark: "quick" | "default"
    benchmark: str = "gan128"           # which built-in benchmark: "gan128" (the roles of Sec. 4.2.1, 64 px) |
                                        # "gan1024" (Sec. 4.2.2's, 128 px images, Table 2)
    transform: str = "mini"             # transform preset: "p128" | "p1024" | "mini" | "mini_x4"
    crop: int = 48                      # crop side fed to the networks (paper: 224)
    hflip: bool = False                 # flips only if asked for: they can alter fingerprints
    batch_size: int = 16
    num_workers: int | None = None      # None = suit the machine (see gfd.data.default_num_workers)

    # --- networks (Sec. 3.2) ---------------------------------------------------------------------
    unet_depth: int = 3                 # number of down-sampling steps of G_enc
    unet_width: int = 32                # channels of the first (full-resolution) U-Net level
    unet_max_width: int = 256           # channel cap for deep levels
    decoder_width: int = 16             # channels of G_dec's full-resolution level (0: the encoder's, the
                                        # plain U-Net); G_dec only draws f, G_enc + H classify
    disc_width: int = 32                # channels of D's first layer (pix2pix ndf)
    disc_layers: int = 2                # conv layers of the PatchGAN D (paper: 3; 2 = 34 px patches at 48 px)
    classifier_arch: str = "compact"    # auxiliary C: "resnet50" (paper) | "compact" (CPU presets) | "resnet18" | ...
    classifier_width: int = 16          # channels of the compact C's first layer (other archs ignore it)
    # Pretrained weights, for C and for the VGG-16 of Eq. 5 (see gfd.models.weights):
    #   "imagenet" = torchvision's ImageNet weights, an error naming the fix if they cannot be had;
    #   "auto"     = ImageNet weights if cached or downloadable, else random init with a loud warning;
    #   "random"   = random init;  any other string = path to a saved state_dict.
    classifier_weights: str = "random"
    perceptual_weights: str = "auto"
    perceptual_layer: str = "relu1_1"   # last VGG-16 layer used by F (the paper names none)
    fingerprint_scale: float = 1.0      # f = scale * tanh(decoder output); images live in [-1, 1]
    # G's encoder (Sec. 4.3 / Table 3 builds it on a backbone; gfd.models.backbones):
    encoder_arch: str = "unet"          # "unet" (Sec. 3.2) | "resnet" | "densenet"
    encoder_size: str = "small"         # backbones: "small" (CPU: stride-1 3x3 stem, backbone_* widths) | "full"
                                        # (torchvision's resnet50 / densenet121, the paper's)
    encoder_weights: str = "random"     # the full backbones' weights, as classifier_weights ("imagenet", ...)
    backbone_depth: int = 3             # the small backbones (G's encoder and the plain ResNet / DenseNet
    backbone_width: int = 32            # rows of Table 3): stages, first stage's channels, channel cap
    backbone_max_width: int = 256

    # --- losses (Eq. 7) --------------------------------------------------------------------------
    w1: float = 10.0                    # L_z        (Eq. 6)
    w2: float = 0.1                     # L_adv^G    (Eq. 4)
    w3: float = 1.0                     # L_cls^G    (Eq. 2)
    w4: float = 1.0                     # L_percept  (Eq. 5)
    use_D: bool = True                  # ablation switches of Table 4
    use_C: bool = True
    use_percept: bool = True

    # --- optimisation (Sec. 4.1) and the training protocol (gfd.protocol) ------------------------
    lr: float = 1e-3
    lr_schedule: str = "cosine"         # "step" = the paper's StepLR(lr_step, lr_gamma) | "cosine" | "constant"
    lr_step: int = 500
    lr_gamma: float = 0.9
    steps: int = 1500                   # alternating iterations: the budget
    c_pretrain_steps: int = 1500        # budget of Eq. 3 (C's pre-training, same protocol)
    eval_every: int = 100               # val evaluations (closed world) every this many steps
    select: str = "best"                # weights kept: "last" | "best" (best val accuracy)
    patience: int = 3                   # stop after this many evaluations without a new best (0: never)
    patience_after: float = 0.5         # ... but not before this share of the step budget (gfd.protocol)
    ckpt_every: int = 100
    seed: int = 0
    device: str = "auto"                # "auto" (cuda, then mps, then cpu) | "cpu" | "cuda" | ...
    amp: bool = True                    # mixed precision, used only on CUDA
    compile: bool = False               # torch.compile the networks for training (off: no start-up cost)

    def __post_init__(self) -> None:
        """Refuse a field value the code cannot use, naming the field and the allowed values."""
        for name, allowed in (("task", TASKS), ("transform", TRANSFORMS), ("benchmark_size", BENCHMARK_SIZES),
                              ("benchmark", BENCHMARKS), ("classifier_arch", CLASSIFIER_ARCHS),
                              ("lr_schedule", LR_SCHEDULES), ("encoder_arch", ENCODER_ARCHS),
                              ("encoder_size", ENCODER_SIZES), ("select", SELECTIONS)):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"config field {name}={value!r} is not allowed; choose one of "
                                 f"{', '.join(map(repr, allowed))}")
        if not (isinstance(self.device, str) and DEVICE_PATTERN.fullmatch(self.device)):
            raise ValueError(f"config field device={self.device!r} is not allowed; choose {DEVICES}")
        if not (isinstance(self.preset, str) and PRESET_NAME.fullmatch(self.preset)):
            raise ValueError(f"config field preset={self.preset!r} is not allowed; it names the run folder: "
                             f"letters, digits, '.', '_' and '-', not starting with '.' or '-'")
        for name, (low, high, what) in NUMERIC_RANGES.items():
            _check_range(name, getattr(self, name), low, high, what)
        if self.encoder_arch == "unet" and self.crop < 2 ** self.unet_depth:
            raise ValueError(f"config fields crop={self.crop} and unet_depth={self.unet_depth} do not fit: each "
                             f"U-Net level halves the crop, so crop must be >= 2**unet_depth = "
                             f"{2 ** self.unet_depth}; raise crop or lower unet_depth")

    @property
    def g_only(self) -> bool:
        """True for the G-only baseline of Table 4 (G+H trained with L_z alone)."""
        return not (self.use_D or self.use_C or self.use_percept)

    def with_(self, **changes: Any) -> "Config":
        """A copy with some fields changed (unknown names raise a clear error)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise KeyError(f"unknown config field(s) {unknown}; known fields: {sorted(known)}")
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """The run key: a short hash of every field.  Two configs that differ in any field never
        share a run folder."""
        return stable_hash(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Config":
        """The config a stored dict describes; a field this version does not know is an error that
        names it (a record from another version is not silently read as something else)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise KeyError(f"unknown config field(s) {unknown} in a stored config; known fields: {sorted(known)}")
        return cls(**d)


RESUMABLE_FIELDS = ("steps", "patience", "eval_every", "ckpt_every", "device", "num_workers", "amp", "data_root",
                    "classifier_weights", "perceptual_weights", "encoder_weights", "compile")
"""Fields a checkpoint may be continued or evaluated with at another value: none changes a network's
shape.  Not all leave results alone -- more ``steps`` extend a run, ``data_root`` may point to a
moved (or another) dataset, the weights fields only matter before C and F are first built -- so
they are allowed on purpose, and every run records the values it used."""


PRESETS: dict[str, dict[str, Any]] = {
    # half as wide and a few hundred steps: the notebooks under test, in minutes on 2 cores
    "quick": dict(benchmark_size="quick", unet_width=16, unet_max_width=128, decoder_width=0, disc_width=16,
                  backbone_width=16, backbone_max_width=128,
                  steps=150, c_pretrain_steps=300, eval_every=50, ckpt_every=50),
    "course": dict(),
    # one GPU (a free Colab T4 to an H100): batch 64, G and D twice as wide (G_dec as wide as G_enc),
    # the compact C twice as wide, VGG-16 to relu2_2 for F, twice the steps.  At 48 px D keeps 2 layers
    # and C stays the compact CNN (a ResNet stem would shrink a 48 px crop 4x before its first block)
    "gpu": dict(batch_size=64, perceptual_layer="relu2_2", unet_width=64, unet_max_width=512, decoder_width=0,
                disc_width=64, classifier_width=32, backbone_width=64, backbone_max_width=512,
                steps=3000, eval_every=250, ckpt_every=250),
    # Sec. 4.1; batch size and step counts are not given in the paper: these are our choices
    "paper": dict(transform="p128", crop=224, perceptual_layer="relu2_2",
                  unet_depth=5, unet_width=64, unet_max_width=1024, decoder_width=0, disc_width=64, disc_layers=3,
                  classifier_arch="resnet50", classifier_weights="imagenet", perceptual_weights="imagenet",
                  encoder_size="full", encoder_weights="imagenet",      # Table 3's backbones: ResNet-50 / DenseNet-121
                  backbone_depth=5, backbone_width=64, backbone_max_width=1024,
                  steps=20000, c_pretrain_steps=2000, eval_every=1000, ckpt_every=1000,
                  lr=1e-4, lr_schedule="step", select="last", patience=0, patience_after=0.0),
}
"""Preset name -> its differences from ``Config()`` (the course preset)."""

OVERLAYS: dict[str, dict[str, Any]] = {
    # The shorter course budget Tables 2 and 3 were measured with (docs/decisions.md): F to relu1_2,
    # G_dec as wide as G_enc, 600 steps, a plateau stop allowed at any step.
    "short-budget": dict(perceptual_layer="relu1_2", decoder_width=0, steps=600, patience_after=0.0),
    # Sec. 4.3: real vs fake, and Sec. 4.1: "We set w1, w2, w3 and w4 as ... 10, 1e-2, 1, 1 for fake
    # image detection experiment".  G (and the backbones of Table 3) half as wide, to fit Table 3's
    # seven rows in its budget.
    "detection": dict(task="detection", w2=0.01, unet_width=16, unet_max_width=128,
                      backbone_width=16, backbone_max_width=128),
    # Sec. 4.2.2 / Table 2: the high-resolution world, crops without resizing
    "gan1024": dict(benchmark="gan1024", transform="p1024"),
}
"""Named groups of changes applied on top of a preset (:func:`get_config`'s ``overlays``)."""

PRESETS["detect"] = {**OVERLAYS["short-budget"], **OVERLAYS["detection"]}


def default_preset() -> str:
    """The preset notebooks use: ``$GFD_PRESET`` if set (tests set ``quick``), else ``gpu`` where torch
    sees a CUDA GPU (a Colab GPU runtime gets a GPU-sized run), else ``course``."""
    if os.environ.get(PRESET_ENV):
        return os.environ[PRESET_ENV]
    import torch        # here, not at the top: this module stays import-light
    return GPU_PRESET if torch.cuda.is_available() else DEFAULT_PRESET


_told_gpu_pick = False


def _tell_gpu_pick(name: str) -> None:
    """Say once per process, in one line, that the GPU rule of :func:`default_preset` chose the preset."""
    global _told_gpu_pick
    if name == GPU_PRESET and not os.environ.get(PRESET_ENV) and not _told_gpu_pick:
        _told_gpu_pick = True
        print(f"gfd: torch sees a CUDA GPU, so the default preset is {GPU_PRESET!r} (a GPU-sized run on the "
              f"built-in benchmark); set GFD_PRESET=course, or pass a preset, for the CPU-sized one")


def _coerce(value: str, annotation: str, name: str) -> Any:
    """Parse a ``--set key=value`` string to the declared type of the field (``annotation``, e.g.
    ``"int | None"``); a value that does not parse names the field and the expected type."""
    optional = "None" in annotation
    kind = annotation.replace("| None", "").strip()
    if optional and value.strip().lower() in {"none", "null"}:
        return None
    if kind == "bool":
        low = value.strip().lower()
        if low in {"1", "true", "yes", "on"}:
            return True
        if low in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"config field {name}: expected a boolean (true/false), got {value!r}")
    parsers = {"int": (int, "an integer (e.g. 200)"), "float": (float, "a number (e.g. 0.001)")}
    if kind in parsers:
        parse, what = parsers[kind]
        try:
            return parse(value)
        except ValueError:
            none = " or none" if optional else ""
            raise ValueError(f"config field {name}: expected {what}{none}, got {value!r}") from None
    return value


def get_config(preset: str | None = None, overrides: Sequence[str] | None = None, *,
               overlays: Sequence[str] = (), **changes: Any) -> Config:
    """Build a :class:`Config`: a named preset, then the named :data:`OVERLAYS` in order, then
    ``key=value`` strings, then keyword changes (each later one wins).

    >>> get_config("quick", ["steps=10"], use_D=False).steps
    10
    >>> get_config("quick", overlays=["detection"]).task
    'detection'
    """
    name = preset or default_preset()
    if not preset:
        _tell_gpu_pick(name)
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    unknown = [o for o in overlays if o not in OVERLAYS]
    if unknown:
        raise KeyError(f"unknown overlay(s) {unknown}; choose from {sorted(OVERLAYS)}")
    cfg = Config(preset=name, **PRESETS[name])
    for overlay in overlays:
        cfg = cfg.with_(**OVERLAYS[overlay])
    annotations = {f.name: str(f.type) for f in fields(Config)}
    parsed: dict[str, Any] = {}
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        key = key.strip()
        if key not in annotations:
            cfg.with_(**{key: None})  # raises the clear "unknown field" error
        parsed[key] = _coerce(value, annotations[key], key)
    return cfg.with_(**(parsed | changes))   # keyword changes win over --set strings


def describe_presets(keys: tuple[str, ...] = ("benchmark_size", "transform", "crop", "batch_size", "unet_depth",
                                             "unet_width", "decoder_width", "disc_layers", "classifier_arch",
                                             "perceptual_layer", "steps",
                                             "c_pretrain_steps", "lr", "lr_schedule", "select", "patience", "patience_after",
                                             "w1", "w2", "w3", "w4")) -> str:
    """A plain-text table of the main fields of every preset, for the notebooks and the CLI."""
    names = list(PRESETS)
    rows = [("field", *names)] + [(k, *(str(getattr(get_config(n), k)) for n in names)) for k in keys]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
