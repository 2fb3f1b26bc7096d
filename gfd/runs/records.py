"""Run records: what one trained and measured run leaves behind, and how it is found again.

A record is one JSON file per (method, seed) of a table, under ``<results>/runs/<folder>/``.  It
carries everything that decided the run, so that its key can be recomputed from the file alone:

``schema``   the record format (:data:`SCHEMA`)
``method``   the table's row name (``"GFD-Net"``, ``"DCT"``, ...) and ``seed``
``config``   the whole :class:`gfd.config.Config` the run was trained with (seed and row switches set)
``data``     the data's identity (:attr:`gfd.data.DataBundle.identity`: a built-in benchmark's folder
             name holds the benchmark's own key)
``options``  a baseline's resolved options (``gfd.baselines.OPTIONS``), ``None`` for GFD-Net rows
``key``      :func:`record_key` of the five above

and then what was measured: ``preset``, ``benchmark`` (a label), ``weights``, ``seconds``,
``deterministic``, ``training`` and ``results`` (per split, from :mod:`gfd.evaluate`).

A stored record whose key equals the key a table asks for is read instead of trained again, so an
interrupted reproduction resumes run by run; one with another key is trained again and replaced.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from gfd.utils import stable_hash

SCHEMA = 2
IDENTITY_FIELDS = ("schema", "method", "data", "config", "options")
"""The record fields its key is hashed from."""


def run_slug(method: str) -> str:
    """File-name form of a method; GFD-Net (and Table 3's GFD-Net (U-Net)) shares the slug of
    G+D+C+L_percept (same runs); ``"GFD-Net (ResNet)"`` -> ``"gfd-net-resnet"``."""
    if method in ("GFD-Net", "GFD-Net (U-Net)"):
        method = "G+D+C+L_percept"
    return method.lower().replace("+", "-").replace("_", "").replace(" (", "-").replace(")", "")


def run_identity(method: str, config: Mapping[str, Any], data: str | None,
                 options: Mapping[str, Any] | None) -> dict[str, Any]:
    """What decides a run, as stored in its record: the row (by its slug, so GFD-Net and
    G+D+C+L_percept share runs), the whole config, the data and a baseline's options."""
    return {"schema": SCHEMA, "method": run_slug(method), "data": data,
            "config": json.loads(json.dumps(dict(config))), "options": None if options is None else
            json.loads(json.dumps(dict(options)))}


def record_key(record: Mapping[str, Any]) -> str:
    """The key of a run: a hash of its identity fields (:data:`IDENTITY_FIELDS`); ``record`` is a
    stored record or a :func:`run_identity`."""
    identity = {f: record[f] for f in IDENTITY_FIELDS}
    identity["method"] = run_slug(identity["method"])
    return stable_hash(identity)


def make_record(method: str, seed: int, identity: Mapping[str, Any], **measured: Any) -> dict[str, Any]:
    """A record: the row and seed, the identity (:func:`run_identity`) and its key, then what was
    measured (``preset``, ``benchmark``, ``weights``, ``seconds``, ``deterministic``, ``training``,
    ``results``)."""
    return dict(schema=SCHEMA, method=method, seed=seed, key=record_key(identity), data=identity["data"],
                options=identity["options"], config=identity["config"], **measured)


def read_record(path: str | Path) -> dict[str, Any] | None:
    """The record stored at ``path``; ``None`` if there is none or it is torn (it will be measured
    again).  A record of another format is refused with one line naming the file."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None          # a torn or hand-edited file: recompute rather than trust it
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise ValueError(f"{path}: a run record of format {record.get('schema') if isinstance(record, dict) else '?'}"
                         f", this version reads format {SCHEMA}; move the file away to measure the run again")
    return record


def load_run(path: str | Path, key: str) -> dict[str, Any] | None:
    """A stored run if it exists and was made with ``key``; ``None`` means: compute it."""
    record = read_record(path)
    return record if record is not None and record.get("key") == key else None
