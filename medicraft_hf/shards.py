"""Parquet shards of a long job's finished rows: written atomically, they are the job's state.

A shard appears under its final name only once it is complete (tmp file + rename), so
after a crash, even a SIGKILL, every shard on disk is whole and the rows they hold are
exactly the work that is done. A restart reads their `index` column to skip that work;
nothing else needs to stay in sync with them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Dataset, Features

from medicraft_hf.io import atomic_path

INDEX_COLUMN = "index"


class ShardStore:
    """A folder of `shard-<first index>.parquet` files whose rows carry an `index` column."""

    def __init__(self, directory: str | os.PathLike, features: Features):
        if INDEX_COLUMN not in features:
            raise ValueError(f"Shard features need an {INDEX_COLUMN!r} column, got {list(features)}.")
        self.directory = Path(directory)
        self.features = features

    def files(self) -> list[Path]:
        return sorted(self.directory.glob("shard-*.parquet"))

    def write(self, rows: Sequence[dict]) -> Path:
        """Write rows (in `features`, images as PIL/bytes/paths) as one new shard, atomically."""
        if not rows:
            raise ValueError("No rows to write.")
        first = min(int(row[INDEX_COLUMN]) for row in rows)
        path = self.directory / f"shard-{first:09d}.parquet"
        if path.exists():  # indices are disjoint by construction; a clash is a bug, never overwrite
            raise FileExistsError(f"{path} already exists: two writers produced image {first}.")
        encoded = [self.features.encode_example(row) for row in rows]
        table = pa.Table.from_pylist(encoded, schema=self.features.arrow_schema)
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        return path

    def read_columns(self, columns: Sequence[str]) -> dict[str, list]:
        """Small columns of every shard (never the images), concatenated in file order."""
        out: dict[str, list] = {name: [] for name in columns}
        for path in self.files():
            table = pq.read_table(path, columns=list(columns))
            for name in columns:
                out[name] += table.column(name).to_pylist()
        return out

    def load(self, cache_dir: str | os.PathLike) -> Dataset:
        """Every shard as one memory-mapped `Dataset` (an arrow cache on disk, not in RAM)."""
        files = [str(path) for path in self.files()]
        if not files:
            raise FileNotFoundError(f"No shards in {self.directory}.")
        return Dataset.from_parquet(files, features=self.features, cache_dir=str(cache_dir))
