"""Reporting: runs over seeds -> Markdown / JSON tables, and the paper's claims checked against them.

:func:`results_table` turns per-seed results (from :mod:`gfd.evaluate`) into a table with
``mean ± std [95 % Student-t interval] (n seeds)`` cells and, beside them, the paper's numbers
(:mod:`gfd.paper`); under each table the seed standard deviations with their chi-square intervals and
the paper's claims (Sec. 4.2-4.4, :data:`gfd.paper.CLAIMS`) judged on paired per-seed differences
(:func:`gfd.verdicts.check_claims`: t-interval, exact sign-flip p-value, Holm's adjustment over the
table's claims, and in the open world an interval over generator instances as well as seeds).  The
statistics live in :mod:`gfd.stats`.  Nothing here trains or measures; nothing here selects anything.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from gfd.config import Config
from gfd.evaluate import aggregate_runs, flatten_metrics
from gfd.layout import SPLITS, TEST_CLOSED, TEST_OPEN, TEST_SPLIT, TRAIN, VAL
from gfd.paper import OPEN_MODELS, PAPER, TABLE2_COLUMNS, TABLE2_OPEN_FAMILIES, TABLE3_COLUMNS
from gfd.stats import bootstrap_ci  # noqa: F401  (re-exported: notebook 10 imports it from here)
from gfd.stats import clip_interval, sigma_interval, t_interval
from gfd.tables import TABLE_SPECS, TableSpec
from gfd.utils import atomic_write
# reading a table and judging the claims: gfd.verdicts, re-exported here, where the notebooks read tables
from gfd.verdicts import (SPREAD_METRICS, Claim, check_claims, claims_markdown, instance_cells,  # noqa: F401
                          load_table, open_model_metrics, paired_difference, per_class_means, seed_profiles,
                          seeds_to_resolve, spread_markdown, table_row, table_summary)

NO_PRETRAINED = "none (no pretrained network)"
"""How a run that uses no pretrained network records its weights."""


# --- one model's results ------------------------------------------------------------------------

def format_results(results: Mapping[str, Mapping[str, Any]]) -> str:
    """Accuracy per world, per class and the confusion matrix (rows: true class) of an
    :func:`gfd.evaluate.evaluate_model` result, as plain text."""
    lines = []
    for split, res in results.items():
        classes = list(res["classes"])
        lines.append(f"{res.get('world', split)}-world accuracy ({split}): {res['acc']:.4f}  (n = {res['n']})")
        width = max(len(c) for c in classes) + 2
        for c in classes:
            acc = res["per_class_acc"][c]
            lines.append(f"  {c:{width}s}{'n/a' if acc is None else f'{acc:.4f}'}")
        lines.append("  confusion (rows: true, columns: predicted)")
        lines.append("  " + " " * width + "".join(f"{c[:8]:>9s}" for c in classes))
        for c, row in zip(classes, res["confusion"]):
            lines.append(f"  {c:{width}s}" + "".join(f"{v:>9d}" for v in row))
    return "\n".join(lines)


# --- tables ---------------------------------------------------------------------------------------

def format_cell(stats: Mapping[str, Any] | None, percent: bool = True, digits: int = 2,
                deterministic: bool = False) -> str:
    """``"mean ± std (n seeds)"``, in percent by default like the paper's tables; ``"–"`` if absent.

    With a ``"ci"`` entry in ``stats`` the 95 % interval of the mean (the tables: Student-t,
    :func:`gfd.stats.t_interval`) follows as ``[lo, hi]``; a
    ``deterministic`` method (no randomness: every seed gives the same number) reads
    ``"mean (deterministic)"``.
    """
    if stats is None:
        return "–"
    scale = 100.0 if percent else 1.0
    n = stats["n"]
    mean = f"{stats['mean'] * scale:.{digits}f}"
    if deterministic:
        return f"{mean} (deterministic)"
    if n < 2 or stats["std"] is None or math.isnan(stats["std"]):
        return f"{mean} ({n} seed{'s' if n != 1 else ''})"
    ci = stats.get("ci")
    interval = (f" [{ci[0] * scale:.{digits - 1}f}, {ci[1] * scale:.{digits - 1}f}]"
                if ci is not None and None not in ci and not any(map(math.isnan, ci)) else "")
    return f"{mean} ± {stats['std'] * scale:.{digits}f}{interval} ({n} seeds)"


def _rows(rows: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> list[tuple[str, list, list]]:
    """Normalise ``{method: runs}`` / ``[(method, runs)]`` to ``[(method, seeds, results)]``."""
    pairs = list(rows.items()) if isinstance(rows, Mapping) else list(rows)
    out = []
    for method, runs in pairs:
        if isinstance(runs, Mapping) and runs and all(isinstance(v, Mapping) for v in runs.values()) \
                and not any(isinstance(v, Mapping) and "acc" in v for v in runs.values()):
            seeds, results = list(runs.keys()), list(runs.values())      # {seed: result}
        elif isinstance(runs, Mapping):
            seeds, results = [None], [runs]                              # a single result
        else:
            results = list(runs)
            seeds = list(range(len(results)))
        out.append((str(method), seeds, results))
    return out


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def results_table(rows: Mapping[str, Any] | Sequence[tuple[str, Any]], path_md: str | None = None,
                  path_json: str | None = None, metrics: Sequence[str] = ("closed", "open"),
                  percent: bool = True, digits: int = 2, title: str | None = None,
                  reference: Mapping[str, Mapping[str, float]] | None = None, reference_name: str = "paper",
                  notes: Sequence[str] = (), meta: Mapping[str, Any] | None = None, ci: bool = False,
                  deterministic: Sequence[str] = (),
                  sources: Mapping[str, Mapping[Any, Mapping[str, float]]] | None = None) -> str:
    """A Markdown table, one row per method and one column per metric (Tables 1, 2, 4 of the paper).

    ``rows``: ``{method: runs}`` (or a list of ``(method, runs)`` pairs), where ``runs`` is a list of
    per-seed results, a dict ``{seed: result}``, or one result; results as for
    :func:`aggregate_runs`.  Cells read ``"mean ± std (n seeds)"`` (accuracy in percent by default).
    Writes the table to ``path_md`` and, to ``path_json``, the summary plus the raw per-seed numbers.
    ``reference`` (``{method: {metric: value}}``, already in the table's unit) adds a column per
    metric headed ``"<metric> (<reference_name>)"``, e.g. the paper's numbers; ``notes`` are
    paragraphs printed under the table; ``meta`` is stored in the JSON as is.  ``ci`` adds the 95 %
    Student-t interval of the mean over seeds to each cell and, to the JSON, that interval (``ci``)
    and the chi-square interval of the seed standard deviation (``std_ci``); rows named in
    ``deterministic`` are printed as such.  ``sources`` (``{method: {seed: {source: accuracy}}}``,
    the open world's per-generator-instance accuracies) go to the JSON as each row's
    ``per_seed_sources``, for the instance-level intervals of :func:`check_claims`.  Returns the
    Markdown.
    """
    metrics = list(metrics)
    norm = _rows(rows)
    if not norm:
        raise ValueError("results_table got no rows")
    unit = " (%)" if percent else ""
    ref_metrics = [m for m in metrics if reference and any(m in r for r in reference.values())]
    header = "| Method | " + " | ".join([f"{m}{unit}" for m in metrics]
                                        + [f"{m} ({reference_name})" for m in ref_metrics]) + " |"
    lines = ([f"**{title}**", ""] if title else []) + [header, "|---" * (len(metrics) + len(ref_metrics) + 1) + "|"]
    records = table_records(norm, metrics if ci else (), sources)
    for (method, _, _), record in zip(norm, records):
        summary = record["summary"]
        ref = (reference or {}).get(method, {})
        cells = [format_cell(summary.get(m), percent, digits, deterministic=method in deterministic)
                 for m in metrics]
        cells += [f"{ref[m]:.{digits}f}" if m in ref else "–" for m in ref_metrics]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    for note in notes:
        lines += ["", note]
    text = "\n".join(lines) + "\n"
    if path_md is not None:
        atomic_write(path_md, lambda p: p.write_text(text, encoding="utf-8"))
    if path_json is not None:
        payload = _json_safe(dict(metrics=metrics, percent=percent, rows=records, reference=reference,
                                  meta=dict(meta or {})))
        atomic_write(path_json, lambda p: p.write_text(json.dumps(payload, indent=2), encoding="utf-8"))
    return text


def table_records(norm: Sequence[tuple[str, list, list]], interval_metrics: Sequence[str] = (),
                  sources: Mapping[str, Mapping[Any, Mapping[str, float]]] | None = None) -> list[dict[str, Any]]:
    """The JSON rows of a table from :func:`_rows`' ``[(method, seeds, results)]``: the summary over
    seeds (with, for ``interval_metrics``, the t-interval of the mean ``ci`` and the chi-square
    interval of the standard deviation ``std_ci``), the per-seed numbers and confusion matrices, and
    the per-seed per-instance accuracies of ``sources`` where given."""
    records = []
    for method, seeds, results in norm:
        summary = aggregate_runs(results, per_class=True)
        for m in interval_metrics:
            if m in summary:
                summary[m]["ci"] = clip_interval(t_interval(summary[m]["values"]), 0.0, 1.0)
                summary[m]["std_ci"] = sigma_interval(summary[m]["values"])
        record = dict(method=method, seeds=seeds, summary=summary,
                      per_seed=[flatten_metrics(r, per_class=True) for r in results],
                      per_seed_confusion=[{k: v["confusion"] for k, v in r.items()
                                           if isinstance(v, Mapping) and "confusion" in v}
                                          for r in results])
        by_seed = (sources or {}).get(method)
        if by_seed:
            record["per_seed_sources"] = [dict(by_seed[s]) for s in seeds]
        records.append(record)
    return records


def write_table(table: int | TableSpec, runs: dict[str, dict[int, dict]], out_dir: str | os.PathLike,
                command: str | None = None) -> str:
    """``table<N>.md`` and ``table<N>.json`` under ``out_dir``: the runs of a reproduced table
    (``{method: {seed: run record}}``, see :mod:`gfd.runs.reproduce`) beside the paper's numbers,
    laid out by the table's :class:`gfd.tables.TableSpec` (its columns, its orientation, its notes).
    The JSON holds every per-seed number, per-class accuracy and confusion matrix."""
    spec = table if isinstance(table, TableSpec) else TABLE_SPECS[table]
    first = next(iter(next(iter(runs.values())).values()))
    seeds = sorted({s for by_seed in runs.values() for s in by_seed})
    weights = sorted({part for by_seed in runs.values() for r in by_seed.values()
                      for part in r["weights"].split(", ")} - {NO_PRETRAINED})
    meta: dict[str, Any] = dict(table=spec.number, preset=first["preset"], benchmark=first["benchmark"], seeds=seeds)
    deterministic = [m for m, by_seed in runs.items() if all(r.get("deterministic") for r in by_seed.values())]
    columns = _COLUMNS[spec.columns]
    metrics, row, reference, notes = columns(spec, runs, first, seeds, weights, meta)
    meta.update(weights={m: next(iter(by_seed.values()))["weights"] for m, by_seed in runs.items()},
                command=command,
                seconds={m: [r["seconds"] for r in by_seed.values()] for m, by_seed in runs.items()})
    rows = {m: {s: row(r) for s, r in by_seed.items()} for m, by_seed in runs.items()}
    sources = {m: {s: r["results"][TEST_OPEN]["by_source"]["per_source"] for s, r in by_seed.items()}
               for m, by_seed in runs.items()
               if all(((r["results"].get(TEST_OPEN) or {}).get("by_source") or {}).get("per_source")
                      for r in by_seed.values())}
    table_json = dict(metrics=list(metrics), rows=table_records(_rows(rows), metrics, sources))
    claims = check_claims(spec.number, table_summary(table_json), table_json)
    notes += [spread_markdown(table_json, SPREAD_METRICS[spec.columns], deterministic), *claims_markdown(claims)]
    meta["claims"] = [c.as_dict() for c in claims]
    if command:
        notes.append(f"Produced by `{command}`.")
    out = Path(out_dir)
    if not spec.methods_as_columns:
        return results_table(rows, out / f"table{spec.number}.md", out / f"table{spec.number}.json",
                             metrics=metrics, title=spec.title, reference=reference,
                             notes=notes, meta=meta, ci=True, deterministic=deterministic, sources=sources)
    results_table(rows, None, out / f"table{spec.number}.json", metrics=metrics, reference=reference,
                  meta=meta, ci=True, deterministic=deterministic, sources=sources)
    text = _sideways(spec, rows, metrics, reference, deterministic, notes)
    atomic_write(out / f"table{spec.number}.md", lambda p: p.write_text(text, encoding="utf-8"))
    return text


def _protocol_note(meta: Mapping[str, Any], seeds: Sequence[int], what: str, weights: Sequence[str], chance: str) -> str:
    return (f"Preset `{meta['preset']}`, {meta['benchmark']}; seeds {', '.join(map(str, seeds))}; {what}"
            f"Pretrained weights: {'; '.join(weights) or 'none'}.  Chance: {chance}.")


_TRAINING = ("Every learned method trains by the course's protocol (gfd.protocol: decaying lr, val accuracy "
             "every few steps, the best val weights kept, a stop after a plateau), so `val`, the closed-world "
             "validation accuracy of the kept weights, was used to select them and reads optimistic; "
             "`C val` is the val accuracy of the pre-trained auxiliary classifier C (rows with C).  ")


def _world_columns(spec, runs, first, seeds, weights, meta):
    """Tables 1 and 4: closed, open, open over instances, val, C val."""
    n_classes = len(first["results"][TEST_CLOSED]["classes"])
    inst = ("`open_inst` is the open-world accuracy averaged over generator instances "
            "(each instance weighs the same), then over the two open domains.  ")
    notes = [_protocol_note(meta, seeds, f"mean ± sample std [95 % Student-t interval of the mean] over seeds.  {inst}{_TRAINING}",
                            weights, f"{100 / n_classes:.0f} %"),
             "The paper's numbers are on 128 px CelebA / LSUN GANs (Sec. 4.2.1, Tables 1 and 4); ours on "
             "the offline miniature, so compare orderings and gaps, not levels."]
    return ("closed", "open", "open_inst", "val", "C val"), _with_c_val, PAPER[spec.number], notes


def _open_model_columns(spec, runs, first, seeds, weights, meta):
    """Table 2: closed, one column per open-world generator and their mean, val, C val."""
    n_classes = len(first["results"][TEST_CLOSED]["classes"])
    models = open_model_columns(first["results"])
    metrics = ("closed", *models, *([OPEN_MODELS] if models else ["open"]), "val", "C val")
    notes = [_protocol_note(meta, seeds, f"mean ± sample std [95 % Student-t interval of the mean] over seeds.  {_TRAINING}",
                            weights, f"{100 / n_classes:.0f} %"), *table2_notes(models)]
    reference = {m: {"closed": v[TABLE2_COLUMNS[0]]} for m, v in PAPER[2].items()}
    def row(run):
        return dict(_with_c_val(run), **open_model_accuracies(run["results"], models))
    return metrics, row, reference, notes


def _test_set_columns(spec, runs, first, seeds, weights, meta):
    """Table 3: one column per detection test set, their average, val, C val."""
    from gfd.detection import AVERAGE, detection_accuracies
    from gfd.paper import TABLE3_PAPER_ROWS
    test_sets = [k.split("/", 1)[1] for k in first["results"] if k.startswith(f"{TEST_SPLIT}/")]
    meta["test_sets"] = test_sets
    paper = PAPER[spec.number]
    printed = {m: TABLE3_PAPER_ROWS.get(m, m) for m in runs}          # e.g. GFD-Net (ResNet) -> (ResNet50)
    reference = {m: {AVERAGE: paper[printed[m]][TABLE3_COLUMNS[-1]]} for m in runs if printed[m] in paper}
    what = (f"accuracy (%) of the binary real / fake decision on each test set, mean ± sample std "
            f"[95 % Student-t interval of the mean] over seeds.  Test sets: `A-<family>` the closed domain's generators "
            f"(the first, the trained family's held-out images, is the paper's ProGAN column), `B1-` and `B2-` "
            f"every family in the two other content domains (new generator instances), `variant-` the "
            f"factor-analysis variants; each against the real images of its domain.  `{AVERAGE}` is the mean "
            f"over all {len(test_sets)} test sets, the seen one included (the paper's last column).  `val` "
            f"(real vs the trained family) selected the kept weights (gfd.protocol) and reads optimistic; "
            f"`C val` is the val accuracy of GFD-Net's pre-trained C.  ")
    notes = [_protocol_note(meta, seeds, what, weights, "50 %"),
             "The paper's numbers are on ForenSynths (ProGAN-airplane vs LSUN-airplane, 13 test generators, "
             "224 px): only the average can stand beside ours; compare orderings and gaps, not levels.  "
             "`GFD-Net (ResNet)` and `GFD-Net (DenseNet)` build G's encoder on a ResNet / DenseNet backbone as the "
             "paper's GFD-Net (ResNet50) and GFD-Net (DenseNet) do (CPU-size backbones in the CPU presets); "
             "`ResNet` and `DenseNet` are the same encoder + head trained as plain classifiers.  `GFD-Net (U-Net)` "
             "(the course's encoder) and `ResNet` have no printed row; Xception is left out (torchvision has none)."]
    def row(run):
        return dict(run["results"], **{AVERAGE: detection_accuracies(run["results"], test_sets)[AVERAGE]},
                    **c_val_metric(run))
    return [*test_sets, AVERAGE, "val", "C val"], row, reference, notes


def _with_c_val(run: Mapping[str, Any]) -> dict[str, Any]:
    """A run's results with C's val accuracy beside them (rows with C)."""
    return dict(run["results"], **c_val_metric(run))


_COLUMNS = {"worlds": _world_columns, "open models": _open_model_columns, "test sets": _test_set_columns}
"""A :attr:`gfd.tables.TableSpec.columns` name -> a function giving (metrics, a record's row of metrics,
the paper's reference, notes)."""


def _sideways(spec: TableSpec, rows, metrics, reference, deterministic, notes) -> str:
    """The Markdown of a table with one column per method and one row per metric (Table 3: the test
    sets are many), the paper's reference row under it and the paper's table as printed."""
    methods = list(rows)
    summaries = {}
    for m in methods:
        summary = aggregate_runs(list(rows[m].values()))
        for metric in metrics:
            if metric in summary:
                summary[metric]["ci"] = clip_interval(t_interval(summary[metric]["values"]), 0.0, 1.0)
        summaries[m] = summary
    average = metrics[-3]
    lines = [f"**{spec.title}**", "",
             "| Test set | " + " | ".join(f"{m} (%)" for m in methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for metric in metrics:
        if not any(metric in summaries[m] for m in methods):
            continue
        cells = [format_cell(summaries[m].get(metric), deterministic=m in deterministic) for m in methods]
        name = f"**{metric}**" if metric == average else metric
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append(f"| {average} (paper) | " + " | ".join(f"{reference[m][average]:.2f}" if m in reference else "–"
                                                      for m in methods) + " |")
    for note in notes:
        lines += ["", note]
    paper = PAPER[spec.number]
    lines += ["", "**The paper's Table 3 (accuracy %, ForenSynths), as printed**", "",
              "| Method | " + " | ".join(TABLE3_COLUMNS) + " |", "|---" * (len(TABLE3_COLUMNS) + 1) + "|"]
    lines += [f"| {m} | " + " | ".join(f"{v[c]:.2f}" for c in TABLE3_COLUMNS) + " |" for m, v in paper.items()]
    return "\n".join(lines) + "\n"


def open_model_columns(results: Mapping[str, Any]) -> dict[str, str]:
    """Table 2's open-world model columns of a run's results: ``{column: source}``, e.g.
    ``{"stylegan O1": "O1/stylegan/g0"}``, one per generator of the paper's open-world families
    (:data:`gfd.paper.TABLE2_OPEN_FAMILIES`) in ``test_open``, by family then world.  Empty where the
    file names say no source (data outside the built-in benchmark)."""
    per_source = ((results.get(TEST_OPEN) or {}).get("by_source") or {}).get("per_source", {})
    families = [f.lower() for f in TABLE2_OPEN_FAMILIES]
    found = [tuple(k.split("/")) for k in per_source if k.count("/") == 2 and k.split("/")[1].lower() in families]
    found.sort(key=lambda wci: (families.index(wci[1].lower()), wci[0], wci[2]))
    return {(f"{c} {w}" if i == "g0" else f"{c} {w}/{i}"): f"{w}/{c}/{i}" for w, c, i in found}


def open_model_accuracies(results: Mapping[str, Any], columns: Mapping[str, str]) -> dict[str, float]:
    """One run's accuracy on each of Table 2's open-world models (``columns`` as from
    :func:`open_model_columns`) and their mean, :data:`OPEN_MODELS`; ``{}`` for no columns."""
    if not columns:
        return {}
    per_source = results[TEST_OPEN]["by_source"]["per_source"]
    accs = {col: float(per_source[src]) for col, src in columns.items()}
    return {**accs, OPEN_MODELS: float(np.mean(list(accs.values())))}


def table2_notes(columns: Mapping[str, str]) -> list[str]:
    """What Table 2's columns are, and the paper's Table 2 as printed (Markdown), under our table."""
    cols = ", ".join(f"`{c}`" for c in columns)
    what = (f"Open-world columns ({cols}): the accuracy on the images of one open-world generator, the family's "
            f"generator trained on that open domain (O1, O2, ... play the seeprettyface data sets), as the paper's "
            f"columns; `{OPEN_MODELS}` is their mean, each model weighing the same.  The open world's real images "
            f"and its ProGAN (no column in the paper, there because the layout needs every class) are in each "
            f"run's record under results/runs/.  The crops are cut from 128 px images, never resized (the "
            f"`p1024` transform)." if columns else
            "`open` is the accuracy on the whole test_open split (its file names say no source, so there is "
            "no column per open-world model).")
    paper = PAPER[2]
    lines = ["**The paper's Table 2 (accuracy %, 1024 px GANs), as printed**", "",
             "| Method | " + " | ".join(TABLE2_COLUMNS) + " |", "|---" * (len(TABLE2_COLUMNS) + 1) + "|"]
    lines += [f"| {m} | " + " | ".join(f"{v[c]:.2f}" for c in TABLE2_COLUMNS) + " |" for m, v in paper.items()]
    return [what,
            "The paper's numbers are on 1024 px GANs (Sec. 4.2.2: real FFHQ + CelebA-HQ, StyleGAN-FFHQ, "
            "StyleGAN2-FFHQ, ProGAN-CelebA-HQ; open world StyleGAN on ten and StyleGAN2 on four seeprettyface "
            "data sets); ours on the offline miniature (one generator per family in the closed world, as there; "
            "fewer open-world models).  Only the closed world has a paper number beside ours; the paper's "
            "open-world models are other models, so its whole table is printed below: compare orderings and "
            "gaps, not levels.",
            "\n".join(lines)]


def c_val_metric(run: Mapping[str, Any]) -> dict[str, float]:
    """``{"C val": acc}`` for a run record whose training pre-trained C, else ``{}``."""
    c_val = (run.get("training") or {}).get("c_val")
    return {"C val": float(c_val)} if c_val is not None else {}


def benchmark_label(bundle, cfg: Config) -> str:
    """``"quick mini benchmark: 150/20/60/60 images per class (train/val/closed/open), 48 px crops"``;
    for detection data (:mod:`gfd.detection`) the training pair and the number of test sets."""
    world = "" if cfg.benchmark == "gan128" else f" {cfg.benchmark}"        # gan1024: Table 2's world
    name = f"{cfg.benchmark_size}{world} mini benchmark" if cfg.data_root is None else f"data at {cfg.data_root}"
    k = max(len(bundle.classes), 1)
    test_sets = getattr(bundle, "test_sets", None)
    if test_sets is not None:
        from gfd.detection import read_view
        view = read_view(bundle.root)
        what = f"detection view of the {name}: real vs {view['family']}" if view else f"{name} (detection layout)"
        counts = "/".join(str(len(bundle.datasets[s]) // k) for s in (TRAIN, VAL))
        return f"{what}, {counts} images per class (train/val), {len(test_sets)} test sets, {cfg.crop} px crops"
    counts = "/".join(str(len(bundle.datasets[s]) // k)
                      for s in SPLITS if s in bundle.datasets)
    return f"{name}: {counts} images per class (train/val/closed/open), {cfg.crop} px crops"
