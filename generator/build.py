"""Plan and run sections: keys first, then reuse or run, then render.

This is the one way through the data: parameters → experiments → store →
renderer. A section's run sees its parameters, the entries of the sections it
needs, and folders to write into; it never writes into docs/.
"""

from __future__ import annotations

import importlib.metadata
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .config import Config, cache_dir, data_dir
from .errors import SectionFailed, UsageError
from .registry import Params, Result, Section, all_sections, select
from .store import Entry, Store, canonical_json, entry_key, write_json


@dataclass
class Context:
    """What a running section may use."""

    section: Section
    config: Config
    out: Path  # published to docs/assets/<id>/
    private: Path  # kept in the store for later sections
    work: Path  # survives an interrupted run: checkpoints for resume
    device: str
    needs: dict[str, Entry]
    data_root: Path
    runs: tuple[str, ...] = ()  # every section this build runs (a backend loads what all of them need)

    @property
    def backend(self) -> str:
        """Part A's model for this build: local or deepfloyd."""
        return self.config.backend

    def params_of(self, section_id: str) -> Params:
        return self.config.params[section_id]

    def progress(self, iterable: Iterable | None = None, **kwargs):
        """A tqdm bar labelled with the section (TQDM_DISABLE=1 turns bars off)."""
        from tqdm.auto import tqdm

        kwargs.setdefault("desc", self.section.id)
        kwargs.setdefault("leave", False)
        kwargs.setdefault("dynamic_ncols", True)
        return tqdm(iterable, **kwargs)


def backend_identity(config: Config, section: Section) -> str:
    """What of Part A's model determines a section's result: part of its key."""
    if not section.uses_backend:
        return "none"
    return canonical_json({"name": config.backend, **config.params[config.backend].identity()})


def plan(config: Config, sections: list[Section]) -> list[tuple[Section, str]]:
    """Each section with its key; `sections` must hold everything they need, in dependency order."""
    keys: dict[str, str] = {}
    planned = []
    for s in sections:
        params = config.params[s.id].model_dump(mode="json")
        needs = {n: keys[n] for n in s.needs_on(config.backend)}
        keys[s.id] = entry_key(s.id, s.version, params, backend_identity(config, s), needs)
        planned.append((s, keys[s.id]))
    return planned


def status(config: Config) -> list[tuple[Section, str]]:
    """Every section with fresh (built with these parameters), stale or never."""
    store = Store(cache_dir(config.root))
    keys = {s.id: key for s, key in plan(config, select(list(all_sections()), backend=config.backend))}
    rows = []
    for s in all_sections().values():  # page order
        if store.entry(keys[s.id]):
            rows.append((s, "fresh"))
        else:
            rows.append((s, "stale" if store.last_entry(s.id) else "never built"))
    return rows


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda, but torch sees no CUDA GPU here; use --device cpu or auto")
    return device


def _versions() -> dict[str, str]:
    versions = {}
    for name, dist in (("torch", "torch"), ("diffusers", "diffusers"), ("generator", "gen")):
        try:
            versions[name] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _device_name(device: str) -> str:
    if device == "cuda":
        import torch

        return f"cuda ({torch.cuda.get_device_name()})"
    return device


def _transitive_needs(section: Section, backend: str) -> list[str]:
    sections = all_sections()
    found, stack = [], list(section.needs_on(backend))
    while stack:
        sid = stack.pop()
        if sid not in found:
            found.append(sid)
            stack.extend(sections[sid].needs_on(backend))
    return found


def _run_one(
    section: Section, key: str, config: Config, store: Store, needs: dict[str, Entry], device: str, runs: tuple[str, ...]
) -> None:
    import torch

    params = config.params[section.id]
    with store.staging(key) as folder:
        ctx = Context(
            section=section,
            config=config,
            out=folder / "public",
            private=folder / "private",
            work=store.work_dir(key),
            device=device,
            needs=needs,
            data_root=data_dir(config.root),
            runs=runs,
        )
        torch.manual_seed(params.seed)
        start = time.perf_counter()
        try:
            result: Result = section.run(params, ctx)
        except UsageError:
            raise
        except Exception as e:  # the message names the section; the store keeps earlier results
            raise SectionFailed(section.id, e) from e
        duration = time.perf_counter() - start
        for name, value in result.metrics.items():
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise SectionFailed(section.id, ValueError(f"metric {name} is {value!r}, not a finite number"))
        backend = dict(result.backend)
        if section.uses_backend:  # the backend's settings (its schedule, its model ids) made this result too
            backend["settings"] = config.params[config.backend].model_dump(mode="json")
        record = {
            "id": section.id,
            "title": section.title,
            "params": params.model_dump(mode="json"),
            "profile": config.profile,
            "backend": backend,
            "device": _device_name(device),
            "seed": params.seed,
            "duration_s": round(duration, 3),
            "cache_key": key,
            "needs": {sid: e.key for sid, e in needs.items()},
            "metrics": result.metrics,
            "files": sorted(f"assets/{section.id}/{p.name}" for p in ctx.out.iterdir() if p.is_file()),
            "figures": [vars(f) for f in result.figures],
            "command": config.command(
                section.id, [section.id, *_transitive_needs(section, config.backend)], backend=section.uses_backend
            ),
            "versions": _versions(),
        }
        record["files"].append(f"assets/{section.id}/record.json")
        record["files"].sort()
        write_json(folder / "record.json", record)
        write_json(folder / "public" / "record.json", record)
        write_json(folder / "data.json", result.data)


def build(config: Config, selectors: list[str], *, force: bool = False, device: str = "auto", log=print) -> list[str]:
    """Build the selected sections (and what they need); returns the ids that ran."""
    from .render import render

    sections = select(selectors, backend=config.backend)
    forced = {s.id for s in select(selectors, include_needs=False)} if force else set()
    if device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"unknown device '{device}'; valid: auto, cpu, cuda")
    store = Store(cache_dir(config.root))
    ran: list[str] = []
    if any(s.uses_backend for s in sections):
        log(f"backend: {config.backend} ({config.backend_reason})")
    with store.lock():
        entries: dict[str, Entry] = {}
        planned = plan(config, sections)
        to_run = {s.id for s, key in planned if s.id in forced or store.entry(key) is None}
        runs = tuple(s.id for s, _ in planned if s.id in to_run)
        if config.backend == "deepfloyd" and any(s.uses_backend for s in sections if s.id in to_run):
            from .backends import preflight

            preflight(config, [s.id for s in sections if s.uses_backend and s.id in to_run])  # before anything runs
        try:
            for section, key in planned:
                entry = store.entry(key)
                if section.id in to_run:
                    device = resolve_device(device)  # imports torch: only when something runs
                    log(f"{section.id}: running ({section.title})")
                    needs = {n: entries[n] for n in section.needs_on(config.backend)}
                    _run_one(section, key, config, store, needs, device, runs)
                    entry = store.entry(key)
                    ran.append(section.id)
                    log(f"{section.id}: done in {entry.record['duration_s']:.1f} s")
                else:
                    log(f"{section.id}: up to date, reused")
                entries[section.id] = entry
                store.set_ref(section.id, key)
        finally:
            changed = render(config.root, store)
            if changed:
                log(f"docs/: {len(changed)} file(s) updated")
    reused = len(sections) - len(ran)
    log(f"{len(ran)} section(s) ran, {reused} reused" + (" (nothing to do)" if not ran else ""))
    sys.stdout.flush()
    return ran
