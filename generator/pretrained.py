"""`gen pretrain`: train a shipped model again (generator/shipped.py).

The local backend's DDPM is trained by b2.4's recipe, as the write-up ran Part A on a model trained
beforehand; the scoring classifier by b2.0's, so that every build, on any machine, scores with the
same weights. `gen pretrain NAME` trains the section with the profile and `--set`s it is given,
through the same job runner as `gen build`, then keeps its last weights in fp16 under
generator/weights/, with a record beside them: the command, seed, parameters, machine, time and
what the training gave. The builds that use it hold its sha256 in their keys, so new weights
rebuild them and nothing else.
"""

from __future__ import annotations

import datetime
import json
import shlex
from pathlib import Path

from .shipped import Shipped, sha256


def pretrain(config, shipped: Shipped, *, device: str, log, out: Path | None = None) -> dict:
    """Train `shipped.section` under `config` (cached in the store like any build, but not
    published in docs/), then write its last weights in fp16 to `out` (by default the shipped
    file) and the record beside them. Returns the record."""
    from .build import Job, plan, run_jobs, run_local
    from .chapters import select

    sid = shipped.section
    [(section, key, parts)] = plan(config, select([sid], include_needs=False))
    found: dict = {}

    def plan_jobs(store):
        if store.entry(key) is None:
            return [Job(section, key, parts, config, f"{sid} (pretrain)")]
        log(f"{sid}: this recipe is cached, reused")
        return []

    def finish(store, failed) -> bool:
        found["entry"] = store.entry(key)
        return False  # docs/ shows this build's sections, not the pretraining run

    run_jobs(config, plan_jobs, device=device, runner=run_local, log=log, finish=finish)
    return export(found["entry"], config, shipped, out or shipped.weights)


def _trained(entry, shipped: Shipped):
    """(weights in fp16, the file's metadata beyond the config, what the record adds)."""
    from .models import classifier, train
    from .models.weights import read_metadata

    if shipped.section == "b2.0":
        source = entry.private / classifier.SCORER_WEIGHTS
        return classifier.load_classifier(source).half(), {}, {}
    epoch = entry.data["checkpoints"][-1]
    source = entry.private / train.MODEL_FILE.format(epoch=epoch)
    meta = {k: v for k, v in read_metadata(source).items() if k != "unet"}
    adds = {"epoch": epoch, "epoch_losses": entry.data.get("epoch_losses")}
    return train.load_model(source).half(), meta, adds


def export(entry, config, shipped: Shipped, out: Path) -> dict:
    """A training entry's last weights, in fp16, with their record."""
    from .models.weights import save_weights

    model, meta, adds = _trained(entry, shipped)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_weights(model, out, "classifier" if shipped.section == "b2.0" else "unet", **meta)
    r = entry.record
    sets = [
        item for owner, item in config.sets if owner == shipped.section and item != shipped.instead
    ]
    command = ["gen", "pretrain", shipped.name, "--profile", config.profile]
    for item in sets:
        command += ["--set", item]
    machine = r["machine"]
    params = {k: v for k, v in r["params"].items() if k not in ("model", "weights_sha256")}
    record = {
        "model": r["model"],
        "file": out.name,
        "sha256": sha256(out),
        "bytes": out.stat().st_size,
        "dtype": "float16",
        "command": shlex.join(command),
        "section": shipped.section,
        "version": r["version"],
        "params": params,
        "seed": r["seed"],
        "machine": machine,
        "machine_line": f"{machine['gpu'] or machine['cpu']}, {machine['cores']} cores, "
        f"{r['device']}, {params.get('precision', 'fp32')}",
        "choices": r.get("choices", {}),
        "versions": r["versions"],
        "duration_s": r["duration_s"],
        "trained_on": datetime.date.today().isoformat(),
        "metrics": r["metrics"],
        "cache_key": entry.key,
        **adds,
    }
    out.with_suffix(".json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record
