"""Part A, 0 and 1.5–1.6: samples from the model, without and with classifier-free guidance."""

from __future__ import annotations

import torch

from ..diffusion.samplers import classifier_free, conditional
from ..figures import FrameRecorder
from ..section import Figure, Result
from .common import animate, from_noise, generator, quoted, score, short, table, upsampled_table
from .params import CFGParams, NoiseSampleParams, TextToImageParams

ANIMATED = 10  # samples shown in a sampling animation, at most


def text_to_image(p: TextToImageParams, ctx) -> Result:
    backend = ctx.backend()
    x = torch.stack(
        [
            backend.text_to_image(p.prompts, steps, p.guidance, generator(p.seed))
            for steps in p.steps
        ]
    )  # (steps, prompts, C, H, W)
    labels = dict(row_labels=[f"{s} steps" for s in p.steps], col_labels=short(p.prompts))
    table(backend, x, ctx.out / "samples.png", **labels)
    figures = [
        Figure(
            "samples.png",
            f"One sample per prompt at {' and '.join(map(str, p.steps))} steps, seed {p.seed}, \\(\\gamma = {p.guidance:g}\\)",
        )
    ]
    prompts = p.prompts * len(p.steps)
    if upsampled_table(
        backend,
        x.flatten(0, 1),
        prompts,
        generator(p.seed),
        ctx.out / "upsampled.png",
        len(p.steps),
        **labels,
    ):
        figures.append(Figure("upsampled.png", "The same samples upsampled to 256×256 by stage II"))
    pixels = backend.to_pixels(x.flatten(0, 1))
    samples = {
        "images": pixels,
        "steps": [s for s in p.steps for _ in p.prompts],
        "prompts": prompts,
    }
    labels = backend.labels_of(prompts)
    correct = score(backend, pixels, labels)
    metrics, rows = {}, []
    if correct is not None:
        samples["labels"] = labels
        for k, steps in enumerate(p.steps):
            metrics[f"accuracy_steps_{steps}"] = float(
                correct[k * len(p.prompts) : (k + 1) * len(p.prompts)].mean()
            )
            rows.append({"steps": steps, "accuracy": metrics[f"accuracy_steps_{steps}"]})
    return Result(metrics=metrics, figures=figures, samples=samples, data={"rows": rows})


def sampling(p: NoiseSampleParams, ctx) -> Result:
    backend = ctx.backend()
    gen = generator(p.seed)
    frames = FrameRecorder(min(p.num_samples, 5))
    x = from_noise(
        backend,
        conditional(backend.denoiser, backend.denoiser.encode([p.prompt])),
        p.num_samples,
        gen,
        frames,
    )
    table(backend, x[None].cpu(), ctx.out / "samples.png")
    animate(backend, frames.frames, ctx.out / "sampling.gif")
    figures = [
        Figure(
            "samples.png",
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
    if upsampled_table(backend, x, [p.prompt] * p.num_samples, gen, ctx.out / "upsampled.png", 1):
        figures.append(Figure("upsampled.png", "Upsampled to 256×256 by stage II"))
    pixels = backend.to_pixels(x)
    metrics = (
        {"confident": float(backend.scorer.confident(pixels).mean())}
        if backend.scorer is not None
        else {}
    )
    return Result(
        metrics=metrics,
        figures=figures,
        samples={"images": pixels, "prompts": [p.prompt] * p.num_samples},
    )


def cfg(p: CFGParams, ctx) -> Result:
    backend = ctx.backend()
    den = backend.denoiser
    gen = generator(p.seed)
    prompts = [prompt for prompt in p.prompts for _ in range(p.num_samples)]  # prompt-major
    frames = FrameRecorder(min(len(prompts), ANIMATED))
    x = from_noise(
        backend,
        classifier_free(den, den.encode(prompts), den.encode([""]), p.guidance),
        len(prompts),
        gen,
        frames,
    )
    table(
        backend,
        x.cpu().unflatten(0, (len(p.prompts), p.num_samples)),
        ctx.out / "samples.png",
        row_labels=short(p.prompts),
    )
    animate(backend, frames.frames, ctx.out / "sampling.gif")
    figures = [
        Figure(
            "samples.png",
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
    if upsampled_table(backend, x, prompts, gen, ctx.out / "upsampled.png", len(p.prompts)):
        figures.append(Figure("upsampled.png", "Upsampled to 256×256 by stage II"))
    pixels = backend.to_pixels(x)
    samples = {"images": pixels, "prompts": prompts}
    labels = backend.labels_of(prompts)
    correct = score(backend, pixels, labels)
    metrics, rows = {}, []
    if correct is not None:
        metrics["accuracy"] = float(correct.mean())
        metrics["confident"] = float(backend.scorer.confident(pixels).mean())
        # Over so few samples a Fréchet distance is noisy, but it compares guidance scales at the same count.
        metrics["frechet"] = backend.scorer.frechet(pixels)
        for d in sorted(set(labels.tolist())):
            metrics[f"accuracy_digit_{d}"] = float(correct[labels == d].mean())
            rows.append({"digit": d, "accuracy": metrics[f"accuracy_digit_{d}"]})
        samples["labels"] = labels
    return Result(metrics=metrics, figures=figures, samples=samples, data={"rows": rows})
