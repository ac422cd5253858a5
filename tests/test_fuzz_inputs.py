"""Bounded fuzzing (seeded byte mutations of PNG, JPEG, TIFF 8/16-bit and DICOM): every file
ends as a row or a named problem, one by one and through the builder end to end.

The machinery is benchmarks/bench_fuzz_inputs.py, which runs it on thousands of files.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections import Counter
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_fuzz_inputs.py"


@pytest.fixture(scope="module")
def fuzz():
    spec = importlib.util.spec_from_file_location("bench_fuzz_inputs", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("seed", [1, 2])
def test_every_mutated_file_is_a_row_or_a_named_problem(fuzz, tmp_path, seed):
    corpus = fuzz.write_corpus(tmp_path / "in", 150, seed=seed)
    outcomes = Counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PIL and pydicom warn on damaged files
        for path, fmt, kind in corpus:
            outcome, detail = fuzz.judge(path)  # anything but InvalidImageError propagates and fails
            assert outcome in ("row", "problem"), (path.name, fmt, kind, detail)
            outcomes[outcome] += 1
        accounts = fuzz.build_accounts(tmp_path / "in", [p for p, _, _ in corpus])  # raises on a silent drop
    assert outcomes["row"] and outcomes["problem"], outcomes
    assert accounts["files"] == 150 and accounts["files_with_rows"] <= outcomes["row"]


def test_seed_files_are_rows(fuzz, tmp_path):
    for fmt in fuzz.FORMATS:
        path = tmp_path / f"healthy-s-1{fuzz.SUFFIX[fmt]}"
        path.write_bytes(fuzz.seed_bytes(fmt))
        assert fuzz.judge(path) == ("row", "2" if fmt == "dicom" else "1")
