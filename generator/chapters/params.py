"""Every section's parameters: names, types, bounds and descriptions; their values live in gen.yaml alone.

A section's `check(config, sid)` looks at what a single field cannot: other
sections' parameters, the backend the build runs on (`config.spec`), the
files it names. Everything here is read before anything runs, without torch.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from ..errors import UsageError
from ..inputs import check_image, check_mask
from ..section import Params

Prompt = Annotated[str, Field(max_length=500)]
Prompts = Annotated[list[Prompt], Field(min_length=1, max_length=16, description="prompts")]
Guidance = Annotated[
    float, Field(ge=0.0, le=50.0, description="classifier-free guidance scale γ, from 0 to 50")
]
Spec = Annotated[str, Field(min_length=1, max_length=4096)]
Images = Annotated[
    list[Spec], Field(min_length=1, max_length=8, description="input images: paths or mnist:N")
]
Samples = Annotated[int, Field(ge=1, le=1000, description="samples drawn, from 1 to 1000")]
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
Precision = Annotated[
    Literal["auto", "fp32", "bf16"],
    Field(
        description="fp32, bf16 autocast, or auto: bf16 where the device computes it natively, else fp32"
    ),
]
GifFrames = Annotated[
    int, Field(ge=2, le=300, description="frames of the animation, from 2 to 300")
]
ViewName = Literal["flip", "rot180", "rot90cw", "rot90ccw", "negate", "transpose"]


def _check_prompts(config, key: str, prompts: list[str]) -> None:
    for prompt in prompts:
        config.spec.check_prompt(key, prompt)


def _check_odd(key: str, value: int) -> None:
    if value % 2 == 0:
        raise UsageError(f"bad value {key}={value}: the kernel size must be odd")


# ---------------------------------------------------------------- Part A


class PromptsParams(Params):
    """Sections that sample once per prompt of a list."""

    prompts: Prompts

    def check(self, config, sid):
        _check_prompts(config, f"{sid}.prompts", self.prompts)

    def all_prompts(self):
        return list(self.prompts)


class TextToImageParams(PromptsParams):
    steps: list[Annotated[int, Field(ge=2, le=1000)]] = Field(
        min_length=1, max_length=8, description="num_inference_steps, one row each"
    )
    guidance: Guidance


class ForwardParams(Params):
    image: Spec = Field(description="the test image: a path or mnist:N")
    timesteps: list[Annotated[int, Field(ge=0, le=100000)]] = Field(
        min_length=1, max_length=12, description="t of each noisy image"
    )

    def check(self, config, sid):
        check_image(self.image, config.root)
        config.spec.check_schedule(config, f"{sid}.timesteps", timesteps=self.timesteps)

    def input_files(self):
        return [self.image]


class BlurParams(Params):
    kernel_size: KernelSize
    sigma: float = Field(gt=0.0, le=50.0, description="the Gaussian's σ in pixels")

    def check(self, config, sid):
        _check_odd(f"{sid}.kernel_size", self.kernel_size)


class OneStepParams(Params):
    prompt: Prompt = Field(description="the prompt")

    def check(self, config, sid):
        _check_prompts(config, f"{sid}.prompt", [self.prompt])

    def all_prompts(self):
        return [self.prompt]


class IterativeParams(OneStepParams):
    i_start: int = Field(ge=0, le=100000, description="index of the first strided timestep")
    show_every: int = Field(ge=1, le=100, description="show every n-th step")
    runs: int = Field(
        ge=1,
        le=200,
        description="noisy copies of the test image, each with its own noise; figures show the first",
    )

    def check(self, config, sid):
        super().check(config, sid)
        config.spec.check_schedule(config, f"{sid}.i_start", i_start=self.i_start)


class NoiseSampleParams(OneStepParams):
    num_samples: Samples


class CFGParams(PromptsParams):
    num_samples: Samples
    guidance: Guidance


class SDEditParams(OneStepParams):
    images: Images
    i_starts: list[Annotated[int, Field(ge=0, le=100000)]] = Field(
        min_length=1, max_length=12, description="where denoising starts"
    )
    guidance: Guidance

    def check(self, config, sid):
        super().check(config, sid)
        for image in self.images:
            check_image(image, config.root)
        for i in self.i_starts:
            config.spec.check_schedule(config, f"{sid}.i_starts", i_start=i)

    def input_files(self):
        return list(self.images)


class InpaintParams(OneStepParams):
    images: Images
    masks: list[Spec] = Field(
        min_length=1,
        max_length=8,
        description="one mask per image: a picture of its size (white = new content) or rect:TOP,BOTTOM,LEFT,RIGHT",
    )
    guidance: Guidance

    def check(self, config, sid):
        if len(self.masks) != len(self.images):
            raise UsageError(
                f"bad value {sid}.masks: {len(self.masks)} masks for {len(self.images)} images; give one mask per image"
            )
        for image, mask in zip(self.images, self.masks):
            check_image(image, config.root)
            check_mask(mask, image, config.root)
        super().check(config, sid)

    def input_files(self):
        return [*self.images, *self.masks]


class AnagramParams(Params):
    anagrams: list[Annotated[list[Prompt], Field(min_length=2, max_length=4)]] = Field(
        min_length=1,
        max_length=8,
        description="prompt lists: the first as the image is, the others under `views`",
    )
    views: list[ViewName] = Field(
        min_length=1, max_length=3, description="the view of each further prompt"
    )
    num_samples: Samples
    guidance: Guidance

    def check(self, config, sid):
        for prompts in self.anagrams:
            if len(prompts) != len(self.views) + 1:
                raise UsageError(
                    f"bad value {sid}.anagrams: {prompts} has {len(prompts)} prompts but {sid}.views={self.views} "
                    f"needs {len(self.views) + 1} (one as the image is, one per view)"
                )
            _check_prompts(config, f"{sid}.anagrams", prompts)
        low, high = config.spec.value_range
        if "negate" in self.views and low >= 0:
            raise UsageError(
                f"bad value {sid}.views: 'negate' needs a model whose pixels are centred on zero; the {config.backend} "
                f"model works on [{low:g}, {high:g}]. Use flip, rot180, rot90cw, rot90ccw or transpose"
            )

    def all_prompts(self):
        return [p for prompts in self.anagrams for p in prompts]


class HybridParams(Params):
    pairs: list[Annotated[list[Prompt], Field(min_length=2, max_length=2)]] = Field(
        min_length=1,
        max_length=8,
        description="[low-frequency prompt, high-frequency prompt] pairs",
    )
    kernel_size: KernelSize
    sigmas: list[Annotated[float, Field(gt=0.0, le=50.0)]] = Field(
        min_length=1,
        max_length=12,
        description="σ of the low-pass Gaussian in pixels; several: a sweep, shown at the best",
    )
    far_scale: int = Field(
        ge=2, le=16, description="how many times smaller the image is seen from afar"
    )
    num_samples: Samples
    guidance: Guidance

    def check(self, config, sid):
        _check_odd(f"{sid}.kernel_size", self.kernel_size)
        for pair in self.pairs:
            _check_prompts(config, f"{sid}.pairs", pair)

    def all_prompts(self):
        return [p for pair in self.pairs for p in pair]


# ---------------------------------------------------------------- Part B


class UNetParams(Params):
    hidden: Hidden


class NoisingParams(Params):
    sigmas: list[Annotated[float, Field(ge=0.0, le=100.0)]] = Field(
        min_length=1, max_length=16, description="noise levels σ, a list of numbers ≥ 0"
    )
    num_digits: int = Field(ge=1, le=20, description="test digits shown, from 1 to 20")


class TrainDenoiserParams(Params):
    sigma: float = Field(ge=0.0, le=10.0, description="σ of the training noise, from 0 to 10")
    epochs: Epochs
    batch_size: BatchSize
    lr: LearningRate
    train_subset: TrainSubset
    precision: Precision
    num_digits: int = Field(ge=1, le=20, description="test digits shown, from 1 to 20")


class OutOfDistributionParams(Params):
    eval_digits: int = Field(
        ge=1, le=10000, description="test digits scored per σ, from 1 to 10000"
    )
    batch_size: int = Field(ge=1, le=10000, description="batch size for scoring, from 1 to 10000")


class DDPMParams(Params):
    T: int = Field(ge=2, le=5000, description="number of diffusion timesteps, from 2 to 5000")
    beta_1: float = Field(gt=0.0, lt=1.0, description="the first β, in (0, 1)")
    beta_T: float = Field(gt=0.0, lt=1.0, description="the last β, in (0, 1)")
    epochs: Epochs
    batch_size: BatchSize
    lr: LearningRate
    lr_schedule: Literal["exponential", "onecycle", "constant"] = Field(
        description="exponential: × 0.1^(1/epochs) after each epoch; onecycle: warm up to lr, then anneal, per step; constant"
    )
    train_subset: TrainSubset
    precision: Precision
    ema_decay: float = Field(
        ge=0.0,
        lt=1.0,
        description="decay of the weights' moving average that samples, in [0, 1); 0: off",
    )
    sample_epochs: list[Annotated[int, Field(ge=1, le=1000)]] | None = Field(
        description="epochs whose weights are sampled, each from 1 to epochs; null: a quarter of the way and the last",
    )

    @field_validator("sample_epochs")
    @classmethod
    def _within_training(cls, value, info):
        epochs = info.data.get("epochs")
        if value is not None and epochs is not None:
            if not value or any(not 1 <= e <= epochs for e in value):
                raise ValueError(f"every epoch must be from 1 to epochs={epochs} (or null)")
        return value

    def checkpoints(self) -> list[int]:
        """The epochs whose weights the sampling sections use."""
        if self.sample_epochs is not None:
            return sorted(set(self.sample_epochs))
        return sorted({max(1, round(self.epochs / 4)), self.epochs})


class ClassDDPMParams(DDPMParams):
    hidden: Hidden
    p_uncond: float = Field(
        ge=0.0, le=1.0, description="probability of dropping the class, from 0 to 1"
    )


class ClassifierParams(Params):
    epochs: int = Field(ge=1, le=100, description="training epochs, from 1 to 100")
    batch_size: BatchSize
    lr: float = Field(
        gt=0.0, le=1.0, description="peak learning rate of Adam with OneCycle, in (0, 1]"
    )
    train_subset: TrainSubset


class DDPMSampleParams(Params):
    num_samples: int = Field(
        ge=1, le=400, description="samples shown per checkpoint, from 1 to 400"
    )
    eval_samples: int = Field(
        ge=2, le=10000, description="samples scored per checkpoint, from 2 to 10000"
    )
    batch_size: int = Field(ge=1, le=10000, description="samples drawn at once, from 1 to 10000")
    gif_frames: GifFrames


class GuidedSampleParams(Params):
    per_digit: int = Field(
        ge=1, le=40, description="samples shown per digit and checkpoint, from 1 to 40"
    )
    guidance: Guidance
    eval_per_digit: int = Field(
        ge=1, le=1000, description="samples scored per digit and checkpoint"
    )
    batch_size: int = Field(ge=1, le=10000, description="samples drawn at once, from 1 to 10000")
    gif_frames: GifFrames
