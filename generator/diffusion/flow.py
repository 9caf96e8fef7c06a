"""Flow matching as plain functions: the straight path from noise to data, its velocity, the loss,
and an Euler sampler (Lipman et al. 2023, "Flow matching for generative modeling"; Liu et al. 2023,
rectified flow), in the course's convention: noise at t = 0, data at t = 1.

    x_t = (1 − t)·x0 + t·x1,    x0 ~ N(0, I), x1 a digit, t ~ U[0, 1]
    u(x_t, t) = dx_t/dt = x1 − x0

The model u_θ(x_t, t[, c]) regresses that velocity; sampling integrates
dx/dt = u_θ(x, t) from pure noise at t = 0 to t = 1 with Euler steps. The
samplers of diffusion/samplers.py build what the model is asked (`conditional`,
`classifier_free`): classifier-free guidance combines two velocities exactly as
it combines two noise estimates.

Every random draw comes from an explicit CPU `torch.Generator` and is then moved
to the data's device, so a seed gives the same samples on every machine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .ddpm import drop_classes

Tensor = torch.Tensor
VelocityFn = Callable[[Tensor, float], Tensor]  # (x_t, t) -> u (B, C, H, W)


def _per_image(t: Tensor | float, like: Tensor) -> Tensor:
    """t as a tensor that broadcasts over `like`: a number, or one value per image (B,)."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return t.reshape(-1, *([1] * (like.dim() - 1))) if t.dim() else t


def interpolate(x0: Tensor, x1: Tensor, t: Tensor | float) -> Tensor:
    """x_t = (1 − t)·x0 + t·x1: noise x0 at t = 0, data x1 at t = 1; t a number or (B,)."""
    t = _per_image(t, x1)
    return (1 - t) * x0 + t * x1


def velocity_target(x0: Tensor, x1: Tensor) -> Tensor:
    """The velocity of the straight path, d x_t / dt = x1 − x0, the same at every t."""
    return x1 - x0


def flow_loss(
    model: Callable,
    x1: Tensor,
    cond: Tensor | None,
    generator: torch.Generator,
    *,
    p_uncond: float = 0.1,
    t_sampling: str = "uniform",
) -> Tensor:
    """‖(x1 − x0) − u_θ(x_t, t[, c])‖², one t per image; c zeroed with p_uncond, as the DDPM's
    loss does (Ho & Salimans 2022).

    t ~ U[0, 1] (the course's), or with `t_sampling="logit_normal"` t = sigmoid(n), n ~ N(0, 1),
    which trains the middle of the path, where the velocity is hardest to guess, more often
    (Esser et al. 2024). `cond` is a (B, classes) one-hot batch for a class-conditioned model,
    else None.
    """
    B, device = x1.shape[0], x1.device
    x0 = torch.randn(x1.shape, generator=generator).to(device)  # (B, C, H, W)
    if t_sampling == "uniform":
        t = torch.rand(B, generator=generator)  # (B,)
    elif t_sampling == "logit_normal":
        t = torch.sigmoid(torch.randn(B, generator=generator))
    else:
        raise ValueError(f"t_sampling is uniform or logit_normal, not {t_sampling!r}")
    t = t.to(device)
    x_t = interpolate(x0, x1, t)
    if cond is not None:
        u = model(x_t, t, drop_classes(cond, p_uncond, generator))
    else:
        u = model(x_t, t)
    return F.mse_loss(u.float(), velocity_target(x0, x1).float())


def uniform_times(num_ts: int) -> list[float]:
    """num_ts Euler steps over [0, 1]: the num_ts + 1 times 0, 1/num_ts, …, 1."""
    if num_ts < 1:
        raise ValueError(f"num_ts must be at least 1, got {num_ts}")
    return [i / num_ts for i in range(num_ts + 1)]


@dataclass(frozen=True)
class FlowStep:
    i: int  # the index of t in the sampler's times (0 for the first)
    t: float  # the time the step starts from
    x_t: Tensor  # (B, C, H, W) the sample at t
    x1_hat: Tensor  # (B, C, H, W) the clean image the step aims at, x_t + (1 − t)·u


@torch.no_grad()
def euler(
    model: VelocityFn,
    x: Tensor,
    ts: Sequence[float],
    *,
    generator: torch.Generator | None = None,
    callback: Callable[[FlowStep], None] | None = None,
) -> Tensor:
    """Integrate dx/dt = model(x, t) from ts[0] to ts[-1] with Euler steps (the course's sampler:
    x += u_θ(x, t)/T on a uniform grid); returns x at ts[-1].

    The ODE is deterministic: `generator` is taken, as every sampler takes one, and nothing is
    drawn from it. `callback(FlowStep)` sees every step's x_t and the clean image it aims at.
    """
    del generator  # the Euler ODE draws nothing
    times = [float(t) for t in ts]
    if len(times) < 2:
        raise ValueError(f"the time grid needs at least 2 values, got {len(times)}")
    if any(b <= a for a, b in zip(times, times[1:])):
        raise ValueError(f"the time grid must increase strictly, got {times}")
    x = x.float()
    for i, (t, t_next) in enumerate(zip(times, times[1:])):
        u = model(x, t).float()
        if callback is not None:
            callback(FlowStep(i=i, t=t, x_t=x, x1_hat=x + (1 - t) * u))
        x = x + (t_next - t) * u
    return x
