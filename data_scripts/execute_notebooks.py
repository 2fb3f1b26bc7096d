#!/usr/bin/env python
"""Execute notebooks in place, store their widget state, and write them as JupyterLab saves them.

    python data_scripts/execute_notebooks.py notebooks/*.ipynb                  # GFD_PRESET=course
    python data_scripts/execute_notebooks.py --preset quick notebooks/05_training.ipynb
    python data_scripts/execute_notebooks.py --normalise-only notebooks/*.ipynb  # no kernel at all

What it does, notebook by notebook (each written only once it ran without error):

* runs every cell in a fresh kernel (``--kernel``, default ``python3``) started in the notebook's
  folder, with ``GFD_PRESET`` set to ``--preset`` (default ``course``: what a reader gets) and
  ``TQDM_DISABLE=1`` (no progress-bar widgets stored in the file);
* stores the state of the widgets the run created in ``metadata.widgets``
  (``application/vnd.jupyter.widget-state+json``, as ``jupyter nbconvert --execute
  --ExecutePreprocessor.store_widget_state=True`` does), after dropping the state an earlier run
  left there, so static viewers draw the controls instead of ``VBox(children=...)``;
* normalises it to what JupyterLab would write back after merely opening it, so that opening a
  notebook no longer marks it modified:

  - ``metadata.kernelspec`` = the spec of the kernel that JupyterLab starts (``display_name``
    ``"Python 3 (ipykernel)"`` for ipykernel's own spec, not ``"Python 3"``): JupyterLab rewrites
    it as soon as the kernel is up;
  - every cell has an ``id`` (nbformat 4.5): JupyterLab adds the missing ones;
  - nbformat 4.5, keys sorted, one-space indent, non-ASCII kept, a final newline: the layout of
    Jupyter's ``nbformat.write``, which the server uses to save;
  - when executing, the per-cell ``metadata.execution`` timestamps of earlier nbclient runs are
    dropped (churn only; this run records none).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
import warnings
from pathlib import Path

import nbformat

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def kernelspec_metadata(kernel_name: str) -> dict:
    """``metadata.kernelspec`` as JupyterLab writes it for a running kernel of ``kernel_name``."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(kernel_name)
    return {"display_name": spec.display_name, "language": spec.language, "name": kernel_name}


def normalise(nb: nbformat.NotebookNode, name: str, kernelspec: dict | None,
              drop_timings: bool = True) -> nbformat.NotebookNode:
    """Bring ``nb`` to the form JupyterLab saves (see the module docstring); returns ``nb``."""
    nb.nbformat, nb.nbformat_minor = 4, max(5, nb.get("nbformat_minor", 0))
    if kernelspec is not None:
        nb.metadata["kernelspec"] = dict(kernelspec)
    seen = {c.get("id") for c in nb.cells if c.get("id")}
    for index, cell in enumerate(nb.cells):
        if drop_timings:
            cell.get("metadata", {}).pop("execution", None)
        if not cell.get("id"):  # deterministic, so that re-running the script changes nothing
            digest = hashlib.sha1(f"{name}:{index}:{''.join(cell.source)}".encode()).hexdigest()
            k = 0
            while digest[k:k + 8] in seen:
                k += 1
            cell["id"] = digest[k:k + 8]
            seen.add(cell["id"])
    nbformat.validate(nb)
    return nb


def write(nb: nbformat.NotebookNode, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    nbformat.write(nb, str(tmp))  # sorted keys, indent 1, ensure_ascii=False, final newline
    os.replace(tmp, path)


def execute(nb: nbformat.NotebookNode, path: Path, kernel_name: str, timeout: int) -> None:
    from nbclient import NotebookClient

    nb.metadata.pop("widgets", None)  # only the widgets of this run
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name, store_widget_state=True,
                            record_timing=False, resources={"metadata": {"path": str(path.parent)}})
    client.execute()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="+", type=Path)
    ap.add_argument("--preset", default="course", help="GFD_PRESET for the kernels (default: course)")
    ap.add_argument("--kernel", default="python3", help="kernelspec to run (default: python3)")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds one cell may run (default: 3600)")
    ap.add_argument("--normalise-only", "--normalize-only", action="store_true",
                    help="do not execute: only rewrite in JupyterLab's saved form")
    args = ap.parse_args(argv)
    os.environ["GFD_PRESET"] = args.preset      # the kernels inherit this environment
    os.environ.setdefault("TQDM_DISABLE", "1")
    kernelspec = kernelspec_metadata(args.kernel)
    failed = []
    for path in args.notebooks:
        with warnings.catch_warnings():  # a missing cell id is what normalise() fixes
            warnings.simplefilter("ignore")
            nb = nbformat.read(str(path), as_version=4)
        start = time.perf_counter()
        if not args.normalise_only:
            try:
                execute(nb, path, args.kernel, args.timeout)
            except Exception as exc:  # noqa: BLE001 -- report, leave the file alone, go on
                print(f"FAILED {path}: {type(exc).__name__}: {str(exc)[-2000:]}", file=sys.stderr)
                failed.append(path)
                continue
        write(normalise(nb, path.name, kernelspec, drop_timings=not args.normalise_only), path)
        widgets = len(nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {}))
        done = "normalised" if args.normalise_only else f"executed with preset {args.preset}, normalised"
        print(f"{path}: {done}; {widgets} widget models stored; {time.perf_counter() - start:.0f} s")
    if failed:
        print(f"{len(failed)} notebook(s) failed and were left unchanged: {', '.join(map(str, failed))}",
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
