"""Models shipped with the project, trained beforehand by `gen pretrain` (generator/pretrained.py):
fp16 weights under generator/weights/, each with its training record beside it (command, seed,
parameters, machine, time, sha256).

A build that uses one puts the record's sha256 in its keys, and is refused before anything runs
when the weights are missing or are not the ones their record names.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError

FOLDER = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class Shipped:
    name: str  # as `gen pretrain NAME` calls it
    section: str  # the section whose recipe trains it
    what: str  # as an error names it
    weights: Path
    instead: str  # what to set to do without it

    @property
    def record_path(self) -> Path:
        return self.weights.with_suffix(".json")

    @property
    def fix(self) -> str:
        return f"run `gen pretrain {self.name}` to train it again, or use --set {self.instead}"

    def record(self) -> dict:
        """Its training record."""
        if not self.record_path.is_file():
            raise UsageError(f"{self.what} has no record {self.record_path.name}; {self.fix}")
        return json.loads(self.record_path.read_text())

    def recorded_sha256(self) -> str:
        """The sha256 its record gives ("missing" without one): what enters the keys."""
        path = self.record_path
        return json.loads(path.read_text())["sha256"] if path.is_file() else "missing"

    def check(self) -> None:
        """The weights are there and are the ones their record names."""
        self.record()
        if not self.weights.is_file():
            raise UsageError(f"{self.what} {self.weights.name} is missing; {self.fix}")
        if sha256(self.weights) != self.recorded_sha256():
            raise UsageError(
                f"{self.what} {self.weights.name} does not match the sha256 of its record "
                f"{self.record_path.name}; {self.fix}"
            )


def sha256(path: Path) -> str:
    found = path.stat()
    return _digest(path, found.st_mtime_ns, found.st_size)


@functools.cache
def _digest(path: Path, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


DDPM = Shipped(
    "ddpm",
    "b2.4",
    "the local backend's shipped model",
    FOLDER / "mnist_ddpm.safetensors",
    "local.model=b2.4",
)
CLASSIFIER = Shipped(
    "classifier",
    "b2.0",
    "the shipped scoring classifier",
    FOLDER / "mnist_classifier.safetensors",
    "b2.0.model=trained",
)
MODELS = {m.name: m for m in (DDPM, CLASSIFIER)}
