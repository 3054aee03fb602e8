"""The Gradio page: a photo and a style in, the result beside the input with a download.

Fast work (zoo styles, any painting) and optimisations run in separate Gradio concurrency groups,
so a long optimisation in one tab never holds up a zoo style in another.
"""

import html
import os
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no telemetry calls

import gradio as gr  # noqa: E402
from PIL import Image  # noqa: E402

from nst.demo.jobs import (  # noqa: E402
    METHODS,
    NO_ARBITRARY_MODEL,
    NO_ZOO_MODELS,
    DemoSettings,
    OptimisationJob,
    stylize_painting,
    stylize_zoo,
    zoo_models,
)
from nst.demo.uploads import (  # noqa: E402
    SAMPLE_PAINTINGS,
    SAMPLE_PHOTOS,
    read_source,
    result_name,
    source_label,
)
from nst.errors import user_error_cause  # noqa: E402
from nst.image import COLOR_MODES  # noqa: E402

DEFAULT_PHOTO = "sample:chelsea"
DEFAULT_PAINTING = "sample:waves"
THUMBNAIL_PHOTO, THUMBNAIL_SIZE = "sample:astronaut", 160
FAST_SLOTS, OPTIMISATION_SLOTS = 2, 1  # jobs at once per group, over all tabs
THEME = gr.themes.Default(  # system fonts: the page loads nothing from the internet
    font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
)
RESULTS = Path(os.environ.get("GRADIO_TEMP_DIR", "/tmp")) / "nst-demo"


def message_html(text: str, error: bool = False) -> str:
    """The page's one message line: `text`, marked as an error when `error`."""
    kind = "error" if error else "info"
    return f'<p class="nst-{kind}">{"⚠ " if error else ""}{html.escape(text)}</p>'


def error_text(error: Exception) -> str:
    """One sentence for the page: a `UserError`'s message; anything else is logged on the
    server and named briefly, never shown as a stack trace."""
    cause = user_error_cause(error)
    if cause is not None:
        return str(cause)
    traceback.print_exception(error, file=sys.stderr)
    return f"Stylising failed ({type(error).__name__}); the server log has the details."


def save_result(image: Image.Image, photo: str, style: str) -> str:
    """Write the result where its download can fetch it, named `<photo>_<style>.png`."""
    folder = RESULTS / uuid.uuid4().hex
    folder.mkdir(parents=True)
    path = folder / result_name(photo, style)
    image.save(path)
    return str(path)


def preview(source: str | None, settings: DemoSettings) -> Image.Image | None:
    """The image `source` for showing on the page (None when there is none)."""
    return None if source is None else read_source(source, settings.max_side)


class ImagePicker:
    """An upload box plus a dropdown of samples, a preview, and the chosen source in a State."""

    def __init__(
        self,
        label: str,
        samples: list[str],
        default: str | None,
        message: gr.HTML,
        settings: DemoSettings,
        name: str,
    ):
        none = [("none", "")] if default is None else []
        choices = none + [(sample.removeprefix("sample:"), sample) for sample in samples]
        self.source = gr.State(default)
        with gr.Group():
            self.upload = gr.File(label=f"{label}: upload", elem_id=f"{name}-upload", height=120)
            self.sample = gr.Dropdown(
                choices, value=default or "", label="…or a sample", elem_id=f"{name}-sample"
            )
            self.preview = gr.Image(
                preview(default, settings),
                label=label,
                interactive=False,
                height=220,
                elem_id=f"{name}-preview",
            )
        outputs = [self.source, self.preview, message]

        def choose_upload(path: str | None, current: str | None):
            if path is None:
                return current, gr.skip(), ""
            try:
                image = read_source(path, settings.max_side)
            except Exception as error:
                return current, gr.skip(), message_html(error_text(error), error=True)
            return path, image, message_html(f"{label}: {Path(path).name}")

        def choose_sample(sample: str):
            source = sample or None
            note = f"{label}: {source.removeprefix('sample:')}" if source else ""
            return source, preview(source, settings), message_html(note), None

        self.upload.upload(choose_upload, [self.upload, self.source], outputs)
        self.sample.input(choose_sample, self.sample, [*outputs, self.upload])


def zoo_thumbnails(names: list[str], settings: DemoSettings) -> list[tuple[Image.Image, str]]:
    """A small stylised sample photo for each zoo style, captioned with its name."""
    return [
        (stylize_zoo(THUMBNAIL_PHOTO, name, THUMBNAIL_SIZE, "none", settings), name)
        for name in names
    ]


class RunningJobs:
    """The optimisations running for each browser session, so that Cancel can stop them."""

    def __init__(self):
        self.lock = threading.Lock()
        self.jobs: dict[str, set[OptimisationJob]] = {}

    def add(self, session: str, job: OptimisationJob) -> None:
        with self.lock:
            self.jobs.setdefault(session, set()).add(job)

    def remove(self, session: str, job: OptimisationJob) -> None:
        with self.lock:
            self.jobs.get(session, set()).discard(job)

    def cancel(self, session: str) -> int:
        """Cancel the session's jobs; returns how many there were."""
        with self.lock:
            jobs = list(self.jobs.get(session, ()))
        for job in jobs:
            job.cancel()
        return len(jobs)


def fast_handler(work: Callable[..., tuple[Image.Image, str]], photo_index: int = 0):
    """A click handler around `work(...) -> (image, style name)`: the result, its download and
    the message, or the error's sentence with the result left as it was."""

    def handle(*inputs):
        try:
            image, style = work(*inputs)
        except Exception as error:
            return gr.skip(), gr.skip(), message_html(error_text(error), error=True)
        photo = inputs[photo_index]
        path = save_result(image, photo, style)
        note = f"{source_label(photo)} in the style of {style}: {image.width}×{image.height} px."
        return image, gr.DownloadButton(value=path, visible=True), message_html(note)

    return handle


def build_page(settings: DemoSettings) -> gr.Blocks:
    """The demo page, wired to the stylisation functions of `nst.demo.jobs`."""
    fast_names, arbitrary_names = zoo_models("fast"), zoo_models("arbitrary")
    running = RunningJobs()
    with gr.Blocks(title="nst: neural style transfer", analytics_enabled=False) as page:
        gr.Markdown(
            "## nst: neural style transfer\nChoose a photo, then a style from the zoo, any "
            "painting, or an optimisation; the result appears beside the photo."
        )
        message = gr.HTML(elem_id="message")
        with gr.Row(equal_height=False):
            with gr.Column():
                photo = ImagePicker(
                    "Photo", SAMPLE_PHOTOS, DEFAULT_PHOTO, message, settings, "photo"
                )
            with gr.Column():
                result = gr.Image(
                    label="Result", interactive=False, format="png", height=400, elem_id="result"
                )
                download = gr.DownloadButton("Download", visible=False, elem_id="download")
        with gr.Row():
            size = gr.Slider(64, 2048, value=512, step=16, label="Long side, px", elem_id="size")
            color = gr.Radio(list(COLOR_MODES), value="none", label="Preserve the photo's colours")
        outputs = [result, download, message]
        with gr.Tabs():
            with gr.Tab("Zoo styles", elem_id="tab-zoo"):
                if fast_names:
                    chosen_style = gr.State(fast_names[0])
                    gallery = gr.Gallery(
                        zoo_thumbnails(fast_names, settings),
                        label="Pick a style",
                        columns=6,
                        height=220,
                        allow_preview=False,
                        fit_columns=False,
                        selected_index=0,
                        elem_id="zoo-gallery",
                    )
                    zoo_button = gr.Button("Stylise", variant="primary", elem_id="zoo-stylise")

                    def pick_style(selection: gr.SelectData):
                        name = fast_names[selection.index]
                        return name, message_html(f"Style: {name}.")

                    gallery.select(pick_style, None, [chosen_style, message])
                    zoo_button.click(
                        fast_handler(
                            lambda source, name, side, mode: (
                                stylize_zoo(source, name, int(side), mode, settings),
                                name,
                            )
                        ),
                        [photo.source, chosen_style, size, color],
                        outputs,
                        concurrency_id="fast",
                        concurrency_limit=FAST_SLOTS,
                    )
                else:
                    gr.Markdown(NO_ZOO_MODELS, elem_id="zoo-note")
            with gr.Tab("Any painting", elem_id="tab-painting"):
                if not arbitrary_names:
                    gr.Markdown(NO_ARBITRARY_MODEL, elem_id="painting-note")
                with gr.Row():
                    with gr.Column():
                        first = ImagePicker(
                            "Painting",
                            SAMPLE_PAINTINGS,
                            DEFAULT_PAINTING,
                            message,
                            settings,
                            "painting",
                        )
                        strength = gr.Slider(0, 1, value=1, step=0.05, label="Strength")
                    with gr.Column():
                        second = ImagePicker(
                            "Second painting (optional)",
                            SAMPLE_PAINTINGS,
                            None,
                            message,
                            settings,
                            "second-painting",
                        )
                        blend = gr.Slider(0, 1, value=0.5, step=0.05, label="Blend with it")
                painting_button = gr.Button(
                    "Stylise",
                    variant="primary",
                    interactive=bool(arbitrary_names),
                    elem_id="painting-stylise",
                )

                def with_painting(source, first_painting, second_painting, power, mix, side, mode):
                    paintings = [p for p in (first_painting, second_painting) if p]
                    image = stylize_painting(
                        source, paintings, power, mix, int(side), mode, settings
                    )
                    return image, "+".join(source_label(p) for p in paintings)

                painting_button.click(
                    fast_handler(with_painting),
                    [photo.source, first.source, second.source, strength, blend, size, color],
                    outputs,
                    concurrency_id="fast",
                    concurrency_limit=FAST_SLOTS,
                )
            with gr.Tab("Optimise (basic / improved)", elem_id="tab-optimise"):
                with gr.Row():
                    with gr.Column():
                        style = ImagePicker(
                            "Style",
                            SAMPLE_PAINTINGS,
                            DEFAULT_PAINTING,
                            message,
                            settings,
                            "style",
                        )
                    with gr.Column():
                        method = gr.Radio(list(METHODS), value="basic", label="Method")
                        iterations = gr.Slider(
                            10, 1000, value=200, step=10, label="Iterations", elem_id="iterations"
                        )
                        optimise_button = gr.Button(
                            "Optimise", variant="primary", elem_id="optimise"
                        )
                        cancel_button = gr.Button("Cancel", variant="stop", elem_id="cancel")

                def optimise(source, style_source, name, steps, side, mode, request: gr.Request):
                    try:
                        photo_image = read_source(source, settings.max_side)
                        style_image = read_source(style_source or "", settings.max_side)
                        job = OptimisationJob(
                            photo_image, style_image, name, steps, side, mode, settings
                        )
                    except Exception as error:
                        yield gr.skip(), gr.skip(), message_html(error_text(error), error=True)
                        return
                    yield from follow(job, source, f"{source_label(style_source)}_{name}", request)

                def follow(job, source, style_name, request) -> Iterator[tuple]:
                    running.add(request.session_hash, job)
                    try:
                        job.start()
                        for update in job.updates_until_done():
                            if update.state == "done":
                                path = save_result(update.image, source, style_name)
                                note = f"Done: {update.total} steps of {job.method}."
                                done = gr.DownloadButton(value=path, visible=True)
                                yield update.image, done, message_html(note)
                            elif update.state == "running":
                                note = f"{job.method}: step {update.step} of {update.total}…"
                                image = gr.skip() if update.image is None else update.image
                                yield image, gr.DownloadButton(visible=False), message_html(note)
                            elif update.state == "cancelled":
                                note = f"Cancelled after {update.step} of {update.total} steps."
                                yield gr.skip(), gr.skip(), message_html(note)
                            else:
                                yield gr.skip(), gr.skip(), message_html(update.message, True)
                    finally:
                        job.cancel()
                        running.remove(request.session_hash, job)

                optimise_button.click(
                    optimise,
                    [photo.source, style.source, method, iterations, size, color],
                    outputs,
                    concurrency_id="optimise",
                    concurrency_limit=OPTIMISATION_SLOTS,
                    show_progress="minimal",
                )

                def cancel(request: gr.Request):
                    if running.cancel(request.session_hash):
                        return message_html("Cancelling…")
                    return message_html("Nothing is running in this tab.")

                cancel_button.click(cancel, None, message, concurrency_limit=None)
    return page
