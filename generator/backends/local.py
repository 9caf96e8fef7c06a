"""The local backend as the parameters see it: Part A on a class-conditioned MNIST DDPM.

The model is the one shipped with the project (trained beforehand by `gen
pretrain`, generator/pretrained.py) or the build's own b2.4. A prompt is a
digit, "0" to "9", and "" is the unconditional prompt. The model works on
pixels in [0, 1], as it was trained, with its own schedule; b2.0's classifier
reads its samples. The model loads in local_model.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from ..errors import UsageError
from ..shipped import DDPM
from ..speed import ChannelsLast, Precision, speed_identity
from .base import BackendSettings, BackendSpec

MODEL, SCORER = "b2.4", "b2.0"  # the sections whose results the backend loads
PRETRAINED = "pretrained"
DIGITS = tuple(str(d) for d in range(10))


class LocalSettings(BackendSettings):
    """Part A on a class-conditioned MNIST DDPM: a prompt is a digit, "" unconditional."""

    model: Literal["pretrained", "b2.4"] = Field(
        description="pretrained: the model shipped with the project (gen pretrain); b2.4: the "
        "one this build trains"
    )
    variance: Literal["fixed_small", "fixed_large"] = Field(
        description="σ² of each strided step: fixed_small, the posterior β̃ between the two "
        "timesteps (no noise left after the last); fixed_large, β, as the weights declare"
    )

    precision: Precision
    channels_last: ChannelsLast

    def identity(self) -> dict:
        """The settings, and the shipped weights' sha256 where they are used: a new model rebuilds
        Part A."""
        found = speed_identity(self.model_dump(mode="json"), ("precision", "channels_last"))
        if self.model == PRETRAINED:
            found["weights_sha256"] = DDPM.recorded_sha256()
        return found


class LocalSpec(BackendSpec):
    name = "local"
    settings = LocalSettings
    shape = (1, 28, 28)
    value_range = (0.0, 1.0)
    pixelated = True
    classes = DIGITS
    reference = "local full profile"

    def needs_for(self, settings: LocalSettings) -> tuple[str, ...]:
        return (SCORER,) if settings.model == PRETRAINED else (MODEL, SCORER)

    def num_timesteps(self, config) -> int:
        if config.params[self.name].model == PRETRAINED:
            return DDPM.record()["params"]["T"]
        return config.params[MODEL].T

    def preflight(self, config, section_ids: list[str], prompts: list[str]) -> None:
        """The shipped weights are there and are the ones their record names."""
        if config.params[self.name].model != PRETRAINED:
            return
        DDPM.check()

    def check_steps(self, config, key: str, steps: int) -> None:
        """Its text-to-image sampler spaces steps as DDPMScheduler's "leading" does, which
        starts from T − T/n only where n divides T (diffusion/timesteps.py)."""
        super().check_steps(config, key, steps)
        T = self.num_timesteps(config)
        if T % steps:
            counts = [n for n in range(2, T + 1) if T % n == 0]
            raise UsageError(
                f"bad value {key}: {steps} steps do not divide the {self.name} model's "
                f"T = {T} timesteps, which evenly spaced steps need; use one of "
                f"{', '.join(map(str, counts))}"
            )

    def check_prompt(self, key: str, prompt: str) -> None:
        if prompt != "" and prompt not in DIGITS:
            raise UsageError(
                f"bad value {key}: the local backend cannot encode the prompt {prompt!r}; "
                "its prompts are the digits 0-9 and '' (unconditional). Use --backend deepfloyd "
                "for text"
            )

    def load(
        self, settings: LocalSettings, needs: dict, prompts: list[str], cache: Path, device: str
    ):
        from .local_model import LocalBackend

        return LocalBackend(
            self,
            needs.get(MODEL),
            needs[SCORER],
            settings.timesteps(),
            device,
            settings.variance,
            settings.precision,
            settings.channels_last == "on",
        )


LOCAL = LocalSpec()
