"""The paper's tables as the course reproduces them: one spec per table, every per-table setting here.

A :class:`TableSpec` says which rows a table has, which preset and :data:`gfd.config.OVERLAYS` its
runs use, where their records go, which columns it shows and how it is laid out.  The runner
(:mod:`gfd.runs.reproduce`) reads the settings, the one table writer (:func:`gfd.report.write_table`)
the columns and the layout.  Data, no logic beyond naming things.
"""
from __future__ import annotations

from dataclasses import dataclass

from gfd.paper import TABLES


@dataclass(frozen=True)
class TableSpec:
    """One reproduced table of the paper.

    ``preset`` is the default preset (``None``: :func:`gfd.config.default_preset`); ``overlays`` are
    applied with every preset and ``course_overlays`` only with ``course``.  ``columns`` names the
    column set (``"worlds"``: closed / open / open over instances; ``"open models"``: one column per
    open-world generator, Sec. 4.2.2; ``"test sets"``: one per detection test set, Sec. 4.3);
    ``methods_as_columns`` lays a table with many columns out sideways (one row per column name)."""

    number: int
    title: str
    rows: tuple[str, ...]
    columns: str = "worlds"
    preset: str | None = None
    overlays: tuple[str, ...] = ()
    course_overlays: tuple[str, ...] = ()
    records_suffix: str = ""
    methods_as_columns: bool = False

    def records_folder(self, preset: str) -> str:
        """The folder of this table's run records under ``runs/``: the preset's name (Table 2's runs
        are other runs of Table 1's methods and preset, so they get a folder of their own)."""
        return preset + self.records_suffix

    def overlays_for(self, preset: str) -> tuple[str, ...]:
        """The overlays a run of this table gets with ``preset``."""
        return self.overlays + (self.course_overlays if preset == "course" else ())


TABLE_SPECS: dict[int, TableSpec] = {
    1: TableSpec(1, "Table 1 on the built-in benchmark", TABLES[1]),
    2: TableSpec(2, "Table 2 on the built-in benchmark's high-resolution world: crops without resizing (Sec. 4.2.2)",
                 TABLES[2], columns="open models", overlays=("gan1024",), course_overlays=("short-budget",),
                 records_suffix="-table2"),
    3: TableSpec(3, "Table 3 on the built-in benchmark: cross-generator fake detection (Sec. 4.3)", TABLES[3],
                 columns="test sets", preset="detect", overlays=("detection",), methods_as_columns=True),
    4: TableSpec(4, "Table 4 on the built-in benchmark", TABLES[4]),
}
"""Table number -> its spec.  Table 2 keeps the ``short-budget`` overlay with the course preset and
Table 3 the ``detect`` preset: the settings their committed runs were measured with
(docs/decisions.md)."""
