"""The anatomy filter: keep only generated images that pass a plausibility check.

Images that fail are replaced by more candidates of the same class, in rounds planned
from the results alone (`plan_next_round`), so every process and every restart agrees.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from medicraft_hf.errors import ArgumentError
from medicraft_hf.sampling_defaults import DEFAULT_ANATOMY_THRESHOLD

# Give up on a class after this many candidates per image asked for.
MAX_CANDIDATES_PER_IMAGE = 10


@dataclass(frozen=True)
class AnatomyFilter:
    """Keep an image when `check(image).score >= threshold`.

    `check` defaults to `medicraft_hf.evaluation.anatomy.check_anatomy`; any function
    returning an object with `verdict` and `score` (in [0, 1]) works, e.g. a site's own QC.
    A threshold calibrated on experts' ratings comes from
    `medicraft_hf.review.calibrate.load_calibration(path)["threshold"]`.
    """

    threshold: float = DEFAULT_ANATOMY_THRESHOLD
    check: Callable | None = None

    def __post_init__(self):
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) \
                or not 0.0 <= float(self.threshold) <= 1.0:
            raise ArgumentError("anatomy_threshold", "{argument} must be in [0, 1] (the anatomy score range), "
                                                     f"got {self.threshold!r}.")

    def judge(self, row: dict) -> None:
        """Add `accepted`, `anatomy_verdict` and `anatomy_score` to a row."""
        annotate_anatomy(row, self.check)
        row["accepted"] = bool(row["anatomy_score"] >= self.threshold)


def annotate_anatomy(row: dict, check: Callable | None = None) -> dict:
    """Add the anatomy check's `anatomy_verdict` and `anatomy_score` to a generated row."""
    if check is None:
        from medicraft_hf.evaluation.anatomy import check_anatomy as check
    result = check(row["image"])
    row.update(anatomy_verdict=result.verdict, anatomy_score=float(result.score))
    return row


def plan_next_round(counts_by_id: Mapping[int, int], planned: dict[int, int],
                    accepted: Mapping[int, int]) -> dict[int, int] | None:
    """Candidates per class for the next round: more where too few passed the filter.

    A function of the results alone, so every process and every restart plans the same.
    It over-plans a little (observed pass rate, +25%): surplus passing images are left
    out (the first ones in index order are kept), which costs compute but never changes
    the dataset. None when a class still falls short after its last allowed candidate.
    """
    new = dict(planned)
    for c, want in counts_by_id.items():
        need = want - accepted.get(c, 0)
        if need <= 0:
            continue
        limit = MAX_CANDIDATES_PER_IMAGE * want
        if planned[c] >= limit:
            return None
        extra = math.ceil(need * planned[c] * 1.25 / max(accepted.get(c, 0), 1))
        new[c] = planned[c] + min(max(extra, need), limit - planned[c])
    return new
