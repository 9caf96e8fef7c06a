"""Part B, 1.1–1.2.2: a UNet that removes noise of one strength in a single step."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..data import mnist, subset
from ..section import Figure, Headline, Params, Result, db, fixed, lazy, plain, section
from ..speed import ChannelsLast, Compile, DataOnDevice, Precision, speed_identity
from .common import (
    denoiser_loss,
    finite,
    parameters_headline,
    psnr,
    rng,
    training_headline,
    unet_table,
)
from .params import BatchSize, Epochs, LearningRate, TrainSubset, UNetParams

# Imported where a run first uses them: reading the table (gen list) imports no torch.
torch = lazy("torch")
figs = lazy("..figures", __package__)
trainer = lazy("..models.train", __package__)
unets = lazy("..models.unet", __package__)


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
    channels_last: ChannelsLast
    compile: Compile
    data_on_device: DataOnDevice
    num_digits: int = Field(ge=1, le=20, description="test digits shown, from 1 to 20")

    def identity(self) -> dict:
        return speed_identity(super().identity(), ("channels_last", "compile"))


class OutOfDistributionParams(Params):
    eval_digits: int = Field(
        ge=1, le=10000, description="test digits scored per σ, from 1 to 10000"
    )
    batch_size: int = Field(ge=1, le=10000, description="batch size for scoring, from 1 to 10000")


def test_digits(ctx, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `count` MNIST test digits: the same ones on every figure of Part B."""
    images, labels = mnist(ctx.data_root, train=False)
    return images[:count], labels[:count]


@section("b1.1", "The UNet", UNetParams, headline=parameters_headline)
def unet_architecture(p: UNetParams, ctx) -> Result:
    return unet_table(unets.UNetConfig(hidden=p.hidden))


def _noising_headline(r) -> Headline:
    sigmas = r.params["sigmas"]
    return Headline(
        f"noise levels, \\(\\sigma\\) from {plain(min(sigmas))} to {plain(max(sigmas))}",
        plain(len(sigmas)),
    )


@section("b1.2", "The noising process", NoisingParams, version=2, headline=_noising_headline)
def noising(p: NoisingParams, ctx) -> Result:
    clean, labels = test_digits(ctx, p.num_digits)
    gen = rng(p.seed)
    noisy = torch.stack([clean + s * torch.randn(clean.shape, generator=gen) for s in p.sigmas])
    figs.image_table(
        noisy.transpose(0, 1),
        ctx.out / "noising.webp",
        row_labels=[f"digit {int(d)}" for d in labels],
        col_labels=[f"σ = {s:g}" for s in p.sigmas],
    )
    return Result(
        figures=[
            Figure(
                "noising.webp",
                "\\(z = x + \\sigma\\epsilon\\) for each \\(\\sigma\\); pixels outside [0, 1] are "
                "shown clipped",
            )
        ],
        data={"digits": labels.tolist()},
    )


@section(
    "b1.2.1",
    "Training the single-step denoiser",
    TrainDenoiserParams,
    needs=("b1.1",),
    headline=training_headline,
)
def train_denoiser(p: TrainDenoiserParams, ctx) -> Result:
    hidden = ctx.params_of("b1.1").hidden
    images, labels = subset(*mnist(ctx.data_root, train=True), p.train_subset, p.seed)
    clean, _ = test_digits(ctx, p.num_digits)
    noisy = clean + p.sigma * torch.randn(clean.shape, generator=rng(p.seed + 1))

    outputs = {}

    def keep_denoised(epoch, model):
        with torch.no_grad():
            outputs[epoch] = model(noisy.to(ctx.device)).float().cpu()

    torch.manual_seed(p.seed)  # the UNet's initial weights
    model = unets.UNet(unets.UNetConfig(hidden=hidden))
    config = trainer.TrainConfig(
        p.epochs, p.batch_size, p.lr, precision=p.precision, **trainer.fast_paths(p)
    )
    losses = trainer.train(
        model,
        images,
        labels,
        denoiser_loss(p.sigma),
        config,
        generator=rng(p.seed),
        work_dir=ctx.work,
        device=ctx.device,
        progress=ctx.progress,
        on_epoch_end=keep_denoised,
        label=ctx.section.id,
    )
    shown = sorted({1, p.epochs})
    steps_per_epoch = -(-images.shape[0] // p.batch_size)
    figs.loss_curve(
        losses,
        ctx.out / "loss.webp",
        title=f"single-step denoiser, σ = {p.sigma:g}",
        per_epoch=steps_per_epoch,
    )
    figs.image_table(
        torch.stack([clean, noisy] + [outputs[e] for e in shown]),
        ctx.out / "denoised.webp",
        row_labels=["clean", f"σ = {p.sigma:g}"] + [f"epoch {e}" for e in shown],
    )
    trainer.keep_models(ctx.work, ctx.private, [p.epochs])
    last_epoch = losses[-steps_per_epoch:]
    return Result(
        metrics={
            "final_loss": sum(last_epoch) / len(last_epoch),
            "iterations": len(losses),
            "train_digits": images.shape[0],
        },
        figures=[
            Figure("loss.webp", "Training loss (MSE) per iteration; grey lines mark epochs"),
            Figure(
                "denoised.webp",
                "Test digits, their noisy versions, and the denoiser's output after "
                + " and ".join(f"epoch {e}" for e in shown),
            ),
        ],
        data={"shown_epochs": shown, "steps_per_epoch": steps_per_epoch, "epoch": p.epochs},
        model=f"UNet(D={hidden})",
    )


class PureNoiseParams(Params):
    epochs: Epochs
    batch_size: BatchSize
    lr: LearningRate
    train_subset: TrainSubset
    precision: Precision
    num_digits: int = Field(ge=1, le=20, description="noise inputs shown, from 1 to 20")


def _pure_noise_headline(r) -> Headline:
    return Headline(
        "RMS distance of the last epoch's outputs from the mean training digit",
        fixed(r.metrics["rms_to_mean"], ".3f"),
    )


@section(
    "b1.2.3",
    "Denoising pure noise",
    PureNoiseParams,
    version=2,
    needs=("b1.1",),
    headline=_pure_noise_headline,
)
def denoise_pure_noise(p: PureNoiseParams, ctx) -> Result:
    """The denoiser of 1.2.1 asked to turn pure noise, z = ε, into a digit: with nothing of the
    digit in its input, the squared error is least for the mean of the training digits."""
    hidden = ctx.params_of("b1.1").hidden
    images, labels = subset(*mnist(ctx.data_root, train=True), p.train_subset, p.seed)
    mean_digit = images.mean(0)  # (1, 28, 28): the minimiser of E‖D(ε) − x‖² over constants
    noise = torch.randn((p.num_digits, 1, 28, 28), generator=rng(p.seed + 1))
    outputs = {}

    def keep_outputs(epoch, model):
        with torch.no_grad():
            outputs[epoch] = model(noise.to(ctx.device)).float().cpu()

    torch.manual_seed(p.seed)  # the UNet's initial weights
    model = unets.UNet(unets.UNetConfig(hidden=hidden))
    losses = trainer.train(
        model,
        images,
        labels,
        denoiser_loss(1.0, pure_noise=True),
        trainer.TrainConfig(p.epochs, p.batch_size, p.lr, precision=p.precision),
        generator=rng(p.seed),
        work_dir=ctx.work,
        device=ctx.device,
        progress=ctx.progress,
        on_epoch_end=keep_outputs,
        label=ctx.section.id,
    )
    shown = sorted({1, p.epochs})
    steps_per_epoch = -(-images.shape[0] // p.batch_size)
    figs.loss_curve(
        losses, ctx.out / "loss.webp", title="denoising pure noise", per_epoch=steps_per_epoch
    )
    mean_row = mean_digit.expand(p.num_digits, -1, -1, -1)
    figs.image_table(
        torch.stack([noise] + [outputs[e] for e in shown] + [mean_row]),
        ctx.out / "outputs.webp",
        row_labels=["input: pure noise"] + [f"epoch {e}" for e in shown] + ["mean training digit"],
    )
    last = outputs[p.epochs]
    last_epoch = losses[-steps_per_epoch:]
    # The loss the mean digit itself scores: the floor a model that ignores its input can reach.
    floor = float((images - mean_digit).pow(2).mean())
    return Result(
        metrics={
            "final_loss": sum(last_epoch) / len(last_epoch),
            "mean_digit_loss": floor,
            "iterations": len(losses),
            "train_digits": images.shape[0],
            # how far the outputs are from the mean digit, and from each other
            "rms_to_mean": float((last - mean_digit).pow(2).mean().sqrt()),
            "rms_between_outputs": float((last - last.mean(0)).pow(2).mean().sqrt()),
        },
        figures=[
            Figure("loss.webp", "Training loss (MSE) per iteration; grey lines mark epochs"),
            Figure(
                "outputs.webp",
                "Pure-noise inputs, the UNet's outputs after "
                + " and ".join(f"epoch {e}" for e in shown)
                + ", and the mean of the training digits",
            ),
        ],
        samples={
            "images": torch.cat([outputs[e] for e in shown]).clamp(0, 1),
            "steps": [e for e in shown for _ in range(p.num_digits)],
        },
        data={"shown_epochs": shown, "steps_per_epoch": steps_per_epoch},
        model=f"UNet(D={hidden})",
    )


def _out_of_distribution_headline(r) -> Headline | None:
    trained = r.data["trained_sigma"]
    for row in r.data["rows"]:
        if row["sigma"] == trained:
            return Headline(
                f"PSNR {{}} dB at the trained \\(\\sigma = {plain(row['sigma'])}\\)",
                db(row["psnr"]),
            )
    return None


@section(
    "b1.2.2",
    "Out-of-distribution noise",
    OutOfDistributionParams,
    needs=("b1.2", "b1.2.1"),
    version=2,
    headline=_out_of_distribution_headline,
)
def out_of_distribution(p: OutOfDistributionParams, ctx) -> Result:
    sigmas = ctx.params_of("b1.2").sigmas
    trained = ctx.needs["b1.2.1"]
    model = trainer.load_kept(trained.private, trained.data["epoch"], ctx.device)
    images = mnist(ctx.data_root, train=False)[0][: p.eval_digits]
    shown = ctx.params_of("b1.2").num_digits
    rows, grid = [], []
    for i, sigma in enumerate(ctx.progress(sigmas, desc="σ")):
        noisy = images + sigma * torch.randn(images.shape, generator=rng(p.seed + i))
        with torch.no_grad():
            denoised = torch.cat(
                [model(batch.to(ctx.device)).float().cpu() for batch in noisy.split(p.batch_size)]
            )
        rows.append(
            {
                "sigma": sigma,
                "mse": float((denoised - images).pow(2).mean()),
                "psnr": finite(psnr(denoised, images)),
                "psnr_noisy": finite(psnr(noisy, images)),
            }
        )  # at σ = 0 the noisy input is the digit itself
        grid.append(torch.stack([noisy[:shown], denoised[:shown]], dim=1))  # (shown, 2, 1, 28, 28)
    # Rows: a noisy and a denoised row per digit; columns: σ.
    figs.image_table(
        torch.stack(grid, dim=1).transpose(1, 2).reshape(2 * shown, len(sigmas), 1, 28, 28),
        ctx.out / "ood.webp",
        row_labels=[label for _ in range(shown) for label in ("noisy", "denoised")],
        col_labels=[f"σ = {s:g}" for s in sigmas],
    )
    metrics = {}
    for r in rows:
        for name in ("mse", "psnr", "psnr_noisy"):
            if r[name] is not None:
                metrics[f"{name}_sigma_{r['sigma']:g}"] = r[name]
    trained_sigma = ctx.params_of("b1.2.1").sigma
    return Result(
        metrics=metrics,
        figures=[
            Figure(
                "ood.webp",
                f"The denoiser trained at \\(\\sigma = {trained_sigma:g}\\), applied at every "
                "\\(\\sigma\\)",
            )
        ],
        data={"rows": rows, "trained_sigma": trained_sigma, "eval_digits": int(images.shape[0])},
        model=f"UNet(D={ctx.params_of('b1.1').hidden})",
    )
