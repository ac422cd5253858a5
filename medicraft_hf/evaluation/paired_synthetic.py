"""Paired comparison of two synthetic sets made with the same seeds (e.g. a distilled model
against its teacher, a fast sampler against 1000-step DDPM): image i of one set and image i of
the other start from the same noise, so their difference is measured image pair by image pair.

Each evaluation saves a per-image record of its synthetic set (`SYNTHETIC_FILE`): the
per-image seed and class, its features and prediction under the real-trained classifier
(TRTR, first seed), and its anatomy verdict, beside the real training features that FID, KID
and precision/recall are measured against. `compare_synthetic` pairs two records by (seed,
class) and bootstraps over the pairs (the real side held fixed, as both sides share it):

- class fidelity (TRTS: the real classifier assigns the requested class), overall and per class;
- the anatomy check's "ok" rate;
- FID, KID, precision and recall against the real training features.

Differences are this set minus the other, with 95% percentile intervals. In a replicate a
pair drawn twice counts twice, except that KID leaves out the kernel of an image with its own
copy (the unbiased estimator's diagonal) and recall keeps each image's k-NN radius from the
full set (duplicates would shrink it to zero).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medicraft_hf.evaluation.fidelity import PR_K, _kth_neighbour_radii, _pairwise, frechet_distance
from medicraft_hf.evaluation.uncertainty import _interval
from medicraft_hf.io import atomic_path

SYNTHETIC_FILE = "synthetic_record.npz"
_KERNEL = "cubic polynomial (x.y / d + 1)^3"


def save_synthetic_record(out_dir, *, seeds, labels, predicted, features, anatomy_ok, train_features,
                          class_names) -> dict:
    """Write the per-image record of an evaluated synthetic set (arrays in the same order) and
    return it as `load_synthetic_record` would read it back."""
    record = {"seeds": np.asarray(seeds, np.int64), "labels": np.asarray(labels, np.int64),
              "predicted": np.asarray(predicted, np.int64), "features": np.asarray(features, np.float32),
              "anatomy_ok": np.asarray([np.nan if ok is None else float(ok) for ok in anatomy_ok]),
              "train_features": np.asarray(train_features, np.float32), "class_names": np.asarray(class_names)}
    with atomic_path(Path(out_dir) / SYNTHETIC_FILE) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **record)
    return record


def load_synthetic_record(report_dir) -> dict:
    path = Path(report_dir) / SYNTHETIC_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No {SYNTHETIC_FILE} in {report_dir}: evaluate that synthetic set again with this "
                                "version of `medicraft evaluate` to compare synthetic sets image by image.")
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def pair(ours: dict, theirs: dict) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j) such that ours[i] and theirs[j] have the same seed and class (each used once)."""
    if list(ours["class_names"]) != list(theirs["class_names"]):
        raise ValueError(f"The two synthetic sets have other classes: {list(ours['class_names'])} vs "
                         f"{list(theirs['class_names'])}.")
    if ours["train_features"].shape != theirs["train_features"].shape or not np.allclose(
            ours["train_features"], theirs["train_features"], atol=1e-4):
        raise ValueError("The two evaluations used different real-trained classifiers or real training scans "
                         "(their real training features differ): evaluate both with the same real data, "
                         "resolution and TRTR runs.")
    # Images sharing a seed and class (not made by `medicraft generate`) pair in their order.
    where: dict[tuple[int, int], list[int]] = {}
    for j, key in enumerate(zip(theirs["seeds"].tolist(), theirs["labels"].tolist())):
        where.setdefault(key, []).append(j)
    i, j = [], []
    for k, key in enumerate(zip(ours["seeds"].tolist(), ours["labels"].tolist())):
        if where.get(key):
            i.append(k)
            j.append(where[key].pop(0))
    if not i:
        raise ValueError("No image of one synthetic set has the seed and class of an image of the other: a paired "
                         "comparison needs sets generated with the same --seed and per-class counts.")
    return np.asarray(i), np.asarray(j)


class _Fidelity:
    """FID, KID, precision and recall of resamples of one synthetic feature set against fixed real ones."""

    def __init__(self, real: np.ndarray, synthetic: np.ndarray, k: int = PR_K):
        real, synthetic = np.asarray(real, np.float64), np.asarray(synthetic, np.float64)
        self.real, self.synthetic = real, synthetic
        d = real.shape[1]
        kernel_rr = (real @ real.T / d + 1) ** 3
        m = len(real)
        self.kid_rr = (kernel_rr.sum() - np.trace(kernel_rr)) / (m * (m - 1))
        self.kernel_ss = (synthetic @ synthetic.T / d + 1) ** 3
        self.kernel_sr_mean = ((synthetic @ real.T / d + 1) ** 3).mean(axis=1)
        distances = _pairwise(synthetic, real)
        self.inside_real = (distances <= _kth_neighbour_radii(real, k)[None, :]).any(axis=1)
        self.covers = distances.T <= _kth_neighbour_radii(synthetic, k)[None, :]  # (real, synthetic)

    def __call__(self, idx: np.ndarray) -> dict[str, float]:
        block = self.kernel_ss[np.ix_(idx, idx)]
        other = idx[:, None] != idx[None, :]  # leave out each image's kernel with itself (and its copies)
        kid = self.kid_rr + block[other].mean() - 2 * self.kernel_sr_mean[idx].mean()
        return {"fid": frechet_distance(self.real, self.synthetic[idx]), "kid": float(kid),
                "precision": float(self.inside_real[idx].mean()),
                "recall": float(self.covers[:, idx].any(axis=1).mean())}


def _low_high(values) -> dict:
    interval = _interval(values)  # the evaluation's percentile interval (finite replicates only)
    return {"low": interval["low"], "high": interval["high"]}


def compare_synthetic(ours: dict, theirs: dict, *, n_boot: int = 1000, seed: int = 0) -> dict:
    """This synthetic set minus the other, image pair by image pair (see the module docstring)."""
    i, j = pair(ours, theirs)
    names = [str(n) for n in ours["class_names"]]
    labels = ours["labels"][i]
    sides = []
    for record, idx in ((ours, i), (theirs, j)):
        sides.append({"correct": (record["predicted"][idx] == record["labels"][idx]).astype(np.float64),
                      "anatomy_ok": record["anatomy_ok"][idx],
                      "fidelity": _Fidelity(record["train_features"], record["features"][idx])})

    def measures(side: dict, draw: np.ndarray) -> dict[str, float]:
        out = {"trts": float(side["correct"][draw].mean())}
        for c, name in enumerate(names):
            in_class = draw[labels[draw] == c]
            out[f"trts_{name}"] = float(side["correct"][in_class].mean()) if in_class.size else np.nan
        anatomy = side["anatomy_ok"][draw]
        out["anatomy_ok"] = float(np.nanmean(anatomy)) if np.isfinite(anatomy).any() else np.nan
        out.update(side["fidelity"](draw))
        return out

    everything = np.arange(len(i))
    point = [measures(side, everything) for side in sides]
    rng = np.random.default_rng(seed)
    replicates = []
    for _ in range(n_boot):
        draw = rng.integers(0, len(i), len(i))
        a, b = (measures(side, draw) for side in sides)
        replicates.append({key: a[key] - b[key] for key in a})
    result = {"method": f"paired bootstrap over {len(i)} image pairs of the same seed and class, real side fixed "
                        f"(95%; KID kernel {_KERNEL}; k={PR_K} for precision/recall)",
              "n_pairs": int(len(i)), "n_boot": n_boot,
              "unpaired": {"ours": int(len(ours["seeds"]) - len(i)), "theirs": int(len(theirs["seeds"]) - len(j))},
              "measures": {}}
    for key in point[0]:
        difference = point[0][key] - point[1][key]
        result["measures"][key] = {"ours": _none_if_nan(point[0][key]), "theirs": _none_if_nan(point[1][key]),
                                   "difference": _none_if_nan(difference),
                                   **_low_high([r[key] for r in replicates])}
    return result


def _none_if_nan(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def markdown_lines(comparison: dict, other: str) -> list[str]:
    def num(x):
        return "—" if x is None else f"{x:.3f}"

    out = [f"Synthetic sets image by image against `{other}` (this minus that): {comparison['method']}.", "",
           "| measure | this set | that set | difference [95% interval] |", "|---|---|---|---|"]
    for key, m in comparison["measures"].items():
        out.append(f"| {key} | {num(m['ours'])} | {num(m['theirs'])} | {num(m['difference'])} "
                   f"[{num(m['low'])}, {num(m['high'])}] |")
    return out + [""]
