"""Checkpoints of the GFD-Net trainer: safe to load, written atomically, checked when read.

A checkpoint is one ``torch.save`` file holding only tensors, numbers, strings, lists, tuples and
dicts, so that ``torch.load(path, weights_only=True)`` reads it (no pickled code runs).  It holds::

    format, version       "gfd-checkpoint", FORMAT_VERSION
    config                cfg.to_dict()
    classes               class names, in label order
    step                  alternating iterations done
    models / optim / sched / scaler   state_dicts
    rng                   torch (CPU and CUDA), NumPy and Python RNG states, as tensors and lists
    streams, history, meta, snapshots the trainer's own bookkeeping (see gfd.train)

A *weights-only export* (:func:`export_weights`, ``python -m gfd export``) is the file to share or
to attribute with: format ``"gfd-weights"``, holding only ``config``, ``classes``, ``step``, ``meta``
and ``models = {"G": ...}`` (G_enc, H and the decoder; no D, C, F, optimiser or RNG state), about a
tenth of the size.  :func:`gfd.inference.load_generator` -- hence ``attribute`` and ``evaluate`` --
reads both kinds and gives identical outputs; training cannot resume from an export.

Files are written to a temporary file and renamed (:func:`gfd.utils.atomic_write`), so a crash
never leaves a truncated checkpoint; their mode follows the umask (0644 under umask 022).  Reading a
file that is truncated, not a torch file, or a torch file of another program raises
:class:`CheckpointError` naming the file and what is wrong.

The trainer's side (:func:`trainer_state`, :func:`restore_trainer`): what a checkpoint holds of a
:class:`gfd.train.Trainer` -- models, optimisers, schedulers, loss scalers, RNG states, positions of
both data streams (:mod:`gfd.streams`), history -- so that a run continues exactly where it stopped.
The run's folder holds ``checkpoint.pt`` (:data:`CHECKPOINT_NAME`) and, after a crash mid-write, its
partial temporaries (:func:`stale_temporaries`); :func:`remove_run` deletes those and nothing else,
and only a checkpoint gfd wrote (:func:`is_gfd_checkpoint`).  While a run trains, its folder is
locked (:func:`open_run`, :func:`run_lock`): an ``fcntl.flock`` on ``.gfd-run.lock`` in the folder,
which names its holder (pid, command); a second run on the same folder is refused, and since the
kernel drops the lock with its process, a killed run never leaves a stale lock.
:func:`check_run_folder` refuses a run folder that cannot be created or written before any work,
and :func:`pretrain_cache_dir` says where a run caches C's pre-training.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import torch

from gfd.config import RESUMABLE_FIELDS, Config
from gfd.stepper import keep_device_adam
from gfd.streams import rng_state, set_rng_state
from gfd.utils import atomic_write

FORMAT = "gfd-checkpoint"
EXPORT_FORMAT = "gfd-weights"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("config", "classes", "step", "models")
CHECKPOINT_NAME = "checkpoint.pt"


class CheckpointError(ValueError):
    """A file that is not a readable gfd checkpoint; the message names the file and the problem."""


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` (plus the format tag) to ``path`` atomically; return the path."""
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise KeyError(f"checkpoint state lacks {missing}")
    payload = {"format": FORMAT, "version": FORMAT_VERSION, **state}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu", *,
                    allow_export: bool = False) -> dict[str, Any]:
    """Read and check a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    With ``allow_export`` a weights-only export (:func:`export_weights`) is accepted too (its
    ``format`` is :data:`EXPORT_FORMAT`); without it, one is refused with a clear error.
    """
    path = Path(path)
    check_checkpoint_file(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"{path} is not a readable torch checkpoint ({type(err).__name__}: {str(err)[:300]}); it may "
            f"be truncated, corrupt, or not written by gfd. Re-create it with `python -m gfd train`.") from err
    if isinstance(state, dict) and state.get("format") == EXPORT_FORMAT and not allow_export:
        raise CheckpointError(f"{path} is a weights-only export (G, config and classes, for `python -m gfd "
                              f"attribute` / `evaluate`); training cannot resume from it: use the run's full "
                              f"checkpoint.pt")
    if not isinstance(state, dict) or state.get("format") not in (FORMAT, EXPORT_FORMAT):
        what = f"a dict with keys {sorted(map(str, state))[:10]}" if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} is a torch file but not a gfd checkpoint (it holds {what}, "
                              f"without format={FORMAT!r}); was it written by another program?")
    if state.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} is a gfd checkpoint of format version {state.get('version')}, "
                              f"this code reads version {FORMAT_VERSION}; retrain or use the matching gfd")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path} is an incomplete gfd checkpoint: missing {missing}")
    return state


def check_checkpoint_file(path: str | os.PathLike) -> Path:
    """``path`` if it is a file; else a one-line error: a folder (naming the checkpoint file expected
    in it, :class:`CheckpointError`) or a missing file (``FileNotFoundError``)."""
    path = Path(path)
    if path.is_dir():
        inside = path / CHECKPOINT_NAME
        found = "it holds one" if inside.is_file() else "it holds none"
        raise CheckpointError(f"checkpoint {path} is a folder, not a checkpoint file; give the file, e.g. the run "
                              f"folder's {inside} ({found})")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return path


def is_gfd_checkpoint(path: str | os.PathLike) -> bool:
    """Is ``path`` a training checkpoint written by gfd (format :data:`FORMAT`)?  Read as
    :func:`load_checkpoint` reads one (weights-only, memory-mapped where possible); False for any other
    file, a weights-only export, or a folder."""
    path = Path(path)
    if not path.is_file():
        return False
    for mmap in (True, False):      # mmap needs torch's zip format; try the plain read for anything else
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except Exception:  # noqa: BLE001 -- not readable as a torch file: not ours
            continue
        return isinstance(state, dict) and state.get("format") == FORMAT
    return False


def export_weights(checkpoint: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the weights-only export of a checkpoint to ``out`` (atomically) and return its path.

    The export keeps what inference needs -- G's state_dict, config, classes, step and meta -- in
    float as trained, so attribution from it is identical to attribution from the checkpoint.
    ``out`` may not be the checkpoint itself, nor overwrite another full checkpoint.
    """
    src, dst = Path(checkpoint), Path(out)
    state = load_checkpoint(src, allow_export=True)
    if dst.exists() and (dst.is_dir() or dst.resolve() == src.resolve()):
        raise ValueError(f"--out {dst} is {'a folder' if dst.is_dir() else 'the checkpoint itself'}; "
                         f"give the path of a new file, e.g. {src.with_suffix('.weights.pt').name}")
    if dst.is_file():
        try:
            existing = torch.load(dst, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 -- not a torch file: overwriting it is the user's call
            existing = None
        if isinstance(existing, dict) and existing.get("format") == FORMAT:
            raise ValueError(f"{dst} is a full gfd checkpoint; exporting over it would lose its training "
                             f"state. Give another --out path, or delete it yourself first.")
    if "G" not in state["models"]:
        raise CheckpointError(f"{src} holds no generator G (networks: {sorted(state['models'])})")
    payload = {"format": EXPORT_FORMAT, "version": FORMAT_VERSION, "config": state["config"],
               "classes": list(state["classes"]), "step": state["step"], "meta": state.get("meta", {}),
               "models": {"G": state["models"]["G"]}}
    return atomic_write(dst, lambda tmp: torch.save(payload, tmp))


# --------------------------------------------------------------------------------------------------
# the trainer's state
# --------------------------------------------------------------------------------------------------

def trainer_state(trainer) -> dict[str, Any]:
    """What :meth:`gfd.train.Trainer.save` writes: everything the trainer needs to continue exactly.
    G is saved with its last trained weights, also while the kept ones (``cfg.select``) are in it."""
    t = trainer

    def opt_state(o):
        return o.state_dict() if o is not None else None
    return {
        "config": t.cfg.to_dict(),
        "classes": t.classes,
        "step": t.step,
        "c_pretrained": t.c_pretrained,
        "models": {name: (t._last_G if name == "G" and t._last_G is not None else m.state_dict())
                   for name, m in t.networks().items()},
        "selection": t.selection.state_dict(),
        "optim": {"G": opt_state(t.opt_G), "DC": opt_state(t.opt_DC)},
        "sched": {"G": opt_state(t.sched_G), "DC": opt_state(t.sched_DC)},
        "scaler": {"G": t.scaler_G.state_dict(), "DC": t.scaler_DC.state_dict()},
        "rng": rng_state(),
        "streams": {"train": t.train_stream.state_dict() if t.train_stream else None,
                    "real": t.real_stream.state_dict() if t.real_stream else None},
        "history": t.history,
        "meta": t.meta,
        "snapshots": t.snapshots,
    }


def restore_trainer(trainer, path: str | os.PathLike, resume_data: bool = True) -> None:
    """Load the checkpoint at ``path`` into ``trainer`` (:meth:`gfd.train.Trainer.load`).

    Refused (``ValueError``) when it was trained with another config (but for
    :data:`gfd.config.RESUMABLE_FIELDS`), on other classes, or holds a network this config does not
    build.  With ``resume_data`` the data streams and the RNGs continue where they stopped.  The
    optimisers keep this device's Adam (:func:`gfd.stepper.keep_device_adam`).
    """
    t = trainer
    state = load_checkpoint(path)
    saved = Config.from_dict(state["config"])
    differ = sorted(k for k, v in saved.to_dict().items()
                    if getattr(t.cfg, k) != v and k not in RESUMABLE_FIELDS)
    if differ:
        raise ValueError(f"checkpoint {path} was trained with a different config: "
                         + ", ".join(f"{k}={getattr(saved, k)!r} (here {getattr(t.cfg, k)!r})"
                                     for k in differ))
    if list(state["classes"]) != t.classes:
        raise ValueError(f"checkpoint {path} was trained on classes {state['classes']}, "
                         f"this trainer's data have {t.classes}; if only the order differs, list the "
                         f"checkpoint's order in ROOT/classes.json of the dataset")
    nets = t.networks()
    for name, sd in state["models"].items():
        if name not in nets:
            raise ValueError(f"checkpoint {path} holds network {name} that this config does not build")
        try:
            nets[name].load_state_dict(sd)
        except RuntimeError as err:
            raise ValueError(f"checkpoint {path}: network {name} does not fit: {str(err)[:400]}") from err
    for key, obj in (("G", t.opt_G), ("DC", t.opt_DC)):
        if obj is not None and state["optim"].get(key) is not None:
            obj.load_state_dict(state["optim"][key])
            keep_device_adam(obj)
    for key, obj in (("G", t.sched_G), ("DC", t.sched_DC)):
        if obj is not None and state["sched"].get(key) is not None:
            obj.load_state_dict(state["sched"][key])
    t.scaler_G.load_state_dict(state["scaler"]["G"])
    t.scaler_DC.load_state_dict(state["scaler"]["DC"])
    t.step = int(state["step"])
    t.c_pretrained = bool(state["c_pretrained"])
    t.history = state["history"]
    t.meta = t.history["meta"] = dict(state["meta"])
    t.snapshots = state["snapshots"]
    t._last_G = None
    if state.get("selection") is not None:
        t.selection.load_state_dict(state["selection"])
        t.selection.patience = t.cfg.patience     # a resumable field
    if resume_data:
        for name, stream in (("train", t.train_stream), ("real", t.real_stream)):
            if stream is not None and state["streams"].get(name) is not None:
                stream.load_state_dict(state["streams"][name])
        set_rng_state(state["rng"])
    t.last_checkpoint = Path(path)


# --------------------------------------------------------------------------------------------------
# the run's folder
# --------------------------------------------------------------------------------------------------

def remove_run(out_dir: str | os.PathLike) -> list[Path]:
    """Delete what a run wrote in ``out_dir`` -- its checkpoint and stale temporaries of it -- and
    nothing else; return what was deleted.  A folder that holds other files but no checkpoint is
    not a run folder: it is refused (``ValueError``) and left untouched."""
    out = Path(out_dir)
    if not out.exists():
        return []
    if not out.is_dir():
        raise ValueError(f"{out} is not a folder")
    ckpt = out / CHECKPOINT_NAME
    temps = stale_temporaries(out)
    if not ckpt.exists() and any(p not in temps and p.name != LOCK_NAME for p in out.iterdir()):
        raise ValueError(f"{out} is not a run folder (it holds no {CHECKPOINT_NAME}); --fresh deletes only "
                         f"a run's checkpoint, so nothing was deleted. Pick another --out, or none.")
    if (ckpt.exists() or ckpt.is_symlink()) and (ckpt.is_symlink() or not is_gfd_checkpoint(ckpt)):
        raise ValueError(f"{ckpt} is not a checkpoint written by gfd (not a torch file with "
                         f"format={FORMAT!r}{', but a link' if ckpt.is_symlink() else ''}); --fresh deletes only "
                         f"a gfd run's checkpoint, so nothing was deleted. Move it away yourself, or pick another --out.")
    removed = [p for p in (ckpt, *temps) if p.exists()]
    for p in removed:
        p.unlink()
    return removed


def stale_temporaries(out_dir: str | os.PathLike) -> list[Path]:
    """Partial checkpoint files (``.checkpoint.pt.*.tmp``) left by a run that was killed mid-write."""
    return sorted(Path(out_dir).glob(f".{CHECKPOINT_NAME}.*.tmp"))


# --------------------------------------------------------------------------------------------------
# checking, locking and placing a run folder
# --------------------------------------------------------------------------------------------------

LOCK_NAME = ".gfd-run.lock"
"""The lock file of a run folder (:func:`run_lock`); it holds its holder's pid and command."""


class RunFolderBusyError(ValueError):
    """Another process holds the run folder's lock (:func:`run_lock`); the message names it."""


def write_problem(folder: Path) -> str | None:
    """Why a file cannot be created in the existing folder ``folder`` (None: it can).  Tried, not
    guessed from permission bits: root ignores those, a read-only mount or /proc does not."""
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".gfd-write-check-"):
            pass
    except OSError as err:
        return err.strerror or type(err).__name__
    return None


def check_run_folder(out_dir: str | os.PathLike, what: str = "run folder") -> Path:
    """``out_dir`` if it can hold a run: an existing writable folder, or a path whose nearest existing
    parent is a writable folder (it is created when the run starts).  Otherwise a one-line
    ``ValueError`` (a file, a path under a file, a folder that cannot be written), before any work.
    Creates nothing."""
    out = Path(out_dir)
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise ValueError(f"{what} {out} exists and is not a folder; give a folder (it is created if missing)")
        probe = out
    else:
        probe = out.absolute().parent
        while not (probe.exists() or probe.is_symlink()):
            probe = probe.parent
        if not probe.is_dir():
            raise ValueError(f"{what} {out} cannot be created: {probe} is not a folder")
    problem = write_problem(probe)
    if problem is not None:
        where = "it" if probe == out else f"its parent {probe}"
        raise ValueError(f"{what} {out} cannot be written: a file cannot be created in {where} ({problem}); "
                         f"pick a writable folder")
    return out


def pretrain_cache_dir(out_dir: str | os.PathLike) -> Path:
    """The folder whose ``pretrained-C/`` caches C's pre-training for a run in ``out_dir``
    (:mod:`gfd.pretrain`).  The run folder's parent, so that runs side by side share one pre-trained C
    (the default runs ``data/runs/<preset>-<key>`` share ``data/runs/pretrained-C``), if that parent
    is a writable folder or can be created as one, and is not the run folder itself (``--out /``).
    Otherwise the course's runs cache, :func:`gfd.utils.runs_dir` (``data/runs``): a read-only
    parent (``--out /mnt/ro/run``) or the file-system root never receives a cache folder."""
    from gfd.utils import runs_dir

    out = Path(out_dir).absolute()
    parent = out.parent
    if parent != out:
        try:
            return check_run_folder(parent)      # a writable folder, or one that can be created
        except ValueError:
            pass
    return runs_dir()


def _command_line() -> str:
    try:
        args = Path("/proc/self/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        return " ".join(a.decode(errors="replace") for a in args)
    except OSError:
        return " ".join([sys.executable, *sys.argv])


def _holder(fd: int) -> str:
    """Who holds the lock, from what it wrote into the lock file."""
    try:
        info = json.loads(os.pread(fd, 65536, 0).decode() or "null")
        return f"pid {info['pid']}, command: {info['command']}, since {info['since']}"
    except (OSError, ValueError, TypeError, KeyError):
        return "a process that is just starting (it has not written its pid yet)"


@contextlib.contextmanager
def run_lock(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold the lock of the existing run folder ``out_dir`` for the block (one process at a time).

    An exclusive, non-blocking ``fcntl.flock`` on ``out_dir/.gfd-run.lock``, into which the holder
    writes its pid and command.  A folder another process holds raises :class:`RunFolderBusyError`
    naming it.  The lock file is removed when the block ends; the kernel releases the lock when its
    process dies, so a killed run leaves at most an unlocked file, which the next run takes over.
    Where ``fcntl`` does not exist (Windows), nothing is locked."""
    try:
        import fcntl
    except ImportError:             # no flock: run unlocked
        yield Path(out_dir) / LOCK_NAME
        return
    path = Path(out_dir) / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:             # held by another process
            holder = _holder(fd)
            os.close(fd)
            raise RunFolderBusyError(f"run folder {Path(out_dir)} is in use by another gfd run ({holder}); wait "
                                     f"for it to finish or stop it, or pick another --out") from None
        try:                        # the file we locked may have been removed by its last holder meanwhile
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        info = {"pid": os.getpid(), "command": _command_line(), "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)         # while still held: no other process can be holding this file
        os.close(fd)


@contextlib.contextmanager
def open_run(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Check the run folder (:func:`check_run_folder`), create it and hold its lock (:func:`run_lock`)
    for the block; :func:`gfd.train.load_or_train` trains inside it."""
    out = check_run_folder(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"run folder {out} cannot be created ({err.strerror or err})") from None
    with run_lock(out):
        yield out
