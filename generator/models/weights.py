"""Weights on disk: safetensors, with the model's config beside them in the metadata (nanoGPT's habit)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn


def save_weights(model: nn.Module, path: Path, kind: str, **meta) -> None:
    """The model's state under `path`; its `config` as JSON in the metadata key `kind`, with `meta` beside it."""
    metadata = {kind: json.dumps(model.config.to_dict()), **{k: json.dumps(v) for k, v in meta.items()}}
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata=metadata)


def load_weights(build: Callable[[dict], nn.Module], path: Path, kind: str, device: str = "cpu") -> nn.Module:
    """`build(config)` with the weights of `path`, in eval mode on `device`."""
    with safe_open(str(path), framework="pt") as f:
        config = json.loads(f.metadata()[kind])
    model = build(config)
    model.load_state_dict(load_file(str(path)))
    return model.to(device).eval()
