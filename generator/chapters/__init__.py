"""The table of sections, in page order, collected from the chapter modules beside this one.

A section is its run function, `run(params, ctx) -> Result`, declared with `@section`
(generator/section.py): its number in the write-up and title, its parameters (a `Params` class
beside it, whose values live in gen.yaml), the sections it needs, its code version, whether it
runs on the backend, and its headline for the home page. The modules are grouped by the
write-up's chapters and import nothing heavy when the table is read (torch and the rest are
`lazy`), so `gen list` and `gen --help` stay instant.
"""

from __future__ import annotations

import types
from collections.abc import Iterable

from ..errors import UsageError
from ..section import Section
from . import (
    a_denoising,
    a_editing,
    a_illusions,
    a_sampling,
    b_denoiser,
    b_sampling,
    b_training,
    f_flow,
)

CHAPTERS = (
    a_sampling,
    a_denoising,
    a_editing,
    a_illusions,
    b_denoiser,
    b_training,
    b_sampling,
    f_flow,
)


def _number(section: Section) -> tuple:
    """Where a section's number puts it: a0 < a1.7 < a1.7.1 < a1.8 < a1.10 < b1.1."""
    return section.part, tuple(int(n) for n in section.number.split("."))


def _collect(chapters: Iterable[types.ModuleType]) -> tuple[Section, ...]:
    """Every section the chapters declare, in page order: by number, except that a section with
    `after` comes right after that one."""
    found: dict[str, Section] = {}
    for module in chapters:
        for value in vars(module).values():
            # Functions only: asking a lazy module for `section` would import it.
            declared = (
                getattr(value, "section", None) if isinstance(value, types.FunctionType) else None
            )
            if isinstance(declared, Section) and value.__module__ == module.__name__:
                if declared.id in found:
                    raise ValueError(f"two sections are declared {declared.id}")
                found[declared.id] = declared
    ordered = sorted((s for s in found.values() if s.after is None), key=_number)
    placed = {s.id for s in ordered}
    rest = [s for s in found.values() if s.after is not None]
    while rest:
        ready = [s for s in rest if s.after in placed]
        if not ready:
            raise ValueError(f"{rest[0].id} comes after {rest[0].after}, which is not a section")
        for s in ready:
            ordered.insert(next(i for i, o in enumerate(ordered) if o.id == s.after) + 1, s)
            placed.add(s.id)
            rest.remove(s)
    for s in ordered:
        unknown = [n for n in s.needs if n not in found]
        if unknown:
            raise ValueError(f"{s.id} needs {unknown[0]}, which is not a section")
    return tuple(ordered)


SECTIONS = _collect(CHAPTERS)


def all_sections() -> dict[str, Section]:
    """Every section, in page order."""
    return {s.id: s for s in SECTIONS}


def _selects(selector: str, section_id: str) -> bool:
    # "b" selects b1.1...; "b1" selects b1.1 and b1.2.2 but not b10; "a1.7" selects a1.7.1.
    if section_id == selector:
        return True
    if not section_id.startswith(selector):
        return False
    following = section_id[len(selector)]
    return following == "." or (selector.isalpha() and following.isdigit())


def needed(ids: Iterable[str], backend_needs: tuple[str, ...] = ()) -> list[str]:
    """Every section that `ids` need, directly or through others (not `ids` themselves, unless
    needed)."""
    sections = all_sections()
    found: list[str] = []
    stack = [n for sid in ids for n in sections[sid].needs_on(backend_needs)]
    while stack:
        sid = stack.pop()
        if sid not in found:
            found.append(sid)
            stack.extend(sections[sid].needs_on(backend_needs))
    return found


def select(
    selectors: list[str], *, include_needs: bool = True, backend_needs: tuple[str, ...] = ()
) -> list[Section]:
    """The sections the selectors name, plus what they need, in dependency order."""
    sections = all_sections()
    chosen: set[str] = set()
    for selector in selectors:
        matched = [sid for sid in sections if _selects(selector, sid)]
        if not matched:
            parts = sorted({sid[0] for sid in sections})
            raise UsageError(
                f"unknown section '{selector}'; valid: {', '.join(parts + list(sections))} "
                "(see `gen list`)"
            )
        chosen.update(matched)
    if include_needs:
        chosen.update(needed(chosen, backend_needs))
    return in_dependency_order([s for sid, s in sections.items() if sid in chosen], backend_needs)


def in_dependency_order(chosen: list[Section], backend_needs: tuple[str, ...]) -> list[Section]:
    """`chosen` in page order, except that every section comes after what it needs.

    Part A comes first on the page, but on the local backend it needs b2.4.
    """
    by_id = {s.id: s for s in chosen}
    ordered: list[Section] = []
    done: set[str] = set()

    def visit(s: Section) -> None:
        if s.id in done:
            return
        done.add(s.id)
        for need in s.needs_on(backend_needs):
            if need in by_id:
                visit(by_id[need])
        ordered.append(s)

    for s in chosen:
        visit(s)
    return ordered
