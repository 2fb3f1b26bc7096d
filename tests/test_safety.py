"""Checkpoints are safe to load and written atomically; the benchmark cache key covers every parameter.

* A checkpoint file that carries a pickle payload (code that runs when unpickled) is refused by the
  real loader, :func:`gfd.checkpoint.load_checkpoint`, and by ``Trainer.load`` -- and the payload
  does not run.  The payload file is otherwise a perfect checkpoint, so only ``weights_only=True``
  stands between it and the user.
* A save interrupted half-way (the disk fills, the process is killed while ``torch.save`` writes)
  leaves the previous checkpoint in place and loadable.
* Changing any field of ``BenchmarkParams``, however deeply nested, changes its cache key.
"""
import dataclasses
import io
import os

import pytest
import torch

from gfd.checkpoint import FORMAT, FORMAT_VERSION, CheckpointError, load_checkpoint, save_checkpoint
from gfd.data import get_loaders
from gfd.train import CHECKPOINT_NAME, Trainer, load_or_train

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = ["real", "ganA"]


class Payload:
    """Unpickling this runs ``exec(code)``: what a malicious checkpoint would do."""

    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return exec, (self.code,)


def poisoned_checkpoint(path, marker, state):
    """A checkpoint with every expected key, plus one entry whose unpickling writes ``marker``."""
    payload = {"format": FORMAT, "version": FORMAT_VERSION, **state,
               "meta": {"note": Payload(f"open({str(marker)!r}, 'w').write('pwned')")}}
    torch.save(payload, path)
    return path


def test_a_checkpoint_with_a_pickle_payload_is_refused_and_does_not_run(tiny_cfg, tmp_path):
    t = Trainer(tiny_cfg, classes=CLASSES)
    marker = tmp_path / "pwned.txt"
    path = poisoned_checkpoint(tmp_path / "evil.pt", marker, t.state_dict())
    # the file really is dangerous: an unsafe load runs the payload
    torch.load(path, weights_only=False)
    assert marker.read_text() == "pwned"
    marker.unlink()

    with pytest.raises(CheckpointError, match=r"evil.pt is not a readable torch checkpoint \(UnpicklingError: "
                                              r"Weights only load failed"):
        load_checkpoint(path)
    assert not marker.exists()
    with pytest.raises(CheckpointError):
        Trainer(tiny_cfg, classes=CLASSES, pretrained=False).load(path)
    assert not marker.exists()


def test_the_refusal_does_not_depend_on_torch_defaults(tiny_cfg, tmp_path, monkeypatch):
    """torch.load's default is weights_only=True today, but a user (or an older torch) may make it
    False: gfd asks for weights_only=True explicitly, so the payload is refused anyway."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "pwned.txt"
    path = poisoned_checkpoint(tmp_path / "evil.pt", marker, Trainer(tiny_cfg, classes=CLASSES).state_dict())
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


def test_no_torch_load_in_the_package_unpickles():
    """Every ``torch.load`` call in gfd/ passes ``weights_only=True`` literally (none leaves it to
    torch's default, none is reached through another name), and ``weights_only=False`` stands nowhere
    in the package: no file the package reads can run pickled code."""
    import ast
    from pathlib import Path

    import gfd

    root = Path(gfd.__file__).parent
    unsafe, calls = [], 0
    for path in sorted(root.rglob("*.py")):
        text, rel = path.read_text(encoding="utf-8"), path.relative_to(root.parent)
        if "weights_only=False" in text.replace(" ", ""):
            unsafe.append(f"{rel}: weights_only=False")
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, ast.ImportFrom) and node.module == "torch" and any(a.name == "load" for a in node.names):
                unsafe.append(f"{rel}:{node.lineno}: torch.load imported under another name")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"):
                calls += 1
                flag = next((k.value for k in node.keywords if k.arg == "weights_only"), None)
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    unsafe.append(f"{rel}:{node.lineno}: torch.load without weights_only=True")
    assert calls >= 3, f"found only {calls} torch.load calls in {root}: is the scan looking in the package?"
    assert not unsafe, unsafe


def test_exporting_over_a_poisoned_file_does_not_run_it(tiny_cfg, tmp_path, monkeypatch):
    """export_weights peeks into an existing --out file (to refuse overwriting a checkpoint): safely."""
    from gfd.checkpoint import export_weights

    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    src = Trainer(tiny_cfg, classes=CLASSES, out_dir=tmp_path).save()
    marker = tmp_path / "pwned.txt"
    torch.save({"format": "something", "x": Payload(f"open({str(marker)!r}, 'w').write('pwned')")},
               tmp_path / "old.pt")
    export_weights(src, tmp_path / "old.pt")
    assert not marker.exists()
    assert load_checkpoint(tmp_path / "old.pt", allow_export=True)["format"] == "gfd-weights"


def test_load_or_train_refuses_a_poisoned_run_checkpoint(tiny_cfg, tmp_path, make_dataset):
    bundle = get_loaders(make_dataset(classes=CLASSES, n=1), tiny_cfg)
    run = tmp_path / "run"
    run.mkdir()
    marker = tmp_path / "pwned.txt"
    poisoned_checkpoint(run / CHECKPOINT_NAME, marker, Trainer(tiny_cfg, classes=CLASSES).state_dict())
    with pytest.raises(CheckpointError):
        load_or_train(tiny_cfg, bundle, out_dir=run, progress=False)
    assert not marker.exists()


class Crash(Exception):
    pass


def crashing_save(after_bytes):
    """A ``torch.save`` that writes the first ``after_bytes`` bytes of the file, then dies."""
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        with open(f, "wb") as out:
            out.write(buf.getvalue()[:after_bytes])
        raise Crash("killed while writing")
    return save


@pytest.mark.parametrize("after_bytes", [0, 3000])
def test_a_save_interrupted_midway_leaves_the_previous_checkpoint_loadable(tiny_cfg, tmp_path, monkeypatch, after_bytes):
    t = Trainer(tiny_cfg, classes=CLASSES, out_dir=tmp_path / "run")
    t.step = 1
    path = t.save()
    assert path == tmp_path / "run" / CHECKPOINT_NAME
    before = path.read_bytes()

    t.step = 2
    with torch.no_grad():
        next(t.G.parameters()).add_(1.0)
    monkeypatch.setattr(torch, "save", crashing_save(after_bytes))
    with pytest.raises(Crash):
        t.save()
    monkeypatch.undo()

    assert path.read_bytes() == before                        # untouched, not truncated
    assert load_checkpoint(path)["step"] == 1
    again = Trainer(tiny_cfg, classes=CLASSES, pretrained=False).load(path, resume_data=False)
    assert again.step == 1
    assert sorted(p.name for p in path.parent.iterdir()) == [CHECKPOINT_NAME]   # no partial file left
    assert t.last_checkpoint == path                          # still points at the good one


def test_save_checkpoint_writes_through_a_temporary_file_and_a_rename(tmp_path, monkeypatch):
    written, renamed = [], []
    real_save, real_replace = torch.save, os.replace
    monkeypatch.setattr(torch, "save", lambda obj, f, *a, **k: (written.append(str(f)), real_save(obj, f, *a, **k)))
    monkeypatch.setattr(os, "replace", lambda a, b: (renamed.append((str(a), str(b))), real_replace(a, b)))
    target = tmp_path / "ck.pt"
    save_checkpoint(target, {"config": {}, "classes": [], "step": 7, "models": {}})
    assert len(written) == 1 and written[0] != str(target)
    assert renamed == [(written[0], str(target))]
    assert load_checkpoint(target)["step"] == 7


# --- the benchmark cache key -----------------------------------------------------------------------

def changed_values(value, pool):
    """Candidate replacements for a leaf ``value`` (the first one a dataclass accepts is used)."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value * 2 + 3, value - 1]
    if isinstance(value, float):
        return [value * 0.5 + 0.125, value + 1.0]
    if isinstance(value, str):
        return [value + "_x"] + sorted(s for s in pool if s != value)
    if value is None:
        return [1, "x"]
    raise TypeError(f"no rule to change a {type(value).__name__}: extend changed_values()")


def strings_in(obj):
    if isinstance(obj, str):
        return {obj}
    if dataclasses.is_dataclass(obj):
        return set().union(*(strings_in(getattr(obj, f.name)) for f in dataclasses.fields(obj)))
    if isinstance(obj, (tuple, list)):
        return set().union(set(), *(strings_in(v) for v in obj))
    return set()


def variations(obj, pool, path=""):
    """(path, builder) pairs; ``builder()`` returns ``obj`` with one leaf (or one tuple's length)
    changed, or raises ValueError/TypeError where the class refuses the change."""
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            sub = getattr(obj, f.name)
            for p, build in variations(sub, pool, f"{path}.{f.name}"):
                yield p, (lambda build=build, name=f.name: dataclasses.replace(obj, **{name: build()}))
    elif isinstance(obj, tuple):
        if obj:
            yield f"{path}[:-1]", lambda: obj[:-1]
        for i, sub in enumerate(obj):
            for p, build in variations(sub, pool, f"{path}[{i}]"):
                yield p, (lambda build=build, i=i: obj[:i] + (build(),) + obj[i + 1:])
    else:
        for k, candidate in enumerate(changed_values(obj, pool)):
            yield f"{path}#{k}", (lambda c=candidate: c)


def renamed(obj, old, new):
    """``obj`` with every string equal to ``old`` replaced by ``new`` (a name and its references)."""
    if isinstance(obj, str):
        return new if obj == old else obj
    if dataclasses.is_dataclass(obj):
        return dataclasses.replace(obj, **{f.name: renamed(getattr(obj, f.name), old, new)
                                           for f in dataclasses.fields(obj)})
    if isinstance(obj, tuple):
        return tuple(renamed(v, old, new) for v in obj)
    return obj


def leaf_value(obj, leaf):
    for part in leaf.replace("[", ".[").split(".")[1:]:
        obj = obj[int(part[1:-1])] if part.startswith("[") else getattr(obj, part)
    return obj


def test_every_benchmark_parameter_enters_the_cache_key():
    from gfd.benchmark.worlds import gan128 as build

    params = build.make_params("quick", seed=0)
    assert dataclasses.is_dataclass(params)
    key = params.key()
    assert build.make_params("quick", seed=0).key() == key    # stable
    pool = strings_in(params)
    leaves_changed, unchanged, refused = set(), [], []
    for path, builder in variations(params, pool):
        leaf = path.split("#")[0]
        if leaf in leaves_changed:
            continue                                          # one accepted change per leaf is enough
        try:
            changed = builder()
        except (ValueError, TypeError):
            refused.append(path)
            continue
        if changed == params:
            continue
        leaves_changed.add(leaf)
        if changed.key() == key:
            unchanged.append(leaf)
    leaves = {p.split("#")[0] for p, _ in variations(params, pool)}
    leaves -= {leaf for leaf in leaves - leaves_changed if leaf.endswith("[:-1]")}   # fixed-length pairs
    for leaf in sorted(leaves - leaves_changed):
        # a name that others refer to (a family named by variant_base) changes together with them
        old = leaf_value(params, leaf)
        if isinstance(old, str):
            leaves_changed.add(leaf)
            if renamed(params, old, old + "_x").key() == key:
                unchanged.append(leaf)
    assert leaves_changed == leaves, f"no accepted change for {sorted(leaves - leaves_changed)}"
    assert not unchanged, f"the cache key ignores {unchanged}"
    # every kind of field was walked: counts, training settings, domains, generator families
    top = {leaf.split(".")[1].split("[")[0] for leaf in leaves}
    assert {f.name for f in dataclasses.fields(params)} <= top
    assert any(".train." in leaf + "." for leaf in leaves) and any(".families[" in leaf for leaf in leaves)
