"""Plan and run sections: keys first, then reuse or run, then render.

This is the one way through the data: parameters → experiments → store →
renderer. A section's run sees its parameters, the entries of the sections it
needs, the backend where it runs on one, and folders to write into; it never
writes into docs/. What it returns is written out here (outputs.py).
"""

from __future__ import annotations

import json
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


def backend_identity(config: Config, section: Section) -> dict | None:
    """What of Part A's model determines a section's result (None: it runs on no backend)."""
    if not section.uses_backend:
        return None
    return {"name": config.backend, **config.params[config.backend].identity()}


def key_parts(config: Config, section: Section, needs: dict[str, str]) -> dict:
    """What a section's key is made of (store.entry_key), given the keys of the sections it needs."""
    params = config.params[section.id]
    inputs = {spec: file_digest(spec, config.root) for spec in params.input_files()}
    return {
        "version": section.version,
        "params": params.model_dump(mode="json"),
        "backend": backend_identity(config, section),
        "needs": needs,
        "inputs": {spec: digest for spec, digest in inputs.items() if digest},
    }


def _key(section: Section, parts: dict) -> str:
    backend = canonical_json(parts["backend"]) if parts["backend"] else "none"
    return entry_key(section.id, parts["version"], parts["params"], backend, parts["needs"], parts["inputs"])


def plan(config: Config, sections: list[Section]) -> list[tuple[Section, str, dict]]:
    """Each section with its key and what the key is made of; `sections` must hold everything they need, in
    dependency order."""
    keys: dict[str, str] = {}
    planned = []
    for s in sections:
        parts = key_parts(config, s, {n: keys[n] for n in s.needs_on(config.spec.needs)})
        keys[s.id] = _key(s, parts)
        planned.append((s, keys[s.id], parts))
    return planned


@dataclass
class State:
    """Where a section stands against its last build: fresh, stale or never built, and why it is stale."""

    section: Section
    state: str
    reasons: list[str] = field(default_factory=list)


def states(config: Config) -> dict[str, State]:
    """Every section's state, in page order; a stale one says what changed since its last build (its ref)."""
    store = Store(cache_dir(config.root))  # read only: a missing cache folder means nothing was built
    found: dict[str, State] = {}
    for s, key, parts in plan(config, select(list(all_sections()), backend_needs=config.spec.needs)):
        found[s.id] = _state_of(store, s, key, parts, found)  # dependency order: what it needs is known first
    return {sid: found[sid] for sid in all_sections()}


def _state_of(store: Store, section: Section, key: str, parts: dict, found: dict[str, State]) -> State:
    if store.entry(key):
        return State(section, "fresh")
    last_key = store.ref(section.id)
    if not last_key:
        return State(section, "never built")
    last = store.entry(last_key)
    if last is None:  # a damaged entry is stale too: the next build rebuilds it
        problem = store.problem(last_key)
        return State(section, "stale", [
            "its stored result is missing from the store" if problem == "it is missing"
            else f"its stored result is damaged ({problem})"])
    record = last.record
    reasons = changes(section, record, parts, found)
    if not reasons:
        older = " (built by an older gen: its code version or an input file?)" if "version" not in record else ""
        reasons = [f"its key changed in a way its record does not show{older}"]
    return State(section, "stale", reasons)


def changes(section: Section, record: dict, parts: dict, found: dict[str, State]) -> list[str]:
    """What differs between the record of a section's last build and what its next build would use (`parts`);
    `found` holds the states of the sections it needs."""
    reasons = []
    old_version = record.get("version")
    if old_version is not None and old_version != parts["version"]:
        reasons.append(f"code version {shown(old_version)} → {shown(parts['version'])}")
    reasons += _changed_values(f"{section.id}.", _mapping(record.get("params")), parts["params"])
    if parts["backend"]:
        old_backend, new = _mapping(record.get("backend")), parts["backend"]
        # Records written before the identity was kept hold the name and every setting, some not in the key.
        old = _mapping(old_backend.get("identity")) or {
            "name": old_backend.get("name"),
            **{k: v for k, v in _mapping(old_backend.get("settings")).items() if k in new},
        }
        if old.get("name") != new["name"]:
            reasons.append(f"backend: {old.get('name')} → {new['name']}")
        else:
            reasons += _changed_values(f"{new['name']}.", {k: v for k, v in old.items() if k != "name"},
                                       {k: v for k, v in new.items() if k != "name"})
    old_inputs = _mapping(record.get("inputs"))
    for spec, digest in parts["inputs"].items():
        if spec in old_inputs and old_inputs[spec] != digest:  # another file name shows as a changed parameter
            change = f"{_short(old_inputs[spec])} → {_short(digest)}"
            reasons.append(f"input {spec}: its content changed (sha256 {change})")
    old_needs = _mapping(record.get("needs"))
    added = [need for need in parts["needs"] if need not in old_needs]
    removed = [need for need in old_needs if need not in parts["needs"]]
    reasons += [f"now needs {', '.join(added)}"] if added else []
    reasons += [f"no longer needs {', '.join(removed)}"] if removed else []
    for need, key in parts["needs"].items():
        if need in old_needs and old_needs[need] != key:
            state = found[need].state
            reasons.append(f"needs {need}, which is stale" if state == "stale"
                           else f"needs {need}, which was never built" if state == "never built"
                           else f"needs {need}, whose result changed ({_short(old_needs[need])} → {_short(key)})")
    return reasons


def _short(digest) -> str:
    return f"{str(digest)[:12]}…"


def _mapping(value) -> dict:
    return value if isinstance(value, dict) else {}


_ABSENT = object()


def _changed_values(prefix: str, old: dict, new: dict) -> list[str]:
    """`PREFIX.NAME: old → new` for each value that differs, or is on one side only."""
    names = [*new, *(name for name in old if name not in new)]
    return [f"{prefix}{name}: {shown(old.get(name, _ABSENT))} → {shown(new.get(name, _ABSENT))}"
            for name in names if old.get(name, _ABSENT) != new.get(name, _ABSENT)]


def shown(value, limit: int = 60) -> str:
    """A value as gen.yaml and --set write it, compactly: a long list keeps its ends, long text is cut."""
    if value is _ABSENT:
        return "(not set)"
    if isinstance(value, list) and len(value) > 6:
        text = f"[{', '.join(shown(v, 20) for v in value[:3])}, …, {shown(value[-1], 20)}] ({len(value)} items)"
    else:
        text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


def _run_one(section: Section, key: str, parts: dict, config: Config, full: Config, store: Store,
             needs: dict[str, Entry], device: str, runs: tuple[str, ...]) -> None:
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
            backend = {**ctx.backend().describe, "settings": config.params[config.backend].model_dump(mode="json"),
                       "identity": parts["backend"]}
        else:
            backend = {"name": "none", **({"model_id": result.model} if result.model else {})}
        record = {
            "id": section.id,
            "title": section.title,
            "params": params.model_dump(mode="json"),
            "version": section.version,
            "inputs": parts["inputs"],  # with the version: what `gen status` compares, beyond params and needs
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
        to_run = {s.id for s, key, _ in planned if s.id in forced or store.entry(key) is None}
        runs = tuple(s.id for s, _, _ in planned if s.id in to_run)
        on_backend = [s.id for s, _, _ in planned if s.uses_backend and s.id in to_run]
        if runs:  # before anything runs
            check_mnist(data_dir(config.root), store.root)
        if on_backend:
            spec.preflight(config, on_backend, prompts_of(config, on_backend))
        try:
            for section, key, parts in planned:
                entry = store.entry(key)
                if section.id in to_run:
                    device = resolve_device(device)  # imports torch: only when something runs
                    log(f"{section.id}: running ({section.title})")
                    needs = {n: entries[n] for n in section.needs_on(spec.needs)}
                    _run_one(section, key, parts, config, full, store, needs, device, runs)
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


def dry_run(config: Config, selectors: list[str], *, force: bool = False, log=print) -> list[str]:
    """What `build` would run, in its order, and why; runs nothing and writes nothing (no lock, no cache folder).
    Returns the ids that would run."""
    refuse_links(config.root)  # the build would stop there
    spec = config.spec
    sections = select(selectors, backend_needs=spec.needs)
    named = {s.id for s in select(selectors, include_needs=False)}
    found = states(config)
    if any(s.uses_backend for s in sections):
        log(f"backend: {config.backend} ({config.backend_reason})")
    would: list[str] = []
    for section in sections:
        state = found[section.id]
        forced = force and section.id in named
        if state.state == "fresh" and not forced:
            log(f"{section.id}: up to date, would be reused")
            continue
        would.append(section.id)
        log(f"{section.id}: would run ({section.title})")
        why = (["forced with --force"] if forced else []) + (["never built"] if state.state == "never built" else [])
        if state.state == "stale":
            why += state.reasons
        if section.id not in named:
            users = [s.id for s in sections if section.id in s.needs_on(spec.needs)]
            why.append(f"needed by {', '.join(users)}")
        for reason in why:
            log(f"    {reason}")
    log(f"dry run: {len(would)} section(s) would run, {len(sections) - len(would)} would be reused; "
        "nothing was run or written")
    return would
