"""The local backend loaded: b2.4's UNet (its last kept checkpoint) behind the samplers' interface, b2.0 as its scorer."""

from __future__ import annotations

import torch

from ..diffusion.ddpm import linear_schedule
from ..diffusion.samplers import classifier_free, iterative_denoise, leading_timesteps
from ..models.classifier import Scorer
from ..models.denoiser import UNetDenoiser
from ..models.train import load_kept
from .base import Backend
from .local import DIGITS


class LocalBackend(Backend):
    def __init__(self, spec, model_entry, scorer_entry, timesteps: list[int], device: str):
        train = model_entry.record["params"]
        epoch = model_entry.data["checkpoints"][-1]
        schedule = linear_schedule(train["T"], train["beta_1"], train["beta_T"])
        self.spec = spec
        self.denoiser = UNetDenoiser(
            load_kept(model_entry.private, epoch, device), schedule.alphas_cumprod, device
        )
        self.scorer = Scorer(scorer_entry.private, device)
        self.timesteps = timesteps
        self.device = device
        model_id = f"{model_entry.record['backend']['model_id']} of {model_entry.record['id']}, epoch {epoch}"
        self.describe = {
            "name": spec.name,
            "model_id": model_id,
            model_entry.record["id"]: model_entry.key,
            "text_to_image": "our strided sampler with classifier-free guidance",
        }

    def labels_of(self, prompts: list[str]) -> torch.Tensor | None:
        if all(p in DIGITS for p in prompts):
            return torch.tensor([int(p) for p in prompts])
        return None

    def text_to_image(self, prompts, num_inference_steps, guidance, generator) -> torch.Tensor:
        """One guided sample per prompt over `num_inference_steps` evenly spaced ("leading") timesteps."""
        den = self.denoiser
        timesteps = leading_timesteps(den.alphas_cumprod.shape[0], num_inference_steps)
        eps_fn = classifier_free(den, den.encode(prompts), den.encode([""]), guidance)
        noise = torch.randn((len(prompts), *self.shape), generator=generator).to(self.device)
        return iterative_denoise(eps_fn, noise, timesteps, den.alphas_cumprod, generator=generator)
