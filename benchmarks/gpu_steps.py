"""The steps of benchmarks/gpu_all.sh that are Python: each prints one JSON object on stdout.

    if-weights FOLDER --scale full|tiny   DeepFloyd IF with random weights, saved as the hub's
                                          repositories are (stage I with its T5 encoder, stage II)
    part-b-flops PROJECT PROFILE          model FLOPs of Part B's three trainings, and their
                                          utilisation of the GPU's peak from the build's records
    gen [--gpu-gib N] -- ARGS             `gen ARGS` in this process, held to N GiB of the GPU
                                          where given, then its peak GPU memory
    records PROJECT PART                  each section's time, device and backend from PROJECT's
                                          docs/ records, for part a or b

`--scale full` is IF at its real sizes: IF-I-XL's and IF-II-L's UNet configurations
(generator/backends/if_unet_configs.json) and a T5 encoder of T5-v1.1-XXL's size, in fp16, built
on the GPU. Only the fp16 variant files are written: with the fp32 ones beside them the three
models would take about 60 GB of disk. `--scale tiny` is the same layout, pipelines and block
types with small widths, in fp32 and fp16 files, for a dry run on a CPU. The tokenizer is the
word-level one of tests/tiny_if.py (T5's own needs the hub); its ids fit T5's vocabulary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from generator.bench import CONFIGS, TINY_T5_DIM, if_scheduler, init_weights  # noqa: E402

STAGES = {"stage_1": "IF-I-XL-v1.0", "stage_2": "IF-II-L-v1.0"}
# T5-v1.1-XXL's encoder (google/t5-v1_1-xxl): 4.76e9 parameters, d_model 4096, IF's text states.
T5_XXL = dict(d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64, vocab_size=32128)
T5_TINY = dict(d_model=TINY_T5_DIM, d_kv=8, d_ff=64, num_layers=2, num_heads=4, vocab_size=32128)
# The same block types at small widths: what changes is only how many channels, layers and heads.
TINY_UNET = {
    "stage_1": dict(block_out_channels=[16, 32, 32, 32]),
    "stage_2": dict(block_out_channels=[16, 16, 16, 32, 32], time_embedding_dim=64),
}
TINY_COMMON = dict(
    layers_per_block=1,
    attention_head_dim=8,
    addition_embed_type_num_heads=2,
    cross_attention_dim=32,
    encoder_hid_dim=TINY_T5_DIM,
    norm_num_groups=8,
)
# Dense bf16 tensor-core peaks (NVIDIA's data sheets, SXM parts), FLOP/s.
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def _allocated(factory, device: str, dtype: torch.dtype):
    """The module built on the meta device, then allocated in `dtype` on `device` and given
    random weights: no fp32 copy of billions of weights first."""
    with torch.device("meta"):
        module = factory()
    module = (module.half() if dtype == torch.float16 else module.float()).to_empty(device=device)
    init_weights(module)
    return module.eval().requires_grad_(False)


def unet_config(stage: str, scale: str) -> dict:
    found = json.loads(CONFIGS.read_text())[STAGES[stage]]
    found = {k: v for k, v in found.items() if not k.startswith("_")}
    if scale == "tiny":
        found.update(TINY_COMMON, **TINY_UNET[stage])
    return found


def if_weights(folder: Path, scale: str) -> dict:
    from diffusers import DDPMScheduler, IFPipeline, IFSuperResolutionPipeline
    from diffusers import UNet2DConditionModel as UNet
    from tiny_if import make_tokenizer
    from transformers import T5Config, T5EncoderModel

    device = "cuda" if scale == "full" else "cpu"
    dtypes = [torch.float16] if scale == "full" else [torch.float32, torch.float16]
    t5 = T5Config(
        **(T5_XXL if scale == "full" else T5_TINY),
        relative_attention_num_buckets=32,
        feed_forward_proj="gated-gelu",
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    unsafe = dict(
        safety_checker=None, feature_extractor=None, watermarker=None, requires_safety_checker=False
    )
    counts, start = {}, time.perf_counter()
    for dtype in dtypes:
        variant = "fp16" if dtype == torch.float16 else None
        torch.manual_seed(0)
        encoder = _allocated(lambda: T5EncoderModel(t5), device, dtype)
        unet = _allocated(lambda: UNet.from_config(unet_config("stage_1", scale)), device, dtype)
        counts |= {"text_encoder": _count(encoder), "stage_1": _count(unet)}
        IFPipeline(
            tokenizer=make_tokenizer(),
            text_encoder=encoder,
            unet=unet,
            scheduler=if_scheduler(sample_max_value=1.5),
            **unsafe,
        ).save_pretrained(folder / "stage_1", variant=variant)
        del encoder, unet
        unet = _allocated(lambda: UNet.from_config(unet_config("stage_2", scale)), device, dtype)
        counts["stage_2"] = _count(unet)
        IFSuperResolutionPipeline(
            tokenizer=None,
            text_encoder=None,
            unet=unet,
            scheduler=if_scheduler(sample_max_value=1.0),
            image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
            **unsafe,
        ).save_pretrained(folder / "stage_2", variant=variant)
        del unet
        if device == "cuda":
            torch.cuda.empty_cache()
    files = sorted(p for p in folder.rglob("*.safetensors"))
    return {
        "step": "if_weights",
        "scale": scale,
        "parameters": counts,
        "variants": [str(d).removeprefix("torch.") for d in dtypes],
        "files": len(files),
        "gib_on_disk": round(sum(p.stat().st_size for p in files) / 2**30, 2),
        "seconds": round(time.perf_counter() - start, 1),
        "stage_1": str(folder / "stage_1"),
        "stage_2": str(folder / "stage_2"),
    }


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- Part B's model FLOPs


def training_flops(hidden: int, kind: str, images: int) -> float:
    """Model FLOPs (forward and backward) of training one UNet on `images` digits, counted by
    torch's FLOP counter on two digits and scaled: a conv's FLOPs grow with the batch."""
    from torch.utils.flop_counter import FlopCounterMode

    from generator.bench_part_b import build_model

    model = build_model(kind, hidden)
    x = torch.rand(2, 1, 28, 28)
    args = () if kind == "single_step" else (torch.rand(2),)
    if kind == "class":
        args += (torch.nn.functional.one_hot(torch.tensor([1, 2]), 10).float(),)
    with FlopCounterMode(display=False) as counter:
        model(x, *args).square().mean().backward()
    return counter.get_total_flops() / 2 * images


def part_b_flops(project: Path, profile: str) -> dict:
    """Each training's model FLOPs from the profile's numbers, its wall time from its record in
    docs/, and the utilisation of the GPU's dense bf16 peak they make together."""
    from generator.config import load

    config = load(project, profile)
    p = config.params
    trainings = {
        "b1.2.1": ("single_step", p["b1.1"].hidden),
        "b2.2": ("time", p["b2.1"].hidden),
        "b2.4": ("class", p["b2.4"].hidden),
    }
    rows, total_flops, total_s = {}, 0.0, 0.0
    for sid, (kind, hidden) in trainings.items():
        record = json.loads((project / "docs" / "assets" / sid / "record.json").read_text())
        digits = p[sid].train_subset or 60000
        flops = training_flops(hidden, kind, digits * p[sid].epochs)
        rows[sid] = {
            "hidden": hidden,
            "epochs": p[sid].epochs,
            "digits": digits,
            "pflop": float(f"{flops / 1e15:.4g}"),
            "duration_s": record["duration_s"],
            "device": record["device"],
            "choices": record.get("choices", {}),
        }
        total_flops += flops
        total_s += record["duration_s"]
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    achieved = total_flops / total_s
    return {
        "step": "part_b_flops",
        "profile": profile,
        "gpu": name,
        "trainings": rows,
        "pflop": float(f"{total_flops / 1e15:.4g}"),
        "training_s": round(total_s, 1),
        "tflop_s": round(achieved / 1e12, 2),
        "peak_bf16_tflop_s": peak and peak / 1e12,
        # the records' durations include each epoch's checkpoint and b1.2.1's evaluation
        "mfu": peak and round(achieved / peak, 4),
    }


# ---------------------------------------------------------------- gen, held to a share of the GPU


def run_gen(args: list[str], gpu_gib: float | None) -> dict:
    from generator import cli

    cuda = torch.cuda.is_available()
    if cuda and gpu_gib:
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, gpu_gib * 2**30 / total))
    start, code = time.perf_counter(), 0
    try:
        cli.cli.main(args, standalone_mode=False)
    except SystemExit as e:
        code = e.code or 0
    except Exception as e:  # noqa: BLE001 - the step's record says what failed
        code, failure = 1, f"{type(e).__name__}: {e}"
        print(failure, file=sys.stderr)
    return {
        "step": "gen",
        "args": args,
        "exit": code,
        "seconds": round(time.perf_counter() - start, 1),
        "gpu_gib_limit": gpu_gib if cuda else None,
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "peak_gpu_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2)
        if cuda
        else None,
    }


def records(project: Path, part: str) -> dict:
    found = {}
    for path in sorted((project / "docs" / "assets").glob(f"{part}*/record.json")):
        r = json.loads(path.read_text())
        backend = r.get("backend") or {}
        found[r["id"]] = {
            "duration_s": r["duration_s"],
            "device": r["device"],
            "profile": r["profile"],
            "offload": backend.get("offload"),
            "choices": r.get("choices", {}),
        }
    total = round(sum(v["duration_s"] for v in found.values()), 1)
    return {"step": "records", "part": part, "sections": found, "total_s": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    weights = sub.add_parser("if-weights")
    weights.add_argument("folder", type=Path)
    weights.add_argument("--scale", choices=("full", "tiny"), required=True)
    flops = sub.add_parser("part-b-flops")
    flops.add_argument("project", type=Path)
    flops.add_argument("profile", choices=("full", "quick", "smoke"))
    kept = sub.add_parser("records")
    kept.add_argument("project", type=Path)
    kept.add_argument("part", choices=("a", "b"))
    gen = sub.add_parser("gen")
    gen.add_argument("--gpu-gib", type=float, default=None)
    gen.add_argument("args", nargs=argparse.REMAINDER)
    a = parser.parse_args()
    if a.step == "if-weights":
        if a.scale == "full" and not torch.cuda.is_available():
            parser.exit(2, "if-weights --scale full builds IF-I-XL on a CUDA GPU; use tiny\n")
        result = if_weights(a.folder, a.scale)
    elif a.step == "part-b-flops":
        result = part_b_flops(a.project, a.profile)
    elif a.step == "records":
        result = records(a.project, a.part)
    else:
        result = run_gen([x for x in a.args if x != "--"], a.gpu_gib)
    print(json.dumps(result))
    if result.get("exit"):
        sys.exit(result["exit"])


if __name__ == "__main__":
    main()
