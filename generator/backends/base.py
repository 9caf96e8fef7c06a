"""What every backend is: a torch-free spec, known before anything loads, and the loaded model that
sections use.

`BackendSpec` answers what the parameters need to know before a build runs:
the backend's settings (a group of gen.yaml, set like a section's), the
sections whose results it loads, its images' shape and value range, how many
timesteps its schedule has, which prompts it can encode, and whether it can
load at all. `spec.load(...)` gives a `Backend`, the model itself: a denoiser
for the samplers (which declares the variance it samples with), the strided
timesteps, pixel conversion, optionally an upsampler with the words captions
use for it, and, where a classifier can read its images, the `Scoring`
protocol. Sections see nothing else, so nothing outside backends/ needs a
backend's name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import Field

from ..diffusion.timesteps import strided_timesteps
from ..errors import UsageError
from ..section import Settings


class BackendSettings(Settings):
    """Settings every backend has: the strided schedule that Part A's samplers walk."""

    t_start: int = Field(ge=1, le=100000, description="the first of the strided timesteps")
    stride: int = Field(ge=1, le=100000, description="the step between strided timesteps")

    def timesteps(self) -> list[int]:
        """t_start, t_start − stride, …, 0: the strided schedule of every Part A sampler."""
        return strided_timesteps(self.t_start, self.stride)


class BackendSpec:
    """A backend as the parameters see it, before anything loads (no torch)."""

    name: str
    settings: type[BackendSettings]
    shape: tuple[int, int, int]  # (C, H, W) of the model's images
    value_range: tuple[float, float]  # pixels 0 and 1 in the model's space
    pixelated: bool = False  # images small enough to show blown up, as crisp pixels
    classes: tuple[str, ...] = ()  # prompts that are classes its classifier reads (Scoring)
    reference: str = "write-up"  # where its full profile's numbers come from, as pages name it

    def num_timesteps(self, config) -> int:
        """T of the model's training schedule."""
        raise NotImplementedError

    def needs_for(self, settings: BackendSettings) -> tuple[str, ...]:
        """The sections whose results the backend loads with these settings."""
        return ()

    def check_prompt(self, key: str, prompt: str) -> None:
        """Raise UsageError for a prompt the model cannot encode."""

    def available(self, settings: BackendSettings, cuda: bool) -> tuple[bool, str]:
        """Whether `--backend auto` may take this backend, and why (or why not)."""
        return True, "always available"

    def preflight(self, config, section_ids: list[str], prompts: list[str]) -> None:
        """Checks that need the file system or the network, just before sections run; raise
        UsageError."""

    def load(
        self, settings: BackendSettings, needs: dict, prompts: list[str], cache: Path, device: str
    ) -> Backend:
        """The model, ready to run; `needs` are the store entries of `self.needs_for(settings)`."""
        raise NotImplementedError

    def check_steps(self, config, key: str, steps: int) -> None:
        """A step count of the model's own text-to-image sampler fits its schedule of T
        timesteps."""
        T = self.num_timesteps(config)
        if steps > T:
            raise UsageError(
                f"bad value {key}: {steps} steps, but the {self.name} model's schedule has "
                f"T = {T} timesteps; use at most {T}"
            )

    def check_schedule(
        self, config, key: str, *, i_start: int | None = None, timesteps: list[int] = ()
    ) -> None:
        """The strided schedule lies inside the model's, every timestep too, and i_start leaves a
        step to take."""
        settings = config.params[self.name]
        T = self.num_timesteps(config)
        if settings.t_start >= T:
            raise UsageError(
                f"bad value {self.name}.t_start={settings.t_start}: the model's schedule has t "
                f"from 0 to {T - 1}"
            )
        for t in timesteps:
            if not 0 <= t < T:
                raise UsageError(
                    f"bad value {key}: timestep {t} is outside the model's schedule, 0 to {T - 1}"
                )
        if i_start is not None:
            last = len(settings.timesteps()) - 2
            if not 0 <= i_start <= last:
                raise UsageError(
                    f"bad value {key}={i_start}: i_start must be from 0 to {last} for the "
                    f"{last + 2} strided timesteps "
                    f"{settings.t_start}, {settings.t_start - settings.stride}, …, 0 of the "
                    f"{self.name} backend"
                )


class Backend:
    """A loaded model as Part A's sections use it."""

    spec: BackendSpec
    denoiser: Any  # diffusion.samplers.Denoiser
    timesteps: list[int]  # the strided schedule of the samplers
    device: str
    # for the record: name, model_id, variance_type (what the samplers use), and how it ran
    describe: dict
    # (x, prompts, generator) -> larger pixels in [0, 1], where there is a second stage
    upsampler: Callable | None = None
    # what the upsampler did, as a caption says it after its subject ("upsampled to …")
    upsampled_by: str = ""

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.spec.shape

    def to_model(self, pixels):
        """Pixels in [0, 1] → the model's value range, on its device."""
        lo, hi = self.spec.value_range
        return (lo + (hi - lo) * pixels).to(self.device)

    def to_pixels(self, x):
        """The model's values → pixels in [0, 1] on the CPU."""
        lo, hi = self.spec.value_range
        return ((x.float() - lo) / (hi - lo)).clamp(0, 1).cpu()

    def text_to_image(
        self, prompts: list[str], num_inference_steps: int, guidance: float, generator
    ):
        """One guided sample per prompt, in the model's space, with the model's own text-to-image
        sampler."""
        raise NotImplementedError


@runtime_checkable
class Scoring(Protocol):
    """A backend whose images a classifier reads as classes (the local model, by b2.0's classifier).

    A backend implements it or not; sections ask which in one place
    (chapters/common.py, `scoring`).
    """

    def labels_of(self, prompts: list[str]) -> Any:
        """(N,) the class each prompt asks for; None where the prompts are not all classes."""
        ...

    def read(self, pixels) -> tuple[Any, Any]:
        """(N,) the class the classifier reads in each image (pixels in [0, 1]), and (N,) the
        probability it gives that class."""
        ...

    def frechet(self, pixels) -> float:
        """The Fréchet distance of the images' features to those of the reference set."""
        ...

    def reference(self) -> dict:
        """What the classifier reads in real test digits (b2.0's metrics): the figures each score
        stands beside."""
        ...
