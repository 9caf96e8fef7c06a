"""Part B, 2.3 and 2.5: samples of the DDPMs after chosen epochs, scored by the classifier of 2.0.

Both sample through Part A's sampler (diffusion/samplers.py) over the full
schedule, t = T−1, …, 0 and then the clean image, with the schedule and the
variance the weights declare (σ² = β_t, as in the write-up).
"""

from __future__ import annotations

from typing import Annotated, NamedTuple

from pydantic import Field

from ..data import mnist, subset
from ..errors import UsageError
from ..section import Figure, Headline, Params, Result, lazy, percent, section
from ..speed import ChannelsLast, Precision, speed_identity
from .common import rng
from .params import Autoguidance, GifFrames, Guidance, GuideEpoch, check_autoguidance

# Imported where a run first uses them: reading the table (gen list) imports no torch.
torch = lazy("torch")
local_model = lazy("..backends.local_model", __package__)
samplers = lazy("..diffusion.samplers", __package__)
outputs = lazy("..outputs", __package__)
figs = lazy("..figures", __package__)
clf = lazy("..models.classifier", __package__)

Stride = Annotated[
    int,
    Field(
        ge=1,
        le=100,
        description="sample every stride-th timestep, down to t = 0; 1: all T, as the write-up",
    ),
]

DIGITS = 10


def _steps(T: int, stride: int) -> int:
    """How many denoising steps sampling makes (`ddpm_timesteps`)."""
    return (T - 1) // stride + 1


def _check_sampling(config, sid: str, p, model: str) -> None:
    T = config.params[model].T
    if p.stride >= T:
        raise UsageError(
            f"bad value {sid}.stride={p.stride}: {model} has T = {T} timesteps; use at most {T - 1}"
        )
    steps = _steps(T, p.stride)
    if p.gif_frames > steps:
        raise UsageError(
            f"bad value {sid}.gif_frames={p.gif_frames}: the animation shows frames of the "
            f"{steps} sampling steps of {model} (T = {T}, stride {p.stride}); use at most {steps}"
        )


class DDPMSampleParams(Params):
    num_samples: int = Field(
        ge=1, le=400, description="samples shown per checkpoint, from 1 to 400"
    )
    eval_samples: int = Field(
        ge=2, le=10000, description="samples scored per checkpoint, from 2 to 10000"
    )
    batch_size: int = Field(ge=1, le=10000, description="samples drawn at once, from 1 to 10000")
    stride: Stride
    gif_frames: GifFrames
    autoguidance: Autoguidance
    guide_epoch: GuideEpoch
    guide_interval: Annotated[
        list[Annotated[float, Field(ge=0.0, le=1.0)]], Field(min_length=2, max_length=2)
    ] = Field(description="[low, high]: autoguidance where t/T lies between them")
    precision: Precision
    channels_last: ChannelsLast

    def identity(self) -> dict:
        return speed_identity(super().identity(), ("precision", "channels_last"))

    def check(self, config, sid):
        _check_sampling(config, sid, self, "b2.2")
        kept = config.params["b2.2"].checkpoints()
        check_autoguidance(sid, self.autoguidance, self.guide_epoch, "b2.2", kept)
        low, high = self.guide_interval
        if low >= high:
            raise UsageError(
                f"bad value {sid}.guide_interval={self.guide_interval}: low must be below high"
            )


class GuidedSampleParams(Params):
    per_digit: int = Field(
        ge=1, le=40, description="samples shown per digit and checkpoint, from 1 to 40"
    )
    guidance: Guidance
    eval_per_digit: int = Field(
        ge=1, le=1000, description="samples scored per digit and checkpoint"
    )
    batch_size: int = Field(ge=1, le=10000, description="samples drawn at once, from 1 to 10000")
    stride: Stride
    gif_frames: GifFrames
    precision: Precision
    channels_last: ChannelsLast

    def identity(self) -> dict:
        return speed_identity(super().identity(), ("precision", "channels_last"))

    def check(self, config, sid):
        _check_sampling(config, sid, self, "b2.4")


def _models(ctx, train_id: str, p):
    """(epoch, denoiser) for each kept checkpoint of `train_id`, sampling at `p`'s precision and
    layout."""
    entry = ctx.needs[train_id]
    for epoch in entry.data["checkpoints"]:
        yield (
            epoch,
            local_model.load_kept_ddpm(
                entry, epoch, ctx.device, p.precision, p.channels_last == "on"
            ),
        )


def _draw(den, ctx, p, eps_for, count: int, recorder=None) -> torch.Tensor:
    """`count` samples in batches of `p.batch_size`, every `p.stride`-th timestep, from `p.seed`,
    clamped to [0, 1]; `eps_for(start, size)` is the noise estimate of the batch of samples start,
    …, start + size − 1.

    `recorder` sees the steps of the first batch only.
    """
    gen = rng(p.seed)
    out = []
    for start in ctx.progress(range(0, count, p.batch_size), desc="sampling"):
        size = min(p.batch_size, count - start)
        x = torch.randn((size, 1, 28, 28), generator=gen).to(ctx.device)
        x = samplers.ddpm_sample(
            eps_for(start, size),
            x,
            den.alphas_cumprod,
            generator=gen,
            variance_type=den.variance_type,
            stride=p.stride,
            callback=recorder if start == 0 else None,
        )
        out.append(x.float().cpu().clamp(0, 1))
    return torch.cat(out)


def _last_epoch(r) -> int | None:
    """The last checkpoint a sampling section scored."""
    return r.data.get("epochs", [None])[-1]


def _sample_time_ddpm_headline(r) -> Headline | None:
    last = _last_epoch(r)
    if not last:
        return None
    return Headline(
        f"confident (real digits {percent(r.metrics['confident_real'])})",
        percent(r.metrics[f"confident_epoch_{last}"]),
    )


@section(
    "b2.3",
    "Sampling from the time-conditioned DDPM",
    DDPMSampleParams,
    needs=("b2.2", "b2.0"),
    version=5,
    headline=_sample_time_ddpm_headline,
)
def sample_time_ddpm(p: DDPMSampleParams, ctx) -> Result:
    reader = clf.Scorer(ctx.needs["b2.0"].private, ctx.device)
    epochs = ctx.needs["b2.2"].data["checkpoints"]
    shown, steps, figures, rows = [], [], [], []
    recorder = figs.FrameRecorder(figs.ANIMATED_UNCONDITIONAL)
    count = max(p.num_samples, p.eval_samples)
    # What a perfect generator would score: real training digits, as many as the samples scored.
    real = subset(*mnist(ctx.data_root, train=True), p.eval_samples, p.seed)[0]
    metrics = {
        "fid_real": reader.frechet(real),
        "confident_real": float(reader.confident(real).mean()),
    }
    digits = {"real": _digit_shares(reader, real)}  # by method: how the readings spread
    models = dict(_models(ctx, "b2.2", p))
    for epoch, den in models.items():
        last = epoch == epochs[-1]
        recorder.keep = figs.evenly_spread(
            _steps(den.alphas_cumprod.shape[0], p.stride), p.gif_frames
        )
        uncond = den.encode([""])
        images = _draw(
            den,
            ctx,
            p,
            lambda start, size, den=den, uncond=uncond: samplers.conditional(den, uncond),
            count,
            recorder if last else None,
        )
        metrics[f"fid_epoch_{epoch}"], metrics[f"confident_epoch_{epoch}"] = _scored(
            reader, images[: p.eval_samples]
        )
        rows.append(
            {
                "epoch": epoch,
                "method": "plain",
                "fid": metrics[f"fid_epoch_{epoch}"],
                "confident": metrics[f"confident_epoch_{epoch}"],
            }
        )
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
            digits["plain"] = _digit_shares(reader, images[: p.eval_samples])
    figs.animation(recorder.frames, ctx.out / "sampling.gif")
    T = ctx.params_of("b2.2").T
    figures.append(
        Figure(
            "sampling.gif",
            f"Sampling after epoch {epochs[-1]}, the first {len(recorder.frames[-1]) // 2} "
            "samples: \\(x_t\\) (top) and the estimate \\(\\hat x_0\\) "
            f"(bottom), \\(t = {(T - 1) // p.stride * p.stride} \\to 0\\)"
            + (f" in steps of {p.stride}" if p.stride > 1 else ""),
            pixelated=True,
            enlarge=True,
        )
    )
    # The last epoch's, under names that do not depend on the profile's epochs (what sweeps plot).
    metrics["confident"] = metrics[f"confident_epoch_{epochs[-1]}"]
    metrics["fid"] = metrics[f"fid_epoch_{epochs[-1]}"]
    methods = ["plain"] * len(steps)
    guide = None
    if p.autoguidance > 1:
        guide = p.guide_epoch or epochs[0]
        strong, weak = models[epochs[-1]], models[guide]
        uncond = strong.encode([""])
        images = _draw(
            strong,
            ctx,
            p,
            lambda start, size: samplers.autoguided(
                strong, weak, uncond, p.autoguidance, tuple(p.guide_interval)
            ),
            count,
        )
        low, high = p.guide_interval
        where = (
            "at every step"
            if (low, high) == (0.0, 1.0)
            else f"for \\({low:g}T \\le t \\le {high:g}T\\)"
        )
        found = Found(metrics, rows, digits, figures, shown, steps, methods)
        _add_autoguided(reader, images, p, ctx, epochs[-1], guide, where, found)
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
        model=outputs.model_of(ctx.needs["b2.2"].record),
    )


def _scored(reader, images) -> tuple[float, float]:
    """The Fréchet distance of `images` to the test digits, and the share read confidently."""
    return reader.frechet(images), float(reader.confident(images).mean())


class Found(NamedTuple):
    """What a sampling section has found so far, to which a set of samples adds: its metrics,
    table rows, digit shares (by set), figures, and samples (images shown, with their
    checkpoint's epoch and their set's method)."""

    metrics: dict
    rows: list
    digits: dict
    figures: list
    shown: list
    steps: list
    methods: list


def _add_autoguided(
    reader, images, p, ctx, epoch: int, guide: int, where: str, found: Found
) -> None:
    """Score the autoguided samples of checkpoint `epoch` (guided by checkpoint `guide`, `where`
    in the schedule) as the plain ones are, save their figure (autoguided.webp), and add them to
    what the section has `found`."""
    scored = images[: p.eval_samples]
    fid, sure = _scored(reader, scored)
    found.metrics.update(fid_autoguided=fid, confident_autoguided=sure)
    found.rows.append({"epoch": epoch, "method": "autoguided", "fid": fid, "confident": sure})
    found.digits["autoguided"] = _digit_shares(reader, scored)
    figs.save_image(figs.tile(images[: p.num_samples], nrow=10), ctx.out / "autoguided.webp")
    found.figures.append(
        Figure(
            "autoguided.webp",
            f"The same noise after epoch {epoch}, autoguided by the epoch-{guide} model: "
            f"\\(w = {p.autoguidance:g}\\) {where}",
            pixelated=True,
            enlarge=True,
        )
    )
    found.shown.append(images[: p.num_samples])
    found.steps.extend([epoch] * p.num_samples)
    found.methods.extend(["autoguided"] * p.num_samples)


# How the digit-share plot names each set of samples (f2.3 keys its plain set "samples").
_SET_NAMES = {
    "real": "real training digits",
    "plain": "samples",
    "samples": "samples",
    "autoguided": "autoguided",
}


def _add_digit_shares(digits: dict, ctx, metrics: dict, figures: list) -> None:
    """Per set of samples (`digits`: by method, from _digit_shares), the entropy of its confident
    readings over the ten digits and the smallest digit's share, as metrics; and the plot of
    them all side by side (digits.webp)."""
    for method, found in digits.items():
        metrics[f"digit_entropy_{method}"] = found["entropy"]
        metrics[f"digit_min_share_{method}"] = min(found["shares"])
    figs.digit_shares(
        {_SET_NAMES[method]: d["shares"] for method, d in digits.items()}, ctx.out / "digits.webp"
    )
    figures.append(
        Figure(
            "digits.webp",
            "Which digits the confident readings are: the share of each digit among the samples "
            "read with probability at least 0.9",
        )
    )


def _digit_shares(reader, images) -> dict:
    """How the confident readings of `images` spread over the ten digits: each digit's share,
    the entropy of the shares in bits (log2 10 ≈ 3.32 when even), and how many readings."""
    digits, probability = reader.read(images)
    sure = digits[probability >= clf.CONFIDENT]
    counts = torch.bincount(sure, minlength=DIGITS).double()
    shares = counts / counts.sum().clamp(min=1)
    nonzero = shares[shares > 0]
    return {
        "shares": shares.tolist(),
        "entropy": float(-(nonzero * nonzero.log2()).sum()) + 0.0,  # + 0.0: no "-0.00"
        "readings": int(counts.sum()),
    }


def _sample_class_ddpm_headline(r) -> Headline | None:
    last = _last_epoch(r)
    if not last:
        return None
    if f"confident_right_epoch_{last}" not in r.metrics:
        return None
    return Headline(
        "read confidently as the digit asked for "
        f"(real digits: {percent(r.metrics['real_confident_right'])})",
        percent(r.metrics[f"confident_right_epoch_{last}"]),
    )


@section(
    "b2.5",
    "Sampling with classifier-free guidance",
    GuidedSampleParams,
    needs=("b2.4", "b2.0"),
    version=5,
    headline=_sample_class_ddpm_headline,
)
def sample_class_ddpm(p: GuidedSampleParams, ctx) -> Result:
    reader = clf.Scorer(ctx.needs["b2.0"].private, ctx.device)
    epochs = ctx.needs["b2.4"].data["checkpoints"]
    per = max(p.per_digit, p.eval_per_digit)
    # Digit-major for the first `per_digit` of each digit, so the figure needs no reshuffle:
    # labels = 0,1,…,9, 0,1,…,9, … (`per` rounds); the first 10 give the animation.
    labels = torch.arange(DIGITS).repeat(per)
    prompts = [str(int(d)) for d in labels]
    scored = DIGITS * p.eval_per_digit
    shown, shown_labels, steps, metrics, columns, rows = [], [], [], {}, [], []
    recorder = figs.FrameRecorder(figs.ANIMATED)
    for epoch, den in _models(ctx, "b2.4", p):
        last = epoch == epochs[-1]
        recorder.keep = figs.evenly_spread(
            _steps(den.alphas_cumprod.shape[0], p.stride), p.gif_frames
        )
        uncond = den.encode([""])
        images = _draw(
            den,
            ctx,
            p,
            lambda start, size, den=den, uncond=uncond: samplers.classifier_free(
                den, den.encode(prompts[start : start + size]), uncond, p.guidance
            ),
            len(labels),
            recorder if last else None,
        )
        correct = (reader.predict(images[:scored]) == labels[:scored]).float()
        metrics[f"accuracy_epoch_{epoch}"] = float(correct.mean())
        metrics[f"confident_right_epoch_{epoch}"] = float(
            reader.sure(images[:scored], labels[:scored]).mean()
        )
        for d in range(DIGITS):
            metrics[f"accuracy_epoch_{epoch}_digit_{d}"] = float(
                correct[labels[:scored] == d].mean()
            )
        metrics[f"fid_epoch_{epoch}"] = reader.frechet(images[:scored])
        rows.append(
            {
                "epoch": epoch,
                "accuracy": metrics[f"accuracy_epoch_{epoch}"],
                "confident_right": metrics[f"confident_right_epoch_{epoch}"],
                "fid": metrics[f"fid_epoch_{epoch}"],
                "per_digit": [metrics[f"accuracy_epoch_{epoch}_digit_{d}"] for d in range(DIGITS)],
            }
        )
        first = images[: DIGITS * p.per_digit]
        shown.append(first)
        shown_labels.append(labels[: DIGITS * p.per_digit])
        steps += [epoch] * first.shape[0]
        columns.append(
            first.reshape(p.per_digit, DIGITS, 1, 28, 28).transpose(0, 1)
        )  # (10, per_digit, 1, 28, 28)
    # The last epoch's, under names that do not depend on the profile's epochs (what the guidance
    # sweep plots).
    metrics["accuracy"], metrics["confident_right"], metrics["fid"] = (
        metrics[f"accuracy_epoch_{epochs[-1]}"],
        metrics[f"confident_right_epoch_{epochs[-1]}"],
        metrics[f"fid_epoch_{epochs[-1]}"],
    )
    metrics["real_confident_right"] = ctx.needs["b2.0"].record["metrics"]["test_confident_right"]
    figs.image_table(
        torch.cat(columns, dim=1),
        ctx.out / "samples.webp",
        row_labels=[str(d) for d in range(DIGITS)],
        col_labels=[f"epoch {e}" if k == 0 else "" for e in epochs for k in range(p.per_digit)],
        cell=0.7,
    )
    figs.animation(recorder.frames, ctx.out / "sampling.gif")
    return Result(
        metrics=metrics,
        figures=[
            Figure(
                "samples.webp",
                f"{p.per_digit} samples of each digit with \\(\\gamma = {p.guidance:g}\\), after "
                "epochs "
                + " and ".join(map(str, epochs))
                + (f", sampled every {p.stride} timesteps" if p.stride > 1 else ""),
            ),
            Figure(
                "sampling.gif",
                f"Guided sampling after epoch {epochs[-1]}, one of each digit: \\(x_t\\) (top) and "
                "\\(\\hat x_0\\) (bottom)",
                pixelated=True,
                enlarge=True,
            ),
        ],
        samples={"images": torch.cat(shown), "labels": torch.cat(shown_labels), "steps": steps},
        data={
            "rows": rows,
            "epochs": epochs,
            "digits": list(range(DIGITS)),
            "scored": scored,
            "reference_digits": len(reader.reference),
        },
        model=outputs.model_of(ctx.needs["b2.4"].record),
    )
