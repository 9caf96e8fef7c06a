"""Publishing: the Pages workflow builds the committed docs/ with MkDocs alone, and Zensical reads
the same config.

The site is built from what a clone holds (mkdocs.yml, docs/, the hook file), never
from the experiments: GitHub's runners install MkDocs and its plugins, not torch.
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github/workflows/pages.yml"
SITE_REQUIREMENTS = REPO / "site-requirements.txt"
# What building the site reads in a clone: the Pages workflow sees exactly these.
SITE_INPUTS = ("mkdocs.yml", "docs", "generator/site_hooks.py")
PAGES = ("index.html", "part-a.html", "part-b.html", "part-f.html")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _toml(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads(path.read_text())


def _requirement_lines(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower().replace("_", "-")


def _steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def _site_copy(built: Path, target: Path) -> Path:
    """The built project as a clone has it: the site's inputs only, no .gen/, no experiment code."""
    for name in SITE_INPUTS:
        source, dest = built / name, target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, dest)
        else:
            shutil.copy(source, dest)
    return target


def _run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)  # the fresh venv must not see the repository's packages
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result


# --------------------------------------------------------------------------
# The workflow and its requirements
# --------------------------------------------------------------------------


def test_pages_workflow_deploys_the_committed_site_without_torch():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "workflow_dispatch" in triggers
    push = triggers["push"]
    assert push["branches"] == ["main"]
    for path in ("docs/**", "mkdocs.yml", "site-requirements.txt"):
        assert path in push["paths"], path
    assert workflow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    assert workflow["concurrency"]["group"] == "pages"

    build, deploy = workflow["jobs"]["build"], workflow["jobs"]["deploy"]
    uses = [step.get("uses", "").split("@")[0] for step in build["steps"]]
    assert "actions/upload-pages-artifact" in uses and "actions/configure-pages" in uses
    upload = next(
        step
        for step in build["steps"]
        if step.get("uses", "").startswith("actions/upload-pages-artifact")
    )
    assert upload["with"]["path"] == "site"
    assert deploy["needs"] == "build"
    assert deploy["environment"]["name"] == "github-pages"
    assert "steps.deployment.outputs.page_url" in deploy["environment"]["url"]
    assert any(
        s.get("uses", "").startswith("actions/deploy-pages@") and s.get("id") == "deployment"
        for s in deploy["steps"]
    )

    runs = [step["run"] for step in _steps(workflow) if "run" in step]
    commands = [line.strip() for run in runs for line in run.splitlines() if line.strip()]
    assert "mkdocs build --strict" in commands
    assert "pip install -r site-requirements.txt" in commands
    for command in commands:
        words = command.split()
        if "pip" in words and "install" in words:
            # only the site's requirements: no `-e .`, no `pip install .`, no torch, no gen
            assert words[words.index("install") + 1 :] == ["-r", "site-requirements.txt"], command
        assert "torch" not in command, command
        assert words[0] != "gen" and "gen build" not in command, command


def test_site_requirements_match_pyproject():
    dependencies = _toml(REPO / "pyproject.toml")["project"]["dependencies"]
    normalized = {d.replace(" ", "") for d in dependencies}
    site = _requirement_lines(SITE_REQUIREMENTS)
    for line in site:
        assert line.replace(" ", "") in normalized, (
            f"{line!r} differs from pyproject.toml's dependencies"
        )
    names = {_name(line) for line in site}
    assert {"mkdocs", "mkdocs-material", "mkdocs-glightbox"} <= names
    assert not names & {"torch", "torchvision", "gen"}
    # A plugin added to pyproject must reach the workflow's install too.
    for dependency in dependencies:
        if _name(dependency).startswith(("mkdocs", "pymdown")):
            assert _name(dependency) in names, f"{dependency} is missing from site-requirements.txt"


# --------------------------------------------------------------------------
# Building as the workflow does
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_a_fresh_venv_with_only_the_site_requirements_builds_the_site(built, tmp_path):
    """What the Pages job does, on a smoke-built project: a clean venv, the site requirements,
    mkdocs --strict."""
    project = _site_copy(built, tmp_path / "clone")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", "-r", str(SITE_REQUIREMENTS)], cwd=tmp_path)
    _run([str(venv / "bin" / "mkdocs"), "build", "--strict"], cwd=project)
    for page in PAGES:
        assert (project / "site" / page).is_file(), page
    assert not list((project / "site").rglob("*.map"))  # the hook ran
    no_torch = subprocess.run([str(python), "-c", "import torch"], capture_output=True, text=True)
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr


# --------------------------------------------------------------------------
# Zensical, Material's successor, on the same mkdocs.yml
# --------------------------------------------------------------------------


def _math(page: Path) -> list[str]:
    """The TeX of each arithmatex element on a page, in order."""
    text = page.read_text()
    return [
        html.unescape(m.group(2)).strip()
        for m in re.finditer(r'<(span|div) class="arithmatex">(.*?)</\1>', text, re.S)
    ]


def _local_refs(page: Path, attribute: str) -> set[str]:
    # an attribute of that exact name: data-viewer-src (a viewer's description) is no link
    refs = set()
    for ref in re.findall(rf'(?<![\w-]){attribute}="([^"]*)"', page.read_text()):
        ref = html.unescape(ref).split("#", 1)[0]
        if ref and not re.match(r"[a-z]+:", ref):  # http:, mailto:, data:
            refs.add(ref)
    return refs


@pytest.fixture(scope="session")
def zensical():
    """Skips where Zensical is not installed, before any smoke build; in CI it must be there."""
    if importlib.util.find_spec("zensical") is None:
        if _in_ci():
            pytest.fail("zensical is required in CI (pip install -e '.[test]' installs it)")
        pytest.skip("zensical is not installed (pip install zensical)")


@pytest.mark.slow
def test_zensical_builds_the_same_site(zensical, built, tmp_path):
    project = _site_copy(built, tmp_path / "zensical")
    _run([sys.executable, "-m", "zensical", "build", "--strict"], cwd=project)
    site = project / "site"
    for page in PAGES:
        assert (site / page).is_file(), page

    # Every figure a section records is on its page and in the output.
    records = sorted((project / "docs/assets").glob("*/record.json"))
    assert len(records) > 10
    for record_file in records:
        section = record_file.parent.name
        record = json.loads(record_file.read_text())
        for figure in record["figures"]:
            src = f"assets/{section}/{figure['file']}"
            assert any(src in _local_refs(site / page, "src") for page in PAGES), src
            assert (site / src).is_file(), src
    # Nothing a page loads or links to is missing, and links are file names: it opens from disk.
    for page in PAGES:
        for ref in _local_refs(site / page, "src") | _local_refs(site / page, "href"):
            assert (site / ref).is_file(), (page, ref)

    # The equations are arithmatex elements, the very ones MkDocs writes.
    reference = _site_copy(built, tmp_path / "mkdocs")
    _run([str(Path(sys.executable).with_name("mkdocs")), "build", "--strict"], cwd=reference)
    for page in ("part-a.html", "part-b.html"):
        math = _math(site / page)
        assert len(math) >= 8, page
        assert math == _math(reference / "site" / page), page
