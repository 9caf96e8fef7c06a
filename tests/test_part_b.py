"""Part B's outputs: the samples.npz contract, the numbers on the pages, animations."""

import json

import numpy as np
from conftest import copy_project
from PIL import Image


def record(project, sid):
    return json.loads((project / "docs/assets" / sid / "record.json").read_text())


def test_time_conditioned_samples_follow_the_contract(built):
    epochs = record(built, "b2.2")["params"]["epochs"]
    with np.load(built / "docs/assets/b2.3/samples.npz") as npz:
        images, steps = npz["images"], npz["steps"]
        assert "labels" not in npz
    shown = record(built, "b2.3")["params"]["num_samples"]
    checkpoints = sorted({max(1, round(epochs / 4)), epochs})
    assert images.dtype == np.float32 and images.shape == (shown * len(checkpoints), 1, 28, 28)
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert steps.tolist() == [e for e in checkpoints for _ in range(shown)]


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


def test_quality_numbers_are_recorded(built):
    clf = record(built, "b2.0")["metrics"]
    assert 0.0 <= clf["test_accuracy"] <= 1.0
    assert clf["test_accuracy"] > 0.5  # even the smoke classifier beats chance by far
    b23 = record(built, "b2.3")["metrics"]
    b25 = record(built, "b2.5")["metrics"]
    for epoch in (1, 2):
        assert b23[f"fid_epoch_{epoch}"] >= 0.0
        assert 0.0 <= b25[f"accuracy_epoch_{epoch}"] <= 1.0
        assert {f"accuracy_epoch_{epoch}_digit_{d}" for d in range(10)} <= set(b25)
    ood = record(built, "b1.2.2")["metrics"]
    assert {f"psnr_sigma_{s:g}" for s in (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0)} <= set(ood)


def test_animations_have_the_asked_number_of_frames(built):
    for sid in ("b2.3", "b2.5"):
        frames = record(built, sid)["params"]["gif_frames"]
        with Image.open(built / "docs/assets" / sid / "sampling.gif") as gif:
            assert gif.n_frames == frames
            assert gif.size[0] > 28 * 10  # ten samples across


def test_checkpoint_epochs_default_to_a_quarter_and_the_end(tmp_path):
    from generator.config import load

    full = load(copy_project(tmp_path / "p"), "full").params["b2.2"]

    def checkpoints(**changed):
        return full.model_copy(update=changed).checkpoints()

    assert checkpoints(epochs=20, sample_epochs=None) == [5, 20]
    assert checkpoints(epochs=2, sample_epochs=None) == [1, 2]
    assert checkpoints(epochs=1, sample_epochs=None) == [1]
    assert checkpoints(epochs=10, sample_epochs=[10, 3]) == [3, 10]
