"""Small shared helpers: seeding, device choice, stable hashes, atomic file writes, progress bars."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a torch.Generator with that seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def derived_seed(seed: int, *names) -> int:
    """A seed for one random part of a run (``derived_seed(3, "C")``, ``derived_seed(3, "crops", e, k)``):
    a function of the run's seed and the names only, so each part owns its randomness (rule 3 of the
    experiment protocol) and switching another part on or off does not move it."""
    return int(stable_hash([seed, *names], length=10), 16)   # 40 bits: room for offsets


@contextlib.contextmanager
def seeded(seed: int, *names):
    """Run a block with torch's global (CPU) generator seeded by :func:`derived_seed`, then put the
    outer state back: what the block draws (weight initialisation, crops) depends on the names only."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(derived_seed(seed, *names))
        yield


def choose_device(preference: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; any other value is used as given."""
    if preference != "auto":
        dev = torch.device(preference)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but torch sees no CUDA GPU; use --set device=auto "
                             "(or device=cpu)")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def module_device(module) -> torch.device:
    """Where a module's first parameter (or buffer) lives; the CPU for a plain function or an empty module."""
    for t in (*module.parameters(), *module.buffers()) if isinstance(module, torch.nn.Module) else ():
        return t.device
    return torch.device("cpu")


def stable_hash(obj, length: int = 12) -> str:
    """A short sha256 of a JSON-able object, independent of dict order: the one way the course keys
    a cache (a run by :meth:`gfd.config.Config.key`, a benchmark build by its parameters)."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file next to ``path``, then rename it into place.

    A crash half-way leaves the previous file (if any) untouched and never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o666 & ~current_umask())  # mkstemp makes 0600; keep the user's umask
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path


def pbar(iterable=None, enabled: bool = True, **kwargs):
    """A ``tqdm.auto`` progress bar; ``enabled=False`` hides it, and so does ``TQDM_DISABLE=1``.

    The root ``conftest.py`` sets ``TQDM_DISABLE=1`` under test.  ``tqdm.std`` reads that variable
    itself but ``tqdm.notebook`` (what ``tqdm.auto`` picks in a kernel) does not, and a widget bar
    in a notebook under nbval sends a message per update, so it is honoured here for both.
    """
    from tqdm.auto import tqdm

    if not enabled or os.environ.get("TQDM_DISABLE", "").strip().lower() in {"1", "true", "yes"}:
        kwargs["disable"] = True
    return tqdm(iterable, **kwargs)


def data_dir() -> Path:
    """Where the course caches data and runs: ``<repository>/data`` for a source checkout
    (editable install, as the README sets up), else ``./data``.  Gitignored."""
    repo = Path(__file__).resolve().parents[1]
    return repo / "data" if (repo / "pyproject.toml").is_file() else Path.cwd() / "data"


def runs_dir() -> Path:
    """The cache of trained runs the notebooks share (``data/runs``)."""
    return data_dir() / "runs"


def results_dir() -> Path:
    """Where ``python -m gfd reproduce`` writes the tables: ``<repository>/results`` (committed)."""
    return data_dir().parent / "results"
