"""Where the pretrained weights of C (Sec. 3.2) and of the VGG-16 F (Eq. 5) come from: one rule.

A weights *spec* (``cfg.classifier_weights``, ``cfg.perceptual_weights``) is one of

``"imagenet"``  torchvision's ImageNet weights (``<Arch>_Weights.DEFAULT``, e.g.
                ``ResNet50_Weights.IMAGENET1K_V2``, ``VGG16_Weights.IMAGENET1K_V1``), read from
                torch's hub cache (``torch.hub.get_dir()/checkpoints/<file>``) or downloaded into it.
                If neither works, :class:`WeightsUnavailableError` names the expected file and the fix.
``"auto"``      ImageNet if obtainable as above, otherwise random initialisation with a loud
                ``warnings.warn``.
``"random"``    random initialisation (torchvision's default init).
anything else   the path of a ``state_dict`` file for the torchvision model with its ImageNet
                (1000-class) head, e.g. the very file torchvision would download.

:func:`build_torchvision` returns the model *and* a short string saying which weights it holds
(``"imagenet:IMAGENET1K_V2"``, ``"random"``, ``"random (imagenet unavailable)"``,
``"file:/path"``), which the trainer stores in its history and checkpoints, so that every result
says what it was measured with.

The network is never waited on for long: the cache is looked at first, and a download attempt runs
under a short socket timeout.

:class:`ImageNetInput` turns the course's [-1, 1] images into the ImageNet-normalised input that
pretrained torchvision models expect; C and F both start with it.
"""
from __future__ import annotations

import os
import re
import socket
import warnings
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DOWNLOAD_TIMEOUT_S = 15.0

# Old DenseNet checkpoints (torchvision's own ImageNet files) name layers "norm.1", "conv.2", ...
_DENSENET_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$")


class WeightsUnavailableError(RuntimeError):
    """ImageNet weights were required but are neither cached nor downloadable."""


class WeightsFileError(ValueError):
    """A weights file is missing, unreadable or does not fit the model."""


class ImageNetInput(nn.Module):
    """[-1, 1] images -> [0, 1] -> ImageNet mean/std normalisation (a fixed, parameter-free layer)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x + 1) / 2 - self.mean) / self.std


def imagenet_weights(arch: str):
    """torchvision's default ImageNet weights enum member for ``arch`` (e.g. ``resnet50``)."""
    try:
        return torchvision.models.get_model_weights(arch).DEFAULT
    except (ValueError, KeyError) as err:
        raise ValueError(f"torchvision has no model named {arch!r}") from err


def cache_path(weights) -> Path:
    """Where torch's hub cache keeps the file of a torchvision weights enum member."""
    name = os.path.basename(urlparse(weights.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def download(url: str, dst: Path) -> None:
    """Download ``url`` to ``dst`` with a short socket timeout (a separate function so tests can stub it)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        torch.hub.download_url_to_file(url, str(dst), progress=False)
    finally:
        socket.setdefaulttimeout(old)


def fetch_imagenet(arch: str) -> Path:
    """The local file of ``arch``'s ImageNet weights: from the cache, else downloaded into it.

    Raises :class:`WeightsUnavailableError` naming the expected path and the fix.
    """
    weights = imagenet_weights(arch)
    path = cache_path(weights)
    if path.is_file():
        return path
    try:
        download(weights.url, path)
    except Exception as err:  # no network, proxy, timeout, disk: all mean "not obtainable here"
        if path.exists() and path.stat().st_size == 0:
            path.unlink()
        raise WeightsUnavailableError(
            f"ImageNet weights for {arch} ({type(weights).__name__}.{weights.name}) are not cached at "
            f"{path} and could not be downloaded ({type(err).__name__}: {err}). Fix: on a machine with "
            f"internet, download {weights.url} into the folder {path.parent} (or set TORCH_HOME to a "
            f"folder holding hub/checkpoints/{path.name}).") from err
    return path


def load_state_dict_file(model: nn.Module, path: str | os.PathLike, what: str) -> None:
    """Load a state_dict file into ``model`` (strict); a clear :class:`WeightsFileError` otherwise."""
    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(f"{what}: weights file {path} does not exist. Give the path of a saved "
                               f"state_dict, or use 'imagenet', 'auto' or 'random'.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise WeightsFileError(f"{what}: cannot read weights file {path} as a torch state_dict "
                               f"({type(err).__name__}: {err})") from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsFileError(f"{what}: {path} does not hold a state_dict (a dict of tensors)")
    state = {(_DENSENET_OLD_KEY.sub(r"\1\2", k)): v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise WeightsFileError(f"{what}: the weights in {path} do not fit the "
                               f"{type(model).__name__}: {str(err)[:600]}") from err


def _field(what: str) -> str:
    """The config field a network's weights come from, for messages (F is the perceptual VGG)."""
    return "perceptual_weights" if "perceptual" in what.lower() or what.strip().endswith("F") else "classifier_weights"


_NOTED: set[tuple[str, str]] = set()
"""(weights field, hub cache) pairs already told that 'auto' fell back to random weights."""


def install_imagenet(arch: str, source: str | os.PathLike | None = None) -> Path:
    """Put ``arch``'s torchvision ImageNet weights into the torch hub cache, where ``imagenet`` and
    ``auto`` look for them: downloaded when online, or copied from ``source``, a file a user brought
    (checked: its sha256 must start with the hash in torchvision's file name, and it must load)."""
    if source is None:
        return fetch_imagenet(arch)
    import hashlib
    import shutil

    source = Path(source)
    if not source.is_file():
        raise FileNotFoundError(f"weights file {source} does not exist")
    dst = cache_path(imagenet_weights(arch))
    expected = dst.stem.rsplit("-", 1)[-1]
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    if not digest.startswith(expected):
        raise WeightsFileError(f"{source} is not torchvision's {dst.name}: its sha256 starts with {digest[:8]}, "
                               f"expected {expected}")
    load_state_dict_file(torchvision.models.get_model(arch, weights=None), source, f"ImageNet {arch}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dst)
    return dst


def build_torchvision(arch: str, spec: str, what: str) -> tuple[nn.Module, str]:
    """Build torchvision's ``arch`` with its 1000-class ImageNet head, initialised as ``spec`` says.

    Returns ``(model, used)`` where ``used`` says which weights the model holds.
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"{what}: weights spec must be 'imagenet', 'auto', 'random' or a file path, got {spec!r}")
    model = torchvision.models.get_model(arch, weights=None)
    if spec == "random":
        return model, "random"
    if spec in ("imagenet", "auto"):
        try:
            path = fetch_imagenet(arch)
        except WeightsUnavailableError as err:
            field = _field(what)
            if spec == "imagenet":
                raise WeightsUnavailableError(
                    f"{what}: {field}='imagenet' was asked for, but {err} Or, to train without ImageNet "
                    f"weights, set {field} to 'auto' (ImageNet when obtainable, else random with a warning) "
                    f"or 'random': --set {field}=random on the command line.") from err
            note = (field, torch.hub.get_dir())
            if note not in _NOTED:            # once per process (and hub cache): one short line, not a page
                _NOTED.add(note)
                warnings.warn(f"{what}: {field}='auto' and no ImageNet weights here, so RANDOM initialisation "
                              f"(get them: python -m gfd weights; on purpose: --set {field}=random)", stacklevel=2)
            return model, "random (imagenet unavailable)"
        load_state_dict_file(model, path, what)
        return model, f"imagenet:{imagenet_weights(arch).name}"
    load_state_dict_file(model, spec, what)
    return model, f"file:{Path(spec).resolve()}"
