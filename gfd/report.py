"""Reporting: runs over seeds -> Markdown / JSON tables, and the paper's claims checked against them.

:func:`results_table` turns per-seed results (from :mod:`gfd.evaluate`) into a table with
``mean ± std [95 % Student-t interval] (n seeds)`` cells and, beside them, the paper's numbers
(:mod:`gfd.paper`); under each table the seed standard deviations with their chi-square intervals and
the paper's claims (Sec. 4.2-4.4, :data:`gfd.paper.CLAIMS`) judged on paired per-seed differences
(:func:`check_claims`: t-interval, exact sign-flip p-value, Holm's adjustment over the table's
claims, and in the open world an interval over generator instances as well as seeds).  The
statistics live in :mod:`gfd.stats`.  Nothing here trains or measures; nothing here selects anything.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from gfd.config import Config
from gfd.evaluate import aggregate_runs, flatten_metrics
from gfd.layout import OPEN, SPLITS, TEST_CLOSED, TEST_OPEN, TEST_SPLIT, TRAIN, VAL, WORLDS
from gfd.paper import (CLAIMS, EACH_OPEN_MODEL, NON_SUPERIORITY_MARGIN, OPEN_MODELS, PAPER, TABLE2_COLUMNS,
                       TABLE2_OPEN_FAMILIES, TABLE3_COLUMNS, PaperClaim, paper_value)
from gfd.stats import bootstrap_ci  # noqa: F401  (re-exported: notebook 10 and older code import it from here)
from gfd.stats import holm, sigma_interval, sign_flip_p, t_interval, two_level_interval
from gfd.tables import TABLE_SPECS, TableSpec

NO_PRETRAINED = "none (no pretrained network)"
"""How a run that uses no pretrained network records its weights."""
from gfd.utils import atomic_write, results_dir


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
                summary[m]["ci"] = _clip(t_interval(summary[m]["values"]), 0.0, 1.0)
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
                summary[metric]["ci"] = _clip(t_interval(summary[metric]["values"]), 0.0, 1.0)
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



# --- reading a table ------------------------------------------------------------------------------

def load_table(table: int, out_dir: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The JSON of a table written by :func:`gfd.runs.reproduce.write_table` under ``out_dir`` (default :func:`gfd.utils.results_dir`);
    ``None`` if it has not been produced yet."""
    path = Path(out_dir or results_dir()) / f"table{table}.json"
    return json.loads(path.read_text()) if path.is_file() else None



def table_row(table_json: dict[str, Any], method: str) -> dict[str, Any]:
    """Row ``method`` of a table's JSON; a ``KeyError`` that lists the rows there is none."""
    for row in table_json["rows"]:
        if row["method"] == method:
            return row
    raise KeyError(f"no row {method!r} in the table; rows: {[row['method'] for row in table_json['rows']]}")


def per_class_means(table_json: dict[str, Any], world: str = OPEN) -> tuple[list[str], list[str], list[list[float]]]:
    """``(methods, classes, acc)`` from a table's JSON: ``acc[i][j]`` is method i on class j in
    ``world`` (``"open"``, ``"closed"`` or ``"val"``), the mean over the table's seeds."""
    names, classes, rows = [], None, []
    for row in table_json["rows"]:
        keys = [k for k in row["summary"] if k.startswith(f"{world}/")]
        if not keys:
            raise KeyError(f"table row {row['method']!r} has no per-class accuracy for world {world!r}")
        mine = [k.split("/", 1)[1] for k in keys]
        classes = classes or mine
        if mine != classes:
            raise ValueError(f"row {row['method']!r}: classes {mine} differ from {classes}")
        names.append(row["method"])
        rows.append([row["summary"][k]["mean"] for k in keys])
    return names, classes or [], rows


def seed_profiles(table_json: dict[str, Any], method: str, world: str = OPEN) -> list[dict[str, Any]]:
    """One line per seed of row ``method``: its accuracy in ``world`` and the class its predictions
    fall on most, with that class's share of all predictions there (from the stored confusion
    matrices).  A share far above ``1 / K`` says the model sends much of that world to one class,
    the collapse a strong domain shift can cause."""
    row = table_row(table_json, method)
    split = WORLDS.get(world, world)       # "open" -> "test_open"; "val" stays
    classes = [k.split("/", 1)[1] for k in row["summary"] if k.startswith(f"{world}/")]
    out = []
    for seed, metrics, confusion in zip(row["seeds"], row["per_seed"], row.get("per_seed_confusion") or []):
        if split not in confusion:
            raise KeyError(f"row {method!r}, seed {seed}: no confusion matrix for world {world!r}")
        predicted = np.asarray(confusion[split]).sum(axis=0)      # columns: predicted class
        top = int(predicted.argmax())
        out.append(dict(seed=seed, acc=metrics[world], top_class=classes[top] if classes else top,
                        top_share=float(predicted[top] / predicted.sum())))
    if not out:
        raise ValueError(f"row {method!r} stores no per-seed confusion matrices")
    return out


def seeds_to_resolve(gap: float, std: float, z: float = 2.0) -> float:
    """Seeds per row needed before a mean difference ``gap`` stands ``z`` standard errors clear of zero.

    Two rows with the same seed standard deviation ``std``: the difference of their means has
    standard error ``std * sqrt(2 / n)``, so ``n = 2 (z std / gap)^2``, rounded up (at least 2;
    ``inf`` for a zero gap).
    """
    if gap == 0:
        return math.inf
    return max(2, math.ceil(2 * (z * std / gap) ** 2))


def paired_difference(table_json: dict[str, Any], a: str, b: str, metric: str = "open",
                      null: float = 0.0) -> dict[str, Any]:
    """Row ``a`` minus row ``b`` seed by seed (the seeds both have), from a table's JSON: the
    per-seed differences, their mean, std, 95 % Student-t interval ``ci`` and the exact sign-flip
    p-value ``p`` against ``null`` (fractions, not percent).  When rows run with one seed share its
    data order, pre-trained C and initial weights (paired rows, the protocol's rule 4), their
    differences vary less than the rows themselves."""
    rows = {name: table_row(table_json, name) for name in (a, b)}
    per = {name: {s: r.get(metric) for s, r in zip(rows[name]["seeds"], rows[name]["per_seed"])} for name in (a, b)}
    seeds = [s for s in per[a] if s in per[b] and per[a][s] is not None and per[b][s] is not None]
    if not seeds:
        raise ValueError(f"rows {a!r} and {b!r} share no seed with a {metric!r} number")
    d = np.array([per[a][s] - per[b][s] for s in seeds], dtype=np.float64)
    return dict(seeds=seeds, values=d.tolist(), mean=float(d.mean()), n=int(d.size),
                std=float(d.std(ddof=1)) if d.size > 1 else float("nan"), ci=_clip(t_interval(d), -1.0, 1.0),
                p=sign_flip_p(d, null))


def _clip(interval: tuple[float, float], lo: float, hi: float) -> tuple[float, float]:
    """An interval cut to the range its quantity can take (an accuracy lies in [0, 1], a difference
    of two in [-1, 1]): the t-interval's symmetric ends can pass them at a few seeds, and the cut
    interval covers the true value whenever the uncut one does."""
    return tuple(float(min(max(x, lo), hi)) if x == x else x for x in interval)


def instance_cells(table_json: dict[str, Any], method: str, metric: str, seeds: Sequence[Any]
                   ) -> tuple[dict[str, np.ndarray], dict[str, float]] | None:
    """Row ``method``'s per-seed values on each generator instance behind ``metric``, grouped by
    family: ``({cell: array (seeds, instances)}, {cell: weight in the metric})``, or ``None`` where the
    metric rests on no set of instances.

    ``open`` / ``open_inst`` (Tables 1 and 4, Sec. 4.2.1): the row's ``per_seed_sources``
    (``"B1/progan/g0"``: world / family / instance); a cell is one family in one open world, the real
    images are a cell of one (a fixed set, no instance spread).  ``open`` weighs each world-class
    cell the same (the benchmark's open world holds as many images of each class in each world), its
    instances equally; ``open_inst`` weighs every source of a world the same.  :data:`OPEN_MODELS`
    (Table 2, Sec. 4.2.2): the open-model columns, a cell per family (``stylegan`` over O1-O3), each
    model weighing the same.  Other metrics (one model, Table 3's test sets): ``None``."""
    row = table_row(table_json, method)
    index = {s: i for i, s in enumerate(row["seeds"])}
    if metric in ("open", "open_inst") and row.get("per_seed_sources"):
        per_seed = [row["per_seed_sources"][index[s]] for s in seeds]
        keys = sorted(per_seed[0])
        worlds = sorted({k.split("/")[0] for k in keys})
        groups: dict[str, list[str]] = {}
        for k in keys:
            w, family, _ = k.split("/")
            groups.setdefault(f"{w}/{family}", []).append(k)
        cells = {c: np.array([[p[k] for k in ks] for p in per_seed]) for c, ks in groups.items()}
        if metric == "open":
            per_world = {w: sum(1 for c in groups if c.startswith(w + "/")) for w in worlds}
            weights = {c: 1.0 / (len(worlds) * per_world[c.split("/")[0]]) for c in groups}
        else:
            n_sources = {w: sum(len(ks) for c, ks in groups.items() if c.startswith(w + "/")) for w in worlds}
            weights = {c: len(ks) / (len(worlds) * n_sources[c.split("/")[0]]) for c, ks in groups.items()}
        return cells, weights
    if metric == OPEN_MODELS:
        models = open_model_metrics(table_json)
        if not models:
            return None
        per_seed = [row["per_seed"][index[s]] for s in seeds]
        groups = {}
        for col in models:
            groups.setdefault(col.split(" ")[0], []).append(col)
        cells = {c: np.array([[p[k] for k in ks] for p in per_seed]) for c, ks in groups.items()}
        return cells, {c: len(ks) / len(models) for c, ks in groups.items()}
    return None


def open_model_metrics(table_json: dict[str, Any]) -> list[str]:
    """Table 2's open-model columns of a table's JSON (between ``closed`` and :data:`OPEN_MODELS`)."""
    metrics = list(table_json.get("metrics") or [])
    if OPEN_MODELS not in metrics or "closed" not in metrics:
        return []
    return metrics[metrics.index("closed") + 1:metrics.index(OPEN_MODELS)]


def _judge(lo: float, hi: float, relation: str, margin: float) -> str:
    """``"reproduced"``, ``"not resolved"`` or ``"reversed"`` for an interval of a - b (points): a ">"
    claim needs the interval above 0; a "<=" claim (non-superiority) its upper end below ``margin``,
    and is reversed when its lower end lies above it."""
    if relation == ">":
        return "reproduced" if lo > 0 else "reversed" if hi < 0 else "not resolved"
    return "reproduced" if hi < margin else "reversed" if lo > margin else "not resolved"


@dataclass
class Claim:
    """One of the paper's claims judged on our table (points throughout)."""
    text: str           # e.g. "open: G+D+C > G"
    paper_gap: float    # a - b in the paper (points)
    gap: float          # a - b here, mean over seeds (points)
    spread: float       # the larger of the two seed standard deviations here (points)
    holds: bool         # does the mean ordering here agree with the paper's relation?
    ci: tuple[float, float] | None = None   # 95 % interval of the paired difference (points; Student-t)
    relation: str = ">"                      # the paper's relation: ">" or "<="
    p: float = float("nan")                  # exact two-sided sign-flip p-value (against the margin for "<=")
    p_holm: float = float("nan")             # Holm-adjusted over the table's claims
    margin: float = 0.0                      # the non-superiority margin of a "<=" claim (points)
    ci_instances: tuple[float, float] | None = None   # over generator instances as well as seeds (points)
    n: int = 0                               # paired seeds
    source: PaperClaim | None = None         # the paper's statement (section, line, quote)

    @property
    def word(self) -> str:
        """``"reproduced"`` / ``"not resolved"`` / ``"reversed"`` on the seed interval (``""`` without one)."""
        if self.ci is None or any(map(math.isnan, self.ci)):
            return ""
        return _judge(*self.ci, self.relation, self.margin)

    @property
    def word_instances(self) -> str:
        """The same judgement on the interval over instances and seeds; ``"n/a"`` where there is none."""
        if self.ci_instances is None or any(map(math.isnan, self.ci_instances)):
            return "n/a"
        return _judge(*self.ci_instances, self.relation, self.margin)

    @property
    def paper_gap_inside(self) -> str:
        """``"inside"`` / ``"outside"``: does the paper's own gap lie in our interval (``"n/a"``: no
        printed number, or no interval)."""
        if self.ci is None or math.isnan(self.paper_gap) or any(map(math.isnan, self.ci)):
            return "n/a"
        return "inside" if self.ci[0] <= self.paper_gap <= self.ci[1] else "outside"

    @property
    def verdict(self) -> str:
        if self.word:
            bound = "0" if self.relation == ">" else f"the {self.margin:+.1f} margin"
            why = {"reproduced": f"{'above' if self.relation == '>' else 'below'} {bound}",
                   "reversed": f"{'below' if self.relation == '>' else 'above'} {bound}",
                   "not resolved": f"includes {bound}"}[self.word]
            return f"{self.word} (95 % interval of the paired difference {why})"
        clear = abs(self.gap) > self.spread or self.gap == 0
        if self.holds:
            return "reproduced" if clear else "same direction, within the seed spread"
        return "reversed" if clear else "not reproduced, within the seed spread"

    def as_dict(self) -> dict[str, Any]:
        """The claim for a table's JSON (``meta.claims``), points."""
        src = self.source
        return dict(claim=self.text, relation=self.relation, margin=self.margin if self.relation == "<=" else None,
                    paper_gap=self.paper_gap, gap=self.gap, ci=self.ci, n=self.n, p=self.p, p_holm=self.p_holm,
                    paper_gap_inside=self.paper_gap_inside, verdict=self.word,
                    ci_instances=self.ci_instances, verdict_instances=self.word_instances,
                    section=src.section if src else None, line=src.line if src else None,
                    quote=src.quote if src else None)

    def __str__(self) -> str:
        paper = "   n/a" if math.isnan(self.paper_gap) else f"{self.paper_gap:+6.2f}"      # no printed row
        if self.ci is not None:
            text = (f"{self.text:34s} paper {paper}  here {self.gap:+6.2f} "
                    f"[{self.ci[0]:+.2f}, {self.ci[1]:+.2f}]")
            if not math.isnan(self.p):
                text += f"  p {self.p:.3f} (Holm {self.p_holm:.3f})  paper's gap {self.paper_gap_inside}"
            text += f"  -> {self.verdict}"
            if self.ci_instances is not None:
                text += (f"; instances + seeds [{self.ci_instances[0]:+.2f}, {self.ci_instances[1]:+.2f}]"
                         f" -> {self.word_instances}")
            return text
        return (f"{self.text:34s} paper {paper}  here {self.gap:+6.2f} "
                f"(seed std up to {self.spread:.2f})  -> {self.verdict}")


def _expand(table: int, table_json: dict[str, Any] | None) -> list[tuple[PaperClaim, str, str]]:
    """``(claim, our metric, the paper's metric)`` for each claim of ``table``; a Table 2 claim on
    :data:`EACH_OPEN_MODEL` becomes one per open-model column of ``table_json`` (none without it)."""
    out = []
    for claim in CLAIMS.get(table, ()):
        if claim.metric == EACH_OPEN_MODEL:
            out += [(claim, col, col.split(" ")[0].lower()) for col in open_model_metrics(table_json or {})]
        else:
            out.append((claim, claim.metric, claim.metric))
    return out


def check_claims(table: int, summary: dict[str, dict[str, dict[str, Any]]],
                 table_json: dict[str, Any] | None = None) -> list[Claim]:
    """Test the paper's claims (:data:`gfd.paper.CLAIMS`) on ``summary`` (``{method: {metric:
    stats}}`` as in :func:`table_summary`).

    Given the table's JSON, each claim is judged on the paired per-seed differences a - b
    (:func:`paired_difference`): its 95 % Student-t interval decides reproduced / not resolved /
    reversed (a "<=" claim against :data:`gfd.paper.NON_SUPERIORITY_MARGIN`), with the exact
    sign-flip p-value (against 0, or the margin) and its Holm adjustment over the table's claims,
    whether the paper's gap lies inside the interval, and, where the metric rests on generator
    instances (:func:`instance_cells`), the interval over instances as well as seeds
    (:func:`gfd.stats.two_level_interval`): does the claim hold beyond this build's instances?
    Without the JSON, "a > b" holds when a's mean is higher, "a <= b" when it is not, and a gap
    smaller than the larger seed standard deviation is flagged as within the spread.
    """
    out = []
    for src, metric, paper_metric in _expand(table, table_json):
        a, rel, b = src.a, src.relation, src.b
        if a not in summary or b not in summary or metric not in summary[a] or metric not in summary[b]:
            continue
        ma, mb = summary[a][metric], summary[b][metric]
        gap = 100 * (ma["mean"] - mb["mean"])
        spread = 100 * max(s for s in (ma.get("std"), mb.get("std"), 0.0) if s is not None and s == s)
        holds = gap > 0 if rel == ">" else gap <= 0
        paper_gap = paper_value(table, a, paper_metric) - paper_value(table, b, paper_metric)
        margin = NON_SUPERIORITY_MARGIN if rel == "<=" else 0.0
        text = f"{metric}: {a} {rel} {b}"
        if table_json is None:
            out.append(Claim(text, paper_gap, gap, spread, holds, None, rel, margin=margin, source=src))
            continue
        diff = paired_difference(table_json, a, b, metric, null=margin / 100)
        ci = (100 * diff["ci"][0], 100 * diff["ci"][1])
        ci_inst = None
        cells_a, cells_b = (instance_cells(table_json, m, metric, diff["seeds"]) for m in (a, b))
        if cells_a and cells_b and diff["n"] > 1:
            cells = {c: cells_a[0][c] - cells_b[0][c] for c in cells_a[0]}
            two = two_level_interval(diff["values"], cells, cells_a[1])
            ci_inst = tuple(100 * x for x in _clip((two["lo"], two["hi"]), -1.0, 1.0))
        out.append(Claim(text, paper_gap, 100 * diff["mean"], spread, holds, ci, rel, p=diff["p"], margin=margin,
                         ci_instances=ci_inst, n=diff["n"], source=src))
    if table_json is not None:
        for claim, adjusted in zip(out, holm([c.p for c in out])):
            claim.p_holm = adjusted
    return out


SPREAD_METRICS = {"worlds": ("closed", "open", "open_inst"), "open models": ("closed", OPEN_MODELS),
                  "test sets": ("Avg",)}
"""A :attr:`gfd.tables.TableSpec.columns` name -> the metrics whose seed spread a table reports."""


def spread_markdown(table_json: dict[str, Any], metrics: Sequence[str], deterministic: Sequence[str] = ()) -> str:
    """The seed standard deviation of each row (points) with its 95 % chi-square interval of sigma
    (:func:`gfd.stats.sigma_interval`), as a Markdown table: at five seeds sigma is known only to
    within 0.6 s to 2.9 s, so a spread is read with its interval, never against a fixed target."""
    metrics = [m for m in metrics if any(m in r["summary"] for r in table_json["rows"])]
    lines = ["| Seed std (points) [95 % interval of sigma] | " + " | ".join(metrics) + " |",
             "|---" * (len(metrics) + 1) + "|"]
    for row in table_json["rows"]:
        cells = []
        for m in metrics:
            stats = row["summary"].get(m)
            if stats is None:
                cells.append("–")
            elif row["method"] in deterministic:
                cells.append("0 (deterministic)")
            else:
                lo, hi = sigma_interval(stats["values"])
                cells.append(f"{100 * stats['std']:.2f} [{100 * lo:.2f}, {100 * hi:.2f}]" if lo == lo else "–")
        lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def claims_markdown(claims: Sequence[Claim]) -> list[str]:
    """The paper's claims judged on this table (Markdown paragraphs: a lead, the table of claims)."""
    if not claims:
        return []
    lead = ("The paper's claims (gfd.paper.CLAIMS, each with its line of the paper's text), judged on the "
            "paired per-seed differences a - b in points: the 95 % Student-t interval decides (a \"<=\" claim, "
            f"non-superiority, is reproduced when the interval's upper end lies below the margin of "
            f"{NON_SUPERIORITY_MARGIN:+.1f} points, stated in gfd/paper.py); p is the exact two-sided sign-flip "
            "p-value (all 2^n sign patterns; at five seeds it cannot go below 0.0625), Holm's adjustment is over "
            "this table's claims.  \"Instances + seeds\" adds the spread over the open world's generator "
            "instances (resampled within each family, as a draw of another build; n/a where the number rests on "
            "one model or on test sets).")
    lines = ["| Claim (paper: section, line) | paper | ours [95 % t-interval] | sign-flip p | Holm p "
             "| paper's gap | verdict | instances + seeds |", "|---" * 8 + "|"]
    for c in claims:
        where = f" (Sec. {c.source.section}, l. {c.source.line})" if c.source else ""
        paper = "n/a" if math.isnan(c.paper_gap) else f"{c.paper_gap:+.2f}"
        ours = f"{c.gap:+.2f} [{c.ci[0]:+.2f}, {c.ci[1]:+.2f}]" if c.ci else f"{c.gap:+.2f}"
        inst = (f"[{c.ci_instances[0]:+.2f}, {c.ci_instances[1]:+.2f}] {c.word_instances}"
                if c.ci_instances is not None else "n/a")
        lines.append(f"| {c.text}{where} | {paper} | {ours} (n = {c.n}) | {c.p:.3f} | {c.p_holm:.3f} "
                     f"| {c.paper_gap_inside} | {c.word} | {inst} |")
    return [lead, "\n".join(lines)]


def table_summary(table_json: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{method: {metric: stats}}`` from the JSON of :func:`write_table` (see :func:`load_table`)."""
    return {row["method"]: row["summary"] for row in table_json["rows"]}
