"""Training GFD-Net (Sec. 3.4 and 4.1): C pre-training, then alternating G / (D, C) updates.

The paper's schedule, literally:

1. C is "trained previously" on the input images with Eq. 3 (:meth:`Trainer.pretrain_classifier`).
2. Each iteration (:meth:`Trainer.train_step`) first updates G + H with Eq. 7 while D and C are
   fixed (:meth:`Trainer.g_step`, :func:`fixed`), then updates D and C with Eq. 8 while G is fixed
   (:meth:`Trainer.dc_step`).  The fingerprinted batch of the G step is reused, detached, by the
   D/C step, so G's graph is built once per iteration.  ``x_fp = x_real + f`` puts each fingerprint
   on a real image drawn from a second, separately shuffled stream over the ``real`` class of the
   train split (:func:`gfd.stepper.training_streams`).
3. Adam with lr ``cfg.lr`` (paper: 1e-4, torch's default betas: the paper gives none) for G + H
   and for D + C; StepLR (``lr_step`` 500, ``lr_gamma`` 0.9) stepped every iteration.

The CPU presets train by the course's protocol instead (:mod:`gfd.protocol`): a cosine lr over the
budget, val accuracy of G_enc + H every ``eval_every`` steps, the best val weights of G kept, an early
stop on a plateau (``lr_schedule``, ``select``, ``patience``).

Randomness belongs to the run (experiment protocol, rule 3): each network's initialisation, G's
batches, the x_real pairing and C's pre-training have their own seeded streams, so two rows of Table 4
with the same seed share G's start, G's batches and the pre-trained C.  Ablations (Table 4): ``use_D``,
``use_C``, ``use_percept`` drop a network and its loss terms; with all three off (``cfg.g_only``)
G + H is trained with L_z alone, and only G_enc + H run.

How the steps run (device, mixed precision, ``torchrun``, loss checks without a host sync per step)
and the protocol's loop around them (log, evaluate, keep the best weights, save, stop) are
:class:`gfd.stepper.Stepper`, the trainer's base class; what a checkpoint holds to continue a run
exactly is :mod:`gfd.checkpoint`.  :func:`load_or_train` is the one "load if present, else train"
rule: the CLI, the runners and the notebooks all call it.
"""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from gfd import distributed, losses
from gfd.checkpoint import (CHECKPOINT_NAME, open_run, pretrain_cache_dir, remove_run,  # noqa: F401
                            restore_trainer, save_checkpoint, stale_temporaries, trainer_state)
from gfd.config import Config
from gfd.layout import TRAIN
from gfd.losses import NonFiniteLossError
from gfd.models.classifier import build_classifier
from gfd.models.discriminator import build_discriminator
from gfd.models.generator import build_generator
from gfd.models.perceptual import build_perceptual
from gfd.pretrain import pretrain_classifier
from gfd.protocol import Selection, make_scheduler, min_stop_step
from gfd.stepper import (StepCallback, Stepper, TrainingStopped, adam_options, current_watcher,  # noqa: F401
                         new_history, watch_steps)
from gfd.utils import pbar, runs_dir, seed_everything, seeded, stable_hash

__all__ = ["Trainer", "load_or_train", "default_run_dir", "fixed", "NonFiniteLossError", "CHECKPOINT_NAME",
           "TrainingStopped", "watch_steps"]

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


class Trainer(Stepper):
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
        self.cfg, self.bundle = cfg, bundle
        self.classes = list(bundle.classes if bundle is not None else
                            classes or [f"class{i}" for i in range(num_classes)])
        k = len(self.classes)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self._init_stepper(cfg)                 # device, mixed precision, loss checks (gfd.stepper)

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
        self._place(self.networks(), compile=cfg.compile)

        adam = adam_options(self.device)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, **adam)
        dc_params = [p for m in (self.D, self.C) if m is not None for p in m.parameters()]
        self.opt_DC = torch.optim.Adam(dc_params, lr=cfg.lr, **adam) if dc_params else None
        self.sched_G = make_scheduler(self.opt_G, cfg.lr_schedule, cfg.steps, cfg.lr_step, cfg.lr_gamma)
        self.sched_DC = (make_scheduler(self.opt_DC, cfg.lr_schedule, cfg.steps, cfg.lr_step, cfg.lr_gamma)
                         if self.opt_DC else None)
        self.scaler_G, self.scaler_DC = self._grad_scaler(), self._grad_scaler()
        self.selection = Selection(cfg.select, cfg.patience,    # which G weights are kept (gfd.protocol)
                                   min_stop_step(cfg.patience_after, cfg.steps))
        self._last_G: dict[str, torch.Tensor] | None = None     # G's last weights while the kept ones are in

        self.step = 0
        self.fit_seconds: float | None = None   # wall time spent in fit() by this object (None: never trained here)
        self.c_pretrained = self.C is None
        self.last_checkpoint: Path | None = None
        self.history = new_history()
        self.meta = self.history["meta"] = {
            "classifier_weights": self.C.weights_used if self.C is not None else "none (use_C=False)",
            "perceptual_weights": self.F.weights_used if self.F is not None else "none (use_percept=False)",
            **self._precision_meta(),
        }
        if getattr(self.G, "encoder_arch", "unet") != "unet":      # a backbone G_enc (Table 3): its start
            self.meta["encoder_weights"] = self.G.weights_used
        self.train_stream = self.real_stream = None
        self.snapshots: dict[str, Any] = {"step": [], "fingerprint": []}
        if bundle is not None:
            self._attach_data(bundle)       # G's batches, the x_real stream, the snapshot images

    def networks(self) -> dict[str, nn.Module]:
        """The networks that exist in this configuration, by name (F included: it is frozen)."""
        nets = {"G": self.G, "D": self.D, "C": self.C, "F": self.F}
        return {name: m for name, m in nets.items() if m is not None}

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
            cache_dir=pretrain_cache_dir(self.out_dir) if self.out_dir is not None else None, progress=progress,
            write=distributed.is_main())
        self.history["c_pretrain_loss"] = list(record["loss"])
        # val accuracy of the C that was kept (measured by the protocol's evaluations: no extra pass)
        self.history["c_val_acc"] = [record["best_val"] if cfg.select == "best" else record["val_acc"][-1]]
        self.meta["c_pretrain"] = {k: record[k] for k in ("steps", "best_val", "best_step", "stopped", "cached")}
        self.c_pretrained = True
        return record

    # ---- one alternating iteration (Sec. 3.4, Eq. 2-8) ------------------------------------------

    def train_step(self, x, y, x_real=None) -> dict[str, float]:
        """One iteration of Sec. 3.4 on one batch: the G step (Eq. 7, D and C fixed), then the D/C
        step (Eq. 8, G fixed: it sees the G step's x_fp, detached)."""
        values, x_fp = self.g_step(x, y, x_real)
        if x_fp is not None:
            values |= self.dc_step(x, y, x_fp)
        return values

    def g_step(self, x, y, x_real) -> tuple[dict[str, float], torch.Tensor | None]:
        """Update G + H with Eq. 7, D and C fixed.  Returns the loss values and x_fp (detached)."""
        self.G.train()
        with fixed(self.D, self.C), self._autocast():
            terms, x_fp = self.generator_terms(x, y, x_real)
        values = self._finite(terms, "G step")
        self._update(terms["L_G"], self.opt_G, self.scaler_G, self.sched_G)
        return values, (x_fp.detach() if x_fp is not None else None)

    def generator_terms(self, x: torch.Tensor, y: torch.Tensor, x_real: torch.Tensor | None
                        ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """The terms of Eq. 7 for a batch, with graphs to G (call inside :func:`fixed`).

        Returns ``(terms, x_fp)``; ``terms["L_G"]`` is the weighted sum.  G-only runs G_enc + H.
        """
        cfg = self.cfg
        if cfg.g_only:
            classify = self._ddp.get("G", self.G.classify)     # DDP(G_enc + H) in a distributed run
            terms = {"L_z": losses.latent_cls(classify(x), y)}                      # Eq. 6
            x_fp = None
        else:
            out = self._net("G")(x)
            terms = {"L_z": losses.latent_cls(out.logits, y)}                       # Eq. 6
            x_fp = losses.fingerprinted(x_real, out.fingerprint)                    # Eq. 1
            if self.D is not None:
                terms["L_adv_G"] = losses.adv_g(self.D(x_fp))                       # Eq. 4
            if self.C is not None:
                terms["L_cls_G"] = losses.cls_g(self.C(x_fp), y)   # Eq. 2: C sees x_fp, so G gets a gradient
            if self.F is not None:
                with torch.no_grad():
                    feat_real = self.F(x_real)
                terms["L_percept"] = losses.percept(self.F(x_fp), feat_real)       # Eq. 5
        terms["L_G"] = losses.generator_objective(terms, cfg.w1, cfg.w2, cfg.w3, cfg.w4)   # Eq. 7
        return terms, x_fp

    def dc_step(self, x, y, x_fp) -> dict[str, float]:
        """Update D and C with Eq. 8, G fixed (``x_fp`` was made by G and is detached)."""
        if self.opt_DC is None:
            return {}
        D, C = self._net("D"), self._net("C")
        with self._autocast():
            terms: dict[str, torch.Tensor] = {}
            if C is not None:
                terms["L_cls_C"] = losses.cls_c(C(x), y)                            # Eq. 3
            if D is not None:
                terms["L_adv_D"] = losses.adv_d(D(x), D(x_fp))                      # Eq. 4
            terms["L_DC"] = losses.dc_objective(terms)                              # Eq. 8
        values = self._finite(terms, "D/C step")
        self._update(terms["L_DC"], self.opt_DC, self.scaler_DC, self.sched_DC)
        return values

    def _update(self, loss: torch.Tensor, opt: torch.optim.Optimizer, scaler, sched) -> None:
        """One Adam step on ``loss`` (scaled for fp16), then one lr-schedule step."""
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()

    # ---- the loop ---------------------------------------------------------------------------------

    def fit(self, steps: int | None = None, progress: bool = True,
            on_step: StepCallback | None = None) -> dict[str, Any]:
        """Train until ``steps`` iterations in total (default ``cfg.steps``); return the history.
        Pre-trains C first if not done yet; validates every ``eval_every`` steps; writes
        ``out_dir/checkpoint.pt`` every ``ckpt_every`` steps and at the end.  In a distributed run
        every rank calls it; rank 0 alone shows progress and writes.

        ``on_step`` (default: the callback of an enclosing :func:`watch_steps`) is told each step
        and replaces the progress bars; when it returns true the run stops after that step, writes
        its checkpoint and raises :class:`TrainingStopped`.  :attr:`fit_seconds` adds up the wall
        time spent here (C's pre-training included)."""
        if self.train_stream is None:
            raise RuntimeError("this Trainer has no data: build it with a DataBundle to call fit()")
        target = self.cfg.steps if steps is None else steps
        on_step = on_step if on_step is not None else current_watcher()
        progress = progress and distributed.is_main() and on_step is None
        start = time.perf_counter()
        try:
            self.use_last()
            if on_step is not None:
                on_step(self.step, target)
            if not self.c_pretrained:
                self.pretrain_classifier(progress=progress)
            self._distribute()
            bar = pbar(enabled=progress, total=target, initial=self.step, desc="GFD-Net")
            try:
                self._loop(target, bar, progress, on_step)
            finally:
                bar.close()
        finally:
            self.fit_seconds = (self.fit_seconds or 0.0) + time.perf_counter() - start
        if self.done:
            self.use_selected()
        return self.history

    # ---- checkpoints (gfd.checkpoint) ------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return trainer_state(self)          # what it holds: gfd.checkpoint

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
        restore_trainer(self, path, resume_data)
        return self


def default_run_dir(cfg: Config, cache_dir: str | os.PathLike | None = None, data: str | None = None) -> Path:
    """``cache_dir/<preset>-<key>``: the key hashes every field of the config and ``data`` (a
    :attr:`gfd.data.DataBundle.identity`), so other data never reuse a run.  The cache defaults to
    :func:`gfd.utils.runs_dir`."""
    key = stable_hash({"config": cfg.to_dict(), "data": data}) if data is not None else cfg.key()
    return Path(cache_dir if cache_dir is not None else runs_dir()) / f"{cfg.preset}-{key}"


def load_or_train(cfg: Config, bundle, *, out_dir: str | os.PathLike | None = None, fresh: bool = False,
                  progress: bool = True, log: Callable[[str], None] | None = None) -> Trainer:
    """The one "load if present, else train" rule of the course.

    The run lives in ``out_dir`` (default :func:`default_run_dir`, so a config on its data always
    finds its own run).  A finished run is loaded; an interrupted one resumes from its checkpoint
    exactly; otherwise a new run trains.  ``fresh`` first deletes the run's checkpoint (only that,
    and only a gfd checkpoint: :func:`gfd.checkpoint.remove_run`); stale partial checkpoints are
    removed.  ``log`` (e.g. ``print``) is told which of these happened.

    Before anything is deleted or trained, the run folder is checked (a folder, or one that can be
    created, and writable), created and locked (:func:`gfd.checkpoint.open_run`) until this returns:
    a second run on the same folder is refused, naming the first (``RunFolderBusyError``).  In a
    distributed run every rank calls it: rank 0 alone takes the lock, deletes and builds first, then
    the others find the same run; a global batch that does not split over the ranks, or a folder
    rank 0 refuses, stops every rank (:class:`gfd.distributed.EveryRankError`).
    """
    out = Path(out_dir) if out_dir is not None else default_run_dir(cfg, data=getattr(bundle, "identity", None))
    say = log or (lambda msg: None)
    datasets = getattr(bundle, "datasets", None)
    if distributed.active() and datasets and TRAIN in datasets:     # every rank, before any waits
        from gfd.streams import class_indices
        sizes = {"train": len(datasets[TRAIN])}
        if not cfg.g_only:
            sizes["real"] = len(class_indices(datasets[TRAIN], bundle.real_index))
        distributed.check_batch(cfg.batch_size, sizes)
    with contextlib.ExitStack() as held:
        distributed.on_main(lambda: held.enter_context(open_run(out)))   # rank 0: check, create and lock
        return _load_or_train(cfg, bundle, out, fresh, progress, say)


def _load_or_train(cfg: Config, bundle, out: Path, fresh: bool, progress: bool,
                   say: Callable[[str], None]) -> Trainer:
    """:func:`load_or_train` in its checked and locked run folder ``out``."""
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
