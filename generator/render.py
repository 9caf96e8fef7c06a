"""Store → docs/: section files, site assets and pages from Jinja templates.

The renderer runs no model. It publishes the last entry built for each section
(the store's refs) and rewrites a file only when its content changed, so
`mkdocs serve` reloads just what a rebuild touched.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from .sections import all_sections
from .store import Store, write_atomic

TEMPLATES = "templates"
SITE_ASSETS = "site_assets"
DOCS = "docs"


@dataclass
class SectionView:
    """A section as templates see it: the table's number and title, and its last result (`built` once it ran)."""

    id: str
    number: str
    title: str
    page: str  # the page's file under docs/
    built: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    figures: list[dict] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def heading(self) -> str:
        """The Markdown heading: ## for 0 and 1, ### for 1.1, #### for 1.7.1."""
        return "#" * (self.number.count(".") + 2)

    @property
    def link(self) -> str:
        return f"{self.page}#{self.id}"

    def paths(self) -> list[dict]:
        """Its figures, each with its path relative to docs/."""
        return [{**f, "path": f"assets/{self.id}/{f['file']}"} for f in self.figures]


def _sync_tree(source: Path, target: Path, *, prune: bool) -> list[Path]:
    """Copy changed files from `source` into `target`; with prune, drop the rest."""
    changed = []
    wanted = set()
    for src in sorted(source.rglob("*")):
        if src.is_file():
            rel = src.relative_to(source)
            wanted.add(rel)
            if write_atomic(target / rel, src.read_bytes()):
                changed.append(target / rel)
    if prune and target.is_dir():
        for old in sorted(target.rglob("*"), reverse=True):
            if old.is_file() and old.relative_to(target) not in wanted:
                old.unlink()
                changed.append(old)
            elif old.is_dir() and not any(old.iterdir()):
                old.rmdir()
    return changed


def views(store: Store) -> dict[str, SectionView]:
    out = {}
    for sid, section in all_sections().items():
        entry = store.last_entry(sid)
        page = _page_name(section.page + ".md.j2")
        view = SectionView(sid, section.number, section.title, page)
        if entry is not None:
            record = entry.record
            view = SectionView(sid, section.number, section.title, page, True, record["params"], record["metrics"],
                               record["figures"], entry.data, record)
        out[sid] = view
    return out


def environment(root: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(root / TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _format_number
    return env


def _format_number(value: float, digits: int = 4) -> str:
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e6:
        return f"{int(value):,}"
    return f"{value:.{digits}g}"


def _page_name(template: str) -> str:
    """templates/part_a.md.j2 → part-a.md"""
    return template.removesuffix(".j2").replace("_", "-")


def render(root: Path, store: Store) -> list[Path]:
    """Rewrite docs/ from the store; returns the files that changed."""
    docs = root / DOCS
    changed = _sync_tree(root / SITE_ASSETS, docs / "assets", prune=False)
    sections = views(store)
    for sid, view in sections.items():
        if view.built:
            changed += _sync_tree(store.last_entry(sid).public, docs / "assets" / sid, prune=True)
        elif (docs / "assets" / sid).exists():
            shutil.rmtree(docs / "assets" / sid)
    env = environment(root)
    for template in sorted((root / TEMPLATES).glob("*.md.j2")):
        if template.name.startswith("_"):
            continue
        page = docs / _page_name(template.name)
        text = env.get_template(template.name).render(s=sections)
        if write_atomic(page, text):
            changed.append(page)
    return changed
