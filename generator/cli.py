"""The `gen` command. Thin commands; torch is imported only by those that run models."""

from __future__ import annotations

import errno
import functools
import signal
import sys

import click

from .backends import BACKENDS
from .errors import SectionFailed, SweepFailed, UsageError
from .hardware import cuda_available, nvidia_driver_present


def _fail(err: Exception) -> None:
    click.echo(f"error: {err}", err=True)
    sys.exit(getattr(err, "exit_code", 1))


def _handles_errors(command):
    """One line and the right exit code for bad input and failed sections."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (UsageError, SectionFailed, SweepFailed) as e:
            _fail(e)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            _fail(
                OSError(
                    f"the disk is full (writing {e.filename or 'a file'}); free some space and run "
                    "it again: the store keeps every section that finished"
                )
            )

    return wrapper


def _options(*options):
    """One decorator of several click options, each defined once and shared by the commands."""

    def apply(command):
        for option in reversed(options):
            command = option(command)
        return command

    return apply


_parameter_options = _options(
    click.option(
        "--profile",
        default="auto",
        show_default=True,
        type=click.Choice(["auto", "full", "quick", "smoke"]),
        help="Parameter set: full = the write-up's numbers, quick = a laptop CPU, smoke = seconds. "
        "auto = full with a CUDA GPU, quick without.",
    ),
    click.option(
        "--backend",
        default="auto",
        show_default=True,
        type=click.Choice(["auto", *BACKENDS]),
        help="Part A's model: DeepFloyd IF, or local (the MNIST model of b2.4). auto = the first "
        "that can be loaded, in this order (DeepFloyd needs a CUDA GPU and its weights).",
    ),
    click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override one parameter, e.g. --set b1.2.1.epochs=2 (repeatable).",
    ),
)
_device_option = click.option(
    "--device",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "cpu", "cuda"]),
    help="Where models run.",
)

# --executor: in this process (no relation to the local backend), or Ray tasks
EXECUTORS = ("local", "ray")
_executor_options = _options(
    click.option(
        "--executor",
        default=EXECUTORS[0],
        show_default=True,
        type=click.Choice(EXECUTORS),
        help="Where sections run: local = in this process, one after another; ray = as Ray tasks, "
        "independent ones side by side (pip install -e '.[ray]').",
    ),
    click.option(
        "--address",
        metavar="ray://HOST:10001",
        help="The Ray cluster for --executor ray (default: RAY_ADDRESS; neither: a Ray started "
        "here).",
    ),
)


def _every_option(help: str):
    return click.option("--all", "every", is_flag=True, help=help)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gen")
def cli():
    """Run the experiments of 'Fun with Diffusion Models' and render them into docs/.

    Then `mkdocs serve` shows the site and `mkdocs gh-deploy` publishes it.
    """


def _states_command(name: str, help: str, *, always_verbose: bool):
    """`gen list` and `gen status`: one listing; status always says what changed."""

    def command(profile, sets, backend, verbose=always_verbose):
        from .config import find_root, load
        from .status import states

        # Without torch we cannot ask torch about CUDA; `auto` falls back to a driver check.
        cuda = nvidia_driver_present()
        config = load(find_root(), profile, tuple(sets), cuda=cuda, backend=backend)
        click.echo(f"profile: {config.profile} ({config.profile_reason})")
        click.echo(f"backend: {config.backend} ({config.backend_reason})")
        for state in states(config).values():
            click.echo(f"{state.section.id:<8} {state.state:<12} {state.section.title}")
            for reason in state.reasons if verbose else ():
                click.echo(f"{'':<9}{reason}")

    command.__doc__ = help
    command = _handles_errors(command)
    if not always_verbose:
        command = click.option(
            "-v",
            "--verbose",
            is_flag=True,
            help="Under each stale section, what changed since its last build.",
        )(command)
    return cli.command(name)(_parameter_options(command))


_states_command(
    "list",
    """Every section: id, title, and whether its result is fresh, stale or never built.

    Fresh means built with the parameters that the same --profile/--set give now.
    """,
    always_verbose=False,
)
_states_command(
    "status",
    """Every section's state and, under each stale one, what changed since its last build.

    A changed parameter or backend setting shows as old → new; so do the
    section's code version and a needed section that is stale or was rebuilt,
    and an input file whose content changed is named (`gen list -v` is the same).
    """,
    always_verbose=True,
)


def _prepare(profile, sets, backend, device, *, dry_run: bool = False):
    """What every command that builds does first: --device checked (the driver is asked, not
    torch), gen.yaml loaded once, the profile said. Returns the config and whether CUDA is there."""
    from .build import check_device
    from .config import find_root, load

    check_device(device)
    # --backend auto asks the driver, not torch, so that a fully cached build stays instant; so
    # does --profile auto on a dry run, and on a machine without a driver.
    if profile == "auto":
        cuda = nvidia_driver_present() if dry_run else cuda_available()
    else:
        cuda = nvidia_driver_present() if device != "cpu" else False
    config = load(find_root(), profile, tuple(sets), cuda=cuda, backend=backend, device=device)
    click.echo(f"profile: {config.profile} ({config.profile_reason})")
    return config, cuda


def _runner(executor: str, address: str | None):
    """The runner --executor names; Ray's address and settings are checked here, before anything
    runs."""
    from .build import run_local

    if executor == EXECUTORS[0]:
        if address:
            raise UsageError("--address is for --executor ray")
        return run_local
    from .distributed import ray_runner

    return ray_runner(address)


@cli.command()
@click.argument("ids", nargs=-1)
@_every_option("Build every section.")
@_parameter_options
@_device_option
@click.option("--force", is_flag=True, help="Recompute the named sections even when cached.")
@click.option(
    "--dry-run", is_flag=True, help="List what would run, in order, and why; run and write nothing."
)
@_executor_options
@_handles_errors
def build(ids, every, profile, sets, backend, device, force, dry_run, executor, address):
    """Build sections (and what they need), then render docs/.

    IDS are section ids; `a` and `b` select a part and an id selects its
    subsections too (b1 → b1.1 … b1.2.2). Cached results are reused. With
    --all, the sweeps gen.yaml names are built too (`gen sweep`).
    """
    if not ids and not every:
        raise UsageError("name the sections to build (e.g. `gen build b1`), or pass --all")
    if ids and every:
        raise UsageError(f"pass section ids ({' '.join(ids)}) or --all, not both")
    from .build import build as run_build
    from .chapters import all_sections, select
    from .status import dry_run as show_plan

    selectors = list(all_sections()) if every else list(ids)
    select(selectors)  # an unknown id fails here, before anything else
    runner = None if dry_run else _runner(executor, address)
    config, cuda = _prepare(profile, sets, backend, device, dry_run=dry_run)
    if dry_run:
        show_plan(config, selectors, force=force, log=click.echo)
        return
    run_build(config, selectors, force=force, device=device, log=click.echo, runner=runner)
    if every:
        from .sweep import build_named

        build_named(config, device=device, cuda=cuda, runner=runner, log=click.echo)


@cli.command()
@click.argument("what", nargs=-1)
@_every_option("Every sweep gen.yaml names.")
@_parameter_options
@_device_option
@click.option(
    "--name", help="Name of a sweep given as KEY=VALUES (default: its keys joined by '-')."
)
@click.option(
    "--show",
    "show",
    metavar="SECTION",
    help="The section whose figure and metrics the page shows (default: the first parameter's).",
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    help="A metric to plot against the parameter (repeatable; "
    "default: those that vary, up to six).",
)
@click.option(
    "--figure",
    metavar="FILE",
    help="The section's figure shown of each point, e.g. autoguided.webp (default: its first "
    "still image).",
)
@_executor_options
@_handles_errors
def sweep(
    what, every, profile, sets, backend, device, name, show, metrics, figure, executor, address
):
    """Build a section at every point of a grid of parameter values, and show them side by side.

    WHAT is SECTION.PARAM=V1,V2,… (or =start:stop:step, stop included), once
    per swept parameter (a grid), or the name of a sweep in gen.yaml
    (`--all`: every one). Each point is an ordinary build with one --set per
    parameter: cached, so a point built before is reused and a stopped sweep
    resumes. `gen render` and the Sweeps page show the outcome.
    """
    from .sweep import chosen as chosen_sweeps
    from .sweep import run

    runner = _runner(executor, address)
    config, cuda = _prepare(profile, sets, backend, device)
    chosen = chosen_sweeps(
        config.root,
        config.profile,
        list(what),
        every,
        name=name,
        show=show,
        metrics=tuple(metrics),
        figure=figure,
    )
    for one in chosen:
        run(config, one, device=device, cuda=cuda, runner=runner, log=click.echo)


@cli.command()
@click.argument("name", type=click.Choice(["ddpm", "classifier"]), default="ddpm")
@click.option(
    "--profile",
    default="full",
    show_default=True,
    type=click.Choice(["full", "quick", "smoke"]),
    help="The recipe to train by (full: the write-up's).",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one of the recipe's parameters, e.g. --set b2.4.epochs=6 (repeatable).",
)
@_device_option
@_handles_errors
def pretrain(name, profile, sets, device):
    """Train a model shipped with the project again.

    NAME is ddpm, the local backend's class-conditioned DDPM (b2.4's recipe),
    or classifier, the classifier that scores samples (b2.0's). Trains it with
    PROFILE's numbers and the --set items (cached in .gen like a build; docs/
    is left as it is), then writes its last weights in fp16, with their
    training record, to generator/weights/. The sections that use it then
    rebuild with the new weights.
    """
    from .pretrained import pretrain
    from .shipped import MODELS

    shipped = MODELS[name]
    sid = shipped.section
    if any(not item.startswith(f"{sid}.") for item in sets):
        raise UsageError(
            f"gen pretrain {name} takes only {sid}'s parameters, e.g. --set {sid}.epochs=6"
        )
    # trained by the build, so that the weights it replaces need not be there
    config, _ = _prepare(profile, (*sets, shipped.instead), "local", device)
    record = pretrain(config, shipped, device=device, log=click.echo)
    click.echo(
        f"wrote {shipped.weights.name} ({record['bytes'] / 1e6:.2f} MB, sha256 "
        f"{record['sha256'][:12]}) and its record, after {record['duration_s']:.0f} s of training"
    )


@cli.command()
@_handles_errors
def render():
    """Rewrite docs/ from the store (the last build of each section), running nothing."""
    from .config import check_cache_dir, find_root
    from .render import render as run_render
    from .store import Store

    root = find_root()
    store = Store(check_cache_dir(root))
    with store.lock():
        rendered = run_render(root, store)
    for line in rendered.report(root):
        click.echo(line)


@cli.command()
@click.option(
    "--all",
    "every",
    is_flag=True,
    help="Every entry in the store, not only the last build of each section.",
)
@click.option(
    "--repair",
    is_flag=True,
    help="Remove damaged entries (and the refs to them); the next build rebuilds them.",
)
@_handles_errors
def verify(every, repair):
    """Hash every file of the store's entries against their manifests; one line per damaged entry.

    Exits 1 when anything was damaged (with --repair too), 0 otherwise.
    """
    from .config import cache_dir, find_root
    from .store import Store

    store = Store(cache_dir(find_root()))
    with store.lock():
        checked, damage = store.verify(every)
        for found in damage:
            click.echo(f"damaged: {found}")
            if repair:
                store.repair(found)
                removed = ([f"entry {found.key[:12]}…"] if found.key else []) + [
                    f"ref {r}" for r in found.refs
                ]
                click.echo(f"  removed {' and '.join(removed)}")
    summary = f"{checked} entr{'y' if checked == 1 else 'ies'} verified, {len(damage)} damaged"
    click.echo(
        summary + ("; the next build rebuilds what was removed" if repair and damage else "")
    )
    if damage:
        sys.exit(1)


@cli.command()
@click.option(
    "--size",
    type=click.Choice(["full", "tiny"]),
    default=None,
    help="IF stage I: full = IF-I-XL's UNet (needs a CUDA GPU), tiny = a small one of the same "
    "design. Default: full on CUDA, tiny on the CPU. Part B runs at the full profile's sizes "
    "unless --size tiny is given (UNets of width 8: a check that every path runs).",
)
@_device_option
@click.option(
    "--repeats",
    default=5,
    show_default=True,
    type=click.IntRange(min=1),
    help="Timed runs of each IF measurement.",
)
@click.option(
    "--quick", is_flag=True, help="Fewer steps and repeats: under 3 minutes on a 2-core CPU."
)
@click.option(
    "--part",
    "parts",
    multiple=True,
    type=click.Choice(["b", "if", "cli"]),
    help="Measure only these (repeatable): b = Part B's models, if = IF stage I, cli = the no-op "
    "build and gen list. Default: all; only a full report is saved for the Speed page.",
)
@_handles_errors
def bench(size, device, repeats, quick, parts):
    """Time Part B's models (training and sampling, ours against a plain eager loop), IF stage I
    (random weights: ours against IFPipeline), and the README's no-op build and `gen list`.

    Prints one JSON object on stdout; progress goes to stderr.

    """
    import json

    from . import bench as if_bench
    from . import bench_part_b
    from .build import resolved_device
    from .config import check_cache_dir, find_root, load
    from .hardware import bf16_units
    from .outputs import machine
    from .status import states

    root = find_root()
    parts = set(parts or ("b", "if", "cli"))
    if "if" in parts:
        if_bench.resolve(
            size, device
        )  # a size the device cannot run fails before anything is timed
    device = resolved_device(device)
    if quick:
        repeats = min(repeats, 2)
    report = {}
    if "b" in parts:
        # The full profile's sizes: Part B's parameters are the same on every backend.
        report.update(
            bench_part_b.measure(
                load(root, "full"), device, quick, log=if_bench.log, tiny=size == "tiny"
            )
        )
    if "if" in parts:
        if_bench.log("IF stage I")
        report["if"] = if_bench.run(size, device, repeats)
    if "cli" in parts:
        if_bench.log("gen list, and gen build --all where nothing is stale")
        report["list_s"] = bench_part_b.time_command(root, "list")
        config = load(root, "auto", cuda=cuda_available())
        stale = [s.section.id for s in states(config).values() if s.state != "fresh"]
        report["noop_build_s"] = (
            None if stale else bench_part_b.time_command(root, "build", "--all")
        )
        if stale:
            report["noop_build_note"] = (
                f"not timed: {len(stale)} section(s) not fresh ({stale[0]}, …); "
                "run `gen build --all` first"
            )
    import torch

    report["machine"] = {
        **machine(device),
        "bf16": bf16_units(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    report["command"] = " ".join(
        [
            "gen bench",
            *(["--quick"] if quick else []),
            *([f"--size {size}"] if size else []),
            *(f"--part {p}" for p in sorted(parts) if len(parts) < 3),
        ]
    )
    click.echo(json.dumps(report, indent=2))
    if "b" in parts and size != "tiny":
        # What `auto` reads of the fast paths, for this GPU: each path's ratio per model.
        from .hardware import MEASURED
        from .store import write_json

        by_path = {
            part: {
                path: {kind: row["paths"][path] for kind, row in report[part].items()}
                for path in next(iter(report[part].values()))["paths"]
            }
            for part in ("train", "sample")
        }
        write_json(
            check_cache_dir(root) / MEASURED,
            {"gpu": torch.cuda.get_device_name() if device == "cuda" else None, **by_path},
        )
    # The site's Speed page shows the last full report (`gen render` publishes it); Part B at
    # --size tiny is a check, not a figure.
    if len(parts) == 3 and size != "tiny":
        from .render import BENCH
        from .store import write_json

        write_json(check_cache_dir(root) / BENCH, report)


def _interrupt_on(signals: tuple[int, ...]) -> list[int]:
    """Turn these signals into KeyboardInterrupt, as Ctrl-C is, so that staging folders and the lock
    are cleaned up on the way out; returns a list that records the signal received."""
    received = [signal.SIGINT]

    def handler(signum, frame):
        received[0] = signum
        raise KeyboardInterrupt

    for sig in signals:
        signal.signal(sig, handler)
    return received


def main() -> None:
    """The console script: click's own usage errors also come out as one line."""
    received = _interrupt_on((signal.SIGTERM, signal.SIGHUP))
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as e:
        click.echo(e.ctx.get_help())
    except click.UsageError as e:
        hint = f" (see `{e.ctx.command_path} --help`)" if e.ctx else ""
        click.echo(f"error: {e.format_message()}{hint}", err=True)
        sys.exit(2)
    except (click.Abort, KeyboardInterrupt):  # click turns Ctrl-C into Abort
        click.echo("interrupted", err=True)
        sys.exit(128 + received[0])


if __name__ == "__main__":
    main()
