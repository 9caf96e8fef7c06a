"""The CLI as a user calls it: help, list, and one clear line for every bad input."""

import subprocess
import sys

import pytest
from conftest import copy_project, gen, tree_digest

from generator.chapters import all_sections


def test_help_and_list_do_not_import_torch(tmp_path):
    project = copy_project(tmp_path / "p")
    code = (
        "import sys; from generator.cli import main\n"
        "sys.argv = ['gen'] + sys.argv[1:]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('NO TORCH')\n"
    )
    for args in (["--help"], ["list"], ["build", "--help"]):
        out = subprocess.run(
            [sys.executable, "-c", code, *args], cwd=project, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        assert "NO TORCH" in out.stdout


@pytest.mark.slow
def test_list_shows_every_section_and_its_state(built):
    out = gen(built, "list", "--profile", "smoke").stdout
    for sid in [sid for sid in all_sections() if sid.startswith("b")]:
        assert f"{sid} " in out
    assert "never built" not in out and "fresh" in out
    # Another parameter value was never built; the section's old result is stale.
    out = gen(built, "list", "--profile", "smoke", "--set", "b1.2.1.epochs=4").stdout
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "stale" in lines["b1.2.1"] and "stale" in lines["b1.2.2"] and "fresh" in lines["b1.2"]


@pytest.fixture(scope="module")
def unbuilt(tmp_path_factory):
    """A copy of the project with nothing built: bad input is refused before anything runs."""
    return copy_project(tmp_path_factory.mktemp("unbuilt") / "project")


# More cases, with gen.yaml and input files broken too, are in test_bad_inputs.py.
BAD_INPUTS = [
    (["build", "b1", "--set", "nosuch.epochs=2", "--profile", "smoke"], "nosuch.epochs"),
    (["build", "b1", "--set", "b1.2.sigmas=[0.5, -1]", "--profile", "smoke"], "b1.2.sigmas"),
    (["build", "b1", "--set", "b1.2.1.precision=fp8", "--profile", "smoke"], "b1.2.1.precision"),
    (["build", "b1", "--set", "b1.2.1.lr=0", "--profile", "smoke"], "b1.2.1.lr"),
    (["build", "b1", "--bogus"], "--bogus"),
    (["build"], "--all"),
    (
        [
            "build",
            "b2",
            "--set",
            "b2.2.epochs=2",
            "--set",
            "b2.2.sample_epochs=[1, 5]",
            "--profile",
            "smoke",
        ],
        "b2.2.sample_epochs",
    ),
    (["build", "b2", "--set", "b2.5.guidance=-1", "--profile", "smoke"], "b2.5.guidance"),
    (
        ["build", "b1", "--set", "b1.2.1.epochs=-1", "--profile", "auto"],
        "b1.2.1.epochs",
    ),  # the default profile too
]


@pytest.mark.parametrize("args, named", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line_and_changes_nothing(unbuilt, args, named):
    before = tree_digest(unbuilt / "docs", unbuilt / ".gen")
    result = gen(unbuilt, *args, check=False)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0] and "Traceback" not in result.stderr
    assert tree_digest(unbuilt / "docs", unbuilt / ".gen") == before


def test_set_parses_values_by_type(tmp_path):
    from generator.config import load

    project = copy_project(tmp_path / "p")
    config = load(
        project,
        "smoke",
        ("b1.2.1.lr=1e-4", "b1.2.1.epochs=3", "b1.2.sigmas=[0.1, 0.3]", "b1.2.1.precision=bf16"),
    )
    p = config.params["b1.2.1"]
    assert p.lr == pytest.approx(1e-4) and p.epochs == 3 and p.precision == "bf16"
    assert config.params["b1.2"].sigmas == [0.1, 0.3]
    assert config.command("b1.2.1", ["b1.2.1", "b1.1"]) == (
        "gen build b1.2.1 --profile smoke --set b1.2.1.lr=1e-4 --set b1.2.1.epochs=3 "
        "--set b1.2.1.precision=bf16"
    )


def test_profiles_overlay_the_full_numbers(tmp_path):
    from generator.config import load

    project = copy_project(tmp_path / "p")
    full = load(project, "full").params["b1.2.1"]
    assert (full.epochs, full.batch_size, full.sigma, full.lr) == (5, 256, 0.5, 1e-3)
    assert load(project, "full").params["b1.1"].hidden == 128
    assert load(project, "auto", cuda=True).profile == "full"
    assert load(project, "auto", cuda=False).profile == "quick"
    assert load(project, "smoke").params["b1.2.1"].epochs < full.epochs
