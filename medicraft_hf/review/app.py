"""The Gradio review app: one scan at a time, large; one click or one key per verdict.

Every event goes straight to the ratings store; where a reviewer is in their order is read
back from it, so a restarted app, a reloaded page or a second browser resume at the first
unrated image, and a double submission stores once. Who rates is server-side session state
(`gr.State`) set only by Start: from the typed nickname (salted with the deployment's
secret), from the login of Gradio's `auth`, or from the Hugging Face account (OAuth on a
Space). A browser cannot send another reviewer's pseudonym, and typing one as a name gives
a different pseudonym.

Scans are sent as PNG (lossless) at their own size, every source pixel as it is; the page
fits them to the frame and has zoom, contrast / brightness and a native-size (1:1) view,
all in the browser (the pixels sent never change).

Keys: 1-6 pick a verdict (in the order of `VERDICTS`), R / S answer "real or synthetic?"
in blinded rounds, U goes back to correct an earlier verdict (its earlier answers are
shown; the correction is stored beside it, the latest counts). Keys are ignored while
typing in a text box. A verdict that could not be saved says so and what failed; the
scan stays on screen so the verdict can be given again.
"""

from __future__ import annotations

import base64
import io
import json
import os
import time

import gradio as gr

from medicraft_hf.review.session import ReviewRound
from medicraft_hf.review.store import MalformedRating
from medicraft_hf.review.verdicts import ORIGINS, VERDICT_LABELS, VERDICTS

ORIGIN_KEYS = {"real": "R", "synthetic": "S"}

# Styles of the scan view and the save confirmation, installed once with the keys.
REVIEW_CSS = """
#scan .mc-frame { overflow: auto; max-height: 70vh; background: #000; text-align: center; }
#scan .mc-scan { display: inline-block; width: calc(var(--mc-zoom, 1) * 100%); max-width: none; height: auto;
  filter: brightness(var(--mc-brightness, 1)) contrast(var(--mc-contrast, 1)); }
#scan.mc-native .mc-scan { width: var(--mc-native); }
#scan.mc-pixels .mc-scan { image-rendering: pixelated; }
#status, #status p { font-size: 1.2rem; font-weight: 600; }
#status { border-left: 6px solid #2b6cb0; padding: 0.3rem 0.8rem;
  background: rgba(43, 108, 176, 0.08); min-height: 2.4rem; }
"""

# Installed once per page (from a hidden HTML component, so it also works when the review
# is a tab of another app): number keys click the verdict buttons, R/S pick the answer.
# Only buttons on screen react, so keys do nothing while another tab is shown.
KEYBOARD_JS = """
if (!window.__medicraftReviewKeys) {
  window.__medicraftReviewKeys = true;
  const style = document.createElement("style");
  style.textContent = %s;
  document.head.appendChild(style);
  const verdicts = %s;
  const onScreen = (el) => el && el.offsetParent !== null && !el.disabled;
  document.addEventListener("keydown", (event) => {
    const t = event.target;
    const typing = t && (t.isContentEditable || t.tagName === "TEXTAREA" ||
      (t.tagName === "INPUT" && !["radio", "checkbox", "button", "range"].includes(t.type)));
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
""" % (json.dumps(REVIEW_CSS), json.dumps(list(VERDICTS)))

BLUR_JS = "() => { if (document.activeElement) document.activeElement.blur(); }"

VIEW_JS = """(zoom, contrast, brightness, pixels) => {
  const s = document.getElementById("scan");
  if (s) {
    s.classList.remove("mc-native");
    s.classList.toggle("mc-pixels", !!pixels);
    s.style.setProperty("--mc-zoom", zoom);
    s.style.setProperty("--mc-contrast", contrast);
    s.style.setProperty("--mc-brightness", brightness);
  }
}"""
NATIVE_JS = """() => { const s = document.getElementById("scan"); if (s) s.classList.add("mc-native"); }"""

IDENTITIES = ("name", "login", "oauth")


def scan_png(image) -> bytes:
    """The scan as the page gets it: PNG (lossless), at its own size."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def scan_html(image) -> str:
    """The scan view: the PNG inline, every source pixel as it is (the browser scales it)."""
    if image is None:
        return '<div class="mc-frame mc-empty"></div>'
    data = base64.b64encode(scan_png(image)).decode("ascii")
    w, h = image.size
    return (f'<div class="mc-frame"><img class="mc-scan" alt="OCT scan under review" width="{w}" height="{h}" '
            f'style="--mc-native: {w}px" src="data:image/png;base64,{data}"></div>')


def _problems_note(review: ReviewRound) -> str:
    problems = review.store.problems
    if not problems:
        return ""
    names = "; ".join(f"`{os.path.basename(f)}` ({why})" for f, why in problems[:3])
    return f" Skipped {len(problems)} malformed rating file(s) in the store: {names}."


def _screen(review: ReviewRound, reviewer: str):
    """What the reviewer sees next: (scan, image_id, shown_at, progress text, correcting)."""
    done, total = review.progress(reviewer)
    nxt = review.next_item(reviewer)
    if nxt is None:
        return (scan_html(None), "", 0.0, f"**All {total} images rated.** Thank you! You can close this page "
                "(or press U to correct your last verdict).", "")
    position, item = nxt
    label = item.ref.get("label") or "unlabelled"
    return (
        scan_html(review.image(item)),
        item.image_id,
        time.time(),
        f"Image **{done + 1} of {total}** (class: **{label}**). Keys 1-6 pick a verdict"
        + (", R / S answer real or synthetic" if review.blinded else "") + ", U goes back to correct one.",
        "",
    )


def _correction_screen(review: ReviewRound, reviewer: str, before: str | None):
    """The reviewer's previous rated image, with their earlier answers, to give it a new verdict.

    Returns (scan, image_id, shown_at, progress, correcting, earlier origin answer)."""
    prev = review.previous_item(reviewer, before=before or None)
    if prev is None:
        raise gr.Error("No earlier verdict to correct.")
    position, item = prev
    label = item.ref.get("label") or "unlabelled"
    try:
        earlier = review.rating_of(reviewer, item.image_id)
    except MalformedRating as err:
        earlier, said = None, f"your earlier verdict could not be read (`{os.path.basename(err.path)}`: {err.why})"
    if earlier is not None:
        said = f"your verdict was **{VERDICT_LABELS[earlier['verdict']]}**"
        if earlier.get("origin_guess"):
            said += f", your answer **{earlier['origin_guess']}**"
    return (
        scan_html(review.image(item)),
        item.image_id,
        time.time(),
        f"**Correcting** image {position + 1} (class: **{label}**): {said}. Pick the new verdict "
        "(U: one further back).",
        item.image_id,
        earlier.get("origin_guess") if earlier else None,
    )


def _default_identity() -> str:
    # A Space with `hf_oauth: true` in its README gets these variables from the Hub.
    return "oauth" if os.environ.get("OAUTH_CLIENT_ID") else "name"


def build_review_blocks(review: ReviewRound, title: str = "medicraft expert review",
                        reviewer_name: str | None = None, identity: str | None = None) -> gr.Blocks:
    """The review app over one round, as a standalone `gr.Blocks` (see `review_tab`)."""
    with gr.Blocks(title=title) as blocks:
        review_tab(review, title=title, reviewer_name=reviewer_name, identity=identity)
    return blocks


def review_tab(review: ReviewRound, title: str = "medicraft expert review", reviewer_name: str | None = None,
               identity: str | None = None) -> None:
    """Build the review components and events in the current Blocks context.

    Call it inside `with gr.Tab("Expert review"):` to make the review a tab of another app
    (e.g. `space/app.py`'s `build_demo(extra_tabs={"Expert review": lambda: review_tab(round)})`).
    `reviewer_name` pre-fills the name box (the reviewer still presses Start).
    `identity` says who a reviewer is: "name" (the typed nickname), "login" (the user of
    Gradio's `launch(auth=...)`), "oauth" (the Hugging Face account: a Space with
    `hf_oauth: true`); default "oauth" where the Space provides OAuth, else "name".
    """
    identity = identity or _default_identity()
    if identity not in IDENTITIES:
        raise ValueError(f"identity must be one of {list(IDENTITIES)}, got {identity!r}.")
    n_buttons = len(VERDICTS) + 1

    def buttons(enabled: bool):
        return [gr.update(interactive=enabled)] * len(VERDICTS) + [gr.update(interactive=True)]

    def begin(pseudonym):
        scan, image_id, shown_at, progress, correcting = _screen(review, pseudonym)
        status = f"Reviewing as `{pseudonym}` in {review.round_name}." + _problems_note(review)
        return (pseudonym, scan, image_id, shown_at, progress, status, None, "", correcting,
                *buttons(bool(image_id)))

    def pseudonym_of(name):
        try:
            return review.pseudonym(name)
        except ValueError as err:
            raise gr.Error(str(err)) from err

    def start_by_name(name):
        return begin(pseudonym_of(name))

    def start_by_login(name, request: gr.Request):
        user = getattr(request, "username", None)
        if not user:
            raise gr.Error("This review app needs a login; launch it with Gradio auth (medicraft review --auth-file).")
        return begin(pseudonym_of(user))

    def start_by_oauth(name, profile: gr.OAuthProfile | None):
        if profile is None:
            raise gr.Error("Sign in with Hugging Face first (the button above).")
        return begin(pseudonym_of(profile.username))

    start = {"name": start_by_name, "login": start_by_login, "oauth": start_by_oauth}[identity]
    start.__name__ = "start"

    def previous(reviewer, image_id):
        if not reviewer:
            raise gr.Error("Press Start first.")
        scan, image_id, shown_at, progress, correcting, guess_ = _correction_screen(review, reviewer, image_id)
        return scan, image_id, shown_at, progress, _problems_note(review).strip(), guess_, "", correcting, *buttons(True)

    def rate_as(verdict):
        def rate(reviewer, image_id, origin_guess, comment, shown_at, correcting):
            if not reviewer:
                raise gr.Error("Press Start first.")
            if not image_id:
                raise gr.Error("No image on screen: every image of this round is rated.")
            correction = bool(correcting) and correcting == image_id
            try:
                rating, created = review.rate(reviewer, image_id, verdict, origin_guess=origin_guess,
                                              comment=comment, shown_at=shown_at, correction=correction)
            except ValueError as err:
                raise gr.Error(str(err)) from err
            except OSError as err:  # nothing stored: the scan stays, the verdict can be given again
                what = err.strerror or str(err)
                where = err.filename or review.store.directory
                status = (f"⚠ **Not saved**: {VERDICT_LABELS[verdict]} could not be written to the ratings store "
                          f"({what}: `{where}`). Nothing was stored; press the verdict again to retry, or tell "
                          "the person running the review.")
                return (gr.skip(),) * 4 + (status,) + (gr.skip(),) * (3 + n_buttons)
            note = "Corrected" if correction else "Saved" if created else "Already saved earlier (kept once)"
            status = f"{note}: {VERDICT_LABELS[rating['verdict']]} for the previous image ✓"
            scan, image_id, shown_at, progress, correcting = _screen(review, reviewer)
            return scan, image_id, shown_at, progress, status, None, "", correcting, *buttons(bool(image_id))

        rate.__name__ = f"rate_{verdict}"
        return rate

    gr.Markdown(
        f"# {title}\nRound **{review.round_name}**, {len(review)} images"
        + (", **blinded**: real and synthetic scans are mixed." if review.blinded else ".")
        + " Only a pseudonym of your name is stored."
    )
    with gr.Row():
        if identity == "oauth":
            gr.LoginButton(scale=2)
        name = gr.Textbox(value=reviewer_name, label="Reviewer name", placeholder="a nickname", elem_id="reviewer-name",
                          scale=3, visible=identity == "name")
        start_button = gr.Button("Start / resume", variant="primary", elem_id="start", scale=1)
    reviewer = gr.State(None)  # the pseudonym, held by the server for this session only
    image_id = gr.Textbox(visible=False, elem_id="image-id")
    shown_at = gr.Number(visible=False)
    progress = gr.Markdown(elem_id="progress")
    status = gr.Markdown(elem_id="status")
    scan = gr.HTML(scan_html(None), elem_id="scan")
    with gr.Row(equal_height=True):
        zoom = gr.Slider(1, 8, value=1, step=0.25, label="Zoom (1 = fit)", elem_id="zoom", scale=2)
        contrast = gr.Slider(0.5, 3, value=1, step=0.05, label="Contrast", elem_id="contrast", scale=2)
        brightness = gr.Slider(0.5, 2, value=1, step=0.05, label="Brightness", elem_id="brightness", scale=2)
        pixels = gr.Checkbox(False, label="Show pixels", elem_id="pixels", scale=1)
        native = gr.Button("Native size (1:1)", elem_id="native", scale=1, size="sm")
        reset = gr.Button("Reset view", elem_id="reset-view", scale=1, size="sm")
    guess = gr.Radio([(f"{o.capitalize()}  ({ORIGIN_KEYS[o]})", o) for o in ORIGINS],
                     label="Real or synthetic? (keys R / S)", visible=review.blinded, elem_id="origin-guess")
    with gr.Row():
        verdict_buttons = [  # one neutral colour: no verdict is suggested
            gr.Button(f"{i + 1}  {VERDICT_LABELS[v]}", elem_id=f"verdict-{v}", variant="secondary", interactive=False)
            for i, v in enumerate(VERDICTS)
        ]
    with gr.Row():
        comment = gr.Textbox(label="Comment (required for Other)", lines=1, elem_id="comment", scale=4)
        previous_button = gr.Button("U  Back: correct a verdict", elem_id="previous", scale=1, interactive=False)
    correcting = gr.Textbox(visible=False, elem_id="correcting")  # image id whose verdict is being corrected

    screen = [scan, image_id, shown_at, progress, status, guess, comment, correcting, *verdict_buttons,
              previous_button]
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
    view = [zoom, contrast, brightness, pixels]
    for control in view:
        control.change(None, inputs=view, js=VIEW_JS)
    native.click(None, js=NATIVE_JS)
    reset.click(None, outputs=view, js="() => [1, 1, 1, false]")
    gr.HTML("", js_on_load=KEYBOARD_JS, container=False, padding=False, elem_id="review-keys")


def launch_review_app(review: ReviewRound, *, host: str = "127.0.0.1", port: int | None = None,
                      reviewer_name: str | None = None, auth=None, identity: str | None = None, **launch_kwargs):
    """Build and serve the review app (blocks until closed unless prevent_thread_lock=True).

    `auth`: Gradio's `launch(auth=...)` (a list of (user, password) pairs or a function);
    reviewers are then who logged in (identity "login"), whatever they type.
    """
    blocks = build_review_blocks(review, reviewer_name=reviewer_name,
                                 identity=identity or ("login" if auth else None))
    blocks.queue(default_concurrency_limit=4)
    return blocks, blocks.launch(server_name=host, server_port=port, auth=auth, **launch_kwargs)
