"""render keeps what it cannot rebuild, follows no symbolic link, and shows user text as text."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import markdown
import pytest
import yaml
from conftest import DATA_DIR, REPO, gen, tree_digest

from generator.errors import UsageError
from generator.render import SectionView, environment, views
from generator.store import Store

MARKUP = "<img src=x onerror=alert(1)>"
PROMPT = MARKUP + " `code` | [link](javascript:alert(2)) *em* $x$ \\(y\\) {: #z }"


def _gen(project: Path, *args: str, cache: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "GEN_DATA_DIR": str(DATA_DIR), "TQDM_DISABLE": "1"}
    env.pop("GEN_CACHE_DIR", None)
    if cache is not None:
        env["GEN_CACHE_DIR"] = str(cache)
    script = Path(sys.executable).with_name("gen")
    return subprocess.run(
        [str(script), *args], cwd=project, env=env, capture_output=True, text=True
    )


class _Page(HTMLParser):
    """Every element with its attributes, and the text, of an HTML page."""

    def __init__(self, html: str):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _assert_inert(html: str) -> str:
    """No element or attribute made from the injected markup; returns the page's text."""
    page = _Page(html)
    for tag, attrs in page.elements:
        assert not any(name.startswith("onerror") for name in attrs), (tag, attrs)
        assert not (tag == "img" and attrs.get("src") == "x"), attrs
        assert not (attrs.get("href") or "").startswith("javascript:"), attrs
    return "".join(page.text)


@pytest.mark.slow
def test_render_with_an_empty_store_deletes_nothing(project, tmp_path):
    before = tree_digest(project / "docs" / "assets")
    files = {p for p in (project / "docs").rglob("*") if p.is_file()}
    result = _gen(project, "render", cache=tmp_path / "empty")
    assert result.returncode == 0, result.stderr
    assert tree_digest(project / "docs" / "assets") == before
    assert files <= {p for p in (project / "docs").rglob("*") if p.is_file()}
    assert "removed" not in result.stdout


@pytest.mark.slow
def test_render_prunes_only_built_and_departed_sections_and_names_what_it_removed(project):
    assets = project / "docs" / "assets"
    (assets / "a1.1" / "extra.png").write_bytes(b"not in the entry")
    (assets / "zz9").mkdir()  # a section no longer in the table
    (assets / "zz9" / "record.json").write_text("{}")
    (assets / "mine").mkdir()  # not a section's folder
    (assets / "mine" / "notes.txt").write_text("kept")
    result = _gen(project, "render")
    assert result.returncode == 0, result.stderr
    removed = sorted(line for line in result.stdout.splitlines() if line.startswith("removed "))
    assert removed == ["removed docs/assets/a1.1/extra.png", "removed docs/assets/zz9/record.json"]
    assert not (assets / "zz9").exists() and not (assets / "a1.1" / "extra.png").exists()
    assert (assets / "mine" / "notes.txt").read_text() == "kept"
    assert (assets / "a1.1" / "record.json").is_file()


@pytest.mark.slow
def test_links_in_site_assets_are_skipped_and_reported(project, tmp_path):
    (tmp_path / "secret.txt").write_text("outside")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "inner.txt").write_text("outside")
    (project / "site_assets" / "inputs" / "secret.txt").symlink_to(tmp_path / "secret.txt")
    (project / "site_assets" / "linked").symlink_to(tmp_path / "folder")
    result = _gen(project, "render")
    assert result.returncode == 0, result.stderr
    assert not (project / "docs" / "assets" / "inputs" / "secret.txt").exists()
    assert not (project / "docs" / "assets" / "linked").exists()
    assert "skipped site_assets/inputs/secret.txt: a symbolic link (not followed)" in result.stdout
    assert "skipped site_assets/linked: a symbolic link (not followed)" in result.stdout


@pytest.mark.slow
def test_a_link_under_docs_stops_render_and_build_before_anything_is_written(project, tmp_path):
    outside = tmp_path / "outside"
    shutil.move(project / "docs" / "assets" / "b1.2", outside)
    (outside / "theirs.txt").write_text("not the project's")
    (project / "docs" / "assets" / "b1.2").symlink_to(outside)
    (project / "docs" / "assets" / "a1.1" / "extra.png").write_bytes(b"would be pruned")
    before = tree_digest(outside, project / "docs")
    for args in (("render",), ("build", "b1.2", "--profile", "smoke")):
        result = _gen(project, *args)
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stderr.count("\n") == 1
        assert (
            "docs/assets/b1.2 is a symbolic link" in result.stderr
            and "remove the link" in result.stderr
        )
        assert "running" not in result.stdout
        assert tree_digest(outside, project / "docs") == before


def test_odd_figure_names_are_refused():
    view = SectionView(
        "a1.1",
        "1.1",
        "t",
        "part-a.md",
        True,
        figures=[{"file": 'a.png" onerror="x', "caption": ""}],
    )
    with pytest.raises(UsageError, match="not a plain file name"):
        view.paths()


@pytest.mark.slow
def test_an_image_path_full_of_markup_stays_text_on_the_built_site(project):
    image = project / "site_assets" / "inputs" / f"{MARKUP}.png"
    shutil.copy(project / "site_assets" / "inputs" / "digit_two_drawn.png", image)
    gen(
        project,
        "build",
        "a1.1",
        "--profile",
        "smoke",
        "--backend",
        "local",
        "--set",
        f"a1.1.image=site_assets/inputs/{image.name}",
    )
    mkdocs = Path(sys.executable).with_name("mkdocs")
    subprocess.run(
        [str(mkdocs), "build", "--strict", "--quiet"], cwd=project, check=True, capture_output=True
    )
    text = _assert_inert((project / "site" / "part-a.html").read_text())
    assert text.count(f"site_assets/inputs/{MARKUP}.png") >= 2  # the caption and the prose show it


@pytest.mark.slow
def test_prompts_and_captions_full_of_markup_stay_text(project):
    """The local backend takes digits only as prompts, so the markup goes into the views render
    gets."""
    sections = views(project, Store(project / ".gen"))
    for sid in ("a1.3", "a1.7"):
        view = sections[sid]
        view.params["prompt"] = PROMPT
        view.figures = [{**f, "caption": f"{f['caption']} {PROMPT}"} for f in view.figures]
        view.record["command"] = f"gen build {sid} --set '{sid}.prompt=\n```\n{MARKUP}'"
    text = environment(project).get_template("part_a.md.j2").render(s=sections)
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())["markdown_extensions"]
    names = [e if isinstance(e, str) else next(iter(e)) for e in config]
    settings = {k: v for e in config if isinstance(e, dict) for k, v in e.items()}
    html = markdown.markdown(text, extensions=names, extension_configs=settings)
    shown = _assert_inert(html)
    assert (
        shown.count(PROMPT) >= 5
    )  # a1.3: prose, caption, parameter table; a1.7: caption, parameter table
    assert (
        '<span class="arithmatex">\\(c\\)</span> the prompt' in html
    )  # the template's own maths still typesets
    assert shown.count(f"\\n```\\n{MARKUP}") == 2  # the command stays one line in its code block
