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
    <cache>/refs/<id>                 key of the last entry built for <id>
    <cache>/work/<key>/               per-epoch checkpoints, kept for resume
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def entry_key(section_id: str, version: int, params: dict, backend: str, needs: dict[str, str]) -> str:
    spec = {"id": section_id, "version": version, "params": params, "backend": backend, "needs": needs}
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()


def write_atomic(path: Path, data: bytes | str) -> bool:
    """Write `data` to `path` through a temporary file and a rename.

    Returns False, touching nothing, when the file already holds exactly `data`.
    """
    raw = data.encode() if isinstance(data, str) else data
    if path.is_file() and path.stat().st_size == len(raw) and path.read_bytes() == raw:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return True


def write_json(path: Path, obj: Any) -> bool:
    return write_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


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


class Store:
    def __init__(self, root: Path):
        self.root = Path(root)

    def entry(self, key: str) -> Entry | None:
        path = self.root / "store" / key
        return Entry(key, path) if (path / "record.json").is_file() else None

    def ref(self, section_id: str) -> str | None:
        path = self.root / "refs" / section_id
        return path.read_text().strip() if path.is_file() else None

    def last_entry(self, section_id: str) -> Entry | None:
        key = self.ref(section_id)
        return self.entry(key) if key else None

    def set_ref(self, section_id: str, key: str) -> None:
        write_atomic(self.root / "refs" / section_id, key + "\n")

    def work_dir(self, key: str) -> Path:
        path = self.root / "work" / key
        path.mkdir(parents=True, exist_ok=True)
        return path

    @contextlib.contextmanager
    def staging(self, key: str):
        """A fresh folder to build an entry in; committed only if the block succeeds."""
        tmp = self.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=tmp, prefix=f"{key[:12]}."))
        (folder / "public").mkdir()
        (folder / "private").mkdir()
        try:
            yield folder
            self._commit(key, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _commit(self, key: str, folder: Path) -> None:
        final = self.root / "store" / key
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():  # --force: swap the old entry out, the new one in
            old = folder.with_name(folder.name + ".old")
            os.rename(final, old)
            os.rename(folder, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(folder, final)
        shutil.rmtree(self.root / "work" / key, ignore_errors=True)

    @contextlib.contextmanager
    def lock(self):
        """One build at a time per cache folder; a second one waits for the first."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "lock", "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"another gen is building in {self.root}; waiting for it to finish", file=sys.stderr)
                fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
