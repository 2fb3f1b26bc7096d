"""The front page and the documentation stay true to the committed results and to the repository.

- README.md's "findings at a glance" is exactly what ``python data_scripts/findings.py`` prints from
  ``results/table*.json`` (``meta.claims``): after ``python -m gfd reproduce --commit`` changes a table,
  ``python data_scripts/findings.py --write README.md`` rewrites it.
- results/README.md copies the committed tables (``results/table*.md``, and AttNet over ten seeds)
  row for row, their seed-spread and claim tables included; when a re-run changes a table and the copy
  is not updated, the test names the row that differs.
- Every relative link in README.md, docs/*.md and results/README.md points at an existing file.
"""
import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _findings_module():
    spec = importlib.util.spec_from_file_location("findings", ROOT / "data_scripts" / "findings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table_rows(path: Path, headers: tuple[str, ...] | None = None, labels: set[str] | None = None) -> list[str]:
    """The data rows of a markdown table file: lines that start with '| ' and are no header (a header is
    the line above a '|---' rule).  ``headers``: only the tables whose header line starts with one of
    these; ``labels``: only the rows whose first cell is one of these."""
    lines = path.read_text(encoding="utf-8").splitlines()
    rows, header = [], None
    for i, line in enumerate(lines):
        if i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            header = line
            continue
        if not line.startswith("| ") or header is None:
            if not line.startswith("|"):
                header = None
            continue
        if headers is not None and not header.startswith(headers):
            continue
        if labels is not None and line.split(" | ")[0][2:] not in labels:
            continue
        rows.append(line)
    return rows


# What results/README.md copies from each committed table, as (header prefixes, row labels) pairs (None:
# all): every row of Tables 1 and 4 (and AttNet over ten seeds); Table 2's own table, spreads and claims
# (not the paper's Table 2 printed under it); Table 3's average rows, spreads and claims (its 18
# test-set rows stay in results/table3.md).
COPIES = {
    "table1.md": [(None, None)],
    "table4.md": [(None, None)],
    "attnet-10-seeds/table1.md": [(None, None)],
    "table2.md": [(("| Method | closed", "| Seed std", "| Claim"), None)],
    "table3.md": [(("| Seed std", "| Claim"), None),
                  (("| Test set",), {"**Avg**", "val", "C val", "Avg (paper)"})],
}


@pytest.mark.parametrize("table", sorted(COPIES))
def test_results_readme_copies_the_committed_table(table):
    path = ROOT / "results" / table
    rows = [row for headers, labels in COPIES[table] for row in table_rows(path, headers, labels)]
    assert rows, f"{path} has no table rows"
    copy = (ROOT / "results" / "README.md").read_text(encoding="utf-8")
    stale = [row.split(" | ")[0] for row in rows if row not in copy]
    assert not stale, (f"results/README.md's copy of results/{table} differs from it in rows {stale}: "
                       f"copy its rows into results/README.md")


def test_readme_findings_are_the_generated_table():
    findings = _findings_module()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert findings.readme_block(readme) == findings.findings(), (
        "README.md's findings table differs from the committed results: run "
        "python data_scripts/findings.py --write README.md")


def test_findings_cover_every_claim_of_tables_1_3_and_4():
    findings = _findings_module()
    table = findings.findings()
    for n in (1, 3, 4):
        claims = json.loads((ROOT / "results" / f"table{n}.json").read_text(encoding="utf-8"))["meta"]["claims"]
        assert sum(f"; Table {n}, Sec." in line for line in table.splitlines()) == len(claims)


def test_readme_is_a_short_front_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 160, f"README.md has {len(lines)} lines: move detail to docs/"
    image = ROOT / "docs" / "img" / "fingerprint-explorer.png"
    assert image.stat().st_size < 200_000


DOCS = [ROOT / "README.md", ROOT / "results" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def relative_links(text: str) -> list[str]:
    """The relative link targets of a Markdown text (images included), without their #anchor; links
    inside code spans and fenced blocks are no links."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    targets = [a or b for a, b in LINK.findall(text)]
    return [t.split("#", 1)[0] for t in targets
            if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#") and t.split("#", 1)[0]]


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    missing = [t for t in relative_links(page.read_text(encoding="utf-8")) if not (page.parent / t).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to files that do not exist: {missing}"


def test_relative_links_finds_links_and_skips_urls_anchors_and_code():
    text = ("[a](docs/x.md) [b](https://e.org/y) [c](#top) ![i](img/p.png) [d](n.ipynb#Sec)\n"
            "`[e](not/a/link.md)`\n```\n[f](in/code.md)\n```\n")
    assert relative_links(text) == ["docs/x.md", "img/p.png", "n.ipynb"]


def test_table_rows_skips_header_and_rule(tmp_path):
    md = tmp_path / "t.md"
    md.write_text("**T**\n\n| Method | a |\n|---|---|\n| X | 1 |\n| Y | 2 |\n\ntext\n\n| Claim | v |\n|---|---|\n"
                  "| c | reproduced |\n", encoding="utf-8")
    assert table_rows(md) == ["| X | 1 |", "| Y | 2 |", "| c | reproduced |"]
    assert table_rows(md, headers=("| Claim",)) == ["| c | reproduced |"]
    assert table_rows(md, labels={"Y"}) == ["| Y | 2 |"]


def test_layout_names_only_files_that_exist():
    """docs/layout.md names modules and scripts by file name: each must exist in the repository."""
    text = (ROOT / "docs" / "layout.md").read_text(encoding="utf-8")
    names = set(re.findall(r"\b\w+\.(?:py|sh|cfg)\b", text))
    files = {p.name for folder in ("gfd", "data_scripts", "tests") for p in (ROOT / folder).rglob("*")}
    files |= {p.name for p in ROOT.iterdir()}
    assert names and not sorted(names - files), f"docs/layout.md names missing files: {sorted(names - files)}"


def test_readme_keeps_the_two_commands():
    """.ci/run runs the README's test command; the README keeps both commands as they are."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert 'pip install -e ".[dev]" && jupyter lab notebooks/     # opens the course' in readme
    assert 'pip install -e ".[dev]" && pytest                     # unit tests + every notebook (nbval)' in readme
    assert "pip install -e \".[dev]\" && pytest" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
