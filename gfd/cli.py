"""``python -m gfd``: the headless entry point.

    python -m gfd train --preset quick [--set key=value ...] [--out DIR] [--fresh]
    python -m gfd evaluate --checkpoint PATH [--data-root DIR]
    python -m gfd attribute IMAGE... [--checkpoint PATH]
    python -m gfd reproduce --table 1|4 [--preset course] [--seeds 0 1 2] [--methods ROW ...] [--out results]

``train`` uses ``cfg.data_root`` if set, else the built-in mini benchmark
(:func:`gfd.benchmark.load_mini_benchmark`, built on first use).  Its run folder defaults to
``data/runs/<preset>-<config hash>`` (:func:`gfd.utils.runs_dir`), the folder
:func:`gfd.train.load_or_train` uses -- so a finished
run is reused, an interrupted one resumes (``--fresh`` starts over), and notebooks find CLI runs.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from gfd.config import PRESETS, get_config
from gfd.utils import runs_dir



def load_data(cfg, progress: bool = True, splits=None):
    """The DataBundle a config asks for: ``cfg.data_root`` or the built-in benchmark."""
    from gfd.data import get_loaders
    root = cfg.data_root
    if root is None:
        from gfd.benchmark import load_mini_benchmark
        root = load_mini_benchmark(cfg.benchmark_size, seed=0, progress=progress)
    return get_loaders(root, cfg, splits=splits)


def report_accuracy(generator, bundle) -> dict:
    """Print closed-world (and open-world, if the split exists) accuracy of G_enc + H."""
    from gfd.evaluate import evaluate_model
    from gfd.inference import EncoderHead
    results = evaluate_model(EncoderHead(generator), bundle)
    for split, res in results.items():
        print(f"{res['world']}-world accuracy ({split}): {res['acc']:.4f}")
    return results


def cmd_train(args) -> int:
    from gfd.train import CHECKPOINT_NAME, Trainer, default_run_dir
    try:
        cfg = get_config(args.preset, args.set)
    except KeyError as err:  # an unknown field in --set: a usage error, not a bug
        raise ValueError(err.args[0]) from err
    out = Path(args.out) if args.out else default_run_dir(cfg)
    ckpt = out / CHECKPOINT_NAME
    if args.fresh and out.exists():
        shutil.rmtree(out)
    bundle = load_data(cfg, progress=not args.no_progress)
    print(f"data: {bundle.root} ({len(bundle.classes)} classes: {', '.join(bundle.classes)})")
    if ckpt.exists():
        trainer = Trainer(cfg, bundle, out, pretrained=False).load(ckpt)
        if trainer.step < cfg.steps:
            print(f"resuming {ckpt} at step {trainer.step}/{cfg.steps}")
        else:
            print(f"found the finished run {ckpt} (step {trainer.step}); --fresh trains it again")
    else:
        trainer = Trainer(cfg, bundle, out)
    print(f"device: {trainer.device}, amp: {trainer.meta['amp']}; weights: C {trainer.meta['classifier_weights']}, "
          f"F {trainer.meta['perceptual_weights']}")
    if trainer.step < cfg.steps:
        trainer.fit(progress=not args.no_progress)
    if trainer.history["val_acc"]:
        print(f"validation accuracy (closed world, val): {trainer.history['val_acc'][-1]:.4f}")
    report_accuracy(trainer.G, bundle)
    print(f"checkpoint: {trainer.last_checkpoint or trainer.save()}")
    return 0


def cmd_evaluate(args) -> int:
    from gfd.inference import load_generator
    from gfd.utils import choose_device
    generator, cfg, classes = load_generator(args.checkpoint)
    if args.data_root:
        cfg = cfg.with_(data_root=args.data_root)
    bundle = load_data(cfg, progress=not args.no_progress)
    if list(bundle.classes) != classes:
        raise ValueError(f"checkpoint {args.checkpoint} was trained on classes {classes}, "
                         f"the dataset {bundle.root} has {bundle.classes}")
    generator.to(choose_device(cfg.device))
    print(f"checkpoint: {args.checkpoint} (preset {cfg.preset}); data: {bundle.root}")
    report_accuracy(generator, bundle)
    return 0


def latest_checkpoint(runs: Path | None = None) -> Path:
    runs = runs or runs_dir()
    found = sorted(runs.glob("*/checkpoint.pt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"no checkpoint under {runs}/: train one with `python -m gfd train "
                                f"--preset quick`, or pass --checkpoint PATH")
    return found[-1]


def cmd_attribute(args) -> int:
    from gfd.inference import attribute, class_names
    ckpt = Path(args.checkpoint) if args.checkpoint else latest_checkpoint()
    probs = attribute(ckpt, args.images)
    classes = class_names(ckpt)
    print(f"checkpoint: {ckpt}")
    for path, p in zip(args.images, probs):
        top = int(p.argmax())
        detail = "  ".join(f"{c}={v:.3f}" for c, v in zip(classes, p.tolist()))
        print(f"{path}: {classes[top]} ({p[top]:.3f})   {detail}")
    return 0


def cmd_reproduce(args) -> int:
    from gfd.reproduce import reproduce
    from gfd.utils import results_dir
    out = Path(args.out) if args.out else results_dir()
    command = " ".join(["python -m gfd reproduce", f"--table {args.table}", f"--preset {args.preset}",
                        "--seeds", *map(str, args.seeds), *(f"--set {kv}" for kv in args.set),
                        *(["--methods", *args.methods] if args.methods else [])])
    try:
        reproduce(args.table, args.preset, args.seeds, out, args.set, progress=not args.no_progress,
                  command=command, only=args.methods)
    except KeyError as err:
        raise ValueError(err.args[0]) from err
    print((out / f"table{args.table}.md").read_text())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gfd", description="GFD-Net: train, evaluate, attribute.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train GFD-Net (C pre-training, then alternating G / D,C steps)")
    t.add_argument("--preset", default="course", choices=sorted(PRESETS))
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (repeatable), e.g. --set steps=200 --set use_D=false")
    t.add_argument("--out", default=None, help="run folder (default data/runs/<preset>-<config hash>)")
    t.add_argument("--fresh", action="store_true", help="delete the run folder's checkpoint and start over")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="closed- and open-world accuracy of a checkpoint")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--data-root", default=None, help="evaluate on this dataset instead of the checkpoint's")
    e.add_argument("--no-progress", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    a = sub.add_parser("attribute", help="the most likely source of each image, with probabilities")
    a.add_argument("images", nargs="+", metavar="IMAGE")
    a.add_argument("--checkpoint", default=None, help="default: the newest data/runs/*/checkpoint.pt")
    a.set_defaults(func=cmd_attribute)

    r = sub.add_parser("reproduce", help="Table 1 (PRNU, DCT, AttNet, GFD-Net) or Table 4 (ablation) over seeds")
    r.add_argument("--table", type=int, required=True, choices=(1, 4))
    r.add_argument("--preset", default="course", choices=sorted(PRESETS))
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default 0 1 2)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    r.add_argument("--methods", nargs="+", default=None, metavar="ROW",
                   help="only these rows, e.g. --methods G G+C (default: every row of the table)")
    r.add_argument("--out", default=None, help="folder of table<N>.md/.json and runs/ (default <repository>/results)")
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=cmd_reproduce)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from gfd.models.weights import WeightsUnavailableError
    from gfd.train import NonFiniteLossError
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, WeightsUnavailableError, NonFiniteLossError) as err:
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
