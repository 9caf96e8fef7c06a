"""`gen bench`: how fast DeepFloyd IF's stage I runs through our samplers, and through diffusers'
own IFPipeline.

The case needs no weights and no network: the UNet has IF-I-XL's real
architecture (`full`, from backends/if_unet_configs.json) or a tiny one of the
same design (`tiny`, for the CPU and the tests), with random weights, and the
text embeddings are random too. Speed does not depend on the weights' values,
only on the shapes, so the numbers hold for the real model.

Three measurements in one run, on the same UNet object:
1. one UNet call with cond and uncond batched (2 × 3×64×64), the floor;
2. a 34-step guided sample (990, 960, …, 0; guidance 7; learned-range
   variance) through `classifier_free` + `iterative_denoise` over `IFDenoiser`;
3. the same through `IFPipeline` with IF's stage-I `DDPMScheduler`.
IFPipeline makes one more UNet call than our loop for the same timestep list
(see diffusion/samplers.py), so the model calls are counted, not assumed, and
the comparison is also given per model call.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import UsageError

CONFIGS = Path(__file__).with_name("backends") / "if_unet_configs.json"
FULL = "IF-I-XL-v1.0"
T5_XXL_DIM = 4096  # the real IF's encoder_hid_dim (T5-XXL's d_model)
TINY_T5_DIM = 32
TEXT_TOKENS = 77
SHAPE = (3, 64, 64)
T_START, STRIDE = 990, 30
GUIDANCE = 7.0
INIT_STD = 0.02  # small enough that activations stay well inside fp16's range
WARMUP_CALLS = 3

# IF's UNet design (text_proj of T5 states added to the time embedding, scale-shift resnets),
# tiny: two plain levels of 16 channels, then cross-attention at 16×16, so that a guided sample
# takes seconds on one CPU core (tests/tiny_if.py builds its IF stages from it).
TINY = {
    "in_channels": 3,
    "out_channels": 6,  # noise and the learned variance range
    "sample_size": 64,
    "block_out_channels": [16, 16, 32],
    "layers_per_block": 1,
    "down_block_types": [
        "ResnetDownsampleBlock2D",
        "ResnetDownsampleBlock2D",
        "SimpleCrossAttnDownBlock2D",
    ],
    "mid_block_type": "UNetMidBlock2DSimpleCrossAttn",
    "up_block_types": [
        "SimpleCrossAttnUpBlock2D",
        "ResnetUpsampleBlock2D",
        "ResnetUpsampleBlock2D",
    ],
    "norm_num_groups": 8,
    "cross_attention_dim": 32,
    "encoder_hid_dim": TINY_T5_DIM,
    "encoder_hid_dim_type": "text_proj",
    "addition_embed_type": "text",
    "addition_embed_type_num_heads": 2,
    "attention_head_dim": 8,
    "cross_attention_norm": "group_norm",
    "resnet_time_scale_shift": "scale_shift",
    "act_fn": "gelu",
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- choices


def resolve(size: str | None, device: str) -> tuple[str, str]:
    """(size, device) from the options: auto → CUDA where there is one; size defaults to full on
    CUDA, tiny on the CPU."""
    cuda = torch.cuda.is_available()
    if device == "auto":
        device = "cuda" if cuda else "cpu"
    elif device == "cuda" and not cuda:
        raise UsageError(
            "--device cuda: torch sees no CUDA GPU here; use --device cpu (with --size tiny)"
        )
    size = size or ("full" if device == "cuda" else "tiny")
    if size == "full" and device != "cuda":
        raise UsageError(
            "--size full needs a CUDA GPU (IF-I-XL's UNet is about 9 GB of fp16 weights); on the "
            "CPU use --size tiny"
        )
    return size, device


def unet_config(size: str) -> dict:
    if size == "tiny":
        return dict(TINY)
    return {k: v for k, v in json.loads(CONFIGS.read_text())[FULL].items() if not k.startswith("_")}


# ---------------------------------------------------------------- the model, with random weights


@torch.no_grad()
def init_weights(module: torch.nn.Module, seed: int = 0) -> None:
    """N(0, 0.02²) weights, zero biases, norms at identity: deterministic, and finite through the
    UNet in fp16."""
    generator = torch.Generator(device=next(module.parameters()).device).manual_seed(seed)
    for m in module.modules():
        for name, p in m.named_parameters(recurse=False):
            if name == "bias":
                p.zero_()
            elif isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
                p.fill_(1.0)
            else:
                p.normal_(0.0, INIT_STD, generator=generator)


def build_unet(size: str, device: str, dtype: torch.dtype):
    """The UNet built on the meta device, then allocated in `dtype` on `device`: no fp32 copy of
    4.3e9 weights first."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(unet_config(size))
    # .half() rather than .to(dtype): diffusers' ModelMixin.to warns on every dtype cast.
    unet = (unet.half() if dtype == torch.float16 else unet.float()).to_empty(device=device)
    init_weights(unet)
    return unet.eval().requires_grad_(False)


def if_scheduler(sample_max_value: float = 1.5):
    """IF's DDPMScheduler as its model repositories configure it: cosine betas, learned variance
    range, dynamic
    thresholding (stage I: sample_max_value 1.5, stage II: 1.0)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="squaredcos_cap_v2",
        variance_type="learned_range",
        prediction_type="epsilon",
        thresholding=True,
        dynamic_thresholding_ratio=0.95,
        sample_max_value=sample_max_value,
        clip_sample=True,
        clip_sample_range=1.0,
    )


# ---------------------------------------------------------------- timing


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(
    fn: Callable[[], object], repeats: int, device: str, warmup: int = 1
) -> tuple[list[float], object]:
    """Seconds of each of `repeats` calls after `warmup` untimed ones (CUDA synchronised), and
    the last result."""
    out = None
    for _ in range(warmup):
        out = fn()
    seconds = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        out = fn()
        _sync(device)
        seconds.append(time.perf_counter() - start)
    return seconds, out


class CallCounter:
    """Counts the UNet's forward calls (a pre-hook), so each sampler's model calls are measured."""

    def __init__(self, unet):
        self.n = 0
        unet.register_forward_pre_hook(self._hook)

    def _hook(self, module, args):
        self.n += 1


def _ms(seconds: float) -> float:
    return round(1000 * seconds, 3)


def _peak_gib(device: str) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 3) if device == "cuda" else None


def _reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


# ---------------------------------------------------------------- the benchmark


@dataclass
class Case:
    """The UNet with random weights, IF's scheduler and random text embeddings, on one device."""

    size: str
    device: str
    dtype: torch.dtype
    unet: torch.nn.Module
    counter: CallCounter
    scheduler: object
    alphas_cumprod: torch.Tensor
    timesteps: list[int]
    cond: torch.Tensor
    uncond: torch.Tensor


def build_case(size: str, device: str) -> Case:
    from .diffusion.timesteps import strided_timesteps

    dtype = torch.float16 if device == "cuda" else torch.float32
    _reset_peak(device)
    log(
        f"bench: building the {size} UNet with random weights, {str(dtype).removeprefix('torch.')} "
        f"on {device}"
    )
    unet = build_unet(size, device, dtype)
    scheduler = if_scheduler()
    g = torch.Generator().manual_seed(0)  # every random draw on the CPU, as our samplers do
    hid = unet.config.encoder_hid_dim
    cond, uncond = (
        torch.randn(1, TEXT_TOKENS, hid, generator=g).to(device, dtype) for _ in range(2)
    )
    return Case(
        size,
        device,
        dtype,
        unet,
        CallCounter(unet),
        scheduler,
        scheduler.alphas_cumprod.float().cpu(),
        strided_timesteps(T_START, STRIDE),
        cond,
        uncond,
    )


def time_unet_call(case: Case, repeats: int) -> dict:
    """One UNet call, cond and uncond batched: the floor of every sampler."""
    log(f"bench: UNet calls (batch 2, {WARMUP_CALLS} warm-up, {repeats} timed)")
    g = torch.Generator().manual_seed(1)
    x2 = torch.randn(2, *SHAPE, generator=g).to(case.device, case.dtype)
    c2 = torch.cat([case.cond, case.uncond])
    t = torch.tensor(T_START, device=case.device)

    def call():
        with torch.no_grad():
            return case.unet(x2, t, encoder_hidden_states=c2, return_dict=False)[0]

    _reset_peak(case.device)
    seconds, out = timed(call, repeats, case.device, warmup=WARMUP_CALLS)
    return {
        "batch": 2,
        "shape": list(SHAPE),
        "ms_median": _ms(statistics.median(seconds)),
        "ms_all": [_ms(s) for s in seconds],
        "output_finite": bool(torch.isfinite(out).all()),
        "peak_gpu_memory_gib": _peak_gib(case.device),
    }


def samplers(case: Case) -> dict[str, tuple[str, Callable[[], torch.Tensor]]]:
    """A guided sample through our samplers over IFDenoiser, and through diffusers' IFPipeline,
    on the same UNet."""
    from diffusers import IFPipeline

    from .backends.deepfloyd_model import NO_CHECKER, IFDenoiser
    from .diffusion.samplers import classifier_free, iterative_denoise

    den = IFDenoiser(case.unet, case.alphas_cumprod, {}, case.device)
    eps_fn = classifier_free(den, case.cond, case.uncond, GUIDANCE)

    def ours():
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(1, *SHAPE, generator=gen).to(case.device)
        return iterative_denoise(
            eps_fn,
            x,
            case.timesteps,
            case.alphas_cumprod,
            generator=gen,
            variance_type=den.variance_type,
        )

    pipe = IFPipeline(
        tokenizer=None, text_encoder=None, unet=case.unet, scheduler=case.scheduler, **NO_CHECKER
    )
    pipe.set_progress_bar_config(disable=True)

    def theirs():
        return pipe(
            prompt_embeds=case.cond,
            negative_prompt_embeds=case.uncond,
            timesteps=case.timesteps,
            guidance_scale=GUIDANCE,
            generator=torch.Generator().manual_seed(0),
            output_type="pt",
        ).images

    return {"sample_ours": ("ours", ours), "sample_diffusers": ("IFPipeline", theirs)}


def time_sample(
    case: Case, label: str, sample: Callable[[], torch.Tensor], repeats: int, warmup: int
) -> dict:
    log(
        f"bench: {len(case.timesteps)}-step guided samples through {label} ({warmup} warm-up, "
        f"{repeats} timed)"
    )
    _reset_peak(case.device)
    case.counter.n = 0
    seconds, image = timed(sample, repeats, case.device, warmup=warmup)
    calls = case.counter.n // (repeats + warmup)
    s = statistics.median(seconds)
    return {
        "s_median": round(s, 4),
        "s_all": [round(x, 4) for x in seconds],
        "model_calls": calls,
        "ms_per_model_call": _ms(s / calls),
        "output_finite": bool(torch.isfinite(image).all()),
        "peak_gpu_memory_gib": _peak_gib(case.device),
    }


def run(size: str | None = None, device: str = "auto", repeats: int = 5) -> dict:
    """Build the case, run the three measurements, and return the report (a JSON-ready dict)."""
    size, device = resolve(size, device)  # a bad choice fails before diffusers loads (seconds)
    import diffusers

    case = build_case(size, device)
    results = {"unet_call": time_unet_call(case, repeats)}
    # On CUDA one untimed sample each (the loops' own small kernels, the allocator); on the CPU the
    # UNet calls before warmed up all there is, and the tests stay fast.
    sample_warmup = 1 if device == "cuda" else 0
    for key, (label, sample) in samplers(case).items():
        results[key] = time_sample(case, label, sample, repeats, sample_warmup)
    ours, theirs = results["sample_ours"], results["sample_diffusers"]
    return {
        "benchmark": (
            "DeepFloyd IF stage I, random weights: UNet call, our samplers, diffusers' IFPipeline"
        ),
        "size": size,
        "unet": FULL if size == "full" else "tiny (IF's block types)",
        "parameters": sum(p.numel() for p in case.unet.parameters()),
        "device": device,
        "device_name": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "cpu_threads": torch.get_num_threads(),
        "dtype": str(case.dtype).removeprefix("torch."),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "repeats": repeats,
        "warmup": {"unet_calls": WARMUP_CALLS, "samples": sample_warmup},
        "timesteps": {
            "first": case.timesteps[0],
            "last": case.timesteps[-1],
            "stride": STRIDE,
            "count": len(case.timesteps),
        },
        "guidance_scale": GUIDANCE,
        **results,
        "ratio_ours_over_diffusers": {
            "per_sample": round(ours["s_median"] / theirs["s_median"], 4),
            "per_model_call": round(ours["ms_per_model_call"] / theirs["ms_per_model_call"], 4),
        },
        "peak_gpu_memory_gib": max(r["peak_gpu_memory_gib"] for r in results.values())
        if device == "cuda"
        else None,
    }
