"""What several sections' parameters share: field types with their bounds and descriptions, the
checks they make, and base classes. Each section's own parameter class is beside its run function;
the values live in gen.yaml alone.

A section's `check(config, sid)` looks at what a single field cannot: other
sections' parameters, the backend the build runs on (`config.spec`), the
files it names. Everything here is read before anything runs, without torch.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..errors import UsageError
from ..section import Params

Prompt = Annotated[str, Field(max_length=500)]
Prompts = Annotated[list[Prompt], Field(min_length=1, max_length=16, description="prompts")]
Guidance = Annotated[
    float, Field(ge=0.0, le=50.0, description="classifier-free guidance scale γ, from 0 to 50")
]
Spec = Annotated[str, Field(min_length=1, max_length=4096)]
Samples = Annotated[int, Field(ge=1, le=1000, description="samples drawn, from 1 to 1000")]
GifFrames = Annotated[
    int, Field(ge=2, le=300, description="frames of the animation, from 2 to 300")
]
# Autoguidance (Karras et al. 2024): the last checkpoint guided away from an earlier one.
Autoguidance = Annotated[
    float,
    Field(
        ge=1.0,
        le=20.0,
        description="w of autoguidance, weak + w(model − weak), for a second set of samples of "
        "the last checkpoint; 1: none",
    ),
]
GuideEpoch = Annotated[
    int | None,
    Field(
        ge=1,
        le=1000,
        description="the kept checkpoint that guides as the weaker model; null: the first",
    ),
]
KernelSize = Annotated[int, Field(ge=1, le=99, description="Gaussian kernel size, odd")]
Hidden = Annotated[
    int, Field(ge=1, le=1024, description="D, the UNet's channel width (an integer from 1 to 1024)")
]
Epochs = Annotated[int, Field(ge=1, le=1000, description="training epochs, from 1 to 1000")]
BatchSize = Annotated[int, Field(ge=1, le=60000, description="batch size, from 1 to 60000")]
LearningRate = Annotated[
    float, Field(gt=0.0, le=1.0, description="Adam's learning rate, in (0, 1]")
]
TrainSubset = Annotated[
    int, Field(ge=0, le=60000, description="training digits used, 0 for all 60,000")
]


def check_prompts(config, key: str, prompts: list[str]) -> None:
    for prompt in prompts:
        config.spec.check_prompt(key, prompt)


def check_autoguidance(
    sid: str, autoguidance: float, guide_epoch: int | None, trained: str, kept: list[int]
) -> None:
    """Autoguidance needs a weaker model: a checkpoint the training section `trained` keeps
    (`kept`) before its last."""
    if autoguidance > 1 and len(kept) < 2:
        raise UsageError(
            f"bad value {sid}.autoguidance={autoguidance:g}: it needs a weaker model, an "
            f"earlier checkpoint of {trained}, which keeps only epoch {kept[0]}; set "
            f"{trained}.sample_epochs to two epochs or more, or autoguidance to 1"
        )
    if guide_epoch is not None and guide_epoch not in kept[:-1]:
        raise UsageError(
            f"bad value {sid}.guide_epoch={guide_epoch}: the weaker model must be a "
            f"checkpoint {trained} keeps before its last: one of {kept[:-1]} "
            f"({trained}.sample_epochs)"
        )


def check_odd(key: str, value: int) -> None:
    if value % 2 == 0:
        raise UsageError(f"bad value {key}={value}: the kernel size must be odd")


class PromptsParams(Params):
    """Sections that sample once per prompt of a list."""

    prompts: Prompts

    def check(self, config, sid):
        check_prompts(config, f"{sid}.prompts", self.prompts)

    def all_prompts(self):
        return list(self.prompts)


class OneStepParams(Params):
    prompt: Prompt = Field(description="the prompt")

    def check(self, config, sid):
        check_prompts(config, f"{sid}.prompt", [self.prompt])

    def all_prompts(self):
        return [self.prompt]


class UNetParams(Params):
    hidden: Hidden
