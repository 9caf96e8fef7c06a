"""The shipped models: `gen pretrain` writes them and their records, the backend and b2.0 load them
through the same paths as the build's own weights, and weights that do not match their record are
refused before anything runs."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import DATA_DIR, copy_project, gen

from generator import pretrained, shipped
from generator.backends.local_model import load_ddpm
from generator.config import load
from generator.data import mnist
from generator.errors import UsageError
from generator.models import classifier as clf
from generator.shipped import CLASSIFIER, DDPM

pytestmark = pytest.mark.slow  # trains b2.4 at the smoke profile's size (seconds)


def test_pretrain_writes_fp16_weights_and_a_record_that_names_them(tmp_path):
    project = copy_project(tmp_path / "project")
    config = load(project, "smoke", ("b2.4.epochs=1", "local.model=b2.4"), backend="local")
    out = tmp_path / "weights" / "model.safetensors"
    record = pretrained.pretrain(config, DDPM, device="cpu", log=lambda line: None, out=out)
    assert json.loads(out.with_suffix(".json").read_text()) == record
    assert record["sha256"] == shipped.sha256(out) and record["bytes"] == out.stat().st_size
    assert record["command"] == "gen pretrain ddpm --profile smoke --set b2.4.epochs=1"
    assert record["params"]["epochs"] == 1 and len(record["epoch_losses"]) == 1
    from safetensors import safe_open

    with safe_open(str(out), framework="pt") as f:
        tensors = [f.get_tensor(k) for k in f.keys()]
    # every weight in fp16 (BatchNorm's batch counter stays an integer)
    assert {t.dtype for t in tensors if t.is_floating_point()} == {torch.float16}
    # It loads as any DDPM does, with the schedule its metadata declares, and denoises.
    den = load_ddpm(out, "cpu")
    assert den.alphas_cumprod.shape[0] == record["params"]["T"]
    eps, _ = den(torch.zeros(2, 1, 28, 28), 100, den.encode(["3", ""]))
    assert eps.shape == (2, 1, 28, 28) and torch.isfinite(eps).all()
    # docs/ shows the build's own sections, not the pretraining run
    assert not (project / "docs" / "assets" / "b2.4").exists()


def test_pretrain_classifier_ships_the_weights_b20_scores_with(tmp_path, monkeypatch):
    project = copy_project(tmp_path / "project")
    config = load(project, "smoke", ("b2.0.model=trained",), backend="local")
    out = tmp_path / "weights" / "classifier.safetensors"
    record = pretrained.pretrain(config, CLASSIFIER, device="cpu", log=lambda line: None, out=out)
    assert record["command"] == "gen pretrain classifier --profile smoke"
    assert record["params"]["channels"] == 8 and "model" not in record["params"]
    # in fp16, read back in fp32, it reads the test digits as it did when trained
    images, labels = mnist(DATA_DIR, train=False)
    predicted, _ = clf.read(clf.load_classifier(out), images)
    accuracy = float((predicted == labels).float().mean())
    assert abs(accuracy - record["metrics"]["test_accuracy"]) < 0.005
    # b2.0 takes it for its own recipe, with its sha256 in the key, and no other recipe
    from generator.chapters import b_training

    moved = shipped.Shipped("classifier", "b2.0", "the classifier", out, "b2.0.model=trained")
    monkeypatch.setattr(b_training, "CLASSIFIER", moved)
    config = load(project, "smoke", ("b2.0.model=pretrained",), backend="local")
    assert config.params["b2.0"].identity()["weights_sha256"] == record["sha256"]
    with pytest.raises(UsageError, match=r"b2.0.epochs=2: the shipped classifier was trained "):
        load(project, "smoke", ("b2.0.model=pretrained", "b2.0.epochs=2"), backend="local")


def test_b20_on_the_shipped_classifier_trains_nothing_and_scores_as_its_record(tmp_path):
    project = copy_project(tmp_path / "project")
    gen(project, "build", "b2.0", "--profile", "quick")
    record = json.loads((project / "docs/assets/b2.0/record.json").read_text())
    data = json.loads((project / "docs/assets/b2.0/data.json").read_text())
    assert data["shipped"]["sha256"] == CLASSIFIER.record()["sha256"]
    assert record["model"] == "MNIST CNN classifier, shipped with the project"
    assert record["params"]["weights_sha256"] == CLASSIFIER.record()["sha256"]
    shipped_accuracy = CLASSIFIER.record()["metrics"]["test_accuracy"]
    assert abs(record["metrics"]["test_accuracy"] - shipped_accuracy) < 0.005


def test_pretrain_takes_only_its_recipes_parameters(tmp_path):
    project = copy_project(tmp_path / "p")
    result = gen(project, "pretrain", "--set", "b2.2.epochs=1", check=False)
    assert result.returncode == 2
    assert "only b2.4's parameters" in result.stderr
    result = gen(project, "pretrain", "classifier", "--set", "b2.4.epochs=1", check=False)
    assert result.returncode == 2
    assert "gen pretrain classifier takes only b2.0's parameters" in result.stderr


@pytest.mark.parametrize("model", [DDPM, CLASSIFIER], ids=lambda m: m.name)
def test_shipped_weights_that_do_not_match_their_record_are_refused(tmp_path, model):
    weights = tmp_path / model.weights.name
    shutil.copy(model.weights, weights)
    shutil.copy(model.record_path, weights.with_suffix(".json"))
    moved = shipped.Shipped(model.name, model.section, model.what, weights, model.instead)
    moved.check()  # as shipped: accepted
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(UsageError, match="does not match the sha256 of its record"):
        moved.check()
    weights.unlink()
    with pytest.raises(UsageError, match=f"is missing; run `gen pretrain {model.name}`"):
        moved.check()


def test_the_shipped_models_are_small_and_their_sha256_enter_the_keys():
    for model in (DDPM, CLASSIFIER):
        record = model.record()
        assert model.weights.stat().st_size <= 4_000_000
        assert record["sha256"] == shipped.sha256(model.weights)
        assert record["command"].startswith("gen pretrain ")
    record = DDPM.record()
    from generator.backends.local import LocalSettings

    settings = LocalSettings(
        model="pretrained",
        variance="fixed_small",
        t_start=290,
        stride=10,
        precision="fp32",
        channels_last="off",
    )
    assert settings.identity()["weights_sha256"] == record["sha256"]
    assert "weights_sha256" not in settings.model_copy(update={"model": "b2.4"}).identity()
