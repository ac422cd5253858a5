"""What a generation job made: counts, settings, the anatomy filter's statistics, the push."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from medicraft_hf.generate.settings import GenerationSettings


@dataclass
class GenerationResult:
    out_dir: Path
    counts: dict[str, int]
    settings: GenerationSettings
    split: str = "train"
    anatomy_threshold: float | None = None
    candidates: dict[str, int] = field(default_factory=dict)  # images sampled per class
    rejected: dict[str, int] = field(default_factory=dict)  # of which failed the anatomy filter
    rejected_verdicts: dict[str, int] = field(default_factory=dict)
    pushed_commit: str | None = None

    @property
    def rejection_rate(self) -> float:
        total = sum(self.candidates.values())
        return sum(self.rejected.values()) / total if total else 0.0

    def statistics(self) -> dict:
        return {"candidates": self.candidates, "rejected": self.rejected, "rejected_verdicts": self.rejected_verdicts}

    def summary(self) -> str:
        lines = [f"{sum(self.counts.values())} synthetic images in {self.out_dir}: "
                 + ", ".join(f"{n} {name}" for name, n in self.counts.items())]
        if self.anatomy_threshold is not None:
            verdicts = ", ".join(f"{v}: {n}" for v, n in self.rejected_verdicts.items())
            lines.append(
                f"anatomy filter (score >= {self.anatomy_threshold:.3f}): rejected {sum(self.rejected.values())} of "
                f"{sum(self.candidates.values())} sampled images ({100 * self.rejection_rate:.1f}%)"
                + (f" — {verdicts}" if verdicts else "")
            )
        return "\n".join(lines)
