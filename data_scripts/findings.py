"""The README's "findings at a glance": the paper's claims and our verdicts, from the committed tables.

Reads ``meta.claims`` of ``results/table{1,2,3,4}.json`` (written by ``python -m gfd reproduce``,
judged by ``gfd.report.check_claims``) and prints one Markdown table: claim | paper | ours with its
95 % interval | verdict.  Table 2's per-model claims are left out (its ``open_models`` claims, the
mean over the open-world models, stand for them; results/README.md has them all).

    python data_scripts/findings.py                  # print the table
    python data_scripts/findings.py --write README.md  # replace the table between the README's markers

tests/test_readme.py checks that README.md holds exactly what this prints.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLES = (1, 4, 2, 3)                       # the order of the README: attribution, ablation, high-res, detection
START, END = "<!-- findings:start -->", "<!-- findings:end -->"


def _num(x: float | None) -> str:
    return "no printed row" if x is None else f"{x:+.2f}"


def _claim_text(table: int, claim: dict) -> str:
    metric, _, statement = claim["claim"].partition(": ")
    where = {"open": "open world", "open_models": "open-world models", "Avg": "average over test sets"}
    text = f"{statement} ({where.get(metric, metric)}"
    if claim.get("margin") is not None:
        text += f", margin {claim['margin']:+.1f}"
    section = str(claim["section"]).replace(f", Table {table}", "")
    return f"{text}; Table {table}, Sec. {section})"


def _verdict(table: int, claim: dict) -> str:
    verdict = f"**{claim['verdict']}**"
    wide = claim.get("verdict_instances")
    if wide and wide not in ("n/a", claim["verdict"]):
        over = "open models" if table == 2 else "generator instances"
        verdict += f" ({wide} over {over} + seeds)"
    return verdict


def findings(results: Path = ROOT / "results") -> str:
    """The Markdown table of every claim in ``results/table*.json`` (Table 2: ``open_models`` only)."""
    lines = ["| claim | paper | ours [95 % t-interval] | verdict |", "|---|---|---|---|"]
    for table in TABLES:
        path = results / f"table{table}.json"
        if not path.exists():
            continue
        for claim in json.loads(path.read_text(encoding="utf-8"))["meta"].get("claims", []):
            if table == 2 and not claim["claim"].startswith("open_models:"):
                continue
            lo, hi = claim["ci"]
            ours = f"{claim['gap']:+.2f} [{lo:+.2f}, {hi:+.2f}]"
            lines.append(f"| {_claim_text(table, claim)} | {_num(claim.get('paper_gap'))} | {ours} | "
                         f"{_verdict(table, claim)} |")
    return "\n".join(lines)


def readme_block(text: str) -> str:
    """What lies between the findings markers of a README's text (stripped)."""
    if START not in text or END not in text:
        raise ValueError(f"no {START} ... {END} block")
    return text.split(START, 1)[1].split(END, 1)[0].strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "results", help="folder of table<N>.json")
    parser.add_argument("--write", type=Path, metavar="README", help="replace the table between the markers")
    args = parser.parse_args(argv)
    table = findings(args.results)
    if args.write is None:
        print(table)
        return 0
    text = args.write.read_text(encoding="utf-8")
    old = readme_block(text)
    head, rest = text.split(START, 1)
    args.write.write_text(f"{head}{START}\n{table}\n{END}{rest.split(END, 1)[1]}", encoding="utf-8")
    print(f"{args.write}: findings table {'unchanged' if old == table else 'rewritten'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
