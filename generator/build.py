"""Plan and run sections: keys first, then reuse or run, then render.

This is the one way through the data: parameters → experiments → store →
renderer. A section's run sees its parameters, the entries of the sections it
needs, the backend where it runs on one, and folders to write into; it never
writes into docs/. What it returns is written out here (outputs.py).

`run_jobs` is the one job runner of `gen build` and `gen sweep`: the lock,
staging cleaned, the jobs planned and checked, run (in this process or on Ray),
and docs/ rendered. A build and a sweep differ only in which jobs they plan and
what they do with them when they are done.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .backends import Backend, open_backend, prompts_of
from .chapters import needed, select
from .config import Config, cache_dir, check_cache_dir, data_dir
from .data import check_mnist
from .errors import SectionFailed, UsageError
from .hardware import device_name, device_problem, resolve_device
from .inputs import file_digest
from .outputs import check_metrics, machine, versions, write_record, write_samples
from .render import refuse_links, render
from .section import Params, Result, Section
from .store import Entry, Store, canonical_json, entry_key


@dataclass
class Context:
    """What a running section may use."""

    section: Section
    config: Config
    out: Path  # published to docs/assets/<id>/
    private: Path  # kept in the store for later sections
    work: Path  # survives an interrupted run: checkpoints for resume
    device: str
    needs: dict[str, Entry]
    data_root: Path
    # every section this build runs (a backend loads what all of them need)
    runs: tuple[str, ...] = ()
    opened: Backend | None = field(default=None, repr=False)

    def params_of(self, section_id: str) -> Params:
        return self.config.params[section_id]

    def backend(self) -> Backend:
        """Part A's model for this build, loaded once per process."""
        if self.opened is None:
            self.opened = open_backend(
                self.config, self.runs, self.needs, self.device, cache_dir(self.config.root)
            )
        return self.opened

    def progress(self, iterable: Iterable | None = None, **kwargs):
        """A tqdm bar labelled with the section (TQDM_DISABLE=1 turns bars off)."""
        from tqdm.auto import tqdm

        kwargs.setdefault("desc", self.section.id)
        kwargs.setdefault("leave", False)
        kwargs.setdefault("dynamic_ncols", True)
        return tqdm(iterable, **kwargs)


def backend_identity(config: Config, section: Section) -> dict | None:
    """What of Part A's model determines a section's result (None: it runs on no backend)."""
    if not section.uses_backend:
        return None
    return {"name": config.backend, **config.params[config.backend].identity()}


def key_parts(config: Config, section: Section, needs: dict[str, str]) -> dict:
    """What a section's key is made of (store.entry_key), given the keys of what it needs."""
    params = config.params[section.id]
    inputs = {spec: file_digest(spec, config.root) for spec in params.input_files()}
    return {
        "version": section.version,
        "params": params.identity(),
        "backend": backend_identity(config, section),
        "needs": needs,
        "inputs": {spec: digest for spec, digest in inputs.items() if digest},
    }


def _key(section: Section, parts: dict) -> str:
    backend = canonical_json(parts["backend"]) if parts["backend"] else "none"
    return entry_key(
        section.id, parts["version"], parts["params"], backend, parts["needs"], parts["inputs"]
    )


def plan(config: Config, sections: list[Section]) -> list[tuple[Section, str, dict]]:
    """Each section with its key and what the key is made of; `sections` must hold everything they
    need, in dependency order."""
    keys: dict[str, str] = {}
    planned = []
    for s in sections:
        parts = key_parts(config, s, {n: keys[n] for n in s.needs_on(config.backend_needs)})
        keys[s.id] = _key(s, parts)
        planned.append((s, keys[s.id], parts))
    return planned


ABSENT = object()


def shown(value, limit: int = 60) -> str:
    """A value as gen.yaml and --set write it, compactly: a long list keeps its ends, long text is
    cut."""
    if value is ABSENT:
        return "(not set)"
    if isinstance(value, list) and len(value) > 6:
        head = ", ".join(shown(v, 20) for v in value[:3])
        text = f"[{head}, …, {shown(value[-1], 20)}] ({len(value)} items)"
    else:
        text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def departures(config: Config, section: Section) -> list[dict]:
    """What differs from the write-up's numbers (the seed aside): the section's parameters, and its
    backend's settings against that backend's full profile."""

    def differ(used: dict, reference: dict, where: str, prefix: str = "") -> list[dict]:
        return [
            {"name": prefix + k, "used": v, "full": reference[k], "reference": where}
            for k, v in used.items()
            if v != reference[k] and k != "seed"
        ]

    found = differ(
        config.params[section.id].model_dump(mode="json"), config.write_up[section.id], "write-up"
    )
    if section.uses_backend:
        name = config.backend
        found += differ(
            config.params[name].model_dump(mode="json"),
            config.full_backend,
            config.spec.reference,
            f"{name}.",
        )
    return found


def run_job(
    job: Job,
    store: Store,
    needs: dict[str, Entry],
    device: str,
    runs: tuple[str, ...],
    data_root: Path | None = None,
) -> None:
    """Run one job into `store` (its entry is committed only if it succeeds); `needs`: the entries
    of the sections it needs, `device`: resolved (cpu or cuda). Ray tasks call it too
    (distributed.py)."""
    import torch

    section, key, parts, config = job.section, job.key, job.parts, job.config
    params = config.params[section.id]
    with store.staging(key, section.id) as folder:
        ctx = Context(
            section,
            config,
            folder / "public",
            folder / "private",
            store.work_dir(key),
            device,
            needs,
            data_root or data_dir(config.root),
            runs,
        )
        torch.manual_seed(params.seed)
        start = time.perf_counter()
        try:
            result: Result = section.function()(params, ctx)
            duration = time.perf_counter() - start
            check_metrics(result.metrics)
            if result.samples is not None:
                write_samples(ctx.out, result.samples)
        except UsageError:
            raise
        except Exception as e:  # the message names the section; the store keeps earlier results
            raise SectionFailed(job.label, e) from e
        # The backend's settings (its schedule, its model ids) made this result too.
        if section.uses_backend:
            backend = {
                **ctx.backend().describe,
                "settings": config.params[config.backend].model_dump(mode="json"),
                "identity": parts["backend"],
            }
        else:
            backend = None  # it runs on no backend; `model` names the model it made or used
        record = {
            "id": section.id,
            "title": section.title,
            "params": params.identity(),
            "version": section.version,
            # with the version: what `gen status` compares, beyond params and needs
            "inputs": parts["inputs"],
            "profile": config.profile,
            "backend": backend,
            "model": result.model,
            "device": device_name(device),
            "machine": machine(device),
            "seed": params.seed,
            "duration_s": round(duration, 3),
            "cache_key": key,
            "needs": {sid: e.key for sid, e in needs.items()},
            "metrics": result.metrics,
            "figures": [vars(f) for f in result.figures],
            "departures": departures(config, section),
            # what `auto` settings became on this device, and why
            "choices": config.choices.get(section.id, {}),
            "command": config.command(
                section.id,
                [section.id, *needed([section.id], config.backend_needs)],
                backend=section.uses_backend,
            ),
            "versions": versions(),
        }
        write_record(folder, ctx.out, record, result.data)


@dataclass
class Job:
    """One section to run: its key, what the key is made of, the parameters it runs with."""

    section: Section
    key: str
    parts: dict
    config: Config
    # how progress lines and errors name it: "b2.4", or a sweep's point "a1.6 [guidance=3]"
    label: str

    @property
    def needs(self) -> dict[str, str]:
        """The sections it needs, and the keys of their entries."""
        return self.parts["needs"]


# A runner runs jobs (in dependency order: a job's needs are in the store or earlier jobs) into the
# store and calls `done(job)` as each one's entry is committed. With `keep_going` a failed job stops
# only the jobs that need it, and the failures are returned; without, the first failure is raised.
# `run_local` is the default; distributed.py has one on Ray.
Runner = Callable[..., dict[str, SectionFailed]]


def run_local(
    jobs: list[Job], store: Store, *, device: str, log, done, keep_going: bool = False
) -> dict[str, SectionFailed]:
    """Run the jobs one after another in this process."""
    failed: dict[str, SectionFailed] = {}
    runs = tuple(dict.fromkeys(job.section.id for job in jobs))
    for job in jobs:
        blocked = blocked_by(job, failed)
        if blocked:
            failed[job.key] = blocked
            continue
        device = resolved_device(device)  # imports torch: only when something runs
        log(f"{job.label}: running ({job.section.title})")
        try:
            needs = {sid: store.entry(key) for sid, key in job.needs.items()}
            run_job(job, store, needs, device, runs)
        except SectionFailed as e:
            if not keep_going:
                raise
            keep_failure(job, e, failed, log)
            continue
        log(f"{job.label}: done in {store.entry(job.key).record['duration_s']:.1f} s")
        done(job)
    return failed


def resolved_device(device: str) -> str:
    """--device as the run uses it (cpu or cuda); one line where torch sees no GPU for cuda."""
    try:
        return resolve_device(device)
    except ValueError as e:
        raise UsageError(str(e)) from None


def blocked_by(job: Job, failed: dict[str, SectionFailed]) -> SectionFailed | None:
    """The failure of a job whose needs failed (`failed`: by key), or None."""
    for sid, key in job.needs.items():
        if key in failed:
            return SectionFailed(job.label, RuntimeError(f"it needs {sid}, which failed"))
    return None


def keep_failure(job: Job, error: SectionFailed, failed: dict[str, SectionFailed], log) -> None:
    """With keep_going: say that the job failed and keep its failure, so that the jobs that need it
    stop."""
    log(f"{job.label}: failed: {error.cause.__class__.__name__}: {error.cause}")
    failed[job.key] = error


def check_device(device: str) -> None:
    """--device, checked before anything runs (the driver is asked, not torch)."""
    problem = device_problem(device)
    if problem:
        raise UsageError(problem)


def run_jobs(
    config: Config,
    plan_jobs: Callable[[Store], list[Job]],
    *,
    device: str,
    runner: Runner,
    log,
    done: Callable[[Store, Job], None] = lambda store, job: None,
    keep_going: bool = False,
    finish: Callable[[Store, dict[str, SectionFailed]], bool] | None = None,
) -> dict[str, SectionFailed]:
    """The job runner of `gen build` and `gen sweep`: under the store's lock, with what killed
    builds left in staging removed, plan the jobs (`plan_jobs`, which sees the store), check them,
    run them with `runner`, call `finish` with the failures (a sweep writes its outcome; it returns
    whether docs/ needs rendering) and render docs/. Without `finish`, docs/ is rendered even when a
    job fails, so that what did finish is published."""
    refuse_links(config.root)  # render would refuse at the end: say so before a long build
    check_device(device)
    store = Store(check_cache_dir(config.root))
    with store.lock():
        store.clean_staging()  # what a killed build left
        jobs = plan_jobs(store)
        check_jobs(store, jobs)
        publish = finish is None
        try:
            failed = runner(
                jobs,
                store,
                device=device,
                log=log,
                done=lambda job: done(store, job),
                keep_going=keep_going,
            )
            if finish is not None:
                publish = finish(store, failed)
        finally:
            if publish:
                rendered = render(config.root, store)
                if rendered or rendered.removed or rendered.skipped:
                    for line in rendered.report(config.root):
                        log(line)
    return failed


def build(
    config: Config,
    selectors: list[str],
    *,
    force: bool = False,
    device: str = "auto",
    log=print,
    runner: Runner = run_local,
) -> list[str]:
    """Build the selected sections (and what they need); returns the ids that ran."""
    sections = select(selectors, backend_needs=config.backend_needs)
    forced = {s.id for s in select(selectors, include_needs=False)} if force else set()
    ran: list[str] = []

    def plan_jobs(store: Store) -> list[Job]:
        if any(s.uses_backend for s in sections):
            log(f"backend: {config.backend} ({config.backend_reason})")
        planned = plan(config, sections)
        jobs = [
            Job(s, key, parts, config, s.id)
            for s, key, parts in planned
            if s.id in forced or store.entry(key) is None
        ]
        to_run = {job.section.id for job in jobs}
        for section, key, _ in planned:
            if section.id not in to_run:
                log(f"{section.id}: up to date, reused")
                store.set_ref(section.id, key)
        return jobs

    def done(store: Store, job: Job) -> None:
        ran.append(job.section.id)
        store.set_ref(job.section.id, job.key)

    run_jobs(config, plan_jobs, device=device, runner=runner, log=log, done=done)
    reused = len(sections) - len(ran)
    log(f"{len(ran)} section(s) ran, {reused} reused" + (" (nothing to do)" if not ran else ""))
    sys.stdout.flush()
    return ran


def check_jobs(store: Store, jobs: list[Job]) -> None:
    """Before anything runs: MNIST is there (or can be fetched), and the backend can serve the
    prompts."""
    if jobs:
        check_mnist(data_dir(jobs[0].config.root), store.root)
    for config in {id(job.config): job.config for job in jobs}.values():
        on_backend = [
            job.section.id for job in jobs if job.config is config and job.section.uses_backend
        ]
        if on_backend:
            config.spec.preflight(config, on_backend, prompts_of(config, on_backend))
