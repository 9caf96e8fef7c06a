"""The DeepFloyd IF backend loaded: stage I (64×64) and stage II (×4) through diffusers, prompts
through T5.

Loading follows ARCHITECTURE.md: `from_pretrained` on the model ids of
gen.yaml (hub ids or local folders), fp16 on CUDA and fp32 on the CPU. T5-XXL
alone is about 9 GB in fp16, so it never sits beside the UNets: every prompt a
build needs is encoded first, the embeddings are kept in the store (keyed by
prompt and encoder), and T5 is freed before stage I loads. A precomputed
embeddings file (as the course hands out) skips T5 altogether.

Our samplers call `stage_1.unet` directly (`IFDenoiser`): its 6 output channels
are the noise estimate and the raw learned-range variance v. a0 alone runs
diffusers' own `IFPipeline` and every final image is upsampled by stage II's
`IFSuperResolutionPipeline`.
"""

from __future__ import annotations

import gc
import hashlib
import os
from pathlib import Path

import torch
from diffusers import IFPipeline, IFSuperResolutionPipeline
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, T5EncoderModel

from ..errors import UsageError
from .base import Backend
from .deepfloyd import DeepFloydSettings, hub_advice, looks_like_path, read_embeddings

# IF's pipelines without their safety checker and watermarker: the outputs stay the model's own.
NO_CHECKER = dict(
    safety_checker=None, feature_extractor=None, watermarker=None, requires_safety_checker=False
)
UPSAMPLE_GUIDANCE = 4.0  # IFSuperResolutionPipeline's default guidance scale
UPSAMPLE_FACTOR = 4  # stage II: 64×64 → 256×256


# ---------------------------------------------------------------- loading, with one clear line when
# it fails


def load_error(
    model_id: str, what: str, error: Exception, subfolder: str | None = None
) -> UsageError:
    """The one line a user sees when a model cannot be loaded, with the fix."""
    name = type(error).__name__
    text = str(error)
    folder = Path(model_id).expanduser()
    if folder.is_dir() and subfolder and not (folder / subfolder).is_dir():
        # A stage saved without T5 (text_encoder=None): T5 must come from elsewhere.
        return UsageError(
            f"the folder '{model_id}' has no {subfolder}/ for {what}; set deepfloyd.text_encoder "
            "to a folder or id that has one, or give deepfloyd.embeddings_file"
        )
    if folder.is_dir():
        return UsageError(
            f"cannot load {what} from the folder '{model_id}' ({name}: "
            f"{text.splitlines()[0] if text else ''}); "
            "it must hold a pipeline saved with save_pretrained"
        )
    if looks_like_path(model_id):
        return UsageError(
            f"{what} '{model_id}' is neither a folder nor a Hugging Face model id; fix deepfloyd.* "
            "in gen.yaml or --set"
        )
    return UsageError(f"cannot load {what}: {hub_advice(model_id, error)}")


def _from_pretrained(cls, model_id: str, what: str, device: str, **kwargs):
    """cls.from_pretrained in the device's dtype: on CUDA the fp16 variant (or, where a folder
    has none, its own weights)."""
    weights = hasattr(
        cls, "dtype"
    )  # models and pipelines; a tokenizer has no dtype and no fp16 files
    if weights:
        kwargs["dtype"] = torch.float16 if device == "cuda" else torch.float32
    attempts = [{"variant": "fp16"}, {}] if device == "cuda" and weights else [{}]
    for k, extra in enumerate(attempts):
        try:
            return cls.from_pretrained(model_id, **kwargs, **extra)
        except (OSError, ValueError) as e:  # no fp16 files: try the plain weights once
            if k + 1 < len(attempts) and "variant" in str(e).lower():
                continue
            raise load_error(model_id, what, e, kwargs.get("subfolder")) from None
        except Exception as e:  # hub errors (gated, offline) are not all OSErrors
            raise load_error(model_id, what, e, kwargs.get("subfolder")) from None


# ---------------------------------------------------------------- prompt embeddings


def _encoder_id(params: DeepFloydSettings) -> str:
    return params.text_encoder or params.stage_1


def encode_prompts(
    prompts: list[str], params: DeepFloydSettings, store_root: Path, device: str
) -> dict[str, torch.Tensor]:
    """{prompt: (1, 77, D) embedding} for every prompt, from the store, the embeddings file, or
    T5 (loaded, used, freed)."""
    if params.embeddings_file:
        table = read_embeddings(
            params.embeddings_file
        )  # preflight has checked that it holds every prompt
        return {p: table[p].reshape(1, *table[p].shape[-2:]).float() for p in prompts}

    encoder = _encoder_id(params)
    dtype = "float16" if device == "cuda" else "float32"
    folder = (
        store_root / "embeddings" / hashlib.sha256(f"{encoder}\n{dtype}".encode()).hexdigest()[:16]
    )
    path_of = {
        p: folder / (hashlib.sha256(p.encode()).hexdigest() + ".safetensors") for p in prompts
    }
    todo = [p for p in prompts if not path_of[p].is_file()]
    if todo:
        for prompt, embedding in _run_t5(todo, encoder, device).items():
            folder.mkdir(parents=True, exist_ok=True)
            tmp = path_of[prompt].with_suffix(".tmp")
            save_file(
                {"embedding": embedding.contiguous()},
                str(tmp),
                metadata={"prompt": prompt, "encoder": encoder},
            )
            tmp.replace(path_of[prompt])
    return {p: load_file(str(path_of[p]))["embedding"].float() for p in prompts}


def _run_t5(prompts: list[str], encoder: str, device: str) -> dict[str, torch.Tensor]:
    """T5 through IFPipeline.encode_prompt (the pipeline's own tokenising), then T5 is freed."""
    tokenizer = _from_pretrained(
        AutoTokenizer, encoder, "the T5 tokenizer", "cpu", subfolder="tokenizer"
    )
    text_encoder = _from_pretrained(
        T5EncoderModel, encoder, "the T5 text encoder", device, subfolder="text_encoder"
    )
    text_encoder.to(device)
    pipe = IFPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, unet=None, scheduler=None, **NO_CHECKER
    )
    out = {}
    with torch.no_grad():
        for prompt in prompts:
            embedding, _ = pipe.encode_prompt(
                prompt, do_classifier_free_guidance=False, device=device, clean_caption=False
            )
            out[prompt] = embedding.float().cpu()  # (1, 77, D)
    del pipe, text_encoder
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return out


# ---------------------------------------------------------------- memory


def choose_offload(params: DeepFloydSettings, device: str) -> tuple[str, str]:
    """none, model or sequential CPU offload, and why; auto decides from the free GPU memory."""
    if device != "cuda":
        return "none", "on the CPU"
    if params.offload != "auto":
        return params.offload, "chosen with deepfloyd.offload"
    free, total = torch.cuda.mem_get_info()
    # A process held to a share of the GPU (torch.cuda.set_per_process_memory_fraction) can use
    # no more than that share, however much the card has free.
    share = torch.cuda.get_per_process_memory_fraction()
    gib = min(free, share * total - torch.cuda.memory_reserved()) / 2**30
    # fp16: stage I XL ≈ 8.6 GB, stage II L ≈ 2.5 GB, plus activations.
    if gib >= 20:
        return "none", f"auto: {gib:.0f} GiB free on the GPU holds both stages"
    if gib >= 10:
        return "model", f"auto: {gib:.0f} GiB free; each stage moves to the GPU while it runs"
    return (
        "sequential",
        f"auto: only {gib:.0f} GiB free; layers move to the GPU one at a time (slow)",
    )


def _place(pipe, mode: str, device: str) -> None:
    if mode == "model":
        pipe.enable_model_cpu_offload()
    elif mode == "sequential":
        pipe.enable_sequential_cpu_offload()
    else:
        pipe.to(device)


# ---------------------------------------------------------------- the denoiser and the backend


class IFDenoiser:
    """ε̂ and the raw variance v of IF's stage I UNet (6 output channels), for our samplers."""

    def __init__(
        self, unet, alphas_cumprod: torch.Tensor, embeddings: dict[str, torch.Tensor], device: str
    ):
        self.unet = unet
        self.alphas_cumprod = alphas_cumprod  # (1000,) float32: the loaded scheduler's own
        self.variance_type = "learned_range"  # IF predicts its own: v, between β̃ and β
        self.embeddings = embeddings
        self.device = device
        self.dtype = unet.dtype

    def encode(self, prompts: list[str]) -> torch.Tensor:
        """(B, 77, D) T5 embeddings, computed when the backend opened (every prompt of the
        build)."""
        missing = [p for p in prompts if p not in self.embeddings]
        if missing:
            raise ValueError(f"prompt {missing[0]!r} was not encoded when the backend opened")
        return torch.cat([self.embeddings[p] for p in prompts])

    @torch.no_grad()
    def __call__(
        self, x_t: torch.Tensor, t: int, cond: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.unet(
            x_t.to(self.device, self.dtype),
            torch.tensor(t, device=self.device),
            encoder_hidden_states=cond.to(self.device, self.dtype),
            return_dict=False,
        )[0]  # (B, 6, H, W)
        eps, v = out.float().split(x_t.shape[1], dim=1)  # noise, and v in [−1, 1] (learned range)
        return eps, v


class DeepFloydBackend(Backend):
    def __init__(
        self, spec, params: DeepFloydSettings, prompts: list[str], store_root: Path, device: str
    ):
        embeddings = encode_prompts(prompts, params, store_root, device)  # T5 comes and goes first
        self.stage_1 = _from_pretrained(
            IFPipeline,
            params.stage_1,
            "stage I",
            device,
            text_encoder=None,
            tokenizer=None,
            **NO_CHECKER,
        )
        self.stage_2 = _from_pretrained(
            IFSuperResolutionPipeline,
            params.stage_2,
            "stage II",
            device,
            text_encoder=None,
            tokenizer=None,
            **NO_CHECKER,
        )
        self.offload, offload_reason = choose_offload(params, device)
        for pipe in (self.stage_1, self.stage_2):
            _place(pipe, self.offload, device)
            pipe.set_progress_bar_config(disable=bool(os.environ.get("TQDM_DISABLE")), leave=False)
        self.spec = spec
        self.denoiser = IFDenoiser(
            self.stage_1.unet,
            self.stage_1.scheduler.alphas_cumprod.float().cpu(),
            embeddings,
            device,
        )
        self.timesteps = params.timesteps()
        self.device = device
        self.upsample_steps = params.upsample_steps
        self.upsampler = self.upsample
        _, height, width = spec.shape
        self.upsampled_by = (
            f"upsampled to {height * UPSAMPLE_FACTOR}×{width * UPSAMPLE_FACTOR} by stage II"
        )
        dtype = str(self.denoiser.dtype).removeprefix("torch.")
        self.describe = {
            "name": spec.name,
            "model_id": f"{params.stage_1} (stage I) + {params.stage_2} (stage II), {dtype}",
            "stage_1": params.stage_1,
            "stage_2": params.stage_2,
            "text_encoder": params.embeddings_file or _encoder_id(params),
            "offload": self.offload,
            "offload_reason": offload_reason,
            "notes": [f"CPU offload: {self.offload} ({offload_reason})"],
            "text_to_image": "diffusers' `IFPipeline`, then stage II",
            "variance_type": self.denoiser.variance_type,
        }

    def _embeds(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        cond = self.denoiser.encode(prompts)
        return cond.to(self.device, self.denoiser.dtype), self.denoiser.encode(
            [""] * len(prompts)
        ).to(self.device, self.denoiser.dtype)

    def text_to_image(
        self,
        prompts: list[str],
        num_inference_steps: int,
        guidance: float,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """diffusers' own IFPipeline (its scheduler, thresholding and all): the reference our
        samplers are checked against."""
        cond, uncond = self._embeds(prompts)
        _, height, width = self.shape  # explicit: a saved UNet need not state its sample_size
        out = self.stage_1(
            height=height,
            width=width,
            prompt_embeds=cond,
            negative_prompt_embeds=uncond,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance,
            generator=generator,
            output_type="pt",
        ).images  # (B, 3, 64, 64) in [−1, 1]
        return out.float()

    def upsample(
        self, x: torch.Tensor, prompts: list[str], generator: torch.Generator
    ) -> torch.Tensor:
        """Stage II: 64×64 → 256×256 with the same prompts; returns pixels in [0, 1]."""
        cond, uncond = self._embeds(prompts)
        out = self.stage_2(
            image=x.to(self.device, self.denoiser.dtype),
            height=x.shape[-2] * UPSAMPLE_FACTOR,
            width=x.shape[-1] * UPSAMPLE_FACTOR,
            prompt_embeds=cond,
            negative_prompt_embeds=uncond,
            num_inference_steps=self.upsample_steps,
            guidance_scale=UPSAMPLE_GUIDANCE,
            generator=generator,
            output_type="pt",
        ).images
        return self.to_pixels(out)
