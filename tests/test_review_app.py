"""The review app driven over HTTP by gradio_client: each rating lands exactly once."""

from __future__ import annotations

import threading

import pytest
from gradio_client import Client

from medicraft_hf.review.app import launch_review_app
from medicraft_hf.review.session import ReviewRound
from medicraft_hf.review.store import RatingsStore
from tests.review_helpers import review_dataset

N = 6


def _launch(review):
    blocks, _ = launch_review_app(review, port=None, prevent_thread_lock=True, quiet=True)
    return blocks, Client(blocks.local_url, verbose=False)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    store = RatingsStore(tmp_path_factory.mktemp("ratings"))
    review = ReviewRound(review_dataset(N), store, dataset_name="syn", round_name="r1", seed=7, anatomy_check=None)
    blocks, client = _launch(review)
    yield review, blocks, client
    blocks.close()


SCREEN = ("image", "image_id", "shown_at", "progress", "status", "guess", "comment", "correcting")


def _start(client, name):
    # Who rates is server-side session state set by Start; the status line names the pseudonym.
    image, image_id, shown_at, progress, status, *_ = client.predict(name, api_name="/start")
    reviewer = status.split("`")[1]
    return reviewer, image_id, shown_at, progress


def _rate(client, verdict, reviewer, image_id, guess=None, comment="", shown_at=0.0, correcting=""):
    # `reviewer` is not sent: the browser cannot say who rates (the session started by Start does).
    out = client.predict(image_id, guess, comment, shown_at, correcting, api_name=f"/rate_{verdict}")
    return dict(zip(SCREEN, out))


def _reviewer_ratings(store, reviewer):
    return [r for r in store.ratings() if r["reviewer"] == reviewer]


def test_rating_lands_once_and_the_next_image_follows(app):
    review, _, client = app
    reviewer, image_id, shown_at, progress = _start(client, "Alice")
    assert reviewer == review.pseudonym("alice") and "Alice" not in reviewer
    assert image_id == review.order(reviewer)[0] and "1 of 6" in progress
    out = _rate(client, "correct", reviewer, image_id, shown_at=shown_at)
    next_id, progress, status = out["image_id"], out["progress"], out["status"]
    assert next_id == review.order(reviewer)[1] and "2 of 6" in progress and status.startswith("Saved")
    # A double submission of the same image (second click, retried request) is kept once.
    status = _rate(client, "corrupted", reviewer, image_id)["status"]
    assert status.startswith("Already saved")
    ratings = _reviewer_ratings(review.store, reviewer)
    assert len(ratings) == 1
    r = ratings[0]
    assert (r["image_id"], r["verdict"], r["round"], r["position"]) == (image_id, "correct", "r1", 0)
    row = review_dataset(N)[int(image_id.split("-")[1])]
    assert (r["model_id"], r["model_revision"], r["seed"]) == (row["model_id"], row["model_revision"], row["seed"])
    assert r["seconds"] is not None and r["seconds"] >= 0 and r["blinded"] is False


def test_other_needs_a_comment(app):
    review, _, client = app
    reviewer, image_id, _, _ = _start(client, "Dora")
    with pytest.raises(Exception, match="comment"):
        _rate(client, "other", reviewer, image_id)
    assert _reviewer_ratings(review.store, reviewer) == []
    _rate(client, "other", reviewer, image_id, comment="choroid missing")
    [r] = _reviewer_ratings(review.store, reviewer)
    assert (r["verdict"], r["comment"]) == ("other", "choroid missing")


def test_a_verdict_can_be_corrected_and_still_counts_once(app):
    review, _, client = app
    reviewer, first, _, _ = _start(client, "Kai")
    with pytest.raises(Exception, match="No earlier verdict"):
        client.predict(first, api_name="/previous")
    second = _rate(client, "correct", reviewer, first)["image_id"]
    # Back (key U): the first image again, flagged for correction.
    back = dict(zip(SCREEN, client.predict(second, api_name="/previous")))
    assert back["image_id"] == first and back["correcting"] == first and "Anatomically correct" in back["progress"]
    out = _rate(client, "no_fovea", reviewer, first, correcting=first)
    assert out["status"].startswith("Corrected") and out["image_id"] == second  # back to the first unrated
    [rating] = _reviewer_ratings(review.store, reviewer)
    assert (rating["image_id"], rating["verdict"], rating["correction"]) == (first, "no_fovea", 1)
    assert len(list((review.store.directory / reviewer).glob("*.json"))) == 2  # the first verdict is kept on disk
    # Without the correction flag a second verdict is still a retry: ignored.
    assert _rate(client, "corrupted", reviewer, first)["status"].startswith("Already saved")
    assert [r["verdict"] for r in _reviewer_ratings(review.store, reviewer)] == ["no_fovea"]


def test_two_concurrent_clients_lose_nothing_and_duplicate_nothing(app):
    review, blocks, _ = app
    errors = []

    def review_all(name):
        try:
            client = Client(blocks.local_url, verbose=False)
            reviewer, image_id, _, _ = _start(client, name)
            while image_id:
                image_id = _rate(client, "hypoplastic_fovea", reviewer, image_id)["image_id"]
        except Exception as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=review_all, args=(name,)) for name in ("Bob", "Carol")]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    assert not errors
    for name in ("Bob", "Carol"):
        ratings = _reviewer_ratings(review.store, review.pseudonym(name))
        assert sorted(r["image_id"] for r in ratings) == sorted(review.order("x"))

    # Two clients of ONE reviewer submitting the same image at the same moment: stored once.
    c1, c2 = Client(blocks.local_url, verbose=False), Client(blocks.local_url, verbose=False)
    reviewer, image_id, _, _ = _start(c1, "Eve")
    assert _start(c2, "Eve")[:2] == (reviewer, image_id)  # each browser starts its own session
    results = []
    threads = [threading.Thread(target=lambda c, v: results.append(_rate(c, v, reviewer, image_id)), args=a)
               for a in ((c1, "correct"), (c2, "no_fovea"))]
    [t.start() for t in threads]
    [t.join(30) for t in threads]
    assert len(results) == 2
    assert len(_reviewer_ratings(review.store, reviewer)) == 1
    assert sorted(r["status"].split(":")[0] for r in results) == ["Already saved earlier (kept once)", "Saved"]


def test_restart_resumes_where_the_reviewer_left_off(tmp_path):
    store = RatingsStore(tmp_path / "ratings")
    make = lambda: ReviewRound(review_dataset(N), store, round_name="r1", seed=7, anatomy_check=None)  # noqa: E731
    blocks, client = _launch(make())
    reviewer, first, _, _ = _start(client, "Frank")
    second = _rate(client, "correct", reviewer, first)["image_id"]
    _rate(client, "doubled_fovea", reviewer, second)
    blocks.close()

    review = make()
    blocks, client = _launch(review)
    try:
        # The browser still shows the second image; its session is gone with the old server, so
        # the reviewer presses Start again, and the second image's verdict sent again is kept once.
        with pytest.raises(Exception, match="Press Start"):
            _rate(client, "no_fovea", reviewer, second)
        reviewer, third, _, progress = _start(client, "Frank")
        status = _rate(client, "no_fovea", reviewer, second)["status"]
        assert status.startswith("Already saved")
        assert third == review.order(reviewer)[2] and "3 of 6" in progress
        assert [r["verdict"] for r in store.ratings()] == ["correct", "doubled_fovea"]
    finally:
        blocks.close()


def test_blinded_round_asks_real_or_synthetic(tmp_path):
    # (The browser test drives a blinded round through the page; here the rules.)
    review = ReviewRound(review_dataset(4), tmp_path, real=review_dataset(10, source="real", prefix="real", size=(64, 128)),
                         round_name="turing", anatomy_check=None)
    assert review.blinded and len(review) == 8  # as many real scans as synthetic ones
    sources = [review.items[i].ref["source"] for i in review.order("r-x")]
    assert sorted(sources) == ["real"] * 4 + ["synthetic"] * 4
    assert review.order("r-x") != review.order("r-y")
    # A reviewer's order is a function of (seed, round, reviewer) alone: the same after a restart
    # (a new ReviewRound, another process), so an interrupted reviewer resumes where they were.
    # Pinned: a process-dependent seed (hash(), id(), time) or a changed draw would break it.
    again = ReviewRound(review_dataset(4), tmp_path / "restarted",
                        real=review_dataset(10, source="real", prefix="real", size=(64, 128)),
                        round_name="turing", anatomy_check=None)
    assert again.order("r-x") == review.order("r-x") == [
        "real-0005", "syn-0002", "real-0006", "real-0009", "syn-0001", "real-0008", "syn-0000", "syn-0003"]
    # Real scans are shown at the generated scans' size: resolution must not give the origin away.
    real_item = next(item for item in review.items.values() if item.ref["source"] == "real")
    assert review.parts[1][real_item.row]["image"].size == (128, 64) and review.image(real_item).size == (64, 32)
    _, item = review.next_item("r-x")
    with pytest.raises(ValueError, match="real or synthetic"):
        review.record("Gina", item.image_id, "correct")
    rating, created = review.record("Gina", item.image_id, "correct", origin_guess="real")
    assert created and (rating["blinded"], rating["origin_guess"]) == (True, "real")
    # Real rows carry pseudonymous patient ids in the dataset; ratings never copy them.
    assert "patient_id" not in rating and not any("p-0000" in str(v) for v in rating.values())
