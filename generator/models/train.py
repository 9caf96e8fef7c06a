"""The training loop of Part B: Adam, shuffled batches, a checkpoint per epoch, resume.

The loss is a function `(model, x, labels, generator) -> loss`, so the same loop
trains the single-step denoiser and both DDPMs. Every random draw (shuffling,
noise, t, class dropout) comes from one explicit generator whose state is
checkpointed, so a resumed run continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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
    # "exponential": × 0.1^(1/epochs) after each epoch; "onecycle": up and down per step
    lr_schedule: str = "constant"
    precision: str = "fp32"  # or "bf16": autocast, weights stay fp32
    ema_decay: float = (
        0.0  # > 0: the weights kept after each epoch are an exponential moving average
    )
    # The fast paths (speed.py): the same losses within rounding (tests/test_fast_paths.py).
    channels_last: bool = False  # the UNet and each batch in NHWC layout
    compile: bool = False  # the UNet through torch.compile
    data_on_device: bool = False  # the digits copied to the device once, batched there


def fast_paths(p) -> dict:
    """TrainConfig's fast-path fields from a section's parameters, once `auto` is chosen."""
    return {
        name: getattr(p, name) == "on" for name in ("channels_last", "compile", "data_on_device")
    }


class EMA:
    """An exponential moving average of a model's weights, the weights that sample (Ho et al. 2020
    used 0.9999).

    The decay warms up as min(decay, (1 + n)/(10 + n)) after n updates, so that
    the random initial weights fade fast in a short run. BatchNorm's running
    statistics are averages already: they are copied from the live model.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for averaged, live in zip(self.model.parameters(), model.parameters()):
            averaged.lerp_(live.detach(), 1.0 - decay)
        for averaged, live in zip(self.model.buffers(), model.buffers()):
            averaged.copy_(live)


def lr_scheduler(optimizer, config: TrainConfig, steps_per_epoch: int):
    """The write-up's ExponentialLR (a tenth of the rate after the last epoch), OneCycle (Smith &
    Topin 2019), or none."""
    if config.lr_schedule == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, 0.1 ** (1.0 / config.epochs))
    if config.lr_schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, config.lr, total_steps=config.epochs * steps_per_epoch
        )
    return None


def _autocast(device: str, precision: str):
    if precision == "bf16":
        return torch.autocast(device_type=device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def save_model(model: UNet, path: Path, **meta) -> None:
    save_weights(model, path, "unet", **meta)


SHOW_LOSS_EVERY = 50  # steps between the progress bar's loss readings (each one a host sync)
MODEL_FILE = "model_epoch_{epoch}.safetensors"  # the weights after an epoch, in work/ and as kept
STATE_FILE = "epoch_{epoch}.safetensors"  # the rest of the training state after an epoch, in work/


def keep_models(work_dir: Path, folder: Path, epochs: list[int]) -> dict[int, str]:
    """Copy the weights of `epochs` from a training run's work folder into `folder`; returns
    {epoch: file name}."""
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


def _save_checkpoint(
    path: Path,
    model,
    optimizer,
    scheduler,
    generator,
    losses: list[float],
    epoch: int,
    ema: EMA | None,
) -> None:
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if ema is not None:
        tensors |= {
            f"ema.{k}": v.detach().contiguous().cpu() for k, v in ema.model.state_dict().items()
        }
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
        "ema_updates": str(ema.updates if ema is not None else 0),
    }
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def _read_checkpoint(path: Path, model, ema: EMA | None) -> tuple[dict, dict]:
    """A training state's tensors and metadata, checked whole before anything is restored from
    them."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    complete = {"epoch", "param_groups", "scheduler", "ema_updates"} <= set(meta or {}) and {
        "generator",
        "losses",
    } <= set(tensors)
    if not complete:
        raise ValueError("part of the training state is missing")
    for prefix, module in (("model.", model), ("ema.", ema.model if ema is not None else None)):
        found = {k[len(prefix) :]: v.shape for k, v in tensors.items() if k.startswith(prefix)}
        if module is not None and found != {k: v.shape for k, v in module.state_dict().items()}:
            raise ValueError(f"its {prefix[:-1]} weights do not fit the model")
    return tensors, meta


def _restore(
    tensors: dict, meta: dict, model, optimizer, scheduler, generator, ema: EMA | None
) -> list[float]:
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
    if ema is not None:
        ema.model.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
        ema.updates = int(meta["ema_updates"])
    return tensors["losses"].tolist()


def _by_epoch(work_dir: Path, pattern: str) -> dict[int, Path]:
    found = {}
    for path in work_dir.glob(pattern.format(epoch="*")):
        tail = path.stem.rsplit("_", 1)[1]
        if tail.isdigit():
            found[int(tail)] = path
    return found


def _loads(path: Path) -> bool:
    try:
        load_model(path)
        return True
    except Exception:
        return False


def _resume(
    work_dir: Path, label: str, model, optimizer, scheduler, generator, ema: EMA | None
) -> tuple[int, list[float]]:
    """Restore the newest checkpoint of `work_dir` that loads whole: its training state, and the
    kept weights of
    every epoch up to it (they are replayed). Returns (its epoch, the losses so far); (0, []) for
    none.

    A file that fails to load (truncated, not safetensors, incomplete) is deleted with one line on
    stderr, and
    so is any file after the epoch resumed from (training writes it again).
    """
    snapshots, states = _by_epoch(work_dir, MODEL_FILE), _by_epoch(work_dir, STATE_FILE)
    damaged: set[Path] = set()
    start, restored = 0, None
    for epoch in range(1, max([*snapshots, *states], default=0) + 1):
        if epoch not in snapshots or not _loads(snapshots[epoch]):
            if epoch in snapshots:
                damaged.add(snapshots[epoch])
            break
        if epoch in states:
            try:
                restored, start = _read_checkpoint(states[epoch], model, ema), epoch
            except Exception:
                damaged.add(states[epoch])
    where = f"epoch {start}" if start else "scratch"
    for epoch in sorted(
        {e for e, p in [*snapshots.items(), *states.items()] if e > start or p in damaged}
    ):
        files = [found[epoch] for found in (snapshots, states) if epoch in found]
        bad = [p for p in files if p in damaged]
        if bad or (
            epoch not in states and not damaged
        ):  # one line per epoch; what follows damage goes silently
            why = "is damaged" if bad else "has no training state beside it"
            print(
                f"{label}: checkpoint {(bad or files)[0].name} in the work folder {why}; resuming "
                f"from {where}",
                file=sys.stderr,
            )
        for path in files:
            if path in damaged or epoch > start:
                path.unlink(missing_ok=True)
    if restored is None:
        return 0, []
    return start, _restore(*restored, model, optimizer, scheduler, generator, ema)


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
    label: str = "training",
    meta: dict | None = None,
) -> list[float]:
    """Train in place; returns the loss of every iteration.

    `images` (N, C, H, W) and `labels` (N,) stay on the CPU, or are copied to the device once
    (`data_on_device`), and are batched by a permutation drawn from `generator`. After each
    epoch a checkpoint goes to `work_dir`; a later call with the same `work_dir` resumes after
    the last one. `on_epoch_end(epoch, model)` is called after every epoch, resumed ones
    included, with the weights that are kept (the moving average where `ema_decay` > 0).
    `label` (the section) starts the line that reports a damaged checkpoint. `meta` is
    stored beside the kept weights (a DDPM's schedule and variance: see `load_ddpm`).
    """
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    # The loss calls the compiled UNet; `model` (its parameters are the same) is what is saved.
    step_model = torch.compile(model) if config.compile else model
    if config.data_on_device:
        images, labels = images.to(device), labels.to(device)
    n = images.shape[0]
    steps_per_epoch = (n + config.batch_size - 1) // config.batch_size
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = lr_scheduler(optimizer, config, steps_per_epoch)
    ema = EMA(model, config.ema_decay) if config.ema_decay > 0 else None
    start, losses = _resume(work_dir, label, model, optimizer, scheduler, generator, ema)
    for epoch in range(
        1, start + 1
    ):  # replay what earlier epochs handed out, from their kept weights
        on_epoch_end(epoch, load_model(work_dir / MODEL_FILE.format(epoch=epoch), device))

    for epoch in range(start + 1, config.epochs + 1):
        model.train()
        order = torch.randperm(n, generator=generator).to(images.device)
        bar = progress(range(steps_per_epoch), desc=f"epoch {epoch}/{config.epochs}")
        epoch_losses = []  # on the device: read once an epoch, not a host sync every step
        for step in bar:
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            x = images[index].to(device)
            y = labels[index].to(device)
            if config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(device, config.precision):
                loss = loss_fn(step_model, x, y, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if config.lr_schedule == "onecycle":
                scheduler.step()
            if ema is not None:
                ema.update(model)
            epoch_losses.append(loss.detach())
            if hasattr(bar, "set_postfix") and step % SHOW_LOSS_EVERY == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        losses.extend(torch.stack(epoch_losses).tolist())
        if config.lr_schedule == "exponential":
            scheduler.step()
        model.eval()
        kept = ema.model if ema is not None else model
        save_model(kept, work_dir / MODEL_FILE.format(epoch=epoch), epoch=epoch, **(meta or {}))
        _save_checkpoint(
            work_dir / STATE_FILE.format(epoch=epoch),
            model,
            optimizer,
            scheduler,
            generator,
            losses,
            epoch,
            ema,
        )
        # Two training states: the one before the last is where to resume if the last is damaged.
        (work_dir / STATE_FILE.format(epoch=epoch - 2)).unlink(missing_ok=True)
        on_epoch_end(epoch, kept)
    model.eval()
    return losses
