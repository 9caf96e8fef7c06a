"""Part A's algorithms on a model that really works: a CPU-trained class-conditioned MNIST model, read by the project's classifier.

The model is b2.4 as the quick profile trains it (D = 32, two epochs) on 30,000
digits instead of 40,000: about six minutes on two cores. With D = 16 the 6/9
anagrams were read both ways in only 49-86% of samples. The classifier is b2.0
after one epoch over all of MNIST. Both are built through `gen`, as a user
would, in a project of their own.
"""

import json

import numpy as np
import pytest
from conftest import copy_project, gen

TRAIN = [
    "--set", "b2.4.train_subset=30000", "--set", "b2.4.sample_epochs=[2]",
    "--set", "b2.0.epochs=1", "--set", "b2.0.train_subset=0",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("quality") / "project")
    gen(
        project, "build", "a1.6", "a1.8", "--profile", "quick", "--backend", "local", *TRAIN,
        "--set", "a1.6.num_samples=10",
        "--set", 'a1.8.anagrams=[["6", "9"]]', "--set", "a1.8.num_samples=100",
    )
    return project


def _metrics(project, sid):
    return json.loads((project / f"docs/assets/{sid}/record.json").read_text())["metrics"]


def test_guided_samples_are_read_as_the_digit_asked_for(trained):
    samples = np.load(trained / "docs/assets/a1.6/samples.npz")
    assert samples["images"].shape == (100, 1, 28, 28)
    assert _metrics(trained, "a1.6")["accuracy"] >= 0.95


def test_six_nine_rotation_anagrams_read_both_ways(trained):
    metrics = _metrics(trained, "a1.8")
    samples = np.load(trained / "docs/assets/a1.8/samples.npz")
    assert str(samples["view"]) == "rot180" and samples["labels_view1"].tolist() == [6] * 100
    assert metrics["accuracy_view1"] >= 0.8 and metrics["accuracy_view2"] >= 0.8
    assert metrics["accuracy_all_views"] >= 0.8  # 6 upright and 9 rotated, in the same sample
