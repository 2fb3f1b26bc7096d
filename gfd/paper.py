"""What the paper reports, as data: the numbers of Tables 1 and 4, the rows of the ablation, and the
orderings its text draws from them.  No logic lives here; :mod:`gfd.report` compares our runs with
these numbers, and nothing is ever computed *from* them.

Sources (Yang et al. 2021): Table 1 and Sec. 4.2.1 (128 px, CelebA -> LSUN cross-dataset
attribution, five classes), Table 4 and Sec. 4.4 (ablation of D, C and L_percept).
"""
from __future__ import annotations

PAPER: dict[int, dict[str, dict[str, float]]] = {
    1: {  # Table 1: accuracy (%) in the closed and the open world
        "PRNU": {"closed": 92.23, "open": 18.57},
        "DCT": {"closed": 94.40, "open": 51.26},
        "AttNet": {"closed": 99.44, "open": 65.18},
        "GFD-Net": {"closed": 99.99, "open": 78.72},
    },
    4: {  # Table 4: the ablation
        "G": {"closed": 99.99, "open": 74.77},
        "G+D": {"closed": 99.97, "open": 72.86},
        "G+C": {"closed": 99.99, "open": 74.70},
        "G+D+C": {"closed": 99.99, "open": 76.40},
        "G+D+C+L_percept": {"closed": 99.99, "open": 78.72},
    },
}
"""The paper's accuracies (%), for comparison only."""

TABLES: dict[int, tuple[str, ...]] = {table: tuple(rows) for table, rows in PAPER.items()}
"""Table number -> its rows, in the paper's order."""

ABLATIONS: dict[str, dict[str, bool]] = {
    "G": dict(use_D=False, use_C=False, use_percept=False),
    "G+D": dict(use_D=True, use_C=False, use_percept=False),
    "G+C": dict(use_D=False, use_C=True, use_percept=False),
    "G+D+C": dict(use_D=True, use_C=True, use_percept=False),
    "G+D+C+L_percept": dict(use_D=True, use_C=True, use_percept=True),
}
"""The rows of Table 4: which networks and losses are switched on (``Config`` fields)."""

GFD_ROWS: dict[str, dict[str, bool]] = {**ABLATIONS, "GFD-Net": ABLATIONS["G+D+C+L_percept"]}
"""Every row that is a GFD-Net configuration; Table 1's GFD-Net is the full model of Table 4."""

CLAIMS: dict[int, list[tuple[str, str, str, str]]] = {
    # (method a, relation, method b, world)
    1: [("GFD-Net", ">", "AttNet", "open"), ("AttNet", ">", "DCT", "open"), ("DCT", ">", "PRNU", "open"),
        ("GFD-Net", ">", "PRNU", "open")],
    4: [("G+D", "<=", "G", "open"), ("G+C", "<=", "G", "open"), ("G+D+C", ">", "G", "open"),
        ("G+D+C+L_percept", ">", "G+D+C", "open"), ("G+D+C+L_percept", ">", "G", "open")],
}
"""The orderings the text draws.  Sec. 4.2.1: GFD-Net > AttNet > DCT > PRNU in the open world.
Sec. 4.4: D or C alone does not help, D and C together do, L_percept helps further."""


def ablation_name(cfg) -> str:
    """The Table 4 row a config belongs to (e.g. ``"G+D+C"``), from its ``use_*`` switches."""
    parts = ["G"] + [n for n, on in (("D", cfg.use_D), ("C", cfg.use_C)) if on]
    name = "+".join(parts)
    return name + "+L_percept" if cfg.use_percept else name
