"""The statistics of a review round: proportions with Wilson intervals, Cohen's and Fleiss' kappa.

Thin wrappers over statsmodels and scikit-learn. They add what a report needs and the
libraries leave undefined or approximate: `None` for "no data", kappa 1.0 when every
rater used one and the same label (the libraries return NaN and warn), and interval ends
that are exactly 0 or 1 when the rate is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import norm
from sklearn.metrics import cohen_kappa_score, confusion_matrix
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as _fleiss_kappa
from statsmodels.stats.proportion import proportion_confint

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (sensible for small n and rates near 0 or 1)."""
    if n == 0:
        return None
    low, high = proportion_confint(successes, n, alpha=2 * norm.sf(z), method="wilson")
    # statsmodels lands a rounding error away from the exact ends (1.7e-18, 0.9999999999999999).
    low = 0.0 if successes == 0 else max(0.0, float(low))
    high = 1.0 if successes == n else min(1.0, float(high))
    return (low, high)


def proportion(successes: int, n: int) -> dict:
    """A proportion as the report stores it: counts, rate and its 95% Wilson interval."""
    successes, n = int(successes), int(n)  # plain ints (not numpy), so the JSON stays plain
    ci = wilson_interval(successes, n)
    return {"n": n, "successes": successes, "rate": successes / n if n else None,
            "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None}


def cohen_kappa(a, b, labels=None) -> float | None:
    """Cohen's kappa of two raters; None when undefined (no items), 1.0 when both agree on one label."""
    a, b = list(a), list(b)
    if not a:
        return None
    if len(set(a) | set(b)) == 1:  # both raters used one and the same label throughout
        return 1.0
    return float(cohen_kappa_score(a, b, labels=list(labels) if labels is not None else None))


def fleiss_kappa(counts) -> float | None:
    """Fleiss' kappa from an items x categories table of rating counts (same raters per item)."""
    counts = np.asarray(counts, dtype=float)
    if counts.size == 0:
        return None
    m = counts.sum(1)
    # statsmodels only asserts this; a report wants a clear message.
    if not np.all(m == m[0]) or m[0] < 2:
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of ratings per item.")
    if np.count_nonzero(counts.sum(0)) == 1:  # every rating in one category: chance agreement is 1
        return 1.0
    return float(_fleiss_kappa(counts, method="fleiss"))


def rating_counts(ratings: Sequence[Sequence], categories: Sequence) -> np.ndarray:
    """Items x raters labels -> the items x categories count table Fleiss' kappa reads."""
    if len(ratings) == 0:
        return np.zeros((0, len(categories)), dtype=int)
    index = {c: i for i, c in enumerate(categories)}
    codes = np.array([[index[x] for x in item] for item in ratings], dtype=int)
    return aggregate_raters(codes, n_cat=len(categories))[0]


def confusion_counts(truth: Sequence, predicted: Sequence, labels: Sequence) -> np.ndarray:
    """Confusion matrix over `labels` (rows: `truth`, columns: `predicted`)."""
    return confusion_matrix(list(truth), list(predicted), labels=list(labels))


def one_vs_rest(matrix: np.ndarray, i: int) -> dict:
    """Counts, recall and precision of label `i` against all others, from a confusion matrix."""
    tp = int(matrix[i, i])
    fp, fn = int(matrix[:, i].sum()) - tp, int(matrix[i, :].sum()) - tp
    return {"tp": tp, "fp": fp, "fn": fn, "tn": int(matrix.sum()) - tp - fp - fn,
            "recall": tp / (tp + fn) if tp + fn else None,
            "precision": tp / (tp + fp) if tp + fp else None}
