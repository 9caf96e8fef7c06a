"""Part B's fast paths give the plain loop's losses and samples, on tiny sizes on the CPU; `auto`
chooses each one and the choice is recorded. Speed itself is measured by `gen bench`, not here."""

from __future__ import annotations

import functools

import pytest
import torch
from conftest import REPO

from generator import bench_part_b as b
from generator.config import load
from generator.hardware import FAST_PATHS, choose_fast_path, cuda_available

T = 50
KINDS = ("single_step", "class")


def _losses(kind: str, **settings) -> list[float]:
    images, labels = b.batches(3, 16)
    return b.train_ours(b.build_model(kind, 8), images, labels, kind, 16, T, "cpu", **settings)


def _plain_losses(kind: str) -> list[float]:
    images, labels = b.batches(3, 16)
    return b.train_baseline(b.build_model(kind, 8), images, labels, kind, 16, T, "cpu")


@pytest.mark.parametrize("kind", KINDS)
def test_losses_read_once_an_epoch_are_the_plain_loops_per_step_readings(kind, one_thread):
    """Ours keeps each step's loss on the device and reads them after the epoch; the plain loop
    reads `.item()` every step."""
    ours, plain = _losses(kind), _plain_losses(kind)
    assert len(ours) == len(plain) == 3
    assert ours == pytest.approx(plain, rel=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_data_on_device_gives_the_same_losses(kind, one_thread):
    assert _losses(kind, data_on_device=True) == _losses(kind)


@pytest.mark.parametrize("kind", KINDS)
def test_channels_last_gives_the_plain_loops_losses(kind, one_thread):
    assert _losses(kind, channels_last=True) == pytest.approx(_plain_losses(kind), rel=1e-4)


def test_bf16_autocast_gives_the_plain_loops_losses_to_bf16s_precision(one_thread):
    ours, plain = _losses("class", precision="bf16"), _plain_losses("class")
    assert ours != plain  # it ran in bf16
    assert ours == pytest.approx(plain, rel=3e-2)


def test_compiled_unet_gives_the_plain_loops_losses(monkeypatch, one_thread):
    """The compile path: TorchDynamo captures the UNet, the loss runs through the compiled module
    and the uncompiled one is what trains and is saved. Inductor's code generation takes minutes
    on a CPU, so here the captured graphs run eagerly; on a GPU `gen bench` times the real one."""
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    torch._dynamo.reset()
    assert _losses("class", compile=True) == pytest.approx(_plain_losses("class"), rel=1e-5)


def _samples(kind: str, **settings) -> torch.Tensor:
    x = torch.randn((6, 1, 28, 28), generator=torch.Generator().manual_seed(3))
    model = b.build_model(kind, 8)
    return b.sample_ours(model, kind, x, b.sample_timesteps(T, 8), T, "cpu", **settings)


def _plain_samples(kind: str) -> torch.Tensor:
    x = torch.randn((6, 1, 28, 28), generator=torch.Generator().manual_seed(3))
    return b.sample_baseline(b.build_model(kind, 8), kind, x, b.sample_timesteps(T, 8), T, "cpu")


@pytest.mark.parametrize("kind", KINDS)
def test_sampling_at_fp32_is_the_plain_loop_and_channels_last_matches_it(kind, one_thread):
    plain = _plain_samples(kind)
    assert torch.allclose(_samples(kind), plain, atol=1e-4)
    fast = _samples(kind, channels_last=True)
    assert fast.is_contiguous()
    assert torch.allclose(fast, plain, atol=1e-4), (fast - plain).abs().max()


@pytest.mark.parametrize("kind", KINDS)
def test_sampling_in_bf16_autocast_stays_near_the_plain_loop(kind, one_thread):
    plain, ours = _plain_samples(kind), _samples(kind, precision="bf16")
    assert ours.dtype == torch.float32 and not torch.equal(ours, plain)  # it ran in bf16
    # bf16 keeps 8 bits of mantissa: each step's ε is off by about 0.4%, and the errors add up
    # over the steps; a wrong path (no guidance, another schedule) is off by far more.
    assert (ours - plain).abs().mean() < 0.05 * plain.abs().mean()


@pytest.mark.skipif(cuda_available(), reason="what auto picks on a machine without a GPU")
def test_auto_keeps_the_plain_paths_on_the_cpu_and_records_why(monkeypatch):
    monkeypatch.delenv("GEN_PRECISION", raising=False)
    for name in FAST_PATHS:
        value, why = choose_fast_path(name, "cpu")
        assert value == "off" and why.startswith("auto: ")
    config = load(REPO, "smoke")
    for sid in ("b1.2.1", "b2.2", "b2.4"):
        assert set(config.choices[sid]) == {"precision", *FAST_PATHS}
        assert all(getattr(config.params[sid], n) in ("on", "off") for n in FAST_PATHS)
    for owner in ("b2.3", "b2.5", "local"):
        assert set(config.choices[owner]) == {"precision", "channels_last"}


def test_sampling_follows_a_forced_precision_as_training_does(monkeypatch):
    monkeypatch.setenv("GEN_PRECISION", "bf16")
    config = load(REPO, "smoke")
    for owner in ("b2.2", "b2.3", "b2.5", "local"):
        assert config.params[owner].precision == "bf16"
        assert config.choices[owner]["precision"]["why"] == "auto: GEN_PRECISION=bf16"


def test_plain_settings_leave_the_keys_of_earlier_results(monkeypatch):
    """fp32 sampling and the paths off are how results were made before these settings existed:
    they leave a section's identity as it was; bf16 or a path on changes it."""
    monkeypatch.setenv("GEN_PRECISION", "fp32")
    config = load(REPO, "smoke")
    sampling, training = config.params["b2.5"], config.params["b2.4"]
    plain = sampling.model_copy(update={"channels_last": "off"}).identity()
    assert "precision" not in plain and "channels_last" not in plain
    assert sampling.model_copy(update={"precision": "bf16"}).identity()["precision"] == "bf16"
    plain_training = training.model_copy(
        update={"channels_last": "off", "compile": "off", "data_on_device": "on"}
    ).identity()
    assert plain_training["precision"] == "fp32"  # training always named its precision
    assert not {"channels_last", "compile", "data_on_device"} & set(plain_training)
    assert training.model_copy(update={"compile": "on"}).identity()["compile"] == "on"


def test_auto_compiles_where_gen_bench_measured_it_faster_on_this_gpu(monkeypatch):
    from generator import hardware

    monkeypatch.setattr(hardware, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H100 80GB HBM3")
    faster = {"gpu": "NVIDIA H100 80GB HBM3", "train": {"compile": {"time": 1.4, "class": 1.2}}}
    value, why = choose_fast_path("compile", "cuda", faster)
    assert value == "on" and "1.20×" in why and "H100" in why
    slower = {**faster, "train": {"compile": {"time": 1.4, "class": 1.01}}}
    assert choose_fast_path("compile", "cuda", slower)[0] == "off"
    elsewhere = {**faster, "gpu": "NVIDIA H200"}
    assert choose_fast_path("compile", "cuda", elsewhere) == choose_fast_path("compile", "cuda")
    assert choose_fast_path("compile", "cuda")[0] == "off"
    assert choose_fast_path("compile", "cpu", faster)[0] == "off"
