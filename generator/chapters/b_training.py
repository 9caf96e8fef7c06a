"""Part B, 2.1, 2.2 and 2.4: the time- and class-conditioned DDPMs, trained; and 2.0, the classifier that scores them."""

from __future__ import annotations

import torch
from torchvision.transforms.functional import resize

from ..data import mnist, subset
from ..diffusion.ddpm import ddpm_loss, linear_schedule
from ..figures import loss_curve
from ..models import classifier as clf
from ..models.train import TrainConfig, keep_models, train
from ..models.unet import UNet, UNetConfig, one_hot
from ..section import Figure, Result
from .common import architecture, generator, model_name
from .params import ClassDDPMParams, ClassifierParams, DDPMParams, UNetParams


def time_unet(p: UNetParams, ctx) -> Result:
    config = UNetConfig(hidden=p.hidden, time_conditioned=True)
    rows, total = architecture(config)
    return Result(
        metrics={"params": total},
        data={"layers": rows, "total_params": total},
        model=model_name(config),
    )


def _train_ddpm(p: DDPMParams, ctx, config: UNetConfig, *, p_uncond: float = 0.0) -> Result:
    """Train a DDPM noise predictor (Algorithm 1 of Ho et al. 2020); keep the checkpoints to sample."""
    images, labels = subset(*mnist(ctx.data_root, train=True), p.train_subset, p.seed)
    schedule = linear_schedule(p.T, p.beta_1, p.beta_T)

    def loss_fn(model, x, y, g):
        cond = one_hot(y, config.num_classes) if config.num_classes else None
        return ddpm_loss(model, x, cond, g, schedule, p_uncond=p_uncond)

    torch.manual_seed(p.seed)  # the UNet's initial weights
    model = UNet(config)
    losses = train(
        model,
        images,
        labels,
        loss_fn,
        TrainConfig(p.epochs, p.batch_size, p.lr, p.lr_schedule, p.precision, p.ema_decay),
        generator=generator(p.seed),
        work_dir=ctx.work,
        device=ctx.device,
        progress=ctx.progress,
        label=ctx.section.id,
    )
    keep_models(ctx.work, ctx.private, p.checkpoints())
    steps_per_epoch = -(-images.shape[0] // p.batch_size)
    loss_curve(
        losses,
        ctx.out / "loss.png",
        title=f"{model_name(config)}, ε-prediction loss",
        per_epoch=steps_per_epoch,
    )
    rows, total = architecture(config)
    last_epoch = losses[-steps_per_epoch:]
    return Result(
        metrics={
            "final_loss": sum(last_epoch) / len(last_epoch),
            "iterations": len(losses),
            "train_digits": images.shape[0],
            "params": total,
        },
        figures=[Figure("loss.png", "Training loss per iteration; grey lines mark epochs")],
        data={"checkpoints": p.checkpoints(), "layers": rows, "total_params": total},
        model=model_name(config),
    )


def train_time_ddpm(p: DDPMParams, ctx) -> Result:
    return _train_ddpm(
        p, ctx, UNetConfig(hidden=ctx.params_of("b2.1").hidden, time_conditioned=True)
    )


def train_class_ddpm(p: ClassDDPMParams, ctx) -> Result:
    return _train_ddpm(
        p,
        ctx,
        UNetConfig(hidden=p.hidden, time_conditioned=True, num_classes=10),
        p_uncond=p.p_uncond,
    )


def mnist_classifier(p: ClassifierParams, ctx) -> Result:
    images, labels = subset(*mnist(ctx.data_root, train=True), p.train_subset, p.seed)
    test_images, test_labels = mnist(ctx.data_root, train=False)
    torch.manual_seed(p.seed)
    model = clf.train_classifier(
        images,
        labels,
        epochs=p.epochs,
        batch_size=p.batch_size,
        lr=p.lr,
        generator=generator(p.seed),
        device=ctx.device,
        progress=ctx.progress,
    )
    predicted = clf.predict(model, test_images)
    features = clf.features(model, test_images).double().numpy()
    # Real digits seen from afar (a quarter of their size, enlarged back), the ceiling of 1.9's far readings.
    small = resize(resize(test_images, [7, 7], antialias=True), [28, 28], antialias=False)
    quarter = float((clf.predict(model, small) == test_labels).float().mean())
    clf.save_scorer(ctx.private, model, features, test_labels.numpy())
    per_digit = {d: float((predicted[test_labels == d] == d).float().mean()) for d in range(10)}
    return Result(
        metrics={
            "test_accuracy": float((predicted == test_labels).float().mean()),
            "test_accuracy_quarter_size": quarter,
            **{f"test_accuracy_digit_{d}": a for d, a in per_digit.items()},
        },
        data={
            "per_digit": per_digit,
            "features": int(features.shape[1]),
            "test_digits": int(test_images.shape[0]),
        },
        model="MNIST CNN classifier",
    )
