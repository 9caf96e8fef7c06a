"""Part B's outputs: the samples.npz contract, the numbers on the pages, animations, and floors
that a broken algorithm misses by far on any CPU, in fp32 or bf16."""

import json

import numpy as np
import pytest
import torch
from conftest import DATA_DIR, copy_project, gen
from PIL import Image


def record(project, sid):
    return json.loads((project / "docs/assets" / sid / "record.json").read_text())


def private(project, sid):
    """The store's private folder of a built section (its checkpoints, its scorer)."""
    return project / ".gen/store" / record(project, sid)["cache_key"] / "private"


@pytest.mark.slow
def test_time_conditioned_samples_follow_the_contract(built):
    epochs = record(built, "b2.2")["params"]["epochs"]
    with np.load(built / "docs/assets/b2.3/samples.npz") as npz:
        images, steps, method = npz["images"], npz["steps"], npz["method"]
        assert "labels" not in npz
    shown = record(built, "b2.3")["params"]["num_samples"]
    checkpoints = sorted({max(1, round(epochs / 4)), epochs})
    # the plain samples of each checkpoint, then the last one's autoguided by the first
    plain = [e for e in checkpoints for _ in range(shown)]
    assert images.dtype == np.float32 and images.shape == (shown * 3, 1, 28, 28)
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert steps.tolist() == plain + [checkpoints[-1]] * shown
    assert method.tolist() == ["plain"] * len(plain) + ["autoguided"] * shown
    data = json.loads((built / "docs/assets/b2.3/data.json").read_text())
    assert data["guide_epoch"] == checkpoints[0]
    for found in data["digits"].values():  # shares of the confident readings over the digits
        assert len(found["shares"]) == 10 and 0 <= found["entropy"] <= np.log2(10) + 1e-9


@pytest.mark.slow
def test_class_conditioned_samples_carry_labels_and_epochs(built):
    params = record(built, "b2.5")["params"]
    with np.load(built / "docs/assets/b2.5/samples.npz") as npz:
        images, labels, steps = npz["images"], npz["labels"], npz["steps"]
    per_epoch = 10 * params["per_digit"]
    assert images.shape[0] == labels.shape[0] == steps.shape[0]
    assert images.shape[1:] == (1, 28, 28) and images.dtype == np.float32
    for epoch in np.unique(steps):
        assert sorted(labels[steps == epoch].tolist()) == sorted(
            list(range(10)) * params["per_digit"]
        )
        assert (steps == epoch).sum() == per_epoch


@pytest.mark.slow
def test_quality_numbers_are_recorded_and_beat_chance_by_far(built):
    clf = record(built, "b2.0")["metrics"]
    assert clf["test_accuracy"] > 0.5  # even the smoke classifier beats chance (0.1) by far
    b23 = record(built, "b2.3")["metrics"]
    b25 = record(built, "b2.5")["metrics"]
    for epoch in (1, 2):
        assert np.isfinite(b23[f"fid_epoch_{epoch}"])
        assert {f"accuracy_epoch_{epoch}_digit_{d}" for d in range(10)} <= set(b25)
    ood = record(built, "b1.2.2")["metrics"]
    assert {f"psnr_sigma_{s:g}" for s in (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0)} <= set(ood)
    # at the strongest noise the denoiser beats its input by far (an identity map does not)
    strongest = max(record(built, "b1.2")["params"]["sigmas"])
    assert ood[f"psnr_sigma_{strongest:g}"] > ood[f"psnr_noisy_sigma_{strongest:g}"] + 3


@pytest.mark.slow
def test_real_digits_are_nearer_the_test_set_than_noise(built):
    """b2.3's Fréchet distance of real training digits, against that of uniform noise."""
    from generator.models.classifier import Scorer

    reader = Scorer(private(built, "b2.0"), "cpu")
    metrics = record(built, "b2.3")["metrics"]
    count = record(built, "b2.3")["params"]["eval_samples"]
    noise = torch.rand((count, 1, 28, 28), generator=torch.Generator().manual_seed(0))
    assert metrics["fid_real"] < 0.5 * reader.frechet(noise)


@pytest.mark.slow
@pytest.mark.parametrize("train_id", ["b2.2", "b2.4"])
def test_the_trained_ddpm_predicts_noise_better_than_before_training(built, train_id):
    """The shared training loss on test digits: the kept weights against the same UNet untrained
    (same seed, same draws), and the loss the training recorded against the untrained one.

    Smoke trains for 16 iterations: on test digits that takes the loss from about 1.02 to 0.91,
    and the last epoch's training loss is about 0.76."""
    from generator.backends.local_model import load_ddpm
    from generator.chapters.common import ddpm_training_loss
    from generator.data import mnist
    from generator.diffusion.ddpm import linear_schedule
    from generator.models.train import MODEL_FILE
    from generator.models.unet import UNet

    rec = record(built, train_id)
    p = rec["params"]
    weights = private(built, train_id) / MODEL_FILE.format(epoch=p["epochs"])
    trained = load_ddpm(weights, "cpu").model
    torch.manual_seed(p["seed"])  # the UNet's initial weights, as training drew them
    untrained = UNet(trained.config).eval()
    images, labels = mnist(DATA_DIR, train=False)
    loss = ddpm_training_loss(
        linear_schedule(p["T"], p["beta_1"], p["beta_T"]), trained.config.num_classes, 0.0
    )

    def test_loss(model):
        with torch.no_grad():
            return float(loss(model, images[:512], labels[:512], torch.Generator().manual_seed(1)))

    before, after = test_loss(untrained), test_loss(trained)
    assert after < 0.95 * before, (before, after)
    assert rec["metrics"]["final_loss"] < 0.85 * before


@pytest.mark.slow
def test_animations_have_the_asked_number_of_frames(built):
    for sid, across in (("b2.3", 5), ("b2.5", 10)):  # unconditional: five; one of each digit
        frames = record(built, sid)["params"]["gif_frames"]
        with Image.open(built / "docs/assets" / sid / "sampling.gif") as gif:
            assert gif.n_frames == frames
            assert 28 * across < gif.size[0] < 28 * (across + 1)


def test_checkpoint_epochs_default_to_a_quarter_and_the_end(tmp_path):
    from generator.config import load

    full = load(copy_project(tmp_path / "p"), "full").params["b2.2"]

    def checkpoints(**changed):
        return full.model_copy(update=changed).checkpoints()

    assert checkpoints(epochs=20, sample_epochs=None) == [5, 20]
    assert checkpoints(epochs=2, sample_epochs=None) == [1, 2]
    assert checkpoints(epochs=1, sample_epochs=None) == [1]
    assert checkpoints(epochs=10, sample_epochs=[10, 3]) == [3, 10]


@pytest.mark.parametrize(
    "args, named",
    [
        (["--set", "b2.2.T=50", "--set", "b2.3.gif_frames=60"], "b2.3.gif_frames=60"),
        (
            ["--set", "b2.4.T=296", "--set", "a0.steps=[4]", "--set", "b2.5.gif_frames=297"],
            "b2.5.gif_frames=297",
        ),
        (["--set", "b2.5.stride=3", "--set", "b2.5.gif_frames=101"], "b2.5.gif_frames=101"),
        (["--set", "b2.2.T=50", "--set", "b2.3.stride=50"], "b2.3.stride=50"),
    ],
)
def test_more_frames_than_sampling_steps_is_one_line_before_anything_runs(tmp_path, args, named):
    project = copy_project(tmp_path / "p")
    result = gen(project, "build", "b2", "--profile", "smoke", *args, check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and named in lines[0], result.stderr
    assert "at most" in lines[0] and not (project / "docs").exists()


@pytest.mark.parametrize(
    "args, named",
    [
        (["--set", "b2.3.guide_epoch=2"], "b2.3.guide_epoch=2"),  # the last: no weaker model
        (["--set", "b2.2.sample_epochs=[2]"], "b2.3.autoguidance=2"),  # nothing earlier kept
        (["--set", "b2.3.guide_interval=[0.8,0.2]"], "b2.3.guide_interval=[0.8, 0.2]"),
    ],
)
def test_autoguidance_without_a_weaker_model_is_one_line_before_anything_runs(
    tmp_path, args, named
):
    project = copy_project(tmp_path / "p")
    result = gen(project, "build", "b2.3", "--profile", "smoke", *args, check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and named in lines[0], result.stderr
    assert not (project / "docs").exists()
