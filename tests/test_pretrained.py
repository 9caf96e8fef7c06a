"""The local backend's shipped model: `gen pretrain` writes it and its record, the backend loads it
through the same path as b2.4's weights, and a model that does not match its record is refused
before anything runs."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import copy_project, gen

from generator import pretrained
from generator.backends import local
from generator.backends.local_model import load_ddpm
from generator.config import load

pytestmark = pytest.mark.slow  # trains b2.4 at the smoke profile's size (seconds)


def test_pretrain_writes_fp16_weights_and_a_record_that_names_them(tmp_path):
    project = copy_project(tmp_path / "project")
    config = load(project, "smoke", ("b2.4.epochs=1", "local.model=b2.4"), backend="local")
    out = tmp_path / "weights" / "model.safetensors"
    record = pretrained.pretrain(config, device="cpu", log=lambda line: None, out=out)
    assert json.loads(out.with_suffix(".json").read_text()) == record
    assert record["sha256"] == local.sha256(out) and record["bytes"] == out.stat().st_size
    assert record["command"] == "gen pretrain --profile smoke --set b2.4.epochs=1"
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


def test_pretrain_takes_only_b24_parameters(tmp_path):
    result = gen(copy_project(tmp_path / "p"), "pretrain", "--set", "b2.2.epochs=1", check=False)
    assert result.returncode == 2
    assert "only b2.4's parameters" in result.stderr


def test_a_shipped_model_that_does_not_match_its_record_is_refused(tmp_path, monkeypatch):
    weights = tmp_path / "model.safetensors"
    shutil.copy(local.WEIGHTS, weights)
    shutil.copy(local.RECORD, weights.with_suffix(".json"))
    monkeypatch.setattr(local, "WEIGHTS", weights)
    monkeypatch.setattr(local, "RECORD", weights.with_suffix(".json"))
    LOCAL = local.LOCAL

    project = copy_project(tmp_path / "project")
    config = load(project, "smoke", ("local.model=pretrained",), backend="local")
    LOCAL.preflight(config, ["a1.6"], [])  # as shipped: accepted
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    from generator.errors import UsageError

    with pytest.raises(UsageError, match="does not match the sha256 of its record"):
        LOCAL.preflight(config, ["a1.6"], [])
    weights.unlink()
    with pytest.raises(UsageError, match="is missing; run `gen pretrain`"):
        LOCAL.preflight(config, ["a1.6"], [])


def test_the_shipped_model_is_small_and_its_sha256_enters_part_a_keys():
    record = local.shipped_record()
    assert local.WEIGHTS.stat().st_size <= 4_000_000
    assert record["sha256"] == local.sha256(local.WEIGHTS)
    assert record["command"].startswith("gen pretrain ")
    from generator.backends.local import LocalSettings

    settings = LocalSettings(model="pretrained", variance="fixed_small", t_start=290, stride=10)
    assert settings.identity()["weights_sha256"] == record["sha256"]
    assert "weights_sha256" not in settings.model_copy(update={"model": "b2.4"}).identity()
