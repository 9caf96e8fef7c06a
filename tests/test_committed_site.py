"""The committed docs/: the example write-up a fresh clone shows at once with `mkdocs serve`.

It must be exactly what `gen render` makes from the records it holds (no hand-edited
drift), hold every figure its records name, say on each page what made it, and stay light.
"""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import REPO, copy_project, gen, tree_digest

DOCS = REPO / "docs"
# bytes: the committed docs/ stays small enough to clone in seconds: under 5 MB with every anagram
# candidate, hybrid candidate and lever shown, the viewers' images and the flow-matching page
# (4.70 MB: figures as lossless WebP, samples.npz at 8 bits a pixel).
BUDGET = 5_000_000
PAGES = ("index.md", "part-a.md", "part-b.md")

pytestmark = pytest.mark.skipif(
    not (DOCS / "index.md").is_file(), reason="no committed docs/ in this checkout"
)


def _records() -> dict[str, dict]:
    return {
        p.parent.name: json.loads(p.read_text()) for p in sorted(DOCS.glob("assets/*/record.json"))
    }


def test_committed_pages_are_what_gen_render_makes_from_the_committed_records(tmp_path):
    """A fresh clone: no store, only docs/. Rendering again changes nothing and removes nothing."""
    project = copy_project(tmp_path / "clone")
    shutil.copytree(DOCS, project / "docs")
    before = tree_digest(project / "docs")
    result = gen(project, "render")
    assert result.stdout.strip().splitlines()[-1] == "docs/: 0 file(s) updated", result.stdout
    assert tree_digest(project / "docs") == before


def test_every_section_is_committed_with_every_file_its_record_names():
    from generator.chapters import all_sections

    records = _records()
    assert set(records) == set(all_sections())
    for sid, record in records.items():
        assert record["id"] == sid
        for name in record["files"]:
            assert (DOCS / name).is_file(), (sid, name)
        for figure in record["figures"]:
            assert (DOCS / "assets" / sid / figure["file"]).is_file(), (sid, figure)
        assert (DOCS / "assets" / sid / "data.json").is_file(), sid


def test_the_committed_write_up_is_the_default_commands_and_says_what_made_it():
    """The README's main command on a machine without a GPU: the quick profile on the local
    backend."""
    for record in _records().values():
        assert record["profile"] == "quick", record["id"]
        # Part B runs on no backend: null, or "none" in records published before null
        backend = record["backend"]
        assert backend is None or backend["name"] in ("local", "none"), record["id"]
        assert record["machine"]["cpu"] and record["machine"]["cores"] >= 1, record["id"]
    for page in PAGES:
        text = (DOCS / page).read_text()
        assert '!!! abstract "How this page was made"' in text, page
        assert "profile <code>quick</code>" in text and "not recorded" not in text, page
        assert "Not built yet" not in text, page


def test_the_committed_docs_stay_under_the_weight_budget(weight_report):
    files = [p for p in DOCS.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    largest = sorted(files, key=lambda p: p.stat().st_size, reverse=True)[:5]
    weight_report.append(
        f"docs/: {total / 1e6:.2f} MB in {len(files)} files; largest: "
        + ", ".join(f"{p.relative_to(DOCS)} {p.stat().st_size / 1e3:.0f} kB" for p in largest)
    )
    assert total < BUDGET, weight_report[-1]
    shipped = {p.name for p in (DOCS / "assets" / "inputs").iterdir()}
    named = {
        value.rsplit("/", 1)[-1]
        for record in _records().values()
        for value in _strings(record["params"])
    }
    assert shipped - {"CREDITS.md"} <= named, "an input image no section uses is shipped"
    assert not list(DOCS.rglob("*.map"))


def test_the_committed_site_builds_strictly_without_source_maps(tmp_path, weight_report):
    from test_site import mkdocs_build

    project = copy_project(tmp_path / "clone")
    shutil.copytree(DOCS, project / "docs")
    site = mkdocs_build(project)
    files = [p for p in site.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    weight_report.append(
        f"site/ (mkdocs build of docs/): {total / 1e6:.2f} MB in {len(files)} files"
    )
    assert not [p for p in files if p.suffix == ".map"]
    for page in ("index.html", "part-a.html", "part-b.html"):
        assert (site / page).is_file()


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    return [s for v in value for s in _strings(v)] if isinstance(value, list) else []
