"""DDPM math: the step by hand, against diffusers, and sampling on Gaussian data where the
optimal model is known."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from generator.diffusion.ddpm import (
    Schedule,
    StepInfo,
    ddpm_loss,
    ddpm_step,
    learned_range_variance,
    linear_schedule,
    posterior_variance,
    predict_start_from_noise,
    q_sample,
)
from generator.diffusion.samplers import classifier_free, conditional, ddpm_sample
from generator.models.denoiser import UNetDenoiser
from generator.models.unet import one_hot

T = 300


pytestmark = pytest.mark.usefixtures(
    "one_thread"
)  # small tensors: one thread is as fast, and immune to load


@pytest.fixture(scope="module")
def schedule() -> Schedule:
    return linear_schedule(T)


def gaussian_eps(schedule: Schedule, mu: float, s: float):
    """The optimal ε-predictor for data N(mu, s²) per pixel: E[ε | x_t], linear in x_t."""

    def model(x, t_in, c=None):
        t = torch.round(t_in * schedule.num_timesteps).long()  # (B,)
        abar = schedule.alphas_cumprod[t].reshape(-1, *([1] * (x.ndim - 1)))
        return (x - abar.sqrt() * mu) * (1 - abar).sqrt() / (abar * s * s + 1 - abar)

    return model


# ---------------------------------------------------------------- schedule and forward process


def test_linear_schedule(schedule):
    assert schedule.betas.shape == (T,) and schedule.betas.dtype == torch.float32
    assert schedule.betas[0].item() == pytest.approx(1e-4)
    assert schedule.betas[-1].item() == pytest.approx(0.02)
    assert torch.allclose(schedule.alphas, 1 - schedule.betas)
    assert schedule.alphas_cumprod[0].item() == pytest.approx(1 - 1e-4)
    expected = np.cumprod(1 - np.linspace(1e-4, 0.02, T))
    assert np.allclose(schedule.alphas_cumprod.numpy(), expected, rtol=1e-5)


def test_q_sample_and_its_inverse(schedule):
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 1, 5, 5, generator=g)
    noise = torch.randn(4, 1, 5, 5, generator=g)
    t = torch.tensor([0, 10, 150, 299])
    x_t = q_sample(x0, t, noise, schedule.alphas_cumprod)
    for b in range(4):
        abar = schedule.alphas_cumprod[t[b]]
        assert torch.allclose(x_t[b], abar.sqrt() * x0[b] + (1 - abar).sqrt() * noise[b])
    assert torch.allclose(
        predict_start_from_noise(x_t, t, noise, schedule.alphas_cumprod), x0, atol=1e-5
    )
    one = predict_start_from_noise(x_t[2:3], 150, noise[2:3], schedule.alphas_cumprod)  # an int t
    assert torch.allclose(one, x0[2:3], atol=1e-5)


# ---------------------------------------------------------------- the step


def test_ddpm_step_by_hand():
    """Ho et al. 2020 eq. 7 with x̂0 from eq. 15, computed with python floats (SECTIONS.md b2.3)."""
    x_t, eps, noise = [1.0, -2.0, 0.25], [0.5, 0.1, -1.5], [0.3, -0.7, 2.0]
    abar_t, abar_prev = 0.5, 0.8
    alpha, beta = abar_t / abar_prev, 1 - abar_t / abar_prev
    x0 = [(x - math.sqrt(1 - abar_t) * e) / math.sqrt(abar_t) for x, e in zip(x_t, eps)]
    want = [
        math.sqrt(abar_prev) * beta / (1 - abar_t) * a
        + math.sqrt(alpha) * (1 - abar_prev) / (1 - abar_t) * x
        + math.sqrt(beta) * z
        for a, x, z in zip(x0, x_t, noise)
    ]
    as_t = lambda v: torch.tensor(v, dtype=torch.float64).reshape(1, 1, 1, 3)  # noqa: E731
    for a_t, a_p in [(abar_t, abar_prev), (torch.tensor(abar_t), torch.tensor(abar_prev))]:
        x_prev, x0_hat = ddpm_step(as_t(x_t), as_t(eps), a_t, a_p, as_t(noise))
        assert torch.allclose(x0_hat, as_t(x0), atol=1e-12)
        assert torch.allclose(x_prev, as_t(want), atol=1e-7)
    # an explicit variance replaces β_t
    x_prev, _ = ddpm_step(as_t(x_t), as_t(eps), abar_t, abar_prev, as_t(noise), variance=0.04)
    assert torch.allclose(
        x_prev, as_t(want) + 0.2 * as_t(noise) - math.sqrt(beta) * as_t(noise), atol=1e-7
    )


def test_last_step_returns_x0_hat():
    """At t = 0, ᾱ_prev = 1: the x_t coefficient vanishes and the step is x̂0 itself."""
    g = torch.Generator().manual_seed(1)
    x, eps = torch.randn(2, 1, 4, 4, generator=g), torch.randn(2, 1, 4, 4, generator=g)
    x_prev, x0_hat = ddpm_step(x, eps, 0.9999, 1.0, torch.zeros_like(x))
    assert torch.allclose(x_prev, x0_hat, atol=1e-5)


def _diffusers_scheduler(betas, timesteps=None, variance_type="fixed_large"):
    diffusers = pytest.importorskip("diffusers")
    scheduler = diffusers.DDPMScheduler(
        num_train_timesteps=len(betas),
        trained_betas=np.asarray(betas, dtype=np.float32),
        variance_type=variance_type,
        clip_sample=False,
        thresholding=False,
        prediction_type="epsilon",
    )
    if timesteps is None:
        scheduler.set_timesteps(
            num_inference_steps=len(betas)
        )  # "leading" spacing, ratio 1: prev_t = t − 1
    else:
        scheduler.set_timesteps(timesteps=timesteps)
    return scheduler


@pytest.mark.parametrize("t", [299, 200, 57, 1, 0])
def test_ddpm_step_matches_diffusers(schedule, t):
    scheduler = _diffusers_scheduler(schedule.betas.numpy())
    assert int(scheduler.previous_timestep(t)) == t - 1
    g = torch.Generator().manual_seed(t)
    x = torch.randn(3, 1, 28, 28, generator=g)
    eps = torch.randn(3, 1, 28, 28, generator=g)
    out = scheduler.step(eps, t, x, generator=torch.Generator().manual_seed(123))
    # diffusers draws its noise with torch.randn on the generator's device, only for t > 0
    noise = (
        torch.randn(x.shape, generator=torch.Generator().manual_seed(123))
        if t > 0
        else torch.zeros_like(x)
    )
    abar_prev = schedule.alphas_cumprod[t - 1] if t > 0 else 1.0
    x_prev, x0_hat = ddpm_step(x, eps, schedule.alphas_cumprod[t], abar_prev, noise)
    assert torch.allclose(x0_hat, out.pred_original_sample, atol=1e-5)
    assert torch.allclose(x_prev, out.prev_sample, atol=1e-5)


def test_strided_step_with_learned_variance_matches_diffusers():
    """Part A's case: 1000 cosine steps run with stride 30, variance learned between β̃_t and
    β_t."""
    diffusers = pytest.importorskip("diffusers")
    betas = diffusers.DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2"
    ).betas
    timesteps = list(range(990, -1, -30))
    scheduler = _diffusers_scheduler(betas.numpy(), timesteps, variance_type="learned_range")
    abar = scheduler.alphas_cumprod
    for k, t in enumerate([990, 690, 30, 0]):
        g = torch.Generator().manual_seed(k)
        x = torch.randn(2, 3, 8, 8, generator=g)
        eps = torch.randn(2, 3, 8, 8, generator=g)
        v = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1  # the model's variance output in [−1, 1]
        out = scheduler.step(
            torch.cat([eps, v], dim=1), t, x, generator=torch.Generator().manual_seed(7)
        )
        prev = timesteps[timesteps.index(t) + 1] if t > 0 else -1
        abar_prev = abar[prev] if prev >= 0 else 1.0
        noise = (
            torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
            if t > 0
            else torch.zeros_like(x)
        )
        variance = learned_range_variance(v, abar[t], abar_prev)
        x_prev, x0_hat = ddpm_step(x, eps, abar[t], abar_prev, noise, variance=variance)
        assert torch.allclose(x0_hat, out.pred_original_sample, atol=1e-5)
        assert torch.allclose(x_prev, out.prev_sample, atol=1e-5)


def test_posterior_variance_matches_diffusers(schedule):
    scheduler = _diffusers_scheduler(schedule.betas.numpy(), variance_type="fixed_small")
    for t in [299, 100, 1]:
        want = scheduler._get_variance(t)
        got = posterior_variance(schedule.alphas_cumprod[t], schedule.alphas_cumprod[t - 1])
        assert torch.allclose(got, want, rtol=1e-5)


# ---------------------------------------------------------------- the loss


def test_ddpm_loss_is_zero_for_the_true_noise(schedule):
    """A model that knows x0 can recover ε exactly from (x_t, t/T): the loss is 0 only if both
    are consistent."""
    x0 = torch.rand(1, 1, 6, 6, generator=torch.Generator().manual_seed(0)).expand(64, 1, 6, 6)
    seen = {}

    def oracle(x_t, t_in, c=None):
        seen["t"], seen["c"] = t_in, c
        t = torch.round(t_in * T).long()
        abar = schedule.alphas_cumprod[t].reshape(-1, 1, 1, 1)
        return (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()

    loss = ddpm_loss(oracle, x0, None, torch.Generator().manual_seed(1), schedule)
    assert loss.item() < 1e-8 and seen["c"] is None
    assert seen["t"].min() >= 0 and seen["t"].max() <= (T - 1) / T
    # a model that predicts 0 pays E[ε²] = 1
    zero = ddpm_loss(
        lambda x, t: torch.zeros_like(x), x0, None, torch.Generator().manual_seed(1), schedule
    )
    assert zero.item() == pytest.approx(1.0, abs=0.15)


def test_min_snr_weighting_turns_down_the_nearly_clean_timesteps(schedule):
    x0 = torch.zeros(4096, 1, 2, 2)

    def zero(x, t):
        return torch.zeros_like(x)

    def loss(gamma):
        g = torch.Generator().manual_seed(3)
        return ddpm_loss(zero, x0, None, g, schedule, min_snr_gamma=gamma).item()

    snr = schedule.alphas_cumprod / (1 - schedule.alphas_cumprod)
    # γ above every SNR weights nothing down: the plain loss, E[ε²] = 1
    assert loss(float(snr.max()) + 1) == pytest.approx(loss(0.0), rel=1e-6)
    # γ = 5: every t with SNR_t > 5 weighs 5/SNR_t; the mean weight is E_t[min(SNR_t, 5)/SNR_t]
    weight = (snr.clamp(max=5.0) / snr).mean().item()
    assert weight < 0.9 and loss(5.0) == pytest.approx(weight * loss(0.0), rel=0.1)


def test_ddpm_loss_drops_classes(schedule):
    seen = []

    def model(x_t, t_in, c):
        seen.append(c)
        return torch.zeros_like(x_t)

    labels = torch.arange(4000) % 10
    x0 = torch.zeros(4000, 1, 2, 2)
    ddpm_loss(
        model, x0, one_hot(labels, 10), torch.Generator().manual_seed(2), schedule, p_uncond=0.1
    )
    c = seen[0]
    assert c.shape == (4000, 10)
    kept = c.sum(1) == 1
    assert torch.all(c.sum(1)[~kept] == 0)  # a dropped row is all zero
    assert torch.equal(c[kept].argmax(1), labels[kept])
    assert 1 - kept.float().mean().item() == pytest.approx(0.1, abs=0.02)


# ---------------------------------------------------------------- sampling


class Toy:
    """A model with a Part B UNet's signature and config, for `UNetDenoiser`."""

    def __init__(self, fn, num_classes: int = 0):
        self.fn = fn
        self.config = SimpleNamespace(num_classes=num_classes)

    def __call__(self, x, t_in, c=None):
        return self.fn(x, t_in) if c is None else self.fn(x, t_in, c)


def sample(model, shape, schedule, *, seed, labels=None, guidance_scale=None, callback=None):
    """Part B's sampling as b2.3 and b2.5 compose it: `ddpm_sample` over a `UNetDenoiser`, with
    or without CFG."""
    den = UNetDenoiser(Toy(model, 10 if labels is not None else 0), schedule.alphas_cumprod, "cpu")
    if labels is None:
        eps_fn = conditional(den, den.encode([""]))
    else:
        cond = den.encode([str(int(d)) for d in labels])
        eps_fn = (
            conditional(den, cond)
            if guidance_scale is None
            else classifier_free(den, cond, den.encode([""]), guidance_scale)
        )
    g = torch.Generator().manual_seed(seed)
    return ddpm_sample(
        eps_fn,
        torch.randn(shape, generator=g),
        schedule.alphas_cumprod,
        generator=g,
        variance_type=den.variance_type,
        callback=callback,
    )


def _chain_moments(schedule: Schedule, mu: float, s: float) -> tuple[float, float]:
    """The exact mean and std of `sample`'s output for N(mu, s²) data with the optimal ε (float64
    recursion)."""
    abar = schedule.alphas_cumprod.double().numpy()
    m, v = 0.0, 1.0  # x_{T−1} ~ N(0, 1)
    for t in range(len(abar) - 1, -1, -1):
        a_t, a_p = abar[t], (abar[t - 1] if t > 0 else 1.0)
        k = math.sqrt(1 - a_t) / (a_t * s * s + 1 - a_t)  # ε* = k·(x − √ᾱ_t·mu)
        # x̂0 = P·x + Q
        P = (1 - math.sqrt(1 - a_t) * k) / math.sqrt(a_t)
        Q = math.sqrt(1 - a_t) * k * math.sqrt(a_t) * mu / math.sqrt(a_t)
        beta = 1 - a_t / a_p
        A = math.sqrt(a_p) * beta / (1 - a_t) * P + math.sqrt(1 - beta) * (1 - a_p) / (1 - a_t)
        b = math.sqrt(a_p) * beta / (1 - a_t) * Q
        m, v = A * m + b, A * A * v + (beta if t > 0 else 0.0)
    return m, math.sqrt(v)


@pytest.mark.parametrize("mu, s", [(0.3, 0.2), (-0.5, 1.0)])
def test_sample_reproduces_gaussian_data(schedule, mu, s):
    x = sample(gaussian_eps(schedule, mu, s), (4096, 1, 6, 6), schedule, seed=0)
    mean, std = x.mean().item(), x.std().item()
    # the data's moments, up to the prior mismatch at t = T−1 and the choice σ_t² = β_t
    assert mean == pytest.approx(mu, abs=0.05)
    assert std == pytest.approx(s, rel=0.05)
    # the chain's exact moments: 147,456 values pin the std to ~0.2%, the mean to ~s/400
    want_mean, want_std = _chain_moments(schedule, mu, s)
    assert mean == pytest.approx(want_mean, abs=5 * s / 384)
    assert std == pytest.approx(want_std, rel=0.01)


def test_sample_visits_every_timestep_once(schedule):
    seen, steps = [], []

    def model(x, t_in):
        seen.append(t_in[0].item())
        return torch.zeros_like(x)

    sample(model, (2, 1, 3, 3), schedule, seed=0, callback=steps.append)
    assert seen == pytest.approx([t / T for t in range(T - 1, -1, -1)])
    assert [s.t for s in steps] == list(range(T - 1, -1, -1)) and [s.i for s in steps] == list(
        range(T)
    )
    assert isinstance(steps[0], StepInfo) and steps[0].x_t.shape == (2, 1, 3, 3)


def test_sample_ends_on_the_last_x0_hat(schedule):
    """The step from t = 0 goes to the clean image: ᾱ_prev = 1 and no noise, so it returns x̂0
    exactly."""
    steps = []
    x = sample(lambda x, t: 0.5 * x, (2, 1, 3, 3), schedule, seed=0, callback=steps.append)
    assert steps[-1].t == 0 and not torch.allclose(steps[-1].x_t, steps[-1].x0_hat, atol=1e-4)
    assert torch.allclose(x, steps[-1].x0_hat, atol=1e-6)


def test_sample_is_reproducible(schedule):
    model = torch.nn.Conv2d(1, 1, 3, padding=1)
    wrapped = lambda x, t: model(x)  # noqa: E731
    a = sample(wrapped, (2, 1, 5, 5), schedule, seed=3)
    b = sample(wrapped, (2, 1, 5, 5), schedule, seed=3)
    assert torch.equal(a, b)
    assert not torch.equal(a, sample(wrapped, (2, 1, 5, 5), schedule, seed=4))


class ClassModel:
    """ε = 0.1·x + w_c (a constant per class; w = 0 for the all-zero 'no class'); counts calls."""

    def __init__(self):
        self.w = torch.linspace(-1, 1, 10)
        self.batches = []

    def __call__(self, x, t_in, c=None):
        self.batches.append(x.shape[0])
        shift = torch.zeros(x.shape[0]) if c is None else c @ self.w  # (B,)
        return 0.1 * x + shift[:, None, None, None]


def test_cfg_with_scale_one_is_the_conditional_model(schedule):
    labels = torch.tensor([0, 3, 9])
    run = lambda model, **kw: sample(model, (3, 1, 4, 4), schedule, seed=5, labels=labels, **kw)  # noqa: E731
    guided_model, plain_model = ClassModel(), ClassModel()
    guided = run(guided_model, guidance_scale=1.0)
    plain = run(plain_model)
    assert torch.allclose(guided, plain, atol=1e-5)
    assert guided_model.batches == [6] * T  # cond and uncond in one call per step
    assert plain_model.batches == [3] * T
    # γ = 0 is the unconditional model
    uncond = sample(ClassModel(), (3, 1, 4, 4), schedule, seed=5)
    assert torch.allclose(run(ClassModel(), guidance_scale=0.0), uncond, atol=1e-5)
    assert not torch.allclose(guided, uncond, atol=1e-2)


def test_cfg_first_step_by_hand(schedule):
    """ε = ε_u + γ(ε_c − ε_u) (Ho & Salimans 2022, eq. 6), read off the first x̂0."""
    labels, gamma = torch.tensor([1, 8]), 5.0
    steps = []
    sample(
        ClassModel(),
        (2, 1, 3, 3),
        schedule,
        seed=9,
        labels=labels,
        guidance_scale=gamma,
        callback=steps.append,
    )
    x = steps[0].x_t
    w = torch.linspace(-1, 1, 10)[labels][:, None, None, None]
    eps = 0.1 * x + gamma * w  # ε_u = 0.1·x, ε_c − ε_u = w_c
    abar = schedule.alphas_cumprod[T - 1]
    assert torch.allclose(steps[0].x0_hat, (x - (1 - abar).sqrt() * eps) / abar.sqrt(), atol=1e-5)


def test_a_trained_ddpm_loads_with_the_schedule_and_variance_its_weights_declare(tmp_path):
    """b2.2 and b2.4 save T, β and the variance beside the weights; `load_ddpm` needs nothing
    else."""
    from generator.backends.local_model import ddpm_metadata, load_ddpm
    from generator.models.train import save_model
    from generator.models.unet import UNet, UNetConfig

    model = UNet(UNetConfig(hidden=4, time_conditioned=True, num_classes=10))
    save_model(model, tmp_path / "ddpm.safetensors", **ddpm_metadata(50, 2e-4, 0.03, "fixed_large"))
    den = load_ddpm(tmp_path / "ddpm.safetensors", "cpu")
    assert torch.equal(den.alphas_cumprod, linear_schedule(50, 2e-4, 0.03).alphas_cumprod)
    assert den.variance_type == "fixed_large" and den.num_classes == 10
    x, c = torch.randn(2, 1, 28, 28), den.encode(["3", ""])
    assert torch.equal(den(x, 7, c)[0], model.eval()(x, torch.full((2,), 7 / 50), c))
    save_model(model, tmp_path / "plain.safetensors")  # weights without a schedule
    with pytest.raises(ValueError, match="no DDPM schedule"):
        load_ddpm(tmp_path / "plain.safetensors", "cpu")
