"""The local backend as the parameters see it: Part A on the class-conditioned MNIST model of b2.4.

A prompt is a digit, "0" to "9", and "" is the unconditional prompt. The model
works on pixels in [0, 1], as it was trained, with b2.4's schedule; b2.0's
classifier reads its samples. The model loads in local_model.py.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from .base import BackendSettings, BackendSpec

MODEL, SCORER = "b2.4", "b2.0"  # the sections whose results the backend loads
DIGITS = tuple(str(d) for d in range(10))


class LocalSettings(BackendSettings):
    """Part A on the class-conditioned MNIST model of b2.4: a prompt is a digit, ""
    unconditional."""


class LocalSpec(BackendSpec):
    name = "local"
    settings = LocalSettings
    needs = (MODEL, SCORER)
    shape = (1, 28, 28)
    value_range = (0.0, 1.0)
    pixelated = True
    reference = "local full profile"

    def num_timesteps(self, config) -> int:
        return config.params[MODEL].T

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

        return LocalBackend(self, needs[MODEL], needs[SCORER], settings.timesteps(), device)


LOCAL = LocalSpec()
