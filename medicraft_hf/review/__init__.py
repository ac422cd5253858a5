"""Expert review rounds: clinicians rate generated scans, the ratings steer the next model.

- `verdicts`: the verdict vocabulary, aligned with the automatic anatomy check.
- `store`: ratings as data (one atomic JSON file per rating, exposed as a `datasets.Dataset`).
- `session`: what a reviewer sees next (seeded order per reviewer, blinded real/synthetic mix).
- `app`: the Gradio review app (one scan, one click or one key per verdict).
- `report`: a round's numbers (correctness rates, Turing test, agreement), PNG + markdown.
- `calibrate`: the anatomy-score threshold that matches the experts, and the card section.
"""
