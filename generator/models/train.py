"""The training loop of Part B: Adam, shuffled batches, a checkpoint per epoch, resume.

The loss is a function `(model, x, labels, generator) -> loss`, so the same loop
trains the single-step denoiser and both DDPMs. Every random draw (shuffling,
noise, t, class dropout) comes from one explicit generator whose state is
checkpointed, so a resumed run continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .unet import UNet, UNetConfig
from .weights import load_weights, save_weights

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch_size: int
    lr: float
    lr_gamma: float | None = None  # ExponentialLR factor, stepped once per epoch
    precision: str = "fp32"  # or "bf16": autocast, weights stay fp32


def _autocast(device: str, precision: str):
    if precision == "bf16":
        return torch.autocast(device_type=device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def save_model(model: UNet, path: Path, **meta) -> None:
    save_weights(model, path, "unet", **meta)


MODEL_FILE = "model_epoch_{epoch}.safetensors"  # the weights after an epoch, in work/ and as kept


def keep_models(work_dir: Path, folder: Path, epochs: list[int]) -> dict[int, str]:
    """Copy the weights of `epochs` from a training run's work folder into `folder`; returns {epoch: file name}."""
    import shutil

    kept = {}
    for epoch in epochs:
        kept[epoch] = MODEL_FILE.format(epoch=epoch)
        shutil.copy(work_dir / kept[epoch], folder / kept[epoch])
    return kept


def load_kept(folder: Path, epoch: int, device: str = "cpu") -> UNet:
    """The weights `keep_models` kept for `epoch`."""
    return load_model(folder / MODEL_FILE.format(epoch=epoch), device)


def load_model(path: Path, device: str = "cpu") -> UNet:
    return load_weights(lambda config: UNet(UNetConfig(**config)), path, "unet", device)


def _save_checkpoint(path: Path, model, optimizer, scheduler, generator, losses: list[float], epoch: int) -> None:
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for index, state in opt["state"].items():
        for name, value in state.items():
            tensors[f"adam.{index}.{name}"] = torch.as_tensor(value).cpu().contiguous()
    tensors["generator"] = generator.get_state()
    tensors["losses"] = torch.tensor(losses, dtype=torch.float64)
    meta = {
        "epoch": str(epoch),
        "param_groups": json.dumps(opt["param_groups"]),
        "scheduler": json.dumps(scheduler.state_dict() if scheduler else None),
    }
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def _load_checkpoint(path: Path, model, optimizer, scheduler, generator) -> tuple[int, list[float]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("adam."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    if scheduler is not None:
        scheduler.load_state_dict(json.loads(meta["scheduler"]))
    generator.set_state(tensors["generator"])
    return int(meta["epoch"]), tensors["losses"].tolist()


def train(
    model: UNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    loss_fn: LossFn,
    config: TrainConfig,
    *,
    generator: torch.Generator,
    work_dir: Path,
    device: str,
    progress=lambda it, **kw: it,
    on_epoch_end: Callable[[int, UNet], None] = lambda epoch, model: None,
) -> list[float]:
    """Train in place; returns the loss of every iteration.

    `images` (N, C, H, W) and `labels` (N,) stay on the CPU and are batched by a
    permutation drawn from `generator`. After each epoch a checkpoint goes to
    `work_dir`; a later call with the same `work_dir` resumes after the last one.
    `on_epoch_end(epoch, model)` is called after every epoch, resumed ones included.
    """
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, config.lr_gamma) if config.lr_gamma else None
    losses: list[float] = []
    start = 0
    checkpoints = sorted(work_dir.glob("epoch_*.safetensors"), key=lambda p: int(p.stem.split("_")[1]))
    if checkpoints:
        start, losses = _load_checkpoint(checkpoints[-1], model, optimizer, scheduler, generator)
        # Replay what earlier epochs handed out, from their saved weights.
        for epoch in range(1, start + 1):
            snapshot = work_dir / MODEL_FILE.format(epoch=epoch)
            on_epoch_end(epoch, load_model(snapshot, device))

    n = images.shape[0]
    steps_per_epoch = (n + config.batch_size - 1) // config.batch_size
    for epoch in range(start + 1, config.epochs + 1):
        model.train()
        order = torch.randperm(n, generator=generator)
        bar = progress(range(steps_per_epoch), desc=f"epoch {epoch}/{config.epochs}")
        for step in bar:
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            x = images[index].to(device)
            y = labels[index].to(device)
            with _autocast(device, config.precision):
                loss = loss_fn(model, x, y, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
        if scheduler is not None:
            scheduler.step()
        model.eval()
        save_model(model, work_dir / MODEL_FILE.format(epoch=epoch), epoch=epoch)
        _save_checkpoint(work_dir / f"epoch_{epoch}.safetensors", model, optimizer, scheduler, generator, losses, epoch)
        if epoch > 1:  # the optimiser state of the previous epoch is no longer needed
            (work_dir / f"epoch_{epoch - 1}.safetensors").unlink(missing_ok=True)
        on_epoch_end(epoch, model)
    model.eval()
    return losses
