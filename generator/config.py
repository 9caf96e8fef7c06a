"""gen.yaml → validated, frozen parameters per section.

gen.yaml holds every parameter at the write-up's numbers (the `full` profile),
and is the only place that does: the code holds names, bounds and
descriptions. `on_BACKEND:` overlays change Part A's numbers for a backend,
`profiles:` overlays change some of them for `quick` and `smoke`, and `--set
KEY=VALUE` changes one more. Every value is checked before anything runs, and a
bad one is reported in one line that names the key and what is allowed.
"""

from __future__ import annotations

import difflib
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .backends import BACKENDS, BackendSpec, resolve_backend
from .errors import UsageError
from .section import Settings
from .sections import all_sections

PROFILES = ("full", "quick", "smoke")
CONFIG_FILE = "gen.yaml"


@dataclass(frozen=True)
class Config:
    root: Path
    profile: str
    profile_reason: str
    params: dict[str, Settings]  # every section's, and every backend's settings
    sets: tuple[tuple[str, str], ...]  # (owning section or backend, "KEY=VALUE")
    backend: str  # Part A's model, a name in backends.BACKENDS
    backend_reason: str
    write_up: dict[str, dict]  # every section's numbers as the write-up gives them (gen.yaml's `sections:`)

    @property
    def spec(self) -> BackendSpec:
        """Part A's model as the parameters see it (backends/base.py)."""
        return BACKENDS[self.backend]

    def command(self, selector: str, section_ids: list[str], *, backend: bool = False) -> str:
        """The exact command that rebuilds `selector`, with the --set items of `section_ids` (and the backend's)."""
        parts = ["gen", "build", selector, "--profile", self.profile]
        owners = set(section_ids) | ({self.backend} if backend else set())
        if backend:
            parts += ["--backend", self.backend]
        for owner, item in self.sets:
            if owner in owners:
                parts += ["--set", item]
        return shlex.join(parts)


def find_root(start: Path | None = None) -> Path:
    """The project folder: the nearest one at or above `start` holding gen.yaml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise UsageError(f"no {CONFIG_FILE} in {here} or above; run gen inside the project folder")


def cache_dir(root: Path) -> Path:
    return Path(os.environ.get("GEN_CACHE_DIR") or root / ".gen")


def data_dir(root: Path) -> Path:
    """Where MNIST lives (torchvision's layout); downloaded there when missing."""
    env = os.environ.get("GEN_DATA_DIR")
    return Path(env) if env else cache_dir(root) / "data"


def resolve_profile(profile: str, cuda: bool) -> tuple[str, str]:
    if profile == "auto":
        return ("full", "auto: CUDA is present") if cuda else ("quick", "auto: no CUDA GPU")
    if profile not in PROFILES:
        raise UsageError(f"unknown profile '{profile}'; valid: auto, {', '.join(PROFILES)}")
    return profile, "chosen with --profile"


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise UsageError(f"{path.name} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path.name} must be a mapping with 'sections' and 'profiles'")
    return data


def _parse_value(text: str) -> Any:
    # YAML reads "[1, 5]", "true", "0.5"; it leaves "1e-3" a string, which is a number here.
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return float(text)
        except ValueError:
            pass
    return value


def _split_key(key: str, sections: dict[str, type[Settings]]) -> tuple[str, str]:
    owners = [sid for sid in sections if key.startswith(sid + ".")]
    if not owners:
        raise UsageError(
            f"unknown parameter '{key}'; keys look like SECTION.NAME, e.g. b1.2.1.epochs, or "
            "BACKEND.NAME, e.g. deepfloyd.stage_1 (`gen list` shows the sections)"
        )
    sid = max(owners, key=len)
    return sid, key[len(sid) + 1 :]


def _unknown_field(key: str, name: str, model: type[Settings]) -> UsageError:
    names = list(model.model_fields)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return UsageError(f"unknown parameter '{key}'; {hint}valid names here: {', '.join(names)}")


def _describe_error(sid: str, model: type[Settings], err: ValidationError, values: dict) -> UsageError:
    first = err.errors()[0]
    name = str(first["loc"][0]) if first["loc"] else "?"
    key = f"{sid}.{name}"
    if first["type"] == "extra_forbidden":
        return _unknown_field(key, name, model)
    info = model.model_fields.get(name)
    what = f" ({info.description})" if info is not None and info.description else ""
    if first["type"] == "missing":
        return UsageError(f"{key} is missing from {CONFIG_FILE}; give it a value{what}")
    shown = values.get(name, "?")
    msg = first["msg"].replace("Input should be", "must be").replace("Value error, ", "")
    return UsageError(f"bad value {key}={shown!r}: {msg}{what}")


def _layers(data: dict, profile: str, backend: str) -> list[tuple[dict, str]]:
    """The overlays in the order they apply: the write-up's numbers, the backend's, the profile's."""
    for name in data:
        if name.startswith("on_") and name[3:] not in BACKENDS:
            raise UsageError(f"{CONFIG_FILE} has '{name}'; backends are {', '.join(BACKENDS)}")
    profile_overlay = dict((data.get("profiles") or {}).get(profile) or {})
    profile_backend = {f"on_{b}": profile_overlay.pop(f"on_{b}", None) or {} for b in BACKENDS}
    return [
        (data.get("sections") or {}, CONFIG_FILE),
        (data.get(f"on_{backend}") or {}, f"{CONFIG_FILE} on_{backend}"),
        (profile_overlay, f"profile {profile}"),
        (profile_backend[f"on_{backend}"], f"profile {profile} on_{backend}"),
    ]


def load(
    root: Path, profile: str = "auto", sets: tuple[str, ...] = (), *, cuda: bool = False, backend: str = "auto"
) -> Config:
    """Read gen.yaml, apply the backend's and the profile's overlays and the --set overrides, validate everything."""
    sections = all_sections()
    models = {sid: s.params for sid, s in sections.items()} | {name: spec.settings for name, spec in BACKENDS.items()}
    profile, reason = resolve_profile(profile, cuda)
    data = _read_yaml(root / CONFIG_FILE)
    seed = {"seed": data["seed"]} if "seed" in data else {}  # every section's, unless it sets its own

    def validate(raw: dict[str, dict[str, Any]], owner: str) -> Settings:
        try:
            return models[owner].model_validate(raw[owner])
        except ValidationError as e:
            raise _describe_error(owner, models[owner], e, raw[owner]) from None

    owned_sets = []
    for item in sets:
        key, eq, text = item.partition("=")
        if not eq or not key:
            raise UsageError(f"--set needs KEY=VALUE, got '{item}' (e.g. --set b1.2.1.epochs=2)")
        owner, name = _split_key(key.strip(), models)
        if name not in models[owner].model_fields:
            raise _unknown_field(key, name, models[owner])
        owned_sets.append((owner, name, _parse_value(text.strip()), item))

    def resolved(on: str) -> dict[str, dict[str, Any]]:
        """Every owner's values with the overlays of backend `on` and the --set items."""
        raw: dict[str, dict[str, Any]] = {owner: (dict(seed) if owner in sections else {}) for owner in models}
        for layer, where in _layers(data, profile, on):
            for owner, values in layer.items():
                if owner not in models:
                    raise UsageError(f"{where} names unknown section '{owner}'")
                raw[owner].update(values or {})
        for owner, name, value, _ in owned_sets:
            raw[owner][name] = value
        return raw

    # Which backend a build runs on can depend on the backends' settings (auto asks whether each can load).
    settings = {name: validate(resolved(name), name) for name in BACKENDS}
    backend, backend_reason = resolve_backend(backend, settings, cuda)
    raw = resolved(backend)
    params = {owner: validate(raw, owner) for owner in models}
    base = {sid: {**seed, **((data.get("sections") or {}).get(sid) or {})} for sid in sections}
    write_up = {sid: validate(base, sid).model_dump(mode="json") for sid in sections}
    sets_kept = tuple((owner, item) for owner, _, _, item in owned_sets)
    config = Config(root, profile, reason, params, sets_kept, backend, backend_reason, write_up)
    for sid in sections:
        params[sid].check(config, sid)
    return config
