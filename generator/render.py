"""Store → docs/: section files, site assets and pages from Jinja templates.

The renderer runs no model. It publishes the last entry built for each section
(the store's refs) and rewrites a file only when its content changed, so
`mkdocs serve` reloads just what a rebuild touched.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from .errors import UsageError
from .sections import all_sections
from .store import Store, walk, write_atomic

TEMPLATES = "templates"
SITE_ASSETS = "site_assets"
DOCS = "docs"
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a figure's file name, as it goes into a link


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
        return Markup("#" * (self.number.count(".") + 2))

    @property
    def link(self) -> str:
        return Markup(f"{self.page}#{self.id}")

    def paths(self) -> list[dict]:
        """Its figures, each with its path relative to docs/ (a plain file name, or the entry is refused)."""
        for f in self.figures:
            if not SAFE_NAME.fullmatch(f["file"]):
                raise UsageError(f"{self.id}'s entry names a figure {f['file']!r}, not a plain file name; "
                                 f"rebuild it with `gen build {self.id} --force`")
        return [{**f, "path": Markup(f"assets/{self.id}/{f['file']}")} for f in self.figures]


class Rendered(list):
    """The files render wrote; beside them what it removed and the links it skipped."""

    def __init__(self):
        super().__init__()
        self.removed: list[Path] = []
        self.skipped: list[Path] = []

    def report(self, root: Path) -> list[str]:
        """What the user is told: each link skipped, each file removed, and how many files were written."""
        lines = [f"skipped {path.relative_to(root)}: a symbolic link (not followed)" for path in self.skipped]
        lines += [f"removed {path.relative_to(root)}" for path in self.removed]
        removed = f", {len(self.removed)} removed" if self.removed else ""
        return [*lines, f"docs/: {len(self)} file(s) updated{removed}"]


def _files(source: Path, skipped: list[Path]) -> list[Path]:
    """Every file under `source`, relative to it, without following a link (links go to `skipped`)."""
    files, links = walk(source)
    skipped += [source / link for link in links]
    return [Path(rel) for rel in files]


def _sync_tree(source: Path, target: Path, out: Rendered, *, prune: bool) -> None:
    """Copy changed files from `source` into `target`; with prune, drop the files `source` lacks."""
    wanted = set(_files(source, out.skipped))
    for rel in sorted(wanted):
        if write_atomic(target / rel, (source / rel).read_bytes()):
            out.append(target / rel)
    if prune and target.is_dir():
        for old in sorted(target.rglob("*"), reverse=True):
            if old.is_file() and old.relative_to(target) not in wanted:
                old.unlink()
                out.removed.append(old)
            elif old.is_dir() and not any(old.iterdir()):
                old.rmdir()


def refuse_links(root: Path) -> None:
    """Stop, before anything is written, if docs/ or anything under it is a symbolic link:
    render would write or delete through it, outside the project."""
    docs = root / DOCS
    links = [docs] if docs.is_symlink() else [docs / link for link in walk(docs)[1]] if docs.is_dir() else []
    if links:
        where = links[0].relative_to(root)
        raise UsageError(f"{where} is a symbolic link and gen writes docs/ only inside the project; remove the link")


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
    """Templates whose every {{ value }} is shown as text: HTML and Markdown escaped (see `as_text`)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(root / TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=True,  # so that macros' output is Markup, kept as it is
        finalize=as_text,
    )
    env.filters["num"] = _format_number
    # Jinja's own versions of these return Markup under autoescape, which would skip the Markdown escaping.
    env.filters["join"] = lambda items, sep="": sep.join(map(str, items))
    env.filters["replace"] = lambda text, old, new: str(text).replace(old, new)
    env.filters["tojson"] = lambda value: json.dumps(value, ensure_ascii=False)
    env.filters["code_line"] = code_line
    return env


# Characters that mean something to HTML, to Markdown or its extensions (maths, tables, attribute lists);
# `(`, `)`, `!` and `:` act only beside these, so they stay as they are.
_ACTIVE = re.compile(r"""[&<>"'\\`*_\[\]{}#|~$^]""")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def as_text(value: Any) -> Any:
    """A value from parameters, records or data, made to show as itself: active characters become
    character references (which Markdown leaves alone), line breaks become spaces. Numbers and
    Markup (the templates' own output) pass unchanged."""
    if isinstance(value, Markup) or isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = _CONTROL.sub(" ", str(value))
    return Markup(_ACTIVE.sub(lambda m: f"&#{ord(m.group())};", text))


def code_line(value: str) -> Markup:
    """A value for a fenced code block (which escapes HTML itself): kept on one line so that it cannot end the block."""
    return Markup(_CONTROL.sub(lambda m: repr(m.group())[1:-1], str(value)))


def _format_number(value: float, digits: int = 4) -> str:
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e6:
        return f"{int(value):,}"
    return f"{value:.{digits}g}"


def _page_name(template: str) -> str:
    """templates/part_a.md.j2 → part-a.md"""
    return template.removesuffix(".j2").replace("_", "-")


def _stale_folders(assets: Path, sections: dict[str, SectionView], root: Path) -> list[Path]:
    """Published folders of sections no longer in the table: they hold a record.json and are not site assets."""
    if not assets.is_dir():
        return []
    keep = set(sections) | {p.name for p in (root / SITE_ASSETS).glob("*")}
    return [p for p in sorted(assets.iterdir()) if p.is_dir() and p.name not in keep and (p / "record.json").is_file()]


def render(root: Path, store: Store) -> Rendered:
    """Rewrite docs/ from the store; returns the files written, with `.removed` and `.skipped` (links not followed).

    A section without a good entry keeps what docs/ has; only a built section's own
    folder is pruned, and the folder of a section that left the table is removed.
    """
    refuse_links(root)
    sections = views(store)
    for view in sections.values():
        view.paths()  # an odd figure name stops here, before anything is written
    docs = root / DOCS
    out = Rendered()
    _sync_tree(root / SITE_ASSETS, docs / "assets", out, prune=False)
    for sid, view in sections.items():
        entry = store.last_entry(sid) if view.built else None
        if entry is not None:
            _sync_tree(entry.public, docs / "assets" / sid, out, prune=True)
    for folder in _stale_folders(docs / "assets", sections, root):
        out.removed += sorted((p for p in folder.rglob("*") if not p.is_dir()), reverse=True)
        shutil.rmtree(folder)
    env = environment(root)
    for template in sorted((root / TEMPLATES).glob("*.md.j2")):
        if template.name.startswith("_"):
            continue
        page = docs / _page_name(template.name)
        text = env.get_template(template.name).render(s=sections)
        if write_atomic(page, text):
            out.append(page)
    return out
