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
    read,
    read_and_features,
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


def test_one_pass_reads_and_embeds_as_the_two_do_apart():
    torch.manual_seed(0)
    model = Classifier(ClassifierConfig(channels=4)).eval()
    x = torch.rand(7, 1, 28, 28)
    digits, probability, feats = read_and_features(model, x, batch_size=3)
    assert torch.equal(feats, features(model, x, batch_size=3))
    expected_digits, expected_probability = read(model, x, batch_size=3)
    assert torch.equal(digits, expected_digits) and torch.equal(probability, expected_probability)


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


def test_shifted_moves_each_digit_by_whole_pixels_within_the_bound():
    from generator.models.classifier import shifted

    x = torch.zeros(64, 1, 28, 28)
    x[:, 0, 13, 14] = 1.0
    moved = shifted(x, 2, torch.Generator().manual_seed(0))
    assert moved.shape == x.shape and torch.equal(moved.sum((1, 2, 3)), torch.ones(64))
    rows, cols = moved[:, 0].nonzero()[:, 1], moved[:, 0].nonzero()[:, 2]
    assert set((rows - 13).tolist()) == {-2, -1, 0, 1, 2}
    assert set((cols - 14).tolist()) == {-2, -1, 0, 1, 2}
    assert torch.equal(shifted(x, 0, torch.Generator()), x)


def test_sure_needs_the_right_digit_and_a_confident_reading(tmp_path):
    from generator.models.classifier import CONFIDENT, Scorer, save_scorer

    model = Classifier(ClassifierConfig(channels=4, features=8)).eval()
    save_scorer(tmp_path, model, np.zeros((4, 8)), np.zeros(4))
    scorer = Scorer(tmp_path, "cpu")
    images = torch.rand(16, 1, 28, 28)
    digits, probability = scorer.read(images)
    assert torch.equal(digits, predict(model, images))
    sure = scorer.sure(images, digits)
    assert torch.equal(sure, (probability >= CONFIDENT).float())
    assert scorer.sure(images, (digits + 1) % 10).sum() == 0  # a wrong digit never counts


def test_shrunk_shows_a_share_of_the_digits_from_afar():
    from generator.models.classifier import shrunk

    x = torch.rand(400, 1, 28, 28)
    assert torch.equal(shrunk(x, 0.0, torch.Generator()), x)
    out = shrunk(x, 0.25, torch.Generator().manual_seed(0))
    changed = (out != x).flatten(1).any(1).float().mean().item()
    assert out.shape == x.shape and 0.15 < changed < 0.35
    assert out.min() >= 0 and out.max() <= 1
    # a digit seen from afar keeps its mean brightness and loses its fine detail
    far = shrunk(x, 1.0, torch.Generator().manual_seed(0))
    assert torch.allclose(far.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=0.03)
    assert far.diff(dim=-1).abs().mean() < 0.5 * x.diff(dim=-1).abs().mean()
