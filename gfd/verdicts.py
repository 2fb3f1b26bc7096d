"""Reading a reproduced table and judging the paper's claims on it (Sec. 4.2-4.4).

:func:`load_table` reads a committed ``table<N>.json``; :func:`table_summary`, :func:`table_row`,
:func:`per_class_means` and :func:`seed_profiles` read numbers from it; :func:`paired_difference`
gives a row minus another seed by seed.  :func:`check_claims` judges every claim of
:data:`gfd.paper.CLAIMS` on those paired differences: the Student-t interval decides reproduced / not
resolved / reversed (a "<=" claim against the non-superiority margin), with the exact sign-flip
p-value, Holm's adjustment over the table's claims, whether the paper's gap lies inside the
interval, and in the open world an interval over generator instances as well as seeds
(:mod:`gfd.stats`).  :func:`spread_markdown` and :func:`claims_markdown` print them under a table
(:func:`gfd.report.write_table`).  Nothing here trains, measures or selects anything.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from gfd.layout import OPEN, WORLDS
from gfd.paper import CLAIMS, EACH_OPEN_MODEL, NON_SUPERIORITY_MARGIN, OPEN_MODELS, PaperClaim, paper_value
from gfd.stats import clip_interval, holm, sigma_interval, sign_flip_p, t_interval, two_level_interval
from gfd.utils import results_dir


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
                std=float(d.std(ddof=1)) if d.size > 1 else float("nan"), ci=clip_interval(t_interval(d), -1.0, 1.0),
                p=sign_flip_p(d, null))


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
            ci_inst = tuple(100 * x for x in clip_interval((two["lo"], two["hi"]), -1.0, 1.0))
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
