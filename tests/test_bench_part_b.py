"""`gen bench`'s Part B: ours and the plain baseline compute the same thing, so their speeds
compare."""

from __future__ import annotations

import pytest
import torch

from generator import bench_part_b as b
from generator.hardware import bf16_units

T = 50


@pytest.mark.parametrize("kind", b.MODELS)
def test_our_training_loop_gives_the_plain_loops_losses(kind, one_thread):
    """Ours trains with the sections' own losses: a drift there from the plain loss fails here."""
    images, labels = b.batches(3, 16)
    ours = b.train_ours(b.build_model(kind, 8), images, labels, kind, 16, T, "cpu")
    plain = b.train_baseline(b.build_model(kind, 8), images, labels, kind, 16, T, "cpu")
    assert len(ours) == len(plain) == 3
    assert ours == pytest.approx(plain, rel=1e-4)


def test_ours_is_the_loss_the_sections_train_with():
    import inspect

    from generator.chapters import b_denoiser, b_training, common

    assert b.our_loss("single_step", T).__qualname__.startswith(common.denoiser_loss.__name__)
    assert b.our_loss("class", T).__qualname__.startswith(common.ddpm_training_loss.__name__)
    assert "denoiser_loss(p.sigma)" in inspect.getsource(b_denoiser.train_denoiser)
    assert "ddpm_training_loss(" in inspect.getsource(b_training._train_ddpm)


@pytest.mark.parametrize("kind", b.MODELS)
def test_our_samplers_give_the_plain_loops_samples(kind, one_thread):
    """Guidance as one batched call of cond and uncond, against two separate calls."""
    model = b.build_model(kind, 8)
    x = torch.randn((6, 1, 28, 28), generator=torch.Generator().manual_seed(3))
    timesteps = b.sample_timesteps(T, 8)
    ours = b.sample_ours(model, kind, x, timesteps, T, "cpu")
    plain = b.sample_baseline(model, kind, x, timesteps, T, "cpu")
    assert torch.allclose(ours, plain, atol=1e-4), (ours - plain).abs().max()


def test_timed_rates_have_the_contract_shape(one_thread):
    s = b.Sizes(
        {k: 8 for k in b.MODELS},
        {k: 8 for k in b.MODELS},
        T,
        train_batches=2,
        sample_count=4,
        sample_steps=3,
    )
    train = b.time_training("class", s, "cpu", "fp32")
    sample = b.time_sampling("time", s, "cpu")
    for row in (train, sample):
        assert row["ours_img_s"] > 0 and row["baseline_img_s"] > 0
        assert row["ratio"] == pytest.approx(row["ours_img_s"] / row["baseline_img_s"], rel=2e-2)
    assert b.sample_timesteps(300, 4) == [299, 199, 100, 0]


def test_each_fast_path_is_timed_against_the_same_plain_loop(one_thread):
    s = b.Sizes(
        {k: 8 for k in b.MODELS},
        {k: 8 for k in b.MODELS},
        T,
        train_batches=2,
        sample_count=4,
        sample_steps=3,
    )
    train_paths, sample_paths = b.fast_path_variants("cpu")
    assert "compile" not in train_paths  # minutes of compiling on a CPU: timed on CUDA only
    assert ("bf16" in train_paths) == bf16_units("cpu")  # emulated bf16 is not worth timing
    train_paths["bf16"] = sample_paths["bf16"] = {"precision": "bf16"}  # its path runs anyway
    train = b.time_training("time", s, "cpu", "fp32", {"data_on_device": False}, train_paths)
    sample = b.time_sampling("class", s, "cpu", {"precision": "fp32"}, sample_paths)
    assert set(train["paths"]) == {"bf16", "channels_last", "data_on_device"}
    assert set(sample["paths"]) == {"bf16", "channels_last"}
    assert all(r > 0 for r in [*train["paths"].values(), *sample["paths"].values()])
    train_auto, sample_auto = b.auto_settings("cpu")
    assert set(train_auto) == {"precision", "channels_last", "compile", "data_on_device"}
    assert set(sample_auto) == {"precision", "channels_last"}
