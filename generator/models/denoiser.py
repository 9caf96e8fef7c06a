"""A Part B UNet behind the samplers' `Denoiser` interface (diffusion/samplers.py).

The UNet predicts ε from x_t and t/T, and, where it is class-conditioned, a
one-hot class. Prompts are digits, "0" to "9", and "" is the unconditional
prompt (the all-zero class row the model saw with probability p_uncond in
training). A time-only UNet takes no condition: its `encode` gives None.
"""

from __future__ import annotations

import contextlib

import torch

from ..hardware import to_device
from .unet import UNet, one_hot


class UNetDenoiser:
    """ε_θ(x_t, t/T[, c]) of a Part B UNet. It predicts no variance: it samples with the fixed one
    it declares, β_t unless told otherwise (the write-up's sampler adds √β_t·z)."""

    def __init__(
        self,
        model: UNet,
        alphas_cumprod: torch.Tensor,
        device: str,
        variance_type: str = "fixed_large",
        precision: str = "fp32",
        channels_last: bool = False,
    ):
        self.model = model.to(memory_format=torch.channels_last) if channels_last else model
        self.alphas_cumprod = alphas_cumprod  # (T,) of the schedule the model was trained with
        self.device = device
        self.variance_type = variance_type  # "fixed_large" (β_t) or "fixed_small" (β̃_t)
        self.num_classes = model.config.num_classes
        self.precision = precision  # "fp32", or "bf16": autocast, the weights stay fp32
        self.channels_last = channels_last

    def encode(self, prompts: list[str]) -> torch.Tensor | None:
        """One-hot digits (B, classes); "" gives the zero row. None for a model without classes."""
        if not self.num_classes:
            return None
        classes = {str(c) for c in range(self.num_classes)}
        unknown = [p for p in prompts if p != "" and p not in classes]
        if unknown:
            raise ValueError(
                f"this model's prompts are digits 0-{self.num_classes - 1} or '' (unconditional), "
                f"got {unknown[0]!r}"
            )
        labels = torch.tensor([int(p) if p else 0 for p in prompts])
        keep = torch.tensor([1.0 if p else 0.0 for p in prompts])
        return one_hot(labels, self.num_classes) * keep[:, None]  # (B, classes)

    @torch.no_grad()
    def __call__(
        self, x_t: torch.Tensor, t: int, cond: torch.Tensor | None
    ) -> tuple[torch.Tensor, None]:
        B = x_t.shape[0]
        T = self.alphas_cumprod.shape[0]
        t_in = torch.full((B,), t / T, device=self.device)  # (B,) the model sees t/T
        x_t = x_t.to(self.device)
        if self.channels_last:
            x_t = x_t.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            eps = (
                self.model(x_t, t_in)
                if cond is None
                else self.model(x_t, t_in, to_device(cond, self.device))
            )  # (B, 1, 28, 28)
        # The sampler's arithmetic stays fp32 and contiguous whatever the model ran in.
        return eps.float().contiguous(), None

    def autocast(self):
        """bf16 autocast where the denoiser runs in bf16, else nothing."""
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.split(":")[0], dtype=torch.bfloat16)
        return contextlib.nullcontext()
