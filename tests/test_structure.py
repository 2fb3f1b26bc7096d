"""The package's shape: data flow one way (no import circle, nothing below the CLI imports it), and
one way for the data (``gfd.load_data``) that honours ``data_root`` for the notebooks too."""
import ast
from pathlib import Path

import pytest

import gfd
from gfd.config import get_config
from gfd.train import load_or_train

PACKAGE = Path(gfd.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every gfd module ``path`` imports, at top level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("gfd")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gfd") and not node.level:
            for a in node.names:                       # "from gfd import losses" imports gfd.losses
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in known else node.module)
    return found - {"gfd"}                            # gfd/__init__ only re-exports


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(files)
    return {name: imports_of(path, known) & known for name, path in files.items() if name != "gfd"}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_circle():
    graph = import_graph()
    assert "gfd.train" in graph and "gfd.losses" in graph["gfd.train"]        # the walker sees imports
    assert find_cycle(graph) is None, f"import circle: {' -> '.join(find_cycle(graph))}"


def test_the_cycle_finder_finds_a_planted_circle():
    graph = import_graph()
    graph["gfd.losses"] = graph["gfd.losses"] | {"gfd.train"}                # losses -> train -> losses
    assert find_cycle(graph) is not None


def test_nothing_below_the_cli_imports_it():
    users = sorted(m for m, deps in import_graph().items() if "gfd.cli" in deps and m != "gfd.__main__")
    assert users == []


def test_models_and_losses_know_nothing_of_files_notebooks_or_runners():
    graph = import_graph()
    low = [m for m in graph if m.startswith("gfd.models") or m == "gfd.losses"]
    for m in low:
        assert all(d.startswith("gfd.models") or d in ("gfd.utils", "gfd.config") for d in graph[m]), (m, graph[m])


def test_a_notebook_style_call_with_data_root_trains_on_that_folder(make_dataset, monkeypatch):
    root = make_dataset(classes=("real", "ganX", "ganY"), n=4)

    def no_benchmark(*args, **kwargs):
        raise AssertionError("the built-in benchmark was loaded although data_root is set")
    monkeypatch.setattr("gfd.benchmark.load_mini_benchmark", no_benchmark)
    cfg = get_config("quick", data_root=str(root), crop=32, batch_size=4, unet_depth=2, unet_width=4,
                     unet_max_width=8, disc_width=4, classifier_weights="random", perceptual_weights="random",
                     steps=1, c_pretrain_steps=1, eval_every=0, ckpt_every=0, device="cpu", num_workers=0)
    bundle = gfd.load_data(cfg)                       # what notebooks 01-08 call
    assert bundle.root == root and bundle.classes == ["real", "ganX", "ganY"]
    trainer = load_or_train(cfg, bundle, out_dir=root.parent / "run", progress=False)
    assert trainer.bundle.root == root and trainer.classes == ["real", "ganX", "ganY"]
    assert trainer.train_stream.dataset.root == str(root / "train")


def test_without_data_root_the_built_in_benchmark_is_loaded(monkeypatch, make_dataset):
    root = make_dataset(n=4)
    asked = []

    def fake_benchmark(benchmark, size, seed=0, progress=True):
        asked.append((benchmark, size))
        return root
    monkeypatch.setattr("gfd.benchmark.load_benchmark", fake_benchmark)
    bundle = gfd.load_data(get_config("quick", crop=32, num_workers=0))
    assert asked == [("gan128", "quick")] and bundle.root == root
