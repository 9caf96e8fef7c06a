"""Part B with flow matching, the course's current Part B (Fall 2025, "Flow Matching from
Scratch"; the Fall 2024 page partb_fm.html): f2.1–f2.6 train the UNets of the DDPM sections to
regress the velocity of a straight path from noise to digits and sample them with Euler steps;
f2.6.1 trains without the learning-rate scheduler; f3 sets the DDPM and flow matching side by side
at equal training.

Training runs through Part B's loop (models/train.py) with the flow loss; the samples are scored
by b2.0's classifier as b2.3's and b2.5's are.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from pydantic import Field, field_validator

from ..data import mnist, subset
from ..errors import UsageError
from ..section import Figure, Headline, Params, Result, fixed, lazy, percent, section
from ..speed import Precision
from .b_sampling import (
    DIGITS,
    Found,
    _add_autoguided,
    _add_digit_shares,
    _digit_shares,
    _sample_time_ddpm_headline,
    _scored,
)
from .common import (
    ddpm_training_loss,
    flow_training_loss,
    parameters_headline,
    rng,
    trained_unet,
    training_headline,
    unet_table,
)
from .params import (
    Autoguidance,
    BatchSize,
    Epochs,
    GifFrames,
    Guidance,
    GuideEpoch,
    Hidden,
    LearningRate,
    TrainSubset,
    UNetParams,
    check_autoguidance,
)

# Imported where a run first uses them: reading the table (gen list) imports no torch.
torch = lazy("torch")
local_model = lazy("..backends.local_model", __package__)
ddpm = lazy("..diffusion.ddpm", __package__)
flow = lazy("..diffusion.flow", __package__)
samplers = lazy("..diffusion.samplers", __package__)
figs = lazy("..figures", __package__)
clf = lazy("..models.classifier", __package__)
denoisers = lazy("..models.denoiser", __package__)
trainer = lazy("..models.train", __package__)
unets = lazy("..models.unet", __package__)
outputs = lazy("..outputs", __package__)

NumTs = Annotated[
    int,
    Field(ge=1, le=1000, description="Euler steps from t = 0 to 1 (num_ts), from 1 to 1000"),
]
LrSchedule = Literal["exponential", "onecycle", "constant"]
FLOW_META = "flow"  # the metadata key that says how a flow model's weights sample


class FlowTrainParams(Params):
    epochs: Epochs
    batch_size: BatchSize
    lr: LearningRate
    lr_schedule: LrSchedule = Field(
        description="exponential: × 0.1^(1/epochs) after each epoch; onecycle: warm up to lr, then "
        "anneal, per step; constant"
    )
    train_subset: TrainSubset
    precision: Precision
    ema_decay: float = Field(
        ge=0.0,
        lt=1.0,
        description="decay of the weights' moving average that samples, in [0, 1); 0: off",
    )
    sample_epochs: list[Annotated[int, Field(ge=1, le=1000)]] | None = Field(
        description="epochs whose weights are sampled, each from 1 to epochs; null: the first, "
        "half-way and the last (1, 5, 10)",
    )
    t_sampling: Literal["uniform", "logit_normal"] = Field(
        description="how training draws t: uniform on [0, 1] (the course's), or logit_normal, "
        "sigmoid of a standard normal, more often mid-path (Esser et al. 2024)"
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
        return sorted({1, max(1, round(self.epochs / 2)), self.epochs})


class ClassFlowTrainParams(FlowTrainParams):
    p_uncond: float = Field(
        ge=0.0, le=1.0, description="probability of dropping the class, from 0 to 1"
    )


class NoSchedulerParams(ClassFlowTrainParams):
    hidden: Hidden


def _frames(p) -> set[int]:
    """The Euler steps the animation shows: `gif_frames` of them, at most every step (so that a
    sweep of num_ts keeps one gif_frames)."""
    return figs.evenly_spread(p.num_ts, p.gif_frames)


class FlowSampleParams(Params):
    num_samples: int = Field(
        ge=1, le=400, description="samples shown per checkpoint, from 1 to 400"
    )
    eval_samples: int = Field(
        ge=2, le=10000, description="samples scored per checkpoint, from 2 to 10000"
    )
    batch_size: int = Field(ge=1, le=10000, description="samples drawn at once, from 1 to 10000")
    num_ts: NumTs
    gif_frames: GifFrames  # at most num_ts are shown
    autoguidance: Autoguidance
    guide_epoch: GuideEpoch

    def check(self, config, sid):
        kept = config.params["f2.2"].checkpoints()
        check_autoguidance(sid, self.autoguidance, self.guide_epoch, "f2.2", kept)


class FlowGuidedParams(Params):
    per_digit: int = Field(
        ge=1, le=40, description="samples shown per digit and checkpoint, from 1 to 40"
    )
    guidance: Guidance
    eval_per_digit: int = Field(
        ge=1, le=1000, description="samples scored per digit and checkpoint"
    )
    batch_size: int = Field(ge=1, le=10000, description="samples drawn at once, from 1 to 10000")
    num_ts: NumTs
    gif_frames: GifFrames  # at most num_ts are shown


class CompareParams(Params):
    hidden: Hidden
    epochs: Epochs
    batch_size: BatchSize
    lr: LearningRate
    lr_schedule: LrSchedule = Field(
        description="exponential, onecycle or constant, for both methods alike"
    )
    train_subset: TrainSubset
    precision: Precision
    p_uncond: float = Field(
        ge=0.0, le=1.0, description="probability of dropping the class, from 0 to 1"
    )
    eval_samples: int = Field(
        ge=10, le=10000, description="samples scored per method and epoch, from 10 to 10000"
    )
    guidance: Guidance
    num_ts: NumTs
    stride: int = Field(
        ge=1,
        le=100,
        description="the DDPM samples every stride-th of b2.2's T timesteps; 1: all",
    )

    def check(self, config, sid):
        T = config.params["b2.2"].T
        if self.stride >= T:
            raise UsageError(
                f"bad value {sid}.stride={self.stride}: b2.2 has T = {T} timesteps; use at most "
                f"{T - 1}"
            )


# ---------------------------------------------------------------- training


def _velocity(entry, epoch: int, device: str):
    """The flow model a training section's store entry kept after `epoch`, as the samplers call
    it."""
    return denoisers.UNetVelocity(trainer.load_kept(entry.private, epoch, device), device)


def _train_flow(
    p: FlowTrainParams, ctx, config: unets.UNetConfig, *, p_uncond: float = 0.0
) -> Result:
    """Train a velocity model by flow matching; keep the checkpoints to sample."""
    images, labels = subset(*mnist(ctx.data_root, train=True), p.train_subset, p.seed)
    torch.manual_seed(p.seed)  # the UNet's initial weights
    model = unets.UNet(config)
    losses = trainer.train(
        model,
        images,
        labels,
        flow_training_loss(config.num_classes, p_uncond, p.t_sampling),
        trainer.TrainConfig(p.epochs, p.batch_size, p.lr, p.lr_schedule, p.precision, p.ema_decay),
        generator=rng(p.seed),
        work_dir=ctx.work,
        device=ctx.device,
        progress=ctx.progress,
        label=ctx.section.id,
        meta={FLOW_META: {"path": "linear", "noise_at": 0.0, "data_at": 1.0}},
    )
    return trained_unet(
        losses,
        images.shape[0],
        p,
        ctx,
        config,
        loss="flow-matching loss",
        caption="Training loss \\(\\lVert (x_1 - x_0) - u_\\theta(x_t, t) \\rVert^2\\) per "
        "iteration; grey lines mark epochs",
    )


def _time_config(hidden: int) -> unets.UNetConfig:
    return unets.UNetConfig(hidden=hidden, time_conditioned=True, time_modulation="multiplicative")


def _class_config(hidden: int) -> unets.UNetConfig:
    return unets.UNetConfig(hidden=hidden, time_conditioned=True, num_classes=DIGITS)


@section("f2.1", "Time conditioning (flow matching)", UNetParams, headline=parameters_headline)
def flow_time_unet(p: UNetParams, ctx) -> Result:
    return unet_table(_time_config(p.hidden))


@section(
    "f2.2",
    "Training the time-conditioned UNet",
    FlowTrainParams,
    needs=("f2.1",),
    headline=training_headline,
)
def train_time_flow(p: FlowTrainParams, ctx) -> Result:
    return _train_flow(p, ctx, _time_config(ctx.params_of("f2.1").hidden))


@section("f2.4", "Class conditioning (flow matching)", UNetParams, headline=parameters_headline)
def flow_class_unet(p: UNetParams, ctx) -> Result:
    return unet_table(_class_config(p.hidden))


@section(
    "f2.5",
    "Training the class-conditioned UNet",
    ClassFlowTrainParams,
    needs=("f2.4",),
    headline=training_headline,
)
def train_class_flow(p: ClassFlowTrainParams, ctx) -> Result:
    return _train_flow(p, ctx, _class_config(ctx.params_of("f2.4").hidden), p_uncond=p.p_uncond)


# ---------------------------------------------------------------- sampling


class _Frames:
    """The sampler's steps as b2.3's animation records them: x_t above the clean image it aims
    at."""

    def __init__(self, recorder):
        self.recorder = recorder

    def __call__(self, step) -> None:
        self.recorder(ddpm.StepInfo(i=step.i, t=step.i, x_t=step.x_t, x0_hat=step.x1_hat))


def _draw(velocity_for, ctx, p, count: int, recorder=None) -> torch.Tensor:
    """`count` samples in batches of `p.batch_size`, `p.num_ts` Euler steps each, from noise drawn
    from `p.seed`, clamped to [0, 1]; `velocity_for(start, size)` is the velocity (x, t) ->
    (u, None) of the batch of samples start, …, start + size − 1. `recorder` sees the first
    batch's steps only."""
    gen = rng(p.seed)
    ts = flow.uniform_times(p.num_ts)
    out = []
    for start in ctx.progress(range(0, count, p.batch_size), desc="sampling"):
        size = min(p.batch_size, count - start)
        x = torch.randn((size, 1, 28, 28), generator=gen).to(ctx.device)
        u = velocity_for(start, size)
        x = flow.euler(
            lambda x_t, t, u=u: u(x_t, t)[0],
            x,
            ts,
            generator=gen,
            callback=_Frames(recorder) if recorder is not None and start == 0 else None,
        )
        out.append(x.float().cpu().clamp(0, 1))
    return torch.cat(out)


@section(
    "f2.3",
    "Sampling from the time-conditioned UNet",
    FlowSampleParams,
    version=4,
    needs=("f2.2", "b2.0"),
    headline=_sample_time_ddpm_headline,  # the same numbers as b2.3's
)
def sample_time_flow(p: FlowSampleParams, ctx) -> Result:
    reader = clf.Scorer(ctx.needs["b2.0"].private, ctx.device)
    entry = ctx.needs["f2.2"]
    epochs = entry.data["checkpoints"]
    count = max(p.num_samples, p.eval_samples)
    real = subset(*mnist(ctx.data_root, train=True), p.eval_samples, p.seed)[0]
    metrics = {
        "fid_real": reader.frechet(real),
        "confident_real": float(reader.confident(real).mean()),
    }
    digits = {"real": _digit_shares(reader, real)}
    recorder = figs.FrameRecorder(figs.ANIMATED_UNCONDITIONAL, _frames(p))
    shown, steps, figures, rows = [], [], [], []
    models = {epoch: _velocity(entry, epoch, ctx.device) for epoch in epochs}
    for epoch, vel in models.items():
        last = epoch == epochs[-1]
        images = _draw(
            lambda start, size, vel=vel: samplers.conditional(vel, None),
            ctx,
            p,
            count,
            recorder if last else None,
        )
        fid, sure = _scored(reader, images[: p.eval_samples])
        metrics[f"fid_epoch_{epoch}"], metrics[f"confident_epoch_{epoch}"] = fid, sure
        rows.append({"epoch": epoch, "method": "plain", "fid": fid, "confident": sure})
        shown.append(images[: p.num_samples])
        steps += [epoch] * p.num_samples
        name = f"samples_epoch_{epoch}.webp"
        figs.save_image(figs.tile(images[: p.num_samples], nrow=10), ctx.out / name)
        figures.append(
            Figure(
                name, f"{p.num_samples} samples after epoch {epoch}", pixelated=True, enlarge=True
            )
        )
        if last:
            digits["samples"] = _digit_shares(reader, images[: p.eval_samples])
    figs.animation(recorder.frames, ctx.out / "sampling.gif")
    figures.append(
        Figure(
            "sampling.gif",
            f"Sampling after epoch {epochs[-1]}, the first {len(recorder.frames[-1]) // 2} "
            f"samples, {p.num_ts} Euler steps from \\(t = 0\\) to 1: "
            "\\(x_t\\) (top) and the digit it is heading for, \\(x_t + (1 - t)\\,u_\\theta\\) "
            "(bottom)",
            pixelated=True,
            enlarge=True,
        )
    )
    metrics["confident"] = metrics[f"confident_epoch_{epochs[-1]}"]
    metrics["fid"] = metrics[f"fid_epoch_{epochs[-1]}"]
    methods = ["plain"] * len(steps)
    guide = None
    if p.autoguidance > 1:  # beyond the course, as b2.3 goes beyond the write-up
        guide = p.guide_epoch or epochs[0]
        guided = samplers.autoguided(models[epochs[-1]], models[guide], None, p.autoguidance)
        images = _draw(lambda start, size: guided, ctx, p, count)
        found = Found(metrics, rows, digits, figures, shown, steps, methods)
        _add_autoguided(reader, images, p, ctx, epochs[-1], guide, "at every step", found)
    _add_digit_shares(digits, ctx, metrics, figures)
    return Result(
        metrics=metrics,
        figures=figures,
        samples={"images": torch.cat(shown), "steps": steps, "method": methods},
        data={
            "rows": rows,
            "epochs": epochs,
            "guide_epoch": guide,
            "digits": digits,
            "reference_digits": len(reader.reference),
        },
        model=outputs.model_of(entry.record),
    )


def _guided(p: FlowGuidedParams, ctx, entry, reader) -> tuple[dict, list, dict, list[Figure]]:
    """Classifier-free guided samples of each kept checkpoint of a class-conditioned flow model,
    scored: (metrics, rows, samples, figures)."""
    epochs = entry.data["checkpoints"]
    per = max(p.per_digit, p.eval_per_digit)
    # Digit-major: 0, 1, …, 9, 0, 1, …; the first `per_digit` rounds make the figure.
    labels = torch.arange(DIGITS).repeat(per)
    prompts = [str(int(d)) for d in labels]
    scored = DIGITS * p.eval_per_digit
    shown, shown_labels, steps, metrics, columns, rows = [], [], [], {}, [], []
    recorder = figs.FrameRecorder(figs.ANIMATED, _frames(p))
    for epoch in epochs:
        vel = _velocity(entry, epoch, ctx.device)
        uncond = vel.encode([""])
        images = _draw(
            lambda start, size, vel=vel, uncond=uncond: samplers.classifier_free(
                vel, vel.encode(prompts[start : start + size]), uncond, p.guidance
            ),
            ctx,
            p,
            len(labels),
            recorder if epoch == epochs[-1] else None,
        )
        correct = (reader.predict(images[:scored]) == labels[:scored]).float()
        row = {
            "epoch": epoch,
            "accuracy": float(correct.mean()),
            "confident_right": float(reader.sure(images[:scored], labels[:scored]).mean()),
            "confident": float(reader.confident(images[:scored]).mean()),
            "fid": reader.frechet(images[:scored]),
            "per_digit": [float(correct[labels[:scored] == d].mean()) for d in range(DIGITS)],
        }
        rows.append(row)
        for name in ("accuracy", "confident_right", "confident", "fid"):
            metrics[f"{name}_epoch_{epoch}"] = row[name]
        first = images[: DIGITS * p.per_digit]
        shown.append(first)
        shown_labels.append(labels[: DIGITS * p.per_digit])
        steps += [epoch] * first.shape[0]
        columns.append(first.reshape(p.per_digit, DIGITS, 1, 28, 28).transpose(0, 1))
    for name in ("accuracy", "confident_right", "confident", "fid"):
        metrics[name] = metrics[f"{name}_epoch_{epochs[-1]}"]
    figs.image_table(
        torch.cat(columns, dim=1),
        ctx.out / "samples.webp",
        row_labels=[str(d) for d in range(DIGITS)],
        col_labels=[f"epoch {e}" if k == 0 else "" for e in epochs for k in range(p.per_digit)],
        cell=0.7,
    )
    figs.animation(recorder.frames, ctx.out / "sampling.gif")
    figures = [
        Figure(
            "samples.webp",
            f"{p.per_digit} samples of each digit with \\(\\gamma = {p.guidance:g}\\) and "
            f"{p.num_ts} Euler steps, after epochs " + ", ".join(map(str, epochs)),
        ),
        Figure(
            "sampling.gif",
            f"Guided sampling after epoch {epochs[-1]}, one of each digit: \\(x_t\\) (top) and "
            "\\(x_t + (1 - t)\\,\\hat u\\) (bottom)",
            pixelated=True,
            enlarge=True,
        ),
    ]
    samples = {"images": torch.cat(shown), "labels": torch.cat(shown_labels), "steps": steps}
    return metrics, rows, samples, figures


def _guided_headline(r) -> Headline | None:
    if "confident_right" not in r.metrics:
        return None
    return Headline(
        "read confidently as the digit asked for "
        f"(real digits: {percent(r.metrics['real_confident_right'])})",
        percent(r.metrics["confident_right"]),
    )


@section(
    "f2.6",
    "Sampling with classifier-free guidance",
    FlowGuidedParams,
    version=2,
    needs=("f2.5", "b2.0"),
    headline=_guided_headline,
)
def sample_class_flow(p: FlowGuidedParams, ctx) -> Result:
    reader = clf.Scorer(ctx.needs["b2.0"].private, ctx.device)
    entry = ctx.needs["f2.5"]
    metrics, rows, samples, figures = _guided(p, ctx, entry, reader)
    metrics["real_confident_right"] = ctx.needs["b2.0"].record["metrics"]["test_confident_right"]
    return Result(
        metrics=metrics,
        figures=figures,
        samples=samples,
        data={
            "rows": rows,
            "epochs": entry.data["checkpoints"],
            "digits": list(range(DIGITS)),
            "scored": DIGITS * p.eval_per_digit,
            "reference_digits": len(reader.reference),
        },
        model=outputs.model_of(entry.record),
    )


@section(
    "f2.6.1",
    "Without the learning-rate scheduler",
    NoSchedulerParams,
    version=2,
    needs=("b2.0", "f2.6"),
    headline=_guided_headline,
)
def without_scheduler(p: NoSchedulerParams, ctx) -> Result:
    """f2.5 trained again by these numbers (a constant rate in the course's write-ups), then
    sampled as f2.6 samples."""
    reader = clf.Scorer(ctx.needs["b2.0"].private, ctx.device)
    trained = _train_flow(p, ctx, _class_config(p.hidden), p_uncond=p.p_uncond)
    entry = _Kept(ctx.private, trained.data["checkpoints"])
    metrics, rows, samples, figures = _guided(ctx.params_of("f2.6"), ctx, entry, reader)
    metrics["real_confident_right"] = ctx.needs["b2.0"].record["metrics"]["test_confident_right"]
    metrics |= {f"train_{k}": v for k, v in trained.metrics.items()}
    return Result(
        metrics=metrics,
        figures=trained.figures + figures,
        samples=samples,
        data={
            "rows": rows,
            "epochs": trained.data["checkpoints"],
            "digits": list(range(DIGITS)),
            "scored": DIGITS * ctx.params_of("f2.6").eval_per_digit,
            "with_scheduler": ctx.needs["f2.6"].data["rows"],
            "epoch_losses": trained.data["epoch_losses"],
            "total_params": trained.data["total_params"],
        },
        model=trained.model,
    )


class _Kept:
    """A training run's kept weights in this section's own folder, as a store entry names them."""

    def __init__(self, private, checkpoints: list[int]):
        self.private = private
        self.data = {"checkpoints": checkpoints}


# ---------------------------------------------------------------- DDPM against flow matching


def _compare_headline(r) -> Headline | None:
    rows = [row for row in r.data.get("rows", []) if row["model"] == "class-conditioned"]
    if not rows:
        return None
    last = max(row["epoch"] for row in rows)
    by = {row["method"]: row for row in rows if row["epoch"] == last}
    return Headline(
        f"Fréchet distance, flow matching, against {fixed(by['DDPM']['fid'], '.1f')} for the "
        f"DDPM after the same {last} epoch(s)",
        fixed(by["flow matching"]["fid"], ".1f"),
    )


@section(
    "f3",
    "DDPM against flow matching at equal training",
    CompareParams,
    version=3,
    needs=("b2.0",),
    headline=_compare_headline,
)
def compare(p: CompareParams, ctx) -> Result:
    """Both methods, unconditional and class-conditioned, on the same UNet size, digits, seed and
    optimiser, scored after every epoch; the training time excludes the scoring."""
    reader = clf.Scorer(ctx.needs["b2.0"].private, ctx.device)
    images, labels = subset(*mnist(ctx.data_root, train=True), p.train_subset, p.seed)
    b22 = ctx.params_of("b2.2")
    schedule = ddpm.linear_schedule(b22.T, b22.beta_1, b22.beta_T)
    want = torch.arange(DIGITS).repeat(-(-p.eval_samples // DIGITS))[: p.eval_samples]
    rows = []
    for kind, classes in (("unconditional", 0), ("class-conditioned", DIGITS)):
        for method in ("DDPM", "flow matching"):
            if method == "DDPM":
                config = unets.UNetConfig(
                    hidden=p.hidden, time_conditioned=True, num_classes=classes
                )
                loss = ddpm_training_loss(schedule, classes, p.p_uncond)
            else:
                config = _class_config(p.hidden) if classes else _time_config(p.hidden)
                loss = flow_training_loss(classes, p.p_uncond)
            clock = {"start": time.perf_counter(), "paused": 0.0}

            def score(epoch, model, kind=kind, method=method, classes=classes, clock=clock):
                trained_s = time.perf_counter() - clock["start"] - clock["paused"]
                began = time.perf_counter()
                x = _sample_for_comparison(p, ctx, model, method, classes, schedule, want)
                row = {"model": kind, "method": method, "epoch": epoch, "train_s": trained_s}
                row["fid"], row["confident"] = _scored(reader, x)
                if classes:
                    row["accuracy"] = float((reader.predict(x) == want).float().mean())
                    row["confident_right"] = float(reader.sure(x, want).mean())
                rows.append(row)
                clock["paused"] += time.perf_counter() - began

            torch.manual_seed(p.seed)  # the same initial weights for both methods
            work = ctx.work / f"{kind}-{method}".replace(" ", "-")
            work.mkdir(parents=True, exist_ok=True)
            trainer.train(
                unets.UNet(config),
                images,
                labels,
                loss,
                trainer.TrainConfig(p.epochs, p.batch_size, p.lr, p.lr_schedule, p.precision),
                generator=rng(p.seed),
                work_dir=work,
                device=ctx.device,
                progress=ctx.progress,
                on_epoch_end=score,
                label=ctx.section.id,
            )
    figs.compare_methods(rows, ctx.out / "compare.webp")
    metrics = {}
    for row in rows:
        tag = f"{'class' if row['model'] == 'class-conditioned' else 'uncond'}_"
        tag += f"{'ddpm' if row['method'] == 'DDPM' else 'flow'}_epoch_{row['epoch']}"
        for name in ("fid", "confident", "confident_right", "train_s"):
            if name in row:
                metrics[f"{name}_{tag}"] = row[name]
    return Result(
        metrics=metrics,
        figures=[
            Figure(
                "compare.webp",
                "Each method's Fréchet distance (left) and share read confidently (right: as "
                "some digit unconditional, as the digit asked for class-conditioned) against the "
                "time spent training, one point per epoch; the same UNet size, digits, seed and "
                "optimiser",
            )
        ],
        data={
            "rows": rows,
            "eval_samples": p.eval_samples,
            "iterations": p.epochs * -(-images.shape[0] // p.batch_size),  # each model's
            "ddpm_steps": len(samplers.ddpm_timesteps(b22.T, p.stride)) - 1,
        },
        model=f"UNet(D={p.hidden}), DDPM and flow matching",
    )


def _sample_for_comparison(p, ctx, model, method, classes, schedule, want) -> torch.Tensor:
    """`p.eval_samples` samples of `model` from noise drawn from `p.seed`: the DDPM by b2.3's
    sampler, flow matching by Euler steps; classes guided by γ = `p.guidance`; the UNet runs at
    the precision it trained in."""
    gen = rng(p.seed)
    x = torch.randn((p.eval_samples, 1, 28, 28), generator=gen).to(ctx.device)
    if method == "DDPM":
        den = denoisers.UNetDenoiser(
            model, schedule.alphas_cumprod, ctx.device, "fixed_large", p.precision
        )
    else:
        den = denoisers.UNetVelocity(model, ctx.device, p.precision)
    if classes:
        cond = den.encode([str(int(d)) for d in want])
        fn = samplers.classifier_free(den, cond, den.encode([""]), p.guidance)
    else:
        fn = samplers.conditional(den, None)
    if method == "DDPM":
        out = samplers.ddpm_sample(
            fn,
            x,
            schedule.alphas_cumprod,
            generator=gen,
            variance_type="fixed_large",
            stride=p.stride,
        )
    else:
        out = flow.euler(lambda x_t, t: fn(x_t, t)[0], x, flow.uniform_times(p.num_ts))
    return out.float().cpu().clamp(0, 1)
