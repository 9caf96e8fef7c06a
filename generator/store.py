"""The content-addressed artifact store.

An entry's key is the sha256 of canonical JSON of what determines its content:
the section id, its VERSION, its resolved parameters, the backend it ran on and
the keys of the entries it used. The key is computed before running; a hit is
reused as it is. A miss runs into a staging folder that is renamed into place
only when complete, so an interrupted build never leaves half an entry.

    <cache>/store/<key>/record.json   the record (the contract's fields)
                        data.json     data for the section's template
                        public/       files published to docs/assets/<id>/
                        private/      files for later sections (checkpoints...)
                        manifest.json size and sha256 of every other file
    <cache>/refs/<id>                 key of the last entry built for <id>
    <cache>/work/<key>/               per-epoch checkpoints, kept for resume
    <cache>/sweeps/<name>/            a sweep's outcome: sweep.json, figures, plots
    <cache>/tmp/                      staging folders of the running build

An entry is used only while it matches its manifest (file names and sizes, and
record.json and data.json parse); a damaged one counts as missing, so the next
build rebuilds it. `verify` compares the hashes too. Everything in the store is
written here, through a staging folder and a rename.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
SWEEPS = "sweeps"  # <cache>/sweeps/NAME/: the outcome of a sweep (sweep.py writes it through here)
KEY = re.compile(r"[0-9a-f]{64}")


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it; restored at once, at import
    os.umask(mask)
    return mask


UMASK = _read_umask()
FILE_MODE = 0o666 & ~UMASK  # what open() would give; mkstemp gives 0600
DIR_MODE = 0o777 & ~UMASK  # what mkdir would give; mkdtemp gives 0700


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def entry_key(
    section_id: str,
    version: int,
    params: dict,
    backend: str,
    needs: dict[str, str],
    inputs: dict[str, str] | None = None,
) -> str:
    """`inputs`: sha256 of each input file the parameters name (left out when there are none)."""
    spec = {
        "id": section_id,
        "version": version,
        "params": params,
        "backend": backend,
        "needs": needs,
    }
    if inputs:
        spec["inputs"] = inputs
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()


def write_atomic(path: Path, data: bytes | str) -> bool:
    """Write `data` to `path` through a temporary file and a rename.

    Returns False, touching nothing, when the file already holds exactly `data`; a link is replaced,
    never followed.
    """
    raw = data.encode() if isinstance(data, str) else data
    if (
        not path.is_symlink()
        and path.is_file()
        and path.stat().st_size == len(raw)
        and path.read_bytes() == raw
    ):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return True


def write_json(path: Path, obj: Any) -> bool:
    return write_atomic(
        path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    )  # standard JSON only


def file_hash(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file, read in blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def walk(folder: Path) -> tuple[list[str], list[str]]:
    """Every file under `folder` and every link there (never followed), as sorted paths relative to
    it."""
    files, links = [], []
    for top, dirs, names in os.walk(folder):  # os.walk does not descend into a linked folder
        for name in dirs + names:
            path = Path(top, name)
            if path.is_symlink():
                links.append(path.relative_to(folder).as_posix())
            elif name in names:
                files.append(path.relative_to(folder).as_posix())
    return sorted(files), sorted(links)


def _files(folder: Path) -> tuple[dict[str, int], list[str]]:
    """Every file of an entry but the manifest (relative path → size), and the links there."""
    files, links = walk(folder)
    return {rel: (folder / rel).stat().st_size for rel in files if rel != MANIFEST}, links


def _write_manifest(folder: Path, key: str, section_id: str) -> None:
    sizes, _ = _files(folder)
    files = {
        rel: {"size": size, "sha256": file_hash(folder / rel)}
        for rel, size in sorted(sizes.items())
    }
    write_json(folder / MANIFEST, {"key": key, "id": section_id, "files": files})


def _swap_in(folder: Path, final: Path) -> None:
    """Rename a finished folder into place; one there before is swapped out, then removed."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists() or final.is_symlink():
        old = folder.with_name(folder.name + ".old")
        os.rename(final, old)
        os.rename(folder, final)
        _remove(old)
    else:
        os.rename(folder, final)


def _remove(path: Path) -> None:
    """Remove a file, a link (not what it points to) or a folder."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@dataclass(frozen=True)
class Entry:
    """A finished entry of the store."""

    key: str
    path: Path

    @property
    def public(self) -> Path:
        return self.path / "public"

    @property
    def private(self) -> Path:
        return self.path / "private"

    @property
    def record(self) -> dict:
        return json.loads((self.path / "record.json").read_text())

    @property
    def data(self) -> dict:
        return json.loads((self.path / "data.json").read_text())


@dataclass
class Damage:
    """What `Store.verify` found wrong: an entry (and the refs to it), or a ref alone."""

    key: str | None
    refs: list[str]
    problem: str

    def __str__(self) -> str:
        what = f"entry {self.key[:12]}…" if self.key else "ref"
        return f"{what} ({', '.join(self.refs) or 'no ref'}): {self.problem}"


class Store:
    def __init__(self, root: Path):
        self.root = Path(root)
        self._intact: dict[
            str, bool
        ] = {}  # key → verdict of the cheap check, once per Store (one per build)
        self._reported: set[str] = set()

    def _report(self, about: str, line: str) -> None:
        if about not in self._reported:
            self._reported.add(about)
            print(line, file=sys.stderr)

    def _inside(self, path: Path) -> bool:
        """Not a link, and not reached through one out of the cache folder."""
        return not path.is_symlink() and path.resolve().is_relative_to(self.root.resolve())

    def entry(self, key: str) -> Entry | None:
        """The entry `key` if it is there and matches its manifest; a damaged one is reported once
        and counts as missing."""
        if not KEY.fullmatch(key):
            return None
        path = self.root / "store" / key
        if key not in self._intact:
            if not path.exists() and not path.is_symlink():
                return None
            problem = self._problem(key, full=False)
            self._intact[key] = problem is None
            if problem:
                self._report(
                    key,
                    f"store: entry {key[:12]}… ({self._section_of(key)}) is damaged ({problem}); "
                    "it will be rebuilt",
                )
        return Entry(key, path) if self._intact[key] else None

    def problem(self, key: str) -> str | None:
        """What the cheap check finds wrong with the entry `key` ("it is missing" where there is
        none), None if nothing."""
        return (
            self._problem(key, full=False) if KEY.fullmatch(key) else "its name is not an entry key"
        )

    def _problem(self, key: str, *, full: bool) -> str | None:
        """What is wrong with the entry `key`, None if nothing: names and sizes against its
        manifest, and the records parse; with `full`, every file's sha256 too."""
        path = self.root / "store" / key
        if not path.exists() and not path.is_symlink():
            return "it is missing"
        if not self._inside(path):
            return "its folder is a link"
        if not path.is_dir():
            return "it is not a folder"
        try:
            manifest = json.loads((path / MANIFEST).read_text())
            listed = {
                rel: (int(f["size"]), str(f["sha256"])) for rel, f in manifest["files"].items()
            }
            owner = manifest["key"]
        except FileNotFoundError:
            return "it has no manifest"
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return "its manifest does not parse"
        if owner != key:
            return "its manifest is another entry's"
        sizes, links = _files(path)
        if links:
            return f"{links[0]} is a link"
        missing, unlisted = (
            sorted(listed.keys() - sizes.keys()),
            sorted(sizes.keys() - listed.keys()),
        )
        if missing:
            return f"{missing[0]} is missing"
        if unlisted:
            return f"{unlisted[0]} is not in the manifest"
        for rel, size in sorted(sizes.items()):
            if size != listed[rel][0]:
                return f"{rel} is {size} bytes, the manifest says {listed[rel][0]}"
        for name in ("record.json", "data.json"):
            try:
                parsed = json.loads((path / name).read_text())
            except (OSError, ValueError):
                return f"{name} does not parse"
            if not isinstance(parsed, dict):
                return f"{name} is not a JSON object"
        for rel in sorted(listed) if full else ():
            if file_hash(path / rel) != listed[rel][1]:
                return f"{rel} does not match its sha256 in the manifest"
        return None

    def _section_of(self, key: str) -> str:
        if not self._inside(self.root / "store" / key):
            return "section unknown"
        for name in (MANIFEST, "record.json"):
            with contextlib.suppress(Exception):
                return str(json.loads((self.root / "store" / key / name).read_text())["id"])
        return "section unknown"

    def _read_ref(self, section_id: str) -> tuple[str | None, str | None]:
        """(key, None), (None, None) when there is no ref, or (None, what is wrong with it)."""
        path = self.root / "refs" / section_id
        if not path.exists() and not path.is_symlink():
            return None, None
        if not self._inside(path) or not path.is_file():
            return None, "it is a link or not a file"
        with open(path, "rb") as f:
            text = f.read(100).decode(errors="replace").strip()
        return (
            (text, None)
            if KEY.fullmatch(text)
            else (None, f"it holds {text[:20]!r}, not an entry key")
        )

    def ref(self, section_id: str) -> str | None:
        key, problem = self._read_ref(section_id)
        if problem:
            self._report(f"ref {section_id}", f"store: ref {section_id} is ignored: {problem}")
        return key

    def last_entry(self, section_id: str) -> Entry | None:
        key = self.ref(section_id)
        return self.entry(key) if key else None

    def set_ref(self, section_id: str, key: str) -> None:
        write_atomic(self.root / "refs" / section_id, key + "\n")

    def work_dir(self, key: str) -> Path:
        path = self.root / "work" / key
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _stage(self, prefix: str) -> Path:
        """A fresh folder under tmp/: everything is written there, then renamed into place."""
        tmp = self.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=tmp, prefix=prefix))
        os.chmod(folder, DIR_MODE)  # it is renamed into place and read like any other folder
        return folder

    @contextlib.contextmanager
    def staging(self, key: str, section_id: str):
        """A fresh folder to build an entry in; committed only if the block succeeds."""
        folder = self._stage(f"{key[:12]}.")
        (folder / "public").mkdir()
        (folder / "private").mkdir()
        try:
            yield folder
            _write_manifest(folder, key, section_id)
            _swap_in(folder, self.root / "store" / key)  # --force or damaged: the old one goes
            self._intact.pop(key, None)
            shutil.rmtree(self.root / "work" / key, ignore_errors=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            # a failed run's work folder, only if it holds nothing to resume
            with contextlib.suppress(OSError):
                (self.root / "work" / key).rmdir()

    def sweep_folder(self, name: str) -> Path:
        """Where the outcome of the sweep `name` is kept (sweep.json, figures, plots)."""
        return self.root / SWEEPS / name

    @contextlib.contextmanager
    def writing_sweep(self, name: str):
        """A fresh folder to write the outcome of the sweep `name` in; it replaces the one kept
        before, at once, only if the block succeeds."""
        folder = self._stage(f"sweep.{name}.")
        try:
            yield folder
            _swap_in(folder, self.sweep_folder(name))
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def clean_staging(self) -> None:
        """Remove what killed builds left in tmp/; only under the lock, which every build holds
        while it stages."""
        tmp = self.root / "tmp"
        for path in sorted(tmp.iterdir()) if tmp.is_dir() else []:
            _remove(path)

    def verify(self, every: bool = False) -> tuple[int, list[Damage]]:
        """Hash every file of the entries the refs point to (with `every`, of all entries); (entries
        checked, damage)."""
        damage, refs = [], {}
        names = (
            sorted(p.name for p in (self.root / "refs").iterdir())
            if (self.root / "refs").is_dir()
            else []
        )
        for name in names:
            key, problem = self._read_ref(name)
            if problem:
                damage.append(Damage(None, [name], problem))
            elif key:
                refs.setdefault(key, []).append(name)
        keys = set(refs)
        if every and (self.root / "store").is_dir():
            keys |= {p.name for p in (self.root / "store").iterdir()}
        for key in sorted(keys):
            problem = (
                self._problem(key, full=True)
                if KEY.fullmatch(key)
                else "its name is not an entry key"
            )
            if problem:
                damage.append(Damage(key, refs.get(key, []), problem))
        return len(keys), damage

    def repair(self, damage: Damage) -> None:
        """Remove a damaged entry and the refs to it, so that the next build rebuilds it."""
        if damage.key:
            _remove(self.root / "store" / damage.key)
            self._intact.pop(damage.key, None)
        for name in damage.refs:
            _remove(self.root / "refs" / name)

    @contextlib.contextmanager
    def lock(self):
        """One build at a time per cache folder; a second one waits for the first."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "lock", "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(
                    f"another gen is building in {self.root}; waiting for it to finish",
                    file=sys.stderr,
                )
                fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
