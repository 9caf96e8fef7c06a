"""Part A's models behind one interface (base.py): `deepfloyd` (DeepFloyd IF) and `local` (our MNIST
model).

This package is the only place that knows the backends by name. `BACKENDS`
lists their specs in the order `--backend auto` tries them; `open_backend`
loads one and keeps it for the rest of the process. Importing this package
needs no torch: the models load in *_model.py, when a section first asks.
"""

from __future__ import annotations

import gc
import json

from ..errors import UsageError
from .base import Backend, BackendSettings, BackendSpec
from .deepfloyd import DEEPFLOYD
from .local import LOCAL

BACKENDS: dict[str, BackendSpec] = {
    spec.name: spec for spec in (DEEPFLOYD, LOCAL)
}  # auto's order of preference

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendSettings",
    "BackendSpec",
    "open_backend",
    "resolve_backend",
]


def resolve_backend(
    choice: str, settings: dict[str, BackendSettings], cuda: bool
) -> tuple[str, str]:
    """The backend `--backend` names, with why; auto takes the first that can load, and says why the
    others cannot."""
    if choice in BACKENDS:
        return choice, "chosen with --backend"
    if choice != "auto":
        raise UsageError(f"unknown backend '{choice}'; valid: auto, {', '.join(BACKENDS)}")
    passed_over = []
    for name, spec in BACKENDS.items():
        ok, reason = spec.available(settings[name], cuda)
        if ok:
            return name, f"auto: {passed_over[0] if passed_over else reason}"
        passed_over.append(reason)
    raise UsageError(f"no backend can load here: {'; '.join(passed_over)}")


_OPEN: dict[tuple, Backend] = {}


def open_backend(config, section_ids, needs: dict, device: str, cache) -> Backend:
    """The build's backend, loaded once per process and shared by every section that runs on it.

    `section_ids` are the sections the build runs: a backend that encodes
    prompts ahead (DeepFloyd's T5) encodes all of theirs at once.
    """
    spec = BACKENDS[config.backend]
    settings = config.params[spec.name]
    key = (
        spec.name,
        json.dumps(settings.identity(), sort_keys=True),
        device,
        tuple(needs[n].key for n in spec.needs_for(settings)),
    )
    if key not in _OPEN:
        _OPEN.clear()  # one model in memory at a time: IF's stages are gigabytes
        gc.collect()
        prompts = prompts_of(config, section_ids)
        _OPEN[key] = spec.load(
            settings, {n: needs[n] for n in spec.needs_for(settings)}, prompts, cache, device
        )
    return _OPEN[key]


def prompts_of(config, section_ids) -> list[str]:
    """Every prompt the sections use, and "" (the unconditional prompt)."""
    found = {""}
    for sid in section_ids:
        found.update(config.params[sid].all_prompts())
    return sorted(found)
