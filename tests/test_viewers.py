"""The pages' viewers: what the renderer derives for them, and each kind driven in a real browser.

Anagrams turn by their recorded view, hybrids step back to the far view, inpaintings split before
and after, series and sweeps scrub; each changes what it shows when driven, served and from disk,
at desktop and phone width, with no console error and no request off the machine.
"""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from conftest import REPO, copy_project, gen
from PIL import Image

from generator.viewers import STRIP_FRAMES, _picked, derive

DOCS = REPO / "docs"


def _image(data: bytes) -> np.ndarray:
    """A viewer's image as its pixels: (H, W) where it is grey (WebP keeps grey as RGB)."""
    found = np.array(Image.open(io.BytesIO(data)))
    grey = found.ndim == 3 and (found == found[..., :1]).all()
    return found[..., 0] if grey else found


def _u8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_anagram_viewer_shows_each_shown_sample_with_its_recorded_view(tmp_path, rng):
    images = rng.random((4, 1, 28, 28), dtype=np.float32)
    np.savez(
        tmp_path / "samples.npz",
        images=images,
        prompts_view1=np.array(["2", "2", "6", "6"]),
        prompts_view2=np.array(["7", "7", "9", "9"]),
        view=np.array("rot90cw"),
        shown=np.array([False, False, True, True]),
        confident_all_views=np.array([True, False, False, True]),
    )
    out = derive("a1.8", tmp_path, [{"file": "anagrams.webp"}], {}, {})
    spec = out.by_figure["anagrams.webp"]
    assert spec["kind"] == "anagram" and spec["views"] == ["rot90cw"]
    assert [item["shows"] for item in spec["items"]] == [["6", "9"], ["6", "9"]]
    assert [item["src"] for item in spec["items"]] == [
        "assets/a1.8/viewer/anagram_2.webp",
        "assets/a1.8/viewer/anagram_3.webp",
    ]
    assert [item["confident"] for item in spec["items"]] == [False, True]
    assert np.array_equal(_image(out.files["anagram_3.webp"]), _u8(images[3, 0]))


def test_an_entry_made_before_figures_were_webp_keeps_its_viewer(tmp_path, rng):
    """Its record names inpainting.png: the viewer replaces that figure, with WebP images."""
    np.savez(
        tmp_path / "samples.npz",
        images=rng.random((1, 1, 8, 8)),
        originals=rng.random((1, 1, 8, 8)),
        masks=np.ones((1, 1, 8, 8)),
    )
    out = derive("a1.7.2", tmp_path, [{"file": "inpainting.png"}], {}, {})
    assert out.by_figure["inpainting.png"]["items"][0]["after"].endswith("inpaint_0_after.webp")
    assert set(out.files) == {"inpaint_0_before.webp", "inpaint_0_after.webp"}


def test_a_view_the_page_cannot_show_gives_no_viewer(tmp_path, rng):
    np.savez(
        tmp_path / "samples.npz",
        images=rng.random((1, 1, 8, 8)),
        prompts_view1=np.array(["1"]),
        prompts_view2=np.array(["2"]),
        view=np.array("skew"),
    )
    assert derive("a1.8", tmp_path, [{"file": "anagrams.webp"}], {}, {}).by_figure == {}


def test_zoom_viewer_pairs_each_hybrid_with_its_far_view(tmp_path, rng):
    images, far = rng.random((2, 1, 28, 28)), rng.random((2, 1, 7, 7))
    np.savez(
        tmp_path / "samples.npz",
        images=images,
        far=far,
        prompts_low=np.array(["8", "4"]),
        prompts_high=np.array(["5", "3"]),
    )
    out = derive("a1.9", tmp_path, [{"file": "hybrids.webp"}], {"far_scale": 4}, {})
    spec = out.by_figure["hybrids.webp"]
    assert (spec["size"], spec["far_size"], spec["far_scale"]) == (28, 7, 4)
    assert [(i["far_shows"], i["close_shows"]) for i in spec["items"]] == [("8", "5"), ("4", "3")]
    assert np.array_equal(_image(out.files["hybrid_1_far.webp"]), _u8(far[1, 0]))


def test_sdedit_series_runs_from_the_earliest_start_to_the_latest(tmp_path, rng):
    images = rng.random((4, 1, 28, 28))
    np.savez(
        tmp_path / "samples.npz",
        images=images,
        i_start=np.array([10, 1, 10, 1]),
        source=np.array(["mnist:0", "mnist:0", "mnist:1", "mnist:1"]),
    )
    data = {"rows": [{"i_start": 1, "t": 960}, {"i_start": 10, "t": 690}]}
    out = derive("a1.7", tmp_path, [{"file": "edits.webp"}], {}, data)
    spec = out.by_figure["edits.webp"]
    assert spec["kind"] == "scrub" and len(spec["items"]) == 2
    assert spec["items"][0]["steps"] == ["i_start = 1, t = 960", "i_start = 10, t = 690"]
    strip = _image(out.files["edits_1.webp"])
    assert np.array_equal(strip[:, :28], _u8(images[3, 0]))  # i_start 1 first
    assert np.array_equal(strip[:, 28:], _u8(images[2, 0]))


def test_inpainting_compares_the_holed_original_with_the_result(tmp_path, rng):
    images, originals = rng.random((1, 1, 8, 8)), rng.random((1, 1, 8, 8))
    masks = np.zeros((1, 1, 8, 8))
    masks[..., :4, :] = 1
    np.savez(tmp_path / "samples.npz", images=images, originals=originals, masks=masks)
    out = derive("a1.7.2", tmp_path, [{"file": "inpainting.webp"}], {}, {})
    assert out.by_figure["inpainting.webp"]["kind"] == "compare"
    before = _image(out.files["inpaint_0_before.webp"])
    assert (before[:4] == 128).all() and np.array_equal(before[4:], _u8(originals[0, 0, 4:]))
    assert np.array_equal(_image(out.files["inpaint_0_after.webp"]), _u8(images[0, 0]))


def test_a_sampling_gif_becomes_a_strip_of_its_frames(tmp_path, rng):
    frames = [(rng.random((6, 10)) * 255).astype(np.uint8) for _ in range(3)]
    pictures = [Image.fromarray(f) for f in frames]
    pictures[0].save(tmp_path / "sampling.gif", save_all=True, append_images=pictures[1:])
    out = derive("a1.5", tmp_path, [{"file": "sampling.gif"}], {}, {})
    spec = out.by_figure["sampling.gif"]
    assert spec["play"] and (spec["width"], spec["height"]) == (10, 6)
    assert spec["items"][0]["steps"] == ["1", "2", "3"]
    assert np.array_equal(_image(out.files["sampling_frames.webp"]), np.concatenate(frames, 1))


def test_a_long_sampling_gif_gives_a_strip_of_at_most_sixteen_frames_first_and_last_included(
    tmp_path, rng
):
    frames = [(rng.random((6, 10)) * 255).astype(np.uint8) for _ in range(31)]
    pictures = [Image.fromarray(f) for f in frames]
    pictures[0].save(tmp_path / "sampling.gif", save_all=True, append_images=pictures[1:])
    out = derive("b2.5", tmp_path, [{"file": "sampling.gif"}], {}, {})
    spec = out.by_figure["sampling.gif"]
    steps = spec["items"][0]["steps"]
    assert len(steps) == STRIP_FRAMES and steps[0] == "1" and steps[-1] == "31" and spec["of"] == 31
    picked = [frames[int(k) - 1] for k in steps]
    assert np.array_equal(_image(out.files["sampling_frames.webp"]), np.concatenate(picked, 1))
    # a frame the same as the one before it is left out
    same = [frames[0], frames[0], frames[1], frames[1], frames[2]]
    assert _picked(same) == [0, 2, 4]


# --- in a browser ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The committed write-up as a fresh clone renders it (viewers included), built by MkDocs."""
    if not (DOCS / "index.md").is_file():
        pytest.skip("no committed docs/ in this checkout")
    from test_site import mkdocs_build

    project = copy_project(tmp_path_factory.mktemp("viewers") / "project")
    shutil.copytree(DOCS, project / "docs")
    gen(project, "render")
    return mkdocs_build(project)


def _expected_view() -> str:
    return json.loads((DOCS / "assets/a1.8/record.json").read_text())["params"]["views"][0]


@pytest.mark.slow
@pytest.mark.browser
# served at desktop width and from disk at phone width: each way of opening and each width once
@pytest.mark.parametrize(("over", "width"), [("http", 1280), ("file", 390)])
def test_each_viewer_changes_what_it_shows_when_driven(site, over, width):
    import browser
    from test_site import _need_chromium

    _need_chromium()
    pages = ["part-a.html", "part-b.html", "sweeps.html"]
    report = browser.drive_viewers(site, pages, over=over, width=width)
    for page, r in report.items():
        assert r["console_errors"] == [] and r["external_requests"] == [], (page, r)
        assert r["page_width"] <= r["window_width"] and r["overflowing"] == [], (page, r)
        assert r["viewers"] and all(v["ready"] for v in r["viewers"]), (page, r["viewers"])
        assert not any(v["still_shown"] for v in r["viewers"]), (page, r["viewers"])
        # the page's figures keep their numbers and lightbox links: a viewer adds no figure
        labels = r["figure_labels"]
        assert labels == [f"Figure {k}." for k in range(1, len(labels) + 1)], (page, labels)
        assert r["lightbox_links"] == len(labels), page
    assert {v["kind"] for v in report["part-b.html"]["viewers"]} == {"scrub"}  # sampling runs
    (b,) = [dict(d["steps"]) for d in report["part-b.html"]["driven"]]
    assert b["Home"]["index"] == "0" and int(b["play"]["index"]) > 1, b
    kinds = {v["kind"] for v in report["part-a.html"]["viewers"]}
    assert kinds == {"anagram", "zoom", "compare", "scrub"}, kinds
    driven = {
        (d["kind"], i): dict(d["steps"]) for i, d in enumerate(report["part-a.html"]["driven"])
    }
    by_kind: dict[str, list[dict]] = {}
    for (kind, _), steps in driven.items():
        by_kind.setdefault(kind, []).append(steps)

    view = _expected_view()
    (a,) = by_kind["anagram"]
    assert a["start"][0]["turned"] == "" and a["start"][0]["transform"] == "none"
    assert a["hover"][0]["turned"] == view and a["hover"][0]["transform"] != "none", a
    assert a["pointer away"][0]["turned"] == ""
    assert a["click"][0]["turned"] == view and a["click"][0]["pressed"] == "true", a
    assert a["click"][0]["transform"] == a["hover"][0]["transform"]
    assert a["Enter on the second"][1]["turned"] == view, a
    assert a["Space on the second"][1]["turned"] == "", a
    assert view in a["click"][0]["label"]

    (z,) = by_kind["zoom"]
    assert z["start"]["near_width"] > z["halfway"]["near_width"] > 0, z
    assert z["End"]["far_opacity"] == "1" and z["End"]["near_opacity"] == "0", z
    assert z["End"]["far_rendering"] == "pixelated" and z["End"]["far_natural"] == 7
    assert z["start"]["label"] != z["End"]["label"]

    (c,) = by_kind["compare"]
    assert c["start"]["split"] == "50" and c["ArrowLeft ×10"]["split"] == "40", c
    assert c["start"]["clip"] != c["ArrowLeft ×10"]["clip"]

    assert len(by_kind["scrub"]) == 2  # a sampling run (with play) and an SDEdit series
    for s in by_kind["scrub"]:
        assert s["Home"]["index"] == "0" and s["ArrowRight"]["index"] == "1", s
        assert s["Home"]["transform"] != s["ArrowRight"]["transform"], s
        assert s["Home"]["strip_loaded"] and s["Home"]["readout"] != s["ArrowRight"]["readout"]
        if "play" in s:
            assert int(s["play"]["index"]) > 1, s  # it played on from step 2
        else:
            assert "i_start" in s["ArrowRight"]["readout"], s

    (w,) = [dict(d["steps"]) for d in report["sweeps.html"]["driven"]]
    assert len(w["Home"]["shown"]) == 1 and w["Home"]["shown"] != w["ArrowRight"]["shown"], w
    assert w["Home"]["readout"] != w["ArrowRight"]["readout"]


@pytest.mark.slow
@pytest.mark.browser
def test_viewers_change_at_once_where_the_reader_asks_for_reduced_motion(site):
    import browser
    from test_site import _need_chromium

    _need_chromium()
    moving = browser.transition_durations(site, "part-a.html", reduced_motion=False)
    still = browser.transition_durations(site, "part-a.html", reduced_motion=True)
    assert all(d != "0s" for d in moving), moving
    assert all(d == "0s" for d in still), still


@pytest.mark.slow
def test_the_sweeps_page_wraps_each_quoted_captions_maths_once(site):
    page = (site / "sweeps.html").read_text()
    assert page.count('class="arithmatex"') > 0
    assert '<span class="arithmatex"><span class="arithmatex">' not in page


def test_samples_a_viewer_cannot_read_leave_the_still_figure(tmp_path):
    (tmp_path / "samples.npz").write_bytes(b"not a zip")
    assert derive("a1.8", tmp_path, [{"file": "anagrams.webp"}], {}, {}).by_figure == {}
    np.savez(tmp_path / "samples.npz", images=np.zeros((2, 1, 4, 4)), far=np.zeros((1, 1, 1, 1)))
    out = derive("a1.9", tmp_path, [{"file": "hybrids.webp"}], {"far_scale": 4}, {})
    assert out.by_figure == {} and out.files == {}
