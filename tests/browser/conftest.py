"""The notebooks in a real browser: JupyterLab, started on a free local port, driven by headless
Chromium through Playwright.

* The browser is the system Chromium (Debian package ``chromium``; ``$GFD_CHROMIUM`` names another
  binary): Playwright's own browser download is not needed.
* JupyterLab serves a temporary copy of ``notebooks/`` (``$GFD_BROWSER_NOTEBOOKS`` names another
  folder), with autosave off and fresh Jupyter data/runtime folders, so nothing in the repository is
  ever written, and the notebooks open as a reader's would (untrusted).  The kernels run the
  course with ``GFD_PRESET=quick`` (set by the root conftest) and share ``data/runs``.
* ``$GFD_BROWSER_KERNEL_PYTHON``: run the kernels with that Python (e.g. a virtualenv with
  ipykernel 6) instead of this one.
* Without Chromium or Playwright these tests skip, unless ``CI`` is set: then they fail.
* They run after every other test of the session (notebooks included), so that the runs the nbval
  pass trained are reused.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CI = os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}

LAB_SETTINGS = {
    # never write a notebook back, render every cell (no virtual scrolling), no network look-ups
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"checkForUpdates": False, "fetchNews": "false"},
}


def pytest_collection_modifyitems(session, config, items):
    """Browser tests last: they reuse the runs that the notebooks' nbval pass trained."""
    items.sort(key=lambda item: Path(item.path).resolve().is_relative_to(HERE))


def unavailable(reason: str):
    if CI:
        pytest.fail(f"{reason}; CI is set, so the browser test fails instead of skipping", pytrace=False)
    pytest.skip(reason)


def find_chromium() -> str | None:
    if os.environ.get("GFD_CHROMIUM"):  # an explicit choice: that binary or none
        return shutil.which(os.environ["GFD_CHROMIUM"])
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    def __init__(self, root: Path):
        self.root = root
        self.notebooks = root / "notebooks"
        self.log = root / "jupyterlab.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, source: Path, kernel_python: str | None) -> None:
        self.notebooks.mkdir(parents=True)
        for nb in sorted(source.glob("*.ipynb")):
            shutil.copy2(nb, self.notebooks / nb.name)
        settings = self.root / "settings"
        for plugin, values in LAB_SETTINGS.items():
            path = settings / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env = dict(os.environ, GFD_PRESET=os.environ.get("GFD_PRESET", "quick"), TQDM_DISABLE="1",
                   JUPYTER_DATA_DIR=str(self.root / "jupyter-data"),
                   JUPYTER_RUNTIME_DIR=str(self.root / "jupyter-runtime"),
                   JUPYTER_CONFIG_DIR=str(self.root / "jupyter-config"))
        if kernel_python:  # a kernelspec "python3" that shadows the default one
            spec = self.root / "jupyter-path" / "kernels" / "python3"
            spec.mkdir(parents=True)
            (spec / "kernel.json").write_text(json.dumps({
                "argv": [kernel_python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (ipykernel)", "language": "python"}))  # ipykernel's own name
            env["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(spec.parents[1]), env.get("JUPYTER_PATH")]))
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
               f"--ServerApp.root_dir={self.notebooks}", "--IdentityProvider.token=", "--ServerApp.password=",
               f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={self.root / 'workspaces'}",
               "--LabApp.expose_app_in_browser=True", "--ServerApp.terminals_enabled=False"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # CI containers run as root
        self.proc = subprocess.Popen(cmd, env=env, cwd=self.root, stdout=self.log.open("w"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not answer on {self.url} within 120 s:\n{self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # the server shuts its kernels down
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        unavailable("no Chromium found (apt-get install chromium, or set GFD_CHROMIUM)")
    return path


@pytest.fixture(scope="session")
def playwright_api():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install playwright)")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_api, chromium_path):
    try:
        b = playwright_api.chromium.launch(executable_path=chromium_path, headless=True,
                                           args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
    except Exception as exc:  # noqa: BLE001 -- any launch failure means "no browser"
        unavailable(f"Chromium ({chromium_path}) could not be started: {exc}")
    yield b
    b.close()


@pytest.fixture(scope="session")
def lab_server(browser, tmp_path_factory):
    server = LabServer(tmp_path_factory.mktemp("jupyterlab"))
    source = Path(os.environ.get("GFD_BROWSER_NOTEBOOKS", REPO / "notebooks"))
    try:
        server.start(source, os.environ.get("GFD_BROWSER_KERNEL_PYTHON"))
        yield server
    finally:
        server.stop()


class Lab:
    """One browser page on the JupyterLab app, with helpers that talk to ``window.jupyterapp``."""

    def __init__(self, page, server: LabServer):
        self.page, self.server = page, server
        self.console: list[str] = []
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        page.goto(f"{server.url}/lab?reset", wait_until="domcontentloaded")
        page.wait_for_function("() => window.jupyterapp !== undefined", timeout=120_000)
        page.evaluate("async () => { await window.jupyterapp.started; await window.jupyterapp.restored; }")

    def js(self, body: str, arg=None):
        """Evaluate ``body`` as ``async (arg) => { ...body }`` with ``app``, ``nb(id)`` defined."""
        return self.page.evaluate(
            "async (arg) => { const app = window.jupyterapp; const nb = (id) => window.__gfd[id]; " + body + " }", arg)

    def open(self, name: str, n_cells: int) -> str:
        """Open notebook ``name``; wait for its ``n_cells`` cells to be in the page; return its id."""
        nid = self.js("""
            const w = await app.commands.execute('docmanager:open', {path: arg, factory: 'Notebook'});
            await w.context.ready; await w.revealed;
            window.__gfd = window.__gfd || {}; window.__gfd[w.id] = w; return w.id;""", name)
        self.page.wait_for_function(
            "([id, n]) => { const el = document.getElementById(id); "
            "return el && el.querySelectorAll('.jp-Notebook .jp-Cell').length >= n; }",
            arg=[nid, n_cells], timeout=60_000)
        self.page.wait_for_function(  # JupyterLab writes the kernel's spec into the metadata once it runs
            "(id) => { const s = window.__gfd[id].sessionContext; "
            "return s.session && s.session.kernel && s.session.kernel.status === 'idle'; }", arg=nid, timeout=120_000)
        return nid

    def dirty(self, nid: str) -> bool:
        return self.js("return nb(arg).context.model.dirty;", nid)

    def close(self, nid: str) -> None:
        """Shut the notebook's kernel down and drop the tab without saving."""
        self.js("const w = nb(arg); if (w.sessionContext.session) { await w.sessionContext.shutdown(); } "
                "w.dispose(); delete window.__gfd[arg];", nid)

    def kernel_run(self, nid: str, code: str, timeout_ms: int = 60_000) -> str:
        """Run ``code`` in the notebook's kernel, outside its cells; return what it printed."""
        return self.js("""
            const w = nb(arg.id); await w.sessionContext.ready;
            const future = w.sessionContext.session.kernel.requestExecute({code: arg.code, store_history: false});
            let out = '';
            future.onIOPub = (msg) => {
              if (msg.header.msg_type === 'stream') out += msg.content.text;
              if (msg.header.msg_type === 'error') out += msg.content.ename + ': ' + msg.content.evalue;
            };
            await future.done; return out;""", {"id": nid, "code": code})

    def console_tail(self, n: int = 30) -> str:
        return "\n".join(self.console[-n:])


@pytest.fixture(scope="session")
def lab(browser, lab_server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        yield Lab(page, lab_server)
    finally:
        context.close()
