"""`gen bench`, Part B: training and sampling speed of the three UNets, ours against a plain
baseline.

For each model (`single_step`: b1.2.1's denoiser; `time`: b2.2's DDPM; `class`:
b2.4's DDPM with guidance) at the full profile's width D and batch size, in one
run on the same weights and the same random draws:

- training, images per second: ours is `models.train.train` (the loop every
  section trains with, at the precision `train` is given) with the sections'
  own losses (chapters/common.py) over one epoch of MNIST-shaped batches; the
  baseline is a plain eager fp32 loop written out here (Adam, the loss by
  hand, the same draws in the same order).
- sampling, images per second of a full T-step sample: ours is the samplers
  of diffusion/samplers.py (guidance as one batched call of cond and uncond);
  the baseline is a plain loop of the DDPM update with guidance as two
  separate model calls. Both run the same `steps` timesteps and the rate is
  scaled to T steps.

Speed does not depend on pixel values, so the batches are random; the results
of ours and of the baseline are the same (tests/test_bench_part_b.py).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .chapters.common import ddpm_training_loss, denoiser_loss
from .diffusion.ddpm import linear_schedule
from .diffusion.samplers import CLEAN, classifier_free, conditional, iterative_denoise
from .hardware import FAST_PATHS, bf16_units, choose_fast_path, choose_precision
from .models.denoiser import UNetDenoiser
from .models.train import TrainConfig, train
from .models.unet import UNet, UNetConfig

MODELS = ("single_step", "time", "class")
SIGMA = 0.5  # b1.2.1's training noise
P_UNCOND = 0.1
GUIDANCE = 5.0
LR = 1e-3


@dataclass(frozen=True)
class Sizes:
    """What one run measures: the full profile's D and batch per model, how many batches, how
    many steps."""

    hidden: dict[str, int]
    batch: dict[str, int]
    T: int
    train_batches: int  # timed training steps (after one untimed warm-up step)
    sample_count: int  # images per sampling batch
    sample_steps: int  # timesteps a timed sample runs (the rate is scaled to T)


def sizes(config, quick: bool, tiny: bool = False) -> Sizes:
    """From the full profile's parameters (`config` = gen.yaml at profile full); `tiny`: UNets of
    width 8 on small batches, a check on a CPU that every path runs (`gen bench --size tiny`)."""
    p = config.params
    if tiny:
        few = {k: 8 for k in MODELS}
        return Sizes(few, {k: 16 for k in MODELS}, p["b2.2"].T, 2, sample_count=8, sample_steps=5)
    hidden = {"single_step": p["b1.1"].hidden, "time": p["b2.1"].hidden, "class": p["b2.4"].hidden}
    batch = {
        "single_step": p["b1.2.1"].batch_size,
        "time": p["b2.2"].batch_size,
        "class": p["b2.4"].batch_size,
    }
    if quick:
        # b1.2.1's UNet at D = 128 takes seconds a batch on a small CPU: one timed batch keeps this
        # under 3 minutes.
        return Sizes(hidden, batch, p["b2.2"].T, train_batches=1, sample_count=50, sample_steps=10)
    return Sizes(
        hidden,
        batch,
        p["b2.2"].T,
        train_batches=20,
        sample_count=p["b2.3"].batch_size,
        sample_steps=60,
    )


def build_model(kind: str, hidden: int, seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    return UNet(
        UNetConfig(
            hidden=hidden,
            time_conditioned=kind != "single_step",
            num_classes=10 if kind == "class" else 0,
        )
    )


def batches(count: int, batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST-shaped images in [0, 1] and digit labels, `count` batches' worth."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand((count * batch, 1, 28, 28), generator=g), torch.randint(
        0, 10, (count * batch,), generator=g
    )


# ---------------------------------------------------------------- training


def our_loss(kind: str, T: int):
    """The loss the sections train with (b1.2.1: `denoiser_loss`; b2.2, b2.4:
    `ddpm_training_loss`), itself, not a copy."""
    if kind == "single_step":
        return denoiser_loss(SIGMA)
    return ddpm_training_loss(linear_schedule(T), 10 if kind == "class" else 0, P_UNCOND)


def train_ours(
    model: UNet,
    images,
    labels,
    kind: str,
    batch: int,
    T: int,
    device: str,
    precision: str = "fp32",
    **fast: bool,
) -> list[float]:
    """The sections' training loop for one epoch; `fast`: TrainConfig's fast paths
    (channels_last, compile, data_on_device)."""
    with tempfile.TemporaryDirectory(prefix="gen-bench-") as work:
        return train(
            model,
            images,
            labels,
            our_loss(kind, T),
            TrainConfig(1, batch, LR, precision=precision, **fast),
            generator=torch.Generator().manual_seed(0),
            work_dir=Path(work),
            device=device,
        )


def train_baseline(
    model: UNet, images, labels, kind: str, batch: int, T: int, device: str
) -> list[float]:
    """A plain eager fp32 loop: the same draws as ours, in the same order, written out step by
    step."""
    g = torch.Generator().manual_seed(0)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    abar = torch.cumprod(1.0 - torch.linspace(1e-4, 0.02, T), dim=0).to(device)
    n = images.shape[0]
    order = torch.randperm(n, generator=g)
    losses = []
    for start in range(0, n, batch):
        index = order[start : start + batch]
        x, y = images[index].to(device), labels[index].to(device)
        if kind == "single_step":
            noise = torch.randn(x.shape, generator=g).to(device)
            loss = ((model(x + SIGMA * noise) - x) ** 2).mean()
        else:
            t = torch.randint(0, T, (x.shape[0],), generator=g)
            noise = torch.randn(x.shape, generator=g).to(device)
            a = abar[t.to(device)][:, None, None, None]
            x_t = a.sqrt() * x + (1 - a).sqrt() * noise
            t_in = (t.float() / T).to(device)
            if kind == "class":
                keep = (torch.rand(x.shape[0], generator=g) >= P_UNCOND).float().to(device)
                c = F.one_hot(y, 10).float() * keep[:, None]
                eps = model(x_t, t_in, c)
            else:
                eps = model(x_t, t_in)
            loss = ((eps - noise) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses


# ---------------------------------------------------------------- sampling


def sample_timesteps(T: int, steps: int) -> list[int]:
    """`steps` timesteps from T − 1 down to 0, evenly spaced."""
    return sorted({round(T - 1 - i * (T - 1) / (steps - 1)) for i in range(steps)}, reverse=True)


def sample_ours(
    model: UNet,
    kind: str,
    x: torch.Tensor,
    timesteps: list[int],
    T: int,
    device: str,
    seed: int = 1,
    precision: str = "fp32",
    channels_last: bool = False,
):
    den = UNetDenoiser(
        model.eval(),
        linear_schedule(T).alphas_cumprod.to(device),
        device,
        precision=precision,
        channels_last=channels_last,
    )
    if kind == "single_step":  # one call: the denoiser is its own sampler
        with torch.no_grad(), den.autocast():
            x = x.to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            return model(x).float().contiguous()
    labels = [str(d % 10) for d in range(x.shape[0])]
    if kind == "class":
        eps_fn = classifier_free(den, den.encode(labels), den.encode([""]), GUIDANCE)
    else:
        eps_fn = conditional(den, den.encode([""]))
    # Our sampler's list ends at the clean image: one model call per timestep, as the baseline's.
    return iterative_denoise(
        eps_fn,
        x.to(device),
        [*timesteps, CLEAN],
        den.alphas_cumprod,
        generator=torch.Generator().manual_seed(seed),
        variance_type=den.variance_type,
    )


@torch.no_grad()
def sample_baseline(
    model: UNet,
    kind: str,
    x: torch.Tensor,
    timesteps: list[int],
    T: int,
    device: str,
    seed: int = 1,
):
    """A plain loop of the DDPM update (σ² = β of the step), guidance as two separate model
    calls."""
    model.eval()
    x = x.to(device)
    if kind == "single_step":
        return model(x).float()
    g = torch.Generator().manual_seed(seed)
    abar = torch.cumprod(1.0 - torch.linspace(1e-4, 0.02, T), dim=0).to(device)
    c = F.one_hot(torch.arange(x.shape[0]) % 10, 10).float().to(device)
    for i, t in enumerate(timesteps):
        t_in = torch.full((x.shape[0],), t / T, device=device)
        if kind == "class":
            eps_c = model(x, t_in, c)
            eps_u = model(x, t_in, torch.zeros_like(c))
            eps = eps_u + GUIDANCE * (eps_c - eps_u)
        else:
            eps = model(x, t_in)
        a_t = abar[t]
        a_prev = (
            abar[timesteps[i + 1]] if i + 1 < len(timesteps) else torch.tensor(1.0, device=device)
        )
        beta = 1 - a_t / a_prev
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        mean = (
            a_prev.sqrt() * beta / (1 - a_t) * x0 + (1 - beta).sqrt() * (1 - a_prev) / (1 - a_t) * x
        )
        last = i + 1 == len(timesteps)
        noise = torch.zeros_like(x) if last else torch.randn(x.shape, generator=g).to(device)
        x = mean + beta.sqrt() * noise
    return x


# ---------------------------------------------------------------- timing


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _rate(images: int, seconds: float) -> float:
    return float(f"{images / seconds:.3g}")


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _variants(ours: dict, paths: dict[str, dict] | None) -> dict[str, dict]:
    """The loops one measurement times, in order: the plain one, ours (as `auto` picks here), and
    ours with each fast path alone on top of plain fp32."""
    return {"baseline": {}, "ours": ours, **{f"path:{k}": v for k, v in (paths or {}).items()}}


def _ratios(seconds: dict[str, float]) -> dict:
    """Each loop's speed over the plain loop's, measured in the same run."""
    base = seconds["baseline"]
    return {
        "ratio": round(base / seconds["ours"], 3),
        "paths": {k[5:]: round(base / v, 3) for k, v in seconds.items() if k.startswith("path:")},
    }


def time_training(kind: str, s: Sizes, device: str, precision: str, fast=None, paths=None) -> dict:
    """Images per second of the plain loop and of ours (at `precision` with the fast paths
    `fast`), and the ratio of each of `paths` (name → train_ours' settings) to the plain loop."""
    batch = s.batch[kind]
    warm_images, warm_labels = batches(1, batch, seed=1)
    images, labels = batches(s.train_batches, batch)
    result, seconds = {}, {}
    for name, extra in _variants({"precision": precision, **(fast or {})}, paths).items():
        loop = train_baseline if name == "baseline" else train_ours
        model = build_model(kind, s.hidden[kind])
        loop(
            model, warm_images, warm_labels, kind, batch, s.T, device, **extra
        )  # first calls allocate, tune and compile
        _sync(device)
        seconds[name] = _timed(
            lambda loop=loop, model=model, extra=extra: (
                loop(model, images, labels, kind, batch, s.T, device, **extra),
                _sync(device),
            )
        )
        if not name.startswith("path:"):
            result[f"{name}_img_s"] = _rate(images.shape[0], seconds[name])
    return {
        **result,
        **_ratios(seconds),
        "hidden": s.hidden[kind],
        "batch": batch,
        "steps_timed": s.train_batches,
    }


def time_sampling(kind: str, s: Sizes, device: str, ours=None, paths=None) -> dict:
    """Images per second of a full sample, the plain loop's and ours (`ours`: sample_ours'
    precision and channels_last), and the ratio of each of `paths` to the plain loop."""
    x = torch.randn((s.sample_count, 1, 28, 28), generator=torch.Generator().manual_seed(2))
    steps = 1 if kind == "single_step" else s.sample_steps
    timesteps = sample_timesteps(s.T, steps) if steps > 1 else [s.T - 1]
    full = 1 if kind == "single_step" else s.T / steps  # a full sample runs T steps
    result, seconds = {}, {}
    for name, extra in _variants(ours or {}, paths).items():
        sample = sample_baseline if name == "baseline" else sample_ours
        # the same weights each time, in a fresh module: channels_last changes a module's layout
        model = build_model(kind, s.hidden[kind]).to(device)
        sample(model, kind, x[:2], timesteps[:2], s.T, device, **extra)  # warm-up
        _sync(device)
        seconds[name] = _timed(
            lambda sample=sample, model=model, extra=extra: (
                sample(model, kind, x, timesteps, s.T, device, **extra),
                _sync(device),
            )
        )
        if not name.startswith("path:"):
            result[f"{name}_img_s"] = _rate(s.sample_count, seconds[name] * full)
    return {
        **result,
        **_ratios(seconds),
        "hidden": s.hidden[kind],
        "batch": s.sample_count,
        "steps_timed": steps,
        "T": s.T,
    }


# ---------------------------------------------------------------- the report


def auto_settings(device: str) -> tuple[dict, dict]:
    """What `auto` picks here for training and for sampling, as a build would."""
    precision, _ = choose_precision(device)
    on = {name: choose_fast_path(name, device)[0] == "on" for name in FAST_PATHS}
    return {"precision": precision, **on}, {
        "precision": precision,
        "channels_last": on["channels_last"],
    }


def fast_path_variants(device: str) -> tuple[dict, dict]:
    """Each fast path alone, for training and for sampling. bf16 is timed where the device has
    bf16 units (elsewhere it is emulated, about ten times slower, and `auto` never picks it);
    torch.compile on CUDA only (on a CPU it compiles for minutes and measured 0.92×)."""
    bf16 = {"bf16": {"precision": "bf16"}} if bf16_units(device) else {}
    train_paths = {
        **bf16,
        "channels_last": {"channels_last": True},
        "data_on_device": {"data_on_device": True},
    }
    if device == "cuda":
        train_paths["compile"] = {"compile": True}
    sample_paths = {**bf16, "channels_last": {"channels_last": True}}
    return train_paths, sample_paths


def measure(config, device: str, quick: bool, log=print, tiny: bool = False) -> dict:
    """{"train": {MODEL: …}, "sample": {MODEL: …}, "auto": …} at the full profile's sizes
    (`config`: profile full); ours runs as `auto` picks here, and each fast path is timed alone
    against the same plain loop."""
    s = sizes(config, quick, tiny)
    train_auto, sample_auto = auto_settings(device)
    train_paths, sample_paths = fast_path_variants(device)
    out = {"train": {}, "sample": {}, "auto": {"train": train_auto, "sample": sample_auto}}
    fast = {k: v for k, v in train_auto.items() if k != "precision"}
    for kind in MODELS:
        log(f"Part B, {kind}: training")
        out["train"][kind] = time_training(
            kind, s, device, train_auto["precision"], fast, train_paths
        )
        log(f"Part B, {kind}: sampling")
        out["sample"][kind] = time_sampling(kind, s, device, sample_auto, sample_paths)
    return out


def time_command(root: Path, *args: str) -> float:
    """Seconds a `gen` command takes in a fresh process, in the project at `root`, as a user
    types it."""
    import subprocess
    import sys

    script = Path(sys.executable).with_name("gen")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "generator.cli"]
    start = time.perf_counter()
    subprocess.run([*command, *args], cwd=root, check=True, capture_output=True)
    return round(time.perf_counter() - start, 3)
