"""`precision: auto`: the device's choice is made before keying, and the record says what and why."""

from __future__ import annotations

import pytest
from conftest import REPO

from generator import hardware
from generator.build import plan
from generator.config import load
from generator.sections import select

TRAINING = ("b1.2.1", "b2.2", "b2.4")


@pytest.mark.parametrize(
    "flags, expected",
    [({"avx2", "fma"}, "fp32"), ({"avx2", "avx512_bf16"}, "bf16"), ({"amx_bf16"}, "bf16")],
)
def test_auto_follows_the_cpu(monkeypatch, flags, expected):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: flags)
    config = load(REPO, "smoke", device="cpu")
    for sid in TRAINING:
        assert config.params[sid].precision == expected
        assert config.choices[sid]["precision"]["value"] == expected
        assert ("no bf16 units" in config.choices[sid]["precision"]["why"]) == (expected == "fp32")


def test_the_key_holds_the_chosen_precision(monkeypatch):
    """auto where it picks fp32 keys like fp32 written out (so a result is reused), and unlike bf16."""
    monkeypatch.setattr(hardware, "cpu_flags", lambda: set())

    def keys(*sets):
        config = load(REPO, "smoke", sets, device="cpu")
        return {s.id: key for s, key, _ in plan(config, select(["b2.4"]))}

    auto = keys()
    assert auto == keys("b2.4.precision=fp32")
    assert auto["b2.4"] != keys("b2.4.precision=bf16")["b2.4"]
    written = load(REPO, "smoke", ("b2.4.precision=bf16",), device="cpu")
    assert "b2.4" not in written.choices  # a precision written out is no choice


def test_a_device_without_a_usable_gpu_chooses_as_a_cpu(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: set())
    assert hardware.choose_precision("cuda")[0] == "fp32"
