"""Part A on the local backend: the output contract, the store's keys, the pages and every bad
input."""

import json

import numpy as np
import pytest
from conftest import copy_project, gen, ran, tree_digest

from generator.chapters import all_sections

PART_A = [sid for sid in all_sections() if sid.startswith("a")]
SMOKE_LOCAL = ("--profile", "smoke", "--backend", "local")


def _record(project, sid):
    return json.loads((project / f"docs/assets/{sid}/record.json").read_text())


@pytest.mark.slow
def test_every_section_says_which_backend_and_model_made_it(built):
    b24 = _record(built, "b2.4")
    for sid in PART_A:
        record = _record(built, sid)
        assert record["backend"]["name"] == "local"
        assert record["backend"]["b2.4"] == b24["cache_key"]  # the model is b2.4's entry
        assert "b2.4" in record["backend"]["model_id"]
        settings = record["backend"]["settings"]
        assert {k: settings[k] for k in ("model", "variance", "t_start", "stride")} == {
            "model": "b2.4",
            "variance": "fixed_small",
            "t_start": 290,
            "stride": 96,
        }
        # what `auto` chose for sampling on this device, named in the record
        assert settings["precision"] in ("fp32", "bf16") and settings["channels_last"] == "off"
        assert record["needs"]["b2.4"] == b24["cache_key"]
        assert record["command"].startswith(f"gen build {sid} --profile smoke --backend local")
    page = (built / "docs/part-a.md").read_text()
    assert "Not built yet" not in page
    assert page.count("Made on the **local** backend") == len(PART_A)


@pytest.mark.slow
def test_anagram_samples_name_their_view_and_labels(built):
    samples = np.load(built / "docs/assets/a1.8/samples.npz")
    record = _record(built, "a1.8")
    params = record["params"]
    n = len(params["anagrams"]) * params["num_samples"]
    assert samples["images"].shape == (n, 1, 28, 28) and samples["images"].dtype == np.float32
    assert str(samples["view"]) == "flip"
    # every candidate, with the seed it came from, which are shown and which read every view
    assert samples["seed"].tolist() == [params["seed"]] * n
    assert samples["candidate"].tolist() == list(range(params["num_samples"])) * 2
    assert samples["shown"].sum() == params["shown"] * params["num_samples"]
    assert samples["confident_all_views"].dtype == bool
    data = json.loads((built / "docs/assets/a1.8/data.json").read_text())
    assert len(data["shown"]) == params["shown"] and sorted(data["ranked"]) == [0, 1]
    best = data["rows"][data["ranked"][0]]["all_confident"]
    assert all(r["all_confident"] <= best for r in data["rows"])
    expected = [[int(p[k])] * params["num_samples"] for p in params["anagrams"] for k in (0,)]
    assert samples["labels_view1"].tolist() == sum(expected, [])
    assert samples["labels_view2"].tolist() == sum(
        ([int(p[1])] * params["num_samples"] for p in params["anagrams"]), []
    )


@pytest.mark.slow
def test_inpainting_keeps_every_pixel_outside_the_mask(built):
    samples = np.load(built / "docs/assets/a1.7.2/samples.npz")
    images, masks, originals = samples["images"], samples["masks"], samples["originals"]
    assert images.shape == originals.shape == masks.shape == (3, 1, 28, 28)
    assert set(np.unique(masks)) == {0.0, 1.0}
    outside = masks == 0
    assert np.array_equal(images[outside], originals[outside])  # exactly, not approximately
    assert not np.array_equal(images[~outside], originals[~outside])  # and the hole was repainted
    assert _record(built, "a1.7.2")["metrics"]["max_change_outside_mask"] == 0.0


@pytest.mark.slow
def test_hybrids_sweep_sigma_and_keep_the_far_view(built):
    record = _record(built, "a1.9")
    samples = np.load(built / "docs/assets/a1.9/samples.npz")
    params = record["params"]
    n = len(params["pairs"]) * params["num_samples"]
    side = 28 // params["far_scale"]
    assert samples["images"].shape == (n, 1, 28, 28) and samples["far"].shape == (n, 1, side, side)
    metrics = record["metrics"]
    assert {f"both_sigma_{s:g}" for s in params["sigmas"]} <= set(metrics)
    best = metrics["best_sigma"]
    assert best in params["sigmas"] and samples["sigma"].tolist() == [best] * n
    assert metrics["both_ways"] == max(metrics[f"both_sigma_{s:g}"] for s in params["sigmas"])
    assert {"hybrids.webp", "hybrids_actual_size.webp", "sweep.webp"} <= {
        f["file"] for f in record["figures"]
    }
    from PIL import Image

    with Image.open(
        built / "docs/assets/a1.9/hybrids_actual_size.webp"
    ) as im:  # one screen pixel per image pixel
        assert im.height == len(params["pairs"]) * (28 + 6) + 6


@pytest.mark.slow
def test_generated_images_follow_the_contract(built):
    for sid in ("a0", "a1.5", "a1.6", "a1.7", "a1.7.1", "a1.7.3", "a1.9"):
        images = np.load(built / f"docs/assets/{sid}/samples.npz")["images"]
        assert (
            images.dtype == np.float32 and images.ndim == 4 and images.shape[1:] == (1, 28, 28)
        ), sid
        assert images.min() >= 0.0 and images.max() <= 1.0
    cfg = np.load(built / "docs/assets/a1.6/samples.npz")
    assert cfg["labels"].tolist() == [
        d for d in range(10) for _ in range(_record(built, "a1.6")["params"]["num_samples"])
    ]


@pytest.mark.slow
def test_changing_the_model_reruns_part_a_on_local(project):
    result = gen(project, "build", "a1.5", *SMOKE_LOCAL, "--set", "b2.4.epochs=1")
    assert ran(result) == ["b2.4", "a1.5"]
    # The backend's schedule is part of every Part A key, and of nothing in Part B.
    result = gen(project, "build", "a1.5", *SMOKE_LOCAL, "--set", "local.stride=72")
    assert ran(result) == ["a1.5"]
    assert "--set local.stride=72" in _record(project, "a1.5")["command"]
    assert ran(gen(project, "build", "a1.5", *SMOKE_LOCAL)) == []


@pytest.mark.slow
def test_list_names_the_backend(built):
    out = gen(built, "list", *SMOKE_LOCAL).stdout
    assert "backend: local (chosen with --backend)" in out
    assert all(f"{sid} " in out for sid in PART_A) and "never built" not in out


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


BAD_PART_A = [
    (["--set", "a1.1.image=no/such/photo.png"], "no/such/photo.png"),
    (["--set", "a1.1.image=gen.yaml"], "not a readable picture"),
    (["--set", "a1.1.image=mnist:10000"], "mnist:10000"),
    (
        [
            "--set",
            'a1.7.2.masks=[site_assets/inputs/astronaut_mask.png, "rect:0,1,0,1", "rect:0,1,0,1"]',
        ],
        "astronaut_mask.png",
    ),
    (
        ["--set", 'a1.7.2.masks=["rect:0.5,0.2,0,1", "rect:0,1,0,1", "rect:0,1,0,1"]'],
        "rect:0.5,0.2,0,1",
    ),
    (["--set", 'a1.7.2.masks=["rect:0,1,0,1"]'], "a1.7.2.masks"),
    (["--set", "a1.4.i_start=28"], "a1.4.i_start"),
    (["--set", "a1.7.i_starts=[1, 99]"], "a1.7.i_starts"),
    (["--set", "a1.1.timesteps=[400]"], "a1.1.timesteps"),
    (["--set", "local.t_start=300"], "local.t_start"),
    (["--set", "a1.8.views=[spin]"], "a1.8.views"),
    (["--set", "a1.8.views=[negate]"], "negate"),
    (["--set", 'a1.8.anagrams=[["6", "9", "1"]]'], "a1.8.anagrams"),
    (["--set", "a1.6.prompts=[a photo of a cat]"], "a photo of a cat"),
    (["--set", "a1.2.kernel_size=4"], "a1.2.kernel_size"),
    (["--backend", "stable-diffusion"], "stable-diffusion"),
]


@pytest.mark.slow
@pytest.mark.parametrize("args, named", BAD_PART_A, ids=[" ".join(a) for a, _ in BAD_PART_A])
def test_bad_part_a_input_exits_2_with_one_line_and_changes_nothing(built, args, named):
    before = tree_digest(built / "docs", built / ".gen")
    result = gen(
        built, "build", "a", "--profile", "smoke", "--backend", "local", *args, check=False
    )
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert named in lines[0]
    assert tree_digest(built / "docs", built / ".gen") == before


@pytest.mark.slow
def test_a_mask_of_another_size_than_its_image_is_refused(built, tmp_path):
    from PIL import Image

    image, mask = tmp_path / "photo.png", tmp_path / "mask.png"
    Image.new("RGB", (40, 30), "white").save(image)
    Image.new("L", (32, 32), 255).save(mask)
    result = gen(
        built,
        "build",
        "a1.7.2",
        *SMOKE_LOCAL,
        "--set",
        f"a1.7.2.images=[{image}]",
        "--set",
        f"a1.7.2.masks=[{mask}]",
        check=False,
    )
    assert result.returncode == 2 and "32×32" in result.stderr and "40×30" in result.stderr


@pytest.mark.slow
def test_user_images_and_masks_replace_the_defaults(project, tmp_path):
    from PIL import Image, ImageDraw

    image, mask = tmp_path / "ring.png", tmp_path / "ring_mask.png"
    picture = Image.new("L", (56, 56), 0)
    ImageDraw.Draw(picture).ellipse((12, 8, 44, 48), outline=255, width=6)
    picture.save(image)
    hole = Image.new("L", (56, 56), 0)
    ImageDraw.Draw(hole).rectangle((0, 0, 55, 20), fill=255)
    hole.save(mask)
    gen(
        project,
        "build",
        "a1.7.2",
        *SMOKE_LOCAL,
        "--set",
        f"a1.7.2.images=[{image}]",
        "--set",
        f"a1.7.2.masks=[{mask}]",
    )
    samples = np.load(project / "docs/assets/a1.7.2/samples.npz")
    assert samples["images"].shape == (1, 1, 28, 28)
    assert (
        samples["masks"][0, 0, :10].all() and not samples["masks"][0, 0, 11:].any()
    )  # rows 0–20 of 56 → 0–10 of 28


BAD_STEPS = [
    (["--set", "a0.steps=[1000]"], "at most 300"),  # T = 300: the sampler has no more steps
    (["--set", "a0.steps=[20, 8]"], "do not divide"),  # evenly spaced steps would start low
    (["--set", "b2.4.T=100", "--set", "a0.steps=[4, 200]"], "T = 100"),  # T is b2.4's
]


@pytest.mark.parametrize("args, named", BAD_STEPS, ids=[" ".join(a) for a, _ in BAD_STEPS])
def test_a_step_count_the_model_cannot_take_is_one_line_before_anything_runs(tmp_path, args, named):
    project = copy_project(tmp_path / "p")
    result = gen(project, "build", "a0", *SMOKE_LOCAL, *args, check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "a0.steps" in lines[0] and named in lines[0]
    assert ran(result) == [] and not (project / "docs").exists()


def test_all_anagrams_leave_out_the_pairs_a_view_makes_trivial():
    from generator.chapters.a_illusions import all_anagrams

    digits = tuple("0123456789")
    flip = all_anagrams(digits, "flip")
    # 2, 4, 5, 6, 7 and 9 are changed by turning upside down; 2 and 5 turn into each other
    assert len(flip) == 28 and ["2", "7"] in flip and ["7", "2"] in flip
    assert ["2", "5"] not in flip and ["5", "2"] not in flip
    assert not any(set(pair) & set("0138") for pair in flip)
    rot180 = all_anagrams(digits, "rot180")
    assert ["6", "9"] not in rot180 and ["6", "4"] in rot180 and len(rot180) == 7 * 6 - 2
    assert len(all_anagrams(digits, "transpose")) == 90


def test_all_anagrams_need_a_backend_that_reads_classes(tmp_path):
    result = gen(
        copy_project(tmp_path / "p"),
        "build",
        "a1.8",
        "--profile",
        "smoke",
        "--backend",
        "deepfloyd",
        "--set",
        "a1.8.anagrams=all",
        "--dry-run",
        check=False,
    )
    assert result.returncode == 2
    assert "'all' takes every pair of classes" in result.stderr


def test_all_hybrid_pairs_need_a_backend_that_reads_classes(tmp_path):
    result = gen(
        copy_project(tmp_path / "p"),
        "build",
        "a1.9",
        "--profile",
        "smoke",
        "--backend",
        "deepfloyd",
        "--set",
        "a1.9.pairs=all",
        "--dry-run",
        check=False,
    )
    assert result.returncode == 2
    assert "'all' takes every pair of classes" in result.stderr


@pytest.mark.slow
def test_all_hybrid_pairs_are_tried_and_the_figure_shows_the_best_by_the_rule(tmp_path):
    project = copy_project(tmp_path / "p")
    sets = ["--set", "a1.9.pairs=all", "--set", "a1.9.shown=2", "--set", "a1.9.sigmas=[1.0]"]
    gen(project, "build", "a1.9", "--profile", "smoke", "--backend", "local", *sets)
    record = _record(project, "a1.9")
    data = json.loads((project / "docs/assets/a1.9/data.json").read_text())
    samples = np.load(project / "docs/assets/a1.9/samples.npz")
    assert len(data["pairs"]) == 90 and len(samples["images"]) == 90
    assert all(p["prompts"][0] != p["prompts"][1] for p in data["pairs"])
    # the pairs shown are the top of the ranking, by the confident rate, then the plain one
    key = [(-p["both_confident"], -p["both"], p["index"]) for p in data["pairs"]]
    assert data["ranked"] == sorted(range(90), key=lambda k: key[k])
    assert data["shown"] == sorted(data["ranked"][:2]) and samples["shown"].sum() == 2
    shown = [data["pairs"][k] for k in data["shown"]]
    metrics = record["metrics"]
    assert metrics["both_ways"] == pytest.approx(sum(p["both"] for p in shown) / 2)
    assert metrics["both_ways_tried"] == pytest.approx(sum(p["both"] for p in data["pairs"]) / 90)
    assert "hybrids_tried.webp" in {f["file"] for f in record["figures"]}
    page = (project / "docs/part-a.md").read_text()
    assert "**The figure is a selection, made by a stated rule:**\n90 pairs were tried" in page
