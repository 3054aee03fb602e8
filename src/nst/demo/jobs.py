"""The demo's work, free of any web code: stylise with a zoo model, with any painting (the zoo's
arbitrary-style model), or by optimisation (basic/improved) in a thread that reports each step
and stops when cancelled.
"""

import queue
import sys
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass

import pytorch_lightning as pl
from PIL import Image
from torch import Tensor

import nst
from nst import zoo
from nst.api import compose_config, method_config
from nst.demo.uploads import DEFAULT_MAX_SIDE, read_source
from nst.errors import UserError, user_error_cause
from nst.image import (
    finish_color_preservation,
    from_pil,
    resize_long_side,
    to_pil,
)

METHODS = ("basic", "improved")
NO_ARBITRARY_MODEL = (
    "No arbitrary-style model is in the zoo yet, so stylising with any painting is not "
    "available; the Optimise tab takes any painting meanwhile."
)
NO_ZOO_MODELS = "No zoo styles are installed yet; use the Optimise tab meanwhile."
HYDRA_LOCK = threading.Lock()  # Hydra's compose API keeps global state: one composition at a time


@dataclass(frozen=True)
class DemoSettings:
    """What the server was started with."""

    max_side: int = DEFAULT_MAX_SIDE  # px, long side of the largest upload
    device: str = "auto"  # auto | cpu | cuda | mps
    vgg_weights: str = "auto"  # the loss network's weights for basic/improved (conf/loss_net)
    preview_every: int = 10  # steps between intermediate images of an optimisation


def zoo_models(method: str) -> list[str]:
    """The names of the zoo's models trained by `method` (`fast` or `arbitrary`)."""
    return [name for name, entry in zoo.registry().items() if entry.get("method") == method]


def stylize_with_model(
    photo: Image.Image, name: str, styles: list[Image.Image] | None = None, **options
) -> Image.Image:
    """`nst.stylize` with zoo model `name` (and `styles` for an arbitrary-style model)."""
    with HYDRA_LOCK:
        return nst.stylize(photo, styles, model=name, **options)


def stylize_zoo(
    photo: str, name: str | None, size: int, preserve_color: str, settings: DemoSettings
) -> Image.Image:
    """Stylise the photo `photo` (an upload's path or `sample:NAME`) with zoo style `name`."""
    if name not in zoo_models("fast"):
        raise UserError(NO_ZOO_MODELS if not zoo_models("fast") else "Pick a style first.")
    image = read_source(photo, settings.max_side)
    return stylize_with_model(
        image, name, size=size, preserve_color=preserve_color, device=settings.device
    )


def stylize_painting(
    photo: str,
    paintings: list[str],
    strength: float,
    blend: float,
    size: int,
    preserve_color: str,
    settings: DemoSettings,
) -> Image.Image:
    """Stylise `photo` like `paintings[0]` (blended with `paintings[1]` by `blend`, 0 … 1) with the
    zoo's arbitrary-style model, at `strength` (0: the photo's own style … 1: the painting's)."""
    models = zoo_models("arbitrary")
    if not models:
        raise UserError(NO_ARBITRARY_MODEL)
    if not paintings:
        raise UserError("Upload a painting or pick a sample painting first.")
    image = read_source(photo, settings.max_side)
    styles = [read_source(painting, settings.max_side) for painting in paintings[:2]]
    weights = [1.0 - blend, blend] if len(styles) == 2 else None
    return stylize_with_model(
        image,
        models[0],
        styles,
        strength=strength,
        style_weights=weights,
        size=size,
        preserve_color=preserve_color,
        device=settings.device,
    )


@dataclass
class JobUpdate:
    """One report of an optimisation: its step, and an image when there is one to show."""

    step: int
    total: int
    image: Image.Image | None = None
    state: str = "running"  # running | done | cancelled | failed
    message: str = ""


class JobCancelled(Exception):
    """Raised inside the optimisation's Trainer to stop it at the next step."""


class ReportSteps(pl.Callback):
    """Report each optimiser step (with an intermediate image every `every` steps) to `job`,
    and stop the Trainer as soon as the job is cancelled."""

    def __init__(self, job: "OptimisationJob", finish, every: int):
        self.job, self.finish, self.every = job, finish, every

    def on_train_start(self, trainer, module) -> None:
        if self.job.stop.is_set():
            raise JobCancelled

    def on_train_batch_end(self, trainer, module, *args) -> None:
        step = trainer.global_step
        self.job.steps_done = step
        if self.job.stop.is_set():
            raise JobCancelled
        show = self.every > 0 and step % self.every == 0 and step < self.job.iterations
        image = to_pil(self.finish(module.image.detach())) if show else None
        self.job.updates.put(JobUpdate(step, self.job.iterations, image))


class OptimisationJob:
    """A basic/improved stylisation running in its own thread; `updates()` yields its progress,
    `cancel()` stops it within one optimiser step."""

    def __init__(
        self,
        photo: Image.Image,
        painting: Image.Image,
        method: str,
        iterations: int,
        size: int,
        preserve_color: str,
        settings: DemoSettings,
    ):
        if method not in METHODS:
            raise UserError(f"Unknown method '{method}'; use basic or improved.")
        self.photo, self.painting, self.method = photo, painting, method
        self.iterations, self.size, self.preserve_color = int(iterations), int(size), preserve_color
        self.settings = settings
        self.stop = threading.Event()
        self.updates: queue.Queue[JobUpdate] = queue.Queue()
        self.steps_done = 0
        self.thread = threading.Thread(target=self.run, name=f"nst-{method}", daemon=True)

    def start(self) -> "OptimisationJob":
        """Start optimising in the job's thread."""
        self.thread.start()
        return self

    def cancel(self) -> None:
        """Ask the optimisation to stop at its next step."""
        self.stop.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the job's thread to end."""
        self.thread.join(timeout)

    def run(self) -> None:
        """The thread's work: optimise, then report done, cancelled or failed."""
        try:
            image = self.optimise()
            update = JobUpdate(self.iterations, self.iterations, image, "done")
        except JobCancelled:
            update = JobUpdate(self.steps_done, self.iterations, None, "cancelled", "Cancelled.")
        except Exception as error:
            cause = user_error_cause(error)
            if cause is None:
                traceback.print_exc(file=sys.stderr)
            message = str(cause) if cause else f"Stylising failed ({type(error).__name__})."
            update = JobUpdate(self.steps_done, self.iterations, None, "failed", message)
        self.updates.put(update)

    def optimise(self) -> Image.Image:
        """Run `optimize_image` with the job's settings and a `ReportSteps` callback."""
        from nst.losses import build_loss
        from nst.methods.basic import optimize_image
        from nst.methods.improved import build_improved_loss

        with HYDRA_LOCK:
            cfg = compose_config("stylize", [f"method={self.method}"])
        cfg.loss_net.weights = self.settings.vgg_weights
        cfg.size, cfg.preserve_color = self.size, self.preserve_color
        method = method_config(cfg)
        method.iterations, method.save_every = self.iterations, 0
        content = from_pil(self.photo)
        work_content = resize_long_side(content, self.size)

        def finish_preview(image: Tensor) -> Tensor:
            mode = self.preserve_color
            return finish_color_preservation(image.clamp(0, 1).cpu(), work_content, mode)

        report = ReportSteps(self, finish_preview, self.settings.preview_every)
        build = build_improved_loss if self.method == "improved" else build_loss
        result = optimize_image(
            content,
            [from_pil(self.painting)],
            method,
            cfg.loss_net,
            device=self.settings.device,
            seed=cfg.seed,
            progress=False,
            callbacks=[report],
            build=build,
        )
        return to_pil(result)

    def updates_until_done(self) -> Iterator[JobUpdate]:
        """The job's updates as they come, latest first when several wait, ending with the last
        (done, cancelled or failed)."""
        while True:
            update = self.updates.get()
            latest_image = update.image
            while update.state == "running" and not self.updates.empty():
                update = self.updates.get()
                latest_image = update.image or latest_image
            if update.state == "running":
                update.image = latest_image
            yield update
            if update.state != "running":
                return
