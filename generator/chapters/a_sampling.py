"""Part A, 0 and 1.5–1.6: samples from the model, without and with classifier-free guidance."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..section import Figure, Headline, Result, lazy, percent, plain, section
from .common import (
    animate,
    confident,
    frechet,
    from_noise,
    known,
    labels_of,
    quoted,
    real_digits,
    rng,
    score,
    short,
    sure,
    table,
    upsampled,
    versus_real,
)
from .params import GifFrames, Guidance, OneStepParams, PromptsParams, Samples

# Imported where a run first uses them: reading the table (gen list) imports no torch.
torch = lazy("torch")
samplers = lazy("..diffusion.samplers", __package__)
figs = lazy("..figures", __package__)


class TextToImageParams(PromptsParams):
    steps: list[Annotated[int, Field(ge=2, le=1000)]] = Field(
        min_length=1, max_length=8, description="num_inference_steps, one row each"
    )
    guidance: Guidance

    def check(self, config, sid):
        super().check(config, sid)
        for steps in self.steps:
            config.spec.check_steps(config, f"{sid}.steps", steps)


class NoiseSampleParams(OneStepParams):
    num_samples: Samples
    gif_frames: GifFrames  # at most the sampling steps are shown


class CFGParams(PromptsParams):
    num_samples: Samples
    guidance: Guidance
    gif_frames: GifFrames  # at most the sampling steps are shown


def _frames(backend, p) -> set[int]:
    """The steps the animation shows: `gif_frames` of the backend's sampling steps, evenly."""
    steps = len(backend.timesteps) - 1
    return figs.evenly_spread(steps, p.gif_frames)


def _text_to_image_headline(r) -> Headline | None:
    steps = r.params["steps"][-1]
    if f"confident_right_steps_{steps}" not in r.metrics:
        return None
    return Headline(
        f"read confidently as the digit asked for ({plain(steps)} steps)",
        percent(r.metrics[f"confident_right_steps_{steps}"]),
    )


@section(
    "a0",
    "Text-to-image with the pretrained model",
    TextToImageParams,
    version=4,
    uses_backend=True,
    headline=_text_to_image_headline,
)
def text_to_image(p: TextToImageParams, ctx) -> Result:
    backend = ctx.backend()
    x = torch.stack(
        [backend.text_to_image(p.prompts, steps, p.guidance, rng(p.seed)) for steps in p.steps]
    )  # (steps, prompts, C, H, W)
    labels = dict(row_labels=[f"{s} steps" for s in p.steps], col_labels=short(p.prompts))
    table(backend, x, ctx.out / "samples.webp", **labels)
    figures = [
        Figure(
            "samples.webp",
            f"One sample per prompt at {' and '.join(map(str, p.steps))} steps, seed {p.seed}, "
            f"\\(\\gamma = {p.guidance:g}\\)",
        )
    ]
    prompts = p.prompts * len(p.steps)
    figures += upsampled(
        backend,
        x.flatten(0, 1),
        prompts,
        rng(p.seed),
        ctx.out,
        len(p.steps),
        "The same samples",
        **labels,
    )
    pixels = backend.to_pixels(x.flatten(0, 1))
    samples = {
        "images": pixels,
        "steps": [s for s in p.steps for _ in p.prompts],
        "prompts": prompts,
    }
    labels = labels_of(backend, prompts)
    correct, right = score(backend, pixels, labels), sure(backend, pixels, labels)
    metrics, rows = {}, []
    if correct is not None:
        samples["labels"] = labels
        for k, steps in enumerate(p.steps):
            run = slice(k * len(p.prompts), (k + 1) * len(p.prompts))
            metrics[f"accuracy_steps_{steps}"] = float(correct[run].mean())
            metrics[f"confident_right_steps_{steps}"] = float(right[run].mean())
            rows.append(
                {
                    "steps": steps,
                    "accuracy": metrics[f"accuracy_steps_{steps}"],
                    "confident_right": metrics[f"confident_right_steps_{steps}"],
                }
            )
    return Result(metrics=metrics, figures=figures, samples=samples, data={"rows": rows})


@section(
    "a1.5",
    "Sampling from pure noise",
    NoiseSampleParams,
    version=4,
    uses_backend=True,
    headline=versus_real("read confidently as some digit", "confident", "real_confident"),
)
def sampling(p: NoiseSampleParams, ctx) -> Result:
    backend = ctx.backend()
    gen = rng(p.seed)
    frames = figs.FrameRecorder(
        min(p.num_samples, figs.ANIMATED_UNCONDITIONAL), _frames(backend, p)
    )
    x = from_noise(
        backend,
        samplers.conditional(backend.denoiser, backend.denoiser.encode([p.prompt])),
        p.num_samples,
        gen,
        frames,
    )
    table(backend, x[None].cpu(), ctx.out / "samples.webp")
    animate(backend, frames.frames, ctx.out / "sampling.gif")
    figures = [
        Figure(
            "samples.webp",
            f"{p.num_samples} samples, {quoted(p.prompt)}, no guidance",
            pixelated=backend.spec.pixelated,
        ),
        Figure(
            "sampling.gif",
            "\\(x_t\\) (top) and \\(\\hat x_0\\) (bottom) over the steps",
            pixelated=True,
            enlarge=True,
        ),
    ]
    figures += upsampled(backend, x, [p.prompt] * p.num_samples, gen, ctx.out, 1)
    pixels = backend.to_pixels(x)
    return Result(
        metrics=known(
            confident=confident(backend, pixels),
            real_confident=real_digits(backend).get("test_confident"),
        ),
        figures=figures,
        samples={"images": pixels, "prompts": [p.prompt] * p.num_samples},
    )


@section(
    "a1.6",
    "Classifier-free guidance",
    CFGParams,
    version=5,
    uses_backend=True,
    headline=versus_real(
        "read confidently as the digit asked for", "confident_right", "real_confident_right"
    ),
)
def cfg(p: CFGParams, ctx) -> Result:
    backend = ctx.backend()
    den = backend.denoiser
    gen = rng(p.seed)
    prompts = [prompt for prompt in p.prompts for _ in range(p.num_samples)]  # prompt-major
    frames = figs.FrameRecorder(min(len(prompts), figs.ANIMATED), _frames(backend, p))
    x = from_noise(
        backend,
        samplers.classifier_free(den, den.encode(prompts), den.encode([""]), p.guidance),
        len(prompts),
        gen,
        frames,
    )
    table(
        backend,
        x.cpu().unflatten(0, (len(p.prompts), p.num_samples)),
        ctx.out / "samples.webp",
        row_labels=short(p.prompts),
    )
    animate(backend, frames.frames, ctx.out / "sampling.gif")
    figures = [
        Figure(
            "samples.webp",
            f"{p.num_samples} samples per prompt with \\(\\gamma = {p.guidance:g}\\)",
            pixelated=backend.spec.pixelated,
        ),
        Figure(
            "sampling.gif",
            "Guided sampling: \\(x_t\\) (top) and \\(\\hat x_0\\) (bottom)",
            pixelated=True,
            enlarge=True,
        ),
    ]
    figures += upsampled(backend, x, prompts, gen, ctx.out, len(p.prompts))
    pixels = backend.to_pixels(x)
    samples = {"images": pixels, "prompts": prompts}
    labels = labels_of(backend, prompts)
    correct, right = score(backend, pixels, labels), sure(backend, pixels, labels)
    metrics, rows = {}, []
    if correct is not None:
        metrics["accuracy"] = float(correct.mean())
        metrics["confident_right"] = float(right.mean())
        metrics["real_confident_right"] = real_digits(backend)["test_confident_right"]
        metrics["confident"] = confident(backend, pixels)
        # Over so few samples a Fréchet distance is noisy, but it compares guidance scales at
        # the same count.
        metrics["frechet"] = frechet(backend, pixels)
        for d in sorted(set(labels.tolist())):
            metrics[f"accuracy_digit_{d}"] = float(correct[labels == d].mean())
            metrics[f"confident_right_digit_{d}"] = float(right[labels == d].mean())
            rows.append(
                {
                    "digit": d,
                    "accuracy": metrics[f"accuracy_digit_{d}"],
                    "confident_right": metrics[f"confident_right_digit_{d}"],
                }
            )
        samples["labels"] = labels
    return Result(metrics=metrics, figures=figures, samples=samples, data={"rows": rows})
