"""Every sampler of the project as plain functions over a `Denoiser`: DDPM, CFG, SDEdit, inpainting,
anagrams, hybrids.

Nothing here knows which model runs underneath: a `Denoiser` has the
`alphas_cumprod` of its training schedule, an `encode(prompts)` and a call
`(x_t, t, cond) -> (ε̂, v or None)`. The samplers take an `EpsFn`,
`(x_t, t) -> (ε, v or None)`, built from a denoiser by `conditional`,
`classifier_free`, `anagram` or `hybrid`, so that every way of combining noise
estimates runs through the same loop, `iterative_denoise`. Part A and Part B
both sample through it.

Timesteps (diffusion/timesteps.py). A schedule is a strictly decreasing list
such as 990, 960, …, 0 (`strided_timesteps(990, 30)`, 34 values). The loop
runs i over range(i_start, len(timesteps) − 1), steps from t = timesteps[i] to
t′ = timesteps[i + 1] (33 model calls for the list above) and returns x at
t′ = timesteps[-1]. Each of those steps is exactly diffusers'
`DDPMScheduler.step` with the same list passed to `set_timesteps(timesteps=…)`,
noise included (the tests check this). Part A follows the course and stops at
t = 0: x there already is the clean estimate, since ᾱ_0 ≈ 1 (√(1 − ᾱ_0) ≈
0.0064 for IF's cosine schedule, 0.01 for Part B's linear one). IFPipeline, and
Part B's full schedule (`ddpm_timesteps(T)`), make one more step, from t = 0
to `CLEAN` (ᾱ = 1), which adds no noise and returns x̂0.

The variance of a step is what the model declares (`Denoiser.variance_type`,
diffusers' names): its learned range from v (`learned_range`, DeepFloyd IF),
else β̃_t (`fixed_small`, the posterior's) or β_t (`fixed_large`, the
write-up's sampler, which adds √β_t·z; Part B's DDPMs), Ho et al.'s two
choices. Every sampler takes it as `variance_type`, read off the denoiser.

The loop carries x in float32 whatever the denoiser's dtype (fp16 makes
1 − ᾱ_0 round to zero); a denoiser casts its inputs to its own dtype. Every
random draw comes from the explicit `torch.Generator`, drawn on the
generator's device (the CPU by convention) and then moved to x's device, so a
seed gives the same samples on every machine. Samplers do no thresholding or
clipping of x̂0, as in the course (IFPipeline thresholds).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, Protocol, runtime_checkable

import torch

from .ddpm import (
    StepInfo,
    ddpm_step,
    learned_range_variance,
    posterior_variance,
    predict_start_from_noise,
    q_sample,
    to_device,
)
from .timesteps import CLEAN, ddpm_timesteps, leading_timesteps, strided_timesteps  # noqa: F401  (the samplers' interface)
from .views import View, get_view

Tensor = torch.Tensor
EpsFn = Callable[[Tensor, int], tuple[Tensor, Tensor | None]]  # (x_t, t) -> (ε, v or None)
# σ² of a step: from the model's v, β̃_t, or β_t
VarianceType = Literal["learned_range", "fixed_small", "fixed_large"]


@runtime_checkable
class Denoiser(Protocol):
    alphas_cumprod: Tensor  # (T,) ᾱ of the model's training schedule
    variance_type: VarianceType  # the variance the model samples with

    def encode(self, prompts: list[str]) -> Tensor | None:
        """A batch of conditions, one per prompt; "" is the unconditional one (None: a model that
        takes none)."""
        ...

    def __call__(self, x_t: Tensor, t: int, cond: Tensor) -> tuple[Tensor, Tensor | None]:
        """ε̂ (B, C, H, W) and, for a model with a learned-range variance, its raw output v in
        [−1, 1], else None."""
        ...


# ---------------------------------------------------------------- helpers


def _randn(shape: Sequence[int], generator: torch.Generator, like: Tensor) -> Tensor:
    """Standard normal noise from `generator`, drawn on the generator's device, then moved to
    `like`'s device."""
    return to_device(
        torch.randn(
            tuple(shape), generator=generator, device=generator.device, dtype=torch.float32
        ),
        like.device,
    )


def _batch(cond: Tensor | None, B: int) -> Tensor | None:
    """A condition for B samples: a batch of one is repeated, a batch of B is kept (None stays
    None)."""
    if cond is None or cond.shape[0] == B:
        return cond
    if cond.shape[0] == 1:
        return cond.expand(B, *cond.shape[1:])
    raise ValueError(
        f"a condition of batch {cond.shape[0]} cannot serve {B} samples (give 1 or {B})"
    )


def _check_timesteps(timesteps: Sequence[int], alphas_cumprod: Tensor) -> list[int]:
    ts = [int(t) for t in timesteps]
    T = alphas_cumprod.shape[0]
    if len(ts) < 2:
        raise ValueError(f"timesteps need at least 2 values, got {len(ts)}")
    if any(b >= a for a, b in zip(ts, ts[1:])):
        raise ValueError(f"timesteps must be strictly decreasing, got {ts}")
    if ts[0] >= T or ts[-1] < CLEAN:
        raise ValueError(
            f"timesteps must lie in 0..{T - 1} (the model's schedule) or end at CLEAN, got "
            f"{ts[0]}..{ts[-1]}"
        )
    return ts


def _check_i_start(i_start: int, timesteps: Sequence[int]) -> None:
    last = len(timesteps) - 2
    if not 0 <= i_start <= last:
        raise ValueError(
            f"i_start must be in 0..{last} for {len(timesteps)} timesteps, got {i_start}"
        )


def _resolve_views(views: Sequence[View | str]) -> list[View]:
    return [get_view(v) if isinstance(v, str) else v for v in views]


# ---------------------------------------------------------------- schedule and the forward process


def forward(
    x0: Tensor, t: int, alphas_cumprod: Tensor, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε with fresh ε, the forward process (Ho et al. 2020, eq. 4);
    returns (x_t, ε)."""
    eps = _randn(x0.shape, generator, x0).to(x0.dtype)  # (B, C, H, W)
    return q_sample(x0, int(t), eps, alphas_cumprod), eps


def one_step_estimate(denoiser: Denoiser, x_t: Tensor, t: int, cond: Tensor) -> Tensor:
    """x̂0 = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t from a single model call (Ho et al. 2020, eq. 15)."""
    eps, _ = denoiser(x_t, int(t), _batch(cond, x_t.shape[0]))
    return predict_start_from_noise(x_t.float(), int(t), eps.float(), denoiser.alphas_cumprod)


# ---------------------------------------------------------------- noise estimates


def conditional(denoiser: Denoiser, cond: Tensor) -> EpsFn:
    """ε = ε_θ(x_t, t, c), the model's own estimate under one condition (Ho et al. 2020)."""

    def eps_fn(x_t: Tensor, t: int) -> tuple[Tensor, Tensor | None]:
        return denoiser(x_t, t, _batch(cond, x_t.shape[0]))

    return eps_fn


def classifier_free(denoiser: Denoiser, cond: Tensor, uncond: Tensor, scale: float) -> EpsFn:
    """ε = ε_u + γ(ε_c − ε_u), both passes in one batched call; variance from the conditional
    pass (Ho & Salimans 2022)."""

    def eps_fn(x_t: Tensor, t: int) -> tuple[Tensor, Tensor | None]:
        B = x_t.shape[0]
        eps, v = denoiser(
            torch.cat([x_t, x_t]), t, torch.cat([_batch(cond, B), _batch(uncond, B)])
        )  # (2B, …)
        eps_c, eps_u = eps.float().chunk(2)  # (B, C, H, W) each
        return eps_u + scale * (eps_c - eps_u), None if v is None else v[:B]

    return eps_fn


def autoguided(
    denoiser: Denoiser,
    weak: Denoiser,
    cond: Tensor | None,
    scale: float,
    interval: tuple[float, float] = (0.0, 1.0),
) -> EpsFn:
    """ε = ε_weak + w(ε_θ − ε_weak) where t/T lies in `interval`, else ε_θ: the model guided away
    from a weaker version of itself (Karras et al. 2024, autoguidance), over part of the schedule
    only (Kynkäänniemi et al. 2024). w = 1 is the model alone; variance from the model.

    Over the whole schedule, (0, 1), it composes any two models of one call signature: a flow
    model's velocities as well (its t runs from 0 to 1 and has no T)."""
    low, high = interval
    everywhere = (low, high) == (0.0, 1.0)
    T = None if everywhere else denoiser.alphas_cumprod.shape[0]

    def eps_fn(x_t: Tensor, t: int) -> tuple[Tensor, Tensor | None]:
        c = _batch(cond, x_t.shape[0])
        eps, v = denoiser(x_t, t, c)
        if not everywhere and not low <= t / T <= high:
            return eps, v
        eps_weak = weak(x_t, t, c)[0].float()
        return eps_weak + scale * (eps.float() - eps_weak), v

    return eps_fn


def anagram(
    denoiser: Denoiser,
    conds: Sequence[Tensor],
    views: Sequence[View | str],
    uncond: Tensor,
    scale: float,
) -> EpsFn:
    """ε = mean_i view_i⁻¹(CFG-ε(view_i(x_t), p_i)), all views' passes in one call (Geng et al.
    2024, Visual Anagrams).

    The first view is conventionally `identity` (prompt 1 is what the image
    shows as it is); any number of views works, two or three in practice.
    The variance output v is mapped back through each view's spatial part
    (`View.inverse_variance`) and averaged, as the paper's code averages it.
    """
    views = _resolve_views(views)
    if len(conds) != len(views) or not views:
        raise ValueError(
            f"anagram needs one condition per view, got {len(conds)} conditions for {len(views)} "
            "views"
        )
    n = len(views)

    def eps_fn(x_t: Tensor, t: int) -> tuple[Tensor, Tensor | None]:
        B = x_t.shape[0]
        seen = [view.apply(x_t) for view in views]  # n × (B, C, H, W)
        for view, x in zip(views, seen):
            if x.shape != x_t.shape:
                raise ValueError(
                    f"view {view.name!r} changes the image's shape {tuple(x_t.shape)}: it needs a "
                    "square image"
                )
        inputs = torch.cat(
            seen + seen
        )  # (2nB, C, H, W): conditional passes, then unconditional ones
        c = torch.cat([_batch(cond, B) for cond in conds] + [_batch(uncond, B)] * n)  # (2nB, …)
        eps, v = denoiser(inputs, t, c)
        eps_c, eps_u = eps.float().chunk(2)  # (nB, C, H, W) each
        guided = (eps_u + scale * (eps_c - eps_u)).chunk(
            n
        )  # n × (B, C, H, W), each in its view's frame
        eps_out = torch.stack([view.inverse(e) for view, e in zip(views, guided)]).mean(0)
        if v is None:
            return eps_out, None
        v_c = v[: n * B].float().chunk(n)
        return eps_out, torch.stack(
            [view.inverse_variance(vi) for view, vi in zip(views, v_c)]
        ).mean(0)

    return eps_fn


def hybrid(
    denoiser: Denoiser,
    cond_low: Tensor,
    cond_high: Tensor,
    uncond: Tensor,
    scale: float,
    kernel_size: int = 33,
    sigma: float = 2.0,
) -> EpsFn:
    """ε = lowpass(ε1) + highpass(ε2), CFG-ε of two prompts, one call (the course; Geng et al. 2024,
    Factorized Diffusion).

    lowpass is torchvision's Gaussian blur and highpass(ε) = ε − lowpass(ε); the
    unconditional pass is shared by both prompts. The variance output is the
    mean of the two conditional passes' v.
    """
    if kernel_size <= 0 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")

    # imported here: torchvision costs a build seconds to import, and only hybrids blur
    from torchvision.transforms.functional import gaussian_blur

    def lowpass(e: Tensor) -> Tensor:
        return gaussian_blur(e, [kernel_size, kernel_size], [sigma, sigma])

    def eps_fn(x_t: Tensor, t: int) -> tuple[Tensor, Tensor | None]:
        B = x_t.shape[0]
        c = torch.cat([_batch(cond_low, B), _batch(cond_high, B), _batch(uncond, B)])  # (3B, …)
        eps, v = denoiser(torch.cat([x_t, x_t, x_t]), t, c)
        e_low, e_high, e_u = eps.float().chunk(3)  # (B, C, H, W) each
        eps1 = e_u + scale * (e_low - e_u)
        eps2 = e_u + scale * (e_high - e_u)
        eps_out = lowpass(eps1) + (eps2 - lowpass(eps2))
        if v is None:
            return eps_out, None
        v_low, v_high, _ = v.float().chunk(3)
        return eps_out, (v_low + v_high) / 2

    return eps_fn


# ---------------------------------------------------------------- the loop


def denoise_step(
    x_t: Tensor,
    eps: Tensor,
    v: Tensor | None,
    abar_t: Tensor,
    abar_prev: Tensor | float,
    noise: Tensor,
    variance_type: VarianceType,
) -> tuple[Tensor, Tensor]:
    """One strided step t → t′ with the variance the model declares (Ho et al. 2020, eqs. 6–7;
    Nichol & Dhariwal 2021, eq. 15).

    `noise` is the standard normal draw of this step; returns (x_t′, x̂0). The
    same update as `DDPMScheduler.step` (thresholding off) for that noise and
    `variance_type`.
    """
    # 1. σ² of the step: learned range between β̃ and β from v, else β̃ or β
    if (v is not None) != (variance_type == "learned_range"):
        raise ValueError(
            f"variance_type {variance_type!r} with v {'given' if v is not None else 'None'}: "
            "a learned-range model returns v, a fixed-variance one None"
        )
    if variance_type == "learned_range":
        variance = learned_range_variance(v.float(), abar_t, abar_prev)  # (B, C, H, W)
    elif variance_type == "fixed_small":
        variance = posterior_variance(abar_t, abar_prev)  # 0-d
    else:
        variance = None  # ddpm_step's default, β_t
    # 2. x̂0 (eq. 15), the posterior mean (eq. 7) and the noise (eq. 6)
    return ddpm_step(x_t.float(), eps.float(), abar_t, abar_prev, noise, variance)


@torch.no_grad()
def iterative_denoise(
    eps_fn: EpsFn,
    x: Tensor,
    timesteps: Sequence[int],
    alphas_cumprod: Tensor,
    *,
    i_start: int = 0,
    generator: torch.Generator,
    variance_type: VarianceType,
    callback: Callable[[StepInfo], None] | None = None,
    after_step: Callable[[Tensor, int], Tensor] | None = None,
) -> Tensor:
    """Ancestral sampling over strided timesteps from x at timesteps[i_start] (Ho et al. 2020,
    Algorithm 2; the course's iterative_denoise).

    Steps t = timesteps[i] → t′ = timesteps[i + 1] for i in i_start..len − 2,
    and returns x at t′ = timesteps[-1] (see the module's docstring).
    `callback(StepInfo)` sees every step's x_t and x̂0 (`StepInfo.i` is the
    index of t in `timesteps`, so SDEdit's first step has i = i_start); `after_step(x_t′, t′)`
    may replace x_t′ (inpainting does).
    """
    ts = _check_timesteps(timesteps, alphas_cumprod)
    _check_i_start(i_start, ts)
    abar = alphas_cumprod.float()
    x = x.float()  # (B, C, H, W)
    for i in range(i_start, len(ts) - 1):
        t, t_prev = ts[i], ts[i + 1]
        eps, v = eps_fn(x, t)
        # one draw per step, as DDPMScheduler.step, which adds none on the step from t = 0
        noise = _randn(x.shape, generator, x) if t > 0 else torch.zeros_like(x)
        abar_prev = 1.0 if t_prev == CLEAN else abar[t_prev]
        x_prev, x0_hat = denoise_step(x, eps, v, abar[t], abar_prev, noise, variance_type)
        if callback is not None:
            callback(StepInfo(i=i, t=t, x_t=x, x0_hat=x0_hat))
        if after_step is not None:
            x_prev = after_step(x_prev, t_prev)
        x = x_prev
    return x


def ddpm_sample(
    eps_fn: EpsFn,
    x: Tensor,
    alphas_cumprod: Tensor,
    *,
    generator: torch.Generator,
    variance_type: VarianceType,
    stride: int = 1,
    callback: Callable[[StepInfo], None] | None = None,
) -> Tensor:
    """Every timestep from T − 1 down, then the clean image: Algorithm 2 of Ho et al. 2020, as
    Part B samples; or every `stride`-th (`ddpm_timesteps`)."""
    timesteps = ddpm_timesteps(alphas_cumprod.shape[0], stride)
    return iterative_denoise(
        eps_fn,
        x,
        timesteps,
        alphas_cumprod,
        generator=generator,
        variance_type=variance_type,
        callback=callback,
    )


@torch.no_grad()
def sdedit(
    eps_fn: EpsFn,
    x_orig: Tensor,
    timesteps: Sequence[int],
    i_start: int,
    alphas_cumprod: Tensor,
    *,
    generator: torch.Generator,
    variance_type: VarianceType,
    callback: Callable[[StepInfo], None] | None = None,
) -> Tensor:
    """Noise x_orig to timesteps[i_start] and denoise from there (Meng et al. 2022, SDEdit)."""
    ts = _check_timesteps(timesteps, alphas_cumprod)
    _check_i_start(i_start, ts)
    x_t, _ = forward(x_orig.float(), ts[i_start], alphas_cumprod.float(), generator)
    return iterative_denoise(
        eps_fn,
        x_t,
        ts,
        alphas_cumprod,
        i_start=i_start,
        generator=generator,
        variance_type=variance_type,
        callback=callback,
    )


@torch.no_grad()
def inpaint(
    eps_fn: EpsFn,
    x_orig: Tensor,
    mask: Tensor,
    timesteps: Sequence[int],
    alphas_cumprod: Tensor,
    *,
    generator: torch.Generator,
    variance_type: VarianceType,
    callback: Callable[[StepInfo], None] | None = None,
) -> Tensor:
    """From pure noise, after every step x_t′ ← m·x_t′ + (1−m)·forward(x_orig, t′) (Lugmayr et al.
    2022, RePaint, without resampling).

    m = 1 where new content goes; `mask` is (H, W) or anything that broadcasts
    against x_orig with the same H and W. At the last step (t′ =
    timesteps[-1]) x_orig itself goes back in, not a forward sample: at t = 0
    the forward process still adds noise of standard deviation √(1 − ᾱ_0), and
    the result must equal the original exactly outside the mask.
    """
    ts = _check_timesteps(timesteps, alphas_cumprod)
    if mask.shape[-2:] != x_orig.shape[-2:]:
        raise ValueError(
            f"the mask is {tuple(mask.shape[-2:])} (H, W) but the image is "
            f"{tuple(x_orig.shape[-2:])}: they must match"
        )
    x_orig = x_orig.float()
    m = mask.to(device=x_orig.device, dtype=torch.float32)
    abar = alphas_cumprod.float()

    def keep_known(x_prev: Tensor, t_prev: int) -> Tensor:
        known = x_orig if t_prev == ts[-1] else forward(x_orig, t_prev, abar, generator)[0]
        return m * x_prev + (1.0 - m) * known

    x = _randn(x_orig.shape, generator, x_orig)  # (B, C, H, W), pure noise at timesteps[0]
    return iterative_denoise(
        eps_fn,
        x,
        ts,
        alphas_cumprod,
        generator=generator,
        variance_type=variance_type,
        callback=callback,
        after_step=keep_known,
    )
