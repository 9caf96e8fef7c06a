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
asks for one CPU, and one GPU where the cluster has GPUs, and computes with as
many torch threads as the driver does: one key, one result, on Ray or not.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import tempfile
from pathlib import Path

from .build import Job, blocked_by, keep_failure, resolved_device, run_job
from .config import data_dir
from .errors import SectionFailed, UsageError
from .hardware import blas_threads, torch_threads
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
    threads: int,
    *needs: Packed,
) -> Packed:
    """A Ray task: run one job in a private store on this node and return its entry packed.

    `threads`: the driver's torch threads. Ray starts a worker with one, and a different count sums
    in another order: the images would differ in their last bits from the same key's in-process
    result (numpy's BLAS threads come with the task's environment).
    """
    import torch

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="gen-task-") as tmp:
        root = Path(tmp) / "project"
        # Relative paths land in the private project; absolute ones are read as they are.
        for spec, data in inputs.items():
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
        run_job(job, store, entries, resolved_device(device), runs, data_root=data)
        return pack(store.entry(job.key))


def _cpus() -> int | None:
    """GEN_RAY_CPUS: the cores an embedded Ray may use (None: all of them)."""
    text = os.environ.get("GEN_RAY_CPUS", "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise UsageError(
            f"GEN_RAY_CPUS={text!r} is no count of cores; set it to a whole number of 1 or more, "
            "or unset it to use all of them"
        )
    return int(text)


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """One line where nothing answers at a Ray address, before Ray tries (and retries) for minutes.
    An address without a port (Ray's own `auto`, a bare host) is left to Ray."""
    host, colon, port = address.removeprefix("ray://").rstrip("/").rpartition(":")
    if not colon or not host:
        return
    if not port.isdigit():
        raise UsageError(
            f"the Ray address {address} is not HOST:PORT or ray://HOST:PORT; "
            "check --address or RAY_ADDRESS"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as e:
        reason = "no answer" if isinstance(e, TimeoutError) else e.strerror or str(e)
        raise UsageError(
            f"cannot reach the Ray cluster at {address} ({reason}); check --address or "
            "RAY_ADDRESS, and that the cluster is up"
        ) from None


def _connect(address: str | None, cpus: int | None, log):
    try:
        import ray
    except ImportError:
        raise UsageError(
            "--executor ray needs Ray; install it with pip install -e '.[ray]'"
        ) from None
    if not ray.is_initialized():
        quiet = {"log_to_driver": False, "logging_level": logging.ERROR}  # Ray's logs stay off
        if address:
            log(f"ray: connecting to {address}")
            try:
                ray.init(address=address, **quiet)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise UsageError(
                    f"cannot reach the Ray cluster at {address} ({e}); "
                    "check --address or RAY_ADDRESS"
                ) from None
        else:  # embedded: all cores unless GEN_RAY_CPUS says otherwise
            ray.init(num_cpus=cpus, include_dashboard=False, **quiet)
    resources = ray.cluster_resources()
    log(f"ray: {int(resources.get('CPU', 0))} CPU(s), {int(resources.get('GPU', 0))} GPU(s)")
    return ray


def ray_runner(address: str | None = None):
    """A runner (build.Runner) that runs each job as a Ray task on the cluster at `address` (or
    RAY_ADDRESS), or on a Ray started here when neither is given. The address and GEN_RAY_CPUS are
    checked here, before anything runs."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    cpus = _cpus()
    if address:
        _check_reachable(address)

    def run(
        jobs: list[Job], store: Store, *, device: str, log, done, keep_going: bool = False
    ) -> dict[str, SectionFailed]:
        if not jobs:
            return {}
        ray = _connect(address, cpus, log)
        gpus = 1 if ray.cluster_resources().get("GPU", 0) else 0
        # What this process would compute with: torch's threads are set in the task, numpy's BLAS
        # reads its own when the worker starts (Ray starts workers with OMP_NUM_THREADS=1).
        threads = torch_threads()
        blas = str(blas_threads())
        same_blas = {"env_vars": {"OPENBLAS_NUM_THREADS": blas, "MKL_NUM_THREADS": blas}}
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
            options = {"num_cpus": 1, "num_gpus": gpus, "name": job.label}
            ref = task.options(**options, runtime_env=same_blas).remote(
                job, inputs, str(data_dir(job.config.root)), device, runs, threads, *needs
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
    """What a task's failure comes down to: a job it needs that failed, or its own section's
    error."""
    blocked = blocked_by(job, failed)
    if blocked:
        return blocked
    cause = getattr(error, "cause", None) or error
    if isinstance(cause, SectionFailed):
        return SectionFailed(job.label, cause.cause)
    return SectionFailed(job.label, cause)
