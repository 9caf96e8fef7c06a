"""The local backend: Part A's samplers on the class-conditioned MNIST model that b2.4 trains.

A prompt is a digit, "0" to "9", and "" is the unconditional prompt (the
all-zero class vector the model saw with probability p_uncond in training).
The model works on pixels in [0, 1], as it was trained, and its schedule is
b2.4's linear one (T = 300).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..diffusion.ddpm import linear_schedule
from ..diffusion.samplers import classifier_free, iterative_denoise
from ..models.train import load_model
from . import DIGITS

NUM_CLASSES = 10


class LocalDenoiser:
    """ε_θ(x_t, t/T, c) of the b2.4 UNet; it predicts no variance (the samplers then use β̃)."""

    def __init__(self, model, alphas_cumprod: torch.Tensor, device: str):
        self.model = model
        self.alphas_cumprod = alphas_cumprod
        self.device = device

    def encode(self, prompts: list[str]) -> torch.Tensor:
        """One-hot digits (B, 10); "" gives the zero vector, the unconditional prompt."""
        rows = []
        for prompt in prompts:
            if prompt == "":
                rows.append(torch.zeros(NUM_CLASSES))
            elif prompt in DIGITS:
                rows.append(F.one_hot(torch.tensor(int(prompt)), NUM_CLASSES).float())
            else:
                raise ValueError(f"the local backend's prompts are digits 0-9 or '' (unconditional), got {prompt!r}")
        return torch.stack(rows)

    @torch.no_grad()
    def __call__(self, x_t: torch.Tensor, t: int, cond: torch.Tensor) -> tuple[torch.Tensor, None]:
        B = x_t.shape[0]
        T = self.alphas_cumprod.shape[0]
        t_in = torch.full((B,), t / T, device=self.device)  # (B,) the model sees t/T
        eps = self.model(x_t.to(self.device), t_in, cond.to(self.device))  # (B, 1, 28, 28)
        return eps.float(), None


class LocalBackend:
    name = "local"
    shape = (1, 28, 28)  # (C, H, W) of the model's images

    def __init__(self, entry, timesteps: list[int], device: str):
        """`entry` is b2.4's store entry: its last checkpoint is the model."""
        train = entry.record["params"]
        epoch = entry.data["checkpoints"][-1]
        schedule = linear_schedule(train["T"], train["beta_1"], train["beta_T"])
        model = load_model(entry.private / f"model_epoch_{epoch}.safetensors", device)
        self.denoiser = LocalDenoiser(model, schedule.alphas_cumprod, device)
        self.timesteps = timesteps
        self.device = device
        self.model_id = f"{entry.record['backend']['model_id']} of b2.4, epoch {epoch}"
        self.describe = {"name": self.name, "model_id": self.model_id, "b2.4": entry.key}

    def to_model(self, images: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] → the model's space (the same: it was trained on [0, 1])."""
        return images.to(self.device)

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().clamp(0, 1).cpu()

    def upsample(self, x: torch.Tensor, prompts: list[str], generator: torch.Generator) -> None:
        """No second stage: the 28×28 images are the result."""
        return None

    def text_to_image(
        self, prompts: list[str], num_inference_steps: int, guidance: float, generator: torch.Generator
    ) -> torch.Tensor:
        """One guided sample per prompt over `num_inference_steps` evenly spaced ("leading") timesteps."""
        T = self.denoiser.alphas_cumprod.shape[0]
        ratio = T // num_inference_steps
        timesteps = [i * ratio for i in range(num_inference_steps)][::-1]  # as DDPMScheduler's "leading" spacing
        eps_fn = classifier_free(self.denoiser, self.denoiser.encode(prompts), self.denoiser.encode([""]), guidance)
        noise = torch.randn((len(prompts), *self.shape), generator=generator).to(self.device)
        return iterative_denoise(eps_fn, noise, timesteps, self.denoiser.alphas_cumprod, generator=generator)
