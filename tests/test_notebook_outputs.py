"""The stored notebooks as a student opens them: clean outputs, small files, figures a screen can
show, and links that lead somewhere.

Reads the .ipynb files only (no kernel): every stored output of every notebook is scanned for
warnings, tracebacks and machine paths; the files must stay small; every PNG must fit a page;
every markdown link to a local file (a notebook, the glossary) must resolve, and every link into
the glossary must name one of its anchors.
"""
import base64
import json
import re
import struct
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
GLOSSARY = REPO / "docs" / "glossary.md"

MAX_BYTES = 1_500_000          # per notebook file
MAX_WIDTH_PX = 1120            # about 1100 px (gfd.plots.MAX_WIDTH_PX): a tight bounding box may add a few px
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|tmp|root|home)/")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HTML_LINK = re.compile(r"""<(?:a|img)\b[^>]*?\b(?:href|src)=["']([^"']+)["']""")


def _texts(output) -> list[str]:
    """Every piece of text an output shows (streams, text/* data, error name and value)."""
    if output.get("output_type") == "stream":
        return [output.get("text", "")]
    if output.get("output_type") == "error":
        return [output.get("ename", ""), output.get("evalue", ""), *output.get("traceback", [])]
    data = output.get("data", {})
    return [v if isinstance(v, str) else "".join(v) for k, v in data.items() if k.startswith("text/")]


def _png_size(b64: str) -> tuple[int, int]:
    raw = base64.b64decode(b64)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", raw[16:24])


def _local_targets(text: str) -> list[str]:
    targets = LINK.findall(text) + HTML_LINK.findall(text)
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I)]   # no http:, mailto:, data:


def _glossary_anchors() -> set[str]:
    return set(re.findall(r'<a id="([^"]+)"></a>', GLOSSARY.read_text(encoding="utf-8")))


def _check_links(text: str, folder: Path, where: str) -> list[str]:
    problems = []
    for target in _local_targets(text):
        path, _, anchor = target.partition("#")
        if not path:
            continue                                        # a heading in the same document
        resolved = (folder / path).resolve()
        if not resolved.exists():
            problems.append(f"{where}: link to {target!r} does not resolve ({resolved})")
        elif resolved == GLOSSARY.resolve() and anchor and anchor not in _glossary_anchors():
            problems.append(f"{where}: glossary has no anchor {anchor!r}")
    return problems


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 13


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_outputs_are_clean(path):
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    problems = []
    for i, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            where = f"{path.name} cell {i}"
            if output.get("output_type") == "error":
                problems.append(f"{where}: stored error {output.get('ename')}")
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                problems.append(f"{where}: stderr stream {output.get('text', '')[:120]!r}")
            for text in _texts(output):
                if "Traceback" in text:
                    problems.append(f"{where}: traceback in output")
                if "Warning" in text:
                    problems.append(f"{where}: warning in output: {text[text.index('Warning') - 60:][:160]!r}")
                for m in MACHINE_PATH.finditer(text):
                    problems.append(f"{where}: machine path {text[m.start():m.start() + 60]!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_small_and_its_figures_fit_a_page(path):
    size = path.stat().st_size
    assert size <= MAX_BYTES, f"{path.name} is {size / 1e6:.2f} MB (at most {MAX_BYTES / 1e6:.1f} MB)"
    nb = json.loads(path.read_text(encoding="utf-8"))
    wide = []
    for i, cell in enumerate(nb["cells"]):
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                width, height = _png_size(png if isinstance(png, str) else "".join(png))
                if width > MAX_WIDTH_PX:
                    wide.append(f"cell {i}: {width} x {height} px")
    assert not wide, f"{path.name}: figures wider than {MAX_WIDTH_PX} px: {wide}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_markdown_links_resolve(path):
    nb = nbformat.read(str(path), as_version=4)
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            problems += _check_links(cell.source, path.parent, f"{path.name} cell {i}")
    assert not problems, "\n".join(problems)


def test_glossary_links_resolve():
    assert GLOSSARY.is_file()
    text = GLOSSARY.read_text(encoding="utf-8")
    problems = _check_links(text, GLOSSARY.parent, GLOSSARY.name)
    headings = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")      # GitHub's heading anchors
                for h in re.findall(r"(?m)^#+ (.+)$", text)}
    anchors = _glossary_anchors() | headings
    problems += [f"glossary: no anchor {a!r}" for a in re.findall(r"\]\(#([^)]+)\)", text) if a not in anchors]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_navigation_at_top_and_bottom(path):
    """Every notebook links its neighbours and the course map at its top and at its bottom."""
    nb = nbformat.read(str(path), as_version=4)
    names = [p.name for p in NOTEBOOKS]
    i = names.index(path.name)
    want = ([names[i - 1]] if i else []) + ([names[i + 1]] if i + 1 < len(names) else [])
    top, bottom = nb.cells[0], nb.cells[-1]
    for cell, where in ((top, "first"), (bottom, "last")):
        assert cell.cell_type == "markdown", f"{path.name}: the {where} cell is not markdown"
        targets = [t.partition("#")[0] for t in _local_targets(cell.source)]
        assert "course map" in cell.source, f"{path.name}: no course map link in the {where} cell"
        for name in want:
            assert name in targets, f"{path.name}: the {where} cell does not link {name}"
