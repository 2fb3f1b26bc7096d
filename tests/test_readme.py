"""The README's copies of Tables 1 and 4 (and of AttNet over ten seeds) are the committed tables, row
for row, their seed-spread and claim tables included.

`python -m gfd reproduce --table 1|4 --commit` rewrites ``results/table{1,4}.md`` (and with ``--out
results/attnet-10-seeds``, that folder's table); the README's "Results and status" section copies
their rows.  When a re-run changes a table and the README is not
updated, this test names the row that differs.
"""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def table_rows(path: Path) -> list[str]:
    """The data rows of a markdown table file: lines that start with '| ' and are no header (a header is
    the line above a '|---' rule).  The tables' seed-spread and claim tables count too."""
    lines = path.read_text(encoding="utf-8").splitlines()
    headers = {i - 1 for i, line in enumerate(lines) if line.startswith("|---")}
    return [line for i, line in enumerate(lines)
            if line.startswith("| ") and i not in headers and not line.startswith("|---")]


@pytest.mark.parametrize("table", ["table1.md", "table4.md", "attnet-10-seeds/table1.md"])
def test_readme_copies_the_committed_table(table):
    path = ROOT / "results" / table
    rows = table_rows(path)
    assert rows, f"{path} has no table rows"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    stale = [row.split(" | ")[0] for row in rows if row not in readme]
    assert not stale, (f"README.md's copy of results/{table} differs from it in rows {stale}: "
                       f"copy its rows into the section 'Results and status'")


def test_table_rows_skips_header_and_rule(tmp_path):
    md = tmp_path / "t.md"
    md.write_text("**T**\n\n| Method | a |\n|---|---|\n| X | 1 |\n| Y | 2 |\n\ntext\n\n| Claim | v |\n|---|---|\n"
                  "| c | reproduced |\n", encoding="utf-8")
    assert table_rows(md) == ["| X | 1 |", "| Y | 2 |", "| c | reproduced |"]
