"""The DeepFloyd IF backend as the parameters see it: its settings, and whether its weights can load
(no torch).

The model loads in deepfloyd_model.py. Here: the model ids (hub ids or local
folders) and memory settings of gen.yaml, the choice `--backend auto` makes,
and the checks that run before anything is built, so that weights that cannot
be had stop a build with one line rather than a download's retries.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal

from pydantic import Field

from ..errors import UsageError
from .base import BackendSettings, BackendSpec

IF_TIMESTEPS = 1000  # stage I's DDPMScheduler (num_train_timesteps)


class DeepFloydSettings(BackendSettings):
    """DeepFloyd IF through diffusers: model ids (or local folders) and how to fit them in
    memory."""

    stage_1: str = Field(min_length=1, description="stage I model id or folder")
    stage_2: str = Field(min_length=1, description="stage II model id or folder")
    text_encoder: str | None = Field(description="T5's model id or folder (null: stage_1's)")
    embeddings_file: str | None = Field(description="precomputed prompt embeddings (a torch file)")
    offload: Literal["auto", "none", "model", "sequential"] = Field(description="CPU offload")
    upsample_steps: int = Field(ge=1, le=1000, description="stage II's num_inference_steps")

    def identity(self) -> dict:
        """What determines the model's outputs (not how it is fitted into memory), the embeddings
        file's content too."""
        found = self.model_dump(mode="json", exclude={"offload"})
        file = Path(self.embeddings_file).expanduser() if self.embeddings_file else None
        if file is not None and file.is_file():
            found["embeddings_sha256"] = hashlib.sha256(file.read_bytes()).hexdigest()
        return found


class DeepFloydSpec(BackendSpec):
    name = "deepfloyd"
    settings = DeepFloydSettings
    shape = (3, 64, 64)
    value_range = (-1.0, 1.0)

    def num_timesteps(self, config) -> int:
        return IF_TIMESTEPS

    def available(self, settings: DeepFloydSettings, cuda: bool) -> tuple[bool, str]:
        if not cuda:
            return False, "no CUDA GPU for DeepFloyd IF"
        missing = [m for m in (settings.stage_1, settings.stage_2) if not weights_present(m)]
        if not missing:
            return True, "CUDA is present and the weights are cached"
        if os.environ.get("HF_HUB_OFFLINE"):
            return (
                False,
                f"{missing[0]} is not in the Hugging Face cache ({hf_cache_dir()}) and "
                "HF_HUB_OFFLINE is set",
            )
        problem = hub_problem(missing[0])
        if problem:
            return False, problem
        return True, f"CUDA is present; {missing[0]} will be downloaded from the Hugging Face hub"

    def preflight(self, config, section_ids: list[str], prompts: list[str]) -> None:
        """No weights offline, a missing folder, a prompt missing from the embeddings file: one
        line, before anything runs."""
        settings = config.params[self.name]
        for what, model_id in (("stage I", settings.stage_1), ("stage II", settings.stage_2)):
            folder = Path(model_id).expanduser()
            if looks_like_path(model_id) and not folder.is_dir():
                raise UsageError(
                    f"deepfloyd: {what} '{model_id}' is not a folder; fix "
                    "deepfloyd.stage_1/stage_2 (a hub id or a saved pipeline's folder)"
                )
            if folder.is_dir() or weights_present(model_id):
                continue
            if os.environ.get("HF_HUB_OFFLINE"):
                raise UsageError(
                    f"cannot load {what} '{model_id}': HF_HUB_OFFLINE is set and it is not in the "
                    "Hugging Face cache "
                    f"({hf_cache_dir()}); download it once online, or point deepfloyd.* at a local "
                    "folder"
                )
            problem = hub_problem(
                model_id
            )  # one quick question now, rather than a download's retries later
            if problem:
                raise UsageError(f"cannot load {what}: {problem}")
        if settings.embeddings_file:
            missing = [p for p in prompts if p not in read_embeddings(settings.embeddings_file)]
            if missing:
                raise UsageError(
                    f"prompt {missing[0]!r} is not in deepfloyd.embeddings_file "
                    f"({settings.embeddings_file}); "
                    "add its embedding, or set deepfloyd.embeddings_file=null to encode prompts "
                    "with T5"
                )

    def load(
        self, settings: DeepFloydSettings, needs: dict, prompts: list[str], cache: Path, device: str
    ):
        from .deepfloyd_model import DeepFloydBackend

        return DeepFloydBackend(self, settings, prompts, cache, device)


DEEPFLOYD = DeepFloydSpec()


# ---------------------------------------------------------------- the embeddings file


def read_embeddings(path: str) -> dict:
    """{prompt: tensor} from a torch file, read without unpickling code; one line when it is not
    that."""
    import torch

    file = Path(path).expanduser()
    if not file.is_file():
        raise UsageError(
            f"deepfloyd.embeddings_file '{path}' not found; give a torch file {{prompt: tensor}} "
            "or null"
        )
    try:
        table = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UsageError(
            f"deepfloyd.embeddings_file '{path}' is not a torch file of {{prompt: tensor}} "
            f"({type(e).__name__})"
        ) from None
    if not isinstance(table, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in table.items()
    ):
        what = "dict" if isinstance(table, dict) else type(table).__name__
        raise UsageError(
            f"deepfloyd.embeddings_file '{path}' holds a {what}, not a {{prompt: tensor}} dict"
        )
    return table


# ---------------------------------------------------------------- the Hugging Face hub


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
    return (
        model_id.startswith((".", "/", "~")) or model_id.count("/") != 1 or Path(model_id).exists()
    )


def hub_advice(model_id: str, error: Exception) -> str:
    """What an error from the Hugging Face hub means for `model_id`, with the fix, in one line."""
    name, text = type(error).__name__, str(error)
    if name == "GatedRepoError" or "gated" in text.lower() or "401" in text or "403" in text:
        return (
            f"{model_id} is a gated model: accept its licence on https://huggingface.co/{model_id} "
            "and log in with `hf auth login`, then build again"
        )
    if (
        name == "RepositoryNotFoundError"
    ):  # what the hub answers for a gated repo too, to a user who has no token
        return (
            f"the Hugging Face hub shows no model '{model_id}' to this user: if it is gated, "
            "accept its licence on "
            f"https://huggingface.co/{model_id} and log in with `hf auth login`; else check the id"
        )
    return (
        f"{model_id} is not in the Hugging Face cache ({hf_cache_dir()}) and the hub cannot be "
        f"reached ({name}); "
        "connect once to download it, or point deepfloyd.* at a local folder"
    )


def hub_problem(model_id: str) -> str | None:
    """Why the hub will not give us `model_id` (gated without a token, unknown, unreachable), or
    None when it will."""
    from huggingface_hub import auth_check

    try:
        auth_check(model_id)
    except Exception as e:
        return hub_advice(model_id, e)
    return None
