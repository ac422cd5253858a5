"""The review app in headless Chromium: a rating by clicking and one by key press."""

from __future__ import annotations

import shutil

import pytest

from medicraft_hf.review.app import launch_review_app
from medicraft_hf.review.session import ReviewRound
from medicraft_hf.review.store import RatingsStore, reviewer_pseudonym
from tests.review_helpers import review_dataset

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian chromium is not installed (apt install chromium)")
    from playwright.sync_api import sync_playwright

    store = RatingsStore(tmp_path_factory.mktemp("ratings"))
    review = ReviewRound(review_dataset(4), store, real=review_dataset(4, source="real", prefix="real"),
                         round_name="r1", anatomy_check=None)
    blocks, _ = launch_review_app(review, prevent_thread_lock=True, quiet=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.set_default_timeout(20_000)
        page.goto(blocks.local_url)
        yield review, page
        browser.close()
    blocks.close()


def _wait_for_ratings(review, reviewer, n, page):
    page.wait_for_function(
        "n => document.querySelector('#progress').innerText.includes(`Image ${n + 1} of`)", arg=n
    )
    return [r for r in review.store.ratings() if r["reviewer"] == reviewer]


def test_rate_by_click_then_by_key(page, tmp_path):
    review, page = page
    reviewer = reviewer_pseudonym("Hana")
    page.fill("#reviewer-name textarea, #reviewer-name input", "Hana")
    page.click("#start")
    page.wait_for_function("() => document.querySelector('#progress').innerText.includes('Image 1 of 8')")
    page.wait_for_selector("#scan img")
    first = review.order(reviewer)[0]

    # Click: answer "real or synthetic?", then the verdict button.
    page.click("#origin-guess input[value='synthetic']")
    page.click("#verdict-doubled_fovea")
    [r] = _wait_for_ratings(review, reviewer, 1, page)
    assert (r["image_id"], r["verdict"], r["origin_guess"]) == (first, "doubled_fovea", "synthetic")
    page.screenshot(path=str(tmp_path / "review.png"))
    shutil.copy(tmp_path / "review.png", "/tmp/review_ui.png")

    # Keys: R answers "real", 3 is the third verdict (no fovea).
    page.keyboard.press("r")
    page.wait_for_function("() => document.querySelector(\"#origin-guess input[value='real']\").checked")
    page.keyboard.press("3")
    ratings = _wait_for_ratings(review, reviewer, 2, page)
    second = next(r for r in ratings if r["image_id"] == review.order(reviewer)[1])
    assert (second["verdict"], second["origin_guess"]) == ("no_fovea", "real")

    # U goes back to the previous image; its new verdict replaces the earlier one.
    page.keyboard.press("u")
    page.wait_for_function("() => document.querySelector('#progress').innerText.includes('Correcting')")
    page.keyboard.press("s")
    page.keyboard.press("5")
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('Corrected')")
    fixed = next(r for r in review.store.ratings() if r["image_id"] == review.order(reviewer)[1])
    assert (fixed["verdict"], fixed["origin_guess"], fixed["correction"]) == ("corrupted", "synthetic", 1)

    # Typing a digit in the comment box is text, not a verdict.
    page.fill("#comment textarea, #comment input", "")
    page.click("#comment textarea, #comment input")
    page.keyboard.press("1")
    page.wait_for_timeout(500)
    assert len(review.store.ratings()) == 2
