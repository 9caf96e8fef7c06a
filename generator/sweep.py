"""`gen sweep`: vary parameters over a grid; each point is an ordinary build of one section, keyed
and cached.

A sweep is a section (whose figure and metrics it shows) and axes, each a
parameter key with its values: `a1.6.guidance=0,1,3,5,7`, or a range
`start:stop:step` (stop included where the steps land on it). Points are the
grid of all axes. Each point is the section built with one `--set` per axis,
so a point built before (by a sweep or a build) is reused and a stopped sweep
resumes. Sweeps never move a section's last build (its ref): the section
pages keep showing what `gen build` made.

When every point is built, the sweep's outcome goes to the store's sweeps/
folder: sweep.json (each point's values, key, metrics and key figure) with
the key figures copied and one plot per metric against the swept parameter.
`gen render` publishes it under docs/assets/sweeps/NAME/ and the Sweeps page
shows it. Named sweeps live in gen.yaml (`sweeps:`) and `gen build --all`
builds them.

"""

from __future__ import annotations

import difflib
import itertools
import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .build import Job, Runner, plan, run_jobs, run_local, shown
from .chapters import all_sections, needed, select
from .config import CONFIG_FILE, Config, cache_dir, parameter, parse_value, read_file, with_sets
from .errors import SweepFailed, UsageError
from .store import Store, canonical_json, write_json

VERSION = 2  # of the outcome's layout: a change rewrites every sweep's outcome
MAX_POINTS = 200
MAX_PLOTS = 6  # metrics plotted when a sweep does not name them
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
RANGE = re.compile(r"\s*(-?[0-9.e+-]+)\s*:\s*(-?[0-9.e+-]+)\s*:\s*(-?[0-9.e+-]+)\s*")


@dataclass(frozen=True)
class Axis:
    key: str  # SECTION.NAME or BACKEND.NAME
    values: tuple

    @property
    def name(self) -> str:
        return parameter(self.key)[1]


@dataclass(frozen=True)
class Sweep:
    name: str
    axes: tuple[Axis, ...]
    section: str  # whose key figure and metrics are shown
    metrics: tuple[
        str, ...
    ] = ()  # plotted against the parameter; () = those that vary, up to MAX_PLOTS
    order: int | None = None  # its place in gen.yaml; None for one given on the command line
    figure: str | None = None  # the section's figure shown of each point; None: its first still

    def points(self) -> list[dict[str, Any]]:
        return [
            dict(zip((a.key for a in self.axes), values))
            for values in itertools.product(*(a.values for a in self.axes))
        ]


def label(point: dict[str, Any]) -> str:
    """guidance=3, or i_starts=[5], sigma=2 for a grid."""
    return ", ".join(f"{parameter(key)[1]}={shown(value, 30)}" for key, value in point.items())


# ------------------------------------------------------------------ reading sweeps


def split_values(text: str) -> list[str]:
    """V1,V2,… split at top-level commas (a value may be a list: [1, 2],[3])."""
    items, depth, current = [], 0, ""
    for char in text:
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    return [item.strip() for item in items]


def expand_range(key: str, text: str) -> list | None:
    """start:stop:step → the values, stop included where the steps land on it; None if `text` is no
    range."""
    match = RANGE.fullmatch(text)
    if not match:
        return None
    try:
        start, stop, step = (float(v) for v in match.groups())
    except ValueError:
        raise UsageError(
            f"bad range {key}={text}: start:stop:step must be numbers, e.g. 0:10:2"
        ) from None
    if step == 0 or (stop - start) / step < 0:
        raise UsageError(
            f"bad range {key}={text}: step {match.group(3)} never gets from {match.group(1)} "
            f"to {match.group(2)}"
        )
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count > MAX_POINTS:
        raise UsageError(f"bad range {key}={text}: {count} values, more than {MAX_POINTS}")
    whole = all(re.fullmatch(r"-?[0-9]+", v.strip()) for v in match.groups())
    return [int(start + i * step) if whole else round(start + i * step, 12) for i in range(count)]


def axis(key: str, values: Any) -> Axis:
    """An axis from a key and its values: a list (gen.yaml), or text V1,V2,… or start:stop:step."""
    key = key.strip()
    parameter(key)  # an unknown key fails here
    if isinstance(values, str):
        expanded = expand_range(key, values)
        values = (
            expanded
            if expanded is not None
            else [parse_value(key, v) for v in split_values(values) if v]
        )
    if not isinstance(values, list) or not values:
        raise UsageError(f"sweep {key}: give one value or more, e.g. {key}=1,2,3 or {key}=0:10:2")
    if len({canonical_json(v) for v in values}) != len(values):
        raise UsageError(f"sweep {key}: a value is given twice ({shown(values)})")
    return Axis(key, tuple(values))


def from_command_line(
    expressions: list[str],
    *,
    name: str | None,
    show: str | None,
    metrics: tuple[str, ...],
    figure: str | None = None,
) -> Sweep:
    axes = []
    for text in expressions:
        key, eq, values = text.partition("=")
        if not eq or not key.strip():
            raise UsageError(
                "a sweep axis is SECTION.PARAM=V1,V2,… or SECTION.PARAM=start:stop:step, "
                f"got '{text}'"
            )
        axes.append(axis(key, values))
    return _sweep(name or "-".join(a.key for a in axes), tuple(axes), show, metrics, None, figure)


def definitions(root: Path, profile: str) -> dict[str, Any]:
    """gen.yaml's `sweeps:`, each with what the profile's `sweeps:` sets for it."""
    data = read_file(root)
    found = data.get("sweeps") or {}
    overlay = ((data.get("profiles") or {}).get(profile) or {}).get("sweeps") or {}
    for where, value, left_out in (
        ("sweeps", found, False),
        (f"profiles.{profile}.sweeps", overlay, True),
    ):
        if not isinstance(value, dict) or not all(
            isinstance(v, dict) or left_out and v is None for v in value.values()
        ):
            raise UsageError(
                f"{CONFIG_FILE}: {where} must be a mapping of sweep names to mappings "
                "(vary, metrics, show, figure)" + (" or null (left out)" if left_out else "")
            )
    unknown = sorted(set(overlay) - set(found))
    if unknown:
        raise UsageError(
            f"{CONFIG_FILE}: profiles.{profile}.sweeps names '{unknown[0]}', which `sweeps:` "
            "does not define"
        )
    return {
        name: {**spec, **overlay.get(name, {})}
        for name, spec in found.items()
        if not (name in overlay and overlay[name] is None)
    }


def chosen(
    root: Path,
    profile: str,
    what: list[str],
    every: bool,
    *,
    name: str | None,
    show: str | None,
    metrics: tuple[str, ...],
    figure: str | None = None,
) -> list[Sweep]:
    """The sweeps `gen sweep WHAT` names: one given as SECTION.PARAM=VALUES axes, or sweeps of
    gen.yaml."""
    if not what and not every:
        raise UsageError(
            "give SECTION.PARAM=V1,V2,… (e.g. `gen sweep a1.6.guidance=0,1,3,5,7`), a sweep's name "
            "from gen.yaml, or --all"
        )
    if what and every:
        raise UsageError(f"pass sweeps ({' '.join(what)}) or --all, not both")
    expressions = [w for w in what if "=" in w]
    if expressions:
        if len(expressions) != len(what):
            raise UsageError("give either SECTION.PARAM=VALUES axes or sweep names, not both")
        return [
            from_command_line(expressions, name=name, show=show, metrics=metrics, figure=figure)
        ]
    if name or show or metrics or figure:
        raise UsageError(
            "--name, --show, --metric and --figure are for a sweep given as SECTION.PARAM=VALUES"
        )
    defined = named(root, profile)
    unknown = [w for w in what if w not in defined]
    if unknown:
        raise UsageError(
            f"no sweep '{unknown[0]}' in gen.yaml; valid: {', '.join(defined) or 'none'} "
            "(or give SECTION.PARAM=V1,V2,…)"
        )
    return list(defined.values()) if every else [defined[w] for w in what]


def named(root: Path, profile: str) -> dict[str, Sweep]:
    """The sweeps gen.yaml names, in its order, as the profile has them."""
    found = {}
    for order, (name, spec) in enumerate(definitions(root, profile).items()):
        where = f"gen.yaml sweeps.{name}"
        if not isinstance(spec, dict) or not isinstance(spec.get("vary"), dict) or not spec["vary"]:
            raise UsageError(
                f"{where} needs `vary:`, a mapping of parameter keys to values, e.g. "
                "{vary: {a1.6.guidance: [0, 1, 3]}}"
            )
        unknown = set(spec) - {"vary", "metrics", "show", "figure"}
        if unknown:
            raise UsageError(
                f"{where} has '{sorted(unknown)[0]}'; valid: vary, metrics, show, figure"
            )
        figure = spec.get("figure")
        if figure is not None and not isinstance(figure, str):
            raise UsageError(f"{where}.figure must be a file name, e.g. samples.webp")
        metrics = spec.get("metrics") or []
        if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
            raise UsageError(f"{where}.metrics must be a list of metric names")
        axes = tuple(axis(str(key), values) for key, values in spec["vary"].items())
        found[str(name)] = _sweep(str(name), axes, spec.get("show"), tuple(metrics), order, figure)
    return found


def _sweep(
    name: str,
    axes: tuple[Axis, ...],
    show: str | None,
    metrics: tuple[str, ...],
    order: int | None,
    figure: str | None = None,
) -> Sweep:
    if not NAME.fullmatch(name):
        raise UsageError(
            f"bad sweep name '{name}': lower-case letters, digits, '.', '_' and '-', at most 64"
        )
    owners = [parameter(a.key)[0] for a in axes]
    if len(set(a.key for a in axes)) != len(axes):
        raise UsageError(f"sweep {name}: a parameter is swept twice")
    section = show or owners[0]
    if section not in all_sections():
        raise UsageError(
            f"sweep {name}: {section} is not a section; name the section to show "
            "(--show, or `show:`)"
        )
    count = math.prod(len(a.values) for a in axes)
    if count > MAX_POINTS:
        raise UsageError(f"sweep {name}: {count} points, more than {MAX_POINTS}")
    return Sweep(name, axes, section, metrics, order, figure)


# ------------------------------------------------------------------ running sweeps


@dataclass
class Point:
    values: dict[str, Any]
    label: str
    config: Config
    planned: list  # build.plan's (section, key, parts), in dependency order

    def key_of(self, section_id: str) -> str:
        return next(key for s, key, _ in self.planned if s.id == section_id)


def points(config: Config, sweep: Sweep, device: str = "auto", cuda: bool = False) -> list[Point]:
    """Each point's parameters (the build's, with one --set per axis) and plan."""
    found = []
    # The shown section and what it needs, not its subsections: a sweep of f2.6 builds no f2.6.1.
    needs = needed([sweep.section], config.backend_needs)
    selected = [
        s
        for s in select([sweep.section], backend_needs=config.backend_needs)
        if s.id == sweep.section or s.id in needs
    ]
    for values in sweep.points():
        sets = tuple(f"{k}={json.dumps(v)}" for k, v in values.items())
        try:
            point = with_sets(config, sets, device=device, cuda=cuda)
        except UsageError as e:
            raise UsageError(f"sweep {sweep.name}, point {label(values)}: {e}") from None
        found.append(Point(values, label(values), point, plan(point, selected)))
    return found


def jobs_of(store: Store, sweep: Sweep, found: list[Point]) -> list[Job]:
    """The runs the points need that the store lacks, each once, in dependency order."""
    jobs, seen = [], set()
    for point in found:
        for section, key, parts in point.planned:
            if key in seen or store.entry(key) is not None:
                continue
            seen.add(key)
            name = f"{section.id} [{point.label}]" if section.id == sweep.section else section.id
            jobs.append(Job(section, key, parts, point.config, name))
    return jobs


def run(
    config: Config,
    sweep: Sweep,
    *,
    device: str = "auto",
    cuda: bool = False,
    runner: Runner = run_local,
    log=print,
) -> bool:
    """Build every point that is not built, then write the outcome and render; True if anything
    was written."""
    found = points(config, sweep, device, cuda)
    if sweep.metrics and sweep.order is None:  # gen.yaml's may name what a backend lacks (README)
        known = last_metrics(Store(cache_dir(config.root)), config.root, sweep, found[0])
        if known is None:  # nothing to check against yet: the first point first
            _run_points(config, sweep, found[:1], device=device, runner=runner, log=log)
            known = last_metrics(Store(cache_dir(config.root)), config.root, sweep, found[0])
        check_metrics(sweep, known or [])
    return _run_points(config, sweep, found, device=device, runner=runner, log=log, publish=True)


def _run_points(
    config: Config,
    sweep: Sweep,
    found: list[Point],
    *,
    device: str,
    runner: Runner,
    log,
    publish: bool = False,
) -> bool:
    """Build the points the store lacks (the others keep running where one fails); with `publish`,
    write the outcome and render it. True if the outcome was written."""
    wrote = False

    def plan_jobs(store: Store) -> list[Job]:
        jobs = jobs_of(store, sweep, found)
        built = sum(store.entry(p.key_of(sweep.section)) is not None for p in found)
        log(
            f"sweep {sweep.name}: {len(found)} point(s) of {sweep.section}, {built} built before, "
            f"{len(jobs)} section run(s) to do"
        )
        return jobs

    def finish(store: Store, failed: dict) -> bool:
        nonlocal wrote
        if failed:
            raise SweepFailed(
                f"sweep {sweep.name}: {len(failed)} run(s) failed "
                f"({'; '.join(str(e) for e in failed.values())}); the {len(found) - len(failed)} "
                "other point(s) are kept: run the sweep again to retry"
            )
        if publish:
            wrote = write_outcome(store, config, sweep, found)
            log(f"sweep {sweep.name}: " + ("outcome written" if wrote else "up to date"))
        return wrote

    run_jobs(
        config,
        plan_jobs,
        device=device,
        runner=runner,
        log=log,
        keep_going=True,
        finish=finish,
    )
    return wrote


def last_metrics(store: Store, root: Path, sweep: Sweep, first: Point) -> list[str] | None:
    """The metric names the shown section reports: in the first point's entry, else in the
    section's last build (the store's ref, else docs/assets/ID/record.json); None where none is."""
    entry = store.entry(first.key_of(sweep.section)) or store.last_entry(sweep.section)
    try:
        record = (
            entry.record
            if entry
            else json.loads((root / "docs" / "assets" / sweep.section / "record.json").read_text())
        )
        return [str(name) for name in record["metrics"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_metrics(sweep: Sweep, known: list[str]) -> None:
    """Each metric the sweep names is one the section reports; one line with a close one if
    not."""
    for name in sweep.metrics:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise UsageError(
                f"--metric {name}: {sweep.section} reports no such metric; {hint}"
                f"valid: {', '.join(known) or 'none'}"
            )


def write_outcome(store: Store, config: Config, sweep: Sweep, found: list[Point]) -> bool:
    """The store's sweeps/NAME/: sweep.json, each point's key figure and a plot per metric; False if
    unchanged."""
    entries = [store.entry(p.key_of(sweep.section)) for p in found]
    signature = canonical_json(
        {"version": VERSION, "sweep": _describe(sweep), "keys": [e.key for e in entries]}
    )
    try:
        old = json.loads((store.sweep_folder(sweep.name) / "sweep.json").read_text())
        if old["signature"] == signature:
            return False
    except (OSError, ValueError, KeyError, TypeError):
        pass
    figures = [_key_figure(entry.record, sweep) for entry in entries]  # checked before writing
    with store.writing_sweep(sweep.name) as folder:
        rows = []
        for i, (point, entry, figure) in enumerate(zip(found, entries, figures)):
            record = entry.record
            copied = f"point{i}_{figure['file']}" if figure else None
            if figure:
                shutil.copy(entry.public / figure["file"], folder / copied)
            rows.append(
                {
                    "label": point.label,
                    "values": point.values,
                    "key": entry.key,
                    "metrics": record["metrics"],
                    "duration_s": record["duration_s"],
                    "figure": copied,
                    "caption": figure["caption"] if figure else None,
                    "enlarge": bool(figure and figure.get("enlarge")),
                    "command": record["command"],
                }
            )
        plotted, missing = chosen_metrics(sweep, rows)
        section = all_sections()[sweep.section]
        outcome = {
            "name": sweep.name,
            "order": sweep.order,
            "section": sweep.section,
            "title": section.title,
            **_describe(sweep),
            "profile": config.profile,
            "backend": config.backend if section.uses_backend else None,
            "command": command(config, sweep),
            "points": rows,
            "plots": _plots(sweep, plotted, rows, folder),
            "metrics_missing": missing,
            "signature": signature,
        }
        write_json(folder / "sweep.json", outcome)
    return True


def _describe(sweep: Sweep) -> dict:
    return {
        "axes": [{"key": a.key, "name": a.name, "values": list(a.values)} for a in sweep.axes],
        "metrics_asked": list(sweep.metrics),
        "figure_asked": sweep.figure,
    }


def command(config: Config, sweep: Sweep) -> str:
    """The command that makes the sweep again."""
    import shlex

    head = ["gen", "sweep"]
    if sweep.order is not None:
        head.append(sweep.name)
    else:
        head += [
            f"{a.key}={','.join(json.dumps(v, ensure_ascii=False) for v in a.values)}"
            for a in sweep.axes
        ]
        default = parameter(sweep.axes[0].key)[0]
        head += ["--name", sweep.name] if sweep.name != "-".join(a.key for a in sweep.axes) else []
        head += ["--show", sweep.section] if sweep.section != default else []
        for metric in sweep.metrics:
            head += ["--metric", metric]
        head += ["--figure", sweep.figure] if sweep.figure else []
    head += ["--profile", config.profile]
    if all_sections()[sweep.section].uses_backend:
        head += ["--backend", config.backend]
    for _, item in config.sets:
        head += ["--set", item]
    return shlex.join(head)


def _key_figure(record: dict, sweep: Sweep) -> dict | None:
    """The figure a sweep shows of each point: the one it names, else the section's first still
    image, else its first figure."""
    figures = record.get("figures") or []
    if sweep.figure:
        named = [f for f in figures if f["file"] == sweep.figure]
        if not named:
            files = ", ".join(f["file"] for f in figures) or "none"
            raise UsageError(
                f"sweep {sweep.name}: {sweep.section} made no figure {sweep.figure} at "
                f"{record['command']!r}; its figures: {files}"
            )
        return named[0]
    still = [f for f in figures if not f["file"].endswith(".gif")]
    return (still or figures or [None])[0]


def _number(value: Any) -> float | None:
    """A value as a number on a plot's axis: a number, or a list holding one."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def chosen_metrics(sweep: Sweep, rows: list[dict]) -> tuple[list[str], list[str]]:
    """(plotted, missing): the metrics the sweep names that every point has (a backend without a
    scorer has none), else those that vary, up to MAX_PLOTS."""
    common = [m for m in rows[0]["metrics"] if all(m in r["metrics"] for r in rows)]
    if sweep.metrics:
        return [m for m in sweep.metrics if m in common], [
            m for m in sweep.metrics if m not in common
        ]
    varying = [m for m in common if len({r["metrics"][m] for r in rows}) > 1]
    return varying[:MAX_PLOTS], []


def _plots(sweep: Sweep, names: list[str], rows: list[dict], folder: Path) -> list[dict]:
    """Each metric the page tabulates, with its plot against the swept parameter; a sweep of one
    point (a search over every pair, say) gets no plot ("file": None): one dot shows nothing."""
    from .figures import metric_plot

    if len(rows) < 2:
        return [{"metric": metric, "file": None} for metric in names]
    first = sweep.axes[0]
    numeric = len(sweep.axes) == 1 and all(_number(v) is not None for v in first.values)
    x = [_number(r["values"][first.key]) for r in rows] if numeric else list(range(len(rows)))
    ticks = None if numeric else [r["label"] for r in rows]
    plots = []
    for i, metric in enumerate(names):
        file = f"plot{i}_{re.sub(r'[^A-Za-z0-9._-]', '_', metric)}.webp"
        metric_plot(
            x,
            [r["metrics"][metric] for r in rows],
            folder / file,
            xlabel=first.name if numeric else "point",
            ylabel=metric,
            ticks=ticks,
        )
        plots.append({"metric": metric, "file": file})
    return plots


def build_named(
    config: Config,
    *,
    device: str = "auto",
    cuda: bool = False,
    runner: Runner = run_local,
    log=print,
) -> None:
    """Every sweep gen.yaml names (`gen build --all`)."""
    for sweep in named(config.root, config.profile).values():
        run(config, sweep, device=device, cuda=cuda, runner=runner, log=log)
