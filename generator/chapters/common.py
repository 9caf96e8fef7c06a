"""Helpers that several sections share: seeds, PSNR, labels, tables of the backend's images, UNet tables."""

from __future__ import annotations

import math

import torch

from ..diffusion.samplers import iterative_denoise
from ..figures import animation, image_table
from ..inputs import load_image
from ..models.unet import UNet, UNetConfig, count_params, layer_table


def generator(seed: int) -> torch.Generator:
    """Every random draw of a section comes from explicit generators (on the CPU), so a seed gives the same images."""
    return torch.Generator().manual_seed(seed)


def psnr(estimate: torch.Tensor, clean: torch.Tensor) -> float:
    """Mean over images of 10·log10(1/MSE), both in [0, 1] (the estimate clamped); in dB, infinite for an exact copy."""
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
    """An input's label: a file's stem in words (digit_two_drawn → digit two drawn), or mnist:N as it is."""
    return spec.rsplit("/", 1)[-1].rsplit(".", 1)[0].replace("_", " ")


# ---------------------------------------------------------------- Part A: the backend's images


def cell(backend) -> float:
    """Inches per image in a table: small images get room to show their pixels."""
    return 1.1 if backend.spec.pixelated else 1.6


def table(backend, images: torch.Tensor, path, **labels) -> None:
    """A labelled table of images (R, K, C, H, W) in the backend's space."""
    pixels = backend.to_pixels(images.flatten(0, 1)).unflatten(0, images.shape[:2])
    image_table(pixels, path, cell=cell(backend), **labels)


def upsampled_table(
    backend, x: torch.Tensor, prompts: list[str], gen: torch.Generator, path, rows: int, **labels
) -> bool:
    """Where the backend has a second stage: its larger versions of x (R·K images, row-major) as a table."""
    if backend.upsampler is None:
        return False
    big = backend.upsampler(x, prompts, gen)
    image_table(big.unflatten(0, (rows, -1)), path, cell=2.6, interpolation="antialiased", **labels)
    return True


def input_image(ctx, backend, spec: str) -> torch.Tensor:
    """An input image in the backend's space, (1, C, H, W)."""
    return backend.to_model(load_image(spec, ctx.config.root, ctx.data_root, backend.shape))


def animate(backend, frames: list[torch.Tensor], path) -> None:
    """The sampling animation of recorded frames (figures.FrameRecorder) in the backend's space, pixel for pixel."""
    animation(frames, path, to_pixels=backend.to_pixels)


def from_noise(backend, eps_fn, count: int, gen: torch.Generator, callback=None) -> torch.Tensor:
    """`count` samples from pure noise over the backend's strided timesteps."""
    x = torch.randn((count, *backend.shape), generator=gen).to(backend.device)
    return iterative_denoise(
        eps_fn,
        x,
        backend.timesteps,
        backend.denoiser.alphas_cumprod,
        generator=gen,
        callback=callback,
    )


def score(backend, pixels: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
    """1.0 where the backend's scorer reads an image as its label, else 0.0; None where there is nothing to read."""
    if backend.scorer is None or labels is None:
        return None
    return (backend.scorer.predict(pixels) == labels).float()


# ---------------------------------------------------------------- Part B: the UNets


def model_name(config: UNetConfig) -> str:
    kind = (
        "class-conditioned"
        if config.num_classes
        else "time-conditioned"
        if config.time_conditioned
        else ""
    )
    return f"{kind} UNet(D={config.hidden})".strip()


def architecture(config: UNetConfig) -> tuple[list[dict], int]:
    """The UNet's top-level blocks with output shapes and parameter counts, read off the model."""
    model = UNet(config).eval()
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
        {**row, "output": "×".join(map(str, shapes[row["name"]]))} for row in layer_table(model)
    ]
    return rows, count_params(model)
