"""The local backend loaded: the shipped UNet, or b2.4's (its last kept checkpoint), behind the
samplers' interface, read by b2.0's classifier (the `Scoring` protocol). `load_ddpm` loads any
DDPM that Part B trained."""

from __future__ import annotations

from pathlib import Path

import torch

from ..diffusion.ddpm import linear_schedule
from ..diffusion.samplers import classifier_free, iterative_denoise, leading_timesteps
from ..models.classifier import Scorer
from ..models.denoiser import UNetDenoiser
from ..models.train import MODEL_FILE, load_model
from ..models.weights import read_metadata
from ..outputs import model_of
from ..shipped import DDPM
from . import local
from .base import Backend

DDPM_META = "ddpm"  # the metadata key of a DDPM's schedule and variance, beside its weights


def ddpm_metadata(T: int, beta_1: float, beta_T: float, variance_type: str) -> dict:
    """What a DDPM's weights carry (`train(meta=…)`), so that they load with nothing else."""
    return {
        DDPM_META: {
            "schedule": "linear",
            "T": T,
            "beta_1": beta_1,
            "beta_T": beta_T,
            "variance_type": variance_type,
        }
    }


def load_ddpm(
    path: Path,
    device: str,
    variance_type: str | None = None,
    precision: str = "fp32",
    channels_last: bool = False,
) -> UNetDenoiser:
    """A DDPM's weights as a denoiser, with the schedule its metadata declares, and the variance
    it declares unless `variance_type` says otherwise; it runs at `precision` (fp32, or bf16
    autocast) in `channels_last` layout or not."""
    found = read_metadata(path).get(DDPM_META)
    if found is None or found.get("schedule") != "linear":
        raise ValueError(f"{path.name} holds no DDPM schedule in its metadata; train it again")
    schedule = linear_schedule(found["T"], found["beta_1"], found["beta_T"])
    return UNetDenoiser(
        load_model(path, device),
        schedule.alphas_cumprod,
        device,
        variance_type or found["variance_type"],
        precision=precision,
        channels_last=channels_last,
    )


def load_kept_ddpm(
    entry, epoch: int, device: str, precision: str = "fp32", channels_last: bool = False
) -> UNetDenoiser:
    """The DDPM a training section's store entry kept after `epoch`."""
    return load_ddpm(
        entry.private / MODEL_FILE.format(epoch=epoch),
        device,
        precision=precision,
        channels_last=channels_last,
    )


class LocalBackend(Backend):
    """`model_entry`: b2.4's store entry, or None for the model shipped with the project."""

    def __init__(
        self,
        spec,
        model_entry,
        scorer_entry,
        timesteps: list[int],
        device: str,
        variance: str,
        precision: str = "fp32",
        channels_last: bool = False,
    ):
        fast = {"precision": precision, "channels_last": channels_last}
        self.spec = spec
        if model_entry is None:
            shipped = DDPM.record()
            self.denoiser = load_ddpm(DDPM.weights, device, variance, **fast)
            made = {
                "model_id": f"{shipped['model']}, shipped with the project",
                "pretrained": f"trained beforehand by `{shipped['command']}` "
                f"({shipped['machine_line']}, {shipped['duration_s'] / 60:.0f} min)",
                "weights_sha256": shipped["sha256"],
                "weights_bytes": shipped["bytes"],
            }
        else:
            epoch = model_entry.data["checkpoints"][-1]
            self.denoiser = load_ddpm(
                model_entry.private / MODEL_FILE.format(epoch=epoch), device, variance, **fast
            )
            record = model_entry.record
            made = {
                "model_id": f"{model_of(record)} of {record['id']}, epoch {epoch}",
                record["id"]: model_entry.key,
            }
        self._scorer = Scorer(scorer_entry.private, device)
        self._reference = scorer_entry.record["metrics"]
        self.timesteps = timesteps
        self.device = device
        self.describe = {
            "name": spec.name,
            **made,
            "text_to_image": "our strided sampler with classifier-free guidance",
            "variance_type": self.denoiser.variance_type,
        }

    # Scoring: b2.0's classifier reads the digits

    def labels_of(self, prompts: list[str]) -> torch.Tensor | None:
        if all(p in local.DIGITS for p in prompts):
            return torch.tensor([int(p) for p in prompts])
        return None

    def read(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._scorer.read(pixels)

    def reference(self) -> dict:
        return self._reference

    def frechet(self, pixels: torch.Tensor) -> float:
        return self._scorer.frechet(pixels)

    def text_to_image(self, prompts, num_inference_steps, guidance, generator) -> torch.Tensor:
        """One guided sample per prompt over `num_inference_steps` evenly spaced ("leading")
        timesteps."""
        den = self.denoiser
        timesteps = leading_timesteps(den.alphas_cumprod.shape[0], num_inference_steps)
        eps_fn = classifier_free(den, den.encode(prompts), den.encode([""]), guidance)
        noise = torch.randn((len(prompts), *self.shape), generator=generator).to(self.device)
        return iterative_denoise(
            eps_fn,
            noise,
            timesteps,
            den.alphas_cumprod,
            generator=generator,
            variance_type=den.variance_type,
        )
