"""Store → docs/: section files, site assets and pages from Jinja templates.

The renderer runs no model. It publishes the last entry built for each section
(the store's refs) and rewrites a file only when its content changed, so
`mkdocs serve` reloads just what a rebuild touched. A section the store lacks
keeps what docs/ holds: its published record.json and data.json are enough to
write its pages again, so a fresh clone renders the committed site exactly.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from . import image_files
from .chapters import all_sections
from .errors import UsageError
from .section import HeadlineOf, count, db
from .store import Store, walk, write_atomic
from .viewers import FOLDER as VIEWER_FOLDER
from .viewers import Viewers, attribute, derive

TEMPLATES = "templates"
SITE_ASSETS = "site_assets"
DOCS = "docs"
RECORD, DATA = "record.json", "data.json"
# The last `gen bench` report, and each sweep's outcome (in NAME/): in the store's folder, published
# under docs/assets/bench/ and docs/assets/sweeps/.
BENCH = "bench.json"
SWEEPS = "sweeps"
SAFE_NAME = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9._-]*"
)  # a figure's file name, as it goes into a link
# An enlarged figure (one file pixel per image pixel) is shown at the largest whole factor that fits
# this box.
ENLARGED_BOX = (640, 480)
MATH = re.compile(r"\\\((.+?)\\\)")  # \( … \) in a caption
# Maths that needs no escaping (anything else is shown as text).
PLAIN_MATH = re.compile(r"[^<>&\"'`]+")
# A sweep point's figure stored once, elsewhere under docs/: where, and its sha256 (in sweep.json).
STORED_AT = "stored_at"
FIGURE_AT = re.compile(r"assets/(?:sweeps/)?[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass
class SectionView:
    """A section as templates see it: the table's number, title and headline, and its last result
    (`built` once it ran)."""

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
    folder: Path | None = None  # where its files are now: the store's entry, or docs/
    headline_of: HeadlineOf | None = None  # the table's: what its card on the home page shows
    viewers: Viewers = field(
        default_factory=Viewers
    )  # what replaces some figures where scripts run

    @property
    def heading(self) -> str:
        """The Markdown heading: ## for 0 and 1, ### for 1.1, #### for 1.7.1."""
        return Markup("#" * (self.number.count(".") + 2))

    @property
    def link(self) -> str:
        return Markup(f"{self.page}#{self.id}")

    def paths(self) -> list[dict]:
        """Its figures, each with its path relative to docs/ (a plain file name, or the entry is
        refused), its caption as page text with typeset maths, and the width an enlarged figure is
        shown at."""
        for f in self.figures:
            if not SAFE_NAME.fullmatch(f["file"]):
                raise UsageError(
                    f"{self.id}'s entry names a figure {f['file']!r}, not a plain file name; "
                    f"rebuild it with `gen build {self.id} --force`"
                )
        return [
            {
                **f,
                "path": Markup(f"assets/{self.id}/{f['file']}"),
                "alt": MATH.sub(r"\1", f["caption"]),
                "caption_text": caption(f["caption"]),
                "width": self._width(f),
                "viewer": self._viewer(f["file"]),
            }
            for f in self.figures
        ]

    def _viewer(self, name: str) -> dict | None:
        """The viewer that takes this figure's place where scripts run: its kind and its
        description (JSON, for the root element's data-viewer-src), or None."""
        found = self.viewers.by_figure.get(name)
        if not found or not found.get("items"):
            return None
        # Escaped for an attribute only: quotes and angle brackets; the JSON is no Markdown.
        return {"kind": found["kind"], "src": escape(attribute(found))}

    def _width(self, figure: dict) -> int | None:
        """An enlarged figure's display width: its pixels times the largest whole factor that fits
        ENLARGED_BOX."""
        if not figure.get("enlarge") or self.folder is None:
            return None
        from PIL import Image  # reads the header only

        try:
            with Image.open(self.folder / figure["file"]) as image:
                w, h = image.size
        except OSError:
            return None
        return w * max(1, min(ENLARGED_BOX[0] // w, ENLARGED_BOX[1] // h))

    @property
    def headline(self) -> Markup:
        """Its card's line on the home page: the section's Headline, or nothing where it has
        none."""
        if not self.built or self.headline_of is None:
            return Markup("")
        try:
            found = self.headline_of(self)
        except (KeyError, IndexError, TypeError, ValueError):
            found = None  # a record that lacks what the headline reads, or holds no number there
        if found is None:
            return Markup("")
        # The label is the section's own Markdown (with maths); the value is a formatted number.
        return Markup(replace(found, value=str(as_text(found.value))).text)

    @property
    def backend(self) -> dict | None:
        """The backend it ran on (name, model id, settings), or None where it ran on none (records
        published before that was null say "none")."""
        found = self.record.get("backend")
        return found if isinstance(found, dict) and found.get("name") != "none" else None

    @property
    def model(self) -> str:
        """The model that made it: the backend's, or the one the section names itself."""
        found = self.backend or self.record.get("backend") or {}
        return found.get("model_id") or self.record.get("model") or "none"

    @property
    def machine(self) -> str:
        """Where it ran, in words: CPU model and cores, GPU, torch."""
        found = self.record.get("machine")
        if not found:
            return "a machine not recorded"
        gpu = f"GPU {found['gpu']}" if found.get("gpu") else "no GPU"
        torch = self.record["versions"]["torch"]
        return f"{found['cpu']} ({found['cores']} cores), {gpu}, torch {torch}"


def caption(text: str) -> Markup:
    """A caption as HTML (a figcaption is not Markdown): plain parts shown as themselves (see
    `as_text`), \\( … \\) in arithmatex's span, which KaTeX typesets."""
    out, last = [], 0
    for m in MATH.finditer(text):
        out.append(as_text(text[last : m.start()]))
        math = Markup(f'<span class="arithmatex">{m.group()}</span>')
        out.append(math if PLAIN_MATH.fullmatch(m.group(1)) else as_text(m.group()))
        last = m.end()
    out.append(as_text(text[last:]))
    return Markup("").join(out)


def made_by(views: list[SectionView]) -> list[dict]:
    """The profiles, backends (None: no backend) and machines that made these sections, each with
    the sections it made."""
    groups: dict[tuple, list[str]] = {}
    for view in views:
        if view.built:
            backend = view.backend["name"] if view.backend else None
            groups.setdefault((view.record["profile"], backend, view.machine), []).append(view.id)
    return [
        {"profile": p, "backend": b, "machine": m, "ids": ids} for (p, b, m), ids in groups.items()
    ]


class Rendered(list):
    """The files render wrote; beside them what it removed and the links it skipped."""

    def __init__(self):
        super().__init__()
        self.removed: list[Path] = []
        self.skipped: list[Path] = []

    def report(self, root: Path) -> list[str]:
        """What the user is told: each link skipped, each file removed, and how many files were
        written."""
        lines = [
            f"skipped {path.relative_to(root)}: a symbolic link (not followed)"
            for path in self.skipped
        ]
        lines += [f"removed {path.relative_to(root)}" for path in self.removed]
        removed = f", {len(self.removed)} removed" if self.removed else ""
        return [*lines, f"docs/: {len(self)} file(s) updated{removed}"]


def _files(source: Path, skipped: list[Path]) -> dict[Path, Path]:
    """Every file under `source`: its path relative to `source` → where it is, without following a
    link (links go to `skipped`)."""
    files, links = walk(source)
    skipped += [source / link for link in links]
    return {Path(rel): source / rel for rel in files}


def _plain_read(source: Path) -> bytes:
    return source.read_bytes()


class _SmallPngs:
    """Reads a file to publish; an RGBA PNG (matplotlib's, in an entry made before figures were
    written small, and before they were WebP) as its smallest exact PNG (`image_files.encode_png`:
    the same pixels, under the name its record gives it), kept under the store's `pngs/` by the
    original's sha256, so that each is encoded once."""

    def __init__(self, cache: Path):
        self.cache = cache

    def __call__(self, source: Path) -> bytes:
        data = source.read_bytes()
        # IHDR's colour type (byte 25) 6: RGBA, 8 bits, which figures are no longer written as
        if source.suffix != ".png" or len(data) < 26 or data[25] != 6:
            return data
        kept = self.cache / f"{hashlib.sha256(data).hexdigest()}.png"
        if kept.is_file():
            return kept.read_bytes()
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            smaller = image_files.encode_png(image)
        found = smaller if len(smaller) < len(data) else data
        write_atomic(kept, found)
        return found


def _shrink_in_place(folder: Path, small: _SmallPngs, out: Rendered) -> None:
    """The figures docs/ publishes for a result the store lacks, made small where they are (the
    same pixels): docs/ stays light whichever store it was rendered from."""
    for rel, path in _files(folder, out.skipped).items():
        if rel.suffix == ".png" and write_atomic(path, small(path)):
            out.append(path)


def _sync_tree(
    files: dict[Path, Path | bytes],
    target: Path,
    out: Rendered,
    *,
    prune: bool,
    read: Callable[[Path], bytes] = _plain_read,
) -> None:
    """Copy changed files (relative path → source, or its content) into `target`; with prune, drop
    the files not named."""
    wanted = set(files)
    for rel in sorted(wanted):
        source = files[rel]
        if write_atomic(target / rel, source if isinstance(source, bytes) else read(source)):
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
    links = (
        [docs]
        if docs.is_symlink()
        else [docs / link for link in walk(docs)[1]]
        if docs.is_dir()
        else []
    )
    if links:
        where = links[0].relative_to(root)
        raise UsageError(
            f"{where} is a symbolic link and gen writes docs/ only inside the project; "
            "remove the link"
        )


def _published(folder: Path, sid: str) -> tuple[dict, dict] | None:
    """The record and data that docs/ holds for a section, where both read back and name it."""
    try:
        record, data = (
            json.loads((folder / name).read_text(encoding="utf-8")) for name in (RECORD, DATA)
        )
    except (OSError, ValueError):
        return None
    good = isinstance(record, dict) and isinstance(data, dict) and record.get("id") == sid
    return (record, data) if good else None


def views(root: Path, store: Store) -> dict[str, SectionView]:
    """Each section's last result: the store's, or else the one docs/ already publishes."""
    out = {}
    for sid, section in all_sections().items():
        page = _page_name(section.page + ".md.j2")
        view = SectionView(sid, section.number, section.title, page, headline_of=section.headline)
        entry = store.last_entry(sid)
        found = (entry.record, entry.data, entry.public) if entry is not None else None
        if found is None:
            folder = root / DOCS / "assets" / sid
            published = _published(folder, sid)
            found = (*published, folder) if published else None
        if found is not None:
            record, data, folder = found
            view = SectionView(
                sid,
                section.number,
                section.title,
                page,
                True,
                record["params"],
                record["metrics"],
                record["figures"],
                data,
                record,
                folder,
                section.headline,
                derive(sid, folder, record["figures"], record["params"], data),
            )
        out[sid] = view
    return out


def _named_files(value: Any) -> set[str]:
    """Every string in parameters (nested lists and objects too): the files among them are
    inputs."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        value = list(value.values())
    return set().union(*map(_named_files, value)) if isinstance(value, list) else set()


def _site_assets(
    root: Path, sections: dict[str, SectionView], skipped: list[Path]
) -> dict[Path, Path]:
    """site_assets/ as it goes under docs/assets/: of the input images, only those a built section
    names."""
    named = set().union(*(_named_files(v.params) for v in sections.values() if v.built))
    files = _files(root / SITE_ASSETS, skipped)
    return {
        rel: path
        for rel, path in files.items()
        if rel.parts[0] != "inputs"
        or rel.suffix == ".md"
        or f"{SITE_ASSETS}/{rel.as_posix()}" in named
    }


def environment(root: Path) -> jinja2.Environment:
    """Templates whose every {{ value }} is shown as text: HTML and Markdown escaped (see
    `as_text`)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(root / TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=True,  # so that macros' output is Markup, kept as it is
        finalize=as_text,
    )
    env.filters["num"] = count
    env.filters["db"] = db
    env.globals["made_by"] = made_by
    env.globals["figure_number"] = itertools.count(1).__next__  # render() passes each page its own
    # Jinja's own versions of these return Markup under autoescape, which would skip the Markdown
    # escaping.
    env.filters["join"] = lambda items, sep="": sep.join(map(str, items))
    env.filters["replace"] = lambda text, old, new: str(text).replace(old, new)
    env.filters["tojson"] = lambda value: json.dumps(value, ensure_ascii=False)
    env.filters["code_line"] = code_line
    return env


# Characters that mean something to HTML, to Markdown or its extensions (maths, tables, attribute
# lists); `(`, `)`, `!` and `:` act only beside these, so they stay as they are.
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
    """A value for a fenced code block (which escapes HTML itself): kept on one line so that it
    cannot end the block."""
    return Markup(_CONTROL.sub(lambda m: repr(m.group())[1:-1], str(value)))


def _drop_unnamed_inputs(root: Path, assets: dict[Path, Path], out: Rendered) -> None:
    """Remove from docs/assets/inputs/ the site_assets inputs that no built section names any
    more."""
    shipped = {rel.relative_to("inputs") for rel in assets if rel.parts[0] == "inputs"}
    for rel in sorted(set(_files(root / SITE_ASSETS / "inputs", [])) - shipped):
        old = root / DOCS / "assets" / "inputs" / rel
        if old.is_file() and not old.is_symlink():
            old.unlink()
            out.removed.append(old)


def _page_name(template: str) -> str:
    """templates/part_a.md.j2 → part-a.md"""
    return template.removesuffix(".j2").replace("_", "-")


def _bench_report(path: Path) -> dict | None:
    """The last `gen bench` report published, where there is one that reads back."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (
        report
        if isinstance(report, dict) and {"train", "sample", "machine"} <= set(report)
        else None
    )


def published_sweeps(folder: Path) -> list[dict]:
    """Every sweep docs/ publishes (gen.yaml's first, in its order), with the paths of its files."""
    found = []
    for path in sorted(folder.glob("*/sweep.json")) if folder.is_dir() else []:
        try:
            sweep = json.loads(path.read_text(encoding="utf-8"))
            files = [p["figure"] for p in sweep["points"] if p["figure"]] + [
                p["file"] for p in sweep["plots"] if p["file"]
            ]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not SAFE_NAME.fullmatch(path.parent.name) or not all(
            SAFE_NAME.fullmatch(str(f)) for f in files
        ):
            continue  # only plain file names go into links
        sweep["id"] = Markup(
            path.parent.name
        )  # a plain name (SAFE_NAME): the anchor of its heading
        base = f"assets/{SWEEPS}/{path.parent.name}/"
        for point in sweep["points"]:
            at = point.get(STORED_AT)
            at = at.get("path") if isinstance(at, dict) else None
            own = base + point["figure"] if point["figure"] else None
            point["path"] = (
                Markup(at if own and FIGURE_AT.fullmatch(str(at)) else own) if own else None
            )
            point["caption_text"] = caption(point["caption"]) if point["caption"] else ""
        for plot in sweep["plots"]:
            plot["path"] = Markup(base + plot["file"]) if plot["file"] else None
        found.append(sweep)
    return sorted(found, key=lambda w: (w.get("order") is None, w.get("order") or 0, w["name"]))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sweep_json(files: dict[Path, bytes]) -> dict | None:
    try:
        sweep = json.loads(files[Path("sweep.json")])
    except (KeyError, ValueError):
        return None
    good = isinstance(sweep, dict) and isinstance(sweep.get("points"), list)
    return sweep if good and all(isinstance(p, dict) for p in sweep["points"]) else None


def _as_json(value: Any) -> bytes:
    """As the store writes JSON (store.write_json)."""
    return (json.dumps(value, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()


def _published_sweep(docs: Path, folder: Path, read: Callable[[Path], bytes], skipped) -> dict:
    """A sweep docs/ publishes whose store folder is gone, in full (relative path → bytes): a
    point's figure stored once elsewhere is read back from there, where it still holds the same
    bytes (else the point is left without a figure). Read before render writes anything."""
    files = {rel: read(path) for rel, path in _files(folder, skipped).items()}
    sweep = _sweep_json(files)
    if sweep is None or not any(STORED_AT in p for p in sweep["points"]):
        return files
    for point in sweep["points"]:
        at = point.pop(STORED_AT, None)
        if at is None:
            continue
        target = docs / str(at.get("path")) if isinstance(at, dict) else None
        figure = point.get("figure")
        if (
            target is not None
            and FIGURE_AT.fullmatch(str(at["path"]))
            and isinstance(figure, str)
            and SAFE_NAME.fullmatch(figure)
            and target.is_file()
            and _sha256(data := target.read_bytes()) == at.get("sha256")
        ):
            files[Path(figure)] = data
        else:
            point["figure"] = None
    files[Path("sweep.json")] = _as_json(sweep)
    return files


def _store_once(docs: Path, sweeps: dict[str, dict], sections: dict[str, SectionView]) -> None:
    """Each figure of the sweeps (relative path → bytes, by sweep) that holds the very bytes of a
    section's published figure or of an earlier point's is dropped, and its point says where the
    one copy is (STORED_AT, with the bytes' sha256)."""
    seen: dict[str, str] = {}
    for sid, view in sections.items():
        for f in view.figures if view.built else []:
            path = docs / "assets" / sid / f["file"]
            if path.is_file():
                seen.setdefault(_sha256(path.read_bytes()), f"assets/{sid}/{f['file']}")
    for name in sorted(sweeps):
        files = sweeps[name]
        sweep = _sweep_json(files)
        if sweep is None:
            continue
        changed = False
        for point in sweep["points"]:
            figure = point.get("figure")
            if not isinstance(figure, str) or Path(figure) not in files:
                continue
            sha = _sha256(files[Path(figure)])
            if sha in seen:
                point[STORED_AT] = {"path": seen[sha], "sha256": sha}
                del files[Path(figure)]
                changed = True
            else:
                seen[sha] = f"assets/{SWEEPS}/{name}/{figure}"
        if changed:
            files[Path("sweep.json")] = _as_json(sweep)


def _viewer_files(view: SectionView) -> dict[Path, Path | bytes]:
    return {Path(VIEWER_FOLDER) / name: data for name, data in view.viewers.files.items()}


def _stale_folders(assets: Path, sections: dict[str, SectionView], root: Path) -> list[Path]:
    """Published folders of sections no longer in the table: they hold a record.json and are not
    site assets."""
    if not assets.is_dir():
        return []
    keep = set(sections) | {p.name for p in (root / SITE_ASSETS).glob("*")} | {"bench", SWEEPS}
    return [
        p
        for p in sorted(assets.iterdir())
        if p.is_dir() and p.name not in keep and (p / "record.json").is_file()
    ]


def render(root: Path, store: Store) -> Rendered:
    """Rewrite docs/ from the store; returns the files written, with `.removed` and `.skipped`
    (links not followed).

    A section without a good entry keeps what docs/ has; only a built section's own
    folder is pruned, and the folder of a section that left the table is removed.
    """
    refuse_links(root)
    sections = views(root, store)
    for view in sections.values():
        view.paths()  # an odd figure name stops here, before anything is written
    docs = root / DOCS
    out = Rendered()
    small = _SmallPngs(store.root / "pngs")
    # Sweeps docs/ alone publishes, read in full before any section's figure is written again.
    sweeps = {
        folder.name: _published_sweep(docs, folder, small, out.skipped)
        for folder in sorted((docs / "assets" / SWEEPS).glob("*"))
        if folder.is_dir() and not (store.root / SWEEPS / folder.name).is_dir()
    }
    assets = _site_assets(root, sections, out.skipped)
    _sync_tree(assets, docs / "assets", out, prune=False)
    _drop_unnamed_inputs(root, assets, out)
    for sid, view in sections.items():
        entry = store.last_entry(sid) if view.built else None
        if (
            entry is not None
        ):  # its public files, and its data for rendering the pages again from docs/
            files = {**_files(entry.public, out.skipped), Path(DATA): entry.path / DATA}
            files |= _viewer_files(view)
            _sync_tree(files, docs / "assets" / sid, out, prune=True, read=small)
        elif view.built:  # published only: its viewers' images are made from what docs/ holds
            _sync_tree(_viewer_files(view), docs / "assets" / sid, out, prune=False)
            _shrink_in_place(docs / "assets" / sid, small, out)
    for folder in _stale_folders(docs / "assets", sections, root):
        out.removed += sorted((p for p in folder.rglob("*") if not p.is_dir()), reverse=True)
        shutil.rmtree(folder)
    if (store.root / BENCH).is_file():
        _sync_tree({Path(BENCH): store.root / BENCH}, docs / "assets" / "bench", out, prune=False)
    bench = _bench_report(docs / "assets" / "bench" / BENCH)
    for folder in sorted((store.root / SWEEPS).iterdir()) if (store.root / SWEEPS).is_dir() else []:
        if SAFE_NAME.fullmatch(folder.name) and (folder / "sweep.json").is_file():
            sweeps[folder.name] = {
                rel: small(path) for rel, path in _files(folder, out.skipped).items()
            }
    _store_once(docs, sweeps, sections)
    for name, files in sweeps.items():
        _sync_tree(files, docs / "assets" / SWEEPS / name, out, prune=True)
    published = published_sweeps(docs / "assets" / SWEEPS)
    env = environment(root)
    for template in sorted((root / TEMPLATES).glob("*.md.j2")):
        if template.name.startswith("_"):
            continue
        page = docs / _page_name(template.name)
        # Each page numbers its figures from 1 (templates import the macros with their context).
        text = env.get_template(template.name).render(
            s=sections, bench=bench, sweeps=published, figure_number=itertools.count(1).__next__
        )
        if write_atomic(page, text):
            out.append(page)
    return out
