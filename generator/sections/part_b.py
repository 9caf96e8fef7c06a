"""Part B: UNets trained on MNIST from scratch.

Each section is a function from its parameters to a Result. Heavy imports stay
inside the functions so that listing sections needs no torch.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..registry import Figure, Params, Result, section

PAGE = "part_b"
SIGMAS = [0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0]


class UNetParams(Params):
    hidden: int = Field(128, ge=1, le=1024, description="D, the UNet's channel width (an integer from 1 to 1024)")


class NoisingParams(Params):
    sigmas: list[Annotated[float, Field(ge=0.0, le=100.0)]] = Field(
        default_factory=lambda: list(SIGMAS), min_length=1, description="noise levels σ, a list of numbers ≥ 0"
    )
    num_digits: int = Field(5, ge=1, le=20, description="test digits shown, from 1 to 20")


class TrainDenoiserParams(Params):
    sigma: float = Field(0.5, ge=0.0, le=10.0, description="σ of the training noise, from 0 to 10")
    epochs: int = Field(5, ge=1, le=1000, description="training epochs, from 1 to 1000")
    batch_size: int = Field(256, ge=1, le=60000, description="batch size, from 1 to 60000")
    lr: float = Field(1e-3, gt=0.0, le=1.0, description="Adam's learning rate, in (0, 1]")
    train_subset: int = Field(0, ge=0, le=60000, description="training digits used, 0 for all 60,000")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="fp32, or bf16 autocast")
    num_digits: int = Field(5, ge=1, le=20, description="test digits shown, from 1 to 20")


class OutOfDistributionParams(Params):
    eval_digits: int = Field(10000, ge=1, le=10000, description="test digits scored per σ, from 1 to 10000")
    batch_size: int = Field(1000, ge=1, le=10000, description="batch size for scoring, from 1 to 10000")


# ---------------------------------------------------------------- helpers


def _test_digits(ctx, count: int):
    """The first `count` MNIST test digits: the same ones on every figure of Part B."""
    from ..data import mnist

    images, labels = mnist(ctx.data_root, train=False)
    return images[:count], labels[:count]


def _psnr(estimate, clean):
    """Mean over images of 10·log10(1/MSE), both clamped to [0, 1]; in dB."""
    import torch

    mse = (estimate.clamp(0, 1) - clean).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(1.0 / mse)).mean())


# ---------------------------------------------------------------- b1


@section("b1.1", "The UNet", UNetParams, page=PAGE)
def unet_architecture(p: UNetParams, ctx) -> Result:
    import torch

    from ..models.unet import UNet, UNetConfig, count_params, layer_table

    model = UNet(UNetConfig(hidden=p.hidden)).eval()
    shapes = {}
    hooks = [
        child.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, list(o.shape[1:])))
        for name, child in model.named_children()
    ]
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    for hook in hooks:
        hook.remove()
    rows = [{**row, "output": "×".join(map(str, shapes[row["name"]]))} for row in layer_table(model)]
    total = count_params(model)
    return Result(
        metrics={"params": total},
        data={"layers": rows, "total_params": total},
        backend={"name": "none", "model_id": f"UNet(D={p.hidden})"},
    )


@section("b1.2", "The noising process", NoisingParams, page=PAGE)
def noising(p: NoisingParams, ctx) -> Result:
    import torch

    from ..figures import image_table

    clean, labels = _test_digits(ctx, p.num_digits)
    generator = torch.Generator().manual_seed(p.seed)
    noisy = torch.stack([clean + s * torch.randn(clean.shape, generator=generator) for s in p.sigmas])
    image_table(
        noisy.transpose(0, 1),
        ctx.out / "noising.png",
        row_labels=[f"digit {int(d)}" for d in labels],
        col_labels=[f"σ = {s:g}" for s in p.sigmas],
    )
    return Result(
        figures=[Figure("noising.png", "z = x + σε for each σ; pixels outside [0, 1] are shown clipped")],
        data={"digits": labels.tolist()},
    )


@section("b1.2.1", "Training the single-step denoiser", TrainDenoiserParams, needs=("b1.1",), page=PAGE)
def train_denoiser(p: TrainDenoiserParams, ctx) -> Result:
    import shutil

    import torch

    from ..data import mnist, subset
    from ..figures import image_table, loss_curve
    from ..models.train import TrainConfig, train
    from ..models.unet import UNet, UNetConfig

    hidden = ctx.params_of("b1.1").hidden
    images, labels = subset(*mnist(ctx.data_root, train=True), p.train_subset, p.seed)
    clean, _ = _test_digits(ctx, p.num_digits)
    generator = torch.Generator().manual_seed(p.seed)
    test_noise = p.sigma * torch.randn(clean.shape, generator=torch.Generator().manual_seed(p.seed + 1))
    noisy = clean + test_noise

    def loss_fn(model, x, _labels, g):
        z = x + p.sigma * torch.randn(x.shape, generator=g).to(x.device)  # fresh noise every batch
        return torch.nn.functional.mse_loss(model(z), x)

    outputs = {}

    def keep_denoised(epoch, model):
        with torch.no_grad():
            outputs[epoch] = model(noisy.to(ctx.device)).float().cpu()

    torch.manual_seed(p.seed)  # the UNet's initial weights
    model = UNet(UNetConfig(hidden=hidden))
    losses = train(
        model,
        images,
        labels,
        loss_fn,
        TrainConfig(p.epochs, p.batch_size, p.lr, precision=p.precision),
        generator=generator,
        work_dir=ctx.work,
        device=ctx.device,
        progress=ctx.progress,
        on_epoch_end=keep_denoised,
    )
    shown = sorted({1, p.epochs})
    steps_per_epoch = -(-images.shape[0] // p.batch_size)
    loss_curve(losses, ctx.out / "loss.png", title=f"single-step denoiser, σ = {p.sigma:g}", per_epoch=steps_per_epoch)
    rows = [clean, noisy] + [outputs[e] for e in shown]
    image_table(
        torch.stack(rows),
        ctx.out / "denoised.png",
        row_labels=["clean", f"σ = {p.sigma:g}"] + [f"epoch {e}" for e in shown],
    )
    shutil.copy(ctx.work / f"model_{p.epochs}.safetensors", ctx.private / "denoiser.safetensors")
    last_epoch = losses[-steps_per_epoch:]
    return Result(
        metrics={
            "final_loss": sum(last_epoch) / len(last_epoch),
            "iterations": len(losses),
            "train_digits": images.shape[0],
        },
        figures=[
            Figure("loss.png", "Training loss (MSE) per iteration; grey lines mark epochs"),
            Figure(
                "denoised.png",
                "Test digits, their noisy versions, and the denoiser's output after "
                + " and ".join(f"epoch {e}" for e in shown),
            ),
        ],
        data={"shown_epochs": shown, "steps_per_epoch": steps_per_epoch},
        backend={"name": "none", "model_id": f"UNet(D={hidden})"},
    )


@section(
    "b1.2.2", "Out-of-distribution noise", OutOfDistributionParams, needs=("b1.2", "b1.2.1"), page=PAGE
)
def out_of_distribution(p: OutOfDistributionParams, ctx) -> Result:
    import torch

    from ..data import mnist
    from ..figures import image_table
    from ..models.train import load_model

    sigmas = ctx.params_of("b1.2").sigmas
    model = load_model(ctx.needs["b1.2.1"].private / "denoiser.safetensors", ctx.device)
    images, _ = mnist(ctx.data_root, train=False)
    images = images[: p.eval_digits]
    shown = ctx.params_of("b1.2").num_digits

    metrics, grid = {}, []
    for i, sigma in enumerate(ctx.progress(sigmas, desc="σ")):
        generator = torch.Generator().manual_seed(p.seed + i)
        noisy = images + sigma * torch.randn(images.shape, generator=generator)
        with torch.no_grad():
            denoised = torch.cat(
                [model(batch.to(ctx.device)).float().cpu() for batch in noisy.split(p.batch_size)]
            )
        metrics[f"mse_sigma_{sigma:g}"] = float((denoised - images).pow(2).mean())
        metrics[f"psnr_sigma_{sigma:g}"] = _psnr(denoised, images)
        metrics[f"psnr_noisy_sigma_{sigma:g}"] = _psnr(noisy, images)
        grid.append(torch.stack([noisy[:shown], denoised[:shown]], dim=1))  # (shown, 2, 1, 28, 28)

    # Rows: a noisy and a denoised row per digit; columns: σ.
    table = torch.stack(grid, dim=1).transpose(1, 2).reshape(2 * shown, len(sigmas), 1, 28, 28)
    image_table(
        table,
        ctx.out / "ood.png",
        row_labels=[label for _ in range(shown) for label in ("noisy", "denoised")],
        col_labels=[f"σ = {s:g}" for s in sigmas],
    )
    rows = [
        {
            "sigma": s,
            "mse": metrics[f"mse_sigma_{s:g}"],
            "psnr": metrics[f"psnr_sigma_{s:g}"],
            "psnr_noisy": metrics[f"psnr_noisy_sigma_{s:g}"],
        }
        for s in sigmas
    ]
    trained_sigma = ctx.params_of("b1.2.1").sigma
    return Result(
        metrics=metrics,
        figures=[
            Figure("ood.png", f"The denoiser trained at σ = {trained_sigma:g}, applied at every σ"),
        ],
        data={"rows": rows, "trained_sigma": trained_sigma, "eval_digits": int(images.shape[0])},
        backend={"name": "none", "model_id": f"UNet(D={ctx.params_of('b1.1').hidden})"},
    )
