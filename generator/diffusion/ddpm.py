"""DDPM: the schedule, the forward process, one ancestral step and the ε-prediction loss (Ho et al.
2020).

Indexing. A schedule has T entries, indexed t = 0, …, T−1: `betas[t]` is the
noise added by the step that makes x_t, and ᾱ_t = `alphas_cumprod[t]` =
∏_{s≤t} (1 − β_s), so x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε. Even x_0 carries a little
noise (ᾱ_0 = 1 − β_1); the clean image sits one step below it, where ᾱ = 1.
Training draws t uniformly from 0, …, T−1 and conditions the model on t/T.
Sampling (diffusion/samplers.py, over `ddpm_timesteps(T)`) starts from
x_{T−1} ~ N(0, I) and runs t = T−1, …, 0; the step from t goes to t−1, and the
last one (t = 0) uses ᾱ_prev = 1 and adds no noise, so it returns the model's
estimate x̂0. This is the convention of diffusers' `DDPMScheduler`, which the
tests compare against.

The step `ddpm_step` takes ᾱ_t and ᾱ_prev as numbers, not indices, so the same
code runs a strided schedule (t → t′ < t − 1) and a learned variance: with
α_t = ᾱ_t/ᾱ_prev and β_t = 1 − α_t for that step, it is eq. 7 of the paper with
x̂0 in place of x0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..hardware import to_device

# ---------------------------------------------------------------- helpers


def _extract(values: torch.Tensor, t: int | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values[t] shaped to broadcast against `like`: 0-d for an int t, (B, 1, …, 1) for a (B,) t."""
    if isinstance(t, torch.Tensor) and t.ndim > 0:
        out = to_device(values, like.device)[to_device(t, like.device)]  # (B,)
        return out.reshape(-1, *([1] * (like.ndim - 1))).to(like.dtype)
    return to_device(values[int(t)], like.device).to(like.dtype)


def _scalar(value: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A python float or 0-d tensor as a 0-d tensor of `like`'s dtype and device."""
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


# ---------------------------------------------------------------- schedule


@dataclass(frozen=True)
class Schedule:
    betas: torch.Tensor  # (T,) float32, β_t for t = 0..T-1
    alphas: torch.Tensor  # (T,) 1 − β_t
    alphas_cumprod: torch.Tensor  # (T,) ᾱ_t = ∏_{s≤t} α_s

    @property
    def num_timesteps(self) -> int:
        return self.betas.shape[0]


def linear_schedule(T: int = 300, beta_1: float = 1e-4, beta_T: float = 0.02) -> Schedule:
    """The linear β schedule of Ho et al. 2020, §4: β = linspace(β_1, β_T, T)."""
    betas = torch.linspace(beta_1, beta_T, T, dtype=torch.float32)  # (T,)
    alphas = 1.0 - betas
    return Schedule(betas=betas, alphas=alphas, alphas_cumprod=torch.cumprod(alphas, dim=0))


# ---------------------------------------------------------------- forward process


def q_sample(
    x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor
) -> torch.Tensor:
    """x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε, the closed-form forward process (Ho et al. 2020, eq. 4)."""
    abar = _extract(alphas_cumprod, t, x0)  # (B, 1, 1, 1)
    return abar.sqrt() * x0 + (1.0 - abar).sqrt() * noise


def predict_start_from_noise(
    x_t: torch.Tensor, t: int | torch.Tensor, eps: torch.Tensor, alphas_cumprod: torch.Tensor
) -> torch.Tensor:
    """x̂0 = (x_t − √(1−ᾱ_t)·ε)/√ᾱ_t, eq. 4 solved for x0 (Ho et al. 2020, eq. 15)."""
    abar = _extract(alphas_cumprod, t, x_t)
    return (x_t - (1.0 - abar).sqrt() * eps) / abar.sqrt()


def posterior_variance(
    abar_t: float | torch.Tensor, abar_prev: float | torch.Tensor
) -> torch.Tensor:
    """β̃_t = (1−ᾱ_prev)/(1−ᾱ_t)·β_t, the variance of q(x_prev | x_t, x0) (Ho et al. 2020, eq.
    7)."""
    abar_t, abar_prev = torch.as_tensor(abar_t), torch.as_tensor(abar_prev)
    beta_t = 1.0 - abar_t / abar_prev
    return (1.0 - abar_prev) / (1.0 - abar_t) * beta_t


def learned_range_variance(
    v: torch.Tensor, abar_t: float | torch.Tensor, abar_prev: float | torch.Tensor
) -> torch.Tensor:
    """exp(f·log β_t + (1−f)·log β̃_t), f = (v+1)/2, from a model's v in [−1, 1] (Nichol &
    Dhariwal 2021, eq. 15)."""
    abar_t = torch.as_tensor(abar_t, dtype=v.dtype, device=v.device)
    abar_prev = torch.as_tensor(abar_prev, dtype=v.dtype, device=v.device)
    beta_t = 1.0 - abar_t / abar_prev
    min_log = posterior_variance(abar_t, abar_prev).clamp_min(1e-20).log()
    max_log = beta_t.log()
    frac = (v + 1.0) / 2.0
    return (frac * max_log + (1.0 - frac) * min_log).exp()


# ---------------------------------------------------------------- reverse process


def ddpm_step(
    x_t: torch.Tensor,
    eps: torch.Tensor,
    abar_t: float | torch.Tensor,
    abar_prev: float | torch.Tensor,
    noise: torch.Tensor,
    variance: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One ancestral step x_t → x_prev from a noise estimate (Ho et al. 2020, eqs. 6, 7, 15);
    returns (x_prev, x̂0).

    `variance` defaults to β_t (σ_t² = β_t, one of the paper's two choices);
    pass `noise` = zeros on the last step. x̂0 is not clipped, as in the course.
    """
    abar_t, abar_prev = _scalar(abar_t, x_t), _scalar(abar_prev, x_t)
    # 1. α_t and β_t of this step (t → prev may skip timesteps)
    alpha_t = abar_t / abar_prev
    beta_t = 1.0 - alpha_t
    # 2. x̂0 from ε (eq. 15)
    x0_hat = (x_t - (1.0 - abar_t).sqrt() * eps) / abar_t.sqrt()  # (B, C, H, W)
    # 3. the posterior mean μ̃(x_t, x̂0) (eq. 7)
    coef_x0 = abar_prev.sqrt() * beta_t / (1.0 - abar_t)
    coef_xt = alpha_t.sqrt() * (1.0 - abar_prev) / (1.0 - abar_t)
    mean = coef_x0 * x0_hat + coef_xt * x_t  # (B, C, H, W)
    # 4. add noise with variance σ_t² (eq. 6)
    if variance is None:
        variance = beta_t
    variance = torch.as_tensor(variance, dtype=x_t.dtype, device=x_t.device)
    return mean + variance.sqrt() * noise, x0_hat


# ---------------------------------------------------------------- training


def drop_classes(cond: torch.Tensor, p_uncond: float, generator: torch.Generator) -> torch.Tensor:
    """The one-hot rows of `cond` (B, classes), each zeroed with probability p_uncond: a zeroed
    row is "no class", so one model learns the conditional and the unconditional estimate (Ho &
    Salimans 2022). One draw per row from `generator`, on the CPU."""
    keep = (torch.rand(cond.shape[0], generator=generator) >= p_uncond).float()  # (B,)
    keep = to_device(keep, cond.device)
    return cond * keep[:, None]


def ddpm_loss(
    model: Callable,
    x0: torch.Tensor,
    cond: torch.Tensor | None,
    generator: torch.Generator,
    schedule: Schedule,
    *,
    p_uncond: float = 0.1,
    min_snr_gamma: float = 0.0,
) -> torch.Tensor:
    """‖ε − ε_θ(x_t, t/T[, c])‖², t uniform (Ho et al. 2020, Algorithm 1); c zeroed with p_uncond
    (Ho & Salimans 2022). With min_snr_gamma > 0 each sample's term is weighted by
    min(SNR_t, γ)/SNR_t, SNR_t = ᾱ_t/(1 − ᾱ_t) (Hang et al. 2023, min-SNR-γ for ε-prediction),
    which turns down the nearly clean timesteps.

    `cond` is a (B, classes) one-hot batch for a class-conditioned model, else None.
    """
    B, device = x0.shape[0], x0.device
    T = schedule.num_timesteps
    t = torch.randint(0, T, (B,), generator=generator)  # (B,) long, on the CPU
    noise = to_device(torch.randn(x0.shape, generator=generator), device)  # (B, C, H, W)
    alphas_cumprod = to_device(schedule.alphas_cumprod, device)
    t_device = to_device(t, device)
    x_t = q_sample(x0, t_device, noise, alphas_cumprod)
    t_in = to_device(t.float() / T, device)  # (B,) in [0, 1)
    if cond is not None:
        eps = model(x_t, t_in, drop_classes(cond, p_uncond, generator))
    else:
        eps = model(x_t, t_in)
    if not min_snr_gamma:
        return F.mse_loss(eps.float(), noise)
    abar = alphas_cumprod[t_device]  # (B,)
    snr = abar / (1 - abar)
    weight = snr.clamp(max=min_snr_gamma) / snr  # (B,)
    return (weight * (eps.float() - noise).pow(2).flatten(1).mean(1)).mean()


# ---------------------------------------------------------------- a step's record


@dataclass(frozen=True)
class StepInfo:
    i: int  # the index of t in the sampler's timesteps (0 for the first)
    t: int  # the timestep the step starts from
    x_t: torch.Tensor  # (B, C, H, W) the sample at t
    x0_hat: torch.Tensor  # (B, C, H, W) the model's estimate of x0 at t
