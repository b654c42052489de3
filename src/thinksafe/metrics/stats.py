"""Statistics for rates and paired differences."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float] | None:
    """Wilson score interval for k successes in n trials (None when n == 0)."""
    if n <= 0:
        return None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


# ---- paired comparisons -------------------------------------------------------------

# Bootstrap replicates are drawn in blocks so that n_resamples x n indices never
# sit in memory at once (JailBreakV has 28k items: 10k x 28k int64 = 2 GB).
_BLOCK_CELLS = 2_000_000


def _as_pair(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired samples must be 1-D and aligned (got {x.shape} and {y.shape})")
    return x, y


def bootstrap_diffs(a: Sequence[float], b: Sequence[float], n_resamples: int = 10_000,
                    seed: int | Sequence[int] = 0, stat: Callable[..., Any] = np.mean) -> tuple[float, np.ndarray]:
    """Point difference ``stat(b) - stat(a)`` and its bootstrap replicates.

    Pairs are resampled together (the same item indices for ``a`` and ``b``),
    which keeps the per-item correlation between the two runs.

    Args:
        a: Per-item values of the first run.
        b: Per-item values of the second run, aligned with ``a``.
        n_resamples: Number of bootstrap replicates.
        seed: Seed (or seed sequence) of ``numpy.random.default_rng``.
        stat: Statistic called as ``stat(x, axis=-1)`` on a 2-D array.

    Returns:
        ``(diff, replicates)``; ``replicates`` has shape ``(n_resamples,)``.
    """
    x, y = _as_pair(a, b)
    n = x.size
    if n == 0:
        raise ValueError("no pairs to bootstrap")
    point = float(stat(y[None, :], axis=-1)[0] - stat(x[None, :], axis=-1)[0])
    rng = np.random.default_rng(seed)
    if stat is np.mean:
        return point, _mean_diff_replicates(y - x, n_resamples, rng)
    reps = np.empty(n_resamples, dtype=float)
    block = max(1, _BLOCK_CELLS // n)
    for start in range(0, n_resamples, block):
        stop = min(n_resamples, start + block)
        idx = rng.integers(0, n, size=(stop - start, n))
        reps[start:stop] = stat(y[idx], axis=-1) - stat(x[idx], axis=-1)
    return point, reps


def _mean_diff_replicates(d: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap replicates of ``mean(d)``.

    The mean of a paired difference only depends on how many times each
    distinct value of ``d`` is drawn, so with few distinct values (0/1 outcomes
    give -1, 0, 1) one multinomial draw per replicate replaces n index draws;
    the distribution is the same as resampling items.
    """
    n = d.size
    values, counts = np.unique(d, return_counts=True)
    if values.size <= 64:
        draws = rng.multinomial(n, counts / n, size=n_resamples)
        return draws @ values / n
    reps = np.empty(n_resamples, dtype=float)
    block = max(1, _BLOCK_CELLS // n)
    for start in range(0, n_resamples, block):
        stop = min(n_resamples, start + block)
        reps[start:stop] = d[rng.integers(0, n, size=(stop - start, n))].mean(axis=-1)
    return reps


def percentile_ci(replicates: np.ndarray, ci: float = 0.95) -> tuple[float, float]:
    """Equal-tailed percentile interval of bootstrap replicates."""
    tail = (1 - ci) / 2
    lo, hi = np.quantile(replicates, [tail, 1 - tail])
    return float(lo), float(hi)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], n_resamples: int = 10_000,
                     seed: int | Sequence[int] = 0, stat: Callable[..., Any] = np.mean,
                     ci: float = 0.95) -> dict[str, Any]:
    """Paired percentile bootstrap of ``stat(b) - stat(a)`` over the same items.

    Args:
        a: Per-item outcomes of run A (0/1 or floats).
        b: Per-item outcomes of run B, aligned with ``a`` item by item.
        n_resamples: Number of bootstrap replicates.
        seed: Seed of the resampling; the same seed gives the same interval.
        stat: Statistic, called as ``stat(x, axis=-1)`` (``np.mean``, ``np.median``...).
        ci: Coverage of the interval.

    Returns:
        ``{"diff", "ci": [lo, hi], "n", "n_resamples", "level"}``; ``diff`` and
        ``ci`` are ``None`` when there are no pairs.
    """
    x, _ = _as_pair(a, b)
    if x.size == 0:
        return {"diff": None, "ci": None, "n": 0, "n_resamples": n_resamples, "level": ci}
    point, reps = bootstrap_diffs(a, b, n_resamples, seed, stat)
    return {"diff": point, "ci": list(percentile_ci(reps, ci)), "n": int(x.size),
            "n_resamples": n_resamples, "level": ci}


def mcnemar_exact(b01: int, b10: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pair counts.

    Under the null each discordant pair goes either way with probability 1/2,
    so the p-value is ``min(1, 2 * P[Binom(b01 + b10, 1/2) <= min(b01, b10)])``.
    Computed with exact integers (no scipy, no underflow of the binomial terms).

    Args:
        b01: Pairs where the first run failed and the second succeeded.
        b10: Pairs where the first run succeeded and the second failed.

    Returns:
        The p-value; 1.0 when there are no discordant pairs.
    """
    if b01 < 0 or b10 < 0:
        raise ValueError("discordant counts must be >= 0")
    n, k = b01 + b10, min(b01, b10)
    if n == 0:
        return 1.0
    term, tail = 1, 0
    for i in range(k + 1):
        tail += term
        term = term * (n - i) // (i + 1)
    return min(1.0, 2 * tail / 2**n)


# ---- judge error ---------------------------------------------------------------------

def rogan_gladen(p_obs: float, sensitivity: float, specificity: float, n: int | None = None,
                 n_pos: int | None = None, n_neg: int | None = None, n_resamples: int = 10_000,
                 seed: int = 0, ci: float = 0.95) -> dict[str, Any]:
    """Prevalence corrected for an imperfect judge (Rogan & Gladen, 1978).

    ``prevalence = (p_obs + Sp - 1) / (Se + Sp - 1)``, clipped to [0, 1].

    The interval is a parametric bootstrap that carries all three sources of
    error: each replicate redraws the observed rate as ``Binom(n, p_obs) / n``,
    the sensitivity as ``Binom(n_pos, Se) / n_pos`` and the specificity as
    ``Binom(n_neg, Sp) / n_neg`` (the counts of human-unsafe and human-safe items
    the judge was validated on), corrects and clips it; the interval is the
    equal-tailed percentile range. A count left ``None`` treats that quantity as
    known exactly. Replicates where the redrawn judge is no better than chance
    (``Se + Sp <= 1``) say nothing about prevalence: they count as 0 for the
    lower bound and 1 for the upper bound, so a weak judge widens the interval
    instead of being silently dropped.

    Args:
        p_obs: Observed rate of "unsafe" verdicts (e.g. the judge's ASR).
        sensitivity: P(judge says unsafe | truly unsafe).
        specificity: P(judge says safe | truly safe).
        n: Number of items behind ``p_obs``.
        n_pos: Number of truly unsafe items behind ``sensitivity``.
        n_neg: Number of truly safe items behind ``specificity``.
        n_resamples: Bootstrap replicates.
        seed: Seed of the bootstrap.
        ci: Coverage of the interval.

    Returns:
        ``{"prevalence", "ci": [lo, hi] | None, "youden", "method"}``;
        ``prevalence`` is ``None`` when ``Se + Sp <= 1``; ``ci`` is ``None``
        when no count is given (nothing to resample).
    """
    youden = sensitivity + specificity - 1
    out: dict[str, Any] = {"prevalence": None, "ci": None, "youden": youden,
                           "method": "Rogan-Gladen, parametric bootstrap over observed rate, Se and Sp"}
    if youden > 0:
        out["prevalence"] = _clip01((p_obs + specificity - 1) / youden)
    if n is None and n_pos is None and n_neg is None:
        return out
    rng = np.random.default_rng(seed)
    p = _redraw(rng, p_obs, n, n_resamples)
    se = _redraw(rng, sensitivity, n_pos, n_resamples)
    sp = _redraw(rng, specificity, n_neg, n_resamples)
    j = se + sp - 1
    informative = j > 0
    corrected = np.clip((p + sp - 1) / np.where(informative, j, 1.0), 0.0, 1.0)
    tail = (1 - ci) / 2
    lo = np.quantile(np.where(informative, corrected, 0.0), tail)
    hi = np.quantile(np.where(informative, corrected, 1.0), 1 - tail)
    out["ci"] = [float(lo), float(hi)]
    return out


def _redraw(rng: np.random.Generator, rate: float, count: int | None, size: int) -> np.ndarray:
    if not count:
        return np.full(size, float(rate))
    return rng.binomial(count, min(1.0, max(0.0, rate)), size=size) / count


def _clip01(x: float) -> float:
    return min(1.0, max(0.0, float(x)))


# ---- agreement -----------------------------------------------------------------------

def confusion_matrix(truth: Sequence[Hashable], pred: Sequence[Hashable],
                     labels: Sequence[Hashable] | None = None) -> list[list[int]]:
    """Counts ``m[i][j]`` of items with true label ``labels[i]`` and predicted ``labels[j]``.

    Args:
        truth: Reference labels (rows).
        pred: Predicted labels (columns), aligned with ``truth``.
        labels: Row/column order; default the sorted union of both.
    """
    if len(truth) != len(pred):
        raise ValueError("truth and pred must have the same length")
    order = list(labels) if labels is not None else sorted(set(truth) | set(pred), key=str)
    pos = {lab: i for i, lab in enumerate(order)}
    m = [[0] * len(order) for _ in order]
    for t, p in zip(truth, pred):
        if t in pos and p in pos:
            m[pos[t]][pos[p]] += 1
    return m


def kappa_from_matrix(matrix: Sequence[Sequence[int]]) -> float | None:
    """Cohen's kappa of a square confusion matrix; ``None`` when undefined.

    Kappa is undefined (0/0) when chance agreement is 1, i.e. both raters used
    one and the same label for every item.
    """
    m = np.asarray(matrix, dtype=float)
    total = m.sum()
    if total == 0:
        return None
    po = np.trace(m) / total
    pe = float((m.sum(axis=0) * m.sum(axis=1)).sum() / total**2)
    if pe >= 1.0:
        return None
    return float((po - pe) / (1 - pe))


def cohen_kappa(truth: Sequence[Hashable], pred: Sequence[Hashable],
                labels: Sequence[Hashable] | None = None) -> float | None:
    """Cohen's kappa between two label sequences (``None`` when undefined)."""
    return kappa_from_matrix(confusion_matrix(truth, pred, labels))


def binary_counts(truth: Sequence[Hashable], pred: Sequence[Hashable], positive: Hashable) -> dict[str, int]:
    """``{tp, fp, tn, fn}`` with ``positive`` as the positive class."""
    tp = fp = tn = fn = 0
    for t, p in zip(truth, pred, strict=True):
        if p == positive:
            tp, fp = (tp + 1, fp) if t == positive else (tp, fp + 1)
        else:
            fn, tn = (fn + 1, tn) if t == positive else (fn, tn + 1)
    return {"tp": tp, "fp": fp, "tn": tn, "fn": fn}


def sensitivity_specificity(tp: int, fp: int, tn: int, fn: int) -> tuple[float | None, float | None]:
    """``(tp / (tp + fn), tn / (tn + fp))``; ``None`` where a class is absent."""
    se = tp / (tp + fn) if tp + fn else None
    sp = tn / (tn + fp) if tn + fp else None
    return se, sp


# ---- correlation ---------------------------------------------------------------------

def point_biserial(lengths: Sequence[float], binary: Sequence[float]) -> float | None:
    """Point-biserial correlation (Pearson r between a variable and a 0/1 one).

    Returns:
        r in [-1, 1]; ``None`` with fewer than 2 items or when either side is constant.
    """
    x, y = _as_pair(lengths, binary)
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    xc, yc = x - x.mean(), y - y.mean()
    r = float((xc * yc).sum() / np.sqrt((xc * xc).sum() * (yc * yc).sum()))
    return max(-1.0, min(1.0, r))
