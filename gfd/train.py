"""Training GFD-Net (Sec. 3.4 and 4.1): C pre-training, then alternating G / (D, C) updates.

The paper's schedule, literally:

1. C is "trained previously" on the input images with Eq. 3 (:meth:`Trainer.pretrain_classifier`).
2. Each iteration (:meth:`Trainer.train_step`) first updates G + H with Eq. 7 while D and C are
   fixed (:meth:`Trainer.g_step`), then updates D and C with Eq. 8 while G is fixed
   (:meth:`Trainer.dc_step`).  The fingerprinted batch of the G step is reused, detached, by the
   D/C step, so G's graph is built once per iteration.
3. Adam with lr ``cfg.lr`` (paper: 1e-4, torch's default betas: the paper gives none) for G + H
   and for D + C; StepLR (``lr_step`` 500, ``lr_gamma`` 0.9) stepped every iteration.

The CPU presets train by the course's protocol instead (:mod:`gfd.protocol`): a cosine lr over the
budget, val accuracy of G_enc + H every ``eval_every`` steps, the best val weights of G kept, an early
stop on a plateau (``lr_schedule``, ``select``, ``patience``).

Randomness belongs to the run (experiment protocol, rule 3): G, D, C and F are initialised under
generators seeded by (seed, network name); G's batches, the x_real pairing and C's pre-training
each have their own stream; crops are seeded per batch (:mod:`gfd.streams`).  So two rows of
Table 4 with the same seed share G's initial weights, G's batches and (through the cache of
:mod:`gfd.pretrain`) the pre-trained C.

Ablations (Table 4): ``use_D``, ``use_C``, ``use_percept`` drop a network and its loss terms; with
all three off (``cfg.g_only``) G + H is trained with L_z alone, and only G_enc + H run.

Input pairing: ``x_real`` comes from a second, separately shuffled stream over the ``real`` class
of the train split, so ``x_fp = x_real + f`` puts each fingerprint on a randomly drawn real image.

Several processes (``torchrun --nproc_per_node=N -m gfd train``, :mod:`gfd.distributed`): the global
batch stays ``cfg.batch_size``, each rank keeps its share of the same global batches (both streams),
G, D and C normalise with the global batch's BatchNorm statistics and run under
DistributedDataParallel in the training steps (D and C only in their own step: fixed in G's, they
need no gradient sync), and the loss values are averaged over the ranks -- so a run on N processes
follows the single-process run up to floating-point rounding.  C's pre-training runs whole on every
rank (the same work, so no rank waits), val accuracy is measured by rank 0 and given to all (one
measurement, one stop decision), checkpoints are written by rank 0 and resume on any number of ranks.
In one process none of this runs.

On a GPU (issue 16) a training step does not wait for the host: the loop keeps each step's loss
values on the device and checks and records them in one batch at its log, evaluation and checkpoint
points (:meth:`Trainer._flush`, always before an evaluation or a checkpoint, so a non-finite loss
still stops the run, naming the step and the term, before anything is saved); Adam runs fused on
CUDA (:func:`adam_options`); ``cfg.compile`` compiles the networks (:func:`compile_networks`).  None
of this changes a CPU run.

This is the only module that wires networks, losses, optimisers and data together.  Everything it
needs to continue a run exactly -- models, optimisers, schedulers, RNG states, positions of both
data streams (:mod:`gfd.streams`), history -- goes into the checkpoint (:mod:`gfd.checkpoint`).

:func:`load_or_train` is the one "load if present, else train" rule: the CLI, the runners and the
notebooks all call it.
"""
from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from gfd import distributed, losses
from gfd.checkpoint import load_checkpoint, save_checkpoint
from gfd.config import RESUMABLE_FIELDS, Config
from gfd.evaluate import accuracy
from gfd.losses import NonFiniteLossError
from gfd.models.classifier import build_classifier
from gfd.models.discriminator import build_discriminator
from gfd.models.generator import EncoderHead, build_generator
from gfd.models.perceptual import build_perceptual
from gfd.pretrain import pretrain_classifier
from gfd.protocol import Selection, make_scheduler, min_stop_step
from gfd.streams import BatchStream, class_indices, rng_state, set_rng_state, stream_for
from gfd.utils import choose_device, pbar, runs_dir, seed_everything, seeded

__all__ = ["Trainer", "load_or_train", "default_run_dir", "fixed", "NonFiniteLossError", "CHECKPOINT_NAME"]

G_TERMS = ("L_z", "L_adv_G", "L_cls_G", "L_percept", "L_G")
DC_TERMS = ("L_cls_C", "L_adv_D", "L_DC")
CHECKPOINT_NAME = "checkpoint.pt"
SNAPSHOT_IMAGES = 4
LOG_EVERY = 50
"""Steps between the loop's log points, where it checks and records the loss values of the steps
since the last such point (and shows the latest in the progress bar); evaluations, checkpoints and
the end of a run are such points too."""


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------

def new_history() -> dict[str, Any]:
    """Plain lists per quantity, ready to plot; ``meta`` says what the run was measured with."""
    keys = ("step", "lr", *G_TERMS, *DC_TERMS, "eval_step", "val_acc", "c_pretrain_loss", "c_val_acc")
    return {k: [] for k in keys} | {"meta": {}}


@contextlib.contextmanager
def fixed(*modules: nn.Module | None):
    """D and C held fixed for the G step: no parameter gradients, BatchNorm statistics untouched.

    They stay in train mode, so G is judged by the same function (BatchNorm with batch statistics)
    that the D/C step trains -- as pix2pix does with its D; running statistics of D and C would be
    computed on the other mode's batches otherwise.  Only the running averages are protected
    (``track_running_stats`` off for the duration), so the G step leaves D and C exactly unchanged.
    """
    modules = [m for m in modules if m is not None]
    saved_grad = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    bns = [b for m in modules for b in m.modules() if isinstance(b, nn.modules.batchnorm._BatchNorm)]
    saved_bn = [(b, b.track_running_stats) for b in bns]
    for p, _ in saved_grad:
        p.requires_grad_(False)
    for b in bns:
        b.track_running_stats = False
    try:
        yield
    finally:
        for p, flag in saved_grad:
            p.requires_grad_(flag)
        for b, flag in saved_bn:
            b.track_running_stats = flag


def adam_options(device: torch.device) -> dict[str, Any]:
    """Issue 16: Adam's fused kernel on CUDA (one launch per step for all parameters); elsewhere
    torch's default implementation, so a CPU run stays bit-for-bit what it was."""
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
    """``cfg.compile`` (issue 16): ``torch.compile``, in place (:meth:`torch.nn.Module.compile`, so
    state dicts and checkpoints stay as they are), what the training step calls: G's parts (its
    forward, ``classify`` and ``fingerprint`` compose them) and D, C and F whole."""
    for name, net in nets.items():
        for part in (net.children() if name == "G" else (net,)):
            part.compile()


def training_streams(cfg: Config, bundle) -> tuple[BatchStream, BatchStream | None]:
    """The trainer's two streams over the train split of ``bundle``: G's batches (x, y) and, unless
    G-only, the ``real`` images that carry the fingerprints (x_real); this process's shard of them in
    a distributed run.  :mod:`gfd.bench` times the same streams."""
    train_loader, train_ds = bundle.loaders["train"], bundle.datasets["train"]
    shard = {"rank": distributed.rank(), "world_size": distributed.world_size()}   # 0, 1 in one process
    train_stream = stream_for(train_loader, seed=cfg.seed * 2, **shard)
    if cfg.g_only:
        return train_stream, None
    real = class_indices(train_ds, bundle.real_index)
    if not real:
        raise ValueError(f"the train split of {bundle.root} has no image of class 'real'; "
                         f"GFD-Net adds fingerprints to real images (Eq. 1)")
    return train_stream, stream_for(train_loader, seed=cfg.seed * 2 + 1, dataset=Subset(train_ds, real), **shard)


def default_run_dir(cfg: Config, cache_dir: str | os.PathLike | None = None, data: str | None = None) -> Path:
    """``cache_dir/<preset>-<key>``: the key is :meth:`Config.key` of the config and of ``data`` (a
    :attr:`gfd.data.DataBundle.identity`), so other data never reuse a run.  The cache defaults to
    :func:`gfd.utils.runs_dir`."""
    key = cfg.key(data=data) if data is not None else cfg.key()
    return Path(cache_dir if cache_dir is not None else runs_dir()) / f"{cfg.preset}-{key}"


# --------------------------------------------------------------------------------------------------
# the trainer
# --------------------------------------------------------------------------------------------------

class Trainer:
    """GFD-Net training: networks, optimisers, data streams, history and checkpoints.

    ``bundle`` is a :class:`gfd.data.DataBundle`; without one (benchmarks, loading a checkpoint for
    inference) pass ``num_classes`` and feed batches to :meth:`train_step` yourself.
    ``pretrained=False`` builds C, F (and a backbone G_enc) with random weights, for when a checkpoint will
    overwrite them.
    """

    def __init__(self, cfg: Config, bundle=None, out_dir: str | os.PathLike | None = None, *,
                 num_classes: int | None = None, classes: list[str] | None = None, pretrained: bool = True):
        if bundle is None and classes is None and num_classes is None:
            raise ValueError("Trainer needs a DataBundle, or the class names / number of classes")
        self.cfg = cfg
        self.bundle = bundle
        self.classes = list(bundle.classes if bundle is not None else
                            classes or [f"class{i}" for i in range(num_classes)])
        k = len(self.classes)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.device = choose_device(cfg.device)
        cuda = self.device.type == "cuda"
        # On CUDA: mixed precision (bf16 where supported, else fp16 with loss scaling) and
        # channels_last; on the CPU neither (slower there, and resumes must be bit-exact).
        self.amp_dtype = None
        if cuda and cfg.amp:
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.memory_format = torch.channels_last if cuda else torch.contiguous_format

        seed_everything(cfg.seed)
        built = cfg if pretrained else cfg.with_(classifier_weights="random", perceptual_weights="random")
        with seeded(cfg.seed, "G"):           # each network's init is its own (rows stay paired)
            self.G = build_generator(cfg, k, pretrained)
        with seeded(cfg.seed, "D"):
            self.D = build_discriminator(cfg) if cfg.use_D else None
        with seeded(cfg.seed, "C"):
            self.C = build_classifier(built, k) if cfg.use_C else None
        with seeded(cfg.seed, "F"):
            self.F = build_perceptual(built) if cfg.use_percept else None
        for m in self.networks().values():
            m.to(self.device, memory_format=self.memory_format)
        if cfg.compile:
            compile_networks(self.networks())

        adam = adam_options(self.device)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, **adam)
        dc_params = [p for m in (self.D, self.C) if m is not None for p in m.parameters()]
        self.opt_DC = torch.optim.Adam(dc_params, lr=cfg.lr, **adam) if dc_params else None
        self.sched_G = make_scheduler(self.opt_G, cfg.lr_schedule, cfg.steps, cfg.lr_step, cfg.lr_gamma)
        self.sched_DC = (make_scheduler(self.opt_DC, cfg.lr_schedule, cfg.steps, cfg.lr_step, cfg.lr_gamma)
                         if self.opt_DC else None)
        self.selection = Selection(cfg.select, cfg.patience,    # which G weights are kept (gfd.protocol)
                                   min_stop_step(cfg.patience_after, cfg.steps))
        self._ddp: dict[str, nn.Module] = {}     # the DDP wrappers of a distributed run (see _distribute)
        self._last_G: dict[str, torch.Tensor] | None = None     # G's last weights while the kept ones are in
        fp16 = self.amp_dtype == torch.float16
        self.scaler_G = torch.amp.GradScaler("cuda", enabled=fp16)
        self.scaler_DC = torch.amp.GradScaler("cuda", enabled=fp16)

        self.step = 0
        self._defer = False     # inside deferred_checks(): loss values stay on the device until _flush
        self._pending: list[tuple[int, float, dict[str, torch.Tensor]]] = []   # (step, lr, values) not yet flushed
        self.c_pretrained = self.C is None
        self.last_checkpoint: Path | None = None
        self.history = new_history()
        self.meta = {
            "classifier_weights": self.C.weights_used if self.C is not None else "none (use_C=False)",
            "perceptual_weights": self.F.weights_used if self.F is not None else "none (use_percept=False)",
            "device": str(self.device),
            "amp": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "off",
        }
        if getattr(self.G, "encoder_arch", "unet") != "unet":      # a backbone G_enc (Table 3): its start
            self.meta["encoder_weights"] = self.G.weights_used
        self.history["meta"] = self.meta
        self.train_stream = self.real_stream = None
        self.snapshots: dict[str, Any] = {"step": [], "fingerprint": []}
        if bundle is not None:
            self._attach_data(bundle)

    # ---- set-up -----------------------------------------------------------------------------

    def networks(self) -> dict[str, nn.Module]:
        """The networks that exist in this configuration, by name (F included: it is frozen)."""
        nets = {"G": self.G, "D": self.D, "C": self.C, "F": self.F}
        return {name: m for name, m in nets.items() if m is not None}

    def _attach_data(self, bundle) -> None:
        self.train_stream, self.real_stream = training_streams(self.cfg, bundle)
        if "val" in bundle.datasets:
            self._init_snapshots(bundle.datasets["val"], bundle.real_index if "real" in self.classes else None)

    def _init_snapshots(self, ds: Dataset, real_label: int | None) -> None:
        """A fixed batch (one image per class, up to 4) whose fingerprints are kept at every evaluation."""
        firsts: dict[int, int] = {}
        for i, t in enumerate(getattr(ds, "targets", [])):
            firsts.setdefault(int(t), i)
        picks = [firsts[c] for c in sorted(firsts)][:SNAPSHOT_IMAGES]
        if not picks:
            return
        plain = lambda t: torch.as_tensor(t).as_subclass(torch.Tensor).float()  # noqa: E731 (no tv_tensors)
        self.snapshots["images"] = torch.stack([plain(ds[i][0]) for i in picks])
        self.snapshots["labels"] = [int(ds[i][1]) for i in picks]
        if real_label is not None and real_label in firsts:
            self.snapshots["real"] = plain(ds[firsts[real_label]][0])

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=self.memory_format) if x.ndim == 4 else x

    def _next(self, stream: BatchStream) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = next(stream)
        return self._to_device(x), self._to_device(y)

    def _finite(self, terms: dict[str, torch.Tensor], where: str, step: int | None = None) -> dict[str, float]:
        """All loss values as floats (one device sync); raise naming the first non-finite one.
        Within :meth:`deferred_checks` (the training loop) they stay on the device, detached, for
        :meth:`_flush` to convert and check with other steps' (issue 16: no host sync per step)."""
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
        nothing; the loop queues them (:attr:`_pending`) for :meth:`_flush`.  On the way out (an
        interrupt too) what is still queued is flushed, with this process's values."""
        self._defer = True
        try:
            yield
        finally:
            self._defer = False
            self._flush(reduce=False)

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

    def _update(self, loss: torch.Tensor, opt: torch.optim.Optimizer, scaler, sched) -> None:
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()

    # ---- Eq. 3: pre-training of C ----------------------------------------------------------------

    def pretrain_classifier(self, steps: int | None = None, progress: bool = True) -> dict[str, Any]:
        """Train C alone on the input images with Eq. 3 ("trained previously", Sec. 3.3) by the
        course's protocol, or load the same pre-training from the cache beside this run's folder
        (:mod:`gfd.pretrain`); return its record (per-step ``loss``, ``val_acc`` curve, ``best_val``...).
        ``steps`` overrides the budget ``c_pretrain_steps``."""
        if self.C is None:
            raise RuntimeError("use_C is False: there is no auxiliary classifier to pre-train")
        if self.bundle is None:
            raise RuntimeError("this Trainer has no data to pre-train C on")
        cfg = self.cfg if steps is None else self.cfg.with_(c_pretrain_steps=steps)
        record = pretrain_classifier(
            self.C, cfg, self.bundle, device=self.device, prepare=self._to_device, autocast=self._autocast,
            cache_dir=self.out_dir.parent if self.out_dir is not None else None, progress=progress,
            write=distributed.is_main())
        self.history["c_pretrain_loss"] = list(record["loss"])
        # val accuracy of the C that was kept (measured by the protocol's evaluations: no extra pass)
        self.history["c_val_acc"] = [record["best_val"] if cfg.select == "best" else record["val_acc"][-1]]
        self.meta["c_pretrain"] = {k: record[k] for k in ("steps", "best_val", "best_step", "stopped", "cached")}
        self.c_pretrained = True
        return record

    # ---- one alternating iteration --------------------------------------------------------------

    def generator_terms(self, x: torch.Tensor, y: torch.Tensor, x_real: torch.Tensor | None
                        ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """The terms of Eq. 7 for a batch, with graphs to G (call inside :func:`fixed`).

        Returns ``(terms, x_fp)``; ``terms["L_G"]`` is the weighted sum.  G-only runs G_enc + H.
        """
        cfg = self.cfg
        if cfg.g_only:
            classify = self._ddp.get("G", self.G.classify)     # DDP(G_enc + H) in a distributed run
            terms = {"L_z": losses.latent_cls(classify(x), y)}
            x_fp = None
        else:
            out = self._ddp.get("G", self.G)(x)
            terms = {"L_z": losses.latent_cls(out.logits, y)}
            x_fp = losses.fingerprinted(x_real, out.fingerprint)
            if self.D is not None:
                terms["L_adv_G"] = losses.adv_g(self.D(x_fp))
            if self.C is not None:
                terms["L_cls_G"] = losses.cls_g(self.C(x_fp), y)   # C sees x_fp, so G gets a gradient
            if self.F is not None:
                with torch.no_grad():
                    feat_real = self.F(x_real)
                terms["L_percept"] = losses.percept(self.F(x_fp), feat_real)
        terms["L_G"] = losses.generator_objective(terms, cfg.w1, cfg.w2, cfg.w3, cfg.w4)
        return terms, x_fp

    def g_step(self, x, y, x_real) -> tuple[dict[str, float], torch.Tensor | None]:
        """Update G + H with Eq. 7, D and C fixed.  Returns the loss values and x_fp (detached)."""
        self.G.train()
        with fixed(self.D, self.C), self._autocast():
            terms, x_fp = self.generator_terms(x, y, x_real)
        values = self._finite(terms, "G step")
        self._update(terms["L_G"], self.opt_G, self.scaler_G, self.sched_G)
        return values, (x_fp.detach() if x_fp is not None else None)

    def dc_step(self, x, y, x_fp) -> dict[str, float]:
        """Update D and C with Eq. 8, G fixed (``x_fp`` was made by G and is detached)."""
        if self.opt_DC is None:
            return {}
        D, C = self._ddp.get("D", self.D), self._ddp.get("C", self.C)
        with self._autocast():
            terms: dict[str, torch.Tensor] = {}
            if C is not None:
                terms["L_cls_C"] = losses.cls_c(C(x), y)
            if D is not None:
                terms["L_adv_D"] = losses.adv_d(D(x), D(x_fp))
            terms["L_DC"] = losses.dc_objective(terms)
        values = self._finite(terms, "D/C step")
        self._update(terms["L_DC"], self.opt_DC, self.scaler_DC, self.sched_DC)
        return values

    def train_step(self, x, y, x_real=None) -> dict[str, float]:
        """One iteration of Sec. 3.4: the G step, then the D/C step on the same batch."""
        values, x_fp = self.g_step(x, y, x_real)
        if x_fp is not None:
            values |= self.dc_step(x, y, x_fp)
        return values

    # ---- the loop ---------------------------------------------------------------------------------

    def fit(self, steps: int | None = None, progress: bool = True) -> dict[str, Any]:
        """Train until ``steps`` iterations in total (default ``cfg.steps``); return the history.

        Pre-trains C first if not done yet; validates every ``eval_every`` steps; writes
        ``out_dir/checkpoint.pt`` every ``ckpt_every`` steps and at the end.  In a distributed run
        every rank calls it; rank 0 alone shows progress and writes.
        """
        if self.train_stream is None:
            raise RuntimeError("this Trainer has no data: build it with a DataBundle to call fit()")
        cfg = self.cfg
        target = cfg.steps if steps is None else steps
        progress = progress and distributed.is_main()
        self.use_last()
        if not self.c_pretrained:
            self.pretrain_classifier(progress=progress)
        self._distribute()
        bar = pbar(enabled=progress, total=target, initial=self.step, desc="GFD-Net")
        try:
            self._loop(target, bar, progress)
        finally:
            bar.close()
        if self.step >= cfg.steps or self.selection.stop:
            self.use_selected()
        return self.history

    def _distribute(self) -> None:
        """In a distributed run, once, after C's pre-training: BatchNorm over the global batch in G, D
        and C (:func:`gfd.distributed.sync_batchnorm`, in place) and their DDP wrappers, which the
        training steps call (:attr:`G`, :attr:`D`, :attr:`C` stay the plain networks: checkpoints,
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

    def _loop(self, target: int, bar, progress: bool) -> None:
        cfg = self.cfg
        with self.deferred_checks():
            while self.step < target:
                x, y = self._next(self.train_stream)
                x_real = self._next(self.real_stream)[0] if self.real_stream is not None else None
                values = self.train_step(x, y, x_real)
                self.step += 1
                self._pending.append((self.step, self.opt_G.param_groups[0]["lr"], values))
                bar.update(1)
                evaluate = (cfg.eval_every and self.step % cfg.eval_every == 0) or self.step == target
                save = self.out_dir is not None and ((cfg.ckpt_every and self.step % cfg.ckpt_every == 0)
                                                     or self.step == target)
                if evaluate or save or self.step % LOG_EVERY == 0 or self.selection.stop:
                    last = self._flush()           # before any evaluation or checkpoint: raises on a non-finite loss
                    bar.set_postfix({k: f"{v:.3f}" for k, v in last.items() if k in ("L_G", "L_z", "L_DC")})
                if evaluate:
                    acc = self.evaluate_step()
                    if progress:
                        bar.write(f"step {self.step}: val acc {acc:.3f}")
                stop = self.selection.stop
                if save or (self.out_dir is not None and stop):
                    self.save()
                if stop:
                    if progress:
                        bar.write(f"step {self.step}: val accuracy reached a plateau (no new best in "
                                  f"{cfg.patience} evaluations); stopped")
                    break

    def _record(self, step: int, lr: float, values: dict[str, float]) -> None:
        h = self.history
        h["step"].append(step)
        h["lr"].append(lr)
        for name in (*G_TERMS, *DC_TERMS):
            h[name].append(values.get(name, float("nan")))

    def evaluate_step(self) -> float:
        """Validation accuracy of G_enc + H and a fingerprint snapshot, recorded in the history."""
        acc = distributed.from_main(self.validate)     # measured once (rank 0), the same for every rank
        self.history["eval_step"].append(self.step)
        self.history["val_acc"].append(acc)
        self.selection.update(self.step, acc, self.G)
        if "images" in self.snapshots:
            with torch.no_grad(), self._autocast():
                self.G.eval()
                f = self.G.fingerprint(self._to_device(self.snapshots["images"]))
                self.G.train()
            self.snapshots["step"].append(self.step)
            self.snapshots["fingerprint"].append(f.float().cpu().half())
        return acc

    def validate(self, split: str = "val", model: str = "G") -> float:
        """Top-1 accuracy on a split of G_enc + H (``model="G"``) or of C; leaves the RNGs as they were."""
        if self.bundle is None:
            raise RuntimeError("this Trainer has no data to validate on")
        net = EncoderHead(self.G) if model == "G" else self.C
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), self._autocast():
            return accuracy(net, self.bundle[split], self.device)

    # ---- checkpoints -------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        def opt_state(o):
            return o.state_dict() if o is not None else None
        return {
            "config": self.cfg.to_dict(),
            "classes": self.classes,
            "step": self.step,
            "c_pretrained": self.c_pretrained,
            "models": {name: (self._last_G if name == "G" and self._last_G is not None else m.state_dict())
                       for name, m in self.networks().items()},
            "selection": self.selection.state_dict(),
            "optim": {"G": opt_state(self.opt_G), "DC": opt_state(self.opt_DC)},
            "sched": {"G": opt_state(self.sched_G), "DC": opt_state(self.sched_DC)},
            "scaler": {"G": self.scaler_G.state_dict(), "DC": self.scaler_DC.state_dict()},
            "rng": rng_state(),
            "streams": {"train": self.train_stream.state_dict() if self.train_stream else None,
                        "real": self.real_stream.state_dict() if self.real_stream else None},
            "history": self.history,
            "meta": self.meta,
            "snapshots": self.snapshots,
        }

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write a checkpoint atomically (default ``out_dir/checkpoint.pt``).  In a distributed run
        rank 0 alone writes (every rank holds the same state); the others only return the path."""
        if path is None:
            if self.out_dir is None:
                raise ValueError("give a path, or build the Trainer with an out_dir")
            path = self.out_dir / CHECKPOINT_NAME
        self.last_checkpoint = save_checkpoint(path, self.state_dict()) if distributed.is_main() else Path(path)
        return self.last_checkpoint

    def load(self, path: str | os.PathLike, resume_data: bool = True) -> "Trainer":
        """Load a checkpoint into this trainer; with data attached, continue exactly where it stopped."""
        state = load_checkpoint(path)
        saved = Config.from_dict(state["config"])
        differ = sorted(k for k, v in saved.to_dict().items()
                        if getattr(self.cfg, k) != v and k not in RESUMABLE_FIELDS)
        if differ:
            raise ValueError(f"checkpoint {path} was trained with a different config: "
                             + ", ".join(f"{k}={getattr(saved, k)!r} (here {getattr(self.cfg, k)!r})"
                                         for k in differ))
        if list(state["classes"]) != self.classes:
            raise ValueError(f"checkpoint {path} was trained on classes {state['classes']}, "
                             f"this trainer's data have {self.classes}; if only the order differs, list the "
                             f"checkpoint's order in ROOT/classes.json of the dataset")
        nets = self.networks()
        for name, sd in state["models"].items():
            if name not in nets:
                raise ValueError(f"checkpoint {path} holds network {name} that this config does not build")
            try:
                nets[name].load_state_dict(sd)
            except RuntimeError as err:
                raise ValueError(f"checkpoint {path}: network {name} does not fit: {str(err)[:400]}") from err
        for key, obj in (("G", self.opt_G), ("DC", self.opt_DC)):
            if obj is not None and state["optim"].get(key) is not None:
                obj.load_state_dict(state["optim"][key])
                keep_device_adam(obj)
        for key, obj in (("G", self.sched_G), ("DC", self.sched_DC)):
            if obj is not None and state["sched"].get(key) is not None:
                obj.load_state_dict(state["sched"][key])
        self.scaler_G.load_state_dict(state["scaler"]["G"])
        self.scaler_DC.load_state_dict(state["scaler"]["DC"])
        self.step = int(state["step"])
        self.c_pretrained = bool(state["c_pretrained"])
        self.history = state["history"]
        self.meta = self.history["meta"] = dict(state["meta"])
        self.snapshots = state["snapshots"]
        self._last_G = None
        if state.get("selection") is not None:
            self.selection.load_state_dict(state["selection"])
            self.selection.patience = self.cfg.patience     # a resumable field
        if resume_data:
            for name, stream in (("train", self.train_stream), ("real", self.real_stream)):
                if stream is not None and state["streams"].get(name) is not None:
                    stream.load_state_dict(state["streams"][name])
            set_rng_state(state["rng"])
        self.last_checkpoint = Path(path)
        return self


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
    if not ckpt.exists() and any(p not in temps for p in out.iterdir()):
        raise ValueError(f"{out} is not a run folder (it holds no {CHECKPOINT_NAME}); --fresh deletes only "
                         f"a run's checkpoint, so nothing was deleted. Pick another --out, or none.")
    removed = [p for p in (ckpt, *temps) if p.exists()]
    for p in removed:
        p.unlink()
    return removed


def stale_temporaries(out_dir: str | os.PathLike) -> list[Path]:
    """Partial checkpoint files (``.checkpoint.pt.*.tmp``) left by a run that was killed mid-write."""
    return sorted(Path(out_dir).glob(f".{CHECKPOINT_NAME}.*.tmp"))


def load_or_train(cfg: Config, bundle, *, out_dir: str | os.PathLike | None = None, fresh: bool = False,
                  progress: bool = True, log: Callable[[str], None] | None = None) -> Trainer:
    """The one "load if present, else train" rule of the course.

    The run lives in ``out_dir`` (default :func:`default_run_dir`: ``data/runs/<preset>-<key>``, the
    key of the config and of the data, so a config on its data always finds its own run).  A finished run is loaded; an interrupted one resumes
    from its checkpoint exactly; otherwise a new run trains.  ``fresh`` first deletes the run's
    checkpoint (only that: see :func:`remove_run`).  Stale partial checkpoints are removed.  ``log``
    (e.g. ``print``) is told which of these happened.  In a distributed run every rank calls it: rank
    0 deletes and builds first, then the others find the same run.
    """
    out = Path(out_dir) if out_dir is not None else default_run_dir(cfg, data=getattr(bundle, "identity", None))
    say = log or (lambda msg: None)
    with distributed.main_first():
        if distributed.is_main():           # the other ranks would race it, or find nothing to delete
            if fresh:
                for p in remove_run(out):
                    say(f"--fresh: deleted {p}")
            elif out.is_dir():
                for tmp in stale_temporaries(out):
                    tmp.unlink()
                    say(f"deleted {tmp}, a partial checkpoint left by an interrupted run")
        ckpt = out / CHECKPOINT_NAME
        if ckpt.exists():
            trainer = Trainer(cfg, bundle, out, pretrained=False).load(ckpt)
            say(f"found the finished run {ckpt} (step {trainer.step})" if trainer.done
                else f"resuming {ckpt} at step {trainer.step}/{cfg.steps}")
        else:
            trainer = Trainer(cfg, bundle, out)
            say(f"new run in {out}")
    if not trainer.done:
        trainer.fit(progress=progress)
    trainer.use_selected()
    return trainer
