"""`gen bench` as a user runs it: one JSON object on stdout, and one clear line where it cannot run.

Only the tiny case runs here (the full one needs a CUDA GPU); speed is never asserted.
"""

from __future__ import annotations

import json
import math

import pytest
from conftest import copy_project, gen


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    project = copy_project(tmp_path_factory.mktemp("bench") / "project")
    result = gen(
        project, "bench", "--part", "if", "--size", "tiny", "--device", "cpu", "--repeats", "2"
    )
    full = json.loads(result.stdout)  # progress goes to stderr: stdout is the JSON alone
    assert set(full) == {
        "if",
        "machine",
        "command",
    }  # only the part asked for, the machine and the command
    return full["if"]


@pytest.mark.slow
def test_bench_times_the_readmes_no_op_build_and_list_as_fresh_processes(built):
    """The built project is fresh for smoke, not for the README's --profile auto: the no-op build is
    not
    timed then, and the report says why rather than timing a build that runs."""
    full = json.loads(gen(built, "bench", "--part", "cli").stdout)
    assert 0 < full["list_s"] < 60
    assert full["noop_build_s"] is None and "run `gen build --all` first" in full["noop_build_note"]
    assert {"cpu", "cores", "bf16", "gpu", "torch", "threads"} <= set(full["machine"])
    assert not (built / ".gen" / "bench.json").exists()  # only a full report goes to the Speed page


@pytest.mark.slow
def test_bench_reports_the_case(report):
    assert report["size"] == "tiny"
    assert report["device"] == "cpu"
    assert report["dtype"] == "float32"
    assert report["repeats"] == 2
    assert report["parameters"] > 0
    assert report["timesteps"] == {"first": 990, "last": 0, "stride": 30, "count": 34}
    assert report["guidance_scale"] == 7.0
    assert report["torch"] and report["diffusers"] and report["device_name"]
    assert report["peak_gpu_memory_gib"] is None  # on the CPU


@pytest.mark.slow
def test_bench_times_are_finite_and_outputs_finite(report):
    call = report["unet_call"]
    assert call["batch"] == 2 and call["shape"] == [3, 64, 64]
    assert len(call["ms_all"]) == 2
    numbers = [call["ms_median"], *call["ms_all"]]
    for key in ("sample_ours", "sample_diffusers"):
        sample = report[key]
        assert len(sample["s_all"]) == 2
        assert sample["output_finite"]
        numbers += [sample["s_median"], sample["ms_per_model_call"], *sample["s_all"]]
    numbers += report["ratio_ours_over_diffusers"].values()
    assert call["output_finite"]
    assert all(math.isfinite(x) and x > 0 for x in numbers)


@pytest.mark.slow
def test_bench_counts_model_calls(report):
    """Our loop steps 990 → … → 0 (33 calls); IFPipeline also calls the model at t = 0 (34)."""
    assert report["sample_ours"]["model_calls"] == 33
    assert report["sample_diffusers"]["model_calls"] == 34


def test_bench_full_size_needs_cuda(tmp_path):
    result = gen(
        copy_project(tmp_path / "project"),
        "bench",
        "--size",
        "full",
        "--device",
        "cpu",
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "CUDA GPU" in lines[0] and "--size tiny" in lines[0]
