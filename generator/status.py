"""Where each section stands against its last build (`gen status`, `gen list -v`), and what a build
would run (`gen build --dry-run`): read from the store and the records, without running or writing
anything."""

from __future__ import annotations

from dataclasses import dataclass, field

from .build import ABSENT, plan, shown
from .chapters import all_sections, select
from .config import Config, cache_dir
from .render import refuse_links
from .section import Section
from .store import Store


@dataclass
class State:
    """Where a section stands against its last build: fresh, stale or never built, and why it is
    stale."""

    section: Section
    state: str
    reasons: list[str] = field(default_factory=list)


def states(config: Config) -> dict[str, State]:
    """Every section's state, in page order; a stale one says what changed since its last build (its
    ref)."""
    store = Store(
        cache_dir(config.root)
    )  # read only: a missing cache folder means nothing was built
    found: dict[str, State] = {}
    for s, key, parts in plan(
        config, select(list(all_sections()), backend_needs=config.backend_needs)
    ):
        found[s.id] = _state_of(
            store, s, key, parts, found
        )  # dependency order: what it needs is known first
    return {sid: found[sid] for sid in all_sections()}


def _state_of(
    store: Store, section: Section, key: str, parts: dict, found: dict[str, State]
) -> State:
    if store.entry(key):
        return State(section, "fresh")
    last_key = store.ref(section.id)
    if not last_key:
        return State(section, "never built")
    last = store.entry(last_key)
    if last is None:  # a damaged entry is stale too: the next build rebuilds it
        problem = store.problem(last_key)
        return State(
            section,
            "stale",
            [
                "its stored result is missing from the store"
                if problem == "it is missing"
                else f"its stored result is damaged ({problem})"
            ],
        )
    record = last.record
    reasons = changes(section, record, parts, found)
    if not reasons:
        older = (
            " (built by an older gen: its code version or an input file?)"
            if "version" not in record
            else ""
        )
        reasons = [f"its key changed in a way its record does not show{older}"]
    return State(section, "stale", reasons)


def changes(section: Section, record: dict, parts: dict, found: dict[str, State]) -> list[str]:
    """What differs between the record of a section's last build and what its next build would use
    (`parts`); `found` holds the states of the sections it needs."""
    reasons = []
    old_version = record.get("version")
    if old_version is not None and old_version != parts["version"]:
        reasons.append(f"code version {shown(old_version)} → {shown(parts['version'])}")
    reasons += _changed_values(f"{section.id}.", _mapping(record.get("params")), parts["params"])
    if parts["backend"]:
        old_backend, new = _mapping(record.get("backend")), parts["backend"]
        # Records written before the identity was kept hold the name and every setting, some not
        # in the key.
        old = _mapping(old_backend.get("identity")) or {
            "name": old_backend.get("name"),
            **{k: v for k, v in _mapping(old_backend.get("settings")).items() if k in new},
        }
        if old.get("name") != new["name"]:
            reasons.append(f"backend: {old.get('name')} → {new['name']}")
        else:
            reasons += _changed_values(
                f"{new['name']}.",
                {k: v for k, v in old.items() if k != "name"},
                {k: v for k, v in new.items() if k != "name"},
            )
    old_inputs = _mapping(record.get("inputs"))
    for spec, digest in parts["inputs"].items():
        if (
            spec in old_inputs and old_inputs[spec] != digest
        ):  # another file name shows as a changed parameter
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
            reasons.append(
                f"needs {need}, which is stale"
                if state == "stale"
                else f"needs {need}, which was never built"
                if state == "never built"
                else f"needs {need}, whose result changed "
                f"({_short(old_needs[need])} → {_short(key)})"
            )
    return reasons


def _short(digest) -> str:
    return f"{str(digest)[:12]}…"


def _mapping(value) -> dict:
    return value if isinstance(value, dict) else {}


def _changed_values(prefix: str, old: dict, new: dict) -> list[str]:
    """`PREFIX.NAME: old → new` for each value that differs, or is on one side only."""
    names = [*new, *(name for name in old if name not in new)]
    return [
        f"{prefix}{name}: {shown(old.get(name, ABSENT))} → {shown(new.get(name, ABSENT))}"
        for name in names
        if old.get(name, ABSENT) != new.get(name, ABSENT)
    ]


def dry_run(config: Config, selectors: list[str], *, force: bool = False, log=print) -> list[str]:
    """What `build` would run, in its order, and why; runs nothing and writes nothing (no lock, no
    cache folder). Returns the ids that would run."""
    refuse_links(config.root)  # the build would stop there
    sections = select(selectors, backend_needs=config.backend_needs)
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
        why = (["forced with --force"] if forced else []) + (
            ["never built"] if state.state == "never built" else []
        )
        if state.state == "stale":
            why += state.reasons
        if section.id not in named:
            users = [s.id for s in sections if section.id in s.needs_on(config.backend_needs)]
            why.append(f"needed by {', '.join(users)}")
        for reason in why:
            log(f"    {reason}")
    log(
        f"dry run: {len(would)} section(s) would run, {len(sections) - len(would)} would be "
        "reused; nothing was run or written"
    )
    return would
