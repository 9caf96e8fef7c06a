"""Part A, 1.1–1.4: the forward process, and three ways back: a blur, one step, many steps."""

from __future__ import annotations

import torch
from safetensors.torch import load_file, save_file
from torchvision.transforms.functional import gaussian_blur

from ..diffusion.samplers import conditional, forward, iterative_denoise, one_step_estimate
from ..figures import FrameRecorder
from ..section import Figure, Result
from .common import animate, generator, input_image, psnr, quoted, table
from .params import BlurParams, ForwardParams, IterativeParams, OneStepParams

NOISY = "noisy.safetensors"  # a1.1's private result: the test image and its noisy copies
SHOWN_RUNS = 5  # rows of a1.4's comparison


def forward_process(p: ForwardParams, ctx) -> Result:
    backend = ctx.backend()
    x0 = input_image(ctx, backend, p.image)  # (1, C, H, W)
    abar = backend.denoiser.alphas_cumprod.to(x0.device)
    gen = generator(p.seed)
    noisy = torch.cat([forward(x0, t, abar, gen)[0] for t in p.timesteps])  # (len(t), C, H, W)
    save_file({"x0": x0.cpu().contiguous(), "noisy": noisy.cpu().contiguous()}, ctx.private / NOISY)
    table(
        backend,
        torch.cat([x0, noisy])[None],
        ctx.out / "forward.png",
        col_labels=["original"] + [f"t = {t}" for t in p.timesteps],
    )
    clean = backend.to_pixels(x0)
    rows = [
        {"t": t, "abar": float(abar[t]), "psnr_noisy": psnr(backend.to_pixels(x), clean)}
        for t, x in zip(p.timesteps, noisy)
    ]
    return Result(
        metrics={f"psnr_noisy_t_{r['t']}": r["psnr_noisy"] for r in rows},
        figures=[
            Figure(
                "forward.png",
                f"The test image ({p.image}) and \\(x_t = \\sqrt{{\\bar\\alpha_t}}\\,x_0 + \\sqrt{{1 - \\bar\\alpha_t}}\\,\\epsilon\\)",
                pixelated=backend.spec.pixelated,
            )
        ],
        data={"rows": rows, "image": p.image},
    )


def _noisy(ctx):
    """The test image and its noisy copies from a1.1, with a1.1's timesteps."""
    tensors = load_file(str(ctx.needs["a1.1"].private / NOISY))
    return tensors["x0"], tensors["noisy"], ctx.params_of("a1.1").timesteps


def _blur(x: torch.Tensor, p: BlurParams) -> torch.Tensor:
    return gaussian_blur(x, [p.kernel_size, p.kernel_size], [p.sigma, p.sigma])


def classical_denoising(p: BlurParams, ctx) -> Result:
    backend = ctx.backend()
    x0, noisy, timesteps = _noisy(ctx)
    blurred = _blur(noisy, p)
    table(
        backend,
        torch.stack([noisy, blurred]),
        ctx.out / "blur.png",
        row_labels=["noisy", "blurred"],
        col_labels=[f"t = {t}" for t in timesteps],
    )
    clean = backend.to_pixels(x0)
    rows = [
        {
            "t": t,
            "psnr_noisy": psnr(backend.to_pixels(n[None]), clean),
            "psnr_blur": psnr(backend.to_pixels(b[None]), clean),
        }
        for t, n, b in zip(timesteps, noisy, blurred)
    ]
    metrics = {}
    for r in rows:
        metrics[f"psnr_noisy_t_{r['t']}"] = r["psnr_noisy"]
        metrics[f"psnr_blur_t_{r['t']}"] = r["psnr_blur"]
    return Result(
        metrics=metrics,
        figures=[
            Figure(
                "blur.png",
                f"Gaussian blur, kernel {p.kernel_size}, \\(\\sigma = {p.sigma:g}\\)",
                pixelated=backend.spec.pixelated,
            )
        ],
        data={"rows": rows},
    )


def one_step_denoising(p: OneStepParams, ctx) -> Result:
    backend = ctx.backend()
    x0, noisy, timesteps = _noisy(ctx)
    cond = backend.denoiser.encode([p.prompt])
    estimates = torch.cat(
        [
            one_step_estimate(backend.denoiser, x.to(backend.device)[None], t, cond)
            for t, x in zip(timesteps, noisy)
        ]
    )
    shown = torch.stack(
        [x0.expand_as(noisy), noisy, estimates.cpu()], dim=1
    )  # (len(t), 3, C, H, W)
    table(
        backend,
        shown,
        ctx.out / "one_step.png",
        row_labels=[f"t = {t}" for t in timesteps],
        col_labels=["original", "noisy", "one-step estimate"],
    )
    clean = backend.to_pixels(x0)
    rows = [
        {"t": t, "psnr_one_step": psnr(backend.to_pixels(e[None]), clean)}
        for t, e in zip(timesteps, estimates)
    ]
    return Result(
        metrics={f"psnr_one_step_t_{r['t']}": r["psnr_one_step"] for r in rows},
        figures=[
            Figure(
                "one_step.png",
                f"\\(\\hat x_0\\) from one noise estimate, {quoted(p.prompt)}",
                pixelated=backend.spec.pixelated,
            )
        ],
        data={"rows": rows},
    )


def iterative_denoising(p: IterativeParams, ctx) -> Result:
    backend = ctx.backend()
    den = backend.denoiser
    ts = backend.timesteps
    x0 = input_image(ctx, backend, ctx.params_of("a1.1").image).expand(
        p.runs, *backend.shape
    )  # (runs, C, H, W)
    gen = generator(p.seed)
    t0 = ts[p.i_start]
    x_t, _ = forward(x0, t0, den.alphas_cumprod.to(x0.device), gen)  # fresh noise for every run
    cond = den.encode([p.prompt])
    shown = FrameRecorder(1, keep=set(range(p.i_start, len(ts), p.show_every)))
    frames = FrameRecorder(1)

    def record(info):
        shown(info)
        frames(info)

    clean = iterative_denoise(
        conditional(den, cond),
        x_t,
        ts,
        den.alphas_cumprod,
        i_start=p.i_start,
        generator=gen,
        callback=record,
    )
    one_step = one_step_estimate(den, x_t, t0, cond)
    blurred = _blur(x_t.cpu(), ctx.params_of("a1.2"))
    steps = [ts[i] for i in range(p.i_start, len(ts) - 1, p.show_every)]
    table(
        backend,
        torch.cat([f[:1] for f in shown.frames])[None],
        ctx.out / "steps.png",
        col_labels=[f"t = {t}" for t in steps],
    )
    shown_runs = min(p.runs, SHOWN_RUNS)
    final = torch.stack(
        [
            x0[:shown_runs].cpu(),
            x_t[:shown_runs].cpu(),
            clean[:shown_runs].cpu(),
            one_step[:shown_runs].cpu(),
            blurred[:shown_runs],
        ],
        dim=1,
    )  # (runs shown, 5, C, H, W)
    table(
        backend,
        final,
        ctx.out / "compare.png",
        col_labels=["original", f"noisy, t = {t0}", "iterative", "one-step", "blurred"],
        row_labels=[f"run {k + 1}" for k in range(shown_runs)] if shown_runs > 1 else [],
    )
    animate(backend, frames.frames, ctx.out / "denoising.gif")
    px = backend.to_pixels(x0)
    estimates = {"noisy": x_t, "iterative": clean, "one_step": one_step, "blur": blurred}
    metrics = {f"psnr_{name}": psnr(backend.to_pixels(x), px) for name, x in estimates.items()}
    if backend.scorer is not None:  # does the estimate still show what the original shows?
        original = backend.scorer.predict(px)
        for name in ("iterative", "one_step", "blur"):
            metrics[f"kept_{name}"] = float(
                (backend.scorer.predict(backend.to_pixels(estimates[name])) == original)
                .float()
                .mean()
            )
    pixelated = backend.spec.pixelated
    return Result(
        metrics={**metrics, "steps": len(ts) - 1 - p.i_start},
        figures=[
            Figure(
                "steps.png",
                f"\\(x_t\\) every {p.show_every} steps from \\(t = {t0}\\)",
                pixelated=pixelated,
            ),
            Figure(
                "compare.png",
                "Iterative denoising against one step and a Gaussian blur"
                + (
                    f", for the first {shown_runs} of {p.runs} noisy copies"
                    if shown_runs > 1
                    else ""
                ),
                pixelated=pixelated,
            ),
            Figure(
                "denoising.gif",
                "\\(x_t\\) (top) and the estimate \\(\\hat x_0\\) (bottom) at every step",
                pixelated=True,
                enlarge=True,
            ),
        ],
        samples={
            "images": backend.to_pixels(torch.cat([clean, one_step])),
            "method": ["iterative"] * p.runs + ["one_step"] * p.runs,
        },
        data={
            "t_start": t0,
            "timesteps": ts,
            "model_calls": len(ts) - 1 - p.i_start,
            "runs": p.runs,
        },
    )
