"""Statistics of the tables: t-intervals, paired differences, deterministic rows, claims and their verdicts."""
import math

import numpy as np
import pytest

from gfd import report


def test_bootstrap_ci_brackets_the_mean_and_shrinks_with_more_seeds():
    rng = np.random.default_rng(0)
    few, many = rng.normal(0.6, 0.05, 5), rng.normal(0.6, 0.05, 50)
    lo5, hi5 = report.bootstrap_ci(few)
    lo50, hi50 = report.bootstrap_ci(many)
    assert lo5 < few.mean() < hi5 and lo50 < many.mean() < hi50
    assert hi50 - lo50 < hi5 - lo5
    assert report.bootstrap_ci([0.7, 0.7, 0.7]) == (pytest.approx(0.7), pytest.approx(0.7))
    assert all(math.isnan(v) for v in report.bootstrap_ci([0.5]))
    assert report.bootstrap_ci(few, seed=3) == report.bootstrap_ci(few, seed=3)      # reproducible


def test_a_bootstrap_bound_at_a_resample_that_cancels_is_exactly_zero_and_not_resolved():
    """Table 3's GFD-Net (ResNet) - DenseNet per seed (in 1/7200): one resample (161 - 3 * 34 - 59)
    sums to 0, and the 2.5 % bound lands on it.  Unrounded it read 6.7e-17 and "CI excludes 0"."""
    d = [v / 7200 for v in (279, -34, 246, 161, -59)]
    lo, hi = report.bootstrap_ci(d)
    assert lo == 0.0 and hi > 0
    claim = report.Claim("Avg: a > b", 4.85, 100 * sum(d) / 5, 2.0, True, (100 * lo, 100 * hi))
    assert claim.verdict.startswith("not resolved")


def test_format_cell_shows_the_interval_and_marks_deterministic_rows():
    stats = {"mean": 0.6, "std": 0.05, "n": 5, "ci": (0.55, 0.65)}
    assert report.format_cell(stats) == "60.00 ± 5.00 [55.0, 65.0] (5 seeds)"
    assert report.format_cell({"mean": 0.207, "std": 0.0, "n": 3}, deterministic=True) == "20.70 (deterministic)"


def _table(rows):
    """A table JSON as write_table stores it: per-seed flat metrics per row."""
    return {"rows": [{"method": m, "seeds": list(per), "per_seed": [{"open": v} for v in per.values()],
                      "summary": {"open": {"mean": float(np.mean(list(per.values()))),
                                           "std": float(np.std(list(per.values()), ddof=1)), "n": len(per)}}}
                     for m, per in rows.items()]}


def test_paired_differences_see_a_gap_that_the_seed_spread_hides():
    # every seed moves both rows together (data order, C, init shared), G+D+C is 3 points better per seed
    base = {s: 0.5 + 0.1 * ((s * 7) % 5) / 4 for s in range(5)}       # seed spread ~4 points
    table = _table({"G": base, "G+D+C": {s: v + 0.03 for s, v in base.items()}})
    d = report.paired_difference(table, "G+D+C", "G")
    assert d["seeds"] == [0, 1, 2, 3, 4] and d["mean"] == pytest.approx(0.03) and d["ci"][0] > 0
    summary = report.table_summary(table)
    unpaired = {c.text: c for c in report.check_claims(4, summary)}
    paired = {c.text: c for c in report.check_claims(4, summary, table)}
    key = "open: G+D+C > G"
    assert unpaired[key].verdict == "same direction, within the seed spread"
    assert paired[key].verdict == "reproduced (95 % interval of the paired difference above 0)"
    assert "[+3.00, +3.00]" in str(paired[key]) and paired[key].p == pytest.approx(2 / 32)


def test_paired_claims_say_reversed_and_unresolved_when_they_are():
    rng = np.random.default_rng(1)
    g = {s: 0.6 + rng.normal(0, 0.05) for s in range(6)}
    table = _table({"G": g,
                    "G+D": {s: v + 0.05 for s, v in g.items()},                       # D alone helps: "<=" reversed
                    "G+C": {s: v + rng.normal(0, 0.03) for s, v in g.items()}})       # noise: not resolved
    claims = {c.text: c for c in report.check_claims(4, report.table_summary(table), table)}
    assert claims["open: G+D <= G"].word == "reversed"          # 5 points better: above the 1.5-point margin
    assert claims["open: G+C <= G"].verdict.startswith("not resolved")
    with pytest.raises(KeyError, match="no row 'G\\+Q'"):
        report.paired_difference(table, "G+Q", "G")


def test_table2_claims_use_the_mean_over_the_open_world_models_and_the_papers_fourteen_columns():
    from gfd.paper import PAPER, TABLE2_COLUMNS
    per = {"GFD-Net": {s: 0.6 + 0.01 * s for s in range(5)}, "AttNet": {s: 0.5 + 0.01 * s for s in range(5)},
           "DCT": {s: 0.7 + 0.01 * s for s in range(5)}}
    table = {"rows": [{"method": m, "seeds": list(p), "per_seed": [{report.OPEN_MODELS: v} for v in p.values()],
                       "summary": {report.OPEN_MODELS: {"mean": float(np.mean(list(p.values()))), "std": 0.0158,
                                                        "n": 5}}} for m, p in per.items()]}
    claims = {c.text: c for c in report.check_claims(2, report.table_summary(table), table)}
    assert set(claims) == {"open_models: GFD-Net > AttNet", "open_models: GFD-Net > DCT"}    # no PRNU row here
    open_cols = TABLE2_COLUMNS[1:]
    assert len(open_cols) == 14
    paper_gap = sum(PAPER[2]["GFD-Net"][c] - PAPER[2]["AttNet"][c] for c in open_cols) / 14
    assert claims["open_models: GFD-Net > AttNet"].paper_gap == pytest.approx(paper_gap)       # 94.68 - 82.10
    assert claims["open_models: GFD-Net > AttNet"].word == "reproduced"
    assert claims["open_models: GFD-Net > DCT"].word == "reversed"
    assert claims["open_models: GFD-Net > DCT"].gap == pytest.approx(-10.0)


def test_table3_claims_pair_each_gfd_net_with_every_detector_on_the_average():
    rows = {"GFD-Net (DenseNet)": 0.80, "GFD-Net (ResNet)": 0.78, "DenseNet": 0.75, "CNNDetect": 0.74,
            "ResNet": 0.79, "PatchForensics": 0.70}
    table = {"rows": [{"method": m, "seeds": [0, 1, 2], "per_seed": [{"Avg": v + 0.01 * s} for s in range(3)],
                       "summary": {"Avg": {"mean": v + 0.01, "std": 0.01, "n": 3}}} for m, v in rows.items()]}
    claims = {c.text: c for c in report.check_claims(3, report.table_summary(table), table)}
    assert len(claims) == 8
    pair = claims["Avg: GFD-Net (ResNet) > CNNDetect"]              # the paper's ResNet-50 pair: 79.92 - 73.71
    assert pair.paper_gap == pytest.approx(6.21) and pair.gap == pytest.approx(4.0)
    assert claims["Avg: GFD-Net (DenseNet) > DenseNet"].paper_gap == pytest.approx(80.81 - 75.07)
    ours = claims["Avg: GFD-Net (ResNet) > ResNet"]                   # no printed ResNet row: no paper gap
    assert math.isnan(ours.paper_gap) and "paper    n/a" in str(ours)
    assert ours.word == "reversed" and ours.paper_gap_inside == "n/a"
    assert [c.p_holm for c in claims.values()] == pytest.approx([1.0] * 8)        # 3 seeds: p = 0.25 each


def test_seed_profiles_find_the_class_a_collapsed_seed_sends_the_open_world_to():
    """Seed 1 predicts class 'b' for 8 of 10 open-world images; seed 0 predicts each class 5 times."""
    summary = {f"open/{c}": {} for c in ("a", "b")}
    table = {"rows": [{"method": "M", "seeds": [0, 1], "summary": summary,
                       "per_seed": [{"open": 0.8}, {"open": 0.5}],
                       "per_seed_confusion": [{"test_open": [[4, 1], [1, 4]]},
                                              {"test_open": [[2, 3], [0, 5]]}]}]}
    first, second = report.seed_profiles(table, "M")
    assert (first["seed"], first["acc"], second["acc"]) == (0, 0.8, 0.5)
    assert first["top_share"] == pytest.approx(0.5)
    assert second["top_class"] == "b" and second["top_share"] == pytest.approx(0.8)
    with pytest.raises(KeyError, match="no row 'X'"):
        report.seed_profiles(table, "X")
    with pytest.raises(KeyError, match="no confusion matrix for world 'closed'"):
        report.seed_profiles(table, "M", "closed")


def test_a_no_better_than_claim_is_judged_against_the_margin_stated_in_paper_py():
    from gfd.paper import NON_SUPERIORITY_MARGIN
    assert NON_SUPERIORITY_MARGIN == 1.5
    g = {s: 0.6 + 0.02 * s for s in range(5)}
    for shift, word in ((-0.01, "reproduced"), (0.0, "reproduced"), (0.01, "reproduced"),   # upper end < +1.5
                        (0.03, "reversed")):                                               # lower end > +1.5
        table = _table({"G": g, "G+D": {s: v + shift + 0.001 * (s % 2) for s, v in g.items()}})
        claim = {c.text: c for c in report.check_claims(4, report.table_summary(table), table)}["open: G+D <= G"]
        assert claim.word == word, (shift, claim)
    noisy = _table({"G": g, "G+D": {s: v + (0.04 if s % 2 else -0.03) for s, v in g.items()}})
    claim = {c.text: c for c in report.check_claims(4, report.table_summary(noisy), noisy)}["open: G+D <= G"]
    assert claim.word == "not resolved" and "margin" in claim.verdict


def test_the_papers_gap_is_said_to_lie_inside_or_outside_our_interval():
    claim = report.Claim("open: a > b", 2.0, 3.0, 1.0, True, (1.0, 4.0))
    assert claim.paper_gap_inside == "inside" and claim.word == "reproduced"
    assert report.Claim("open: a > b", 6.0, 3.0, 1.0, True, (1.0, 4.0)).paper_gap_inside == "outside"


def test_open_world_claims_carry_an_interval_over_instances_and_seeds():
    """Two rows whose per-instance accuracies differ by the same amount on every instance: the
    instance level adds nothing and the interval is the seed-only one."""
    rng = np.random.default_rng(0)
    keys = [f"{w}/{f}/g{i}" for w in ("B1", "B2") for f in ("progan", "sngan") for i in range(3)] + ["B1/real/real",
                                                                                                     "B2/real/real"]
    base = {s: {k: float(rng.uniform(0.2, 0.8)) for k in keys} for s in range(5)}
    shift = {s: 0.02 + 0.01 * s for s in range(5)}
    rows = {"G": base, "G+D+C": {s: {k: v + shift[s] for k, v in per.items()} for s, per in base.items()}}
    table = {"metrics": ["open"], "rows": [
        {"method": m, "seeds": list(range(5)), "per_seed_sources": [per[s] for s in range(5)],
         "per_seed": [{"open": float(np.mean(list(per[s].values())))} for s in range(5)],
         "summary": {"open": {"mean": 0.5, "std": 0.01, "n": 5}}} for m, per in rows.items()]}
    claim = {c.text: c for c in report.check_claims(4, report.table_summary(table), table)}["open: G+D+C > G"]
    assert claim.ci_instances == (pytest.approx(claim.ci[0]), pytest.approx(claim.ci[1]))
    assert claim.word_instances == claim.word == "reproduced"


def test_every_claim_quotes_its_line_of_the_paper():
    from pathlib import Path
    from gfd.paper import CLAIMS
    path = Path(__file__).resolve().parents[2] / "shared" / "seeds" / "gfd-net-paper.txt"    # beside the checkout
    if not path.is_file():
        pytest.skip("the paper's text is not here")
    lines = path.read_text(encoding="utf-8").splitlines()
    for claims in CLAIMS.values():
        for c in claims:
            assert c.quote in lines[c.line - 1], c
    assert {(c.a, c.b) for c in CLAIMS[1] if c.a == "GFD-Net"} == {("GFD-Net", b) for b in ("PRNU", "DCT", "AttNet")}
