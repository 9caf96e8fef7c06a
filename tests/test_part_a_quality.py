"""Part A's algorithms on a model that really works: b2.4 and b2.0 as the quick profile trains them, read by the project's classifier.

The model is b2.4 at the quick profile's numbers (D = 16, two epochs of 30,000
digits, OneCycle, a moving average of the weights): under three minutes on two
cores. Both are built through `gen`, as a user would, in a project of their
own, and the checks are the floors the pages state.
"""

import json

import numpy as np
import pytest
from conftest import copy_project, gen

TRAIN = ["--set", "b2.4.sample_epochs=[2]"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("quality") / "project")
    gen(
        project,
        "build",
        "a1.6",
        "a1.8",
        "--profile",
        "quick",
        "--backend",
        "local",
        *TRAIN,
        "--set",
        "a1.6.num_samples=10",
        "--set",
        "a1.8.num_samples=20",
    )
    return project


def _metrics(project, sid):
    return json.loads((project / f"docs/assets/{sid}/record.json").read_text())["metrics"]


def test_guided_samples_are_read_as_the_digit_asked_for(trained):
    samples = np.load(trained / "docs/assets/a1.6/samples.npz")
    assert samples["images"].shape == (100, 1, 28, 28)
    assert _metrics(trained, "a1.6")["accuracy"] >= 0.95


def test_anagrams_of_different_digits_read_both_ways(trained):
    metrics = _metrics(trained, "a1.8")
    samples = np.load(trained / "docs/assets/a1.8/samples.npz")
    params = json.loads((trained / "docs/assets/a1.8/record.json").read_text())["params"]
    assert str(samples["view"]) == "flip" and len(params["anagrams"]) >= 3
    for first, second in params[
        "anagrams"
    ]:  # the view relates neither digit to itself nor to the other
        assert (
            first != second and {first, second} != {"6", "9"} and not {first, second} & set("0138")
        )
    assert (
        metrics["accuracy_all_views"] >= 0.7
    )  # the first digit as it is and the second flipped, in the same sample
    assert (
        min(metrics[f"accuracy_all_views_anagram_{k + 1}"] for k in range(len(params["anagrams"])))
        >= 0.5
    )
