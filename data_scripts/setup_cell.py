#!/usr/bin/env python
"""The one set-up cell every notebook opens with, and the Colab badge of every notebook.

The repository is named here, and only here.  A publisher who forks the course sets ``REPO_SLUG``
and runs ``python data_scripts/setup_cell.py``: every notebook then gets the same set-up cell (as
its first code cell) and a Colab badge pointing at its own file.  ``tests/test_colab.py`` checks
that the notebooks hold exactly this cell and runs it with a fake ``google.colab`` module against a
local bare git repository.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO_SLUG = "gfd-course/gfd-course"          # <owner>/<name> on GitHub: set this when you publish
BRANCH = "main"
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

CELL = '''# Set-up: in Colab, install the course package once per runtime; elsewhere this cell does nothing.
import os, subprocess, sys

REPO = "https://github.com/{slug}.git"
IN_COLAB = "google.colab" in sys.modules
if IN_COLAB:
    TARGET = os.environ.get("GFD_COLAB_DIR", "/content/gfd-course")
    if not os.path.isfile(os.path.join(TARGET, ".gfd-installed")):
        if not os.path.isdir(os.path.join(TARGET, "gfd")):
            run = subprocess.run(["git", "clone", "-q", "--depth", "1", REPO, TARGET], capture_output=True, text=True)
            if run.returncode:
                raise SystemExit(f"Could not clone the course from {{REPO}}: {{run.stderr.strip()[-300:]}}")
        run = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", TARGET], capture_output=True, text=True)
        if run.returncode:
            raise SystemExit(f"Could not install the course package from {{TARGET}}: {{run.stderr.strip()[-300:]}}")
        open(os.path.join(TARGET, ".gfd-installed"), "w").close()
    sys.path.insert(0, TARGET)
    os.chdir(os.path.join(TARGET, "notebooks"))
'''


def cell_source(slug: str = REPO_SLUG) -> str:
    return CELL.format(slug=slug).rstrip("\n")


def badge(notebook: str, slug: str = REPO_SLUG) -> str:
    url = f"https://colab.research.google.com/github/{slug}/blob/{BRANCH}/notebooks/{notebook}"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def _lines(text: str) -> list[str]:
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + [parts[-1]]


def sync(path: Path, slug: str = REPO_SLUG) -> bool:
    """Put the set-up cell (first code cell) and the badge (under the title) into one notebook."""
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    before = json.dumps(cells)
    title = cells[0]
    text = "".join(title["source"])
    lines = [line for line in text.split("\n") if "colab-badge.svg" not in line]
    while len(lines) > 1 and lines[1] == "" and (len(lines) < 3 or lines[2] == ""):
        lines.pop(1)
    lines[1:1] = ["", badge(path.name, slug)]
    title["source"] = _lines("\n".join(lines))
    code = [i for i, c in enumerate(cells) if c["cell_type"] == "code"]
    first = code[0] if code else None
    if first is not None and "".join(cells[first]["source"]).startswith("# Set-up:"):
        cells[first]["source"] = _lines(cell_source(slug))
    else:
        new = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
               "source": _lines(cell_source(slug))}
        if "id" in title:
            new["id"] = "gfd-setup"
        cells.insert(1, new)
    if json.dumps(cells) == before:
        return False
    path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")   # as nbformat writes
    return True


if __name__ == "__main__":
    slug = sys.argv[1] if len(sys.argv) > 1 else REPO_SLUG
    for nb_path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        print(f"{nb_path.name}: {'updated' if sync(nb_path, slug) else 'unchanged'}")
