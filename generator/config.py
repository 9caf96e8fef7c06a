"""gen.yaml → validated, frozen parameters per section.

gen.yaml holds every parameter at the write-up's numbers (the `full` profile),
and is the only place that does: the code holds names, bounds and
descriptions. `on_BACKEND:` overlays change Part A's numbers for a backend,
`profiles:` overlays change some of them for `quick` and `smoke`, and `--set
KEY=VALUE` changes one more. Every value is checked before anything runs, and a
bad one is reported in one line that names the key and what is allowed.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .backends import BACKENDS, BackendSpec, resolve_backend
from .chapters import all_sections
from .errors import UsageError
from .hardware import (
    FAST_PATHS,
    choose_fast_path,
    choose_precision,
    forced_precision,
    read_measured,
)
from .section import Settings

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
    # every section's numbers as the write-up gives them (gen.yaml's `sections:`)
    write_up: dict[str, dict]
    # {owner: {name: {"value", "why"}}}: what `auto` picked
    choices: dict[str, dict] = field(default_factory=dict)
    # The backend's settings in the full profile: what a record's departures compare with.
    full_backend: dict = field(default_factory=dict)
    # What `gen bench` measured of the fast paths on this GPU (hardware.MEASURED), read on CUDA
    measured: dict = field(default_factory=dict)

    @property
    def spec(self) -> BackendSpec:
        """Part A's model as the parameters see it (backends/base.py)."""
        return BACKENDS[self.backend]

    @property
    def backend_needs(self) -> tuple[str, ...]:
        """The sections whose results Part A's model loads, with its settings."""
        return self.spec.needs_for(self.params[self.backend])

    def command(self, selector: str, section_ids: list[str], *, backend: bool = False) -> str:
        """The exact command that rebuilds `selector`, with the --set items of `section_ids` (and
        the backend's)."""
        parts = ["gen", "build", selector, "--profile", self.profile]
        owners = set(section_ids) | ({self.backend} if backend else set())
        if backend:
            parts += ["--backend", self.backend]
        for owner, item in self.sets:
            if owner in owners:
                parts += ["--set", item]
        return shlex.join(parts)


def read_file(root: Path) -> dict:
    """gen.yaml as parsed and checked in shape (sweep.py reads its `sweeps:` from it)."""
    return _read_yaml(root / CONFIG_FILE)


def find_root(start: Path | None = None) -> Path:
    """The project folder: the nearest one at or above `start` holding gen.yaml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise UsageError(f"no {CONFIG_FILE} in {here} or above; run gen inside the project folder")


def cache_dir(root: Path) -> Path:
    return Path(os.environ.get("GEN_CACHE_DIR") or root / ".gen")


def check_cache_dir(root: Path) -> Path:
    """The cache folder, checked before a build or render uses it: a writable folder outside docs/
    and site/."""
    cache = cache_dir(root)
    where = f"the cache folder {cache} (GEN_CACHE_DIR, else .gen)"
    resolved = cache.resolve()
    for published in ("docs", "site"):
        if resolved.is_relative_to((root / published).resolve()):
            raise UsageError(
                f"{where} is inside {published}/, which gen rewrites; point GEN_CACHE_DIR elsewhere"
            )
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UsageError(
            f"{where} is a file, or under one; point GEN_CACHE_DIR at a folder"
        ) from None
    except OSError as e:
        raise UsageError(
            f"{where} cannot be made ({e.strerror}); point GEN_CACHE_DIR at a writable folder"
        ) from None
    if not os.access(cache, os.W_OK | os.X_OK):
        raise UsageError(f"{where} is not writable; point GEN_CACHE_DIR at a writable folder")
    if (cache / "lock").exists() and not (cache / "lock").is_file():
        raise UsageError(f"{cache / 'lock'} is not a file; remove it (gen keeps its lock there)")
    return cache


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


class _StrictLoader(yaml.SafeLoader):
    """YAML as a hand-edited file should be read: a key given twice, a key that is not a name, or an
    integer written other than in plain decimal (YAML 1.1 reads 0x2, 0o7, 1_000 and 1:30 as
    integers) is an error."""


def _strict_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict:
    loader.flatten_mapping(node)
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise yaml.MarkedYAMLError(
                problem=f"key {key!r} is not a name; quote it", problem_mark=key_node.start_mark
            )
        if key in seen:
            raise yaml.MarkedYAMLError(
                problem=f"key '{key}' appears twice; keep one", problem_mark=key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


class _BadInteger(yaml.MarkedYAMLError):
    pass


def _strict_int(loader: _StrictLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    if not _DECIMAL.fullmatch(text):
        raise _BadInteger(
            problem=f"'{text}' is not a plain decimal integer; write it in digits 0-9",
            problem_mark=node.start_mark,
        )
    if (
        len(text) > 30
    ):  # far beyond any bound here; int() itself refuses 4,300 digits with a traceback
        raise _BadInteger(
            problem=f"the integer {text[:12]}… has {len(text)} digits, out of range",
            problem_mark=node.start_mark,
        )
    return int(text)


_DECIMAL = re.compile(r"[-+]?[0-9]+")
_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _strict_int)


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_StrictLoader)


_PARSED: dict[tuple[str, bytes], Any] = {}  # parsing is most of a no-op build's time: once per text


def _read_yaml(path: Path) -> dict:
    raw = path.read_bytes()
    if (str(path), raw) not in _PARSED:
        _PARSED.clear()
        _PARSED[str(path), raw] = _parse_yaml(path, raw)
    return copy.deepcopy(_PARSED[str(path), raw])


def _parse_yaml(path: Path, raw: bytes) -> dict:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(
            f"{path.name} is not UTF-8 text (byte {e.start}); save it as UTF-8"
        ) from None
    try:
        data = _yaml(text) or {}
    except yaml.YAMLError as e:
        where = f" (line {e.problem_mark.line + 1})" if getattr(e, "problem_mark", None) else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UsageError(f"{path.name} is not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise UsageError(f"{path.name} nests too deeply to be a parameter file") from None
    _check_structure(data, path.name)
    return data


def _check_structure(data: Any, name: str) -> None:
    """The shape of gen.yaml: seed, sections, on_BACKEND and profiles, each a mapping of owners to
    mappings."""

    def owners(value: Any, where: str) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            raise UsageError(
                f"{name}: {where} must be a mapping of sections to their parameters, not a "
                f"{type(value).__name__}"
            )
        for owner, values in value.items():
            if values is not None and not isinstance(values, dict):
                raise UsageError(
                    f"{name}: {where}.{owner} must be a mapping of parameter names to values, "
                    f"not a {type(values).__name__}"
                )

    if not isinstance(data, dict):
        raise UsageError(f"{name} must be a mapping with 'seed', 'sections' and 'profiles'")
    known = {"seed", "sections", "profiles", "sweeps", *(f"on_{b}" for b in BACKENDS)}
    for key in data:
        if key not in known:
            raise UsageError(f"{name} has '{key}' at the top; valid: {', '.join(sorted(known))}")
    owners(data.get("sections"), "sections")
    for backend in BACKENDS:
        owners(data.get(f"on_{backend}"), f"on_{backend}")
    profiles = data.get("profiles") or {}
    if not isinstance(profiles, dict):
        raise UsageError(
            f"{name}: profiles must be a mapping of profile names to overlays, not a "
            f"{type(profiles).__name__}"
        )
    for profile, overlay in profiles.items():
        if profile not in PROFILES:
            raise UsageError(f"{name}: unknown profile '{profile}'; valid: {', '.join(PROFILES)}")
        owners(
            {k: v for k, v in (overlay or {}).items() if not k.startswith("on_") and k != "sweeps"}
            if isinstance(overlay, dict)
            else overlay,
            f"profiles.{profile}",
        )
        for backend in BACKENDS:
            owners((overlay or {}).get(f"on_{backend}"), f"profiles.{profile}.on_{backend}")


def parse_value(key: str, text: str) -> Any:
    """A value as --set and `gen sweep` write it."""
    # YAML reads "[1, 5]", "true", "0.5"; it leaves "1e-3" a string, which is a number here.
    try:
        value = _yaml(text)
    except _BadInteger as e:
        raise UsageError(f"bad value {key}={text[:40]!r}: {e.problem}") from None
    except (yaml.YAMLError, RecursionError):
        return text
    if isinstance(value, str) and text.isascii():
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


def with_sets(
    config: Config, sets: tuple[str, ...], *, device: str = "auto", cuda: bool = False
) -> Config:
    """`config` with more --set items on top (a sweep's point), each validated as --set is; the file
    was checked when `config` was loaded, so this reads nothing."""
    params, kept, changed = dict(config.params), list(config.sets), []
    for item in sets:
        key, _, text = item.partition("=")
        owner, name = parameter(key.strip())
        model = type(params[owner])
        raw = {
            **params[owner].model_dump(mode="json"),
            name: parse_value(key.strip(), text.strip()),
        }
        try:
            params[owner] = model.model_validate(raw)
        except ValidationError as e:
            raise _describe_error(owner, model, e, raw) from None
        kept.append((owner, item))
        changed.append(owner)
    on = "cuda" if cuda and device != "cpu" else "cpu"
    params, choices = _chosen(params, on, config.measured)
    sections = all_sections()
    point = dataclasses.replace(
        config, params=params, sets=tuple(kept), choices={**config.choices, **choices}
    )
    backend_changed = config.backend in changed
    for sid in sections:
        if sid in changed or backend_changed and sections[sid].uses_backend:
            params[sid].check(point, sid)
    return point


def parameter(key: str) -> tuple[str, str]:
    """(owner, name) of a parameter key such as b1.2.1.epochs or deepfloyd.stage_1; one line if
    there is none."""
    models = {sid: s.params for sid, s in all_sections().items()} | {
        n: spec.settings for n, spec in BACKENDS.items()
    }
    owner, name = _split_key(key, models)
    if name not in models[owner].model_fields:
        raise _unknown_field(key, name, models[owner])
    return owner, name


def _unknown_field(key: str, name: str, model: type[Settings]) -> UsageError:
    names = list(model.model_fields)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return UsageError(f"unknown parameter '{key}'; {hint}valid names here: {', '.join(names)}")


def _describe_error(
    sid: str, model: type[Settings], err: ValidationError, values: dict
) -> UsageError:
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
    """The overlays in the order they apply: the write-up's numbers, the backend's, the
    profile's."""
    for name in data:
        if name.startswith("on_") and name[3:] not in BACKENDS:
            raise UsageError(f"{CONFIG_FILE} has '{name}'; backends are {', '.join(BACKENDS)}")
    profile_overlay = dict((data.get("profiles") or {}).get(profile) or {})
    profile_backend = {f"on_{b}": profile_overlay.pop(f"on_{b}", None) or {} for b in BACKENDS}
    profile_overlay.pop("sweeps", None)  # sweep.py's
    return [
        (data.get("sections") or {}, CONFIG_FILE),
        (data.get(f"on_{backend}") or {}, f"{CONFIG_FILE} on_{backend}"),
        (profile_overlay, f"profile {profile}"),
        (profile_backend[f"on_{backend}"], f"profile {profile} on_{backend}"),
    ]


def _chosen(
    params: dict[str, Settings], device: str, measured: dict | None = None
) -> tuple[dict[str, Settings], dict[str, dict]]:
    """`params` with each `precision: auto` and fast path `auto` replaced by the device's choice
    (or GEN_PRECISION's), and what was chosen and why."""
    chosen, choices = dict(params), {}
    for owner, p in params.items():
        picked = {}
        if getattr(p, "precision", None) == "auto":
            value, why = choose_precision(device)
            picked["precision"] = {"value": value, "why": why}
        for name in FAST_PATHS:
            if getattr(p, name, None) == "auto":
                value, why = choose_fast_path(name, device, measured)
                picked[name] = {"value": value, "why": why}
        if picked:
            chosen[owner] = p.model_copy(update={k: v["value"] for k, v in picked.items()})
            choices[owner] = picked
    return chosen, choices


def _models() -> dict[str, type[Settings]]:
    """Every owner of parameters, sections and backends, with its parameters class."""
    return {sid: s.params for sid, s in all_sections().items()} | {
        name: spec.settings for name, spec in BACKENDS.items()
    }


# A --set item as load keeps it: (owner, name, parsed value, "KEY=VALUE" as given).
SetItem = tuple[str, str, Any, str]


def _parse_sets(sets: tuple[str, ...]) -> list[SetItem]:
    owned = []
    for item in sets:
        key, eq, text = item.partition("=")
        if not eq or not key:
            raise UsageError(f"--set needs KEY=VALUE, got '{item}' (e.g. --set b1.2.1.epochs=2)")
        owner, name = parameter(key.strip())
        owned.append((owner, name, parse_value(key.strip(), text.strip()), item))
    return owned


def _raw_values(
    data: dict, backend: str, profile: str, sets: list[SetItem]
) -> dict[str, dict[str, Any]]:
    """Every owner's values with the overlays of `backend` and `profile`, then the --set items."""
    models, sections = _models(), all_sections()
    seed = {"seed": data["seed"]} if "seed" in data else {}  # every section's, unless it sets one
    raw: dict[str, dict[str, Any]] = {
        owner: (dict(seed) if owner in sections else {}) for owner in models
    }
    for layer, where in _layers(data, profile, backend):
        for owner, values in layer.items():
            if owner not in models:
                raise UsageError(f"{where} names unknown section '{owner}'")
            raw[owner].update(values or {})
    for owner, name, value, _ in sets:
        raw[owner][name] = value
    return raw


def _validated(raw: dict[str, dict[str, Any]], owners) -> dict[str, Settings]:
    models = _models()
    found = {}
    for owner in owners:
        try:
            found[owner] = models[owner].model_validate(raw[owner])
        except ValidationError as e:
            raise _describe_error(owner, models[owner], e, raw[owner]) from None
    return found


def _check_every_profile(data: dict) -> None:
    """The whole file, not only what this build reads: a bad value in another profile is found
    now."""
    for profile in PROFILES:
        for backend in BACKENDS:
            try:
                _validated(_raw_values(data, backend, profile, []), _models())
            except UsageError as error:
                raise UsageError(
                    f"{error} (in {CONFIG_FILE}, profile {profile} on {backend})"
                ) from None


def _write_up(data: dict, device: str, measured: dict) -> dict[str, dict]:
    """Every section's numbers as gen.yaml's `sections:` gives them (`auto` chosen as for a
    build)."""
    seed = {"seed": data["seed"]} if "seed" in data else {}
    sections = all_sections()
    base = {sid: {**seed, **((data.get("sections") or {}).get(sid) or {})} for sid in sections}
    params, _ = _chosen(_validated(base, sections), device, measured)
    return {sid: p.model_dump(mode="json") for sid, p in params.items()}


def load(
    root: Path,
    profile: str = "auto",
    sets: tuple[str, ...] = (),
    *,
    cuda: bool = False,
    backend: str = "auto",
    device: str = "auto",
) -> Config:
    """Read gen.yaml, apply the backend's and the profile's overlays and the --set overrides,
    validate everything.

    `cuda`: whether a CUDA GPU is there; `device`: --device. `precision: auto` becomes what that
    device computes fastest (hardware.py) before anything is keyed, so a key names the precision a
    result was made in.
    """
    try:
        forced_precision()  # a bad GEN_PRECISION is bad input, whether or not anything is `auto`
    except ValueError as e:
        raise UsageError(str(e)) from None
    profile, reason = resolve_profile(profile, cuda)
    data = _read_yaml(root / CONFIG_FILE)
    owned_sets = _parse_sets(sets)
    _check_every_profile(data)
    # Which backend a build runs on can depend on the backends' settings (auto asks whether each
    # can load).
    settings = {
        name: _validated(_raw_values(data, name, profile, owned_sets), [name])[name]
        for name in BACKENDS
    }
    backend, backend_reason = resolve_backend(backend, settings, cuda)
    on = "cuda" if cuda and device != "cpu" else "cpu"
    measured = read_measured(cache_dir(root)) if on == "cuda" else {}
    params, choices = _chosen(
        _validated(_raw_values(data, backend, profile, owned_sets), _models()), on, measured
    )
    full = _validated(_raw_values(data, backend, "full", []), [backend])
    config = Config(
        root,
        profile,
        reason,
        params,
        tuple((owner, item) for owner, _, _, item in owned_sets),
        backend,
        backend_reason,
        _write_up(data, on, measured),
        choices,
        full_backend=_chosen(full, on, measured)[0][backend].model_dump(mode="json"),
        measured=measured,
    )
    for sid in all_sections():
        params[sid].check(config, sid)
    return config
