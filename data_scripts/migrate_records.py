"""Migrate the committed run records to format 2 (each record carries its whole config).

Run once (2026-12-07, docs/decisions.md).  Format-1 records stored only a key, hashed from the
config with the fields added after them left out at their default; nothing in the repository could
recompute it without that compatibility code.  This script rebuilds each record's config as the
format-1 code did, checks that it gives the stored key, and writes the record in format 2.

    git worktree add /tmp/old-gfd aa12855                      # the last format-1 commit
    PYTHONPATH=/tmp/old-gfd python data_scripts/migrate_records.py capture /tmp/old-configs.json
    python data_scripts/migrate_records.py write /tmp/old-configs.json

``capture`` runs with the old code; ``write`` with this one: it maps each old config onto today's
fields (``task`` from the records' folder, ``backbone_*`` from the ``unet_*`` fields the small
backbones were sized by), checks that the table's current setting asks for exactly that config and
those options (so ``python -m gfd reproduce`` finds every record again), and rewrites the file.
The effect is checked by tests/test_reproduce.py: Tables 1-4 regenerate byte-identical from the
migrated records.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TABLE_OF_FOLDER = {"course": 1, "course-table2": 2, "detect": 3}


def capture(out: str) -> None:
    from gfd.baselines import OPTIONS, TABLE_NAMES
    from gfd.baselines.common import resolve_options
    from gfd.benchmark import gan1024
    from gfd.benchmark.worlds.gan128 import cache_name, make_params
    from gfd.detection import TRAIN_FAMILY
    from gfd.paper import GFD_ROWS
    from gfd.runs.reproduce import DETECTION_PRESET, TABLE2_COURSE, TABLE2_SETTING, RunSpec, get_config

    mini = cache_name(make_params("default", 0), "default")
    g1024 = gan1024.cache_name(gan1024.make_params("default", 0), "default")
    setting = {"course": (get_config("course"), mini),
               "course-table2": (get_config("course", [*TABLE2_COURSE, *TABLE2_SETTING]), g1024),
               "detect": (get_config(DETECTION_PRESET), f"detect-{TRAIN_FAMILY}-{mini}")}
    captured = {}
    for path in sorted(REPO.glob("results/**/runs/*/*.json")):
        rec = json.loads(path.read_text())
        cfg, data = setting[path.parent.name]
        spec = RunSpec(rec["method"], rec["seed"], cfg, path.parent.name)
        if spec.key(data) != rec["key"]:
            sys.exit(f"{path}: the old code does not give its stored key; nothing written")
        options = None
        if rec["method"] not in GFD_ROWS:
            options = dataclasses.asdict(resolve_options(OPTIONS[TABLE_NAMES[rec["method"]]], spec.config()))
        captured[str(path.relative_to(REPO))] = dict(config=spec.config().to_dict(), data=data, options=options)
    Path(out).write_text(json.dumps(captured, indent=1))
    print(f"{len(captured)} records: every stored key recomputed from its config -> {out}")


def renamed(d: dict | None) -> dict | None:
    """Today's names of the fields that size the small backbones."""
    if d is None:
        return None
    d = dict(d)
    for old in ("unet_depth", "unet_width", "unet_max_width"):
        if old in d and "encoder_size" in d and "arch" in d:       # a plain backbone's options
            d[old.replace("unet", "backbone")] = d.pop(old)
    return d


def write(captured_file: str) -> None:
    from gfd.config import Config
    from gfd.runs.records import SCHEMA, make_record, run_identity
    from gfd.runs.reproduce import RunSpec, table_config

    captured = json.loads(Path(captured_file).read_text())
    for rel, old in captured.items():
        path = REPO / rel
        rec = json.loads(path.read_text())
        if rec.get("schema") == SCHEMA:
            continue
        cfg = dict(old["config"], task="detection" if path.parent.name == "detect" else "attribution",
                   backbone_depth=old["config"]["unet_depth"], backbone_width=old["config"]["unet_width"],
                   backbone_max_width=old["config"]["unet_max_width"])
        config = Config.from_dict(cfg)
        identity = run_identity(rec["method"], config.to_dict(), old["data"], renamed(old["options"]))
        table = TABLE_OF_FOLDER[path.parent.name]
        spec = RunSpec(rec["method"], rec["seed"], table_config(table, path.parent.name.split("-")[0]))
        if spec.identity(old["data"]) != identity:
            sys.exit(f"{path}: today's Table {table} setting asks for another config or options than the record was "
                     f"made with; nothing written for it")
        measured = {k: v for k, v in rec.items() if k not in ("method", "seed", "key")}
        new = make_record(rec["method"], rec["seed"], identity, **measured)
        path.write_text(json.dumps(new, indent=1), encoding="utf-8")
    print(f"{len(captured)} records in format {SCHEMA}")


if __name__ == "__main__":
    {"capture": capture, "write": write}[sys.argv[1]](sys.argv[2])
