"""The local backend's shipped model: a class-conditioned MNIST DDPM trained beforehand by
`gen pretrain`, as the write-up ran Part A on a model trained beforehand.

`gen pretrain` trains b2.4 with the profile and `--set`s it is given (by default the `full`
profile: the write-up's recipe, longer than a build on a CPU could afford), through the same job
runner as `gen build`, then keeps its last weights in fp16 under generator/backends/weights/, with
a record beside them: the command, seed, parameters, machine, time and losses. Part A's keys hold
the weights' sha256, so a new model rebuilds Part A and nothing else.
"""

from __future__ import annotations

import datetime
import json
import shlex
from pathlib import Path

from .backends.local import WEIGHTS, sha256

SECTION = "b2.4"  # the recipe it is trained by


def pretrain(config, *, device: str, log, out: Path = WEIGHTS) -> dict:
    """Train b2.4 under `config` (cached in the store like any build, but not published in docs/),
    then write its last weights in fp16 to `out` and the record beside them. Returns the record."""
    from .build import Job, plan, run_jobs, run_local
    from .chapters import select

    [(section, key, parts)] = plan(config, select([SECTION], include_needs=False))
    found: dict = {}

    def plan_jobs(store):
        if store.entry(key) is None:
            return [Job(section, key, parts, config, f"{SECTION} (pretrain)")]
        log(f"{SECTION}: this recipe is cached, reused")
        return []

    def finish(store, failed) -> bool:
        found["entry"] = store.entry(key)
        return False  # docs/ shows this build's b2.4, not the pretrained one

    run_jobs(config, plan_jobs, device=device, runner=run_local, log=log, finish=finish)
    return export(found["entry"], config, out)


def export(entry, config, out: Path = WEIGHTS) -> dict:
    """A training entry's last weights, in fp16, with their record."""
    from .models.train import MODEL_FILE, load_model
    from .models.weights import read_metadata, save_weights

    epoch = entry.data["checkpoints"][-1]
    source = entry.private / MODEL_FILE.format(epoch=epoch)
    meta = {k: v for k, v in read_metadata(source).items() if k != "unet"}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_weights(load_model(source).half(), out, "unet", **meta)
    r = entry.record
    sets = [item for owner, item in config.sets if owner == SECTION]
    command = ["gen", "pretrain", "--profile", config.profile]
    for item in sets:
        command += ["--set", item]
    machine = r["machine"]
    shipped = {
        "model": r["model"],
        "file": out.name,
        "sha256": sha256(out),
        "bytes": out.stat().st_size,
        "dtype": "float16",
        "command": shlex.join(command),
        "section": SECTION,
        "version": r["version"],
        "params": r["params"],
        "seed": r["seed"],
        "epoch": epoch,
        "machine": machine,
        "machine_line": f"{machine['gpu'] or machine['cpu']}, {machine['cores']} cores, "
        f"{r['device']}, {r['params']['precision']}",
        "choices": r.get("choices", {}),
        "versions": r["versions"],
        "duration_s": r["duration_s"],
        "trained_on": datetime.date.today().isoformat(),
        "final_loss": r["metrics"]["final_loss"],
        "epoch_losses": entry.data.get("epoch_losses"),
        "cache_key": entry.key,
    }
    out.with_suffix(".json").write_text(json.dumps(shipped, indent=2, sort_keys=True) + "\n")
    return shipped
