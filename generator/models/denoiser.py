"""A Part B UNet behind the samplers' `Denoiser` interface (diffusion/samplers.py).

The UNet predicts ε from x_t and t/T, and, where it is class-conditioned, a
one-hot class. Prompts are digits, "0" to "9", and "" is the unconditional
prompt (the all-zero class row the model saw with probability p_uncond in
training). A time-only UNet takes no condition: its `encode` gives None.

`UNetVelocity` is the same for a flow-matching UNet: it returns the velocity
u_θ(x_t, t[, c]) at a time t in [0, 1] where a denoiser returns ε̂, so the
samplers' `conditional` and `classifier_free` combine either alike.
"""

from __future__ import annotations

import contextlib

import torch

from ..hardware import to_device
from .unet import UNet, one_hot


class DigitPrompts:
    """A Part B UNet whose prompts are digits: "0" to "9", and "" for none."""

    def __init__(
        self, model: UNet, device: str, precision: str = "fp32", channels_last: bool = False
    ):
        self.model = model.to(memory_format=torch.channels_last) if channels_last else model
        self.device = device
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

    def _run(self, x_t: torch.Tensor, t_in: float, cond: torch.Tensor | None) -> torch.Tensor:
        t_in = torch.full((x_t.shape[0],), t_in, device=self.device)  # (B,)
        x_t = x_t.to(self.device)
        if self.channels_last:
            x_t = x_t.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            out = (
                self.model(x_t, t_in)
                if cond is None
                else self.model(x_t, t_in, to_device(cond, self.device))
            )  # (B, 1, 28, 28)
        # The sampler's arithmetic stays fp32 and contiguous whatever the model ran in.
        return out.float().contiguous()

    def autocast(self):
        """bf16 autocast where the model runs in bf16, else nothing."""
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.split(":")[0], dtype=torch.bfloat16)
        return contextlib.nullcontext()


class UNetDenoiser(DigitPrompts):
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
        super().__init__(model, device, precision, channels_last)
        self.alphas_cumprod = alphas_cumprod  # (T,) of the schedule the model was trained with
        self.variance_type = variance_type  # "fixed_large" (β_t) or "fixed_small" (β̃_t)

    @torch.no_grad()
    def __call__(
        self, x_t: torch.Tensor, t: int, cond: torch.Tensor | None
    ) -> tuple[torch.Tensor, None]:
        T = self.alphas_cumprod.shape[0]
        return self._run(x_t, t / T, cond), None  # the model sees t/T


class UNetVelocity(DigitPrompts):
    """u_θ(x_t, t[, c]) of a flow-matching UNet, t in [0, 1]: noise at 0, a digit at 1."""

    @torch.no_grad()
    def __call__(
        self, x_t: torch.Tensor, t: float, cond: torch.Tensor | None
    ) -> tuple[torch.Tensor, None]:
        return self._run(x_t, float(t), cond), None
