"""Part A: the samplers of generator/diffusion/samplers.py on a pretrained model (the backend).

Every section runs on the backend the build chose (`--backend`): DeepFloyd IF,
or the local class-conditioned MNIST model of b2.4. The sections only use the
backend's interface (its denoiser, image shape, pixel conversion and optional
upsampler), so each algorithm is written once. Heavy imports stay inside the
functions so that listing sections needs no torch.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..backends import check_prompts, check_schedule
from ..errors import UsageError
from ..inputs import check_image, check_mask
from ..registry import Figure, Params, Result, section

PAGE = "part_a"
TEST_IMAGE = "site_assets/inputs/astronaut.png"
Prompt = Annotated[str, Field(max_length=500)]
ViewName = Literal["flip", "rot180", "rot90cw", "rot90ccw", "negate", "transpose"]


# ---------------------------------------------------------------- parameters


class TextToImageParams(Params):
    seed: int = Field(45, ge=0, description="seed of every random draw in the section")
    prompts: list[Prompt] = Field(
        default_factory=lambda: ["an oil painting of a snowy mountain village", "a man wearing a hat", "a rocket ship"],
        min_length=1,
        max_length=16,
        description="prompts, one sample each",
    )
    steps: list[Annotated[int, Field(ge=2, le=1000)]] = Field(
        default_factory=lambda: [20, 50], min_length=1, description="num_inference_steps, one row each"
    )
    guidance: float = Field(7.0, ge=0.0, le=50.0, description="classifier-free guidance scale")

    def check(self, config) -> None:
        check_prompts(config, "a0.prompts", self.prompts)


class ForwardParams(Params):
    image: str = Field(TEST_IMAGE, min_length=1, description="the test image: a path or mnist:N")
    timesteps: list[Annotated[int, Field(ge=0)]] = Field(
        default_factory=lambda: [250, 500, 750], min_length=1, max_length=12, description="t of each noisy image"
    )

    def check(self, config) -> None:
        check_image(self.image, config.root)
        check_schedule(config, "a1.1.timesteps", timesteps=self.timesteps)


class BlurParams(Params):
    kernel_size: int = Field(7, ge=1, le=99, description="Gaussian kernel size, odd")
    sigma: float = Field(2.0, gt=0.0, le=50.0, description="the Gaussian's σ in pixels")

    def check(self, config) -> None:
        if self.kernel_size % 2 == 0:
            raise UsageError(f"bad value a1.2.kernel_size={self.kernel_size}: the kernel size must be odd")


class OneStepParams(Params):
    prompt: Prompt = Field("a high quality photo", description="the prompt of the noise estimate")

    def check(self, config) -> None:
        check_prompts(config, "a1.3.prompt", [self.prompt])


class IterativeParams(Params):
    i_start: int = Field(10, ge=0, description="index of the first strided timestep")
    show_every: int = Field(5, ge=1, le=100, description="show every n-th step")
    prompt: Prompt = Field("a high quality photo", description="the prompt")

    def check(self, config) -> None:
        check_prompts(config, "a1.4.prompt", [self.prompt])
        check_schedule(config, "a1.4.i_start", i_start=self.i_start)


class SampleParams(Params):
    prompt: Prompt = Field("a high quality photo", description="the prompt")
    num_samples: int = Field(5, ge=1, le=1000, description="samples drawn")

    def check(self, config) -> None:
        check_prompts(config, "a1.5.prompt", [self.prompt])


class CFGParams(Params):
    prompts: list[Prompt] = Field(
        default_factory=lambda: ["a high quality photo"], min_length=1, max_length=16, description="prompts"
    )
    num_samples: int = Field(5, ge=1, le=1000, description="samples per prompt")
    guidance: float = Field(7.0, ge=0.0, le=50.0, description="classifier-free guidance scale γ")

    def check(self, config) -> None:
        check_prompts(config, "a1.6.prompts", self.prompts)


class SDEditParams(Params):
    images: list[str] = Field(
        default_factory=lambda: [TEST_IMAGE, "site_assets/inputs/coffee.png", "site_assets/inputs/chelsea.png"],
        min_length=1,
        max_length=8,
        description="input images: paths or mnist:N",
    )
    i_starts: list[Annotated[int, Field(ge=0)]] = Field(
        default_factory=lambda: [1, 3, 5, 7, 10, 20], min_length=1, max_length=12, description="where denoising starts"
    )
    prompt: Prompt = Field("a high quality photo", description="the prompt")
    guidance: float = Field(7.0, ge=0.0, le=50.0, description="classifier-free guidance scale γ")

    def check(self, config) -> None:
        sid = self._id
        for image in self.images:
            check_image(image, config.root)
        check_prompts(config, f"{sid}.prompt", [self.prompt])
        for i in self.i_starts:
            check_schedule(config, f"{sid}.i_starts", i_start=i)

    _id = "a1.7"


class WebSDEditParams(SDEditParams):
    images: list[str] = Field(
        default_factory=lambda: [
            "site_assets/inputs/rocket.png",
            "site_assets/inputs/drawing_house.png",
            "site_assets/inputs/drawing_tree.png",
        ],
        min_length=1,
        max_length=8,
        description="input images: paths or mnist:N",
    )
    _id = "a1.7.1"


class TextSDEditParams(SDEditParams):
    prompt: Prompt = Field("a rocket ship", description="the prompt")
    _id = "a1.7.3"


class InpaintParams(Params):
    images: list[str] = Field(
        default_factory=lambda: [TEST_IMAGE, "site_assets/inputs/coffee.png", "site_assets/inputs/chelsea.png"],
        min_length=1,
        max_length=8,
        description="input images: paths or mnist:N",
    )
    masks: list[str] = Field(
        default_factory=lambda: [
            "site_assets/inputs/astronaut_mask.png",
            "site_assets/inputs/coffee_mask.png",
            "site_assets/inputs/chelsea_mask.png",
        ],
        min_length=1,
        max_length=8,
        description="one mask per image: a picture of its size (white = new content) or rect:TOP,BOTTOM,LEFT,RIGHT",
    )
    prompt: Prompt = Field("a high quality photo", description="the prompt")
    guidance: float = Field(7.0, ge=0.0, le=50.0, description="classifier-free guidance scale γ")

    def check(self, config) -> None:
        if len(self.masks) != len(self.images):
            raise UsageError(
                f"bad value a1.7.2.masks: {len(self.masks)} masks for {len(self.images)} images; give one mask per image"
            )
        for image, mask in zip(self.images, self.masks):
            check_image(image, config.root)
            check_mask(mask, image, config.root)
        check_prompts(config, "a1.7.2.prompt", [self.prompt])


class AnagramParams(Params):
    anagrams: list[Annotated[list[Prompt], Field(min_length=2, max_length=4)]] = Field(
        default_factory=lambda: [
            ["an oil painting of an old man", "an oil painting of people around a campfire"],
            ["an oil painting of a snowy mountain village", "a photo of a dog"],
            ["a lithograph of waterfalls", "a lithograph of a skull"],
        ],
        min_length=1,
        max_length=8,
        description="prompt lists: the first as the image is, the others under `views`",
    )
    views: list[ViewName] = Field(
        default_factory=lambda: ["flip"], min_length=1, max_length=3, description="the view of each further prompt"
    )
    num_samples: int = Field(1, ge=1, le=1000, description="samples per anagram")
    guidance: float = Field(7.0, ge=0.0, le=50.0, description="classifier-free guidance scale γ")

    def check(self, config) -> None:
        for prompts in self.anagrams:
            if len(prompts) != len(self.views) + 1:
                raise UsageError(
                    f"bad value a1.8.anagrams: {prompts} has {len(prompts)} prompts but a1.8.views={self.views} "
                    f"needs {len(self.views) + 1} (one as the image is, one per view)"
                )
            check_prompts(config, "a1.8.anagrams", prompts)
        if "negate" in self.views and config.backend == "local":
            raise UsageError(
                "bad value a1.8.views: 'negate' needs a model whose pixels are centred on zero; the local MNIST model "
                "works on [0, 1]. Use flip, rot180, rot90cw, rot90ccw or transpose"
            )


class HybridParams(Params):
    pairs: list[Annotated[list[Prompt], Field(min_length=2, max_length=2)]] = Field(
        default_factory=lambda: [
            ["a lithograph of a skull", "a lithograph of waterfalls"],
            ["a lithograph of a skull", "a photo of a dog"],
            ["an oil painting of people around a campfire", "a rocket ship"],
        ],
        min_length=1,
        max_length=8,
        description="[low-frequency prompt, high-frequency prompt] pairs",
    )
    kernel_size: int = Field(33, ge=1, le=99, description="the low-pass Gaussian's kernel size, odd")
    sigma: float = Field(2.0, gt=0.0, le=50.0, description="the low-pass Gaussian's σ in pixels")
    num_samples: int = Field(1, ge=1, le=1000, description="samples per pair")
    guidance: float = Field(7.0, ge=0.0, le=50.0, description="classifier-free guidance scale γ")

    def check(self, config) -> None:
        if self.kernel_size % 2 == 0:
            raise UsageError(f"bad value a1.9.kernel_size={self.kernel_size}: the kernel size must be odd")
        for pair in self.pairs:
            check_prompts(config, "a1.9.pairs", pair)


# ---------------------------------------------------------------- helpers


_OPEN: dict[tuple, object] = {}


def open_backend(ctx):
    """The backend this build runs Part A on, loaded once per process (every Part A section shares it)."""
    import gc

    params = ctx.params_of(ctx.backend)
    model = ctx.needs["b2.4"].key if ctx.backend == "local" else None
    key = (ctx.backend, tuple(sorted(params.model_dump().items())), ctx.device, model)
    if key not in _OPEN:
        _OPEN.clear()  # one model in memory at a time: IF's stages are gigabytes
        gc.collect()
        _OPEN[key] = _load_backend(ctx, params)
    return _OPEN[key]


def _load_backend(ctx, params):
    if ctx.backend == "local":
        from ..backends.local import LocalBackend

        return LocalBackend(ctx.needs["b2.4"], params.timesteps(), ctx.device)
    from ..backends import prompts_of
    from ..backends.deepfloyd import DeepFloydBackend
    from ..config import cache_dir

    # T5 encodes every prompt of the build's Part A sections at once, then leaves memory.
    return DeepFloydBackend(params, prompts_of(ctx.config, ctx.runs), cache_dir(ctx.config.root), ctx.device)


def _generator(seed: int):
    import torch

    return torch.Generator().manual_seed(seed)


def _image(ctx, backend, spec: str):
    """An input image in the backend's space, (1, C, H, W)."""
    from ..inputs import load_image

    return backend.to_model(load_image(spec, ctx.config.root, ctx.data_root, backend.shape))


def _small(backend) -> bool:
    """Images small enough (MNIST's 28×28) to be shown blown up with sharp pixels."""
    return backend.shape[-1] <= 32


def _cell(backend) -> float:
    return 1.1 if _small(backend) else 1.6


def _table(backend, images, path, **labels) -> None:
    """A labelled table of images (R, K, C, H, W) in the backend's space."""
    from ..figures import image_table

    image_table(backend.to_pixels(images.flatten(0, 1)).unflatten(0, images.shape[:2]), path, cell=_cell(backend), **labels)


def _upsampled_table(backend, x, prompts, generator, path, rows: int, **labels) -> bool:
    """Stage II's 256×256 versions of x (R·K images, row-major) as a table, where the backend has a second stage."""
    from ..figures import image_table

    big = backend.upsample(x, prompts, generator)
    if big is None:
        return False
    image_table(big.unflatten(0, (rows, -1)), path, cell=2.6, interpolation="antialiased", **labels)
    return True


def _psnr(estimate, clean) -> float:
    """PSNR in dB of images in [0, 1] (the backend's pixels)."""
    from .part_b import psnr

    return psnr(estimate, clean)


def _scorer(ctx):
    """The b2.0 classifier on the local backend, whose samples are digits; None on other backends."""
    from .part_b import Scorer

    return Scorer(ctx.needs["b2.0"], ctx.device) if "b2.0" in ctx.needs else None


def _digits(prompts: list[str]):
    """Class labels for digit prompts; None when a prompt is not a digit."""
    import torch

    from ..backends import DIGITS

    if all(p in DIGITS for p in prompts):
        return torch.tensor([int(p) for p in prompts])
    return None


def _save_samples(ctx, images, **arrays) -> None:
    """samples.npz: `images` (N, C, H, W) float32 in [0, 1], and per-image arrays (the contract's names)."""
    import numpy as np

    np.savez_compressed(
        ctx.out / "samples.npz",
        images=images.float().cpu().numpy().astype(np.float32),
        **{k: np.asarray(v) for k, v in arrays.items()},
    )


def _result(backend, **kwargs) -> Result:
    return Result(backend=dict(backend.describe), **kwargs)


def _animation(backend, frames, path) -> None:
    """A GIF of x_t over x̂0 for a few samples, one frame per recorded step."""
    from ..figures import save_gif, tile

    scale = 3 if _small(backend) else 2
    save_gif([tile(backend.to_pixels(f), nrow=f.shape[0] // 2, scale=scale) for f in frames], path)


def _recorder(count: int, every: int = 1):
    """A sampler callback that keeps x_t stacked over x̂0 for the first `count` samples every `every` steps."""
    import torch

    frames = []

    def callback(info):
        if (info.i % every) == 0:
            frames.append(torch.cat([info.x_t[:count], info.x0_hat[:count]]).float().cpu())

    return frames, callback


# ---------------------------------------------------------------- a0


@section("a0", "Text-to-image with the pretrained model", TextToImageParams, page=PAGE, uses_backend=True)
def text_to_image(p: TextToImageParams, ctx) -> Result:
    import torch

    backend = open_backend(ctx)
    rows = []
    for steps in p.steps:
        rows.append(backend.text_to_image(p.prompts, steps, p.guidance, _generator(p.seed)))
    x = torch.stack(rows)  # (len(steps), len(prompts), C, H, W)
    labels = dict(row_labels=[f"{s} steps" for s in p.steps], col_labels=_short(p.prompts))
    _table(backend, x, ctx.out / "samples.png", **labels)
    figures = [Figure("samples.png", f"One sample per prompt at {' and '.join(map(str, p.steps))} steps, seed {p.seed}, γ = {p.guidance:g}")]
    if _upsampled_table(backend, x.flatten(0, 1), p.prompts * len(p.steps), _generator(p.seed), ctx.out / "upsampled.png", len(p.steps), **labels):
        figures.append(Figure("upsampled.png", "The same samples upsampled to 256×256 by stage II"))
    digits = _digits(p.prompts)
    extra = {"labels": digits.repeat(len(p.steps)).numpy()} if digits is not None else {}
    _save_samples(
        ctx,
        backend.to_pixels(x.flatten(0, 1)),
        steps=[s for s in p.steps for _ in p.prompts],
        prompts=p.prompts * len(p.steps),
        **extra,
    )
    return _result(backend, figures=figures)


def _short(prompts: list[str], width: int = 22) -> list[str]:
    """Column labels: prompts cut to fit; "" shows as (unconditional)."""
    out = []
    for prompt in prompts:
        text = prompt or "(unconditional)"
        out.append(text if len(text) <= width else text[: width - 1] + "…")
    return out


# ---------------------------------------------------------------- a1.1 – a1.4


@section("a1.1", "The forward process", ForwardParams, page=PAGE, uses_backend=True)
def forward_process(p: ForwardParams, ctx) -> Result:
    import torch
    from safetensors.torch import save_file

    from ..diffusion.samplers import forward

    backend = open_backend(ctx)
    x0 = _image(ctx, backend, p.image)  # (1, C, H, W)
    abar = backend.denoiser.alphas_cumprod.to(x0.device)
    generator = _generator(p.seed)
    noisy = torch.cat([forward(x0, t, abar, generator)[0] for t in p.timesteps])  # (len(t), C, H, W)
    save_file({"x0": x0.cpu().contiguous(), "noisy": noisy.cpu().contiguous()}, ctx.private / "noisy.safetensors")
    _table(
        backend,
        torch.cat([x0, noisy])[None],
        ctx.out / "forward.png",
        col_labels=["original"] + [f"t = {t}" for t in p.timesteps],
    )
    return _result(
        backend,
        metrics={f"psnr_noisy_t_{t}": _psnr(backend.to_pixels(x), backend.to_pixels(x0)) for t, x in zip(p.timesteps, noisy)},
        figures=[Figure("forward.png", f"The test image ({p.image}) and x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε", pixelated=_small(backend))],
        data={"abar": {t: float(abar[t]) for t in p.timesteps}, "image": p.image},
    )


def _noisy(ctx):
    """The test image and its noisy copies from a1.1, with a1.1's timesteps."""
    from safetensors.torch import load_file

    tensors = load_file(str(ctx.needs["a1.1"].private / "noisy.safetensors"))
    return tensors["x0"], tensors["noisy"], ctx.params_of("a1.1").timesteps


def _blur(x, p: BlurParams):
    from torchvision.transforms.functional import gaussian_blur

    return gaussian_blur(x, [p.kernel_size, p.kernel_size], [p.sigma, p.sigma])


@section("a1.2", "Classical denoising", BlurParams, needs=("a1.1",), page=PAGE, uses_backend=True)
def classical_denoising(p: BlurParams, ctx) -> Result:
    import torch

    backend = open_backend(ctx)
    x0, noisy, timesteps = _noisy(ctx)
    blurred = _blur(noisy, p)
    _table(
        backend,
        torch.stack([noisy, blurred]),
        ctx.out / "blur.png",
        row_labels=["noisy", "blurred"],
        col_labels=[f"t = {t}" for t in timesteps],
    )
    clean = backend.to_pixels(x0)
    metrics = {}
    for t, n, b in zip(timesteps, noisy, blurred):
        metrics[f"psnr_noisy_t_{t}"] = _psnr(backend.to_pixels(n[None]), clean)
        metrics[f"psnr_blur_t_{t}"] = _psnr(backend.to_pixels(b[None]), clean)
    return _result(
        backend,
        metrics=metrics,
        figures=[Figure("blur.png", f"Gaussian blur, kernel {p.kernel_size}, σ = {p.sigma:g}", pixelated=_small(backend))],
        data={"timesteps": timesteps},
    )


@section("a1.3", "One-step denoising", OneStepParams, needs=("a1.1",), page=PAGE, uses_backend=True)
def one_step_denoising(p: OneStepParams, ctx) -> Result:
    import torch

    from ..diffusion.samplers import one_step_estimate

    backend = open_backend(ctx)
    x0, noisy, timesteps = _noisy(ctx)
    cond = backend.denoiser.encode([p.prompt])
    estimates = torch.cat([one_step_estimate(backend.denoiser, x.to(backend.device)[None], t, cond) for t, x in zip(timesteps, noisy)])
    rows = torch.stack([x0.expand_as(noisy), noisy, estimates.cpu()], dim=1)  # (len(t), 3, C, H, W)
    _table(backend, rows, ctx.out / "one_step.png", row_labels=[f"t = {t}" for t in timesteps], col_labels=["original", "noisy", "one-step estimate"])
    clean = backend.to_pixels(x0)
    return _result(
        backend,
        metrics={f"psnr_one_step_t_{t}": _psnr(backend.to_pixels(e[None]), clean) for t, e in zip(timesteps, estimates)},
        figures=[Figure("one_step.png", f"x̂0 from one noise estimate, prompt '{p.prompt}'", pixelated=_small(backend))],
        data={"timesteps": timesteps},
    )


@section("a1.4", "Iterative denoising", IterativeParams, needs=("a1.1", "a1.2"), page=PAGE, uses_backend=True)
def iterative_denoising(p: IterativeParams, ctx) -> Result:
    import torch

    from ..diffusion.samplers import conditional, forward, iterative_denoise, one_step_estimate

    backend = open_backend(ctx)
    den = backend.denoiser
    ts = backend.timesteps
    x0 = _image(ctx, backend, ctx.params_of("a1.1").image)
    generator = _generator(p.seed)
    t0 = ts[p.i_start]
    x_t, _ = forward(x0, t0, den.alphas_cumprod.to(x0.device), generator)
    cond = den.encode([p.prompt])
    shown = []

    def callback(info):
        if (info.i - p.i_start) % p.show_every == 0:
            shown.append((info.t, info.x_t.float().cpu()))

    frames, record = _recorder(1)

    def both(info):
        callback(info)
        record(info)

    clean = iterative_denoise(conditional(den, cond), x_t, ts, den.alphas_cumprod, i_start=p.i_start, generator=generator, callback=both)
    one_step = one_step_estimate(den, x_t, t0, cond)
    blurred = _blur(x_t.cpu(), ctx.params_of("a1.2"))
    _table(backend, torch.cat([x for _, x in shown])[None], ctx.out / "steps.png", col_labels=[f"t = {t}" for t, _ in shown])
    final = torch.cat([x0.cpu(), x_t.cpu(), clean.cpu(), one_step.cpu(), blurred])[None]
    _table(backend, final, ctx.out / "compare.png", col_labels=["original", f"noisy, t = {t0}", "iterative", "one-step", "blurred"])
    _animation(backend, frames, ctx.out / "denoising.gif")
    px = backend.to_pixels(x0)
    pixelated = _small(backend)
    return _result(
        backend,
        metrics={
            "psnr_noisy": _psnr(backend.to_pixels(x_t), px),
            "psnr_iterative": _psnr(backend.to_pixels(clean), px),
            "psnr_one_step": _psnr(backend.to_pixels(one_step), px),
            "psnr_blur": _psnr(backend.to_pixels(blurred), px),
            "steps": len(ts) - 1 - p.i_start,
        },
        figures=[
            Figure("steps.png", f"x_t every {p.show_every} steps from t = {t0}", pixelated=pixelated),
            Figure("compare.png", "Iterative denoising against one step and a Gaussian blur", pixelated=pixelated),
            Figure("denoising.gif", "x_t (top) and the estimate x̂0 (bottom) at every step", pixelated=True),
        ],
        data={"t_start": t0, "timesteps": ts, "model_calls": len(ts) - 1 - p.i_start},
    )


# ---------------------------------------------------------------- a1.5 – a1.6: sampling


def _sample(backend, eps_fn, count: int, generator, callback=None):
    """`count` samples from pure noise over the backend's strided timesteps."""
    from ..diffusion.samplers import iterative_denoise

    import torch

    x = torch.randn((count, *backend.shape), generator=generator).to(backend.device)
    return iterative_denoise(eps_fn, x, backend.timesteps, backend.denoiser.alphas_cumprod, generator=generator, callback=callback)


@section("a1.5", "Sampling from pure noise", SampleParams, page=PAGE, uses_backend=True)
def sampling(p: SampleParams, ctx) -> Result:
    from ..diffusion.samplers import conditional

    backend = open_backend(ctx)
    generator = _generator(p.seed)
    frames, callback = _recorder(min(p.num_samples, 5))
    x = _sample(backend, conditional(backend.denoiser, backend.denoiser.encode([p.prompt])), p.num_samples, generator, callback)
    _table(backend, x[None].cpu(), ctx.out / "samples.png")
    _animation(backend, frames, ctx.out / "sampling.gif")
    figures = [
        Figure("samples.png", f"{p.num_samples} samples, prompt '{p.prompt}', no guidance", pixelated=_small(backend)),
        Figure("sampling.gif", "x_t (top) and x̂0 (bottom) over the steps", pixelated=True),
    ]
    if _upsampled_table(backend, x, [p.prompt] * p.num_samples, generator, ctx.out / "upsampled.png", 1):
        figures.append(Figure("upsampled.png", "Upsampled to 256×256 by stage II"))
    _save_samples(ctx, backend.to_pixels(x), prompts=[p.prompt] * p.num_samples)
    return _result(backend, figures=figures)


@section("a1.6", "Classifier-free guidance", CFGParams, page=PAGE, uses_backend=True)
def cfg(p: CFGParams, ctx) -> Result:
    from ..diffusion.samplers import classifier_free

    backend = open_backend(ctx)
    den = backend.denoiser
    generator = _generator(p.seed)
    prompts = [prompt for prompt in p.prompts for _ in range(p.num_samples)]  # prompt-major
    frames, callback = _recorder(min(len(prompts), 10))
    eps_fn = classifier_free(den, den.encode(prompts), den.encode([""]), p.guidance)
    x = _sample(backend, eps_fn, len(prompts), generator, callback)
    grid = x.cpu().unflatten(0, (len(p.prompts), p.num_samples))
    _table(backend, grid, ctx.out / "samples.png", row_labels=_short(p.prompts))
    _animation(backend, frames, ctx.out / "sampling.gif")
    figures = [
        Figure("samples.png", f"{p.num_samples} samples per prompt with γ = {p.guidance:g}", pixelated=_small(backend)),
        Figure("sampling.gif", "Guided sampling: x_t (top) and x̂0 (bottom)", pixelated=True),
    ]
    if _upsampled_table(backend, x, prompts, generator, ctx.out / "upsampled.png", len(p.prompts)):
        figures.append(Figure("upsampled.png", "Upsampled to 256×256 by stage II"))
    metrics, extra = {}, {}
    labels, scorer = _digits(prompts), _scorer(ctx)
    pixels = backend.to_pixels(x)
    if labels is not None and scorer is not None:
        correct = (scorer.predict(pixels) == labels).float()
        metrics["accuracy"] = float(correct.mean())
        for d in sorted(set(labels.tolist())):
            metrics[f"accuracy_digit_{d}"] = float(correct[labels == d].mean())
        extra["labels"] = labels.numpy()
    _save_samples(ctx, pixels, prompts=prompts, **extra)
    return _result(backend, metrics=metrics, figures=figures)


# ---------------------------------------------------------------- a1.7: image-to-image


def _sdedit_section(p: SDEditParams, ctx, caption: str) -> Result:
    import torch

    from ..diffusion.samplers import classifier_free, sdedit

    backend = open_backend(ctx)
    den = backend.denoiser
    eps_fn = classifier_free(den, den.encode([p.prompt]), den.encode([""]), p.guidance)
    generator = _generator(p.seed)
    rows, edits = [], []
    for spec in p.images:
        x_orig = _image(ctx, backend, spec)
        row = [sdedit(eps_fn, x_orig, backend.timesteps, i, den.alphas_cumprod, generator=generator) for i in p.i_starts]
        edits += row
        rows.append(torch.cat(row + [x_orig]).cpu())
    t_of = backend.timesteps
    _table(
        backend,
        torch.stack(rows),
        ctx.out / "edits.png",
        row_labels=[_name(s) for s in p.images],
        col_labels=[f"i_start {i}\nt = {t_of[i]}" for i in p.i_starts] + ["original"],
    )
    x = torch.cat(edits)
    figures = [Figure("edits.png", caption.format(prompt=p.prompt, guidance=p.guidance), pixelated=_small(backend))]
    if _upsampled_table(backend, x, [p.prompt] * len(edits), generator, ctx.out / "upsampled.png", len(p.images)):
        figures.append(Figure("upsampled.png", "The edits upsampled to 256×256 by stage II"))
    _save_samples(
        ctx,
        backend.to_pixels(x),
        i_start=[i for _ in p.images for i in p.i_starts],
        source=[s for s in p.images for _ in p.i_starts],
    )
    return _result(backend, figures=figures, data={"timesteps": t_of})


def _name(spec: str) -> str:
    return spec.rsplit("/", 1)[-1].rsplit(".", 1)[0]


@section("a1.7", "Image-to-image translation (SDEdit)", SDEditParams, page=PAGE, uses_backend=True)
def image_to_image(p: SDEditParams, ctx) -> Result:
    return _sdedit_section(p, ctx, "SDEdit with prompt '{prompt}', γ = {guidance:g}: the later denoising starts, the closer to the original")


@section("a1.7.1", "Editing a web image and drawings", WebSDEditParams, page=PAGE, uses_backend=True)
def edit_drawings(p: WebSDEditParams, ctx) -> Result:
    return _sdedit_section(p, ctx, "SDEdit of a photo and two drawings with prompt '{prompt}', γ = {guidance:g}")


@section("a1.7.2", "Inpainting", InpaintParams, page=PAGE, uses_backend=True)
def inpainting(p: InpaintParams, ctx) -> Result:
    import torch

    from ..diffusion.samplers import classifier_free, inpaint
    from ..inputs import load_mask

    backend = open_backend(ctx)
    den = backend.denoiser
    eps_fn = classifier_free(den, den.encode([p.prompt]), den.encode([""]), p.guidance)
    generator = _generator(p.seed)
    originals, masks, results = [], [], []
    for spec, mask_spec in zip(p.images, p.masks):
        x_orig = _image(ctx, backend, spec)
        mask = load_mask(mask_spec, ctx.config.root, backend.shape[-2:]).to(x_orig.device)  # (H, W)
        results.append(inpaint(eps_fn, x_orig, mask, backend.timesteps, den.alphas_cumprod, generator=generator))
        originals.append(x_orig)
        masks.append(mask)
    x, x_orig, m = torch.cat(results), torch.cat(originals), torch.stack(masks)[:, None]  # m: (N, 1, H, W)
    pixels, orig_pixels = backend.to_pixels(x), backend.to_pixels(x_orig)
    m_cpu = m.cpu()
    mask_shown = m_cpu.expand_as(pixels)
    holed = orig_pixels * (1 - m_cpu) + 0.5 * m_cpu
    from ..figures import image_table

    image_table(
        torch.stack([orig_pixels, mask_shown, holed, pixels], dim=1),
        ctx.out / "inpainting.png",
        row_labels=[_name(s) for s in p.images],
        col_labels=["original", "mask", "kept", "inpainted"],
        cell=_cell(backend),
    )
    figures = [Figure("inpainting.png", f"Inpainting with prompt '{p.prompt}', γ = {p.guidance:g}: new content only where the mask is white", pixelated=_small(backend))]
    if _upsampled_table(backend, x, [p.prompt] * len(results), generator, ctx.out / "upsampled.png", len(results)):
        figures.append(Figure("upsampled.png", "The inpainted images upsampled to 256×256 by stage II"))
    outside = (1 - m).bool().expand_as(x)
    _save_samples(ctx, pixels, masks=m_cpu.numpy().astype("float32"), originals=orig_pixels.numpy().astype("float32"))
    return _result(
        backend,
        metrics={"max_change_outside_mask": float((x - x_orig).abs()[outside].max()) if outside.any() else 0.0},
        figures=figures,
    )


@section("a1.7.3", "Text-conditional image-to-image", TextSDEditParams, page=PAGE, uses_backend=True)
def text_image_to_image(p: TextSDEditParams, ctx) -> Result:
    return _sdedit_section(p, ctx, "SDEdit towards the prompt '{prompt}', γ = {guidance:g}")


# ---------------------------------------------------------------- a1.8 – a1.9


@section("a1.8", "Visual anagrams", AnagramParams, needs=(), page=PAGE, uses_backend=True)
def visual_anagrams(p: AnagramParams, ctx) -> Result:
    import torch

    from ..diffusion.samplers import anagram
    from ..diffusion.views import get_view

    backend = open_backend(ctx)
    den = backend.denoiser
    views = ["identity", *p.views]
    uncond = den.encode([""])
    generator = _generator(p.seed)
    images, shown, prompts_of = [], [], [[] for _ in views]
    for prompts in p.anagrams:
        eps_fn = anagram(den, [den.encode([q]) for q in prompts], views, uncond, p.guidance)
        x = _sample(backend, eps_fn, p.num_samples, generator).cpu()  # (n, C, H, W)
        images.append(x)
        for k, q in enumerate(prompts):
            prompts_of[k] += [q] * p.num_samples
        shown.append(torch.stack([get_view(v).apply(x[:1]) for v in views], dim=1)[0])  # (len(views), C, H, W)
    x = torch.cat(images)
    _table(
        backend,
        torch.stack(shown),
        ctx.out / "anagrams.png",
        row_labels=[" / ".join(_short(q, 14)) for q in p.anagrams],
        col_labels=["as it is"] + [f"{v}" for v in p.views],
    )
    pixels = backend.to_pixels(x)
    arrays = {f"prompts_view{k + 1}": prompts_of[k] for k in range(len(views))}
    arrays["view"] = p.views[0] if len(p.views) == 1 else ",".join(p.views)
    metrics = {}
    scorer = _scorer(ctx)
    labels = [_digits(q) for q in prompts_of]
    if scorer is not None and all(lab is not None for lab in labels):
        read = []
        for k, view in enumerate(views):
            seen = get_view(view).apply(x)
            correct = (scorer.predict(backend.to_pixels(seen)) == labels[k]).float()
            metrics[f"accuracy_view{k + 1}"] = float(correct.mean())
            read.append(correct)
            arrays[f"labels_view{k + 1}"] = labels[k].numpy()
        metrics["accuracy_all_views"] = float(torch.stack(read).prod(0).mean())
    _save_samples(ctx, pixels, **arrays)
    figures = [Figure("anagrams.png", f"Each anagram as it is and under {', '.join(p.views)}; γ = {p.guidance:g}", pixelated=_small(backend))]
    if _upsampled_table(backend, torch.cat([im[:1] for im in images]), [q[0] for q in p.anagrams], generator, ctx.out / "upsampled.png", len(p.anagrams)):
        figures.append(Figure("upsampled.png", "The first sample of each anagram upsampled to 256×256 by stage II"))
    return _result(backend, metrics=metrics, figures=figures, data={"views": p.views})


@section("a1.9", "Hybrid images", HybridParams, page=PAGE, uses_backend=True, version=2)
def hybrid_images(p: HybridParams, ctx) -> Result:
    import torch
    from torchvision.transforms.functional import resize

    from ..diffusion.samplers import hybrid

    backend = open_backend(ctx)
    den = backend.denoiser
    uncond = den.encode([""])
    generator = _generator(p.seed)
    images = []
    for low, high in p.pairs:
        eps_fn = hybrid(den, den.encode([low]), den.encode([high]), uncond, p.guidance, p.kernel_size, p.sigma)
        images.append(_sample(backend, eps_fn, p.num_samples, generator).cpu())
    x = torch.cat(images)
    pixels = backend.to_pixels(x)
    # What a viewer far away sees: the image at a quarter of its size (shown blown up again).
    H, W = backend.shape[-2:]
    far = resize(resize(pixels, [H // 4, W // 4], antialias=True), [H, W], antialias=False)
    first = torch.stack([pixels[::p.num_samples], far[::p.num_samples]], dim=1)  # (pairs, 2, C, H, W)
    from ..figures import image_table

    image_table(first, ctx.out / "hybrids.png", row_labels=[f"{_short([lo], 14)[0]} / {_short([hi], 14)[0]}" for lo, hi in p.pairs], col_labels=["close up", "from afar"], cell=_cell(backend))
    figures = [Figure("hybrids.png", f"Hybrids: low frequencies of the first prompt, high of the second (kernel {p.kernel_size}, σ = {p.sigma:g})", pixelated=_small(backend))]
    if _upsampled_table(backend, x[::p.num_samples], [hi for _, hi in p.pairs], generator, ctx.out / "upsampled.png", len(p.pairs)):
        figures.append(Figure("upsampled.png", "Upsampled to 256×256 by stage II"))
    arrays = {
        "prompts_low": [lo for lo, _ in p.pairs for _ in range(p.num_samples)],
        "prompts_high": [hi for _, hi in p.pairs for _ in range(p.num_samples)],
    }
    metrics = {}
    scorer = _scorer(ctx)
    low, high = _digits(arrays["prompts_low"]), _digits(arrays["prompts_high"])
    if scorer is not None and low is not None and high is not None:
        metrics["far_read_as_low"] = float((scorer.predict(far) == low).float().mean())
        metrics["close_read_as_high"] = float((scorer.predict(pixels) == high).float().mean())
        arrays |= {"labels_low": low.numpy(), "labels_high": high.numpy()}
    _save_samples(ctx, pixels, **arrays)
    return _result(backend, metrics=metrics, figures=figures)
