"""MNIST as tensors in memory (60,000 digits are 47 MB as bytes: no DataLoader needed)."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from .errors import UsageError


@functools.lru_cache(maxsize=4)
def mnist(root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, 28, 28) float32 in [0, 1] and labels (N,) int64.

    torchvision reads `root/MNIST/raw`; when the files are missing it downloads
    them there (on a user's machine; tests point GEN_DATA_DIR at a copy).
    """
    from torchvision.datasets import MNIST

    try:
        dataset = MNIST(root=str(root), train=train, download=True)
    except Exception as e:  # no network, a read-only folder, a broken file
        raise UsageError(
            f"MNIST is not under {root}/MNIST/raw and could not be downloaded ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}); set GEN_DATA_DIR to a folder holding MNIST/raw"
        ) from None
    images = dataset.data.unsqueeze(1).float().div_(255.0)
    return images, dataset.targets.clone()


def subset(images: torch.Tensor, labels: torch.Tensor, size: int, seed: int):
    """A random subset of `size` examples (all of them when size is 0)."""
    if size <= 0 or size >= images.shape[0]:
        return images, labels
    index = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))[:size]
    return images[index], labels[index]
