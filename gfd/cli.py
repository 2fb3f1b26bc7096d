"""``python -m gfd``: argument parsing only.  Every command calls the functions the notebooks call.

    python -m gfd train --preset quick [--set key=value ...] [--out DIR] [--fresh] [--skip-bad]
    torchrun --nproc_per_node=N -m gfd train ...      (N processes, one per GPU: gfd.distributed)
    python -m gfd evaluate --checkpoint PATH [--data-root DIR] [--json FILE] [--skip-bad]
    python -m gfd attribute IMAGE_OR_FOLDER... [--checkpoint PATH]
    python -m gfd export --checkpoint PATH --out FILE
    python -m gfd reproduce --table 1|2|3|4 [--preset course] [--seeds 0 1 2 3 4] [--methods ROW ...] [--commit]
    python -m gfd benchmark [--size quick|default] [--benchmark gan128|gan1024] [--calibrate] [--figures DIR]
    python -m gfd speed [--preset course] [--steps 10] [--data]
    python -m gfd weights [--arch resnet18 vgg16] [--from FILE]

The data of a config are :func:`gfd.data.load_data`'s (``data_root`` if set, else the built-in
benchmark); a run is :func:`gfd.train.load_or_train`'s (its folder defaults to
``data/runs/<preset>-<Config.key()>``, where the notebooks find it too).

Exit codes: 0 success; 2 a user error -- a bad command line (argparse), a bad ``--set`` value, a
missing or unusable file, image, dataset folder or checkpoint (``FileNotFoundError`` and
``ValueError``, which covers ``BadImageError``, ``DataLayoutError``, ``CheckpointError``) -- fix the
command or the files; 1 the run itself failed on valid input (a non-finite loss, ImageNet weights
that cannot be had).  Errors print one line, ``error: ...``, on stderr, without a traceback; under
torchrun a user error every rank stops on (:class:`gfd.distributed.EveryRankError`) is printed by
rank 0 only, and every rank exits 2.  Paths the command will write (``train --out``, ``evaluate
--json``) are checked before any work.  ``attribute`` reports each bad image that way, attributes
the others (in batches, printed as they are classified), and exits 2 at the end.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gfd.config import BENCHMARK_SIZES, BENCHMARKS, PRESETS, Config, get_config
from gfd.tables import TABLE_SPECS


EXIT_USER_ERROR = 2
EXIT_RUN_FAILED = 1


def config_from(args) -> Config:
    try:
        return get_config(args.preset, args.set)
    except KeyError as err:  # an unknown field in --set: a usage error, not a bug
        raise ValueError(err.args[0]) from err


def say_error(message: str) -> None:
    """``error: <message>`` on one line of stderr."""
    print("error: " + " ".join(str(message).split()), file=sys.stderr)


def cmd_train(args) -> int:
    """Train (or resume, or find) a run.  Under ``torchrun --nproc_per_node=N -m gfd train ...`` the N
    processes train it together (:mod:`gfd.distributed`); rank 0 alone prints, evaluates and writes."""
    from gfd import distributed

    cfg = config_from(args)
    with distributed.session(cfg.device):
        return _train(args, cfg)


def _train(args, cfg: Config) -> int:
    from gfd import distributed
    from gfd.data import load_data
    from gfd.evaluate import evaluate_model
    from gfd.models.generator import EncoderHead
    from gfd.report import format_results
    from gfd.checkpoint import check_run_folder
    from gfd.train import load_or_train

    main = distributed.is_main()
    progress = not args.no_progress and main
    if args.out is not None:            # before the data are read or built: a file or unwritable --out stops here
        distributed.on_main(lambda: check_run_folder(args.out, "--out"))
    with distributed.main_first():      # rank 0 builds the benchmark if needed; the others then read it
        bundle = load_data(cfg, progress=progress, skip_bad=args.skip_bad)  # checked before anything is deleted
    if main:
        print(f"data: {bundle.root} ({len(bundle.classes)} classes: {', '.join(bundle.classes)})")
    trainer = load_or_train(cfg, bundle, out_dir=args.out, fresh=args.fresh, progress=progress,
                            log=print if main else None)
    if not main:
        return 0
    print(f"device: {trainer.device}, amp: {trainer.meta['amp']}; weights: C {trainer.meta['classifier_weights']}, "
          f"F {trainer.meta['perceptual_weights']}")
    if trainer.history["val_acc"]:
        print(f"validation accuracy (closed world, val): {trainer.history['val_acc'][-1]:.4f}")
    print(format_results(evaluate_model(EncoderHead(trainer.G), bundle)))
    print(f"checkpoint: {trainer.last_checkpoint or trainer.save()}")
    return 0


def cmd_evaluate(args) -> int:
    from gfd.evaluate import evaluate_model
    from gfd.inference import load_for_evaluation
    from gfd.models.generator import EncoderHead
    from gfd.report import format_results

    if args.json:
        check_output_file(args.json, "--json")      # before the evaluation, not after it
    generator, cfg, _, bundle = load_for_evaluation(args.checkpoint, args.data_root, skip_bad=args.skip_bad,
                                                    progress=not args.no_progress)
    print(f"checkpoint: {args.checkpoint} (preset {cfg.preset}); data: {bundle.root}")
    results = evaluate_model(EncoderHead(generator), bundle)
    print(format_results(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
        print(f"json: {args.json}")
    return 0


def check_output_file(path: str, what: str) -> Path:
    """``path`` if a file can be written there (its folder exists and is writable, and it is not a
    folder); else a one-line ``ValueError`` -- checked before the work whose result it will hold."""
    from gfd.checkpoint import write_problem

    out = Path(path)
    if out.is_dir():
        raise ValueError(f"{what} {out} is a folder; give the path of a file to write")
    folder = out.absolute().parent
    if not folder.is_dir():
        raise ValueError(f"{what} {out} cannot be written: its folder {folder} does not exist")
    problem = write_problem(folder)
    if problem is not None:
        raise ValueError(f"{what} {out} cannot be written: a file cannot be created in {folder} ({problem})")
    return out


def cmd_attribute(args) -> int:
    from gfd.inference import LATEST_RULE, class_names, iter_attribute_files, latest_checkpoint

    if args.checkpoint:
        ckpt = Path(args.checkpoint)
        print(f"checkpoint: {ckpt}")
    else:
        ckpt = latest_checkpoint()
        print(f"checkpoint: {ckpt} ({LATEST_RULE})")
    classes = class_names(ckpt)
    failed = 0
    for path, p, err in iter_attribute_files(ckpt, args.images):
        if err is not None:
            say_error(err)
            failed += 1
            continue
        top = int(p.argmax())
        detail = "  ".join(f"{c}={v:.3f}" for c, v in zip(classes, p.tolist()))
        print(f"{path}: {classes[top]} ({p[top]:.3f})   {detail}", flush=True)
    if failed:
        say_error(f"{failed} input(s) could not be attributed (see above)")
        return EXIT_USER_ERROR
    return 0


def cmd_export(args) -> int:
    from gfd.checkpoint import export_weights

    out = export_weights(args.checkpoint, args.out)
    before, after = Path(args.checkpoint).stat().st_size, out.stat().st_size
    print(f"export: {out} ({after / 1e6:.1f} MB; the checkpoint {args.checkpoint} is {before / 1e6:.1f} MB)")
    return 0


def cmd_reproduce(args) -> int:
    from gfd.runs.reproduce import collect_table_runs, reproduce
    from gfd.utils import results_dir

    out = Path(args.out) if args.out else results_dir()
    if args.preset is None:        # a table's own preset (Table 3: detect), else the course's
        args.preset = TABLE_SPECS[args.table].preset or "course"
    command = " ".join(["python -m gfd reproduce", f"--table {args.table}", f"--preset {args.preset}",
                        "--seeds", *map(str, args.seeds), *(f"--set {kv}" for kv in args.set),
                        *(["--methods", *args.methods] if args.methods else []),
                        *(["--tables-out", args.tables_out] if args.tables_out else [])])
    try:
        if args.records_only:          # a worker of --jobs: train and record its seeds, no table
            collect_table_runs(args.table, args.preset, args.seeds, out, args.set, runs_root=args.runs_root,
                               progress=not args.no_progress, only=args.methods, commit=args.commit)
            return 0
        reproduce(args.table, args.preset, args.seeds, out, args.set, progress=not args.no_progress,
                  command=command, only=args.methods, commit=args.commit, jobs=args.jobs, runs_root=args.runs_root,
                  tables_dir=args.tables_out)
    except KeyError as err:
        raise ValueError(err.args[0]) from err
    print((Path(args.tables_out or out) / f"table{args.table}.md").read_text())
    return 0


def cmd_benchmark(args) -> int:
    from gfd.benchmark import load_benchmark, read_manifest

    if args.shift_stats:               # the test-only shift worlds and their classifier-free statistics
        from gfd.analysis.shift_stats import all_stats, write_results
        from gfd.utils import results_dir
        stats = all_stats(args.size, args.out, args.seed, progress=not args.no_progress)
        for path in write_results(stats, results_dir()):
            print(f"wrote {path}")
        return 0
    root = load_benchmark(args.benchmark, args.size, root=args.out, seed=args.seed, progress=not args.no_progress)
    m = read_manifest(root)
    print(f"benchmark: {root}")
    print(f"classes: {m['classes']}; per class: " + ", ".join(
        f"{s} {next(iter(c.values()))}" for s, c in m["counts"].items()))
    print(f"built in {m['build']['wall_seconds']} s wall / {m['build']['cpu_seconds']} s CPU")
    if args.figures:
        from gfd.analysis.families import format_distances, world_spectral_distances
        from gfd.plots import save_benchmark_figures
        for path in save_benchmark_figures(root, Path(args.figures)):
            print(f"figure: {path}")
        for world in m["worlds"]:
            print(format_distances(world_spectral_distances(root, world), world))
    if args.calibrate:
        from gfd.data import get_loaders
        from gfd.runs.calibrate import calibrate, format_calibration

        cfg = config_from(args).with_(benchmark_size=args.size, benchmark=args.benchmark)
        result = calibrate(cfg, get_loaders(root, cfg), seeds=tuple(args.seeds), progress=not args.no_progress)
        print(format_calibration(result))
        print("json: " + json.dumps({k: v for k, v in result.items() if k != "runs"}))
    return 0


def cmd_weights(args) -> int:
    from gfd.models.weights import WeightsUnavailableError, install_imagenet

    if args.source and len(args.arch) != 1:
        raise ValueError("--from imports one file: give exactly one --arch")
    failed = 0
    for arch in args.arch:
        try:
            print(f"{arch}: {install_imagenet(arch, args.source)}")
        except WeightsUnavailableError as err:
            failed += 1
            print(f"{arch}: not installed: {err}", file=sys.stderr)
    return 1 if failed else 0


def _preset_and_set(p: argparse.ArgumentParser, default: str | None = "course") -> None:
    p.add_argument("--preset", default=default, choices=sorted(PRESETS))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (repeatable), e.g. --set steps=200 --set use_D=false")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gfd", description="GFD-Net: train, evaluate, attribute, reproduce.")
    sub = p.add_subparsers(dest="command", required=True)
    quiet = dict(action="store_true", help="no progress bars")
    skip_bad = dict(action="store_true", help="skip unreadable or too large images (with a warning that counts "
                                              "them) instead of stopping at the first")

    t = sub.add_parser("train", help="train GFD-Net (C pre-training, then alternating G / D,C steps)")
    _preset_and_set(t)
    t.add_argument("--out", default=None, help="run folder (default data/runs/<preset>-<config key>)")
    t.add_argument("--fresh", action="store_true",
                   help="delete the run folder's checkpoint (nothing else) and train from scratch")
    t.add_argument("--skip-bad", **skip_bad)
    t.add_argument("--no-progress", **quiet)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="accuracy per world and class, and confusion matrices, of a checkpoint")
    e.add_argument("--checkpoint", required=True, help="a checkpoint.pt or a weights-only export")
    e.add_argument("--data-root", default=None, help="evaluate on this dataset instead of the checkpoint's")
    e.add_argument("--json", default=None, metavar="FILE", help="also write the results as JSON")
    e.add_argument("--skip-bad", **skip_bad)
    e.add_argument("--no-progress", **quiet)
    e.set_defaults(func=cmd_evaluate)

    a = sub.add_parser("attribute", help="the most likely source of each image, with probabilities")
    a.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER",
                   help="image files, or folders whose image files are attributed (sorted, not recursive); "
                        "a bad file is reported and skipped, and the exit code is 2 at the end")
    a.add_argument("--checkpoint", default=None,
                   help="a checkpoint.pt or a weights-only export (default: the newest finished run under "
                        "data/runs: of data/runs/*/checkpoint.pt whose step reached their config's steps, "
                        "the one modified last; it is printed)")
    a.set_defaults(func=cmd_attribute)

    x = sub.add_parser("export", help="write a weights-only copy of a checkpoint (G, config, classes) to share "
                                      "or attribute with")
    x.add_argument("--checkpoint", required=True, help="the run's checkpoint.pt")
    x.add_argument("--out", required=True, metavar="FILE", help="the export to write (not the checkpoint)")
    x.set_defaults(func=cmd_export)

    r = sub.add_parser("reproduce", help="Table 1 (PRNU, DCT, AttNet, GFD-Net), Table 2 (the same rows on the "
                                         "gan1024 benchmark: crops without resizing), Table 3 (detection: "
                                         "PatchForensics, CNNDetect, GFD-Net) or Table 4 (ablation) over seeds")
    r.add_argument("--table", type=int, required=True, choices=tuple(TABLE_SPECS))
    _preset_and_set(r, default=None)
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="training seeds (default 0 1 2 3 4)")
    r.add_argument("--methods", nargs="+", default=None, metavar="ROW",
                   help="only these rows, e.g. --methods G G+C (default: every row of the table)")
    r.add_argument("--out", default=None, help="folder of table<N>.md/.json and runs/ (default <repository>/results)")
    r.add_argument("--tables-out", default=None, metavar="DIR",
                   help="write table<N>.md/.json here instead of --out (the records stay under --out/runs): "
                        "tables of other seed sets, e.g. results/confirmatory")
    r.add_argument("--commit", action="store_true",
                   help="git-commit each run record as it is written (long reproductions survive a lost session)")
    r.add_argument("--jobs", type=int, default=1,
                   help="parallel worker processes, each with its share of the CPU threads; they take a seed's rows "
                        "with C, or its other rows, from one queue (default 1)")
    r.add_argument("--runs-root", default=None, help=argparse.SUPPRESS)     # tests: where GFD-Net networks go
    r.add_argument("--records-only", action="store_true", help=argparse.SUPPRESS)   # a --jobs worker
    r.add_argument("--no-progress", **quiet)
    r.set_defaults(func=cmd_reproduce)

    b = sub.add_parser("benchmark", help="build (or find) the offline mini benchmark; calibrate it; draw it")
    b.add_argument("--size", default="default", choices=BENCHMARK_SIZES, help="benchmark size")
    b.add_argument("--benchmark", default="gan128", choices=BENCHMARKS,
                   help="gan128 (Sec. 4.2.1's roles, 64 px; default) or gan1024 (Sec. 4.2.2's, 128 px: Table 2)")
    b.add_argument("--seed", type=int, default=0, help="seed of the build (default 0)")
    b.add_argument("--out", default=None, help="parent folder of the cache (default data/ of the repository)")
    b.add_argument("--calibrate", action="store_true",
                   help="train the direct classifier (Table 4's G row of --preset) for --seeds and print "
                        "closed- and open-world accuracy")
    _preset_and_set(b)
    b.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the calibration")
    b.add_argument("--figures", default=None, metavar="DIR",
                   help="save sample grids and residual spectra per world (and the variants) as PNG in DIR")
    b.add_argument("--no-progress", **quiet)
    b.add_argument("--shift-stats", action="store_true",
                   help="build the test-only shift worlds of --size (gfd.benchmark.worlds.shifts) and write their "
                        "classifier-free statistics to results/shift-worlds.{json,md}; trains no classifier")
    b.set_defaults(func=cmd_benchmark)

    from gfd import speed   # its arguments live beside the code that runs them
    s = sub.add_parser("speed", help="img/s and peak memory of a G-only and a full GFD training step; with "
                                     "--data, the share of time spent waiting on data")
    speed.add_arguments(s)
    s.set_defaults(func=speed.run)

    w = sub.add_parser("weights", help="put torchvision's ImageNet weights (C, VGG-16 of Eq. 5) into the torch hub "
                                        "cache: downloaded when online, or copied from files you brought")
    w.add_argument("--arch", nargs="+", default=["resnet18", "resnet50", "vgg16"],
                   help="torchvision architectures (default: resnet18 resnet50 vgg16)")
    w.add_argument("--from", dest="source", default=None, metavar="FILE",
                   help="import this file (one --arch) instead of downloading it")
    w.set_defaults(func=cmd_weights)

    from gfd import download, prepare   # their sub-commands' arguments live beside the code that runs them
    pp = sub.add_parser("prepare", help="image folders -> the gfd layout (Sec. 4.2), or ForenSynths -> the "
                                        "detection layout (Sec. 4.3)")
    prepare.add_arguments(pp)
    pp.set_defaults(func=prepare.run)
    dp = sub.add_parser("download", help="resumable, sha256-checked download; safe zip / tar extraction")
    download.add_arguments(dp)
    dp.set_defaults(func=download.run)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)   # a bad command line exits 2 here (argparse)
    from gfd.losses import NonFiniteLossError
    from gfd.models.weights import WeightsUnavailableError
    try:
        return args.func(args)
    except (NonFiniteLossError, WeightsUnavailableError) as err:    # valid input, the run failed
        say_error(f"{type(err).__name__}: {err}")
        return EXIT_RUN_FAILED
    except (FileNotFoundError, ValueError) as err:                  # the user's input: fix it and rerun
        if getattr(err, "reported", True):      # under torchrun, rank 0 alone reports an every-rank error
            say_error(err)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
