"""Issue 21 items 2-4: no rating is lost, pseudonyms protect, scans are served losslessly."""

from __future__ import annotations

import base64
import errno
import io
import json
import os
import re
import stat

import numpy as np
import pytest
from gradio_client import Client
from PIL import Image

from medicraft_hf.cli import main
from medicraft_hf.review import store as store_module
from medicraft_hf.review.app import launch_review_app
from medicraft_hf.review.session import ReviewRound
from medicraft_hf.review.store import RatingsStore, RatingsStoreError, reviewer_pseudonym
from tests.review_helpers import review_dataset


def _read_only(monkeypatch):
    """As on a read-only mount (the tests may run as root, who ignores file modes)."""
    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", kwargs.get("dir") or (args[2] if len(args) > 2 else None))

    monkeypatch.setattr(store_module.tempfile, "mkstemp", refuse)


MALFORMED = {"list.json": "[]", "empty.json": "{}", "broken.json": "{not json",
             "no_created_at.json": None, "maybe.json": None}


def _plant_malformed(store, reviewer, good):
    folder = store.directory / reviewer
    for name, text in MALFORMED.items():
        if text is None:
            row = dict(good)
            if name == "maybe.json":
                row["verdict"] = "maybe"
            else:
                row.pop("created_at")
            text = json.dumps(row)
        (folder / name).write_text(text)


def test_malformed_rating_files_are_named_and_skipped(tmp_path, capsys):
    review = ReviewRound(review_dataset(3), tmp_path / "ratings", round_name="r", anatomy_check=None)
    good, _ = review.record("ana", review.order(review.pseudonym("ana"))[0], "correct")
    _plant_malformed(review.store, good["reviewer"], good)
    assert [r["rating_id"] for r in review.store.ratings()] == [good["rating_id"]]
    assert sorted(os.path.basename(f) for f, _ in review.store.problems) == sorted(MALFORMED)
    why = {os.path.basename(f): w for f, w in review.store.problems}
    assert "unknown verdict 'maybe'" in why["maybe.json"] and "created_at" in why["no_created_at.json"]

    out = tmp_path / "report"
    assert main(["review-report", "--ratings", str(tmp_path / "ratings"), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert all(f"{name}: not a rating" in err for name in MALFORMED) and "Traceback" not in err
    md = (out / "report.md").read_text()
    assert "## Skipped files" in md and "maybe.json" in md
    assert len(json.loads((out / "report.json").read_text())["skipped_files"]) == len(MALFORMED)


def test_files_honour_the_umask(tmp_path):
    old = os.umask(0o002)  # a group-shared store
    try:
        review = ReviewRound(review_dataset(2), tmp_path / "ratings", round_name="r", anatomy_check=None)
        rating, _ = review.record("ana", "syn-0000", "correct")
    finally:
        os.umask(old)
    path = review.store.path_of(rating["rating_id"], rating["reviewer"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o664
    assert stat.S_IMODE(review.manifest_path.stat().st_mode) == 0o664
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o775


def test_an_unwritable_store_is_refused_at_start(tmp_path, monkeypatch, capsys):

    _read_only(monkeypatch)
    with pytest.raises(RatingsStoreError, match=r"cannot be written \(Read-only file system\)"):
        ReviewRound(review_dataset(2), tmp_path / "ratings", anatomy_check=None)
    assert main(["review", str(tmp_path / "any-dataset"), "--ratings", str(tmp_path / "ratings")]) == 2
    err = capsys.readouterr().err
    assert "cannot be written (Read-only file system)" in err and "Traceback" not in err


def test_report_into_an_unwritable_folder_is_one_line(tmp_path, monkeypatch, capsys):
    store = RatingsStore(tmp_path / "ratings")
    ReviewRound(review_dataset(2), store, anatomy_check=None).record("ana", "syn-0000", "correct")

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("tempfile.TemporaryFile", refuse)
    assert main(["review-report", "--ratings", str(tmp_path / "ratings"), "--out", str(tmp_path / "ro")]) == 2
    err = capsys.readouterr().err
    assert "Cannot write the report into --out" in err and "Permission denied" in err and "Traceback" not in err


def test_pseudonyms_protect(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDICRAFT_REVIEW_SALT", raising=False)
    a, b = RatingsStore(tmp_path / "a"), RatingsStore(tmp_path / "b")
    # A per-deployment secret, created on first use: 64 random hex digits, never a public default.
    assert re.fullmatch(r"[0-9a-f]{64}", a.salt) and a.salt != b.salt
    assert RatingsStore(tmp_path / "a").salt == a.salt  # stable for the deployment
    assert a.pseudonym("Jan") != b.pseudonym("Jan") and a.pseudonym("Jan") == a.pseudonym(" jan ")
    with pytest.raises(ValueError, match="salt"):
        reviewer_pseudonym("jan", "")
    # A name shaped like a pseudonym is hashed too: it never reaches the store as typed ...
    review = ReviewRound(review_dataset(2), a, anatomy_check=None)
    rating, _ = review.record("r-jan.kowalski", "syn-0000", "correct")
    assert rating["reviewer"] != "r-jan.kowalski" and re.fullmatch(r"r-[0-9a-f]{12}", rating["reviewer"])
    stored = "".join(p.read_text() for p in a.directory.rglob("*.json"))
    assert "kowalski" not in stored
    # ... and typing another reviewer's pseudonym rates as somebody else.
    assert review.pseudonym(rating["reviewer"]) != rating["reviewer"]
    # A salt given by the deployment (a Space secret) is used as is.
    monkeypatch.setenv("MEDICRAFT_REVIEW_SALT", "s" * 32)
    assert RatingsStore(tmp_path / "c").pseudonym("jan") == reviewer_pseudonym("jan", "s" * 32)
    assert not (tmp_path / "c" / ".salt").exists()


def _decode_scan(html):
    data = re.search(r'src="data:image/png;base64,([^"]+)"', html).group(1)
    return Image.open(io.BytesIO(base64.b64decode(data)))


def test_the_app_serves_every_source_pixel_saves_visibly_and_retries(tmp_path, monkeypatch):
    real = review_dataset(4, source="real", prefix="real", size=(64, 128), seed=3)
    review = ReviewRound(review_dataset(4, size=(48, 96)), tmp_path / "ratings", real=real, round_name="r",
                         anatomy_check=None)
    blocks, _ = launch_review_app(review, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(blocks.local_url, verbose=False)
        scan, image_id, shown_at, progress, status, *_ = client.predict("ana", api_name="/start")
        reviewer = review.pseudonym("ana")
        served = _decode_scan(scan)
        # Lossless, at the scan's own size: every pixel the reviewer judges is the source's.
        assert served.format == "PNG" and served.size == review.image(review.items[image_id]).size
        assert np.array_equal(np.asarray(served), np.asarray(review.image(review.items[image_id])))
        for item in review.items.values():  # real scans too (shown at the generated size, as the blinding needs)
            assert np.array_equal(np.asarray(_decode_scan(
                __import__("medicraft_hf.review.app", fromlist=["scan_html"]).scan_html(review.image(item)))),
                np.asarray(review.image(item)))

        # A save that fails says so and what failed; the scan stays; the same verdict retried is stored.
        with monkeypatch.context() as m:
            _read_only(m)
            out = client.predict(image_id, "real", "", shown_at, "", api_name="/rate_correct")
        assert out[4].startswith("⚠ **Not saved**") and "Read-only file system" in out[4]
        assert review.store.ratings() == []
        out = client.predict(image_id, "real", "", shown_at, "", api_name="/rate_correct")
        assert out[4].startswith("Saved: Anatomically correct") and out[1] != image_id
        [rating] = review.store.ratings()
        assert (rating["image_id"], rating["reviewer"], rating["truth"]) == (
            image_id, reviewer, review.items[image_id].ref["truth"])

        # U shows the earlier answer and verdict, even with a malformed file in the store.
        (review.store.directory / reviewer / "junk.json").write_text("[]")
        back = client.predict(out[1], api_name="/previous")
        assert back[1] == image_id and back[5] == "real"
        assert "your verdict was **Anatomically correct**, your answer **real**" in back[3]
        assert "junk.json" in back[4]
    finally:
        blocks.close()


def test_login_decides_who_rates(tmp_path):
    review = ReviewRound(review_dataset(2), tmp_path / "ratings", round_name="r", anatomy_check=None)
    blocks, _ = launch_review_app(review, prevent_thread_lock=True, quiet=True, auth=[("ana", "pw-ana")])
    try:
        client = Client(blocks.local_url, verbose=False, auth=("ana", "pw-ana"))
        status = client.predict("somebody-else", api_name="/start")[4]  # the typed name is ignored
        assert f"`{review.pseudonym('ana')}`" in status
        with pytest.raises(Exception, match="(?i)login|credentials|401|auth"):  # noqa: B017 (gradio_client's own error type)
            Client(blocks.local_url, verbose=False, auth=("ana", "wrong"))
    finally:
        blocks.close()
    from medicraft_hf.review.app import build_review_blocks

    with pytest.raises(ValueError, match="identity"):
        build_review_blocks(review, identity="anyone")


def test_hugging_face_login_builds(tmp_path):
    from medicraft_hf.review.app import build_review_blocks

    pytest.importorskip("itsdangerous", reason="Hugging Face OAuth needs gradio[oauth]")
    review = ReviewRound(review_dataset(2), tmp_path / "ratings", round_name="r", anatomy_check=None)
    build_review_blocks(review, identity="oauth")  # the Space's Hugging Face login builds


def test_uncertain_first_order_shows_the_least_confident_anatomy_verdicts_first(tmp_path):
    from medicraft_hf.data.phantom import phantom_bscan
    from medicraft_hf.data.phantom_styles import render_style_bscan
    from medicraft_hf.evaluation.anatomy import check_anatomy

    # Scans the check is sure of (noise: corrupted; clean phantoms: ok) and shallow pits near a boundary.
    images = [phantom_bscan("healthy", seed=s, size=(64, 128))[0] for s in (1, 2)]
    images += [render_style_bscan("mid_contrast", "hypoplastic_fovea", (64, 128), seed=s)[0] for s in (3, 4)]
    images += [np.random.default_rng(s).integers(0, 256, (64, 128), dtype=np.uint8) for s in (5, 6)]
    dataset = review_dataset(6, size=(64, 128))
    dataset = dataset.map(lambda row, i: {"image": Image.fromarray(np.asarray(images[i]))}, with_indices=True,
                          features=dataset.features)
    confidence = {row["image_id"]: check_anatomy(row["image"]).confidence for row in dataset}
    assert len(set(confidence.values())) > 2  # the order below is decided by the check, not by ties

    review = ReviewRound(dataset, tmp_path / "ratings", round_name="r", order="uncertain-first")
    order = review.order("reviewer-a")
    assert [confidence[i] for i in order] == sorted(confidence.values())
    restarted = ReviewRound(dataset, tmp_path / "ratings", round_name="r", order="uncertain-first")
    assert restarted.order("reviewer-a") == order

    with pytest.raises(ValueError, match="blinded round"):
        ReviewRound(dataset, tmp_path / "ratings", round_name="r2", real=review_dataset(2, source="real", prefix="real"),
                    order="uncertain-first")
    with pytest.raises(ValueError, match="Unknown review order"):
        ReviewRound(dataset, tmp_path / "ratings", round_name="r3", order="by-label")
