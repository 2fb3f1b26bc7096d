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


# The stand-in's build backend: the standard library only, so that ``pip install -e`` of the stand-in
# works whatever the interpreter holds (a fresh Python may have an old setuptools and no ``wheel``,
# which a setuptools editable build needs; the test installs offline, without build isolation).
STANDIN_BACKEND = '''"""A PEP 517/660 build backend for the test's stand-in package, standard library only."""
import base64, hashlib, os, zipfile

NAME, VERSION = "gfd-colab-fake", "0.0.1"
DIST = NAME.replace("-", "_") + "-" + VERSION
INFO = DIST + ".dist-info"
META = {"METADATA": f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n",
        "WHEEL": "Wheel-Version: 1.0\\nGenerator: test-standin\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"}
HERE = os.path.dirname(os.path.abspath(__file__))


def _metadata(directory):
    os.makedirs(os.path.join(directory, INFO), exist_ok=True)
    for name, text in META.items():
        with open(os.path.join(directory, INFO, name), "w") as f:
            f.write(text)
    return INFO


def _wheel(directory, files):
    files = {**files, **{f"{INFO}/{name}": text.encode() for name, text in META.items()}}
    record = [f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
              f"{len(data)}" for path, data in files.items()] + [f"{INFO}/RECORD,,"]
    name = DIST + "-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, name), "w") as whl:
        for path, data in files.items():
            whl.writestr(path, data)
        whl.writestr(f"{INFO}/RECORD", "\\n".join(record) + "\\n")
    return name


def get_requires_for_build_wheel(config_settings=None):
    return []


get_requires_for_build_editable = get_requires_for_build_wheel


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    return _metadata(metadata_directory)


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, {"gfd_colab_fake.pth": (HERE + "\\n").encode()})


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = {}
    for root, _, names in os.walk(os.path.join(HERE, "gfd")):
        for n in names:
            full = os.path.join(root, n)
            with open(full, "rb") as f:
                files[os.path.relpath(full, HERE).replace(os.sep, "/")] = f.read()
    return _wheel(wheel_directory, files)


def build_sdist(sdist_directory, config_settings=None):
    raise NotImplementedError("the test's stand-in has no sdist")
'''


@pytest.fixture
def bare_repo(tmp_path):
    """A local bare git repository holding a tiny installable stand-in of the course (its build
    backend is in the repository and uses the standard library only)."""
    work = tmp_path / "work"
    (work / "gfd").mkdir(parents=True)
    (work / "notebooks").mkdir()
    (work / "gfd" / "__init__.py").write_text("COURSE = 'fake'\n")
    (work / "notebooks" / "00_start_here.ipynb").write_text("{}\n")
    (work / "standin_backend.py").write_text(STANDIN_BACKEND)
    (work / "pyproject.toml").write_text(textwrap.dedent("""\
        [build-system]
        requires = []
        build-backend = "standin_backend"
        backend-path = ["."]
        [project]
        name = "gfd-colab-fake"
        version = "0.0.1"
        """))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", str(work)], check=True)
    subprocess.run([*git, "-C", str(work), "add", "."], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-qm", "fake course"], check=True)
    bare = tmp_path / "course.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    return bare


def venv_with_this_pip(path: Path) -> str:
    """A fresh venv at ``path`` whose ``python -m pip`` is this interpreter's pip (a ``.pth`` file names
    the folder pip is in); returns its python.  pip then installs into the venv, not into this
    environment, and nothing is taken from the venv's base interpreter, which may be bare; the
    stand-in's build needs nothing beyond the standard library and pip."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = str(path / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    pip_home = Path(importlib.util.find_spec("pip").origin).parents[1]
    (Path(site) / "_this_pip.pth").write_text(f"{pip_home}\n")
    return python


def test_outside_colab_the_cell_does_nothing(tmp_path):
    res = run_cell(tmp_path, "file:///nonexistent/repo.git", colab=False)
    assert res.returncode == 0, res.stderr
    assert not (tmp_path / "content").exists() and f"cwd {tmp_path}" in res.stdout


def test_in_colab_it_clones_installs_once_and_enters_the_notebooks(tmp_path, bare_repo):
    python = venv_with_this_pip(tmp_path / "venv")             # pip installs there, not into this environment
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
