"""The MNIST scoring classifier: Fréchet distance properties, a tiny training run, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from generator.models.classifier import (
    Classifier,
    ClassifierConfig,
    features,
    frechet_distance,
    load_classifier,
    predict,
    save_classifier,
    train_classifier,
)


def _data_root() -> Path:
    """GEN_DATA_DIR, else the project's own data folder (see generator.config.data_dir)."""
    from generator.config import data_dir

    return data_dir(Path(__file__).resolve().parents[1])


@pytest.fixture
def mnist_or_skip():
    root = _data_root()
    if not (root / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        pytest.skip(f"MNIST is not under {root}; set GEN_DATA_DIR")
    from generator.data import mnist

    return mnist(root, train=True), mnist(root, train=False)


def _gaussian_feats(seed: int, n: int = 2000, f: int = 16, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(f, f)) / np.sqrt(f)
    return rng.normal(size=(n, f)) @ mix + shift


def test_frechet_distance_of_a_set_with_itself_is_zero():
    a = _gaussian_feats(0)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(
        torch.from_numpy(a).float(), torch.from_numpy(a).float()
    ) == pytest.approx(0.0, abs=1e-4)


def test_frechet_distance_grows_with_a_shift_and_is_symmetric():
    a, b = _gaussian_feats(0), _gaussian_feats(1)
    shifted = _gaussian_feats(1, shift=0.5)
    near, far = frechet_distance(a, b), frechet_distance(a, shifted)
    assert far > near > 0
    # a shift of the mean by 0.5 in each of 16 features adds ‖Δμ‖² = 4 (the covariances are the
    # same)
    assert far - near == pytest.approx(16 * 0.25, rel=0.1)
    assert frechet_distance(b, a) == pytest.approx(near, rel=1e-6)
    assert frechet_distance(shifted, a) == pytest.approx(far, rel=1e-6)


def test_frechet_distance_of_two_gaussians_in_closed_form():
    """For diagonal covariances it is Σ_i (μ_ai − μ_bi)² + (σ_ai − σ_bi)²."""
    rng = np.random.default_rng(2)
    a = rng.normal(size=(200_000, 3)) * np.array([1.0, 2.0, 0.5])
    b = rng.normal(size=(200_000, 3)) * np.array([2.0, 2.0, 1.5]) + np.array([1.0, 0.0, 0.0])
    want = 1.0 + (1.0 - 2.0) ** 2 + 0.0 + (0.5 - 1.5) ** 2
    assert frechet_distance(a, b) == pytest.approx(want, rel=0.03)


def test_shapes_and_save_load(tmp_path):
    model = train_classifier(
        torch.rand(64, 1, 28, 28),
        torch.arange(64) % 10,
        epochs=1,
        batch_size=32,
        lr=1e-3,
        generator=torch.Generator().manual_seed(0),
        device="cpu",
    )
    x = torch.rand(5, 1, 28, 28)
    assert features(model, x).shape == (5, ClassifierConfig().features)
    assert predict(model, x).shape == (5,)
    save_classifier(model, tmp_path / "c.safetensors", test_accuracy=0.5)
    loaded = load_classifier(tmp_path / "c.safetensors")
    assert isinstance(loaded, Classifier) and loaded.config == model.config
    assert torch.equal(features(loaded, x), features(model, x))


def test_training_is_reproducible_and_leaves_the_global_rng_alone():
    images, labels = torch.rand(64, 1, 28, 28), torch.arange(64) % 10
    state = torch.get_rng_state()
    kw = dict(epochs=1, batch_size=16, lr=1e-3, device="cpu")
    a = train_classifier(images, labels, generator=torch.Generator().manual_seed(3), **kw)
    b = train_classifier(images, labels, generator=torch.Generator().manual_seed(3), **kw)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.slow
def test_tiny_training_beats_chance(mnist_or_skip):
    (train_x, train_y), (test_x, test_y) = mnist_or_skip
    g = torch.Generator().manual_seed(0)
    index = torch.randperm(train_x.shape[0], generator=g)[:2000]
    model = train_classifier(
        train_x[index],
        train_y[index],
        epochs=3,
        batch_size=64,
        lr=3e-3,
        generator=g,
        device="cpu",
        config=ClassifierConfig(channels=16, features=64),
    )
    accuracy = (predict(model, test_x[:2000]) == test_y[:2000]).float().mean().item()
    assert accuracy > 0.8  # chance is 0.1
    # test digits are nearer to test digits than to noise, in its features
    real = features(model, test_x[:1000])
    other = features(model, test_x[1000:2000])
    noise = features(model, torch.rand(1000, 1, 28, 28, generator=g))
    assert frechet_distance(real, other) < 0.1 * frechet_distance(real, noise)
