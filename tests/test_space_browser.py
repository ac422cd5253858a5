"""The Space in a real headless Chromium (Debian's binary, driven by Playwright): a user's clicks."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.factories import save_tiny_pipeline
from tests.test_space import load_space_module

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def space_url(tmp_path_factory):
    model_dir = save_tiny_pipeline(tmp_path_factory.mktemp("space-model") / "tiny")
    demo = load_space_module().build_demo(model=model_dir)
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        yield demo.local_url
    finally:
        demo.close()


@pytest.fixture(scope="module")
def page():
    if CHROMIUM is None:
        pytest.fail("Debian's chromium is not installed: run `bash scripts/setup.sh --test` (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Playwright gives the browser a fresh temporary profile.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 1000})
        finally:
            browser.close()


def test_preset_then_generate_fills_the_gallery(page, space_url, tmp_path):
    page.goto(space_url)
    page.wait_for_selector("#generate")

    # The "melanoma, 4 images, seed 7" preset fills the controls; then the user clicks Generate.
    page.locator("tr", has_text="melanoma").first.click()
    page.wait_for_function("document.querySelector('#num_images input[type=number]').value === '4'")
    # Fewer steps than the preset keeps the test fast; the untrained model's images are noise anyway.
    page.locator("#steps input[type=number]").fill("3")
    page.locator("#steps input[type=number]").press("Enter")
    page.click("#generate")
    # The last update of a run writes the summary ("N images in ...") and the downloads.
    try:
        page.wait_for_function("document.querySelector('#status').innerText.includes(' images in ')"
                               " && document.querySelector('#downloads').innerText.includes('.parquet')",
                               timeout=60_000)
    except Exception:
        page.screenshot(path=str(tmp_path / "failed.png"), full_page=True)
        raise AssertionError(f"No finished run in the page after 60 s; status: {page.locator('#status').inner_text()!r}, "
                             f"screenshot: {tmp_path / 'failed.png'}") from None

    images = page.locator("#gallery img")
    assert images.count() == 4
    captions = [images.nth(i).get_attribute("alt") for i in range(4)]
    assert all(c.startswith("melanoma · ") for c in captions), captions
    for i in range(4):  # the images arrived and decoded at the model's size (W x H)
        size = images.nth(i).evaluate("img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])")
        assert size == [64, 32]
    status = page.locator("#status").inner_text()
    assert "4 images" in status and "3 steps" in status and "seed 7" in status and "guidance 2" in status
    assert ".zip" in page.locator("#downloads").inner_text()

    # Keep the screenshot where asked (docs/space_screenshot.png is made with the demo model).
    page.screenshot(path=os.environ.get("MEDICRAFT_SPACE_SCREENSHOT", str(tmp_path / "space.png")), full_page=True)


def test_choosing_the_fast_model_sets_its_sampler_and_it_makes_the_images(page, monkeypatch):
    """The embedded page opens on demo (SDE DPM-Solver++, 20 steps); picking demo-fast in the Model
    menu sets LCM and 4 steps, and the images are then demo-fast's (its id in the status line)."""
    monkeypatch.delenv("MEDICRAFT_MODEL", raising=False)
    demo = load_space_module().build_demo()
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        page.goto(demo.local_url)
        page.wait_for_selector("#generate")
        assert page.locator("#model input").input_value() == "demo"
        assert page.locator("#scheduler input").input_value() == "sde-dpmsolver++"
        assert page.locator("#steps input[type=number]").input_value() == "20"

        page.locator("#model input").click()
        page.get_by_role("option", name="demo-fast", exact=True).click()
        page.wait_for_function("document.querySelector('#scheduler input').value === 'lcm'")
        assert page.locator("#steps input[type=number]").input_value() == "4"
        page.locator("#num_images input[type=number]").fill("1")
        page.locator("#num_images input[type=number]").press("Enter")
        page.click("#generate")
        page.wait_for_function("document.querySelector('#status').innerText.includes(' images in ')",
                               timeout=120_000)
        assert "demo-fast, lcm, 4 steps" in page.locator("#status").inner_text()
        assert page.locator("#gallery img").count() == 1
    finally:
        demo.close()
