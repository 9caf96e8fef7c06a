"""The built site: mkdocs --strict passes, and a real browser sees typeset math and every image."""

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
    page = (built / "docs/part-b.md").read_text()
    for sid in ("b1.1", "b1.2", "b1.2.1", "b1.2.2", "b2.0", "b2.1", "b2.2", "b2.3", "b2.4", "b2.5"):
        assert f"### {sid} " in page
        assert f"gen build {sid} --profile smoke" in page
    assert "Not built yet" not in page
    # The smoke profile departs from the write-up, and each section says how.
    assert "`epochs` = `2` (write-up: `5`)" in page
    figures = ["b1.2/noising.png", "b1.2.1/loss.png", "b1.2.1/denoised.png", "b1.2.2/ood.png", "b2.2/loss.png"]
    figures += ["b2.3/samples_epoch_1.png", "b2.3/samples_epoch_2.png", "b2.3/sampling.gif"]
    figures += ["b2.4/loss.png", "b2.5/samples.png", "b2.5/sampling.gif"]
    for name in figures:
        assert f"(assets/{name})" in page
        assert (site / "assets" / name).is_file()
    page = (built / "docs/part-a.md").read_text()
    figures = ["a0/samples.png", "a1.1/forward.png", "a1.2/blur.png", "a1.3/one_step.png", "a1.4/steps.png"]
    figures += ["a1.4/compare.png", "a1.4/denoising.gif", "a1.5/samples.png", "a1.6/samples.png", "a1.7/edits.png"]
    figures += ["a1.7.1/edits.png", "a1.7.2/inpainting.png", "a1.7.3/edits.png", "a1.8/anagrams.png", "a1.9/hybrids.png"]
    for name in figures:
        assert f"(assets/{name})" in page
        assert (site / "assets" / name).is_file()
    assert "gen build a1.8 --profile smoke --backend local" in page
    assert (site / "assets/inputs/CREDITS.md").is_file() or (site / "assets/inputs/CREDITS/index.html").is_file()
    home = (built / "docs/index.md").read_text()
    assert "| b1.2.1 | Training the single-step denoiser | `smoke` |" in home


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
