"""Weights on disk: safetensors, with the model's config beside them in the metadata (nanoGPT's
habit)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file, save
from torch import nn

from ..store import write_atomic


def save_weights(model: nn.Module, path: Path, kind: str, **meta) -> None:
    """The model's state under `path`, written whole or not at all; its `config` as JSON in the
    metadata key
    `kind`, with `meta` beside it. The same weights give the same bytes."""
    metadata = {
        kind: json.dumps(model.config.to_dict()),
        **{k: json.dumps(v) for k, v in meta.items()},
    }
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    write_atomic(path, _sorted_metadata(save(state, metadata=metadata)))


def _sorted_metadata(raw: bytes) -> bytes:
    """safetensors writes the metadata in hash order, which changes from one save to the next:
    sort it."""
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # the tensors stay 8-byte aligned, as the library pads them
    return len(text).to_bytes(8, "little") + text + raw[8 + size :]


def read_metadata(path: Path) -> dict:
    """Everything `save_weights` wrote beside the weights, decoded from JSON."""
    with safe_open(str(path), framework="pt") as f:
        return {k: json.loads(v) for k, v in (f.metadata() or {}).items()}


def load_weights(
    build: Callable[[dict], nn.Module], path: Path, kind: str, device: str = "cpu"
) -> nn.Module:
    """`build(config)` with the weights of `path`, in eval mode on `device`."""
    with safe_open(str(path), framework="pt") as f:
        config = json.loads(f.metadata()[kind])
    model = build(config)
    model.load_state_dict(load_file(str(path)))
    return model.to(device).eval()
