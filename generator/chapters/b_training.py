"""Part B, 2.1, 2.2 and 2.4: the time- and class-conditioned DDPMs, trained; and 2.0, the
classifier that scores them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from ..data import mnist, subset
from ..errors import UsageError
from ..section import Headline, Params, Result, lazy, percent, section
from ..shipped import CLASSIFIER
from ..speed import ChannelsLast, Compile, DataOnDevice, Precision, speed_identity
from .common import (
    ddpm_training_loss,
    parameters_headline,
    rng,
    trained_unet,
    training_headline,
    unet_table,
)
from .params import BatchSize, Epochs, Hidden, LearningRate, TrainSubset, UNetParams

# Imported where a run first uses them: reading the table (gen list) imports no torch.
torch = lazy("torch")
TF = lazy("torchvision.transforms.functional")
local_model = lazy("..backends.local_model", __package__)
ddpm = lazy("..diffusion.ddpm", __package__)
figs = lazy("..figures", __package__)
clf = lazy("..models.classifier", __package__)
trainer = lazy("..models.train", __package__)
unets = lazy("..models.unet", __package__)


class DDPMParams(Params):
    T: int = Field(ge=2, le=5000, description="number of diffusion timesteps, from 2 to 5000")
    beta_1: float = Field(gt=0.0, lt=1.0, description="the first β, in (0, 1)")
    beta_T: float = Field(gt=0.0, lt=1.0, description="the last β, in (0, 1)")
    epochs: Epochs
    batch_size: BatchSize
    lr: LearningRate
    lr_schedule: Literal["exponential", "onecycle", "constant"] = Field(
        description="exponential: × 0.1^(1/epochs) after each epoch; onecycle: warm up to lr, then "
        "anneal, per step; constant"
    )
    train_subset: TrainSubset
    precision: Precision
    channels_last: ChannelsLast
    compile: Compile
    data_on_device: DataOnDevice
    ema_decay: float = Field(
        ge=0.0,
        lt=1.0,
        description="decay of the weights' moving average that samples, in [0, 1); 0: off",
    )
    min_snr_gamma: float = Field(
        ge=0.0,
        le=100.0,
        description="γ of min-SNR loss weighting (Hang et al. 2023); 0: off, as the write-up",
    )
    sample_epochs: list[Annotated[int, Field(ge=1, le=1000)]] | None = Field(
        description="epochs whose weights are sampled, each from 1 to epochs; null: a quarter of "
        "the way and the last",
    )

    @field_validator("sample_epochs")
    @classmethod
    def _within_training(cls, value, info):
        epochs = info.data.get("epochs")
        if value is not None and epochs is not None:
            if not value or any(not 1 <= e <= epochs for e in value):
                raise ValueError(f"every epoch must be from 1 to epochs={epochs} (or null)")
        return value

    def identity(self) -> dict:
        return speed_identity(super().identity(), ("channels_last", "compile"))

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
    model: Literal["pretrained", "trained"] = Field(
        description="pretrained: the classifier shipped with the project, trained beforehand by "
        "these numbers (gen pretrain classifier); trained: this build trains it"
    )
    epochs: int = Field(ge=1, le=100, description="training epochs, from 1 to 100")
    batch_size: BatchSize
    lr: float = Field(
        gt=0.0, le=1.0, description="peak learning rate of Adam with OneCycle, in (0, 1]"
    )
    train_subset: TrainSubset
    channels: int = Field(
        ge=4, le=128, description="channels of the first conv block (the second has twice)"
    )
    max_shift: int = Field(
        ge=0, le=4, description="training digits moved by up to this many pixels each way; 0: not"
    )
    far_share: float = Field(
        ge=0.0, le=1.0, description="share of training digits seen from afar (shrunk, enlarged)"
    )

    def recipe(self) -> dict:
        """The numbers it is trained by."""
        return {k: v for k, v in self.model_dump(mode="json").items() if k != "model"}

    def identity(self) -> dict:
        """The parameters, and the shipped weights' sha256 where they are used: new weights
        rescore every sample."""
        found = self.model_dump(mode="json")
        if self.model == "pretrained":
            found["weights_sha256"] = CLASSIFIER.recorded_sha256()
        return found

    def check(self, config, sid):
        if self.model != "pretrained":
            return
        CLASSIFIER.check()
        shipped = CLASSIFIER.record()["params"]
        for name, value in self.recipe().items():
            if shipped.get(name) != value:
                raise UsageError(
                    f"bad value {sid}.{name}={value}: the shipped classifier was trained with "
                    f"{name}={shipped.get(name)}; set {sid}.model=trained to train by these "
                    f"numbers, or ship new weights with `gen pretrain classifier --set "
                    f"{sid}.{name}={value}`"
                )


@section("b2.1", "Time conditioning", UNetParams, headline=parameters_headline)
def time_unet(p: UNetParams, ctx) -> Result:
    return unet_table(unets.UNetConfig(hidden=p.hidden, time_conditioned=True))


def _train_ddpm(p: DDPMParams, ctx, config: unets.UNetConfig, *, p_uncond: float = 0.0) -> Result:
    """Train a DDPM noise predictor (Algorithm 1 of Ho et al. 2020); keep the checkpoints to
    sample."""
    images, labels = subset(*mnist(ctx.data_root, train=True), p.train_subset, p.seed)
    schedule = ddpm.linear_schedule(p.T, p.beta_1, p.beta_T)
    torch.manual_seed(p.seed)  # the UNet's initial weights
    model = unets.UNet(config)
    losses = trainer.train(
        model,
        images,
        labels,
        ddpm_training_loss(schedule, config.num_classes, p_uncond, p.min_snr_gamma),
        trainer.TrainConfig(
            p.epochs,
            p.batch_size,
            p.lr,
            p.lr_schedule,
            p.precision,
            p.ema_decay,
            **trainer.fast_paths(p),
        ),
        generator=rng(p.seed),
        work_dir=ctx.work,
        device=ctx.device,
        progress=ctx.progress,
        label=ctx.section.id,
        # the weights say how to sample them: the schedule, and σ² = β_t, the write-up's
        # sampler (√β_t·z)
        meta=local_model.ddpm_metadata(p.T, p.beta_1, p.beta_T, "fixed_large"),
    )
    result = trained_unet(
        losses,
        images.shape[0],
        p,
        ctx,
        config,
        loss="ε-prediction loss",
        caption="Training loss per iteration; grey lines mark epochs",
    )
    # how much of x0 the last timestep keeps: sampling starts from pure noise regardless
    result.metrics["alphabar_last"] = float(schedule.alphas_cumprod[-1])
    return result


@section(
    "b2.2",
    "Training the time-conditioned DDPM",
    DDPMParams,
    needs=("b2.1",),
    version=2,
    headline=training_headline,
)
def train_time_ddpm(p: DDPMParams, ctx) -> Result:
    return _train_ddpm(
        p, ctx, unets.UNetConfig(hidden=ctx.params_of("b2.1").hidden, time_conditioned=True)
    )


@section("b2.4", "Class conditioning", ClassDDPMParams, version=2, headline=training_headline)
def train_class_ddpm(p: ClassDDPMParams, ctx) -> Result:
    return _train_ddpm(
        p,
        ctx,
        unets.UNetConfig(hidden=p.hidden, time_conditioned=True, num_classes=10),
        p_uncond=p.p_uncond,
    )


def _classifier_headline(r) -> Headline:
    return Headline("of test digits read right", percent(r.metrics["test_accuracy"]))


@section(
    "b2.0",
    "An MNIST classifier for scoring samples",
    ClassifierParams,
    version=2,
    headline=_classifier_headline,
    after="b2.2",  # on the page just before the samples it scores
)
def mnist_classifier(p: ClassifierParams, ctx) -> Result:
    test_images, test_labels = mnist(ctx.data_root, train=False)
    made = None  # for the page: how the shipped weights were made
    if p.model == "pretrained":
        model = clf.load_classifier(CLASSIFIER.weights, ctx.device)
        shipped = CLASSIFIER.record()
        made = {k: shipped[k] for k in ("command", "machine_line", "duration_s", "sha256", "bytes")}
    else:
        model = _train_classifier(p, ctx)
    predicted, probability, features = clf.read_and_features(model, test_images)
    features = features.double().numpy()
    # Real digits seen from afar (a quarter of their size, enlarged back), the ceiling of 1.9's far
    # readings.
    small = TF.resize(TF.resize(test_images, [7, 7], antialias=True), [28, 28], antialias=False)
    small_predicted, small_probability = clf.read(model, small)
    clf.save_scorer(ctx.private, model, features, test_labels.numpy())
    per_digit = {d: float((predicted[test_labels == d] == d).float().mean()) for d in range(10)}
    sure = probability >= clf.CONFIDENT
    return Result(
        # what real test digits score: the reference every generated digit's score stands beside
        metrics={
            "test_accuracy": float((predicted == test_labels).float().mean()),
            "test_confident": float(sure.float().mean()),
            "test_confident_right": float((sure & (predicted == test_labels)).float().mean()),
            "test_accuracy_quarter_size": float((small_predicted == test_labels).float().mean()),
            "test_confident_right_quarter_size": float(
                ((small_probability >= clf.CONFIDENT) & (small_predicted == test_labels))
                .float()
                .mean()
            ),
            **{f"test_accuracy_digit_{d}": a for d, a in per_digit.items()},
        },
        data={
            "per_digit": per_digit,
            "shipped": made,
            "features": int(features.shape[1]),
            "test_digits": int(test_images.shape[0]),
        },
        model="MNIST CNN classifier" + (", shipped with the project" if made else ""),
    )


def _train_classifier(p: ClassifierParams, ctx):
    images, labels = subset(*mnist(ctx.data_root, train=True), p.train_subset, p.seed)
    torch.manual_seed(p.seed)
    return clf.train_classifier(
        images,
        labels,
        epochs=p.epochs,
        batch_size=p.batch_size,
        lr=p.lr,
        generator=rng(p.seed),
        device=ctx.device,
        max_shift=p.max_shift,
        far_share=p.far_share,
        config=clf.ClassifierConfig(channels=p.channels),
        progress=ctx.progress,
    )
