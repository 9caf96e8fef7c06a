"""`precision: auto`: the device's choice (or GEN_PRECISION's) is made before keying, and the
record says what and why."""

from __future__ import annotations

import pytest
from conftest import REPO

from generator import hardware
from generator.build import plan
from generator.chapters import select
from generator.config import load
from generator.errors import UsageError

TRAINING = ("b1.2.1", "b2.2", "b2.4")


@pytest.fixture(autouse=True)
def _device_chooses(monkeypatch):
    """The suite may run forced to one precision (GEN_PRECISION); these tests set it themselves."""
    monkeypatch.delenv("GEN_PRECISION", raising=False)


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
    """auto where it picks fp32 keys like fp32 written out (so a result is reused), and unlike
    bf16."""
    monkeypatch.setattr(hardware, "cpu_flags", lambda: set())

    def keys(*sets):
        config = load(REPO, "smoke", sets, device="cpu")
        return {s.id: key for s, key, _ in plan(config, select(["b2.4"]))}

    auto = keys()
    assert auto == keys("b2.4.precision=fp32")
    assert auto["b2.4"] != keys("b2.4.precision=bf16")["b2.4"]
    written = load(REPO, "smoke", ("b2.4.precision=bf16",), device="cpu")
    assert "precision" not in written.choices["b2.4"]  # a precision written out is no choice


def test_a_device_without_a_usable_gpu_chooses_as_a_cpu(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: set())
    assert hardware.choose_precision("cuda")[0] == "fp32"


@pytest.mark.parametrize("forced", ["fp32", "bf16"])
@pytest.mark.parametrize("flags", [set(), {"avx512_bf16"}])
def test_gen_precision_forces_auto_whatever_the_cpu(monkeypatch, forced, flags):
    """GEN_PRECISION makes `auto` that precision on any CPU (a test run in fp32, then in bf16), and
    the record's choices say why; a precision written out stays as written."""
    monkeypatch.setattr(hardware, "cpu_flags", lambda: flags)
    monkeypatch.setenv("GEN_PRECISION", forced)
    config = load(REPO, "smoke", ("b2.2.precision=fp32",), device="cpu")
    for sid in ("b1.2.1", "b2.4"):
        assert config.params[sid].precision == forced
        assert config.choices[sid]["precision"] == {
            "value": forced,
            "why": f"auto: GEN_PRECISION={forced}",
        }
    assert config.params["b2.2"].precision == "fp32"
    assert "precision" not in config.choices["b2.2"]
    assert hardware.choose_precision("cuda") == (forced, f"auto: GEN_PRECISION={forced}")


def test_a_bad_gen_precision_is_one_line(monkeypatch):
    monkeypatch.setenv("GEN_PRECISION", "fp16")
    with pytest.raises(
        UsageError, match=r"GEN_PRECISION='fp16' is no precision; set it to fp32 or "
    ):
        load(REPO, "smoke", device="cpu")
