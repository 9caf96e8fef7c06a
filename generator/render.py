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

from .registry import all_sections
from .store import Store, write_atomic

TEMPLATES = "templates"
SITE_ASSETS = "site_assets"
DOCS = "docs"


@dataclass
class SectionView:
    """A section as templates see it; `built` is False until it has run once."""

    id: str
    title: str
    built: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    figures: list[dict] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    departures: list[dict] = field(default_factory=list)  # parameters that differ from the write-up's

    def figure(self, name: str) -> dict:
        """The figure whose file is `name`, with its path relative to docs/."""
        for f in self.figures:
            if f["file"] == name:
                return {**f, "path": f"assets/{self.id}/{name}"}
        raise KeyError(f"{self.id} has no figure {name}")


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


def _departures(params: dict, full: dict) -> list[dict]:
    return [{"name": k, "used": v, "full": full.get(k)} for k, v in params.items() if full.get(k) != v and k != "seed"]


def views(root: Path, store: Store) -> dict[str, SectionView]:
    from .backends import BACKENDS
    from .config import load

    # Part A's numbers depend on the backend: the local model's are compared with its own full profile.
    full = {
        backend: {sid: p.model_dump(mode="json") for sid, p in load(root, "full", backend=backend).params.items()}
        for backend in BACKENDS
    }
    out = {}
    for sid, section in all_sections().items():
        entry = store.last_entry(sid)
        if entry is None:
            out[sid] = SectionView(sid, section.title)
            continue
        record = entry.record
        out[sid] = SectionView(
            sid,
            section.title,
            built=True,
            params=record["params"],
            metrics=record["metrics"],
            figures=record["figures"],
            data=entry.data,
            record=record,
            departures=_departures(record["params"], full[_backend_of(record)][sid])
            + _backend_departures(record, full[_backend_of(record)]),
        )
    return out


def _backend_departures(record: dict, full: dict) -> list[dict]:
    backend = record.get("backend", {})
    if "settings" not in backend:
        return []
    name = backend["name"]
    return [{**d, "name": f"{name}.{d['name']}"} for d in _departures(backend["settings"], full[name])]


def _backend_of(record: dict) -> str:
    """The backend whose full profile a record is compared with; Part B's numbers are the same under both."""
    from .backends import BACKENDS

    name = record.get("backend", {}).get("name")
    return name if name in BACKENDS else BACKENDS[0]


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


def render(root: Path, store: Store) -> list[Path]:
    """Rewrite docs/ from the store; returns the files that changed."""
    docs = root / DOCS
    changed = _sync_tree(root / SITE_ASSETS, docs / "assets", prune=False)
    sections = views(root, store)
    for sid, view in sections.items():
        if view.built:
            changed += _sync_tree(store.last_entry(sid).public, docs / "assets" / sid, prune=True)
        elif (docs / "assets" / sid).exists():
            shutil.rmtree(docs / "assets" / sid)
    env = environment(root)
    for template in sorted((root / TEMPLATES).glob("*.md.j2")):
        if template.name.startswith("_"):
            continue
        page = docs / template.name.removesuffix(".j2").replace("_", "-")
        text = env.get_template(template.name).render(s=sections)
        if write_atomic(page, text):
            changed.append(page)
    return changed
