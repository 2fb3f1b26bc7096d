"""The machinery under GFD-Net's training step: devices, mixed precision, several processes, loss checks.

:class:`gfd.train.Trainer` says what one iteration of Sec. 3.4 does; :class:`Stepper`, its base
class, holds what makes that iteration run well on the hardware at hand without changing what it
computes:

* **the device** (``cfg.device``): networks and batches on it; on CUDA, mixed precision (bf16
  where supported, else fp16 with loss scaling by a ``GradScaler``) and ``channels_last``; on the
  CPU neither, so a CPU run is plain float32 and resumes bit-exactly;
* **Adam** fused on CUDA (:func:`adam_options`), kept to this device's implementation when a
  checkpoint of another device is loaded (:func:`keep_device_adam`), and ``cfg.compile``
  (:func:`compile_networks`);
* **deferred loss checks**: inside :meth:`Stepper.deferred_checks` (the training loop) a step keeps
  its loss values on the device, detached, and the loop converts, checks and records the queued
  steps in one host sync at its log, evaluation and checkpoint points (:meth:`Stepper._flush`,
  always before an evaluation or a checkpoint, so a non-finite loss still stops the run, naming the
  step and the term, before anything is saved).  A GPU step therefore never waits for the host;
* **several processes** (``torchrun --nproc_per_node=N -m gfd train``, :mod:`gfd.distributed`): the
  global batch stays ``cfg.batch_size`` and each rank keeps its share of the same global batches
  (:func:`training_streams`); G, D and C normalise with the global batch's BatchNorm
  statistics and run under DistributedDataParallel in the training steps (:meth:`Stepper._distribute`;
  D and C only in their own step: fixed in G's, they need no gradient sync); the loss values are
  averaged over the ranks.  So a run on N processes makes the same updates as the single-process
  run up to the order of floating-point sums: not bit-identical, and the gap grows over a run
  (docs/real-data-and-gpus.md has the measured numbers).  C's pre-training runs whole on every rank (the same work, so no rank
  waits), val accuracy is measured by rank 0 and given to all (one measurement, one stop decision),
  checkpoints are written by rank 0 and resume on any number of ranks.  In one process none of this
  runs;
* **the history**: the per-step loss values and lr as plain lists (:func:`new_history`), and the
  fixed images whose fingerprints are kept at every evaluation (:func:`snapshot_images`).
"""
from __future__ import annotations

import contextlib
import contextvars
import math
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from gfd import distributed
from gfd.config import Config
from gfd.evaluate import accuracy
from gfd.layout import TRAIN, VAL
from gfd.losses import NonFiniteLossError
from gfd.models.generator import EncoderHead
from gfd.streams import BatchStream, class_indices, stream_for
from gfd.utils import choose_device

G_TERMS = ("L_z", "L_adv_G", "L_cls_G", "L_percept", "L_G")
"""The loss values of the G step (Eq. 7): its terms and their weighted sum ``L_G``."""
DC_TERMS = ("L_cls_C", "L_adv_D", "L_DC")
"""The loss values of the D/C step (Eq. 8): its terms and their sum ``L_DC``."""
SNAPSHOT_IMAGES = 4


# --------------------------------------------------------------------------------------------------
# optimisers and compilation
# --------------------------------------------------------------------------------------------------

def adam_options(device: torch.device) -> dict[str, Any]:
    """Adam's fused kernel on CUDA (one launch per step for all parameters); elsewhere torch's
    default implementation, whose numbers a CPU run keeps."""
    return {"fused": True} if device.type == "cuda" else {}


def keep_device_adam(opt: torch.optim.Optimizer) -> None:
    """After ``load_state_dict``: the Adam implementation of *this* device (:func:`adam_options`), not
    the checkpoint's, with the step counters where it keeps them (on the device when fused, else on
    the CPU), so a GPU checkpoint resumes on the CPU as a CPU run and vice versa."""
    fused = opt.defaults.get("fused")
    for group in opt.param_groups:
        group["fused"] = fused
        for p in group["params"]:
            state = opt.state.get(p, {})
            if "step" in state:
                state["step"] = state["step"].to(device=p.device if fused else "cpu", dtype=torch.float32)


def compile_networks(nets: dict[str, nn.Module]) -> None:
    """``cfg.compile``: ``torch.compile``, in place (:meth:`torch.nn.Module.compile`, so state dicts
    and checkpoints stay as they are), what the training step calls: G's parts (its forward,
    ``classify`` and ``fingerprint`` compose them) and D, C and F whole."""
    for name, net in nets.items():
        for part in (net.children() if name == "G" else (net,)):
            part.compile()


# --------------------------------------------------------------------------------------------------
# data, history and snapshots
# --------------------------------------------------------------------------------------------------

def training_streams(cfg: Config, bundle) -> tuple[BatchStream, BatchStream | None]:
    """The trainer's two streams over the train split of ``bundle``: G's batches (x, y) and, unless
    G-only, the ``real`` images that carry the fingerprints (x_real); this process's shard of them in
    a distributed run.  :mod:`gfd.bench` times the same streams."""
    train_loader, train_ds = bundle.loaders[TRAIN], bundle.datasets[TRAIN]
    shard = {"rank": distributed.rank(), "world_size": distributed.world_size()}   # 0, 1 in one process
    train_stream = stream_for(train_loader, seed=cfg.seed * 2, **shard)
    if cfg.g_only:
        return train_stream, None
    real = class_indices(train_ds, bundle.real_index)
    if not real:
        raise ValueError(f"the train split of {bundle.root} has no image of class 'real'; "
                         f"GFD-Net adds fingerprints to real images (Eq. 1)")
    return train_stream, stream_for(train_loader, seed=cfg.seed * 2 + 1, dataset=Subset(train_ds, real), **shard)



def new_history() -> dict[str, Any]:
    """Plain lists per quantity, ready to plot; ``meta`` says what the run was measured with."""
    keys = ("step", "lr", *G_TERMS, *DC_TERMS, "eval_step", "val_acc", "c_pretrain_loss", "c_val_acc")
    return {k: [] for k in keys} | {"meta": {}}


def snapshot_images(ds: Dataset, real_label: int | None) -> dict[str, Any]:
    """A fixed batch of ``ds`` (its first image of each class, up to 4) whose fingerprints the
    trainer keeps at every evaluation (``images``, ``labels``, and a ``real`` image); ``{}`` if
    ``ds`` has no ``targets``."""
    firsts: dict[int, int] = {}
    for i, t in enumerate(getattr(ds, "targets", [])):
        firsts.setdefault(int(t), i)
    picks = [firsts[c] for c in sorted(firsts)][:SNAPSHOT_IMAGES]
    if not picks:
        return {}
    plain = lambda t: torch.as_tensor(t).as_subclass(torch.Tensor).float()  # noqa: E731 (no tv_tensors)
    out = {"images": torch.stack([plain(ds[i][0]) for i in picks]), "labels": [int(ds[i][1]) for i in picks]}
    if real_label is not None and real_label in firsts:
        out["real"] = plain(ds[firsts[real_label]][0])
    return out


# --------------------------------------------------------------------------------------------------
# the stepper
# --------------------------------------------------------------------------------------------------

LOG_EVERY = 50
"""Steps between the loop's log points, where it checks and records the loss values of the steps
since the last such point (and shows the latest in the progress bar); evaluations, checkpoints and
the end of a run are such points too."""


StepCallback = Callable[[int, int], Any]
"""``callback(step, total)``: told the step reached after each iteration (and once, with the step a run
starts from, before C's pre-training); a true return value asks the run to stop there."""

_WATCHER: contextvars.ContextVar[StepCallback | None] = contextvars.ContextVar("gfd_train_watcher", default=None)


class TrainingStopped(RuntimeError):
    """:meth:`gfd.train.Trainer.fit` stopped because its step callback asked it to; the run's checkpoint (if it
    has a run folder) was written at ``step``, so :func:`gfd.train.load_or_train` resumes it from there."""

    def __init__(self, step: int, total: int, checkpoint: Path | None):
        self.step, self.total, self.checkpoint = step, total, checkpoint
        where = f"checkpoint {checkpoint}" if checkpoint is not None else "no run folder, nothing saved"
        super().__init__(f"training stopped on request at step {step}/{total} ({where})")


@contextlib.contextmanager
def watch_steps(callback: StepCallback):
    """Within the block, every :meth:`gfd.train.Trainer.fit` in this thread (however deep the call that
    reaches it: :func:`gfd.train.load_or_train`, :func:`gfd.runs.train_and_measure`, a notebook's lambda)
    reports its steps to ``callback`` instead of showing its own progress bars, and stops when the
    callback returns true (:class:`TrainingStopped`).

    A context variable rather than a parameter, so that a front-end (notebook 05's panel) can watch
    a run started through functions that know nothing of it.  The callback is called between
    iterations and must not draw random numbers: a watched run is bit-identical to an unwatched one.
    """
    token = _WATCHER.set(callback)
    try:
        yield callback
    finally:
        _WATCHER.reset(token)


def current_watcher() -> StepCallback | None:
    """The callback of the enclosing :func:`watch_steps` block in this thread, if any."""
    return _WATCHER.get()


class Stepper:
    """Base class of :class:`gfd.train.Trainer`: how its steps run, not what they compute.

    :meth:`_init_stepper` sets :attr:`device`, :attr:`amp_dtype` and :attr:`memory_format`; the
    trainer provides ``step`` (iterations done), ``history``, ``meta``, ``last_checkpoint``, ``cfg``
    and the networks ``G``, ``D``, ``C``.
    """

    device: torch.device
    amp_dtype: torch.dtype | None
    memory_format: torch.memory_format

    def _init_stepper(self, cfg: Config) -> None:
        self.device = choose_device(cfg.device)
        cuda = self.device.type == "cuda"
        # mixed precision and channels_last on CUDA only: on the CPU they are slower, and resumes
        # must be bit-exact
        self.amp_dtype = None
        if cuda and cfg.amp:
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.memory_format = torch.channels_last if cuda else torch.contiguous_format
        self._ddp: dict[str, nn.Module] = {}     # the DDP wrappers of a distributed run (see _distribute)
        self._defer = False     # inside deferred_checks(): loss values stay on the device until _flush
        self._pending: list[tuple[int, float, dict[str, torch.Tensor]]] = []   # (step, lr, values) not yet flushed

    def _precision_meta(self) -> dict[str, str]:
        """What the history's ``meta`` records of the device and the precision."""
        return {"device": str(self.device),
                "amp": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "off"}

    def _place(self, nets: dict[str, nn.Module], compile: bool = False) -> None:
        """Move ``nets`` to the device (``channels_last`` on CUDA) and, with ``compile``, compile them."""
        for m in nets.values():
            m.to(self.device, memory_format=self.memory_format)
        if compile:
            compile_networks(nets)

    def _grad_scaler(self) -> torch.amp.GradScaler:
        """Loss scaling for one optimiser: active with fp16 only (bf16 and float32 need none)."""
        return torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

    # ---- devices ------------------------------------------------------------------------------

    def _autocast(self):
        """Mixed precision of this device (:attr:`amp_dtype`), or nothing."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=self.memory_format) if x.ndim == 4 else x

    def _next(self, stream: BatchStream) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch of ``stream``, on the device."""
        x, y = next(stream)
        return self._to_device(x), self._to_device(y)

    def _attach_data(self, bundle) -> None:
        """The training streams of ``bundle`` (:func:`training_streams`) and, from its val split, the
        images whose fingerprints :meth:`_snapshot` keeps."""
        self.train_stream, self.real_stream = training_streams(self.cfg, bundle)
        if VAL in bundle.datasets:
            real_label = bundle.real_index if "real" in self.classes else None
            self.snapshots |= snapshot_images(bundle.datasets[VAL], real_label)

    def _snapshot(self) -> None:
        """G's fingerprints of the snapshot images (eval mode, float16 on the CPU), kept with the step."""
        if "images" not in self.snapshots:
            return
        with torch.no_grad(), self._autocast():
            self.G.eval()
            f = self.G.fingerprint(self._to_device(self.snapshots["images"]))
            self.G.train()
        self.snapshots["step"].append(self.step)
        self.snapshots["fingerprint"].append(f.float().cpu().half())

    def validate(self, split: str = VAL, model: str = "G") -> float:
        """Top-1 accuracy on a split of G_enc + H (``model="G"``) or of C, on this device with its
        mixed precision; leaves the RNGs as they were."""
        if self.bundle is None:
            raise RuntimeError("this Trainer has no data to validate on")
        net = EncoderHead(self.G) if model == "G" else self.C
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), self._autocast():
            return accuracy(net, self.bundle[split], self.device)

    def _net(self, name: str) -> nn.Module | None:
        """The network the training steps call: its DDP wrapper in a distributed run, else itself."""
        return self._ddp.get(name, getattr(self, name))

    def _distribute(self) -> None:
        """In a distributed run, once, after C's pre-training: BatchNorm over the global batch in G, D
        and C (:func:`gfd.distributed.sync_batchnorm`, in place) and their DDP wrappers, which the
        training steps call (:meth:`_net`; ``G``, ``D``, ``C`` stay the plain networks: checkpoints,
        evaluation and methods use them).  DDP starts by giving every rank rank 0's weights."""
        if self._ddp or not distributed.active():
            return
        for net in (self.G, self.D, self.C):
            if net is not None:
                distributed.sync_batchnorm(net)
        # a G-only run trains G_enc + H alone: the decoder gets no gradient
        self._ddp["G"] = (distributed.wrap(EncoderHead(self.G), find_unused_parameters=True) if self.cfg.g_only
                          else distributed.wrap(self.G))
        for name, net in (("D", self.D), ("C", self.C)):
            if net is not None:
                self._ddp[name] = distributed.wrap(net)
        self.meta["processes"] = distributed.world_size()

    # ---- loss values: checked, deferred, recorded ----------------------------------------------------

    def _finite(self, terms: dict[str, torch.Tensor], where: str, step: int | None = None) -> dict[str, float]:
        """All loss values as floats (one device sync); raise naming the first non-finite one.
        Within :meth:`deferred_checks` (the training loop) they stay on the device, detached, for
        :meth:`_flush` to convert and check with other steps' (no host sync per step)."""
        stacked = torch.stack([t.detach().float() for t in terms.values()])
        if self._defer:
            return dict(zip(terms, stacked.unbind()))
        out = dict(zip(terms, distributed.mean(stacked).tolist()))
        self._check_finite(out, self.step + 1 if step is None else step, where)
        return out

    def _check_finite(self, values: dict[str, float], step: int, where: str | None = None) -> None:
        """Raise :class:`NonFiniteLossError` naming the first non-finite value, its step and the half
        of the iteration it came from (``where``; by default read from the term: G's or D/C's)."""
        for name, v in values.items():
            if not math.isfinite(v):
                last = (f"the last good checkpoint is {self.last_checkpoint} (kept as it was)"
                        if self.last_checkpoint else "no checkpoint had been written yet")
                where = where or ("G step" if name in G_TERMS else "D/C step")
                raise NonFiniteLossError(
                    f"loss {name} = {v} at step {step} ({where}); training stopped, {last}. "
                    f"Try a lower lr, or amp=false.")

    @contextlib.contextmanager
    def deferred_checks(self):
        """Within: :meth:`train_step` returns its loss values as detached device tensors, and checks
        nothing; the loop queues them (:meth:`_queue`) for :meth:`_flush`.  On the way out (an
        interrupt too) what is still queued is flushed, with this process's values."""
        self._defer = True
        try:
            yield
        finally:
            self._defer = False
            self._flush(reduce=False)

    def _queue(self, step: int, lr: float, values: dict[str, torch.Tensor]) -> None:
        """Keep a step's loss values (device tensors) for the next :meth:`_flush`."""
        self._pending.append((step, lr, values))

    def _flush(self, reduce: bool = True) -> dict[str, float]:
        """Check and record the queued steps in order, with one host sync (their values averaged over
        the ranks in a distributed run when ``reduce``); return the last step's values.  A non-finite
        value raises as in :meth:`_check_finite`: the steps before it are recorded, nothing after."""
        pending, self._pending = self._pending, []
        if not pending:
            return {}
        flat = torch.stack([v for _, _, values in pending for v in values.values()])
        numbers = iter((distributed.mean(flat) if reduce else flat).tolist())
        for step, lr, values in pending:
            floats = {name: next(numbers) for name in values}
            self._check_finite(floats, step)
            self._record(step, lr, floats)
        return floats

    def _record(self, step: int, lr: float, values: dict[str, float]) -> None:
        h = self.history
        h["step"].append(step)
        h["lr"].append(lr)
        for name in (*G_TERMS, *DC_TERMS):
            h[name].append(values.get(name, float("nan")))

    # ---- the protocol's loop: log, evaluate, select, save, stop (gfd.protocol) ----------------------

    def _loop(self, target: int, bar, progress: bool, on_step: StepCallback | None = None) -> None:
        cfg = self.cfg
        with self.deferred_checks():
            while self.step < target:
                x, y = self._next(self.train_stream)
                x_real = self._next(self.real_stream)[0] if self.real_stream is not None else None
                values = self.train_step(x, y, x_real)
                self.step += 1
                self._queue(self.step, self.opt_G.param_groups[0]["lr"], values)
                bar.update(1)
                halt = on_step is not None and bool(on_step(self.step, target)) and self.step < target
                evaluate = (cfg.eval_every and self.step % cfg.eval_every == 0) or self.step == target
                save = self.out_dir is not None and ((cfg.ckpt_every and self.step % cfg.ckpt_every == 0)
                                                     or self.step == target)
                if evaluate or save or halt or self.step % LOG_EVERY == 0 or self.selection.stop:
                    last = self._flush()           # before any evaluation or checkpoint: raises on a non-finite loss
                    bar.set_postfix({k: f"{v:.3f}" for k, v in last.items() if k in ("L_G", "L_z", "L_DC")})
                if evaluate:
                    acc = self.evaluate_step()
                    if progress:
                        bar.write(f"step {self.step}: val acc {acc:.3f}")
                stop = self.selection.stop
                if save or (self.out_dir is not None and (stop or halt)):
                    self.save()
                if halt and not stop:
                    raise TrainingStopped(self.step, target, self.last_checkpoint if self.out_dir is not None else None)
                if stop:
                    if progress:
                        bar.write(f"step {self.step}: val accuracy reached a plateau (no new best in "
                                  f"{cfg.patience} evaluations); stopped")
                    break

    @property
    def done(self) -> bool:
        """Training is over: the budget is spent, or val accuracy reached a plateau (``patience``)."""
        return self.step >= self.cfg.steps or self.selection.stop

    def use_selected(self) -> None:
        """Put the weights the protocol keeps (``cfg.select``) into G; :meth:`use_last` undoes it."""
        if self._last_G is None:
            self._last_G = {k: v.detach().clone() for k, v in self.G.state_dict().items()}
            self.selection.finish(self.G, "plateau" if self.selection.stop else "budget")
            self.history["selection"] = self.selection.summary()

    def use_last(self) -> None:
        """Put G's last trained weights back (to continue training)."""
        if self._last_G is not None:
            self.G.load_state_dict(self._last_G)
            self._last_G = None

    def evaluate_step(self) -> float:
        """Validation accuracy of G_enc + H and a fingerprint snapshot, recorded in the history."""
        acc = distributed.from_main(self.validate)     # measured once (rank 0), the same for every rank
        self.history["eval_step"].append(self.step)
        self.history["val_acc"].append(acc)
        self.selection.update(self.step, acc, self.G)
        self._snapshot()
        return acc
