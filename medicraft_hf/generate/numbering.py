"""Which images a run makes: global indices, per-image seeds, blocks of work.

The k-th image of class c has the global index `k * C + c` (C classes): the index alone
tells the class, and a run asking for more images of a class contains the images of a
run asking for fewer. Image i is sampled with its own generator seeded with
`image_seed(seed, i)`, so no image depends on which others share its batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence


def image_index(class_id: int, k: int, num_classes: int) -> int:
    """Global index of the k-th image of class `class_id`."""
    return k * num_classes + class_id


def image_seed(seed: int, index: int) -> int:
    """The seed of image `index` of a run with base `seed` (63 bits, fits the int64 column)."""
    digest = hashlib.sha256(f"medicraft-generate/{int(seed)}/{int(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def plan_indices(counts: Mapping[str, int], class_names: Sequence[str]) -> list[int]:
    """Sorted global indices of the first `counts[name]` images of each class."""
    class_names = list(class_names)
    return sorted(
        image_index(class_names.index(name), k, len(class_names)) for name, n in counts.items() for k in range(n)
    )


def blocks(indices: Sequence[int], batch_size: int) -> list[list[int]]:
    """Consecutive blocks of at most `batch_size` indices: one pipeline call each."""
    return [list(indices[i : i + batch_size]) for i in range(0, len(indices), batch_size)]
