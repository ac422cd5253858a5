"""Expert review app as a Space (or `python space/review_app.py`): a thin launcher.

Configure with environment variables (Space settings -> Variables):
  MEDICRAFT_REVIEW_DATASET  dataset to rate (Hub dataset id or local folder), required
  MEDICRAFT_REVIEW_RATINGS  ratings folder (default: /data/ratings, the Space's persistent
                            storage, else ./ratings)
  MEDICRAFT_REVIEW_REAL     real dataset to mix in for a blinded round (optional)
  MEDICRAFT_REVIEW_ROUND    round name (default: round-1)
The same app runs locally with `medicraft review <dataset> --ratings DIR`.
"""

import os
from pathlib import Path

from medicraft_hf.review.app import build_review_blocks
from medicraft_hf.review.session import ReviewRound, load_review_dataset

_dataset = os.environ.get("MEDICRAFT_REVIEW_DATASET")
if not _dataset:
    raise SystemExit("Set MEDICRAFT_REVIEW_DATASET to the dataset to review (a Hub dataset id or a folder).")
_real = os.environ.get("MEDICRAFT_REVIEW_REAL")
_ratings = os.environ.get("MEDICRAFT_REVIEW_RATINGS") or ("/data/ratings" if Path("/data").is_dir() else "ratings")

review = ReviewRound(
    load_review_dataset(_dataset),
    _ratings,
    real=load_review_dataset(_real) if _real else None,
    dataset_name=_dataset,
    real_name=_real or "real",
    round_name=os.environ.get("MEDICRAFT_REVIEW_ROUND", "round-1"),
)
demo = build_review_blocks(review)

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=4).launch()
