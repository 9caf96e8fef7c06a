"""A build killed mid-training resumes to the very result of an uninterrupted one; SIGTERM cleans up
like Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA_DIR, copy_project, gen
from PIL import Image
from safetensors.numpy import load_file

EPOCHS = 6
BUILD = ("build", "b1.2.1", "--profile", "smoke", "--set", f"b1.2.1.epochs={EPOCHS}")


def _start(project: Path) -> subprocess.Popen:
    env = {**os.environ, "GEN_DATA_DIR": str(DATA_DIR), "TQDM_DISABLE": "1"}
    env.pop("GEN_CACHE_DIR", None)
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("gen")), *BUILD],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _last_epoch(project: Path) -> int:
    found = [
        int(p.stem.split("_")[1]) for p in (project / ".gen" / "work").glob("*/epoch_*.safetensors")
    ]
    return max(found, default=0)


def _wait_for_epoch(build: subprocess.Popen, project: Path, after: int, timeout: float = 60) -> int:
    """Wait until a checkpoint later than `after` is written; returns its epoch."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if (epoch := _last_epoch(project)) > after:
            return epoch
        if build.poll() is not None:
            pytest.fail(f"the build ended before epoch {after + 1}: {build.communicate()}")
        time.sleep(0.02)
    build.kill()
    pytest.fail(f"no checkpoint after epoch {after} within {timeout} s")


def _result(project: Path) -> dict:
    """What the build made: its metrics, samples, published pixels and the trained weights."""
    entry = project / ".gen" / "store" / (project / ".gen" / "refs" / "b1.2.1").read_text().strip()
    out = {"metrics": json.loads((entry / "record.json").read_text())["metrics"]}
    for path in sorted(entry.rglob("*")):
        if path.suffix in (".png", ".webp"):
            out[path.name] = np.asarray(Image.open(path))
        elif path.suffix == ".npz":
            out |= {f"{path.name}:{k}": v for k, v in np.load(path).items()}
        elif path.suffix == ".safetensors":
            out |= {f"{path.name}:{k}": v for k, v in load_file(path).items()}
    return out


@pytest.mark.slow
def test_killed_builds_resume_to_the_uninterrupted_result(tmp_path):
    whole = copy_project(tmp_path / "whole")
    gen(whole, *BUILD)
    killed = copy_project(tmp_path / "killed")
    epoch = 0
    for _ in range(3):
        build = _start(killed)
        epoch = _wait_for_epoch(build, killed, epoch)
        build.send_signal(signal.SIGKILL)
        build.wait()
    assert epoch < EPOCHS, "the kills came too late to interrupt anything"
    gen(killed, *BUILD)
    expected, got = _result(whole), _result(killed)
    assert expected.keys() == got.keys()
    assert got["metrics"] == expected["metrics"]
    for name in expected:
        if name != "metrics":
            np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


@pytest.mark.slow
def test_sigterm_cleans_up_and_frees_the_lock(tmp_path):
    project = copy_project(tmp_path / "project")
    build = _start(project)
    _wait_for_epoch(build, project, 0)
    build.send_signal(signal.SIGTERM)
    _, err = build.communicate(timeout=30)
    assert build.returncode == 143, err
    assert err.strip().splitlines()[-1] == "interrupted"
    assert list((project / ".gen" / "tmp").iterdir()) == []  # no staging folder left
    second = _start(project)
    try:
        _wait_for_epoch(
            second, project, _last_epoch(project)
        )  # it trains at once: the lock was free
    finally:
        second.kill()
        _, err = second.communicate()
    assert "waiting" not in err
