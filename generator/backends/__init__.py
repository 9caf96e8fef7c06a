"""Part A's models behind one interface: `local` (our MNIST model) and `deepfloyd` (DeepFloyd IF).

This module holds only what the CLI needs without torch: the backends'
settings (parameter groups of gen.yaml, set like a section's with `--set
deepfloyd.stage_1=FOLDER`) and the choice that `--backend auto` makes. The
models themselves load in `local.py` and `deepfloyd.py`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field

from ..diffusion.timesteps import strided_timesteps
from ..errors import UsageError
from ..registry import Settings, param_group

BACKENDS = ("local", "deepfloyd")


class ScheduleParams(Settings):
    t_start: int = Field(990, ge=1, le=100000, description="the first of the strided timesteps")
    stride: int = Field(30, ge=1, le=100000, description="the step between strided timesteps")

    def timesteps(self) -> list[int]:
        """t_start, t_start − stride, …, 0: the strided schedule of every Part A sampler."""
        return strided_timesteps(self.t_start, self.stride)


@param_group("local")
class LocalParams(ScheduleParams):
    """Part A on the class-conditioned MNIST model of b2.4 (T = 300): a prompt is a digit, "" unconditional."""

    t_start: int = Field(290, ge=1, le=100000, description="the first of the strided timesteps")
    stride: int = Field(10, ge=1, le=100000, description="the step between strided timesteps")


@param_group("deepfloyd")
class DeepFloydParams(ScheduleParams):
    """DeepFloyd IF through diffusers: model ids (or local folders) and how to fit them in memory."""

    stage_1: str = Field("DeepFloyd/IF-I-XL-v1.0", min_length=1, description="stage I model id or folder")
    stage_2: str = Field("DeepFloyd/IF-II-L-v1.0", min_length=1, description="stage II model id or folder")
    text_encoder: str | None = Field(None, description="T5's model id or folder (null: stage_1's)")
    embeddings_file: str | None = Field(None, description="precomputed prompt embeddings (a torch file)")
    offload: Literal["auto", "none", "model", "sequential"] = Field("auto", description="CPU offload")
    upsample_steps: int = Field(50, ge=1, le=1000, description="stage II's num_inference_steps")

    def identity(self) -> dict:
        """What determines the model's outputs (not how it is fitted into memory)."""
        return self.model_dump(mode="json", exclude={"offload"})


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache that from_pretrained looks in."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def weights_present(model_id: str) -> bool:
    """A folder with a model_index.json or config.json, or a hub id already in the local cache."""
    folder = Path(model_id).expanduser()
    if folder.is_dir():
        return any((folder / name).is_file() for name in ("model_index.json", "config.json"))
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model_id, "model_index.json"), str)
    except Exception:  # not a valid repo id
        return False


def looks_like_path(model_id: str) -> bool:
    """A folder name rather than a hub id ("owner/name")."""
    return model_id.startswith((".", "/", "~")) or model_id.count("/") != 1 or Path(model_id).exists()


def prompts_of(config, section_ids) -> list[str]:
    """Every prompt that the given Part A sections use, and "" (the unconditional prompt)."""
    found = {""}
    for sid in section_ids:
        p = config.params[sid]
        for name in ("prompt", "prompts", "anagrams", "pairs"):
            value = getattr(p, name, None)
            if isinstance(value, str):
                found.add(value)
            elif isinstance(value, list):
                for item in value:
                    found.update(item if isinstance(item, list) else [item])
    return sorted(found)


def preflight(config, section_ids) -> None:
    """Fail before anything runs where DeepFloyd plainly cannot work: no weights offline, a missing folder, a prompt
    missing from the embeddings file."""
    params = config.params["deepfloyd"]
    for what, model_id in (("stage I", params.stage_1), ("stage II", params.stage_2)):
        folder = Path(model_id).expanduser()
        if looks_like_path(model_id) and not folder.is_dir():
            raise UsageError(f"deepfloyd: {what} '{model_id}' is not a folder; fix deepfloyd.stage_1/stage_2 (a hub id or a saved pipeline's folder)")
        if folder.is_dir() or weights_present(model_id):
            continue
        if os.environ.get("HF_HUB_OFFLINE"):
            raise UsageError(
                f"cannot load {what} '{model_id}': HF_HUB_OFFLINE is set and it is not in the Hugging Face cache "
                f"({hf_cache_dir()}); download it once online, or point deepfloyd.* at a local folder"
            )
        # One quick question to the hub now, rather than a download's retries and a traceback later.
        problem = hub_problem(model_id)
        if problem:
            raise UsageError(f"cannot load {what}: {problem}")
    if params.embeddings_file:
        path = Path(params.embeddings_file).expanduser()
        if not path.is_file():
            raise UsageError(f"deepfloyd.embeddings_file '{params.embeddings_file}' not found; give a torch file {{prompt: tensor}} or null")
        import torch

        try:
            table = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise UsageError(f"deepfloyd.embeddings_file '{params.embeddings_file}' is not a torch file of {{prompt: tensor}} ({type(e).__name__})") from None
        missing = [p for p in prompts_of(config, section_ids) if p not in table]
        if missing:
            raise UsageError(
                f"prompt {missing[0]!r} is not in deepfloyd.embeddings_file ({params.embeddings_file}); "
                "add its embedding, or set deepfloyd.embeddings_file=null to encode prompts with T5"
            )


def resolve_backend(choice: str, deepfloyd: DeepFloydParams, cuda: bool) -> tuple[str, str]:
    """The backend `--backend` names, with why; auto takes DeepFloyd only where it can load."""
    if choice in BACKENDS:
        return choice, "chosen with --backend"
    if choice != "auto":
        raise UsageError(f"unknown backend '{choice}'; valid: auto, {', '.join(BACKENDS)}")
    if not cuda:
        return "local", "auto: no CUDA GPU for DeepFloyd IF"
    missing = [m for m in (deepfloyd.stage_1, deepfloyd.stage_2) if not weights_present(m)]
    if not missing:
        return "deepfloyd", "auto: CUDA is present and the weights are cached"
    if os.environ.get("HF_HUB_OFFLINE"):
        return "local", f"auto: {missing[0]} is not in the Hugging Face cache ({hf_cache_dir()}) and HF_HUB_OFFLINE is set"
    problem = hub_problem(missing[0])
    if problem:
        return "local", f"auto: {problem}"
    return "deepfloyd", f"auto: CUDA is present; {missing[0]} will be downloaded from the Hugging Face hub"


def hub_advice(model_id: str, error: Exception) -> str:
    """What an error from the Hugging Face hub means for `model_id`, with the fix, in one line."""
    name, text = type(error).__name__, str(error)
    if name == "GatedRepoError" or "gated" in text.lower() or "401" in text or "403" in text:
        return (f"{model_id} is a gated model: accept its licence on https://huggingface.co/{model_id} "
                "and log in with `hf auth login`, then build again")
    if name == "RepositoryNotFoundError":  # what the hub answers for a gated repo too, to a user who has no token
        return (f"the Hugging Face hub shows no model '{model_id}' to this user: if it is gated, accept its licence on "
                f"https://huggingface.co/{model_id} and log in with `hf auth login`; else check the id")
    return (f"{model_id} is not in the Hugging Face cache ({hf_cache_dir()}) and the hub cannot be reached ({name}); "
            "connect once to download it, or point deepfloyd.* at a local folder")


def hub_problem(model_id: str) -> str | None:
    """Why the hub will not give us `model_id` (gated without a token, unknown, unreachable), or None when it will."""
    from huggingface_hub import auth_check

    try:
        auth_check(model_id)
    except Exception as e:
        return hub_advice(model_id, e)
    return None


DIGITS = tuple(str(d) for d in range(10))


def check_prompts(config, key: str, prompts: list[str]) -> None:
    """Prompts the backend cannot encode fail before anything runs: the local model knows digits and ""."""
    if config.backend == "local":
        for prompt in prompts:
            if prompt != "" and prompt not in DIGITS:
                raise UsageError(
                    f"bad value {key}: the local backend cannot encode the prompt {prompt!r}; "
                    "its prompts are the digits 0-9 and '' (unconditional). Use --backend deepfloyd for text"
                )


def check_schedule(config, key: str, i_start: int | None = None, timesteps: list[int] = ()) -> None:
    """i_start must leave a step to take, and every timestep lie inside the model's schedule."""
    params = config.params[config.backend]
    T = config.params["b2.4"].T if config.backend == "local" else 1000
    if params.t_start >= T:
        raise UsageError(f"bad value {config.backend}.t_start={params.t_start}: the model's schedule has t from 0 to {T - 1}")
    for t in timesteps:
        if not 0 <= t < T:
            raise UsageError(f"bad value {key}: timestep {t} is outside the model's schedule, 0 to {T - 1}")
    if i_start is not None:
        last = len(params.timesteps()) - 2
        if not 0 <= i_start <= last:
            raise UsageError(
                f"bad value {key}={i_start}: i_start must be from 0 to {last} for the {last + 2} strided timesteps "
                f"{params.t_start}, {params.t_start - params.stride}, …, 0 of the {config.backend} backend"
            )
