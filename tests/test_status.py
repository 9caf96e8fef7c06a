"""`gen status` / `gen list -v`: what changed since each section's last build; `gen build
--dry-run`: what would run.

Everything here reads the shared smoke build (conftest's `built`), or a private
copy of it where a test changes gen.yaml, an input file or the store.

"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import copy_project, gen, ran

SMOKE = ("--profile", "smoke", "--backend", "local")


@pytest.fixture(scope="module")
def unbuilt(tmp_path_factory) -> Path:
    """A copy of the project with nothing built: for what runs nothing."""
    return copy_project(tmp_path_factory.mktemp("unbuilt") / "project")


def reasons(listing: str) -> dict[str, list[str]]:
    """Section id → the indented lines under it, from `gen status` or `gen list -v`."""
    found: dict[str, list[str]] = {}
    current = ""
    for line in listing.splitlines()[2:]:  # after the profile and backend lines
        if line.startswith(" "):
            found[current].append(line.strip())
        else:
            current = line.split()[0]
            found[current] = []
    return found


def states(listing: str) -> dict[str, str]:
    return {
        line.split()[0]: line.split()[1]
        for line in listing.splitlines()[2:]
        if not line.startswith(" ")
    }


@pytest.mark.slow
def test_everything_is_fresh_after_the_build(built):
    out = gen(built, "status", *SMOKE).stdout
    assert set(states(out).values()) == {"fresh"}
    assert not any(reasons(out).values())


@pytest.mark.slow
def test_a_changed_parameter_shows_old_and_new_value_and_the_sections_that_need_it(built):
    out = gen(built, "status", *SMOKE, "--set", "b1.2.1.epochs=3").stdout
    why = reasons(out)
    assert why["b1.2.1"] == ["b1.2.1.epochs: 2 → 3"]  # smoke's 2, gen.yaml
    assert why["b1.2.2"] == ["needs b1.2.1, which is stale"]
    assert states(out)["b1.2"] == "fresh" and why["b1.1"] == []
    # `gen list -v` says the same; without -v, `gen list` is the state lines alone.
    assert gen(built, "list", "-v", *SMOKE, "--set", "b1.2.1.epochs=3").stdout == out
    plain = gen(built, "list", *SMOKE, "--set", "b1.2.1.epochs=3").stdout
    assert plain == "".join(line + "\n" for line in out.splitlines() if not line.startswith(" "))


@pytest.mark.slow
def test_editing_gen_yaml_shows_the_same_as_set(project):
    with_set = gen(project, "status", *SMOKE, "--set", "b1.2.1.epochs=3").stdout
    config = project / "gen.yaml"
    data = yaml.safe_load(config.read_text())
    assert data["profiles"]["smoke"]["b1.2.1"]["epochs"] == 2
    text = config.read_text().replace(
        "b1.2.1: {epochs: 2, batch_size: 64,", "b1.2.1: {epochs: 3, batch_size: 64,"
    )
    assert text != config.read_text()
    config.write_text(text)
    assert gen(project, "status", *SMOKE).stdout == with_set


@pytest.mark.slow
def test_a_changed_input_image_is_named(project):
    from PIL import Image, ImageOps

    changed = (
        project / "site_assets" / "inputs" / "digit_two_drawn.png"
    )  # one of a1.7.1's three on local
    with Image.open(changed) as im:
        ImageOps.invert(im.convert("RGB")).save(changed)
    why = reasons(gen(project, "status", *SMOKE).stdout)
    assert len(why["a1.7.1"]) == 1
    assert why["a1.7.1"][0].startswith(
        "input site_assets/inputs/digit_two_drawn.png: its content changed (sha256 "
    )
    assert [sid for sid, lines in why.items() if lines] == ["a1.7.1"]


@pytest.mark.slow
def test_backend_code_version_and_damage_are_reasons(project, monkeypatch):
    """In process, without a subprocess per case: the state of each section as `gen status` prints
    it."""
    import generator.chapters as table
    from generator.config import load
    from generator.status import states as states_of

    monkeypatch.setattr(
        table,
        "SECTIONS",
        tuple(
            dataclasses.replace(s, version=s.version + 1) if s.id == "b1.2" else s
            for s in table.SECTIONS
        ),
    )
    (
        project
        / ".gen"
        / "store"
        / (project / ".gen" / "refs" / "b2.1").read_text().strip()
        / "data.json"
    ).unlink()
    shutil.rmtree(
        project / ".gen" / "store" / (project / ".gen" / "refs" / "b2.0").read_text().strip()
    )
    found = states_of(load(project, "smoke", backend="deepfloyd"))
    version = table.all_sections()["b1.2"].version
    assert found["b1.2"].reasons == [f"code version {version - 1} → {version}"]
    assert found["b1.2.2"].reasons == ["needs b1.2, which is stale"]
    assert found["b2.1"].reasons == ["its stored result is damaged (data.json is missing)"]
    assert found["b2.0"].reasons == ["its stored result is missing from the store"]
    assert "backend: local → deepfloyd" in found["a1.1"].reasons
    assert "no longer needs b2.0, b2.4" in found["a1.1"].reasons
    assert found["b1.1"].state == "fresh" and found["b1.1"].reasons == []


def test_values_are_shown_compactly():
    from generator.build import shown

    assert shown([0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0]) == "[0.0, 0.2, 0.4, …, 1.0] (7 items)"
    assert (shown("fp32"), shown(None), shown([1, 5])) == ('"fp32"', "null", "[1, 5]")
    assert len(shown("x" * 500)) == 60


def snapshot(project: Path) -> dict[str, str]:
    """Every path under the project, folders and the lock too, with the content of each file."""
    return {
        str(p.relative_to(project)): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file()
        else "folder"
        for p in sorted(project.rglob("*"))
    }


@pytest.mark.slow
def test_dry_run_lists_what_the_build_then_runs_and_writes_nothing(project):
    args = (
        "a1",
        *SMOKE,
        "--set",
        "a1.1.timesteps=[75, 150]",
    )  # Part A on local: cheap sections that others need
    for leftover in ("lock", "tmp"):  # so that a dry run that made them would show
        shutil.rmtree(project / ".gen" / leftover, ignore_errors=True)
        (project / ".gen" / leftover).unlink(missing_ok=True)
    before = snapshot(project)
    dry = gen(project, "build", "--dry-run", *args).stdout
    assert snapshot(project) == before
    would = [line.split(":")[0] for line in dry.splitlines() if ": would run (" in line]
    assert would == ["a1.1", "a1.2", "a1.3", "a1.4"]
    assert (
        "a1.1: would run (The forward process)\n    a1.1.timesteps: [75, 150, 225] → [75, 150]\n"
        in dry
    )
    assert (
        "a1.4: would run (Iterative denoising)\n    needs a1.1, which is stale\n"
        "    needs a1.2, which is stale\n"
    ) in dry
    assert "b2.4: up to date, would be reused" in dry and "a1.5: up to date, would be reused" in dry
    assert ran(gen(project, "build", *args)) == would


@pytest.mark.slow
def test_dry_run_says_forced_and_needed_by(built):
    out = gen(built, "build", "--dry-run", "a1.1", "--force", *SMOKE).stdout
    assert out.splitlines()[2:4] == [
        "b2.4: up to date, would be reused",
        "b2.0: up to date, would be reused",
    ]
    assert "a1.1: would run (The forward process)\n    forced with --force\n" in out
    out = gen(built, "build", "--dry-run", "a1.1", *SMOKE, "--set", "b2.4.epochs=3").stdout
    assert (
        "b2.4: would run (Class conditioning)\n    b2.4.epochs: 2 → 3\n    needed by a1.1\n" in out
    )
    assert "a1.1: would run (The forward process)\n    needs b2.4, which is stale\n" in out


@pytest.mark.parametrize(
    "args, named",
    [
        (["build", "--dry-run", "zz", *SMOKE], "zz"),
        (["build", "--dry-run", *SMOKE], "--all"),
        (["status", *SMOKE, "--set", "b1.2.1.nosuch=3"], "b1.2.1.nosuch"),
        (["build", "--dry-run", "b1", *SMOKE, "--set", "b1.2.1.epochs=-1"], "b1.2.1.epochs"),
    ],
)
def test_bad_input_exits_2_with_one_line(unbuilt, args, named):
    result = gen(unbuilt, *args, check=False)
    assert result.returncode == 2, result
    assert len(result.stderr.strip().splitlines()) == 1 and named in result.stderr


def test_status_and_dry_run_import_no_torch(unbuilt):
    code = (
        "import sys; from generator.cli import main\n"
        "sys.argv = ['gen'] + sys.argv[1:]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('NO TORCH')\n"
    )
    for args in (
        ["status", *SMOKE],
        ["build", "--all", "--dry-run", "--backend", "local"],
    ):  # --profile auto
        out = subprocess.run(
            [sys.executable, "-c", code, *args], cwd=unbuilt, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        assert "NO TORCH" in out.stdout
