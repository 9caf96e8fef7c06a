"""What a section is: its record in the table, its parameters' base class, and what its run returns.

The table itself is `generator.sections.SECTIONS`: plain records that name
each section's number in the write-up, its title, its parameters (a `Params`
class), the sections it needs and the function that runs it, as
"module:function" under generator/sections/. Reading the table imports no
torch, so `gen list` and `gen --help` stay instant; a section's module is
imported when it runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a 64-bit integer


class Settings(BaseModel):
    """Validated settings from gen.yaml: frozen, no unknown keys, strict types; every value comes from gen.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    def identity(self) -> dict:
        """The settings that determine results (all of them, unless a group says otherwise)."""
        return self.model_dump(mode="json")


class Params(Settings):
    """Base of every section's parameters."""

    seed: int = Field(ge=0, le=MAX_SEED, description="seed of every random draw in the section")

    def check(self, config, sid: str) -> None:
        """Checks against other parameters and the backend (`config.spec`); raise UsageError naming `sid`.KEY."""

    def all_prompts(self) -> list[str]:
        """Every prompt the section gives the backend."""
        return []

    def input_files(self) -> list[str]:
        """Every image or mask it reads (paths, mnist:N, rect:): their content is part of the cache key."""
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
    """What a section's run returns; the build writes it out (build.py, by the contract in the README).

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
class Section:
    id: str  # a for Part A, b for Part B, then the write-up's number: a1.7.1, b2.3
    title: str
    params: type[Params]
    run: str  # "module:function" under generator/sections/
    needs: tuple[str, ...] = ()
    version: int = 1  # bump when the section's code changes its results
    uses_backend: bool = False  # runs on Part A's model (--backend), which is part of its key

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
        module, name = self.run.split(":")
        return getattr(importlib.import_module(f"generator.sections.{module}"), name)

    def needs_on(self, backend_needs: tuple[str, ...]) -> tuple[str, ...]:
        """Its needs, with those of the backend where it runs on one."""
        extra = backend_needs if self.uses_backend else ()
        return self.needs + tuple(n for n in extra if n not in self.needs)
