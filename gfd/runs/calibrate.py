"""How hard is the benchmark?  The direct classifier of Table 4 (the "G" row) over seeds.

The direct classifier is the fingerprint generator's encoder G_enc with the head H (Sec. 3.2),
trained with L_z alone: GFD-Net with D, C and L_percept switched off.  It is exactly the G row of
Table 4 -- the same config, trained by the same :func:`gfd.train.load_or_train`, so calibration and
the table share their runs and report the same numbers.

The one rule a benchmark must meet is written on the closed world only (experiment protocol,
rule 1): the direct classifier reaches at least :data:`CLOSED_MIN` top-1 accuracy on the closed-world
test split, mean over seeds.  The open world is measured and printed, never used to decide anything.
"""
from __future__ import annotations

import statistics

from gfd.config import Config
from gfd.paper import ABLATIONS
from gfd.runs.variant import train_and_measure

CLOSED_MIN = 0.95
"""The closed-world rule: mean closed-world accuracy of the direct classifier over the seeds."""


def calibrate(cfg: Config, bundle, seeds: tuple[int, ...] = (0, 1, 2), progress: bool = True) -> dict:
    """Train (or load) the direct classifier of ``cfg`` for every seed; per-seed rows and mean / std."""
    rows = []
    for seed in seeds:
        res = train_and_measure(cfg.with_(seed=seed, **ABLATIONS["G"]), bundle, progress=progress)
        rows.append({"seed": seed, "val": res.val, "closed": res.closed, "open": res.open, "seconds": res.seconds})
    summary = {"root": str(bundle.root), "preset": cfg.preset, "steps": cfg.steps, "seeds": list(seeds),
               "runs": rows, "chance": 1.0 / bundle.num_classes,
               "seconds": round(sum(r["seconds"] for r in rows), 1)}
    for world in ("val", "closed", "open"):
        values = [r[world] for r in rows if r[world] is not None]
        summary[f"{world}_mean"] = statistics.fmean(values) if values else None
        summary[f"{world}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    summary["meets_closed_rule"] = summary["closed_mean"] >= CLOSED_MIN
    return summary


def format_calibration(s: dict) -> str:
    """A short human-readable report of :func:`calibrate`'s result."""
    def pct(v):
        return "n/a" if v is None else f"{100 * v:.1f}%"
    lines = [f"calibration of {s['root']}: direct classifier G_enc + H (Table 4's G row), preset {s['preset']}, "
             f"{s['steps']} steps, seeds {s['seeds']}"]
    for r in s["runs"]:
        lines.append(f"  seed {r['seed']}: val {pct(r['val'])}  closed {pct(r['closed'])}  open {pct(r['open'])}  "
                     f"({r['seconds']:.0f} s)")
    lines.append(f"closed world {pct(s['closed_mean'])} +- {100 * s['closed_std']:.1f}   "
                 f"open world {pct(s['open_mean'])} +- {100 * s['open_std']:.1f} (measured, never tuned on)   "
                 f"chance {pct(s['chance'])}")
    lines.append(f"closed-world rule (mean >= {100 * CLOSED_MIN:.0f}%): "
                 f"{'met' if s['meets_closed_rule'] else 'NOT met'}")
    return "\n".join(lines)
