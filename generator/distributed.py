"""`--executor ray`: sections run as Ray tasks; the driver alone writes the store and docs/.

A job travels as its parameters (the loaded Config), its key and the entries
of the sections it needs, packed as {path: bytes}; the task runs the section
in a private temporary store on whichever node Ray picks and returns the new
entry packed the same way, which the driver commits like any other. Nothing
needs a shared file system: input images travel with the job, and MNIST is
read where GEN_DATA_DIR (or the driver's data folder) exists on the node, and
downloaded into the node's own cache otherwise.

A job waits for the jobs it needs through Ray's object references, so Ray
runs independent ones side by side and the rest in dependency order. Each
asks for one CPU, and one GPU where the cluster has GPUs.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

from .build import Job, _run_one, blocked_by, keep_failure, resolve_device
from .config import data_dir
from .errors import SectionFailed, UsageError
from .inputs import input_path
from .store import Entry, Store, walk

Packed = dict[str, bytes]


def pack(entry: Entry) -> Packed:
    """An entry's files (its manifest aside: the store that takes it writes its own)."""
    files, _ = walk(entry.path)
    return {rel: (entry.path / rel).read_bytes() for rel in files if rel != "manifest.json"}


def unpack(store: Store, key: str, section_id: str, packed: Packed) -> Entry:
    """Commit a packed entry into `store` under `key`."""
    with store.staging(key, section_id) as folder:
        for rel, data in packed.items():
            path = folder / rel
            if not path.resolve().is_relative_to(folder.resolve()):
                raise ValueError(f"packed entry {key[:12]}… names a file outside it: {rel}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    entry = store.entry(key)
    if entry is None:
        raise ValueError(f"packed entry {key[:12]}… ({section_id}) does not read back")
    return entry


def _on_node(
    job: Job,
    inputs: dict[str, bytes],
    data_root: str,
    device: str,
    runs: tuple[str, ...],
    *needs: Packed,
) -> Packed:
    """A Ray task: run one job in a private store on this node and return its entry packed."""
    with tempfile.TemporaryDirectory(prefix="gen-task-") as tmp:
        root = Path(tmp) / "project"
        for (
            spec,
            data,
        ) in (
            inputs.items()
        ):  # relative paths land in the private project; absolute ones are read as they are
            if not Path(spec).expanduser().is_absolute():
                (root / spec).parent.mkdir(parents=True, exist_ok=True)
                (root / spec).write_bytes(data)
        store = Store(Path(tmp) / "cache")
        entries = {
            sid: unpack(store, key, sid, packed)
            for (sid, key), packed in zip(job.needs.items(), needs)
        }
        job = dataclasses.replace(job, config=dataclasses.replace(job.config, root=root))
        data = (
            Path(data_root) if Path(data_root).is_dir() else Path.home() / ".cache" / "gen" / "data"
        )
        _run_one(job, store, entries, resolve_device(device), runs, data_root=data)
        return pack(store.entry(job.key))


def _connect(address: str | None, log):
    try:
        import ray
    except ImportError:
        raise UsageError(
            "--executor ray needs Ray; install it with pip install -e '.[ray]'"
        ) from None
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not ray.is_initialized():
        if address:
            log(f"ray: connecting to {address}")
            try:
                ray.init(address=address, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise UsageError(
                    f"cannot reach the Ray cluster at {address} ({e}); check --address or RAY_ADDRESS"
                ) from None
        else:
            cpus = (
                int(os.environ.get("GEN_RAY_CPUS", 0)) or None
            )  # embedded: all cores unless told otherwise
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    resources = ray.cluster_resources()
    log(f"ray: {int(resources.get('CPU', 0))} CPU(s), {int(resources.get('GPU', 0))} GPU(s)")
    return ray


def ray_runner(address: str | None = None):
    """A runner (build.Runner) that runs each job as a Ray task on the cluster at `address` (or RAY_ADDRESS), or
    on a Ray started here when neither is given."""

    def run(
        jobs: list[Job], store: Store, *, device: str, log, done, keep_going: bool = False
    ) -> dict[str, SectionFailed]:
        if not jobs:
            return {}
        ray = _connect(address, log)
        gpus = 1 if ray.cluster_resources().get("GPU", 0) else 0
        task = ray.remote(_on_node)
        runs = tuple(dict.fromkeys(job.section.id for job in jobs))
        submitted: dict[str, object] = {}  # key → the ObjectRef of the entry it makes
        by_ref: dict[object, Job] = {}
        for job in jobs:
            needs = [
                submitted[key] if key in submitted else ray.put(pack(store.entry(key)))
                for key in job.needs.values()
            ]
            inputs = {
                spec: input_path(spec, job.config.root).read_bytes() for spec in job.parts["inputs"]
            }
            ref = task.options(num_cpus=1, num_gpus=gpus, name=job.label).remote(
                job, inputs, str(data_dir(job.config.root)), device, runs, *needs
            )
            submitted[job.key] = ref
            by_ref[ref] = job
            log(f"{job.label}: queued ({job.section.title})")
        failed: dict[str, SectionFailed] = {}
        pending = list(by_ref)
        while pending:
            finished, pending = ray.wait(pending, num_returns=1)
            job = by_ref[finished[0]]
            try:
                entry = unpack(store, job.key, job.section.id, ray.get(finished[0]))
            except Exception as e:  # the task's own error, or that of a job it needs
                error = _cause(e, job, failed)
                if not keep_going:
                    for ref in pending:
                        ray.cancel(ref)
                    raise error from None
                keep_failure(job, error, failed, log)
                continue
            log(f"{job.label}: done in {entry.record['duration_s']:.1f} s")
            done(job)
        return failed

    return run


def _cause(error: Exception, job: Job, failed: dict[str, SectionFailed]) -> SectionFailed:
    """What a task's failure comes down to: a job it needs that failed, or its own section's error."""
    blocked = blocked_by(job, failed)
    if blocked:
        return blocked
    cause = getattr(error, "cause", None) or error
    if isinstance(cause, SectionFailed):
        return SectionFailed(job.label, cause.cause)
    return SectionFailed(job.label, cause)
