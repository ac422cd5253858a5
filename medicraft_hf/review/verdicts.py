"""The verdict vocabulary of an expert review, aligned with the automatic anatomy check.

The failure names are those the original study's medical team used (doubled fovea, absent
fovea, hypoplastic fovea, corrupted image). The automatic check
(`medicraft_hf.evaluation.anatomy.ANATOMY_VERDICTS`) uses the same names, with "ok" for
"correct"; experts can also say "other" (with a comment), which the check never says.
"""

from __future__ import annotations

# Order matters: it is the order of the buttons and of the keys 1-6 in the review app.
VERDICTS: tuple[str, ...] = ("correct", "doubled_fovea", "no_fovea", "hypoplastic_fovea", "corrupted", "other")
FAILURES: tuple[str, ...] = VERDICTS[1:]

VERDICT_LABELS: dict[str, str] = {
    "correct": "Anatomically correct",
    "doubled_fovea": "Doubled fovea",
    "no_fovea": "No fovea",
    "hypoplastic_fovea": "Hypoplastic fovea",
    "corrupted": "Corrupted image",
    "other": "Other (comment)",
}

# Answers to the blinded "real or synthetic?" question (the visual Turing test).
ORIGINS: tuple[str, ...] = ("real", "synthetic")

# The anatomy check says "ok" where an expert says "correct"; other names are shared.
_ANATOMY_ALIASES = {"ok": "correct"}


def normalize_verdict(verdict: str) -> str:
    """A verdict in this vocabulary; accepts the anatomy check's names ("ok" -> "correct")."""
    name = str(verdict).strip().lower().replace(" ", "_").replace("-", "_")
    name = _ANATOMY_ALIASES.get(name, name)
    if name not in VERDICTS:
        raise ValueError(f"Unknown verdict {verdict!r}; use one of {list(VERDICTS)} (or the anatomy check's 'ok').")
    return name


def normalize_origin(guess: str | None) -> str | None:
    """'real' / 'synthetic' / None (no answer); accepts the schema's 'phantom' as synthetic."""
    if guess is None or str(guess).strip() == "":
        return None
    name = str(guess).strip().lower()
    if name in ("phantom", "generated", "fake"):
        name = "synthetic"
    if name not in ORIGINS:
        raise ValueError(f"Unknown answer {guess!r} to 'real or synthetic?'; use one of {list(ORIGINS)}.")
    return name


def origin_of_source(source: str | None) -> str:
    """The true answer to 'real or synthetic?' for a row's schema `source`."""
    return "real" if source == "real" else "synthetic"
