"""Plan and run sections: keys first, then reuse or run, then render.

This is the one way through the data: parameters → experiments → store →
renderer. A section's run sees its parameters, the entries of the sections it
needs, the backend where it runs on one, and folders to write into; it never
writes into docs/. What it returns is written out here (outputs.py).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .backends import Backend, open_backend, prompts_of
from .config import Config, cache_dir, check_cache_dir, data_dir, load
from .data import check_mnist
from .errors import SectionFailed, UsageError
from .inputs import file_digest
from .outputs import check_metrics, machine, versions, write_record, write_samples
from .render import refuse_links, render
from .section import Params, Result, Section
from .sections import all_sections, needed, select
from .store import Entry, Store, canonical_json, entry_key


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
    opened: Backend | None = field(default=None, repr=False)

    def params_of(self, section_id: str) -> Params:
        return self.config.params[section_id]

    def backend(self) -> Backend:
        """Part A's model for this build, loaded once per process."""
        if self.opened is None:
            self.opened = open_backend(self.config, self.runs, self.needs, self.device, cache_dir(self.config.root))
        return self.opened

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
        params = config.params[s.id]
        needs = {n: keys[n] for n in s.needs_on(config.spec.needs)}
        inputs = {spec: file_digest(spec, config.root) for spec in params.input_files()}
        keys[s.id] = entry_key(s.id, s.version, params.model_dump(mode="json"), backend_identity(config, s), needs,
                               {spec: digest for spec, digest in inputs.items() if digest})
        planned.append((s, keys[s.id]))
    return planned


def status(config: Config) -> list[tuple[Section, str]]:
    """Every section with fresh (built with these parameters), stale or never."""
    store = Store(cache_dir(config.root))
    keys = {s.id: key for s, key in plan(config, select(list(all_sections()), backend_needs=config.spec.needs))}
    rows = []
    for s in all_sections().values():  # page order
        if store.entry(keys[s.id]):
            rows.append((s, "fresh"))
        else:
            rows.append((s, "stale" if store.ref(s.id) else "never built"))  # a damaged entry is stale too
    return rows


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda, but torch sees no CUDA GPU here; use --device cpu or auto")
    return device


def _device_name(device: str) -> str:
    if device == "cuda":
        import torch

        return f"cuda ({torch.cuda.get_device_name()})"
    return device


def departures(config: Config, full: Config, section: Section) -> list[dict]:
    """What differs from the write-up's numbers (the seed aside): the section's parameters, and its backend's
    settings against that backend's full profile."""

    def differ(used: dict, reference: dict, where: str, prefix: str = "") -> list[dict]:
        return [{"name": prefix + k, "used": v, "full": reference[k], "reference": where}
                for k, v in used.items() if v != reference[k] and k != "seed"]

    found = differ(config.params[section.id].model_dump(mode="json"), config.write_up[section.id], "write-up")
    if section.uses_backend:
        name = config.backend
        found += differ(config.params[name].model_dump(mode="json"), full.params[name].model_dump(mode="json"),
                        config.spec.reference, f"{name}.")
    return found


def _run_one(section: Section, key: str, config: Config, full: Config, store: Store, needs: dict[str, Entry],
             device: str, runs: tuple[str, ...]) -> None:
    import torch

    params = config.params[section.id]
    with store.staging(key, section.id) as folder:
        ctx = Context(section, config, folder / "public", folder / "private", store.work_dir(key), device, needs,
                      data_dir(config.root), runs)
        torch.manual_seed(params.seed)
        start = time.perf_counter()
        try:
            result: Result = section.function()(params, ctx)
            duration = time.perf_counter() - start
            check_metrics(result.metrics)
            if result.samples is not None:
                write_samples(ctx.out, result.samples)
        except UsageError:
            raise
        except Exception as e:  # the message names the section; the store keeps earlier results
            raise SectionFailed(section.id, e) from e
        if section.uses_backend:  # the backend's settings (its schedule, its model ids) made this result too
            backend = {**ctx.backend().describe, "settings": config.params[config.backend].model_dump(mode="json")}
        else:
            backend = {"name": "none", **({"model_id": result.model} if result.model else {})}
        record = {
            "id": section.id,
            "title": section.title,
            "params": params.model_dump(mode="json"),
            "profile": config.profile,
            "backend": backend,
            "device": _device_name(device),
            "machine": machine(device),
            "seed": params.seed,
            "duration_s": round(duration, 3),
            "cache_key": key,
            "needs": {sid: e.key for sid, e in needs.items()},
            "metrics": result.metrics,
            "figures": [vars(f) for f in result.figures],
            "departures": departures(config, full, section),
            "command": config.command(section.id, [section.id, *needed([section.id], config.spec.needs)],
                                      backend=section.uses_backend),
            "versions": versions(),
        }
        write_record(folder, ctx.out, record, result.data)


def build(config: Config, selectors: list[str], *, force: bool = False, device: str = "auto", log=print) -> list[str]:
    """Build the selected sections (and what they need); returns the ids that ran."""
    refuse_links(config.root)  # render would refuse at the end: say so before a long build
    spec = config.spec
    sections = select(selectors, backend_needs=spec.needs)
    forced = {s.id for s in select(selectors, include_needs=False)} if force else set()
    if device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"unknown device '{device}'; valid: auto, cpu, cuda")
    full = load(config.root, "full", backend=config.backend)  # the full profile, checked before anything runs
    store = Store(check_cache_dir(config.root))
    ran: list[str] = []
    if any(s.uses_backend for s in sections):
        log(f"backend: {config.backend} ({config.backend_reason})")
    with store.lock():
        store.clean_staging()  # what a killed build left
        entries: dict[str, Entry] = {}
        planned = plan(config, sections)
        to_run = {s.id for s, key in planned if s.id in forced or store.entry(key) is None}
        runs = tuple(s.id for s, _ in planned if s.id in to_run)
        on_backend = [s.id for s, _ in planned if s.uses_backend and s.id in to_run]
        if runs:  # before anything runs
            check_mnist(data_dir(config.root), store.root)
        if on_backend:
            spec.preflight(config, on_backend, prompts_of(config, on_backend))
        try:
            for section, key in planned:
                entry = store.entry(key)
                if section.id in to_run:
                    device = resolve_device(device)  # imports torch: only when something runs
                    log(f"{section.id}: running ({section.title})")
                    needs = {n: entries[n] for n in section.needs_on(spec.needs)}
                    _run_one(section, key, config, full, store, needs, device, runs)
                    entry = store.entry(key)
                    ran.append(section.id)
                    log(f"{section.id}: done in {entry.record['duration_s']:.1f} s")
                else:
                    log(f"{section.id}: up to date, reused")
                entries[section.id] = entry
                store.set_ref(section.id, key)
        finally:
            rendered = render(config.root, store)
            if rendered or rendered.removed or rendered.skipped:
                for line in rendered.report(config.root):
                    log(line)
    reused = len(sections) - len(ran)
    log(f"{len(ran)} section(s) ran, {reused} reused" + (" (nothing to do)" if not ran else ""))
    sys.stdout.flush()
    return ran
