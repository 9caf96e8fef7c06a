"""Flow matching (diffusion/flow.py and the f sections): the path and its velocity by their
formulas, the Euler sampler against fields with known solutions, guidance composed as the DDPM's,
the time-only UNet's multiplicative setting, and a smoke training run whose loss falls."""

import json

import numpy as np
import pytest
import torch
from conftest import DATA_DIR, copy_project, gen

from generator.chapters.common import flow_training_loss
from generator.data import mnist, subset
from generator.diffusion import flow, samplers
from generator.models import train as trainer
from generator.models.denoiser import UNetVelocity
from generator.models.unet import UNet, UNetConfig


def test_interpolation_and_target_match_their_formulas():
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(4, 1, 5, 5, generator=g), torch.rand(4, 1, 5, 5, generator=g)
    t = torch.tensor([0.0, 0.25, 0.7, 1.0])
    x_t = flow.interpolate(x0, x1, t)
    for i in range(4):
        assert torch.allclose(x_t[i], (1 - t[i]) * x0[i] + t[i] * x1[i], atol=1e-6)
    assert torch.equal(x_t[0], x0[0]) and torch.allclose(x_t[3], x1[3])  # noise at 0, data at 1
    assert torch.allclose(flow.interpolate(x0, x1, 0.5), (x0 + x1) / 2, atol=1e-6)
    assert torch.equal(flow.velocity_target(x0, x1), x1 - x0)
    # the target is the path's derivative: a finite difference in t gives it back
    h = 1e-3
    slope = (flow.interpolate(x0, x1, 0.4 + h) - flow.interpolate(x0, x1, 0.4 - h)) / (2 * h)
    assert torch.allclose(slope, flow.velocity_target(x0, x1), atol=1e-3)


def test_euler_follows_a_straight_path_exactly_in_one_step():
    x0, x1 = torch.randn(3, 1, 4, 4), torch.rand(3, 1, 4, 4)
    u = flow.velocity_target(x0, x1)
    for num_ts in (1, 7):
        out = flow.euler(lambda x, t: u, x0, flow.uniform_times(num_ts))
        assert torch.allclose(out, x1, atol=1e-5)


@pytest.mark.parametrize("num_ts", [5, 10, 50, 100])
def test_euler_integrates_a_time_dependent_field_within_its_error(num_ts):
    """dx/dt = 2t from x(0) = x0 ends at x0 + 1; Euler on a uniform grid sums 2·t_i/N and falls
    short by exactly 1/N, its first-order error."""
    x0 = torch.randn(2, 1, 3, 3)
    out = flow.euler(lambda x, t: torch.full_like(x, 2 * t), x0, flow.uniform_times(num_ts))
    assert torch.allclose(out, x0 + 1 - 1 / num_ts, atol=1e-5)


def test_euler_on_exponential_growth_converges_at_first_order():
    """dx/dt = x from 1 ends at e; Euler gives (1 + 1/N)^N, whose error halves as N doubles."""
    x0 = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    errors = []
    for num_ts in (10, 20, 40, 80):
        out = flow.euler(lambda x, t: x, x0, flow.uniform_times(num_ts))
        assert abs(float(out) - (1 + 1 / num_ts) ** num_ts) < 1e-5
        errors.append(np.e - float(out))
    ratios = [a / b for a, b in zip(errors, errors[1:])]
    assert all(1.8 < r < 2.2 for r in ratios), ratios


def test_euler_calls_back_on_every_step_with_the_clean_estimate():
    x0, x1 = torch.randn(2, 1, 3, 3), torch.rand(2, 1, 3, 3)
    u = x1 - x0
    steps = []
    flow.euler(lambda x, t: u, x0, [0.0, 0.5, 1.0], callback=steps.append)
    assert [s.i for s in steps] == [0, 1] and [s.t for s in steps] == [0.0, 0.5]
    for s in steps:  # on a straight path every step aims at the same digit
        assert torch.allclose(s.x1_hat, x1, atol=1e-5)


def test_a_time_grid_that_does_not_increase_is_refused():
    x = torch.zeros(1, 1, 2, 2)
    for bad in ([0.0], [0.0, 0.5, 0.5], [1.0, 0.0]):
        with pytest.raises(ValueError):
            flow.euler(lambda x, t: x, x, bad)
    with pytest.raises(ValueError):
        flow.uniform_times(0)


class ClassVelocity:
    """u(x, t, c) = 0.1·x + t + w·c: a velocity field whose class matters, with the samplers'
    interface (as UNetVelocity)."""

    def __init__(self):
        self.w = torch.linspace(-1, 1, 10)
        self.batches = []

    def encode(self, prompts):
        return torch.stack([torch.zeros(10) if p == "" else torch.eye(10)[int(p)] for p in prompts])

    def __call__(self, x, t, cond):
        self.batches.append(x.shape[0])
        return 0.1 * x + t + (cond @ self.w)[:, None, None, None], None


def _class_velocity():
    return ClassVelocity()


def _sample(fn, seed=3, num_ts=4):
    x = torch.randn((10, 1, 28, 28), generator=torch.Generator().manual_seed(seed))
    return flow.euler(lambda x_t, t: fn(x_t, t)[0], x, flow.uniform_times(num_ts))


def test_cfg_with_gamma_one_is_the_conditional_velocity(one_thread):
    vel = _class_velocity()
    cond, uncond = vel.encode([str(d) for d in range(10)]), vel.encode([""])
    guided = _sample(samplers.classifier_free(vel, cond, uncond, 1.0))
    assert vel.batches == [20] * 4  # both velocities in one call per step
    plain = _sample(samplers.conditional(vel, cond))
    assert torch.allclose(guided, plain, atol=1e-5)
    # γ = 0 is the unconditional velocity, and γ = 5 is neither
    unconditional = _sample(samplers.conditional(vel, uncond))
    assert torch.allclose(_sample(samplers.classifier_free(vel, cond, uncond, 0.0)), unconditional)
    five = _sample(samplers.classifier_free(vel, cond, uncond, 5.0))
    assert not torch.allclose(five, plain, atol=1e-3)
    # the combination by hand at one point: u_∅ + γ(u_c − u_∅)
    x, t = torch.randn(10, 1, 28, 28), 0.3
    u_c, u_u = vel(x, t, cond)[0], vel(x, t, uncond.expand(10, -1))[0]
    by_hand = u_u + 5.0 * (u_c - u_u)
    assert torch.allclose(by_hand, 0.1 * x + t + 5.0 * vel.w[:, None, None, None], atol=1e-5)
    assert torch.allclose(
        samplers.classifier_free(vel, cond, uncond, 5.0)(x, t)[0], by_hand, atol=1e-4
    )


class TimeVelocity:
    """u(x, t) = a·x + t, unconditional, with the samplers' interface and no noise schedule (as a
    flow model has none)."""

    def __init__(self, a):
        self.a = a

    def __call__(self, x, t, cond):
        assert cond is None
        return self.a * x + t, None


def test_autoguidance_composes_flow_velocities_over_the_whole_path(one_thread):
    strong, weak = TimeVelocity(0.1), TimeVelocity(0.4)
    # w = 1 is the model alone (up to rounding); any w is u_weak + w(u − u_weak), at every t
    assert torch.allclose(
        _sample(samplers.autoguided(strong, weak, None, 1.0)),
        _sample(samplers.conditional(strong, None)),
        atol=1e-5,
    )
    x = torch.randn(10, 1, 28, 28)
    for t in (0.0, 0.5, 1.0):
        by_hand = (0.4 * x + t) + 2.0 * ((0.1 * x + t) - (0.4 * x + t))
        assert torch.allclose(samplers.autoguided(strong, weak, None, 2.0)(x, t)[0], by_hand)
    assert not torch.allclose(
        _sample(samplers.autoguided(strong, weak, None, 2.0)),
        _sample(samplers.conditional(strong, None)),
        atol=1e-3,
    )


def test_sampling_is_deterministic(one_thread):
    vel = _class_velocity()
    cond, uncond = vel.encode(["7"] * 10), vel.encode([""])
    fn = samplers.classifier_free(vel, cond, uncond, 5.0)
    assert torch.equal(_sample(fn), _sample(fn))
    assert not torch.equal(_sample(fn, seed=3), _sample(fn, seed=4))


def _time_blocks_give(model, value):
    """Make both time blocks output `value` for every t."""
    for block in (model.fc1_t, model.fc2_t):
        torch.nn.init.zeros_(block[-1].weight)
        torch.nn.init.constant_(block[-1].bias, value)


def test_multiplicative_time_scales_the_features_and_leaves_the_ddpm_unet_as_it_was():
    assert "time_modulation" not in UNetConfig(hidden=4, time_conditioned=True).to_dict()
    config = UNetConfig(hidden=4, time_conditioned=True, time_modulation="multiplicative")
    assert config.to_dict()["time_modulation"] == "multiplicative"
    torch.manual_seed(0)
    scaled = UNet(config).eval()
    shifted = UNet(UNetConfig(hidden=4, time_conditioned=True)).eval()
    shifted.load_state_dict(scaled.state_dict())
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([0.2, 0.9])
    with torch.no_grad():
        # features · 1 is features + 0: the two settings agree exactly there
        _time_blocks_give(scaled, 1.0)
        _time_blocks_give(shifted, 0.0)
        assert torch.allclose(scaled(x, t), shifted(x, t), atol=1e-6)
        # features · 2 is not features + 2
        _time_blocks_give(scaled, 2.0)
        _time_blocks_give(shifted, 2.0)
        assert not torch.allclose(scaled(x, t), shifted(x, t), atol=1e-3)
    for bad in (
        dict(time_conditioned=True, num_classes=10, time_modulation="multiplicative"),
        dict(time_conditioned=False, time_modulation="multiplicative"),
        dict(time_conditioned=True, time_modulation="sideways"),
    ):
        with pytest.raises(ValueError):
            UNetConfig(hidden=4, **bad)


@pytest.mark.parametrize("classes", [0, 10])
def test_the_smoke_training_loss_falls(tmp_path, one_thread, classes):
    images, labels = subset(*mnist(DATA_DIR, train=True), 512, 45)
    torch.manual_seed(45)
    config = (
        UNetConfig(hidden=8, time_conditioned=True, num_classes=10)
        if classes
        else UNetConfig(hidden=8, time_conditioned=True, time_modulation="multiplicative")
    )
    losses = trainer.train(
        UNet(config),
        images,
        labels,
        flow_training_loss(classes, 0.1),
        trainer.TrainConfig(2, 64, 1e-2),
        generator=torch.Generator().manual_seed(45),
        work_dir=tmp_path,
        device="cpu",
    )
    assert len(losses) == 16
    # the loss starts near E‖x1 − x0‖² (≈ 1.1 for MNIST) and must fall well below it
    assert np.mean(losses[:2]) > 0.8
    assert np.mean(losses[-4:]) < 0.75 * np.mean(losses[:2])


@pytest.mark.slow
def test_the_sections_follow_the_samples_contract(tmp_path):
    project = copy_project(tmp_path / "p")
    gen(project, "build", "f2.3", "f2.6", "b1.2.3", "--profile", "smoke")
    assets = project / "docs/assets"
    record = json.loads((assets / "f2.2/record.json").read_text())
    kept = sorted(
        set([1, max(1, round(record["params"]["epochs"] / 2)), record["params"]["epochs"]])
    )
    with np.load(assets / "f2.3/samples.npz") as npz:
        images, steps, method = npz["images"], npz["steps"], npz["method"]
    shown = json.loads((assets / "f2.3/record.json").read_text())["params"]["num_samples"]
    # the plain samples of each checkpoint, then the last one's autoguided by the first
    plain = [e for e in kept for _ in range(shown)]
    assert images.shape == (shown * (len(kept) + 1), 1, 28, 28) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 1
    assert steps.tolist() == plain + [kept[-1]] * shown
    assert method.tolist() == ["plain"] * len(plain) + ["autoguided"] * shown
    data = json.loads((assets / "f2.3/data.json").read_text())
    assert data["guide_epoch"] == kept[0] and set(data["digits"]) == {
        "real",
        "samples",
        "autoguided",
    }
    with np.load(assets / "f2.6/samples.npz") as npz:
        labels, steps = npz["labels"], npz["steps"]
    per = json.loads((assets / "f2.6/record.json").read_text())["params"]["per_digit"]
    for epoch in kept:
        assert sorted(labels[steps == epoch].tolist()) == sorted(list(range(10)) * per)
    metrics = json.loads((assets / "f2.6/record.json").read_text())["metrics"]
    for name in ("accuracy", "confident_right", "fid"):
        assert name in metrics
    assert (assets / "f2.3/sampling.gif").is_file() and (assets / "f2.6/sampling.gif").is_file()
    pure = json.loads((assets / "b1.2.3/record.json").read_text())["metrics"]
    assert pure["rms_to_mean"] >= 0 and pure["mean_digit_loss"] > 0


@pytest.mark.parametrize(
    "args, named",
    [
        (["--set", "f2.6.guidance=-1"], "f2.6.guidance"),
        (["--set", "f3.stride=300"], "f3.stride=300"),  # b2.2 has T = 300
        (["--set", "f2.6.num_ts=0"], "f2.6.num_ts"),
        (["--set", "f2.2.sample_epochs=[3]"], "f2.2.sample_epochs"),
        (["--set", "f2.3.guide_epoch=2"], "f2.3.guide_epoch=2"),  # the last: no weaker model
        (["--set", "f2.2.sample_epochs=[2]"], "f2.3.autoguidance=2"),  # nothing earlier kept
    ],
)
def test_bad_flow_parameters_are_one_line_before_anything_runs(tmp_path, args, named):
    project = copy_project(tmp_path / "p")
    result = gen(project, "build", "f", "--profile", "smoke", *args, check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and named in lines[0], result.stderr
    assert not (project / "docs").exists()


def test_the_unet_velocity_sees_t_itself_and_digit_prompts(one_thread):
    torch.manual_seed(0)
    model = UNet(UNetConfig(hidden=4, time_conditioned=True, num_classes=10)).eval()
    vel = UNetVelocity(model, "cpu")
    x, cond = torch.randn(3, 1, 28, 28), vel.encode(["1", "", "9"])
    assert cond[1].sum() == 0 and cond[0, 1] == 1 and cond[2, 9] == 1
    with torch.no_grad():
        expected = model(x, torch.full((3,), 0.3), cond)
    assert torch.equal(vel(x, 0.3, cond)[0], expected)


def test_logit_normal_t_stays_inside_the_path_and_a_bad_choice_is_refused():
    x1 = torch.rand(256, 1, 2, 2)
    seen = []

    def model(x_t, t):
        seen.append(t)
        return torch.zeros_like(x_t)

    g = torch.Generator().manual_seed(0)
    flow.flow_loss(model, x1, None, g, t_sampling="logit_normal")
    t = seen[0]
    assert 0 < t.min() and t.max() < 1
    assert abs(float(t.mean()) - 0.5) < 0.05 and float(t.std()) < 0.25  # uniform: 0.29
    with pytest.raises(ValueError):
        flow.flow_loss(model, x1, None, g, t_sampling="sideways")


def test_the_comparison_page_says_what_each_method_reached(built):
    """f3's "What to see" gives each method's last-epoch shares from its own rows, and the
    iterations each model trained for."""
    record = json.loads((built / "docs/assets/f3/record.json").read_text())
    p, m = record["params"], record["metrics"]
    text = " ".join((built / "docs/part-f.md").read_text().split())
    iterations = p["epochs"] * -(-p["train_subset"] // p["batch_size"])
    last = p["epochs"]

    def pct(name):
        return f"{100 * m[f'{name}_epoch_{last}']:.1f}%"

    assert (
        f"After {iterations} iterations each, flow matching's unconditional samples read "
        f"confidently as a digit {pct('confident_uncond_flow')} of the time against the DDPM's "
        f"{pct('confident_uncond_ddpm')}, and its guided ones as the digit asked for "
        f"{pct('confident_right_class_flow')} against {pct('confident_right_class_ddpm')}."
    ) in text
    assert "Profile `smoke` compares the start of training only" in text
