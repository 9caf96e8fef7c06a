"""What a section is: its declaration (`@section` on its run function), its parameters' base
class, what its run returns and what its card on the home page shows.

Each section is a function `run(params, ctx) -> Result` in a chapter module under
generator/chapters/, declared with `@section`: its number in the write-up, title, parameters (a
`Params` class), the sections it needs, its code version, whether it runs on the backend and its
headline. generator.chapters collects them into the table, `SECTIONS`. Reading the table imports
no torch (the chapter modules name their heavy imports `lazy`), so `gen list` and `gen --help`
stay instant; torch is imported when a section runs.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a 64-bit integer


class Settings(BaseModel):
    """Validated settings from gen.yaml: frozen, no unknown keys, strict types; every value comes
    from gen.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    def identity(self) -> dict:
        """The settings that determine results (all of them, unless a group says otherwise)."""
        return self.model_dump(mode="json")


class Params(Settings):
    """Base of every section's parameters."""

    seed: int = Field(ge=0, le=MAX_SEED, description="seed of every random draw in the section")

    def check(self, config, sid: str) -> None:
        """Checks against other parameters and the backend (`config.spec`); raise UsageError
        naming `sid`.KEY."""

    def all_prompts(self) -> list[str]:
        """Every prompt the section gives the backend."""
        return []

    def input_files(self) -> list[str]:
        """Every image or mask it reads (paths, mnist:N, rect:): their content is part of the
        cache key."""
        return []


@dataclass
class Figure:
    """A file the section wrote into its public folder, with its caption."""

    file: str
    caption: str  # text, with maths between \\( and \\) (typeset on the page)
    pixelated: bool = False  # crisp pixels wherever the browser scales it
    enlarge: bool = (
        False  # one file pixel per image pixel: the page shows it enlarged by a whole factor
    )


@dataclass
class Result:
    """What a section's run returns; the build writes it out (build.py, by the README's contract).

    `samples` become samples.npz: "images" (N, C, H, W) in [0, 1] and arrays
    with one entry per image (or a single value). `model` names the model that
    made a section that does not run on the backend.
    """

    metrics: dict[str, float] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    samples: dict[str, Any] | None = None
    model: str | None = None


@dataclass(frozen=True)
class Headline:
    """What a section's card on the home page shows: one value, and what it is.

    The card reads "VALUE LABEL" ("73.3% read as the digit asked for"), or the
    label with the value at its "{}" ("PSNR at \\(t = 225\\): {} dB"). The label
    is the section's own words, Markdown with maths between \\( and \\); numbers
    that go into it, and the value, are written with the formatters below,
    which write numbers only, so that what a record holds cannot become markup.
    """

    label: str
    value: str

    @property
    def text(self) -> str:
        if "{}" in self.label:
            return self.label.replace("{}", self.value)
        return f"{self.value} {self.label}"


# Each formatter writes digits, signs and units only, or raises (ValueError, TypeError) on a value
# that is not a number: what they write needs no escaping.


def plain(value: Any) -> str:
    """A number as templates print it: 225, 0.5."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{value!r} is not a number")
    return str(value)


def percent(value: Any) -> str:
    """A share as a percentage: 0.967 → 96.7%."""
    return f"{100 * float(value):.1f}%"


def count(value: Any, digits: int = 4) -> str:
    """A whole number with thousands separators (124,433), else `digits` significant digits."""
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e6:
        return f"{int(value):,}"
    return f"{value:.{digits}g}"


def db(value: Any) -> str:
    """A PSNR in dB: None is the infinite PSNR of an exact copy (JSON has no infinity)."""
    return "∞" if value is None else f"{value:.2f}"


def fixed(value: Any, spec: str) -> str:
    """A number in a format of its own: fixed(0.01663, ".4f") → 0.0166."""
    return format(value, spec)


# A section's headline: from what its record holds (anything with .params, .metrics and .data, as
# docs/ publishes them) to its card's Headline, or None where it has nothing to show.
HeadlineOf = Callable[[Any], Headline | None]


@dataclass(frozen=True)
class Section:
    """A section as the table holds it; `@section` on its run function declares it."""

    id: str  # a for Part A, b for Part B, then the write-up's number: a1.7.1, b2.3
    title: str
    params: type[Params]
    run: Callable[..., Result]  # run(params, ctx) -> Result
    needs: tuple[str, ...] = ()
    version: int = 1  # bump when the section's code changes its results
    uses_backend: bool = False  # runs on Part A's model (--backend), which is part of its key
    headline: HeadlineOf | None = None  # what its card on the home page shows
    after: str | None = None  # on the page right after this section, not in number order

    @property
    def part(self) -> str:
        return self.id[0]

    @property
    def page(self) -> str:
        return f"part_{self.part}"

    @property
    def number(self) -> str:
        """Its number in the write-up: a1.7.1 → 1.7.1."""
        return self.id[1:]

    def function(self) -> Callable[..., Result]:
        """The run function as its module holds it now, looked up by name as Python calls any
        module function (so that one replaced in its module, as a test does, is what runs)."""
        return getattr(sys.modules[self.run.__module__], self.run.__name__)

    def needs_on(self, backend_needs: tuple[str, ...]) -> tuple[str, ...]:
        """Its needs, with those of the backend where it runs on one."""
        extra = backend_needs if self.uses_backend else ()
        return self.needs + tuple(n for n in extra if n not in self.needs)


def section(
    id: str,
    title: str,
    params: type[Params],
    *,
    needs: tuple[str, ...] = (),
    version: int = 1,
    uses_backend: bool = False,
    headline: HeadlineOf | None = None,
    after: str | None = None,
) -> Callable[[Callable[..., Result]], Callable[..., Result]]:
    """Declare the decorated run function a section (see `Section` for each field); the table in
    generator/chapters/__init__.py collects it from its chapter module. The function is returned
    as it is, with the declaration as its `section`."""

    def declare(run: Callable[..., Result]) -> Callable[..., Result]:
        run.section = Section(
            id, title, params, run, tuple(needs), version, uses_backend, headline, after
        )
        return run

    return declare


class lazy:
    """A module that is imported where one of its names is first used, not where it is named.

    Section modules are imported to read the table (`gen list`, `gen --help`, a dry run), which
    must not wait seconds for torch; so they name what a run needs as `torch = lazy("torch")` or
    `samplers = lazy("..diffusion.samplers", __package__)`, and the import happens when a run
    first uses it. (tests/test_architecture.py reads these names as imports.)
    """

    def __init__(self, name: str, package: str | None = None):
        self._name, self._package, self._module = name, package, None

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):  # copy, pickle and the like ask for these; no import for them
            raise AttributeError(attr)
        if self._module is None:
            self._module = importlib.import_module(self._name, self._package)
        return getattr(self._module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name}>"
