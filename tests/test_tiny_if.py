"""The tiny DeepFloyd IF of tiny_if.py loads and runs through diffusers as the real one does.

The IF backend's tests rely on it, so here it is checked on its own: offline loading
with `from_pretrained(folder)`, a deterministic stage I, and stage II upsampling
stage I's output with stage I's text embeddings (the way users run IF: T5 once).
"""

from __future__ import annotations

import socket

import huggingface_hub.constants
import pytest
import torch
from diffusers import DiffusionPipeline, IFPipeline, IFSuperResolutionPipeline
from tiny_if import build_tiny_if

PROMPT = "a rocket ship"


@pytest.fixture(scope="session")
def tiny_if(tmp_path_factory):
    return build_tiny_if(tmp_path_factory.mktemp("tiny_if"))


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """HF_HUB_OFFLINE=1, and no sockets: loading must read the folder only.

    huggingface_hub reads the variable once, at import, so its constant is set too.
    """
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    def refuse(*args, **kwargs):
        raise AssertionError("tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)


# models this small gain nothing from a second thread; every test builds the tiny IF and runs it
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]


def load_stage_1(tiny_if) -> IFPipeline:
    pipe = DiffusionPipeline.from_pretrained(str(tiny_if["stage_1"]))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run_stage_1(pipe: IFPipeline) -> torch.Tensor:
    return pipe(
        PROMPT,
        height=64,
        width=64,
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(45),
        output_type="pt",
        clean_caption=False,
    ).images


def test_layout_is_the_hub_repos(tiny_if):
    stage_1, stage_2 = tiny_if["stage_1"], tiny_if["stage_2"]
    for name in ("model_index.json", "text_encoder", "tokenizer", "unet", "scheduler"):
        assert (stage_1 / name).exists() and (stage_2 / name).exists(), name
    assert (stage_2 / "image_noising_scheduler").is_dir()
    assert '"IFSuperResolutionPipeline"' in (stage_2 / "model_index.json").read_text()


def test_stage_1_loads_as_if(tiny_if):
    pipe = load_stage_1(tiny_if)
    assert isinstance(pipe, IFPipeline)
    assert pipe.unet.config.out_channels == 6
    assert pipe.unet.config.sample_size is None  # as in a hand-made pipeline: callers give the size
    config = pipe.scheduler.config
    assert config.variance_type == "learned_range"
    assert (config.beta_schedule, config.thresholding, config.sample_max_value) == (
        "squaredcos_cap_v2",
        True,
        1.5,
    )
    assert pipe.safety_checker is None and pipe.watermarker is None


def test_tokenizer_acts_like_t5(tiny_if):
    tokenizer = load_stage_1(tiny_if).tokenizer
    ids = tokenizer(PROMPT, padding="max_length", max_length=77).input_ids
    assert len(ids) == 77
    assert ids[:4] == [
        *tokenizer.convert_tokens_to_ids(["a", "rocket", "ship"]),
        tokenizer.eos_token_id,
    ]
    assert set(ids[4:]) == {tokenizer.pad_token_id}
    # Lower-cased, and an unknown word becomes <unk>.
    a = tokenizer.convert_tokens_to_ids("a")
    assert tokenizer("A Zeppelin").input_ids == [a, tokenizer.unk_token_id, tokenizer.eos_token_id]


def test_stage_1_is_deterministic(tiny_if):
    pipe = load_stage_1(tiny_if)
    first, second = run_stage_1(pipe), run_stage_1(pipe)
    assert first.shape == (1, 3, 64, 64)
    assert torch.isfinite(first).all()
    assert torch.equal(first, second)


def test_stage_2_upsamples_stage_1(tiny_if):
    stage_1 = load_stage_1(tiny_if)
    image = run_stage_1(stage_1)
    prompt_embeds, negative_embeds = stage_1.encode_prompt(PROMPT, clean_caption=False)

    stage_2 = IFSuperResolutionPipeline.from_pretrained(str(tiny_if["stage_2"]), text_encoder=None)
    stage_2.set_progress_bar_config(disable=True)
    assert stage_2.text_encoder is None
    assert stage_2.unet.config.class_embed_type == "timestep"
    upsampled = stage_2(
        image=image,
        prompt_embeds=prompt_embeds,
        negative_prompt_embeds=negative_embeds,
        height=256,
        width=256,
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(45),
        output_type="pt",
    ).images
    assert upsampled.shape == (1, 3, 256, 256)
    assert torch.isfinite(upsampled).all()


def test_same_seed_same_weights(tiny_if, tmp_path):
    again = build_tiny_if(tmp_path)
    for stage in ("stage_1", "stage_2"):
        for part in ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
            assert (again[stage] / part).read_bytes() == (tiny_if[stage] / part).read_bytes(), (
                stage,
                part,
            )
