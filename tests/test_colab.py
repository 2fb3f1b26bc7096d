"""The set-up cell every notebook opens with: the same everywhere, inert outside Colab, and in a
(fake) Colab it clones the repository named in data_scripts/setup_cell.py and installs it once."""
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("setup_cell", REPO_ROOT / "data_scripts" / "setup_cell.py")
setup_cell = importlib.util.module_from_spec(spec)
spec.loader.exec_module(setup_cell)
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_opens_with_the_one_set_up_cell_and_its_own_badge(path):
    cells = json.loads(path.read_text())["cells"]
    first_code = next(c for c in cells if c["cell_type"] == "code")
    assert "".join(first_code["source"]) == setup_cell.cell_source()
    assert setup_cell.badge(path.name) in "".join(cells[0]["source"])
    assert setup_cell.REPO_SLUG in setup_cell.cell_source()


def run_cell(tmp_path, repo_url: str, colab: bool, python: str = sys.executable) -> subprocess.CompletedProcess:
    """Run the cell in a fresh interpreter, with a fake google.colab module when ``colab``."""
    cell = setup_cell.cell_source().replace(f"https://github.com/{setup_cell.REPO_SLUG}.git", repo_url)
    fake = "import sys, types; sys.modules['google.colab'] = types.ModuleType('google.colab')\n" if colab else ""
    script = tmp_path / "cell.py"
    script.write_text(fake + cell + "\nprint('cwd', os.getcwd())\n")
    env = dict(os.environ, GFD_COLAB_DIR=str(tmp_path / "content" / "gfd-course"), PIP_NO_BUILD_ISOLATION="0",
               PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return subprocess.run([python, str(script)], capture_output=True, text=True, env=env, timeout=240, cwd=tmp_path)


@pytest.fixture
def bare_repo(tmp_path):
    """A local bare git repository holding a tiny installable stand-in of the course."""
    work = tmp_path / "work"
    (work / "gfd").mkdir(parents=True)
    (work / "notebooks").mkdir()
    (work / "gfd" / "__init__.py").write_text("COURSE = 'fake'\n")
    (work / "notebooks" / "00_start_here.ipynb").write_text("{}\n")
    (work / "pyproject.toml").write_text(textwrap.dedent("""\
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "gfd-colab-fake"
        version = "0.0.1"
        [tool.setuptools.packages.find]
        include = ["gfd*"]
        """))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", str(work)], check=True)
    subprocess.run([*git, "-C", str(work), "add", "."], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-qm", "fake course"], check=True)
    bare = tmp_path / "course.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    return bare


def test_outside_colab_the_cell_does_nothing(tmp_path):
    res = run_cell(tmp_path, "file:///nonexistent/repo.git", colab=False)
    assert res.returncode == 0, res.stderr
    assert not (tmp_path / "content").exists() and f"cwd {tmp_path}" in res.stdout


def test_in_colab_it_clones_installs_once_and_enters_the_notebooks(tmp_path, bare_repo):
    venv = tmp_path / "venv"                                   # pip installs there, not into this environment
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    res = run_cell(tmp_path, str(bare_repo), colab=True, python=python)
    target = tmp_path / "content" / "gfd-course"
    assert res.returncode == 0, res.stderr
    assert (target / "gfd" / "__init__.py").is_file() and (target / ".gfd-installed").is_file()
    assert f"cwd {target / 'notebooks'}" in res.stdout
    listed = subprocess.run([python, "-m", "pip", "list"], capture_output=True, text=True).stdout
    assert "gfd-colab-fake" in listed
    (target / "gfd" / "__init__.py").write_text("COURSE = 'edited'\n")   # a second run must not clone again
    again = run_cell(tmp_path, str(bare_repo), colab=True, python=python)
    assert again.returncode == 0 and (target / "gfd" / "__init__.py").read_text() == "COURSE = 'edited'\n"


def test_a_failed_clone_stops_with_one_clear_sentence(tmp_path):
    res = run_cell(tmp_path, str(tmp_path / "no-such-repo.git"), colab=True)
    assert res.returncode != 0
    last = res.stderr.strip().splitlines()[-1]
    assert "Could not clone the course from" in res.stderr and "pip" not in last
