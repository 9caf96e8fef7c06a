"""gen.yaml → validated, frozen parameters per section.

gen.yaml holds every parameter at the write-up's numbers (the `full` profile);
`profiles:` overlays change some of them for `quick` and `smoke`; `--set
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

from .errors import UsageError
from .registry import Params, Section, all_sections

PROFILES = ("full", "quick", "smoke")
CONFIG_FILE = "gen.yaml"


@dataclass(frozen=True)
class Config:
    root: Path
    profile: str
    profile_reason: str
    params: dict[str, Params]
    sets: tuple[tuple[str, str], ...] = ()  # (owning section id, "KEY=VALUE")

    def command(self, selector: str, section_ids: list[str]) -> str:
        """The exact command that rebuilds `selector`, with the --set items of `section_ids`."""
        parts = ["gen", "build", selector, "--profile", self.profile]
        for owner, item in self.sets:
            if owner in section_ids:
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


def _split_key(key: str, sections: dict[str, Section]) -> tuple[str, str]:
    owners = [sid for sid in sections if key.startswith(sid + ".")]
    if not owners:
        raise UsageError(
            f"unknown parameter '{key}'; keys look like SECTION.NAME, e.g. b1.2.1.epochs "
            "(`gen list` shows the sections)"
        )
    sid = max(owners, key=len)
    return sid, key[len(sid) + 1 :]


def _unknown_field(key: str, name: str, model: type[Params]) -> UsageError:
    names = list(model.model_fields)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return UsageError(f"unknown parameter '{key}'; {hint}valid names here: {', '.join(names)}")


def _describe_error(sid: str, model: type[Params], err: ValidationError, values: dict) -> UsageError:
    first = err.errors()[0]
    name = str(first["loc"][0]) if first["loc"] else "?"
    key = f"{sid}.{name}"
    if first["type"] == "extra_forbidden":
        return _unknown_field(key, name, model)
    info = model.model_fields.get(name)
    what = f" ({info.description})" if info is not None and info.description else ""
    shown = values.get(name, "?")
    msg = first["msg"].replace("Input should be", "must be").replace("Value error, ", "")
    return UsageError(f"bad value {key}={shown!r}: {msg}{what}")


def load(root: Path, profile: str = "auto", sets: tuple[str, ...] = (), *, cuda: bool = False) -> Config:
    """Read gen.yaml, apply the profile and the --set overrides, validate everything."""
    sections = all_sections()
    profile, reason = resolve_profile(profile, cuda)
    data = _read_yaml(root / CONFIG_FILE)
    base = data.get("sections") or {}
    overlay = (data.get("profiles") or {}).get(profile) or {}

    raw: dict[str, dict[str, Any]] = {sid: {} for sid in sections}
    for layer, where in ((base, CONFIG_FILE), (overlay, f"profile {profile}")):
        for sid, values in layer.items():
            if sid not in sections:
                raise UsageError(f"{where} names unknown section '{sid}'")
            raw[sid].update(values or {})

    owned_sets = []
    for item in sets:
        key, eq, text = item.partition("=")
        if not eq or not key:
            raise UsageError(f"--set needs KEY=VALUE, got '{item}' (e.g. --set b1.2.1.epochs=2)")
        sid, name = _split_key(key.strip(), sections)
        if name not in sections[sid].params.model_fields:
            raise _unknown_field(key, name, sections[sid].params)
        raw[sid][name] = _parse_value(text.strip())
        owned_sets.append((sid, item))

    params: dict[str, Params] = {}
    for sid, section in sections.items():
        try:
            params[sid] = section.params.model_validate(raw[sid])
        except ValidationError as e:
            raise _describe_error(sid, section.params, e, raw[sid]) from None
    config = Config(root, profile, reason, params, tuple(owned_sets))
    for p in params.values():
        p.check(config)
    return config
