"""The Gradio review app: one scan at a time, large; one click or one key per verdict.

Every event is stateless on the server: the browser holds the reviewer's pseudonym and the
id of the image on screen, and each verdict goes straight to the ratings store. Where a
reviewer is in their order is read back from the store, so a restarted app, a reloaded page
or a second browser resume at the first unrated image, and a double submission stores once.

Keys: 1-6 pick a verdict (in the order of `VERDICTS`), R / S answer "real or synthetic?"
in blinded rounds, U goes back to correct an earlier verdict (the correction is stored
beside it; the latest counts). Keys are ignored while typing in a text box.
"""

from __future__ import annotations

import json
import math
import time

import gradio as gr
from PIL import Image

from medicraft_hf.review.session import ReviewRound
from medicraft_hf.review.store import reviewer_pseudonym
from medicraft_hf.review.verdicts import ORIGINS, VERDICT_LABELS, VERDICTS

# Installed once per page (from a hidden HTML component, so it also works when the review
# is a tab of another app): number keys click the verdict buttons, R/S pick the answer.
# Only buttons on screen react, so keys do nothing while another tab is shown.
KEYBOARD_JS = """
if (!window.__medicraftReviewKeys) {
  window.__medicraftReviewKeys = true;
  const verdicts = %s;
  const onScreen = (el) => el && el.offsetParent !== null && !el.disabled;
  document.addEventListener("keydown", (event) => {
    const t = event.target;
    const typing = t && (t.isContentEditable || t.tagName === "TEXTAREA" ||
      (t.tagName === "INPUT" && !["radio", "checkbox", "button"].includes(t.type)));
    if (typing || event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    const index = "123456789".indexOf(event.key);
    if (index >= 0 && index < verdicts.length) {
      const button = document.getElementById("verdict-" + verdicts[index]);
      if (onScreen(button)) { event.preventDefault(); button.click(); }
      return;
    }
    if (event.key.toLowerCase() === "u") {
      const back = document.getElementById("previous");
      if (onScreen(back)) { event.preventDefault(); back.click(); }
      return;
    }
    const origin = {r: "real", s: "synthetic"}[event.key.toLowerCase()];
    const radio = origin && document.querySelector('#origin-guess input[value="' + origin + '"]');
    if (onScreen(radio)) { event.preventDefault(); radio.click(); }
  });
}
""" % json.dumps(list(VERDICTS))

DISPLAY_WIDTH = 1024  # scans are shown at least this wide

BLUR_JS = "() => { if (document.activeElement) document.activeElement.blur(); }"


def _enlarged(image, width: int = DISPLAY_WIDTH):
    """Scale small scans up by a whole factor (nearest: every pixel shown as it is, none invented)."""
    factor = max(1, math.ceil(width / image.width))
    return image if factor == 1 else image.resize((image.width * factor, image.height * factor), Image.NEAREST)


def _screen(review: ReviewRound, reviewer: str):
    """What the reviewer sees next: (image, image_id, shown_at, progress text, correcting)."""
    done, total = review.progress(reviewer)
    nxt = review.next_item(reviewer)
    if nxt is None:
        return (None, "", 0.0, f"**All {total} images rated.** Thank you! You can close this page "
                "(or press U to correct your last verdict).", "")
    position, item = nxt
    label = item.ref.get("label") or "unlabelled"
    return (
        _enlarged(review.image(item)),
        item.image_id,
        time.time(),
        f"Image **{done + 1} of {total}** (class: **{label}**). Keys 1-6 pick a verdict"
        + (", R / S answer real or synthetic" if review.blinded else "") + ", U goes back to correct one.",
        "",
    )


def _correction_screen(review: ReviewRound, reviewer: str, before: str | None):
    """The reviewer's previous rated image, to give it a new verdict."""
    prev = review.previous_item(reviewer, before=before or None)
    if prev is None:
        raise gr.Error("No earlier verdict to correct.")
    position, item = prev
    earlier = review.rating_of(reviewer, item.image_id)
    label = item.ref.get("label") or "unlabelled"
    return (
        _enlarged(review.image(item)),
        item.image_id,
        time.time(),
        f"**Correcting** image {position + 1} (class: **{label}**): your verdict was "
        f"**{VERDICT_LABELS[earlier['verdict']]}**. Pick the new verdict (U: one further back).",
        item.image_id,
    )


def build_review_blocks(review: ReviewRound, title: str = "medicraft expert review",
                        reviewer_name: str | None = None) -> gr.Blocks:
    """The review app over one round, as a standalone `gr.Blocks`."""
    with gr.Blocks(title=title) as blocks:
        review_tab(review, title=title, reviewer_name=reviewer_name)
    return blocks


def review_tab(review: ReviewRound, title: str = "medicraft expert review", reviewer_name: str | None = None) -> None:
    """Build the review components and events in the current Blocks context.

    Call it inside `with gr.Tab("Expert review"):` to make the review a tab of another app
    (e.g. `space/app.py`'s `build_demo(extra_tabs={"Expert review": lambda: review_tab(round)})`).
    `reviewer_name` pre-fills the name box (the reviewer still presses Start).
    """
    def start(name):
        try:
            reviewer = reviewer_pseudonym(name)
        except ValueError as err:
            raise gr.Error(str(err)) from err
        image, image_id, shown_at, progress, correcting = _screen(review, reviewer)
        status = f"Reviewing as `{reviewer}` in {review.round_name}."
        return reviewer, image, image_id, shown_at, progress, status, None, "", correcting

    def previous(reviewer, image_id):
        if not reviewer:
            raise gr.Error("Enter your reviewer name and press Start first.")
        image, image_id, shown_at, progress, correcting = _correction_screen(review, reviewer, image_id)
        return image, image_id, shown_at, progress, "", None, "", correcting

    def rate_as(verdict):
        def rate(reviewer, image_id, origin_guess, comment, shown_at, correcting):
            if not reviewer:
                raise gr.Error("Enter your reviewer name and press Start first.")
            if not image_id:
                raise gr.Error("No image on screen: every image of this round is rated.")
            correction = bool(correcting) and correcting == image_id
            try:
                rating, created = review.record(reviewer, image_id, verdict, origin_guess=origin_guess,
                                                comment=comment, shown_at=shown_at, correction=correction)
            except ValueError as err:
                raise gr.Error(str(err)) from err
            note = "Corrected" if correction else "Saved" if created else "Already saved earlier (kept once)"
            status = f"{note}: {VERDICT_LABELS[rating['verdict']]} for the previous image."
            image, image_id, shown_at, progress, correcting = _screen(review, rating["reviewer"])
            return image, image_id, shown_at, progress, status, None, "", correcting

        rate.__name__ = f"rate_{verdict}"
        return rate

    gr.Markdown(
        f"# {title}\nRound **{review.round_name}**, {len(review)} images"
        + (", **blinded**: real and synthetic scans are mixed." if review.blinded else ".")
        + " Only a pseudonym of your name is stored."
    )
    with gr.Row():
        name = gr.Textbox(value=reviewer_name, label="Reviewer name", placeholder="a nickname", elem_id="reviewer-name", scale=3)
        start_button = gr.Button("Start / resume", variant="primary", elem_id="start", scale=1)
    reviewer = gr.Textbox(visible=False, elem_id="reviewer-id")
    image_id = gr.Textbox(visible=False, elem_id="image-id")
    shown_at = gr.Number(visible=False)
    progress = gr.Markdown(elem_id="progress")
    image = gr.Image(
        type="pil", image_mode="L", interactive=False, show_label=False, height=520, elem_id="scan",
        buttons=[],
    )
    guess = gr.Radio(list(ORIGINS), label="Real or synthetic?", visible=review.blinded, elem_id="origin-guess")
    with gr.Row():
        verdict_buttons = [
            gr.Button(f"{i + 1}  {VERDICT_LABELS[v]}", elem_id=f"verdict-{v}",
                      variant="primary" if v == "correct" else "secondary")
            for i, v in enumerate(VERDICTS)
        ]
    with gr.Row():
        comment = gr.Textbox(label="Comment (required for Other)", lines=1, elem_id="comment", scale=4)
        previous_button = gr.Button("U  Back: correct a verdict", elem_id="previous", scale=1)
    status = gr.Markdown(elem_id="status")
    correcting = gr.Textbox(visible=False, elem_id="correcting")  # image id whose verdict is being corrected

    screen = [image, image_id, shown_at, progress, status, guess, comment, correcting]
    start_button.click(start, inputs=name, outputs=[reviewer, *screen], api_name="start").then(
        None, js=BLUR_JS
    )
    name.submit(start, inputs=name, outputs=[reviewer, *screen], api_visibility="private")
    for verdict, button in zip(VERDICTS, verdict_buttons):
        button.click(
            rate_as(verdict),
            inputs=[reviewer, image_id, guess, comment, shown_at, correcting],
            outputs=screen,
            api_name=f"rate_{verdict}",
            trigger_mode="once",
        )
    previous_button.click(previous, inputs=[reviewer, image_id], outputs=screen, api_name="previous",
                          trigger_mode="once")
    gr.HTML("", js_on_load=KEYBOARD_JS, container=False, padding=False, elem_id="review-keys")


def launch_review_app(review: ReviewRound, *, host: str = "127.0.0.1", port: int | None = None,
                      reviewer_name: str | None = None, **launch_kwargs):
    """Build and serve the review app (blocks until closed unless prevent_thread_lock=True)."""
    blocks = build_review_blocks(review, reviewer_name=reviewer_name)
    blocks.queue(default_concurrency_limit=4)
    return blocks, blocks.launch(server_name=host, server_port=port, **launch_kwargs)
