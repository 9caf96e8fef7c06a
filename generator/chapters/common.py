"""Helpers that several sections share: seeds, PSNR, labels, the backend's images and scores,
Part B's training losses (`gen bench` trains with them too), UNet tables."""

from __future__ import annotations

import math

from ..hardware import to_device
from ..inputs import load_image
from ..section import Figure, Headline, Result, count, fixed, lazy, percent

# Imported where a run first uses them: reading the table (gen list) imports no torch.
torch = lazy("torch")
backend_base = lazy("..backends.base", __package__)
F = lazy("torch.nn.functional")
ddpm = lazy("..diffusion.ddpm", __package__)
flow = lazy("..diffusion.flow", __package__)
samplers = lazy("..diffusion.samplers", __package__)
figs = lazy("..figures", __package__)
clf = lazy("..models.classifier", __package__)
trainer = lazy("..models.train", __package__)
unets = lazy("..models.unet", __package__)


def rng(seed: int) -> torch.Generator:
    """A generator on the CPU seeded with `seed`: every random draw of a section comes from one,
    so a seed gives the same images."""
    return torch.Generator().manual_seed(seed)


def psnr(estimate: torch.Tensor, clean: torch.Tensor) -> float:
    """Mean over images of 10·log10(1/MSE), both in [0, 1] (the estimate clamped); in dB,
    infinite for an exact copy."""
    mse = (estimate.clamp(0, 1) - clean).pow(2).flatten(1).mean(1)
    return float((10 * torch.log10(1.0 / mse)).mean())


def finite(value: float) -> float | None:
    """A number for JSON: None stands for an infinite PSNR (the images are identical)."""
    return value if math.isfinite(value) else None


def short(prompts: list[str], width: int = 22) -> list[str]:
    """Labels for prompts, cut to fit; "" shows as (unconditional)."""
    out = []
    for prompt in prompts:
        text = prompt or "(unconditional)"
        out.append(text if len(text) <= width else text[: width - 1] + "…")
    return out


def quoted(prompt: str) -> str:
    """A prompt as captions name it; "" is the empty prompt."""
    return f"prompt “{prompt}”" if prompt else "the empty prompt (unconditional)"


def name_of(spec: str) -> str:
    """An input's label: a file's stem in words (digit_two_drawn → digit two drawn), or mnist:N
    as it is."""
    return spec.rsplit("/", 1)[-1].rsplit(".", 1)[0].replace("_", " ")


# ---------------------------------------------------------------- Part A: the backend's images


def cell(backend) -> float:
    """Inches per image in a table: small images get room to show their pixels."""
    return 1.1 if backend.spec.pixelated else 1.6


def table(backend, images: torch.Tensor, path, **labels) -> None:
    """A labelled table of images (R, K, C, H, W) in the backend's space."""
    pixels = backend.to_pixels(images.flatten(0, 1)).unflatten(0, images.shape[:2])
    figs.image_table(pixels, path, cell=cell(backend), **labels)


def upsampled(
    backend,
    x: torch.Tensor,
    prompts: list[str],
    gen: torch.Generator,
    out,
    rows: int,
    what: str = "",
    **labels,
) -> list[Figure]:
    """Where the backend has a second stage: its larger versions of x (R·K images, row-major) as
    a table in `out`/upsampled.webp, with a caption in the backend's words after `what` (the
    images' name); none where it has no second stage."""
    if backend.upsampler is None:
        return []
    big = backend.upsampler(x, prompts, gen)
    path = out / "upsampled.webp"
    figs.image_table(
        big.unflatten(0, (rows, -1)), path, cell=2.6, interpolation="antialiased", **labels
    )
    said = f"{what} {backend.upsampled_by}" if what else backend.upsampled_by
    return [Figure(path.name, said[:1].upper() + said[1:])]


def input_image(ctx, backend, spec: str) -> torch.Tensor:
    """An input image in the backend's space, (1, C, H, W)."""
    return backend.to_model(load_image(spec, ctx.config.root, ctx.data_root, backend.shape))


def animate(backend, frames: list[torch.Tensor], path) -> None:
    """The sampling animation of recorded frames (figures.FrameRecorder) in the backend's space,
    pixel for pixel."""
    figs.animation(frames, path, to_pixels=backend.to_pixels)


def from_noise(backend, eps_fn, count: int, gen: torch.Generator, callback=None) -> torch.Tensor:
    """`count` samples from pure noise over the backend's strided timesteps."""
    x = torch.randn((count, *backend.shape), generator=gen).to(backend.device)
    return samplers.iterative_denoise(
        eps_fn,
        x,
        backend.timesteps,
        backend.denoiser.alphas_cumprod,
        generator=gen,
        variance_type=backend.denoiser.variance_type,
        callback=callback,
    )


# ---------------------------------------------------------------- Part A: reading the images
# Where the backend implements `Scoring`, a classifier reads its images; else every answer
# below is None, and `known` leaves it out of the metrics.


def scoring(backend) -> backend_base.Scoring | None:
    """The backend as a `Scoring` where it is one: the one place that asks."""
    return backend if isinstance(backend, backend_base.Scoring) else None


def labels_of(backend, prompts: list[str]) -> torch.Tensor | None:
    """(N,) the class each prompt asks for; None where there is none."""
    reader = scoring(backend)
    return None if reader is None else reader.labels_of(prompts)


def classes(backend, pixels: torch.Tensor) -> torch.Tensor | None:
    """(N,) the class read in each image."""
    reader = scoring(backend)
    return None if reader is None else reader.read(pixels)[0]


def score(backend, pixels: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
    """(N,) 1.0 where an image is read as its label, else 0.0 (plain accuracy); None where there
    is nothing to read."""
    read = classes(backend, pixels) if labels is not None else None
    return None if read is None else (read == labels).float()


def sure(backend, pixels: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
    """(N,) 1.0 where an image is read as its label with probability ≥ 0.9 (confidently right),
    else 0.0; None where there is nothing to read. A blob's argmax names some digit too: this is
    the score a reader's eye agrees with."""
    reader = scoring(backend) if labels is not None else None
    if reader is None:
        return None
    digits, probability = reader.read(pixels)
    return ((digits == labels) & (probability >= clf.CONFIDENT)).float()


def agreement(backend, pixels: torch.Tensor, reference: torch.Tensor) -> float | None:
    """The share of images read as the class their reference image is read as."""
    return mean(score(backend, pixels, classes(backend, reference)))


def confident(backend, pixels: torch.Tensor) -> float | None:
    """The share of images read as some class with probability ≥ 0.9."""
    reader = scoring(backend)
    return (
        None if reader is None else float((reader.read(pixels)[1] >= clf.CONFIDENT).float().mean())
    )


def real_digits(backend) -> dict:
    """What the classifier reads in real test digits (b2.0's metrics); {} without a classifier."""
    reader = scoring(backend)
    return {} if reader is None else reader.reference()


def frechet(backend, pixels: torch.Tensor) -> float | None:
    """The Fréchet distance of the images to the reference set, in the classifier's features."""
    reader = scoring(backend)
    return None if reader is None else reader.frechet(pixels)


def versus_real(label: str, metric: str, real: str):
    """A headline: the share `metric` of a result, with the same score of real test digits (the
    metric `real`) beside it."""

    def headline(r) -> Headline | None:
        if metric not in r.metrics:
            return None
        ref = r.metrics.get(real)
        beside = "" if ref is None else f" (real digits: {percent(ref)})"
        return Headline(label + beside, percent(r.metrics[metric]))

    return headline


def mean(values: torch.Tensor | None) -> float | None:
    return None if values is None else float(values.mean())


def known(**values) -> dict:
    """The metrics that have a value."""
    return {name: v for name, v in values.items() if v is not None}


# ---------------------------------------------------------------- Part B: the training losses


def denoiser_loss(sigma: float, *, pure_noise: bool = False) -> trainer.LossFn:
    """b1.2.1's: ‖D_θ(x + σε) − x‖², fresh ε every batch; b1.2.3's, with `pure_noise`:
    ‖D_θ(σε) − x‖², an input that holds nothing of x."""

    def loss_fn(model, x, _labels, g):
        noise = sigma * to_device(torch.randn(x.shape, generator=g), x.device)
        z = noise if pure_noise else x + noise
        return F.mse_loss(model(z), x)

    return loss_fn


def ddpm_training_loss(
    schedule: ddpm.Schedule, num_classes: int, p_uncond: float, min_snr_gamma: float = 0.0
) -> trainer.LossFn:
    """b2.2's and b2.4's: ε-prediction (Ho et al. 2020, Algorithm 1), with one-hot classes
    dropped with p_uncond where the UNet takes them, weighted by min-SNR-γ where γ > 0."""

    def loss_fn(model, x, y, g):
        cond = unets.one_hot(y, num_classes) if num_classes else None
        return ddpm.ddpm_loss(
            model, x, cond, g, schedule, p_uncond=p_uncond, min_snr_gamma=min_snr_gamma
        )

    return loss_fn


def flow_training_loss(
    num_classes: int, p_uncond: float, t_sampling: str = "uniform"
) -> trainer.LossFn:
    """The flow-matching sections': the velocity x1 − x0 regressed at x_t = (1 − t)x0 + t·x1
    (Lipman et al. 2023), with one-hot classes dropped with p_uncond where the UNet takes them."""

    def loss_fn(model, x, y, g):
        cond = unets.one_hot(y, num_classes) if num_classes else None
        return flow.flow_loss(model, x, cond, g, p_uncond=p_uncond, t_sampling=t_sampling)

    return loss_fn


# ---------------------------------------------------------------- Part B: the UNets


def trained_unet(
    losses: list[float], digits: int, p, ctx, config: unets.UNetConfig, *, loss: str, caption: str
) -> Result:
    """What a Part B training section leaves, the DDPM's and flow matching's alike: the kept
    checkpoints, the loss curve (titled by the `loss` it minimised), the final loss and the mean
    loss of every epoch, over `digits` training digits in batches of `p.batch_size`."""
    trainer.keep_models(ctx.work, ctx.private, p.checkpoints())
    steps_per_epoch = -(-digits // p.batch_size)
    figs.loss_curve(
        losses,
        ctx.out / "loss.webp",
        title=f"{model_name(config)}, {loss}",
        per_epoch=steps_per_epoch,
    )
    rows, total = architecture(config)
    last_epoch = losses[-steps_per_epoch:]
    epochs = [losses[i : i + steps_per_epoch] for i in range(0, len(losses), steps_per_epoch)]
    return Result(
        metrics={
            "final_loss": sum(last_epoch) / len(last_epoch),
            "iterations": len(losses),
            "train_digits": digits,
            "params": total,
        },
        figures=[Figure("loss.webp", caption)],
        data={
            "checkpoints": p.checkpoints(),
            "layers": rows,
            "total_params": total,
            "epoch_losses": [sum(e) / len(e) for e in epochs],
        },
        model=model_name(config),
    )


def model_name(config: unets.UNetConfig) -> str:
    kind = (
        "class-conditioned"
        if config.num_classes
        else "time-conditioned"
        if config.time_conditioned
        else ""
    )
    scaled = ", t scales" if config.time_modulation == "multiplicative" else ""
    return f"{kind} UNet(D={config.hidden}{scaled})".strip()


def unet_table(config: unets.UNetConfig) -> Result:
    """What a UNet section (b1.1, b2.1, b2.4, f2.1, f2.4) leaves: its blocks and parameter count."""
    rows, total = architecture(config)
    return Result(
        metrics={"params": total},
        data={"layers": rows, "total_params": total},
        model=model_name(config),
    )


def architecture(config: unets.UNetConfig) -> tuple[list[dict], int]:
    """The UNet's top-level blocks with output shapes and parameter counts, read off the model."""
    model = unets.UNet(config).eval()
    conditioning = ("fc1_t", "fc2_t", "fc1_c", "fc2_c")
    shapes = {}
    hooks = [
        child.register_forward_hook(
            lambda m, i, o, name=name: shapes.__setitem__(name, list(o.shape[1:]))
        )
        for name, child in model.named_children()
        if name not in conditioning
    ]
    x = torch.zeros(1, config.in_channels, 28, 28)
    t = torch.zeros(1) if config.time_conditioned else None
    with torch.no_grad():
        model(x, t)
    for hook in hooks:
        hook.remove()
    for name in conditioning:
        if hasattr(model, name):
            shapes[name] = [getattr(model, name)[-1].out_features]
    rows = [
        {**row, "output": "×".join(map(str, shapes[row["name"]]))}
        for row in unets.layer_table(model)
    ]
    return rows, unets.count_params(model)


# Headlines that several sections share (section.Headline)


def parameters_headline(r) -> Headline:
    """A UNet's size."""
    return Headline("parameters", count(r.metrics["params"]))


def training_headline(r) -> Headline:
    """A training run's last loss."""
    return Headline(
        f"loss {{}} after {count(r.metrics['iterations'])} iterations",
        fixed(r.metrics["final_loss"], ".4f"),
    )
