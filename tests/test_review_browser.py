"""The review app in headless Chromium: a rating by clicking and one by key press, a
correction showing the earlier answer, a visible save confirmation, the scan view's controls."""

from __future__ import annotations

import shutil

import pytest

from medicraft_hf.review.app import launch_review_app
from medicraft_hf.review.session import ReviewRound
from medicraft_hf.review.store import RatingsStore
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
    # The phantom as the real set, as a research group would run a first round.
    review = ReviewRound(review_dataset(4, size=(64, 128)), store,
                         real=review_dataset(4, source="phantom", prefix="real", size=(64, 128)),
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
    reviewer = review.pseudonym("Hana")
    # Before Start the verdict buttons are disabled; the real/synthetic choice shows its keys.
    assert page.locator("#verdict-correct").is_disabled() and page.locator("#previous").is_disabled()
    assert "(R)" in page.inner_text("#origin-guess") and "(S)" in page.inner_text("#origin-guess")
    page.fill("#reviewer-name textarea, #reviewer-name input", "Hana")
    page.click("#start")
    page.wait_for_function("() => document.querySelector('#progress').innerText.includes('Image 1 of 8')")
    page.wait_for_selector("#scan img.mc-scan")
    assert page.locator("#verdict-correct").is_enabled()
    first = review.order(reviewer)[0]
    # One neutral colour for every verdict (Start keeps the accent colour).
    page.wait_for_timeout(800)  # the enabled buttons' colour transition
    colours = {page.eval_on_selector(f"#verdict-{v}", "b => getComputedStyle(b).backgroundColor")
               for v in ("correct", "no_fovea", "corrupted")}
    assert len(colours) == 1 and colours != {page.eval_on_selector("#start", "b => getComputedStyle(b).backgroundColor")}

    # The browser decodes exactly the source pixels (PNG), at the scan's own size.
    pixels = page.evaluate("""() => { const img = document.querySelector('#scan img.mc-scan');
        const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
        const g = c.getContext('2d'); g.drawImage(img, 0, 0);
        return [img.naturalWidth, img.naturalHeight, Array.from(g.getImageData(0, 0, c.width, c.height).data)]; }""")
    import numpy as np

    source = np.asarray(review.image(review.items[first]))
    width, height, rgba = pixels
    assert (height, width) == source.shape
    assert np.array_equal(np.array(rgba, dtype=np.uint8).reshape(height, width, 4)[..., 0], source)
    # Zoom, contrast / brightness and the native size act on the view, not on the pixels sent.
    fit = page.eval_on_selector("#scan img.mc-scan", "i => i.getBoundingClientRect().width")
    page.click("#native")
    assert page.eval_on_selector("#scan img.mc-scan", "i => i.getBoundingClientRect().width") == width
    page.fill("#zoom input[type=number]", "2")
    page.keyboard.press("Enter")
    page.wait_for_function("f => document.querySelector('#scan img.mc-scan').getBoundingClientRect().width > 1.9 * f",
                           arg=fit)
    page.fill("#contrast input[type=number]", "1.5")
    page.keyboard.press("Enter")
    page.wait_for_function("() => getComputedStyle(document.querySelector('#scan img.mc-scan')).filter"
                           ".includes('contrast(1.5)')")
    page.click("#reset-view")
    page.wait_for_function("f => Math.abs(document.querySelector('#scan img.mc-scan').getBoundingClientRect().width"
                           " - f) < 1", arg=fit)
    page.click("body")

    # Click: answer "real or synthetic?", then the verdict button.
    page.click("#origin-guess input[value='synthetic']")
    page.click("#verdict-doubled_fovea")
    [r] = _wait_for_ratings(review, reviewer, 1, page)
    assert (r["image_id"], r["verdict"], r["origin_guess"]) == (first, "doubled_fovea", "synthetic")
    # The save is confirmed where the reviewer looks: above the scan, in large type.
    page.wait_for_function("() => document.querySelector('#status').innerText.startsWith('Saved')")
    box = page.locator("#status").bounding_box()
    assert box["y"] < page.locator("#scan").bounding_box()["y"] and box["height"] >= 30
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
    # U shows the earlier verdict and answer, and keeps the answer selected.
    assert "your verdict was No fovea, your answer real" in page.inner_text("#progress")
    assert page.is_checked("#origin-guess input[value='real']")
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


def test_hugging_face_login_decides_who_rates(page, tmp_path, hub):
    """identity="oauth": no Start before signing in; after the Hugging Face login (Gradio's local
    mock, which asks the Hub server's whoami for the account behind HF_TOKEN) the reviewer is that
    account's pseudonym, whatever is typed."""
    pytest.importorskip("itsdangerous", reason="Hugging Face OAuth needs gradio[oauth]")
    _, shared = page  # one Playwright per thread: a fresh browser context (own cookies) in the module's browser

    review = ReviewRound(review_dataset(2, size=(64, 128)), RatingsStore(tmp_path / "ratings"), round_name="r",
                         anatomy_check=None)
    blocks, _ = launch_review_app(review, identity="oauth", prevent_thread_lock=True, quiet=True)
    context = shared.context.browser.new_context()
    try:
        login = context.new_page()
        login.set_default_timeout(20_000)
        login.goto(blocks.local_url)
        login.click("#start")
        login.wait_for_selector("text=Sign in with Hugging Face first")
        login.goto(blocks.local_url.rstrip("/") + "/login/huggingface")  # back to the app, signed in
        login.wait_for_selector("#start")
        login.click("#start")
        account = review.pseudonym(hub.namespace)  # the test Hub's whoami answers with this user
        login.wait_for_function("p => document.querySelector('#status').innerText.includes(p)", arg=account)
    finally:
        context.close()
        blocks.close()
