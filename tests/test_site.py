"""The built site: mkdocs --strict passes, and a real browser sees typeset math and every image."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import browser

PAGES = ["index.html", "part-a/index.html", "part-b/index.html"]


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


def test_pages_hold_every_section_its_figures_and_how_to_rebuild(built, site):
    from generator.sections import all_sections

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
    assert "gen build a1.8 --profile smoke --backend local" in (built / "docs/part-a.md").read_text()
    assert (site / "assets/inputs/CREDITS.md").is_file() or (site / "assets/inputs/CREDITS/index.html").is_file()
    home = (built / "docs/index.md").read_text()
    assert "| [b1.2.1](part-b.md#b1.2.1) | Training the single-step denoiser | <code>smoke</code> |" in home


def test_a_page_is_rewritten_only_when_it_changes(built, tmp_path):
    from generator.render import render
    from generator.store import Store

    assert render(built, Store(built / ".gen")) == []


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.mark.browser
def test_real_browser_sees_typeset_math_and_no_broken_image(site):
    if browser.find_chromium() is None:
        if _in_ci():
            pytest.fail("Chromium and chromedriver are required in CI (.ci/run installs them)")
        pytest.skip("no Chromium/chromedriver on this machine (apt-get install chromium chromium-driver)")
    report = browser.inspect_site(site, PAGES)
    for page in PAGES:
        r = report[page]
        assert r["broken_images"] == [], (page, r)
        assert r["external_requests"] == [], (page, r)
        assert r["console_errors"] == [], (page, r)
        assert r["math_typeset"] == r["math"], (page, r)
    assert report["part-b/index.html"]["math"] >= 8
    assert report["part-b/index.html"]["images"] >= 11
    assert report["part-a/index.html"]["math"] >= 8
    assert report["part-a/index.html"]["images"] >= 15
