"""Part B: UNets trained on MNIST from scratch.

Each section is a function from its parameters to a Result. Heavy imports stay
inside the functions so that listing sections needs no torch.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

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


def psnr(estimate, clean):
    """Mean over images of 10·log10(1/MSE), both clamped to [0, 1]; in dB."""
    import torch

    mse = (estimate.clamp(0, 1) - clean).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(1.0 / mse)).mean())


def _architecture(config) -> tuple[list[dict], int]:
    """The UNet's top-level blocks with output shapes and parameter counts."""
    import torch

    from ..models.unet import UNet, count_params, layer_table

    model = UNet(config).eval()
    shapes = {}
    hooks = [
        child.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, list(o.shape[1:])))
        for name, child in model.named_children()
        if name not in ("fc1_t", "fc2_t", "fc1_c", "fc2_c")
    ]
    x = torch.zeros(1, config.in_channels, 28, 28)
    t = torch.zeros(1) if config.time_conditioned else None
    with torch.no_grad():
        model(x, t)
    for hook in hooks:
        hook.remove()
    for name in ("fc1_t", "fc2_t", "fc1_c", "fc2_c"):
        if hasattr(model, name):
            shapes[name] = [getattr(model, name)[-1].out_features]
    rows = [{**row, "output": "×".join(map(str, shapes[row["name"]]))} for row in layer_table(model)]
    return rows, count_params(model)


def _model_id(config) -> str:
    kind = "class-conditioned" if config.num_classes else "time-conditioned" if config.time_conditioned else ""
    return f"{kind} UNet(D={config.hidden})".strip()


# ---------------------------------------------------------------- b1


@section("b1.1", "The UNet", UNetParams, page=PAGE)
def unet_architecture(p: UNetParams, ctx) -> Result:
    from ..models.unet import UNetConfig

    config = UNetConfig(hidden=p.hidden)
    rows, total = _architecture(config)
    return Result(
        metrics={"params": total},
        data={"layers": rows, "total_params": total},
        backend={"name": "none", "model_id": _model_id(config)},
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
        metrics[f"psnr_sigma_{sigma:g}"] = psnr(denoised, images)
        metrics[f"psnr_noisy_sigma_{sigma:g}"] = psnr(noisy, images)
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


# ---------------------------------------------------------------- b2


class TimeUNetParams(Params):
    hidden: int = Field(64, ge=1, le=1024, description="D, the UNet's channel width (an integer from 1 to 1024)")


class DDPMParams(Params):
    T: int = Field(300, ge=2, le=5000, description="number of diffusion timesteps, from 2 to 5000")
    beta_1: float = Field(1e-4, gt=0.0, lt=1.0, description="the first β, in (0, 1)")
    beta_T: float = Field(0.02, gt=0.0, lt=1.0, description="the last β, in (0, 1)")
    epochs: int = Field(20, ge=1, le=1000, description="training epochs, from 1 to 1000")
    batch_size: int = Field(128, ge=1, le=60000, description="batch size, from 1 to 60000")
    lr: float = Field(1e-3, gt=0.0, le=1.0, description="Adam's initial learning rate, in (0, 1]")
    lr_decay: bool = Field(True, description="true: ExponentialLR with γ = 0.1^(1/epochs), stepped per epoch")
    train_subset: int = Field(0, ge=0, le=60000, description="training digits used, 0 for all 60,000")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="fp32, or bf16 autocast")
    sample_epochs: list[int] | None = Field(
        None,
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
    hidden: int = Field(64, ge=1, le=1024, description="D, the UNet's channel width (an integer from 1 to 1024)")
    p_uncond: float = Field(0.1, ge=0.0, le=1.0, description="probability of dropping the class, from 0 to 1")


class ClassifierParams(Params):
    epochs: int = Field(3, ge=1, le=100, description="training epochs, from 1 to 100")
    batch_size: int = Field(128, ge=1, le=60000, description="batch size, from 1 to 60000")
    lr: float = Field(3e-3, gt=0.0, le=1.0, description="peak learning rate of Adam with OneCycle, in (0, 1]")
    train_subset: int = Field(0, ge=0, le=60000, description="training digits used, 0 for all 60,000")


class SampleParams(Params):
    num_samples: int = Field(40, ge=1, le=400, description="samples shown per checkpoint, from 1 to 400")
    eval_samples: int = Field(1000, ge=2, le=10000, description="samples scored per checkpoint, from 2 to 10000")
    batch_size: int = Field(500, ge=1, le=10000, description="samples drawn at once, from 1 to 10000")
    gif_frames: int = Field(40, ge=2, le=300, description="frames of the animation, from 2 to 300")


class ClassSampleParams(Params):
    per_digit: int = Field(4, ge=1, le=40, description="samples shown per digit and checkpoint, from 1 to 40")
    guidance: float = Field(5.0, ge=0.0, le=50.0, description="classifier-free guidance scale γ, from 0 to 50")
    eval_per_digit: int = Field(100, ge=1, le=1000, description="samples scored per digit and checkpoint")
    batch_size: int = Field(500, ge=1, le=10000, description="samples drawn at once, from 1 to 10000")
    gif_frames: int = Field(40, ge=2, le=300, description="frames of the animation, from 2 to 300")


def _train_ddpm(p: DDPMParams, ctx, config, *, p_uncond: float = 0.0) -> Result:
    """Train a DDPM noise predictor (Algorithm 1 of Ho et al. 2020); keep the checkpoints to sample."""
    import shutil

    import torch

    from ..data import mnist, subset
    from ..diffusion.ddpm import ddpm_loss, linear_schedule
    from ..figures import loss_curve
    from ..models.train import TrainConfig, train
    from ..models.unet import UNet

    images, labels = subset(*mnist(ctx.data_root, train=True), p.train_subset, p.seed)
    schedule = linear_schedule(p.T, p.beta_1, p.beta_T)

    def loss_fn(model, x, y, g):
        return ddpm_loss(model, x, y, g, schedule, num_classes=config.num_classes, p_uncond=p_uncond)

    torch.manual_seed(p.seed)  # the UNet's initial weights
    model = UNet(config)
    gamma = 0.1 ** (1.0 / p.epochs) if p.lr_decay else None
    losses = train(
        model,
        images,
        labels,
        loss_fn,
        TrainConfig(p.epochs, p.batch_size, p.lr, lr_gamma=gamma, precision=p.precision),
        generator=torch.Generator().manual_seed(p.seed),
        work_dir=ctx.work,
        device=ctx.device,
        progress=ctx.progress,
    )
    for epoch in p.checkpoints():
        shutil.copy(ctx.work / f"model_{epoch}.safetensors", ctx.private / f"model_epoch_{epoch}.safetensors")
    steps_per_epoch = -(-images.shape[0] // p.batch_size)
    loss_curve(losses, ctx.out / "loss.png", title=f"{_model_id(config)}, ε-prediction loss", per_epoch=steps_per_epoch)
    rows, total = _architecture(config)
    last_epoch = losses[-steps_per_epoch:]
    return Result(
        metrics={
            "final_loss": sum(last_epoch) / len(last_epoch),
            "iterations": len(losses),
            "train_digits": images.shape[0],
            "params": total,
        },
        figures=[Figure("loss.png", "Training loss per iteration; grey lines mark epochs")],
        data={"checkpoints": p.checkpoints(), "layers": rows, "total_params": total, "lr_gamma": gamma},
        backend={"name": "none", "model_id": _model_id(config)},
    )


def _animation(frames: list, path, rows: int) -> None:
    """A GIF of x_t (top rows) and x̂0 (bottom rows) over the sampling steps."""
    from ..figures import save_gif, tile

    save_gif([tile(frame, nrow=frame.shape[0] // rows, scale=3) for frame in frames], path)


def _frame_steps(T: int, count: int) -> set[int]:
    """Step indices (0 = the first, from t = T−1) for `count` evenly spread frames, the last included."""
    return {round(i * (T - 1) / (count - 1)) for i in range(count)}


@section("b2.1", "Time conditioning", TimeUNetParams, page=PAGE)
def time_unet(p: TimeUNetParams, ctx) -> Result:
    from ..models.unet import UNetConfig

    config = UNetConfig(hidden=p.hidden, time_conditioned=True)
    rows, total = _architecture(config)
    return Result(
        metrics={"params": total},
        data={"layers": rows, "total_params": total},
        backend={"name": "none", "model_id": _model_id(config)},
    )


@section("b2.2", "Training the time-conditioned DDPM", DDPMParams, needs=("b2.1",), page=PAGE)
def train_time_ddpm(p: DDPMParams, ctx) -> Result:
    from ..models.unet import UNetConfig

    return _train_ddpm(p, ctx, UNetConfig(hidden=ctx.params_of("b2.1").hidden, time_conditioned=True))


@section("b2.0", "An MNIST classifier for scoring samples", ClassifierParams, page=PAGE)
def mnist_classifier(p: ClassifierParams, ctx) -> Result:
    import numpy as np
    import torch

    from ..data import mnist, subset
    from ..models import classifier as clf

    images, labels = subset(*mnist(ctx.data_root, train=True), p.train_subset, p.seed)
    test_images, test_labels = mnist(ctx.data_root, train=False)
    torch.manual_seed(p.seed)
    model = clf.train_classifier(
        images,
        labels,
        epochs=p.epochs,
        batch_size=p.batch_size,
        lr=p.lr,
        generator=torch.Generator().manual_seed(p.seed),
        device=ctx.device,
        progress=ctx.progress,
    )
    predicted = clf.predict(model, test_images)
    accuracy = float((predicted == test_labels).float().mean())
    features = clf.features(model, test_images).double().numpy()
    clf.save_classifier(model, ctx.private / "classifier.safetensors")
    np.savez(ctx.private / "test_features.npz", features=features, labels=test_labels.numpy())
    per_digit = {d: float((predicted[test_labels == d] == d).float().mean()) for d in range(10)}
    return Result(
        metrics={"test_accuracy": accuracy, **{f"test_accuracy_digit_{d}": a for d, a in per_digit.items()}},
        data={"per_digit": per_digit, "features": int(features.shape[1])},
        backend={"name": "none", "model_id": "MNIST CNN classifier"},
    )


class Scorer:
    """The b2.0 classifier: accuracy on intended digits and a Fréchet distance to the test set."""

    def __init__(self, entry, device: str):
        import numpy as np

        from ..models import classifier as clf

        self.clf = clf
        self.device = device
        self.model = clf.load_classifier(entry.private / "classifier.safetensors", device)
        self.reference = np.load(entry.private / "test_features.npz")["features"]

    def frechet(self, images) -> float:
        return self.clf.frechet_distance(self.clf.features(self.model, images).double().numpy(), self.reference)

    def predict(self, images):
        return self.clf.predict(self.model, images)


def _draw(model, schedule, ctx, count, batch_size, seed, *, labels=None, guidance=None, animate=0, frames=0):
    """`count` DDPM samples in batches, clamped to [0, 1].

    With `animate`, the first `animate` samples also give `frames` animation
    frames, each x_t stacked over x̂0; returns (samples, frames).
    """
    import torch

    from ..diffusion.ddpm import sample

    generator = torch.Generator().manual_seed(seed)
    keep = _frame_steps(schedule.num_timesteps, frames) if animate else set()
    collected, out = [], []

    def callback(info):
        if info.i in keep:
            collected.append(torch.cat([info.x_t[:animate], info.x0_hat[:animate]]).float().cpu())

    for start in ctx.progress(range(0, count, batch_size), desc="sampling"):
        size = min(batch_size, count - start)
        x = sample(
            model,
            (size, 1, 28, 28),
            schedule,
            generator=generator,
            device=ctx.device,
            labels=labels[start : start + size] if labels is not None else None,
            guidance_scale=guidance,
            callback=callback if keep and start == 0 else None,
        )
        out.append(x.float().cpu().clamp(0, 1))
    return torch.cat(out), collected


def _sampling_setup(ctx, train_id: str):
    """The schedule the model of `train_id` was trained with, the scorer, and the checkpoint epochs."""
    from ..diffusion.ddpm import linear_schedule

    train = ctx.params_of(train_id)
    schedule = linear_schedule(train.T, train.beta_1, train.beta_T)
    return schedule, Scorer(ctx.needs["b2.0"], ctx.device), train.checkpoints()


def _load_checkpoint(ctx, section_id: str, epoch: int):
    from ..models.train import load_model

    return load_model(ctx.needs[section_id].private / f"model_epoch_{epoch}.safetensors", ctx.device)


@section("b2.3", "Sampling from the time-conditioned DDPM", SampleParams, needs=("b2.2", "b2.0"), page=PAGE)
def sample_time_ddpm(p: SampleParams, ctx) -> Result:
    import numpy as np
    import torch

    from ..figures import tile

    schedule, scorer, epochs = _sampling_setup(ctx, "b2.2")
    shown, steps, metrics, figures, frames = [], [], {}, [], []
    for epoch in epochs:
        model = _load_checkpoint(ctx, "b2.2", epoch)
        last = epoch == epochs[-1]
        count = max(p.num_samples, p.eval_samples)
        images, steps_shown = _draw(
            model, schedule, ctx, count, p.batch_size, p.seed, animate=10 if last else 0, frames=p.gif_frames
        )
        frames += steps_shown
        metrics[f"fid_epoch_{epoch}"] = scorer.frechet(images[: p.eval_samples])
        shown.append(images[: p.num_samples])
        steps += [epoch] * p.num_samples
        name = f"samples_epoch_{epoch}.png"
        _save_png(tile(images[: p.num_samples], nrow=10, scale=2), ctx.out / name)
        figures.append(Figure(name, f"{p.num_samples} samples after epoch {epoch}", pixelated=True))
    _animation(frames, ctx.out / "sampling.gif", rows=2)
    figures.append(
        Figure("sampling.gif", f"Sampling after epoch {epochs[-1]}: x_t (top) and the estimate x̂0 (bottom), t = {schedule.num_timesteps - 1} → 0", pixelated=True)
    )
    np.savez_compressed(
        ctx.out / "samples.npz", images=torch.cat(shown).numpy().astype(np.float32), steps=np.array(steps, dtype=np.int64)
    )
    return Result(
        metrics=metrics,
        figures=figures,
        data={"epochs": epochs, "fid": {e: metrics[f"fid_epoch_{e}"] for e in epochs}},
        backend={"name": "none", "model_id": _model_id_of(ctx, "b2.2")},
    )


def _save_png(array, path) -> None:
    from PIL import Image

    Image.fromarray(array).save(path, optimize=False)


def _model_id_of(ctx, section_id: str) -> str:
    return ctx.needs[section_id].record["backend"]["model_id"]


@section("b2.4", "Class conditioning", ClassDDPMParams, page=PAGE)
def train_class_ddpm(p: ClassDDPMParams, ctx) -> Result:
    from ..models.unet import UNetConfig

    config = UNetConfig(hidden=p.hidden, time_conditioned=True, num_classes=10)
    return _train_ddpm(p, ctx, config, p_uncond=p.p_uncond)


@section("b2.5", "Sampling with classifier-free guidance", ClassSampleParams, needs=("b2.4", "b2.0"), page=PAGE)
def sample_class_ddpm(p: ClassSampleParams, ctx) -> Result:
    import numpy as np
    import torch

    from ..figures import image_table

    schedule, scorer, epochs = _sampling_setup(ctx, "b2.4")
    digits = torch.arange(10)
    per = max(p.per_digit, p.eval_per_digit)
    # Digit-major for the first `per_digit` of each digit, so the figure needs no reshuffle:
    # labels = 0,1,…,9, 0,1,…,9, … (`per` rounds); the first 10 give the animation.
    labels = digits.repeat(per)
    shown, shown_labels, steps, metrics, columns, frames = [], [], [], {}, [], []
    per_digit_accuracy = {}
    for epoch in epochs:
        model = _load_checkpoint(ctx, "b2.4", epoch)
        last = epoch == epochs[-1]
        images, steps_shown = _draw(
            model, schedule, ctx, len(labels), p.batch_size, p.seed,
            labels=labels, guidance=p.guidance, animate=10 if last else 0, frames=p.gif_frames,
        )
        frames += steps_shown
        scored = images[: 10 * p.eval_per_digit]
        scored_labels = labels[: 10 * p.eval_per_digit]
        predicted = scorer.predict(scored)
        correct = (predicted == scored_labels).float()
        metrics[f"accuracy_epoch_{epoch}"] = float(correct.mean())
        for d in range(10):
            metrics[f"accuracy_epoch_{epoch}_digit_{d}"] = float(correct[scored_labels == d].mean())
        per_digit_accuracy[epoch] = [metrics[f"accuracy_epoch_{epoch}_digit_{d}"] for d in range(10)]
        metrics[f"fid_epoch_{epoch}"] = scorer.frechet(scored)
        first = images[: 10 * p.per_digit]
        shown.append(first)
        shown_labels.append(labels[: 10 * p.per_digit])
        steps += [epoch] * first.shape[0]
        columns.append(first.reshape(p.per_digit, 10, 1, 28, 28).transpose(0, 1))  # (10, per_digit, 1, 28, 28)
    image_table(
        torch.cat(columns, dim=1),
        ctx.out / "samples.png",
        row_labels=[str(d) for d in range(10)],
        col_labels=[f"epoch {e}" if k == 0 else "" for e in epochs for k in range(p.per_digit)],
        cell=0.7,
    )
    _animation(frames, ctx.out / "sampling.gif", rows=2)
    np.savez_compressed(
        ctx.out / "samples.npz",
        images=torch.cat(shown).numpy().astype(np.float32),
        labels=torch.cat(shown_labels).numpy().astype(np.int64),
        steps=np.array(steps, dtype=np.int64),
    )
    return Result(
        metrics=metrics,
        figures=[
            Figure("samples.png", f"{p.per_digit} samples of each digit with γ = {p.guidance:g}, after epochs "
                   + " and ".join(map(str, epochs))),
            Figure("sampling.gif", f"Guided sampling after epoch {epochs[-1]}, one of each digit: x_t (top) and x̂0 (bottom)", pixelated=True),
        ],
        data={"epochs": epochs, "per_digit_accuracy": per_digit_accuracy, "scored": int(10 * p.eval_per_digit)},
        backend={"name": "none", "model_id": _model_id_of(ctx, "b2.4")},
    )
