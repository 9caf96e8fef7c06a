"""Part A, 1.1–1.4: the forward process, and three ways back: a blur, one step, many steps."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..inputs import check_image
from ..section import Figure, Headline, Params, Result, db, lazy, plain, section
from .common import agreement, animate, input_image, known, psnr, quoted, rng, table
from .params import KernelSize, OneStepParams, Spec, check_odd

# Imported where a run first uses them: reading the table (gen list) imports no torch.
torch = lazy("torch")
safetensors = lazy("safetensors.torch")
TF = lazy("torchvision.transforms.functional")
samplers = lazy("..diffusion.samplers", __package__)
figs = lazy("..figures", __package__)

NOISY = "noisy.safetensors"  # a1.1's private result: the test image and its noisy copies
SHOWN_RUNS = 5  # rows of a1.4's comparison


class ForwardParams(Params):
    image: Spec = Field(description="the test image: a path or mnist:N")
    timesteps: list[Annotated[int, Field(ge=0, le=100000)]] = Field(
        min_length=1, max_length=12, description="t of each noisy image"
    )

    def check(self, config, sid):
        check_image(self.image, config.root)
        config.spec.check_schedule(config, f"{sid}.timesteps", timesteps=self.timesteps)

    def input_files(self):
        return [self.image]


class BlurParams(Params):
    kernel_size: KernelSize
    sigma: float = Field(gt=0.0, le=50.0, description="the Gaussian's σ in pixels")

    def check(self, config, sid):
        check_odd(f"{sid}.kernel_size", self.kernel_size)


class IterativeParams(OneStepParams):
    i_start: int = Field(ge=0, le=100000, description="index of the first strided timestep")
    show_every: int = Field(ge=1, le=100, description="show every n-th step")
    runs: int = Field(
        ge=1,
        le=200,
        description="noisy copies of the test image, each with its own noise; figures show the "
        "first",
    )

    def check(self, config, sid):
        super().check(config, sid)
        config.spec.check_schedule(config, f"{sid}.i_start", i_start=self.i_start)


def _psnr_at_last_t(column: str):
    """a1.1 to a1.3's headline: the PSNR of one row of their table at its largest t."""

    def headline(r) -> Headline:
        row = r.data["rows"][-1]
        return Headline(f"PSNR at \\(t = {plain(row['t'])}\\): {{}} dB", db(row[column]))

    return headline


@section(
    "a1.1",
    "The forward process",
    ForwardParams,
    version=2,
    uses_backend=True,
    headline=_psnr_at_last_t("psnr_noisy"),
)
def forward_process(p: ForwardParams, ctx) -> Result:
    backend = ctx.backend()
    x0 = input_image(ctx, backend, p.image)  # (1, C, H, W)
    abar = backend.denoiser.alphas_cumprod.to(x0.device)
    gen = rng(p.seed)
    noisy = torch.cat(
        [samplers.forward(x0, t, abar, gen)[0] for t in p.timesteps]
    )  # (len(t), C, H, W)
    safetensors.save_file(
        {"x0": x0.cpu().contiguous(), "noisy": noisy.cpu().contiguous()}, ctx.private / NOISY
    )
    table(
        backend,
        torch.cat([x0, noisy])[None],
        ctx.out / "forward.webp",
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
                "forward.webp",
                f"The test image ({p.image}) and \\(x_t = \\sqrt{{\\bar\\alpha_t}}\\,x_0 + "
                "\\sqrt{1 - \\bar\\alpha_t}\\,\\epsilon\\)",
                pixelated=backend.spec.pixelated,
            )
        ],
        data={"rows": rows, "image": p.image},
    )


def _noisy(ctx):
    """The test image and its noisy copies from a1.1, with a1.1's timesteps."""
    tensors = safetensors.load_file(str(ctx.needs["a1.1"].private / NOISY))
    return tensors["x0"], tensors["noisy"], ctx.params_of("a1.1").timesteps


def _blur(x: torch.Tensor, p: BlurParams) -> torch.Tensor:
    return TF.gaussian_blur(x, [p.kernel_size, p.kernel_size], [p.sigma, p.sigma])


@section(
    "a1.2",
    "Classical denoising",
    BlurParams,
    needs=("a1.1",),
    version=2,
    uses_backend=True,
    headline=_psnr_at_last_t("psnr_blur"),
)
def classical_denoising(p: BlurParams, ctx) -> Result:
    backend = ctx.backend()
    x0, noisy, timesteps = _noisy(ctx)
    blurred = _blur(noisy, p)
    table(
        backend,
        torch.stack([noisy, blurred]),
        ctx.out / "blur.webp",
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
                "blur.webp",
                f"Gaussian blur, kernel {p.kernel_size}, \\(\\sigma = {p.sigma:g}\\)",
                pixelated=backend.spec.pixelated,
            )
        ],
        data={"rows": rows},
    )


@section(
    "a1.3",
    "One-step denoising",
    OneStepParams,
    needs=("a1.1",),
    version=2,
    uses_backend=True,
    headline=_psnr_at_last_t("psnr_one_step"),
)
def one_step_denoising(p: OneStepParams, ctx) -> Result:
    backend = ctx.backend()
    x0, noisy, timesteps = _noisy(ctx)
    cond = backend.denoiser.encode([p.prompt])
    estimates = torch.cat(
        [
            samplers.one_step_estimate(backend.denoiser, x.to(backend.device)[None], t, cond)
            for t, x in zip(timesteps, noisy)
        ]
    )
    shown = torch.stack(
        [x0.expand_as(noisy), noisy, estimates.cpu()], dim=1
    )  # (len(t), 3, C, H, W)
    table(
        backend,
        shown,
        ctx.out / "one_step.webp",
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
                "one_step.webp",
                f"\\(\\hat x_0\\) from one noise estimate, {quoted(p.prompt)}",
                pixelated=backend.spec.pixelated,
            )
        ],
        data={"rows": rows},
    )


def _iterative_denoising_headline(r) -> Headline:
    return Headline(
        f"PSNR {{}} dB iterative, {db(r.metrics['psnr_one_step'])} dB in one step",
        db(r.metrics["psnr_iterative"]),
    )


@section(
    "a1.4",
    "Iterative denoising",
    IterativeParams,
    needs=("a1.1", "a1.2"),
    version=4,
    uses_backend=True,
    headline=_iterative_denoising_headline,
)
def iterative_denoising(p: IterativeParams, ctx) -> Result:
    backend = ctx.backend()
    den = backend.denoiser
    ts = backend.timesteps
    x0 = input_image(ctx, backend, ctx.params_of("a1.1").image).expand(
        p.runs, *backend.shape
    )  # (runs, C, H, W)
    gen = rng(p.seed)
    t0 = ts[p.i_start]
    x_t, _ = samplers.forward(
        x0, t0, den.alphas_cumprod.to(x0.device), gen
    )  # fresh noise for every run
    cond = den.encode([p.prompt])
    shown = figs.FrameRecorder(1, keep=set(range(p.i_start, len(ts), p.show_every)))
    frames = figs.FrameRecorder(1)

    def record(info):
        shown(info)
        frames(info)

    clean = samplers.iterative_denoise(
        samplers.conditional(den, cond),
        x_t,
        ts,
        den.alphas_cumprod,
        i_start=p.i_start,
        generator=gen,
        variance_type=den.variance_type,
        callback=record,
    )
    one_step = samplers.one_step_estimate(den, x_t, t0, cond)
    blurred = _blur(x_t.cpu(), ctx.params_of("a1.2"))
    steps = [ts[i] for i in range(p.i_start, len(ts) - 1, p.show_every)]
    table(
        backend,
        torch.cat([f[:1] for f in shown.frames])[None],
        ctx.out / "steps.webp",
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
        ctx.out / "compare.webp",
        col_labels=["original", f"noisy, t = {t0}", "iterative", "one-step", "blurred"],
        row_labels=[f"run {k + 1}" for k in range(shown_runs)] if shown_runs > 1 else [],
    )
    animate(backend, frames.frames, ctx.out / "denoising.gif")
    px = backend.to_pixels(x0)
    estimates = {"noisy": x_t, "iterative": clean, "one_step": one_step, "blur": blurred}
    metrics = {f"psnr_{name}": psnr(backend.to_pixels(x), px) for name, x in estimates.items()}
    # does the estimate still show what the original shows?
    metrics |= known(
        **{
            f"kept_{name}": agreement(backend, backend.to_pixels(estimates[name]), px)
            for name in ("iterative", "one_step", "blur")
        }
    )
    pixelated = backend.spec.pixelated
    return Result(
        metrics={**metrics, "steps": len(ts) - 1 - p.i_start},
        figures=[
            Figure(
                "steps.webp",
                f"\\(x_t\\) every {p.show_every} steps from \\(t = {t0}\\)",
                pixelated=pixelated,
            ),
            Figure(
                "compare.webp",
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
