"""Part A's samplers: the step against diffusers, Gaussian data where the optimal model is known,
and the estimate builders."""

from __future__ import annotations

import math
import zlib

import pytest
import torch
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

from generator.diffusion.samplers import (
    CLEAN,
    Denoiser,
    anagram,
    autoguided,
    classifier_free,
    conditional,
    ddpm_timesteps,
    denoise_step,
    forward,
    hybrid,
    inpaint,
    iterative_denoise,
    leading_timesteps,
    one_step_estimate,
    sdedit,
    strided_timesteps,
)
from generator.diffusion.views import VIEWS, get_view

TIMESTEPS = strided_timesteps(990, 30)  # IF's course schedule: 990, 960, …, 0


def if_scheduler(variance_type: str) -> DDPMScheduler:
    """DeepFloyd IF's stage-I scheduler with thresholding and clipping off."""
    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="squaredcos_cap_v2",
        variance_type=variance_type,
        clip_sample=False,
        thresholding=False,
    )


pytestmark = pytest.mark.usefixtures(
    "one_thread"
)  # tiny tensors: a second thread only waits on a busy machine


@pytest.fixture(scope="module")
def abar() -> torch.Tensor:
    return if_scheduler("fixed_small").alphas_cumprod  # (1000,) float32


class Toy:
    """A deterministic stand-in denoiser, not equivariant to any view; counts its calls."""

    def __init__(self, alphas_cumprod: torch.Tensor, shape=(3, 8, 8), learned: bool = False):
        self.alphas_cumprod = alphas_cumprod
        self.shape = shape
        self.learned = learned
        self.variance_type = "learned_range" if learned else "fixed_small"
        self.calls = 0
        g = torch.Generator().manual_seed(7)
        self.pos = torch.randn(shape, generator=g)  # (C, H, W) position-dependent weights

    def encode(self, prompts: list[str]) -> torch.Tensor:
        out = []
        for p in prompts:
            if p == "":
                out.append(torch.zeros(self.shape))
            else:
                g = torch.Generator().manual_seed(zlib.crc32(p.encode()))
                out.append(torch.randn(self.shape, generator=g))
        return torch.stack(out)  # (B, C, H, W)

    def __call__(self, x_t, t, cond):
        self.calls += 1
        eps = 0.6 * x_t + 0.3 * cond + 0.2 * x_t * self.pos + 0.1 * math.sin(t / 100)
        v = torch.tanh(0.5 * x_t + cond + self.pos) if self.learned else None
        return eps, v


def toy_output(x: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A model output for the scheduler comparison: ε and v, both depending on x and t."""
    return 0.5 * x + 0.1 * math.cos(t / 50), torch.tanh(x + t / 1000) * 0.9


# ---------------------------------------------------------------- schedule and forward process


def test_strided_timesteps():
    ts = strided_timesteps(990, 30)
    assert ts[:3] == [990, 960, 930] and ts[-1] == 0 and len(ts) == 34
    assert strided_timesteps(299, 50) == [
        299,
        249,
        199,
        149,
        99,
        49,
        0,
    ]  # stop is always the last value
    with pytest.raises(ValueError):
        strided_timesteps(10, 0)


def test_part_bs_timesteps_walk_down_to_zero_with_any_stride():
    assert ddpm_timesteps(300) == [*range(299, -1, -1), CLEAN]  # Algorithm 2 of Ho et al.
    strided = ddpm_timesteps(300, 3)
    assert strided[:3] == [297, 294, 291] and strided[-2:] == [0, CLEAN] and len(strided) == 101
    assert ddpm_timesteps(10, 4) == [8, 4, 0, CLEAN]
    with pytest.raises(ValueError):
        ddpm_timesteps(300, 300)


def test_leading_timesteps_are_ddpmschedulers_and_refuse_a_count_that_does_not_divide_t():
    sched = DDPMScheduler(num_train_timesteps=300, timestep_spacing="leading")
    for n in (4, 10, 20, 50, 300):
        sched.set_timesteps(n)
        assert leading_timesteps(300, n) == sched.timesteps.tolist()
    assert leading_timesteps(300, 10)[:2] == [270, 240] and leading_timesteps(300, 300)[0] == 299
    for n in (7, 8, 301, 0):
        with pytest.raises(ValueError, match="divides T = 300"):
            leading_timesteps(300, n)


def test_the_step_takes_the_variance_the_model_declares():
    x, eps, noise = torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
    abar_t, abar_prev = torch.tensor(0.5), torch.tensor(0.8)
    beta = 1 - abar_t / abar_prev
    large, _ = denoise_step(x, eps, None, abar_t, abar_prev, noise, "fixed_large")
    small, _ = denoise_step(x, eps, None, abar_t, abar_prev, noise, "fixed_small")
    assert torch.allclose(large, beta.sqrt().expand_as(x))  # x_t = 0 and ε = 0: the noise alone
    assert torch.allclose(small, ((1 - abar_prev) / (1 - abar_t) * beta).sqrt().expand_as(x))
    with pytest.raises(ValueError, match="learned-range model returns v"):
        denoise_step(x, eps, None, abar_t, abar_prev, noise, "learned_range")
    with pytest.raises(ValueError, match="learned-range model returns v"):
        denoise_step(x, eps, torch.zeros_like(x), abar_t, abar_prev, noise, "fixed_large")


def test_forward_is_the_closed_form(abar):
    x0 = torch.rand(2, 3, 8, 8) * 2 - 1
    x_t, eps = forward(x0, 500, abar, torch.Generator().manual_seed(3))
    assert torch.allclose(x_t, abar[500].sqrt() * x0 + (1 - abar[500]).sqrt() * eps)
    again, _ = forward(x0, 500, abar, torch.Generator().manual_seed(3))
    assert torch.equal(x_t, again)  # every draw from the explicit generator


def test_one_step_estimate_inverts_the_forward_process(abar):
    class Oracle(Toy):
        def __call__(self, x_t, t, cond):
            return self.eps, None

    x0 = torch.rand(2, 3, 8, 8) * 2 - 1
    x_t, eps = forward(x0, 750, abar, torch.Generator().manual_seed(0))
    oracle = Oracle(abar)
    oracle.eps = eps
    assert torch.allclose(one_step_estimate(oracle, x_t, 750, oracle.encode(["a"])), x0, atol=1e-5)
    assert isinstance(oracle, Denoiser)


# ---------------------------------------------------------------- the step against diffusers


@pytest.mark.parametrize("variance_type", ["fixed_small", "learned_range"])
def test_step_matches_diffusers_with_the_same_noise(variance_type):
    sched = if_scheduler(variance_type)
    sched.set_timesteps(timesteps=TIMESTEPS)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 8, generator=g)
    for t, t_prev in [(990, 960), (690, 660), (30, 0)]:
        eps, v = toy_output(x, t)
        out = (
            torch.cat([eps, v], dim=1) if variance_type == "learned_range" else eps
        )  # IF's 6 channels
        theirs = sched.step(out, t, x, generator=torch.Generator().manual_seed(t))
        noise = torch.randn(
            x.shape, generator=torch.Generator().manual_seed(t)
        )  # what step() draws
        v_ours = v if variance_type == "learned_range" else None
        x_prev, x0_hat = denoise_step(
            x,
            eps,
            v_ours,
            sched.alphas_cumprod[t],
            sched.alphas_cumprod[t_prev],
            noise,
            variance_type,
        )
        assert torch.allclose(x_prev, theirs.prev_sample, atol=1e-5), (variance_type, t)
        assert torch.allclose(x0_hat, theirs.pred_original_sample, atol=1e-5)


@pytest.mark.parametrize("variance_type", ["fixed_small", "learned_range"])
def test_loop_matches_diffusers_over_the_strided_schedule(variance_type):
    """The whole course loop (33 steps, 990 → 0) is DDPMScheduler.step over the same list with
    the same generator."""
    sched = if_scheduler(variance_type)
    sched.set_timesteps(timesteps=TIMESTEPS)
    learned = variance_type == "learned_range"
    x_start = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))

    x, g = x_start.clone(), torch.Generator().manual_seed(2)
    for t in TIMESTEPS[:-1]:
        eps, v = toy_output(x, t)
        x = sched.step(
            torch.cat([eps, v], dim=1) if learned else eps, t, x, generator=g
        ).prev_sample

    def eps_fn(x_t, t):
        eps, v = toy_output(x_t, t)
        return eps, v if learned else None

    steps = []
    ours = iterative_denoise(
        eps_fn,
        x_start,
        TIMESTEPS,
        sched.alphas_cumprod,
        generator=torch.Generator().manual_seed(2),
        variance_type=variance_type,
        callback=steps.append,
    )
    assert [s.t for s in steps] == TIMESTEPS[:-1]
    assert torch.allclose(ours, x, atol=1e-5)


# ---------------------------------------------------------------- Gaussian data: the optimal model
# is known

MU, S = 0.3, 0.5


def gaussian_eps(abar: torch.Tensor, t: int, x_t: torch.Tensor) -> torch.Tensor:
    """E[ε | x_t] for data N(MU, S²) per pixel."""
    a = abar[t].double()
    return ((x_t.double() - a.sqrt() * MU) * (1 - a).sqrt() / (a * S * S + 1 - a)).float()


def sampler_moments(abar: torch.Tensor, timesteps: list[int]) -> tuple[float, float]:
    """Mean and variance of the strided sampler's output with variance β̃, by the exact linear
    recursion."""
    m, var = 0.0, 1.0
    for t, tp in zip(timesteps, timesteps[1:]):
        a_t, a_p = abar[t].item(), abar[tp].item()
        k = math.sqrt(1 - a_t) / (a_t * S * S + 1 - a_t)  # ε̂ = k·(x − √ᾱ_t·μ)
        gain = (1 - math.sqrt(1 - a_t) * k) / math.sqrt(a_t)  # x̂0 = gain·x + shift
        shift = k * math.sqrt(1 - a_t) * MU
        beta = 1 - a_t / a_p
        c0, c1 = math.sqrt(a_p) * beta / (1 - a_t), math.sqrt(a_t / a_p) * (1 - a_p) / (1 - a_t)
        m = c0 * (gain * m + shift) + c1 * m
        var = (c0 * gain + c1) ** 2 * var + (1 - a_p) / (1 - a_t) * beta
    return m, var


def test_gaussian_data_with_the_optimal_learned_variance(abar):
    """With the optimal ε and the optimal v (the exact reverse variance, inside [β̃, β]), samples
    have the data's moments.

    4096 samples of 1×4×4: Monte Carlo standard errors 0.002 (mean) and 0.0014 (variance); tolerance
    0.01.
    """
    nxt = dict(zip(TIMESTEPS, TIMESTEPS[1:]))

    def eps_fn(x_t, t):
        tp = nxt[t]
        a_t, a_p = abar[t].double(), abar[tp].double()
        beta = 1 - a_t / a_p
        beta_tilde = (1 - a_p) / (1 - a_t) * beta
        c0 = a_p.sqrt() * beta / (1 - a_t)
        var_x0 = S * S * (1 - a_t) / (a_t * S * S + 1 - a_t)  # Var(x0 | x_t)
        best = beta_tilde + c0**2 * var_x0  # Var(x_t′ | x_t) of the true reverse process
        frac = (best.log() - beta_tilde.log()) / (beta.log() - beta_tilde.log())
        assert 0 <= frac <= 1
        return gaussian_eps(abar, t, x_t), torch.full_like(x_t, float(2 * frac - 1))

    last = []
    x = torch.randn(4096, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    out = iterative_denoise(
        eps_fn,
        x,
        TIMESTEPS,
        abar,
        generator=torch.Generator().manual_seed(1),
        variance_type="learned_range",
        callback=last.append,
    )
    assert abs(out.mean().item() - MU) < 0.01
    assert abs(out.var().item() - S * S) < 0.01
    # what comes back at t′ = 0 is the clean estimate: the last x̂0 plus that step's small noise (√β
    # ≈ 0.06)
    assert (out - last[-1].x0_hat).std().item() < math.sqrt(1 - abar[30] / abar[0])


def test_gaussian_data_with_the_fixed_posterior_variance(abar):
    """With β̃ the mean is right and the variance is the recursion's 0.207 (< 0.25: β̃ is too
    small for strided steps)."""
    m_exact, var_exact = sampler_moments(abar, TIMESTEPS)
    assert abs(m_exact - MU) < 1e-3 and var_exact < S * S - 0.03

    x = torch.randn(4096, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    out = iterative_denoise(
        lambda x_t, t: (gaussian_eps(abar, t, x_t), None),
        x,
        TIMESTEPS,
        abar,
        generator=torch.Generator().manual_seed(1),
        variance_type="fixed_small",
    )
    assert abs(out.mean().item() - MU) < 0.01
    assert abs(out.var().item() - var_exact) < 0.01


# ---------------------------------------------------------------- SDEdit and inpainting


def test_sdedit_starts_at_i_start_and_checks_it(abar):
    toy = Toy(abar)
    steps = []
    x0 = torch.rand(1, 3, 8, 8) * 2 - 1
    out = sdedit(
        conditional(toy, toy.encode(["a"])),
        x0,
        TIMESTEPS,
        20,
        abar,
        generator=torch.Generator(),
        variance_type=toy.variance_type,
        callback=steps.append,
    )
    assert out.shape == x0.shape and [s.t for s in steps] == TIMESTEPS[20:-1]
    for bad in (-1, len(TIMESTEPS) - 1):
        with pytest.raises(ValueError, match=r"i_start must be in 0\.\.32"):
            sdedit(
                conditional(toy, toy.encode(["a"])),
                x0,
                TIMESTEPS,
                bad,
                abar,
                generator=torch.Generator(),
                variance_type=toy.variance_type,
            )


def test_inpainting_keeps_the_original_outside_the_mask(abar):
    toy = Toy(abar, learned=True)
    x_orig = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(4)) * 2 - 1
    mask = torch.zeros(8, 8)
    mask[:3, 2:6] = 1  # new content at the top
    eps_fn = classifier_free(toy, toy.encode(["a"]), toy.encode([""]), 7.0)
    out = inpaint(
        eps_fn,
        x_orig,
        mask,
        TIMESTEPS,
        abar,
        generator=torch.Generator().manual_seed(5),
        variance_type=toy.variance_type,
    )
    keep = (mask == 0).expand_as(x_orig)
    assert torch.equal(out[keep], x_orig[keep])
    assert not torch.allclose(out[~keep], x_orig[~keep], atol=1e-2)  # and something new inside it


def test_inpainting_rejects_a_mask_of_the_wrong_size(abar):
    toy = Toy(abar)
    with pytest.raises(ValueError, match="mask"):
        inpaint(
            conditional(toy, toy.encode(["a"])),
            torch.zeros(1, 3, 8, 8),
            torch.ones(7, 8),
            TIMESTEPS,
            abar,
            generator=torch.Generator(),
            variance_type=toy.variance_type,
        )


# ---------------------------------------------------------------- views


@pytest.mark.parametrize("name", list(VIEWS))
def test_every_view_is_invertible(name):
    view = get_view(name)
    x = torch.randn(2, 3, 6, 6)
    assert torch.equal(view.inverse(view.apply(x)), x)
    assert torch.equal(view.apply(view.inverse(x)), x)
    if name != "identity":
        assert not torch.equal(view.apply(x), x)


def test_views_do_what_their_names_say():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])[None, None]  # 1 2 / 3 4
    expected = {
        "flip": [[3, 4], [1, 2]],
        "rot180": [[4, 3], [2, 1]],
        "rot90cw": [[3, 1], [4, 2]],
        "rot90ccw": [[2, 4], [1, 3]],
        "transpose": [[1, 3], [2, 4]],
        "negate": [[-1, -2], [-3, -4]],
    }
    for name, want in expected.items():
        assert get_view(name).apply(x)[0, 0].tolist() == want, name
    assert torch.equal(get_view("negate").inverse_variance(x), x)  # a variance keeps its sign


def test_unknown_view_lists_the_valid_ones():
    with pytest.raises(ValueError, match="flip.*rot180"):
        get_view("mirror")


# ---------------------------------------------------------------- noise estimates


def test_cfg_scale_one_is_the_conditional_estimate_in_one_call(abar):
    toy = Toy(abar, learned=True)
    cond, uncond = toy.encode(["a photo"]), toy.encode([""])
    x = torch.randn(3, 3, 8, 8)
    eps_c, v_c = conditional(toy, cond)(x, 500)
    eps, v = classifier_free(toy, cond, uncond, 1.0)(x, 500)
    assert torch.allclose(eps, eps_c, atol=1e-6) and torch.equal(
        v, v_c
    )  # variance from the conditional pass
    eps7, _ = classifier_free(toy, cond, uncond, 7.0)(x, 500)
    eps_u, _ = conditional(toy, uncond)(x, 500)
    assert torch.allclose(eps7, eps_u + 7 * (eps_c - eps_u), atol=1e-5)

    toy.calls = 0
    iterative_denoise(
        classifier_free(toy, cond, uncond, 7.0),
        x,
        TIMESTEPS,
        abar,
        i_start=10,
        generator=torch.Generator(),
        variance_type=toy.variance_type,
    )
    assert toy.calls == len(TIMESTEPS) - 1 - 10  # one batched call per step


class Weaker(Toy):
    """The toy with a different, larger error: the "weaker model" of autoguidance."""

    def __call__(self, x_t, t, cond):
        eps, v = super().__call__(x_t, t, cond)
        return 1.5 * eps + 0.2, v


def test_autoguidance_steps_away_from_the_weaker_model_inside_its_interval_only(abar):
    strong, weak = Toy(abar, learned=True), Weaker(abar)
    cond = strong.encode([""])
    x = torch.randn(3, 3, 8, 8)
    eps_s, v_s = conditional(strong, cond)(x, 500)
    eps_w, _ = conditional(weak, cond)(x, 500)
    eps, v = autoguided(strong, weak, cond, 3.0, (0.2, 0.8))(x, 500)  # t/T = 0.5: guided
    assert torch.allclose(eps, eps_w + 3.0 * (eps_s - eps_w), atol=1e-5) and torch.equal(v, v_s)
    assert torch.allclose(autoguided(strong, weak, cond, 1.0)(x, 500)[0], eps_s, atol=1e-6)
    # outside the interval (t/T = 0.9 and 0.1): the model alone, and the weak model is not asked
    weak.calls = 0
    for t in (900, 100):
        assert torch.equal(
            autoguided(strong, weak, cond, 3.0, (0.2, 0.8))(x, t)[0],
            conditional(strong, cond)(x, t)[0],
        )
    assert weak.calls == 0


def test_anagram_follows_the_write_up_and_is_symmetric(abar):
    toy = Toy(abar, learned=True)
    p1, p2, u = toy.encode(["an old man"]), toy.encode(["a campfire"]), toy.encode([""])
    x = torch.randn(2, 3, 8, 8)
    flip = get_view("flip")
    cfg1, cfg2 = classifier_free(toy, p1, u, 7.0), classifier_free(toy, p2, u, 7.0)

    toy.calls = 0
    eps, v = anagram(toy, [p1, p2], ["identity", "flip"], u, 7.0)(x, 500)
    assert toy.calls == 1  # both views, conditional and unconditional, in one call
    want = (
        cfg1(x, 500)[0] + flip.inverse(cfg2(flip.apply(x), 500)[0])
    ) / 2  # ε1 = CFG(x, p1), ε2 = flip(CFG(flip x, p2))
    assert torch.allclose(eps, want, atol=1e-5)
    assert torch.allclose(
        v, (cfg1(x, 500)[1] + flip.inverse(cfg2(flip.apply(x), 500)[1])) / 2, atol=1e-6
    )

    # swapping the roles: the order of the pairs does not matter ...
    swapped, _ = anagram(toy, [p2, p1], ["flip", "identity"], u, 7.0)(x, 500)
    assert torch.allclose(swapped, eps, atol=1e-5)
    # ... and p2 upright with p1 upside down is the same picture turned over
    other, _ = anagram(toy, [p2, p1], ["identity", "flip"], u, 7.0)(flip.apply(x), 500)
    assert torch.allclose(flip.inverse(other), eps, atol=1e-5)
    # it is not trivially symmetric: the two prompts do give different estimates
    assert not torch.allclose(cfg1(x, 500)[0], flip.inverse(cfg2(flip.apply(x), 500)[0]), atol=1e-2)


def test_three_view_anagram_samples_in_one_call_per_step(abar):
    toy = Toy(abar)
    conds = toy.encode(["a", "b", "c"]).chunk(3)
    eps_fn = anagram(toy, conds, ["identity", "rot90cw", "negate"], toy.encode([""]), 7.0)
    out = iterative_denoise(
        eps_fn,
        torch.randn(2, 3, 8, 8),
        TIMESTEPS,
        abar,
        i_start=28,
        generator=torch.Generator(),
        variance_type=toy.variance_type,
    )
    assert out.shape == (2, 3, 8, 8) and torch.isfinite(out).all()
    assert toy.calls == len(TIMESTEPS) - 1 - 28
    with pytest.raises(ValueError, match="one condition per view"):
        anagram(toy, conds[:2], ["identity", "flip", "rot180"], toy.encode([""]), 7.0)


def test_hybrid_with_identical_prompts_is_plain_cfg(abar):
    toy = Toy(abar, shape=(3, 16, 16), learned=True)
    p, u = toy.encode(["a skull"]), toy.encode([""])
    x = torch.randn(2, 3, 16, 16)
    toy.calls = 0
    eps, v = hybrid(toy, p, p, u, 7.0, kernel_size=9, sigma=2.0)(x, 500)
    assert toy.calls == 1
    want, v_want = classifier_free(toy, p, u, 7.0)(x, 500)
    assert torch.allclose(eps, want, atol=1e-5) and torch.allclose(v, v_want, atol=1e-6)

    # with two prompts: low frequencies from the first, high from the second
    q = toy.encode(["waterfalls"])
    mixed, _ = hybrid(toy, p, q, u, 7.0, kernel_size=9, sigma=2.0)(x, 500)
    assert not torch.allclose(mixed, want, atol=1e-3)
    from torchvision.transforms.functional import gaussian_blur

    lp = lambda e: gaussian_blur(e, [9, 9], [2.0, 2.0])  # noqa: E731
    e1, e2 = want, classifier_free(toy, q, u, 7.0)(x, 500)[0]
    assert torch.allclose(mixed, lp(e1) + e2 - lp(e2), atol=1e-5)
