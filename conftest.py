"""Root pytest configuration, seen by tests/ and by the notebooks nbval runs.

Under test, the course uses the small ``quick`` preset (``GFD_PRESET``), a non-interactive
matplotlib backend, and no tqdm bars in compared outputs.  The notebook kernels inherit this
environment from pytest.
"""
import os

os.environ.setdefault("GFD_PRESET", "quick")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("PYTHONWARNINGS", "ignore")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
