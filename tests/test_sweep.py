"""`gen sweep`: points are ordinary cached builds, the outcome is published, Ray gives the same
entries."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA_DIR, REPO, copy_project, gen, ran, tree_digest
from PIL import Image

from generator.config import load
from generator.errors import SweepFailed, UsageError
from generator.sweep import axis, expand_range, named, points, split_values

SMOKE = ("--profile", "smoke", "--backend", "local")


# ------------------------------------------------------------------ reading sweeps


@pytest.mark.parametrize(
    "text, values",
    [
        ("0:10:2", [0, 2, 4, 6, 8, 10]),
        ("0:9:2", [0, 2, 4, 6, 8]),
        ("0:1:0.25", [0.0, 0.25, 0.5, 0.75, 1.0]),
        ("10:0:-5", [10, 5, 0]),
    ],
)
def test_a_range_includes_its_stop_where_the_steps_land_on_it(text, values):
    assert expand_range("a1.6.guidance", text) == values


@pytest.mark.parametrize("text", ["0:10:0", "0:10:-1", "0:100000:1"])
def test_a_range_that_never_ends_or_is_too_long_is_refused(text):
    with pytest.raises(UsageError, match="bad range"):
        expand_range("a1.6.guidance", text)


def test_values_split_at_top_level_commas_only():
    assert split_values("[1, 2],[3], 4") == ["[1, 2]", "[3]", "4"]
    assert axis("a1.9.sigmas", "[1.0],[1.5, 2]").values == ([1.0], [1.5, 2])
    assert axis("a1.6.guidance", "0,1,3").values == (0, 1, 3)


def test_the_named_sweeps_cover_what_the_write_up_asks_about():
    sweeps = named(REPO, "quick")
    assert {s.section for s in sweeps.values()} >= {"a1.6", "a1.7", "a1.9", "b2.5"}
    smoke = named(REPO, "smoke")  # the profile's overlay narrows some and leaves one out
    assert smoke["a1.7-i_start"].axes[0].values == ([1], [3]) and "b2.5-guidance" not in smoke


def test_a_point_builds_the_shown_section_and_its_needs_not_its_subsections():
    """f2.6.1 reads f2.6's numbers, so a point of f2.6 would change its key and train it again."""
    config = load(REPO, "smoke", backend="local")
    found = points(config, named(REPO, "smoke")["f2.6-guidance"])
    planned = {section.id for section, _key, _parts in found[0].planned}
    assert "f2.6" in planned and "f2.5" in planned and "f2.6.1" not in planned


def test_a_metric_is_checked_on_the_first_point_where_nothing_was_built(tmp_path):
    """With no record of the section to check --metric against, the first point is built, and the
    sweep stops there: one line, with the close name, and no other point runs."""
    project = copy_project(tmp_path / "project")
    args = ("sweep", "b1.1.hidden=4,8", "--metric", "parms", "--profile", "smoke")
    result = gen(project, *args, check=False)
    assert result.returncode == 2, result
    assert result.stderr.strip().splitlines() == [
        "error: --metric parms: b1.1 reports no such metric; did you mean 'params'? valid: params"
    ]
    assert "b1.1 [hidden=4]: done" in result.stdout and "hidden=8" not in result.stdout
    assert not (project / ".gen/sweeps").exists()
    # Now a record is there: a bad name is refused before anything runs.
    again = gen(project, *args, check=False)
    assert again.returncode == 2 and ": running" not in again.stdout


def test_bad_sweeps_get_one_line_and_exit_2(tmp_path):
    project = copy_project(tmp_path / "project")  # nothing built: each is refused before it runs
    for args, message in [
        (("a1.6.guidence=0,1",), "did you mean 'guidance'"),
        (("a1.6.guidance=0,1,0",), "given twice"),
        (("a1.6.guidance=0,80",), "a1.6.guidance"),
        (("no-such-sweep",), "no sweep 'no-such-sweep'"),
        (("a1.6.guidance=0:1:0",), "never gets"),
        ((), "SECTION.PARAM=V1,V2"),
    ]:
        result = gen(project, "sweep", *args, *SMOKE, check=False)
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, (
            args,
            result.stderr,
        )


# ------------------------------------------------------------------ running sweeps


@pytest.mark.slow
def test_build_all_builds_the_named_sweeps_and_the_page_shows_them(built):
    """Every point is an entry like any build's; the point at the section's own value is the
    section's entry."""
    store = built / ".gen"
    page = (built / "docs/sweeps.md").read_text()
    for name, sweep in named(built, "smoke").items():
        outcome = json.loads((built / "docs/assets/sweeps" / name / "sweep.json").read_text())
        assert [p["values"][sweep.axes[0].key] for p in outcome["points"]] == list(
            sweep.axes[0].values
        )
        for point in outcome["points"]:
            record = json.loads((store / "store" / point["key"] / "record.json").read_text())
            assert record["params"][sweep.axes[0].name] == point["values"][sweep.axes[0].key]
            assert _figure(built / "docs", name, point).is_file()
        assert outcome["plots"] and all(
            (built / "docs/assets/sweeps" / name / p["file"]).is_file() for p in outcome["plots"]
        )
        assert f"{{: #{name} }}" in page
    own = (store / "refs" / "a1.6").read_text().strip()
    a16 = json.loads((built / "docs/assets/sweeps/a1.6-guidance/sweep.json").read_text())
    assert own in [p["key"] for p in a16["points"]]  # γ = 5 on local: a1.6 itself, reused


def _figure(docs, name: str, point: dict):
    """Where a point's figure is published: in its sweep's folder, or stored once elsewhere."""
    at = point.get("stored_at")
    return docs / at["path"] if at else docs / "assets/sweeps" / name / point["figure"]


def test_a_figure_published_twice_is_stored_once_and_read_back_where_docs_alone_holds_it(
    tmp_path,
):
    from generator.render import _published_sweep, _store_once, published_sweeps

    docs = tmp_path / "docs"
    figure = b"the same bytes"
    sweeps = {
        "s": {
            Path("sweep.json"): json.dumps(
                {
                    "points": [
                        {"figure": "point0.png", "caption": ""},
                        {"figure": "point1.png", "caption": ""},
                    ],
                    "plots": [],
                    "name": "s",
                }
            ).encode(),
            Path("point0.png"): figure,
            Path("point1.png"): figure,
        }
    }
    _store_once(docs, sweeps, {})
    assert set(sweeps["s"]) == {Path("sweep.json"), Path("point0.png")}
    folder = docs / "assets/sweeps/s"
    for rel, data in sweeps["s"].items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    (point0, point1) = published_sweeps(docs / "assets/sweeps")[0]["points"]
    assert point0["path"] == point1["path"] == "assets/sweeps/s/point0.png"
    # docs/ alone: the sweep in full again, and the same files once stored once
    again = _published_sweep(docs, folder, lambda p: p.read_bytes(), [])
    assert again[Path("point1.png")] == figure
    assert "stored_at" not in again[Path("sweep.json")].decode()
    _store_once(docs, {"s": again}, {})
    assert again == sweeps["s"]
    # the one copy changed: the point is left without a figure rather than showing another
    (folder / "point0.png").write_bytes(b"other bytes")
    gone = json.loads(
        _published_sweep(docs, folder, lambda p: p.read_bytes(), [])[Path("sweep.json")]
    )
    assert gone["points"][1]["figure"] is None


def _entries(project, outcome: dict) -> dict[str, dict]:
    """What each point's entry holds, its timing and the time stamps inside .npz files aside."""
    found = {}
    for point in outcome["points"]:
        folder = project / ".gen/store" / point["key"]
        record = json.loads((folder / "record.json").read_text())
        manifest = json.loads((folder / "manifest.json").read_text())["files"]
        files = {
            rel: f["sha256"]
            for rel, f in manifest.items()
            if rel.endswith((".png", ".webp", ".gif", ".json")) and not rel.endswith("record.json")
        }
        with np.load(folder / "public/samples.npz") as samples:
            arrays = {name: samples[name].tolist() for name in samples.files}
        found[point["key"]] = {
            "record": {k: v for k, v in record.items() if k != "duration_s"},
            "files": files,
            "samples": arrays,
        }
    return found


@pytest.mark.slow
def test_the_same_sweep_on_an_embedded_ray_gives_identical_entries(project):
    pytest.importorskip("ray")
    sweep = ("a1.6.guidance=2,4", "--name", "g")
    local = gen(project, "sweep", *sweep, *SMOKE)
    assert "2 point(s) of a1.6, 0 built before" in local.stdout
    outcome = json.loads((project / "docs/assets/sweeps/g/sweep.json").read_text())
    expected = _entries(project, outcome)
    # Gone from the store: Ray must make them again, from the shipped b2.4 and b2.0.
    for key in expected:
        shutil.rmtree(project / ".gen/store" / key)
    env_cpus = {"GEN_RAY_CPUS": "2"}
    result = gen(project, "sweep", *sweep, *SMOKE, "--executor", "ray", env=env_cpus)
    assert "ray: 2 CPU(s)" in result.stdout
    assert result.stdout.count("a1.6 [guidance=") == 4  # queued and done, per point
    # Bit for bit, the metrics too: a Ray task computes with the driver's torch threads.
    assert _entries(project, outcome) == expected
    again = gen(project, "sweep", *sweep, *SMOKE, "--executor", "ray", env=env_cpus)
    assert "2 built before, 0 section run(s) to do" in again.stdout and "ray:" not in again.stdout
    # A build runs on Ray the same way, and its section's page is what the local build made.
    before = tree_digest(project / "docs/assets/a1.2")
    build = gen(project, "build", "a1.2", "--force", *SMOKE, "--executor", "ray", env=env_cpus)
    assert (
        ran(build) == [] and "a1.2: queued" in build.stdout and "1 section(s) ran" in build.stdout
    )
    after = tree_digest(project / "docs/assets/a1.2")
    assert {p: d for p, d in after.items() if p.endswith(".webp")} == {
        p: d for p, d in before.items() if p.endswith(".webp")
    }


@pytest.mark.slow
def test_a_failing_point_is_named_the_others_are_kept_and_a_rerun_resumes(project, monkeypatch):
    from generator.chapters import a_sampling
    from generator.config import load
    from generator.sweep import from_command_line, run

    monkeypatch.setenv("GEN_DATA_DIR", str(DATA_DIR))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.delenv("GEN_CACHE_DIR", raising=False)
    config = load(project, "smoke", backend="local")
    sweep = from_command_line(["a1.6.guidance=0,2,4"], name="failing", show=None, metrics=())
    cfg = a_sampling.cfg

    def breaks_at_two(p, ctx):
        if p.guidance == 2:
            raise ZeroDivisionError("no guidance today")
        return cfg(p, ctx)

    monkeypatch.setattr(a_sampling, "cfg", breaks_at_two)
    lines = []
    with pytest.raises(
        SweepFailed, match=r"a1\.6 \[guidance=2\] failed: ZeroDivisionError: no guidance today"
    ):
        run(config, sweep, log=lines.append)
    assert any(
        line.startswith("a1.6 [guidance=4]: done") for line in lines
    )  # after the failure, the rest ran
    assert not (project / ".gen/sweeps/failing").exists()
    monkeypatch.setattr(a_sampling, "cfg", cfg)
    lines.clear()
    assert run(config, sweep, log=lines.append)
    assert "sweep failing: 3 point(s) of a1.6, 2 built before, 1 section run(s) to do" in lines
    assert [line for line in lines if ": running" in line] == [
        "a1.6 [guidance=2]: running (Classifier-free guidance)"
    ]
    outcome = json.loads((project / "docs/assets/sweeps/failing/sweep.json").read_text())
    assert [p["values"]["a1.6.guidance"] for p in outcome["points"]] == [0, 2, 4]


@pytest.mark.slow
def test_a_sweep_never_moves_the_sections_last_build_and_shows_the_points_own_figures(project):
    before = (project / ".gen/refs/a1.6").read_text()
    page = (project / "docs/part-a.md").read_text()
    gen(project, "sweep", "a1.6.guidance=1,2", "--name", "two", *SMOKE)
    assert (project / ".gen/refs/a1.6").read_text() == before
    assert (project / "docs/part-a.md").read_text() == page
    outcome = json.loads((project / "docs/assets/sweeps/two/sweep.json").read_text())
    for point in outcome["points"]:
        published = np.asarray(Image.open(_figure(project / "docs", "two", point)))
        own = np.asarray(Image.open(project / ".gen/store" / point["key"] / "public/samples.webp"))
        assert np.array_equal(published, own)
    assert "{: #two }" in (project / "docs/sweeps.md").read_text()
    build = gen(project, "build", "a1.6", *SMOKE)
    assert ran(build) == []


@pytest.mark.slow
def test_a_sweep_of_one_point_tabulates_its_metrics_and_plots_nothing(project):
    """One dot against one value shows nothing: a search of one point (as a1.9-pairs) keeps its
    table and draws no plot."""
    gen(project, "sweep", "a1.6.guidance=2", "--name", "one", "--metric", "accuracy", *SMOKE)
    outcome = json.loads((project / "docs/assets/sweeps/one/sweep.json").read_text())
    assert outcome["plots"] == [{"metric": "accuracy", "file": None}]
    assert not list((project / "docs/assets/sweeps/one").glob("plot*"))
    page = (project / "docs/sweeps.md").read_text()
    section = page[page.index("{: #one }") :]
    section = section[: section.find("\n## ", 1) if "\n## " in section[1:] else len(section)]
    assert "| point | <code>accuracy</code> |" in section
    assert "against <code>" not in section and "highest" not in section


@pytest.mark.slow
def test_a_sweep_shows_the_figure_it_names_and_its_command_makes_it_again(project):
    gen(project, "sweep", "a1.6.guidance=1,2", "--name", "gif", "--figure", "sampling.gif", *SMOKE)
    outcome = json.loads((project / "docs/assets/sweeps/gif/sweep.json").read_text())
    assert outcome["figure_asked"] == "sampling.gif"
    for point in outcome["points"]:
        published = _figure(project / "docs", "gif", point)
        own = project / ".gen/store" / point["key"] / "public/sampling.gif"
        assert published.read_bytes() == own.read_bytes()
    assert "--name gif --figure sampling.gif" in outcome["command"]
    assert "<code>sampling.gif</code>" in (project / "docs/sweeps.md").read_text()
    # a figure the section does not make: one line that lists those it does
    result = gen(project, "sweep", "a1.6.guidance=1,2", "--figure", "nope.png", *SMOKE, check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "no figure nope.png" in lines[0] and "samples.webp, sampling.gif" in lines[0]
