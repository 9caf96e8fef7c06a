"""A tiny DeepFloyd IF with random weights, saved like the real hub repositories.

Tests of the IF backend must load IF exactly as users do
(`DiffusionPipeline.from_pretrained(folder)`), but the real models are gated and
weigh tens of gigabytes. `build_tiny_if` writes two folders in the layout of
`DeepFloyd/IF-I-XL-v1.0` (stage I) and `DeepFloyd/IF-II-L-v1.0` (stage II):
the same pipeline classes, block types and scheduler settings, only tiny.
It needs no network: the tokenizer is made in memory.

Run `python tests/tiny_if.py FOLDER` to build one by hand.
"""

from __future__ import annotations

import pathlib
import sys

import torch
from diffusers import DDPMScheduler, IFPipeline, IFSuperResolutionPipeline, UNet2DConditionModel
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

from generator.bench import TINY_T5_DIM, if_scheduler, unet_config

# The prompts the project and diffusers' IF examples use; every word is in the vocabulary.
PROMPTS = (
    "an oil painting of a snowy mountain village",
    "a man wearing a hat",
    "a rocket ship",
    "a high quality photo",
    "an oil painting of an old man",
    "an oil painting of people around a campfire",
    "a lithograph of a skull",
    "a lithograph of waterfalls",
    "a photo of a dog",
    "a photo of the amalfi cost",
    "a photo of a hipster barista",
    "a pencil",
    "a photo of a man",
    "a photo of a woman",
)
COMMON_WORDS = (
    "the",
    "and",
    "with",
    "in",
    "on",
    "at",
    "to",
    "by",
    "is",
    "picture",
    "image",
    "style",
    ",",
    ".",
)
# T5's special tokens, with T5's ids (pad 0, eos 1, unk 2).
SPECIALS = ("<pad>", "</s>", "<unk>")

T5_DIM = TINY_T5_DIM  # d_model of the tiny T5: the UNets' encoder_hid_dim


def make_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer that acts like IF's T5 tokenizer: lower-cases, appends </s>, pads
    with <pad>."""
    words = sorted({word for prompt in PROMPTS for word in prompt.split()} | set(COMMON_WORDS))
    vocab = {token: i for i, token in enumerate((*SPECIALS, *words))}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", vocab["</s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=77,
    )


def make_text_encoder(vocab_size: int) -> T5EncoderModel:
    """A two-layer T5 encoder (gated-gelu like T5 v1.1, which IF uses)."""
    config = T5Config(
        vocab_size=vocab_size,
        d_model=T5_DIM,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        feed_forward_proj="gated-gelu",
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    return T5EncoderModel(config).eval()


def make_unet(resnet_levels: int, **stage) -> UNet2DConditionModel:
    """`gen bench`'s tiny UNet of IF's design, with `resnet_levels` plain levels of 16 channels and
    one
    cross-attention level of 32 last, so that attention runs on 32x32 (stage I: 64 / 2, stage II:
    256 / 8)
    and stays cheap on a CPU.
    No sample_size, as in a pipeline put together by hand: the backend must state the image sizes
    itself.
    """
    config = {
        k: v for k, v in unet_config("tiny").items() if k not in ("sample_size", "in_channels")
    }
    config.update(
        block_out_channels=(16,) * resnet_levels + (32,),
        down_block_types=("ResnetDownsampleBlock2D",) * resnet_levels
        + ("SimpleCrossAttnDownBlock2D",),
        up_block_types=("SimpleCrossAttnUpBlock2D",) + ("ResnetUpsampleBlock2D",) * resnet_levels,
        **stage,
    )
    return UNet2DConditionModel(**config)


def build_tiny_if(folder: pathlib.Path, seed: int = 0) -> dict[str, pathlib.Path]:
    """Save a tiny stage I and stage II under `folder`; the same seed gives the same weights."""
    folder = pathlib.Path(folder)
    with torch.random.fork_rng(devices=[]):  # seeds here, leaves the caller's random state alone
        torch.manual_seed(seed)
        return _build(folder)


def _build(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    tokenizer = make_tokenizer()
    text_encoder = make_text_encoder(len(tokenizer))
    # The hub repos also hold a safety checker and a watermarker; the tests do without (as users
    # may).
    unsafe = {
        "safety_checker": None,
        "feature_extractor": None,
        "watermarker": None,
        "requires_safety_checker": False,
    }

    stage_1 = IFPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        unet=make_unet(resnet_levels=1, in_channels=3),
        scheduler=if_scheduler(sample_max_value=1.5),
        **unsafe,
    )
    # Stage II sees the noisy image and the upscaled stage-I image (3 + 3 channels) and
    # gets the noise level of the latter as a timestep-embedded class label.
    stage_2 = IFSuperResolutionPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        unet=make_unet(resnet_levels=3, in_channels=6, class_embed_type="timestep"),
        scheduler=if_scheduler(sample_max_value=1.0),
        image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        **unsafe,
    )
    paths = {"stage_1": folder / "stage_1", "stage_2": folder / "stage_2"}
    stage_1.save_pretrained(paths["stage_1"])
    stage_2.save_pretrained(paths["stage_2"])
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/tiny_if.py FOLDER")
    for path in build_tiny_if(pathlib.Path(sys.argv[1])).values():
        print(path)
