"""The output contract (README, "Outputs"): the one writer of each section's record.json and
samples.npz.

record.json: `id`, `title`, `params`, `backend` (with its model id; null for a section that
runs on none, whose `model` names the model it made or used), `device`,
`seed`, `duration_s`, `cache_key`, `metrics` (a flat object of finite
numbers), `files` (relative to docs/), `versions` and `machine`; beside them the
profile, the needs' keys, the section's code `version`, the sha256 of its
input files (`inputs`), the backend's settings that are in the key
(`backend.identity`), the figures with captions, the departures from the
write-up's numbers, `choices` (what an `auto` parameter became on this device,
and why) and the command that rebuilds the section. `gen status`
compares the key's parts with the next build's.

samples.npz: `images` (N, C, H, W) float32 in [0, 1], at 8 bits a pixel (each value k/255, as
the figures show them and the scores read them), and arrays of one entry per image (`labels`,
`steps`, `labels_view1`, …) or single values (`view`). `np.load` reads it.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import math
import os
import platform
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .image_files import eight_bit
from .store import write_json

SAMPLES = "samples.npz"
RECORD = "record.json"


def _array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def write_samples(folder: Path, samples: dict[str, Any]) -> None:
    """samples.npz from "images" and per-image arrays; a shape or range outside the contract is a
    bug, so it raises."""
    arrays = {name: _array(value) for name, value in samples.items()}
    images = eight_bit(arrays["images"].astype(np.float32))
    if images.ndim != 4 or images.size and not (images.min() >= 0.0 and images.max() <= 1.0):
        raise ValueError(f"samples.npz: images must be (N, C, H, W) in [0, 1], got {images.shape}")
    arrays["images"] = images
    for name, array in arrays.items():
        if array.ndim and array.shape[0] != images.shape[0]:
            raise ValueError(
                f"samples.npz: {name} has {array.shape[0]} entries for {images.shape[0]} images"
            )
    _save_npz(folder / SAMPLES, arrays)


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez's layout, compressed with bzip2 rather than deflate (generated digits hold noise,
    which bzip2 packs into a third of the bytes; np.load reads either), and dated 1980-01-01 so
    that the same arrays give the same bytes."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in arrays.items():
            data = io.BytesIO()
            np.lib.format.write_array(data, np.asanyarray(array), allow_pickle=False)
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_BZIP2
            archive.writestr(entry, data.getvalue())


def check_metrics(metrics: dict[str, float]) -> None:
    for name, value in metrics.items():
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"metric {name} is {value!r}, not a finite number")


def versions() -> dict[str, str]:
    found = {}
    for name, dist in (("torch", "torch"), ("diffusers", "diffusers"), ("generator", "gen")):
        try:
            found[name] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def machine(device: str) -> dict[str, Any]:
    """The machine a section ran on, as pages name it: CPU model and cores, and the GPU where it ran
    on one."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    found = {"cpu": cpu, "cores": os.cpu_count() or 1, "gpu": None}
    if device.startswith("cuda"):
        import torch

        found["gpu"] = torch.cuda.get_device_name()
    return found


def write_record(entry: Path, public: Path, record: dict, data: dict) -> None:
    """record.json in the entry and in its public folder (listing every public file), and data.json
    for the template."""
    files = sorted(f"assets/{record['id']}/{p.name}" for p in public.iterdir() if p.is_file())
    record = {**record, "files": sorted([*files, f"assets/{record['id']}/{RECORD}"])}
    write_json(entry / RECORD, record)
    write_json(public / RECORD, record)
    write_json(entry / "data.json", data)


def model_of(record: dict) -> str | None:
    """The model a record names: `model`, or, in a record written before a section on no backend
    had a null backend, its `backend.model_id`."""
    backend = record.get("backend") or {}
    return record.get("model") or backend.get("model_id")
