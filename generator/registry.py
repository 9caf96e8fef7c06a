"""Section records: what each section is, what it needs, and how ids select them.

A section is registered once, with the decorator `section`, in the module of
its part of the write-up. Those modules import nothing heavy at import time, so
that `gen list` and `gen --help` stay instant.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field

from .errors import UsageError

# Modules that register sections, in page order.
SECTION_MODULES = ("generator.sections.part_a", "generator.sections.part_b")
# Parameter groups that are not sections (the backends' own settings); their
# keys are set like a section's: `--set deepfloyd.stage_1=FOLDER`.
GROUP_MODULES = ("generator.backends",)

# What a section that runs on Part A's model needs besides its own needs, per backend:
# the local backend is the class-conditioned MNIST model of b2.4, scored by b2.0.
BACKEND_NEEDS = {"local": ("b2.4", "b2.0"), "deepfloyd": ()}


class Settings(BaseModel):
    """Validated settings from gen.yaml: frozen, no unknown keys, strict types."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    def check(self, config) -> None:
        """Checks against other sections' parameters; raise UsageError when they clash."""

    def identity(self) -> dict:
        """The settings that determine results (all of them, unless a group says otherwise)."""
        return self.model_dump(mode="json")


class Params(Settings):
    """Base of every section's parameters."""

    seed: int = Field(0, ge=0, description="seed of every random draw in the section")


@dataclass
class Figure:
    """A file the section wrote into its public folder, with its caption."""

    file: str
    caption: str
    pixelated: bool = False


@dataclass
class Result:
    """What a section's run returns: numbers, figures and data for its template."""

    metrics: dict[str, float] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    backend: dict[str, Any] = field(default_factory=lambda: {"name": "none"})


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    params: type[Params]
    run: Callable[..., Result]
    needs: tuple[str, ...] = ()
    version: int = 1
    page: str = ""
    uses_backend: bool = False  # runs on Part A's model (--backend), which is part of its key

    @property
    def part(self) -> str:
        return self.id[0]

    def needs_on(self, backend: str | None) -> tuple[str, ...]:
        """Its needs, with those of the backend it runs on."""
        extra = BACKEND_NEEDS.get(backend, ()) if self.uses_backend and backend else ()
        return self.needs + tuple(n for n in extra if n not in self.needs)


_SECTIONS: dict[str, Section] = {}
_GROUPS: dict[str, type[Settings]] = {}


def param_group(name: str):
    """Register the decorated Settings class as a group of settings that is not a section (a backend's)."""

    def register(params: type[Settings]):
        _GROUPS[name] = params
        return params

    return register


def param_groups() -> dict[str, type[Settings]]:
    for module in GROUP_MODULES:
        importlib.import_module(module)
    return dict(_GROUPS)


def section(id: str, title: str, params: type[Params], *, needs=(), version=1, page="", uses_backend=False):
    """Register the decorated `run(params, ctx) -> Result` as a section."""

    def register(run):
        if id in _SECTIONS:
            raise RuntimeError(f"section {id} registered twice")
        for need in needs:
            if need not in _SECTIONS:
                raise RuntimeError(f"section {id} needs {need}, which is not registered before it")
        _SECTIONS[id] = Section(id, title, params, run, tuple(needs), version, page, uses_backend)
        return run

    return register


def all_sections() -> dict[str, Section]:
    """Every section, in page order (the order of registration)."""
    for module in SECTION_MODULES:
        importlib.import_module(module)
    return dict(_SECTIONS)


def _selects(selector: str, section_id: str) -> bool:
    # "b" selects b1.1...; "b1" selects b1.1 and b1.2.2 but not b10; "a1.7" selects a1.7.1.
    if section_id == selector:
        return True
    if not section_id.startswith(selector):
        return False
    following = section_id[len(selector)]
    return following == "." or (selector.isalpha() and following.isdigit())


def select(selectors: list[str], *, include_needs: bool = True, backend: str | None = None) -> list[Section]:
    """The sections the selectors name, plus what they need (on `backend`), in dependency order."""
    sections = all_sections()
    chosen: set[str] = set()
    for selector in selectors:
        matched = [sid for sid in sections if _selects(selector, sid)]
        if not matched:
            parts = sorted({sid[0] for sid in sections})
            raise UsageError(
                f"unknown section '{selector}'; valid: {', '.join(parts + list(sections))} (see `gen list`)"
            )
        chosen.update(matched)
    if include_needs:
        stack = list(chosen)
        while stack:
            for need in sections[stack.pop()].needs_on(backend):
                if need not in chosen:
                    chosen.add(need)
                    stack.append(need)
    return in_dependency_order([s for sid, s in sections.items() if sid in chosen], backend)


def in_dependency_order(chosen: list[Section], backend: str | None) -> list[Section]:
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
        for need in s.needs_on(backend):
            if need in by_id:
                visit(by_id[need])
        ordered.append(s)

    for s in chosen:
        visit(s)
    return ordered

