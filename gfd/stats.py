"""The statistics behind the tables' intervals and the verdicts on the paper's claims (Sec. 4.2-4.4).

numpy and scipy only, no torch: every function takes per-seed numbers and returns plain floats.

- :func:`t_interval`: the Student-t 95 % interval of a mean over seeds (row means, and the mean of
  paired per-seed differences).  At five seeds a percentile bootstrap covers the true mean only about
  83 % of the time (:func:`coverage` simulates both on normal data); the t-interval holds its level.
- :func:`sign_flip_p`: the exact two-sided sign-flip (permutation) p-value of a mean of paired
  differences, over all 2^n sign patterns (n <= 16).  At n = 5 it cannot go below 2/32 = 0.0625.
- :func:`holm`: Holm's step-down adjustment of a table's p-values (family-wise error).
- :func:`sigma_interval`: the chi-square 95 % interval of a standard deviation (at n = 5 it spans
  0.60 s to 2.87 s, so a seed spread is known only to a factor of about five).
- :func:`two_level_interval`: the interval of a mean when both the seeds and the generator
  instances of a benchmark are draws (instances crossed with seeds: every seed is tested on the same
  instances): the seed-level variance plus a method-of-moments estimate of the instance variance
  within each family, with Satterthwaite's degrees of freedom.  Without instance variation it is
  the seed-only :func:`t_interval`.
- :func:`bootstrap_ci`: the percentile bootstrap, kept to show its shortfall.
"""
from __future__ import annotations

import itertools
import math
from typing import Mapping, Sequence

import numpy as np
from scipy import stats as _st

LEVEL = 0.95
"""The level of every interval in the tables."""

EXACT_MAX_N = 16
"""Up to this many paired differences :func:`sign_flip_p` enumerates every sign pattern."""


def _nan2() -> tuple[float, float]:
    return float("nan"), float("nan")


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """Student-t interval of the mean of ``values`` (one per seed): mean ± t_{n-1} s / sqrt(n).
    ``(nan, nan)`` for fewer than two values; ``(mean, mean)`` when every value is the same."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return _nan2()
    mean, se = float(v.mean()), float(v.std(ddof=1)) / math.sqrt(v.size)
    half = float(_st.t.ppf(0.5 + level / 2, v.size - 1)) * se
    return mean - half, mean + half


def sigma_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """Chi-square interval of the standard deviation sigma of ``values`` (normal data):
    ``[s sqrt((n-1)/chi2_hi), s sqrt((n-1)/chi2_lo)]``; ``(nan, nan)`` for fewer than two values."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return _nan2()
    df, s = v.size - 1, float(v.std(ddof=1))
    hi_q, lo_q = _st.chi2.ppf(0.5 + level / 2, df), _st.chi2.ppf(0.5 - level / 2, df)
    return s * math.sqrt(df / hi_q), s * math.sqrt(df / lo_q)


def sign_flip_p(differences: Sequence[float], null: float = 0.0, n_random: int = 2 ** 16, seed: int = 0) -> float:
    """Two-sided sign-flip p-value of the mean of paired ``differences`` against ``null``: under the
    null each centred difference ``d - null`` is as likely negative as positive, so the p-value is the
    share of sign patterns whose |mean| is at least the observed one.  Exact (all 2^n patterns) for
    n <= :data:`EXACT_MAX_N`; beyond, ``n_random`` random patterns with the observed one counted.
    ``nan`` for no difference; 1.0 when every centred difference is 0."""
    d = np.asarray(differences, dtype=np.float64) - null
    if d.size == 0:
        return float("nan")
    observed = abs(d.sum())
    tol = 1e-12 * max(1.0, float(np.abs(d).sum()))
    if d.size <= EXACT_MAX_N:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
        return float(np.mean(np.abs(signs @ d) >= observed - tol))
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(n_random, d.size))
    return float((np.sum(np.abs(signs @ d) >= observed - tol) + 1) / (n_random + 1))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given): the k-th smallest of m is multiplied
    by m - k + 1, made monotone, capped at 1.  ``nan`` entries stay ``nan`` and do not count in m."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    running = 0.0
    for rank, i in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def bootstrap_ci(values: Sequence[float], level: float = LEVEL, n_boot: int = 10_000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values`` (one per seed): resample
    the seeds with replacement ``n_boot`` times.  ``(nan, nan)`` for fewer than two values.  Too
    narrow at a few seeds (:func:`coverage`); the tables use :func:`t_interval`."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return _nan2()
    rng = np.random.default_rng(seed)
    # rounded: a resample whose differences cancel must give a mean of 0, not 1e-17 (that would
    # decide "the interval excludes 0" on rounding noise)
    means = np.round(v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1), 12)
    tail = 100 * (1 - level) / 2
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def coverage(n: int, sims: int = 4000, n_boot: int = 400, level: float = LEVEL, seed: int = 0) -> dict[str, float]:
    """Simulated coverage of the true mean by the t-interval and the percentile bootstrap, ``sims``
    samples of ``n`` standard normal values (vectorised; the true mean is 0)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((sims, n))
    mean, se = x.mean(axis=1), x.std(axis=1, ddof=1) / math.sqrt(n)
    half = _st.t.ppf(0.5 + level / 2, n - 1) * se
    t_cover = float(np.mean(np.abs(mean) <= half))
    idx = rng.integers(0, n, size=(sims, n_boot, n))
    boot = np.take_along_axis(x[:, None, :].repeat(n_boot, axis=1), idx, axis=2).mean(axis=2)
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(boot, tail, axis=1), np.percentile(boot, 100 - tail, axis=1)
    return {"t": t_cover, "bootstrap": float(np.mean((lo <= 0) & (0 <= hi)))}


def two_level_interval(per_seed: Sequence[float], cells: Mapping[str, np.ndarray],
                       weights: Mapping[str, float], level: float = LEVEL) -> dict[str, float]:
    """Interval of the mean of ``per_seed`` (one number per seed, e.g. a paired difference in the open
    world) when the benchmark's generator instances are a draw too.

    ``cells``: ``{family cell: array (seeds, instances)}``, the per-seed, per-instance values whose
    weighted cell means make up ``per_seed`` (a cell is one family in one world; the instances of a
    cell are exchangeable draws of that family); ``weights``: each cell's weight in the per-seed
    number.  The model is crossed random effects, value[s, i] = cell mean + instance effect u_i +
    seed-instance noise: the seed-level variance s^2 / n of ``per_seed`` already holds the noise, so
    the instance part added is sum_c w_c^2 sigma_u,c^2 / m_c, with sigma_u,c^2 = max(0, (MS_inst -
    MS_resid) / n) from the cell's two-way table (method of moments).  Degrees of freedom:
    Satterthwaite (n - 1 for the seed part, m_c - 1 per cell), capped at n - 1 so that the instance
    part can only widen the seed-only interval.  Cells with one instance add nothing
    (their instance is the whole family here).  With identical instances the result is the seed-only
    :func:`t_interval`.  Returns mean, lo, hi, df, and the two variance parts."""
    v = np.asarray(per_seed, dtype=np.float64)
    n = v.size
    if n < 2:
        return dict(mean=float(v.mean()) if n else float("nan"), lo=float("nan"), hi=float("nan"),
                    df=float("nan"), var_seeds=float("nan"), var_instances=float("nan"))
    var_seeds = float(v.var(ddof=1)) / n
    parts, dfs = [], []
    for name, values in cells.items():
        x = np.asarray(values, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != n:
            raise ValueError(f"cell {name!r}: expected ({n} seeds, instances), got {x.shape}")
        m = x.shape[1]
        if m < 2:
            continue
        inst_means = x.mean(axis=0)
        ms_inst = n * float(inst_means.var(ddof=1))
        resid = x - inst_means[None, :] - x.mean(axis=1, keepdims=True) + x.mean()
        ms_resid = float((resid ** 2).sum()) / ((n - 1) * (m - 1))
        sigma_u2 = max(0.0, (ms_inst - ms_resid) / n)
        parts.append(weights[name] ** 2 * sigma_u2 / m)
        dfs.append(m - 1)
    var_inst = float(sum(parts))
    total = var_seeds + var_inst
    denom = var_seeds ** 2 / (n - 1) + sum(p ** 2 / d for p, d in zip(parts, dfs))
    # Satterthwaite, capped at the seed-only n - 1: an added variance part never narrows the interval
    df = min(float(n - 1), total ** 2 / denom) if denom > 0 else float(n - 1)
    half = float(_st.t.ppf(0.5 + level / 2, df)) * math.sqrt(total)
    mean = float(v.mean())
    return dict(mean=mean, lo=mean - half, hi=mean + half, df=float(df), var_seeds=var_seeds, var_instances=var_inst)


def clip_interval(interval: tuple[float, float], lo: float, hi: float) -> tuple[float, float]:
    """An interval cut to the range its quantity can take (an accuracy lies in [0, 1], a difference
    of two in [-1, 1]): the t-interval's symmetric ends can pass them at a few seeds, and the cut
    interval covers the true value whenever the uncut one does."""
    return tuple(float(min(max(x, lo), hi)) if x == x else x for x in interval)
