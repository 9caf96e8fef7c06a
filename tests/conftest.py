"""Shared fixtures: a throwaway copy of the project, and a smoke build of it.

Tests never touch the repository's own docs/ or .gen/: each works in a copy of
the project's inputs (gen.yaml, templates, site assets, mkdocs.yml) in a
temporary folder, with its own cache. MNIST comes from GEN_DATA_DIR, which
defaults to the shared copy beside the repository.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT_INPUTS = ("gen.yaml", "mkdocs.yml", "templates", "site_assets", "generator/site_hooks.py")
# MNIST for the tests: GEN_DATA_DIR, else the copy beside the repository, else
# torchvision downloads it once into the repository's own cache.
_SHARED = REPO.parent / "shared" / "data"
# Tests never reach a model hub: a model they load is one they built and saved themselves.
os.environ["HF_HUB_OFFLINE"] = "1"
DATA_DIR = Path(
    os.environ.get("GEN_DATA_DIR") or (_SHARED if _SHARED.is_dir() else REPO / ".gen" / "data")
).resolve()


@pytest.fixture(autouse=True)
def _environment(monkeypatch):
    monkeypatch.setenv("GEN_DATA_DIR", str(DATA_DIR))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setenv("NO_MKDOCS_2_WARNING", "1")
    monkeypatch.delenv("GEN_CACHE_DIR", raising=False)


@pytest.fixture(scope="module")
def one_thread():
    """For small tensors: one thread is as fast, and immune to other processes holding the CPUs."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def copy_project(target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_INPUTS:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name)
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target / name)
    return target


def gen(
    project: Path, *args: str, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run the `gen` console script in `project`, as a user would (`env`: more environment
    variables)."""
    env = {**os.environ, "GEN_DATA_DIR": str(DATA_DIR), "TQDM_DISABLE": "1", **(env or {})}
    env.pop("GEN_CACHE_DIR", None)
    script = Path(sys.executable).with_name("gen")
    result = subprocess.run(
        [str(script), *args], cwd=project, env=env, capture_output=True, text=True
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"gen {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def ran(result: subprocess.CompletedProcess) -> list[str]:
    """Ids of the sections a build ran, read off its output."""
    return [
        line.split(":")[0]
        for line in result.stdout.splitlines()
        if line.endswith(")") and ": running (" in line
    ]


def tree_digest(*folders: Path) -> dict[str, str]:
    """Path → sha256 of every file under the folders (for 'nothing changed')."""
    digest = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")) if folder.exists() else []:
            if path.is_file() and path.name != "lock":
                digest[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Path:
    """A project with `gen build --all --profile smoke --backend local`, done once
    for the whole run."""
    project = copy_project(tmp_path_factory.mktemp("built") / "project")
    gen(project, "build", "--all", "--profile", "smoke", "--backend", "local")
    return project


@pytest.fixture
def project(built, tmp_path) -> Path:
    """A private copy of the built project, for tests that change it."""
    target = tmp_path / "project"
    shutil.copytree(built, target, symlinks=True)
    return target


# Fixtures that train, build the smoke site or make a tiny IF: every test that uses one, directly
# or through another fixture, is `slow`, so `pytest -m "not slow"` stays a fast tier.
SLOW_FIXTURES = {"built", "trained", "tiny", "tiny_if", "report"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def weight_report(request) -> list[str]:
    """Lines on the site's weight, printed in the run's summary (tests/test_committed_site.py fills
    it)."""
    lines: list[str] = []
    request.config.stash[_WEIGHT] = lines
    return lines


_WEIGHT = pytest.StashKey[list]()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    lines = config.stash.get(_WEIGHT, [])
    if lines:
        terminalreporter.section("site weight")
        for line in lines:
            terminalreporter.write_line(line)
