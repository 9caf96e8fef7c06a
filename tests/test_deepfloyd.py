"""The DeepFloyd IF backend end to end, on a tiny IF with random weights loaded through the
users' code path."""

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import copy_project, gen, ran, tree_digest
from safetensors import safe_open
from tiny_if import build_tiny_if

from generator.chapters import all_sections

PART_A = [sid for sid in all_sections() if sid.startswith("a")]

HALF_LEVEL = 0.5 / 255 + 1e-5  # samples.npz rounds each pixel to k/255


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return build_tiny_if(tmp_path_factory.mktemp("tiny_if"))


def _sets(tiny):
    return (
        "--set",
        f"deepfloyd.stage_1={tiny['stage_1']}",
        "--set",
        f"deepfloyd.stage_2={tiny['stage_2']}",
    )


@pytest.fixture(scope="session")
def if_project(tmp_path_factory, tiny):
    """`gen build a --backend deepfloyd --device cpu --profile smoke` with the tiny IF, as the
    issue's check runs it."""
    project = copy_project(tmp_path_factory.mktemp("if") / "project")
    gen(
        project,
        "build",
        "a",
        "--backend",
        "deepfloyd",
        "--device",
        "cpu",
        "--profile",
        "smoke",
        *_sets(tiny),
    )
    return project


def _record(project, sid):
    return json.loads((project / f"docs/assets/{sid}/record.json").read_text())


@pytest.mark.slow
def test_every_part_a_section_builds_and_renders_on_deepfloyd(if_project, tiny):
    page = (if_project / "docs/part-a.md").read_text()
    assert "Not built yet" not in page
    assert page.count("Made on the **deepfloyd** backend") == len(PART_A)
    assert "CPU offload: none (on the CPU)" in page  # the memory mode is stated on the page
    for sid in PART_A:
        record = _record(if_project, sid)
        assert record["backend"]["name"] == "deepfloyd"
        assert record["backend"]["stage_1"] == str(tiny["stage_1"])
        assert record["backend"]["offload"] == "none"
        assert "b2.4" not in record["needs"]  # DeepFloyd needs no MNIST model
    for sid in ("a0", "a1.5", "a1.6", "a1.7", "a1.7.2", "a1.8", "a1.9"):
        images = np.load(if_project / f"docs/assets/{sid}/samples.npz")["images"]
        assert images.shape[1:] == (3, 64, 64) and images.dtype == np.float32, sid
        assert (if_project / f"docs/assets/{sid}/upsampled.webp").is_file(), sid
    anagrams = np.load(if_project / "docs/assets/a1.8/samples.npz")
    assert str(anagrams["view"]) == "flip"
    assert list(anagrams["prompts_view2"])[0] == "an oil painting of people around a campfire"


@pytest.mark.slow
def test_inpainting_on_deepfloyd_keeps_the_original_outside_the_mask(if_project):
    samples = np.load(if_project / "docs/assets/a1.7.2/samples.npz")
    outside = np.broadcast_to(samples["masks"] == 0, samples["images"].shape)
    # samples.npz keeps 8 bits a pixel: the original, to the nearest level
    assert np.abs(samples["images"][outside] - samples["originals"][outside]).max() < HALF_LEVEL


@pytest.mark.slow
def test_a0_is_diffusers_ifpipeline_for_the_same_seed(if_project, tiny):
    from diffusers import DiffusionPipeline

    params = _record(if_project, "a0")["params"]
    pipe = DiffusionPipeline.from_pretrained(
        str(tiny["stage_1"]),
        safety_checker=None,
        feature_extractor=None,
        watermarker=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    expected = pipe(
        params["prompts"],
        height=64,
        width=64,
        num_inference_steps=params["steps"][0],
        guidance_scale=params["guidance"],
        generator=torch.Generator().manual_seed(params["seed"]),
        output_type="pt",
        clean_caption=False,
    ).images
    ours = np.load(if_project / "docs/assets/a0/samples.npz")["images"][: len(params["prompts"])]
    # ours are at 8 bits a pixel (samples.npz): the pipeline's to the nearest level
    np.testing.assert_allclose(ours, ((expected + 1) / 2).clamp(0, 1).numpy(), atol=HALF_LEVEL)


@pytest.mark.slow
def test_our_learned_variance_step_is_ddpmscheduler_step_on_the_tiny_unet(tiny):
    from diffusers import DDPMScheduler, IFPipeline

    from generator.backends.deepfloyd_model import IFDenoiser
    from generator.diffusion.samplers import denoise_step

    pipe = IFPipeline.from_pretrained(
        str(tiny["stage_1"]),
        text_encoder=None,
        safety_checker=None,
        feature_extractor=None,
        watermarker=None,
        requires_safety_checker=False,
    )
    scheduler = DDPMScheduler.from_config(
        pipe.scheduler.config, thresholding=False, clip_sample=False
    )
    timesteps = list(range(990, -1, -30))
    scheduler.set_timesteps(timesteps=timesteps)
    cond = torch.randn(2, 77, 32, generator=torch.Generator().manual_seed(1))
    denoiser = IFDenoiser(pipe.unet, scheduler.alphas_cumprod.float(), {}, "cpu")
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    abar = scheduler.alphas_cumprod.float()
    for t, t_prev in ((990, 960), (510, 480), (30, 0)):
        eps, v = denoiser(x, t, cond)
        with torch.no_grad():
            output = pipe.unet(x, t, encoder_hidden_states=cond).sample
        expected = scheduler.step(
            output, t, x, generator=torch.Generator().manual_seed(t)
        ).prev_sample
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(t))
        ours, _ = denoise_step(x, eps, v, abar[t], abar[t_prev], noise, denoiser.variance_type)
        torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_prompt_embeddings_are_computed_once_and_kept_in_the_store(if_project, tiny):
    folders = list((if_project / ".gen/embeddings").iterdir())
    assert len(folders) == 1  # one encoder
    stored = {
        safe_open(str(p), "pt").metadata()["prompt"] for p in folders[0].glob("*.safetensors")
    }
    wanted = {""}  # the unconditional embedding, and every prompt in the records' parameters
    for sid in PART_A:
        params = _record(if_project, sid)["params"]
        for key in ("prompt", "prompts", "anagrams", "pairs"):
            value = params.get(key, [])
            wanted |= {value} if isinstance(value, str) else set(np.ravel(value))
    assert stored == wanted
    before = tree_digest(if_project / ".gen/embeddings")
    result = gen(
        if_project,
        "build",
        "a1.5",
        "--backend",
        "deepfloyd",
        "--device",
        "cpu",
        "--profile",
        "smoke",
        "--force",
        *_sets(tiny),
    )
    assert ran(result) == ["a1.5"]
    assert tree_digest(if_project / ".gen/embeddings") == before


@pytest.mark.slow
def test_an_embeddings_file_replaces_t5_and_a_missing_prompt_is_one_line(
    if_project, tiny, tmp_path
):
    table = {p: torch.randn(1, 77, 32) for p in ["", "a high quality photo"]}
    path = tmp_path / "embeddings.pt"
    torch.save(table, path)
    args = [
        "build",
        "a1.5",
        "--backend",
        "deepfloyd",
        "--device",
        "cpu",
        "--profile",
        "smoke",
        *_sets(tiny),
    ]
    result = gen(if_project, *args, "--set", f"deepfloyd.embeddings_file={path}")
    assert ran(result) == ["a1.5"]
    assert _record(if_project, "a1.5")["backend"]["text_encoder"] == str(path)
    before = tree_digest(if_project / "docs", if_project / ".gen")
    result = gen(
        if_project,
        *args.__add__(
            ["--set", f"deepfloyd.embeddings_file={path}", "--set", "a1.5.prompt=a photo of a dog"]
        ),
        check=False,
    )
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "'a photo of a dog' is not in deepfloyd.embeddings_file" in result.stderr
    assert tree_digest(if_project / "docs", if_project / ".gen") == before


@pytest.mark.slow
def test_a_stage_1_saved_without_t5_takes_t5_from_deepfloyd_text_encoder(
    if_project, tiny, tmp_path
):
    bare = tmp_path / "stage_1"
    shutil.copytree(tiny["stage_1"], bare)
    shutil.rmtree(bare / "text_encoder")
    shutil.rmtree(bare / "tokenizer")
    args = [
        "build",
        "a1.5",
        "--backend",
        "deepfloyd",
        "--device",
        "cpu",
        "--profile",
        "smoke",
        "--force",
    ]
    args += ["--set", f"deepfloyd.stage_1={bare}", "--set", f"deepfloyd.stage_2={tiny['stage_2']}"]
    before = tree_digest(if_project / "docs")
    result = gen(if_project, *args, check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert (
        f"'{bare}' has no tokenizer/" in result.stderr and "deepfloyd.text_encoder" in result.stderr
    )
    assert tree_digest(if_project / "docs") == before
    result = gen(if_project, *args, "--set", f"deepfloyd.text_encoder={tiny['stage_1']}")
    assert ran(result) == ["a1.5"]
    assert _record(if_project, "a1.5")["backend"]["text_encoder"] == str(tiny["stage_1"])


def test_weights_that_cannot_load_are_one_line_with_the_fix(tmp_path):
    project = copy_project(tmp_path / "p")
    args = ["build", "a1.5", "--backend", "deepfloyd", "--device", "cpu", "--profile", "smoke"]
    # Offline (HF_HUB_OFFLINE=1 in the tests) and not cached: the model id and the cache folder.
    result = gen(project, *args, check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "DeepFloyd/IF-I-XL-v1.0" in result.stderr and "Hugging Face cache" in result.stderr
    # A folder that is not there.
    result = gen(project, *args, "--set", f"deepfloyd.stage_1={tmp_path / 'nowhere'}", check=False)
    assert result.returncode == 2 and "is not a folder" in result.stderr
    assert not (project / "docs/assets/a1.5").exists()


def test_a_gated_model_tells_the_user_to_accept_the_licence_and_log_in():
    from huggingface_hub.errors import GatedRepoError

    from generator.backends.deepfloyd_model import load_error

    # What the hub raises for a user without a token (built without an HTTP response, which needs a
    # network).
    error = GatedRepoError.__new__(GatedRepoError)
    Exception.__init__(
        error,
        "401 Client Error. Cannot access gated repo for url "
        "https://huggingface.co/DeepFloyd/IF-I-XL-v1.0",
    )
    message = str(load_error("DeepFloyd/IF-I-XL-v1.0", "stage I", error))
    assert "accept its licence on https://huggingface.co/DeepFloyd/IF-I-XL-v1.0" in message
    assert "hf auth login" in message


@pytest.mark.slow
def test_for_cuda_the_fp16_variant_is_loaded_where_a_folder_has_one_else_its_own_weights(
    tiny, tmp_path
):
    from diffusers import IFPipeline

    from generator.backends.deepfloyd_model import NO_CHECKER, _from_pretrained

    def load(folder, device):
        return _from_pretrained(
            IFPipeline,
            str(folder),
            "stage I",
            device,
            text_encoder=None,
            tokenizer=None,
            **NO_CHECKER,
        )

    plain = load(tiny["stage_1"], "cpu")
    assert plain.unet.dtype == torch.float32
    # No fp16 files in the folder: the CUDA path falls back to its own weights, in fp16.
    half = load(tiny["stage_1"], "cuda")
    assert half.unet.dtype == torch.float16
    torch.testing.assert_close(
        half.unet.conv_in.weight.float(), plain.unet.conv_in.weight, atol=1e-3, rtol=1e-3
    )
    # A folder with both: the CUDA path takes the fp16 files (made different here so that it shows).
    both = tmp_path / "stage_1"
    shutil.copytree(tiny["stage_1"], both)
    variant = load(tiny["stage_1"], "cpu")
    with torch.no_grad():
        variant.unet.conv_in.weight.mul_(-1)
    variant.to(torch.float16).save_pretrained(both, variant="fp16")
    loaded = load(both, "cuda")
    assert loaded.unet.dtype == torch.float16
    torch.testing.assert_close(
        loaded.unet.conv_in.weight.float(), -plain.unet.conv_in.weight, atol=1e-3, rtol=1e-3
    )


@pytest.mark.parametrize(
    ("offload", "free_gib", "share", "mode"),
    [
        ("auto", 70, 1.0, "none"),
        ("auto", 14, 1.0, "model"),
        ("auto", 6, 1.0, "sequential"),
        ("sequential", 70, 1.0, "sequential"),
        ("auto", 70, 0.2, "model"),  # held to 16 of the card's 80 GiB
    ],
)
def test_the_offload_mode_follows_the_free_gpu_memory_or_the_setting(
    monkeypatch, tmp_path, offload, free_gib, share, mode
):
    from generator.backends.deepfloyd_model import choose_offload
    from generator.config import load

    settings = load(copy_project(tmp_path / "p"), "full", (f"deepfloyd.offload={offload}",)).params[
        "deepfloyd"
    ]
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (free_gib * 2**30, 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", lambda: share)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda: 0)
    chosen, why = choose_offload(settings, "cuda")
    assert chosen == mode
    usable = round(min(free_gib, share * 80))
    assert (f"{usable} GiB" in why) == (offload == "auto")
    assert choose_offload(settings, "cpu") == ("none", "on the CPU")


def _hub_error(name: str, message: str) -> Exception:
    """An error of huggingface_hub's class `name`, as auth_check raises it (built without an HTTP
    response)."""
    import huggingface_hub.errors

    cls = getattr(huggingface_hub.errors, name, None) or type(name, (Exception,), {})
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    return error


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (
            ("GatedRepoError", "401 Client Error. Cannot access gated repo"),
            "accept its licence on https://huggingface.co/DeepFloyd/IF-I-XL-v1.0",
        ),
        (
            ("RepositoryNotFoundError", "404 Client Error"),
            "if it is gated, accept its licence on https://huggingface.co/DeepFloyd/IF-I-XL-v1.0",
        ),
        (
            ("ConnectError", "[Errno -2] Name or service not known"),
            "the hub cannot be reached (ConnectError); connect once",
        ),
    ],
)
def test_uncached_weights_are_checked_with_the_hub_before_anything_runs(
    monkeypatch, tmp_path, raised, expected
):
    import huggingface_hub

    from generator.backends import resolve_backend
    from generator.backends.deepfloyd import DEEPFLOYD
    from generator.config import load
    from generator.errors import UsageError

    def auth_check(model_id):
        raise _hub_error(*raised)

    monkeypatch.delenv("HF_HUB_OFFLINE")
    # Nothing cached, whatever this machine holds.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(huggingface_hub, "auth_check", auth_check)
    config = load(copy_project(tmp_path / "p"), "smoke", backend="deepfloyd")
    with pytest.raises(UsageError, match=r"^cannot load stage I: ") as failure:
        DEEPFLOYD.preflight(config, ["a1.5"], ["", "a high quality photo"])
    assert expected in str(failure.value) and "\n" not in str(failure.value)
    # --backend auto on a CUDA machine says the same, and takes the local model.
    backend, why = resolve_backend(
        "auto", {name: config.params[name] for name in ("deepfloyd", "local")}, cuda=True
    )
    assert backend == "local" and expected in why
