"""MNIST as tensors in memory (60,000 digits are 47 MB as bytes: no DataLoader needed), and its
files checked."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from .errors import UsageError
from .store import file_hash

# The four unpacked files torchvision reads, with their sizes and md5 sums (those of the canonical
# MNIST). Only
# these are accepted, so MNIST's content is fixed and needs no place in a section's cache key.
MNIST_FILES = {
    "train-images-idx3-ubyte": (47040016, "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": (60008, "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": (7840016, "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": (10008, "27ae3e4e09519cfbb04c329615203637"),
}


def check_mnist(root: Path, cache: Path) -> None:
    """Refuse MNIST files that are present but not MNIST's (one line, before anything runs);
    missing ones are downloaded when first needed. A file's verdict is kept in `cache` by size
    and modification time."""
    raw = Path(root) / "MNIST" / "raw"
    seen_file = Path(cache) / "mnist-checked.json"
    try:
        seen = json.loads(seen_file.read_text())
    except (OSError, ValueError):
        seen = {}
    checked = {}
    for name, (size, md5) in MNIST_FILES.items():
        path = raw / name
        if not path.exists():
            continue
        stat = path.stat()
        stamp = [str(path.resolve()), stat.st_size, stat.st_mtime_ns]
        if seen.get(name) != stamp:
            problem = (
                f"{stat.st_size:,} bytes, not {size:,}"
                if stat.st_size != size
                else "its md5 sum is not MNIST's"
                if file_hash(path, "md5") != md5
                else None
            )
            if problem:
                raise UsageError(
                    f"MNIST file {path} is corrupt ({problem}); delete {raw} to download MNIST "
                    "again, "
                    "or set GEN_DATA_DIR to a folder holding a good copy"
                )
        checked[name] = stamp
    if checked != seen:
        seen_file.parent.mkdir(parents=True, exist_ok=True)
        seen_file.write_text(json.dumps(checked))


@functools.lru_cache(maxsize=4)
def mnist(root: Path, train: bool):
    """Images (N, 1, 28, 28) float32 in [0, 1] and labels (N,) int64.

    Read from `root/MNIST/raw`, torchvision's layout; where the files are missing, torchvision
    downloads them there (on a user's machine; tests point GEN_DATA_DIR at a copy). Reading them
    here rather than through torchvision spares a build the seconds torchvision takes to import.
    """
    import torch

    raw = Path(root) / "MNIST" / "raw"
    prefix = "train" if train else "t10k"
    names = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    if not all((raw / name).is_file() for name in names):
        _download(root, train)
    images = torch.from_numpy(_idx(raw / names[0])).unsqueeze(1).float().div_(255.0)
    return images, torch.from_numpy(_idx(raw / names[1])).long()


def _idx(path: Path):
    """An IDX file (MNIST's format): a big-endian header of dimension sizes, then unsigned bytes."""
    import numpy as np

    data = path.read_bytes()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(dims))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape).copy()


def _download(root: Path, train: bool) -> None:
    from torchvision.datasets import MNIST

    try:
        MNIST(root=str(root), train=train, download=True)
    except Exception as e:  # no network, a read-only folder
        raise UsageError(
            f"MNIST is not under {root}/MNIST/raw and could not be downloaded ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}); set GEN_DATA_DIR to a folder holding "
            "MNIST/raw"
        ) from None


def subset(images, labels, size: int, seed: int):
    """A random subset of `size` examples (all of them when size is 0)."""
    import torch

    if size <= 0 or size >= images.shape[0]:
        return images, labels
    index = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))[:size]
    return images[index], labels[index]
