"""The import rules of docs/architecture.md, checked in clean interpreters."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def modules_after_import(*names: str) -> set[str]:
    code = f"import json, sys\nfor n in {list(names)!r}: __import__(n)\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_generation_imports_neither_review_nor_the_cli():
    loaded = modules_after_import("medicraft_hf.generate")
    above = sorted(m for m in loaded if m.startswith(("medicraft_hf.review", "medicraft_hf.cli",
                                                      "medicraft_hf.commands")))
    assert above == []


def test_cli_and_plain_modules_load_no_torch():
    loaded = modules_after_import("medicraft_hf.cli", "medicraft_hf.sampling_defaults", "medicraft_hf.errors",
                                  "medicraft_hf.parsing", "medicraft_hf.sources")
    assert not {"torch", "diffusers", "transformers"} & loaded
    # Every command is registered explicitly, and each imports its library code lazily.
    from medicraft_hf import cli

    commands = sorted(p.stem.replace("_", "-") for p in (ROOT / "medicraft_hf" / "commands").glob("*.py")
                      if not p.stem.startswith("_"))
    assert sorted(cli.COMMANDS) == commands


def test_pipeline_file_imports_only_torch_and_diffusers():
    """It is copied beside every model; plain diffusers must load it without medicraft_hf."""
    tree = ast.parse((ROOT / "medicraft_hf" / "pipeline.py").read_text())
    allowed = {"__future__", "contextlib", "json", "math", "os", "shutil", "threading", "concurrent", "dataclasses",
               "typing", "inspect", "numpy", "PIL", "torch", "diffusers"}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            assert all(n.split(".")[0] in allowed for n in names), names
        if isinstance(node, ast.Try):  # the one guarded import, with a fallback
            (imp,) = node.body
            assert imp.module == "medicraft_hf.errors" and node.handlers[0].type.id == "ImportError"
