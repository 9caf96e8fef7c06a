"""The built site: mkdocs --strict passes, and a real browser sees typeset math and every image."""

import json
import os
import subprocess
import sys
from pathlib import Path

import browser
import pytest

PAGES = ["index.html", "part-a.html", "part-b.html", "sweeps.html"]


def mkdocs_build(project: Path) -> Path:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    result = subprocess.run(
        [str(mkdocs), "build", "--strict"],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr
    return project / "site"


@pytest.fixture(scope="module")
def site(built):
    return mkdocs_build(built)


@pytest.mark.slow
def test_pages_hold_every_section_its_figures_and_how_to_rebuild(built, site):
    from generator.chapters import all_sections

    for section in all_sections().values():
        page = (built / f"docs/{section.page.replace('_', '-')}.md").read_text()
        heading = "#" * (section.number.count(".") + 2)
        # the write-up's number and the table's title, with the id as the anchor
        assert f"{heading} {section.number} {section.title} {{: #{section.id} }}" in page
        assert f"gen build {section.id} --profile smoke" in page
        record = json.loads((built / f"docs/assets/{section.id}/record.json").read_text())
        for figure in record["figures"]:
            assert f"(assets/{section.id}/{figure['file']})" in page, (section.id, figure["file"])
            assert (site / "assets" / section.id / figure["file"]).is_file()
    for name in ("part-a", "part-b"):
        assert "Not built yet" not in (built / f"docs/{name}.md").read_text()
    page = (built / "docs/part-b.md").read_text()
    # The smoke profile departs from the write-up, and each section says how.
    assert "<code>epochs</code> = <code>2</code> (write-up: <code>5</code>)" in page
    assert (
        "gen build a1.8 --profile smoke --backend local" in (built / "docs/part-a.md").read_text()
    )
    assert (site / "assets/inputs/CREDITS.html").is_file()
    home = (built / "docs/index.md").read_text()
    assert (
        "| [b1.2.1](part-b.md#b1.2.1) | Training the single-step denoiser | <code>smoke</code> |"
        in home
    )


@pytest.mark.slow
def test_a_page_is_rewritten_only_when_it_changes(built, tmp_path):
    from generator.render import render
    from generator.store import Store

    assert render(built, Store(built / ".gen")) == []


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _need_chromium():
    if browser.find_chromium() is None:
        if _in_ci():
            pytest.fail("Chromium and chromedriver are required in CI (.ci/run installs them)")
        pytest.skip(
            "no Chromium/chromedriver on this machine (apt-get install chromium chromium-driver)"
        )


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("over", ["http", "file"])
def test_real_browser_sees_typeset_math_and_no_broken_image(site, over):
    """Served and opened from disk alike: equations typeset on first load, every image there, links
    to pages."""
    _need_chromium()
    report = browser.inspect_site(site, PAGES, over=over, lightbox=True)
    for page in PAGES:
        r = report[page]
        assert r["broken_images"] == [], (page, r)
        assert r["external_requests"] == [], (page, r)
        assert r["console_errors"] == [], (page, r)
        assert r["math"] > 0 and r["math_typeset"] == r["math"], (page, r)
        for link in r["links"]:  # every link names a file: no folder listing from disk
            assert (site / link).is_file(), (page, link)
    for page in ("part-a.html", "part-b.html", "sweeps.html"):
        r = report[page]
        assert r["lightbox"]["opened"] and r["lightbox"]["width"] > r["lightbox"]["small"], (
            page,
            r["lightbox"],
        )
        assert r["lightbox_links"] == len(r["figure_labels"]), (page, r)
        assert r["figure_labels"] == [
            f"Figure {k}." for k in range(1, len(r["figure_labels"]) + 1)
        ], (page, r)
        for image in r["enlarged"]:  # whole multiples of their pixels, drawn as square pixels
            assert (
                image["width"] % image["natural"] == 0 and image["width"] >= 2 * image["natural"]
            ), (page, image)
            assert image["shown"] == image["width"] and image["rendering"] == "pixelated", (
                page,
                image,
            )
    assert report["index.html"]["images"] >= 15  # a thumbnail for each section with a figure
    assert report["part-b.html"]["math"] >= 8
    assert report["part-b.html"]["images"] >= 11
    assert report["part-a.html"]["math"] >= 8
    assert report["part-a.html"]["images"] >= 15
    assert report["sweeps.html"]["images"] >= 10  # the smoke sweeps' points and plots
    assert any(report[p]["enlarged"] for p in PAGES)


@pytest.mark.slow
@pytest.mark.browser
def test_on_a_phone_nothing_runs_off_the_page(site):
    """At 390 px: the page does not scroll sideways; wide tables and code scroll inside their own
    box."""
    _need_chromium()
    report = browser.inspect_site(site, PAGES, over="file", width=390)
    for page in PAGES:
        r = report[page]
        assert r["page_width"] <= r["window_width"], (page, r["page_width"])
        assert r["overflowing"] == [], (page, r["overflowing"])
        assert r["math_typeset"] == r["math"], (page, r)
