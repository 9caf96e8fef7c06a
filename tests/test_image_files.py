"""Figures are written as lossless WebP: the same pixels, fewer bytes than any exact PNG."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import REPO
from PIL import Image

from generator import image_files


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def _image(kind: str) -> np.ndarray:
    rng = np.random.default_rng(1)
    rgba = np.full((40, 50, 4), 255, np.uint8)
    if kind == "grey":
        rgba[..., :3] = rng.integers(0, 256, (40, 50, 1))
    elif kind in ("few colours", "transparent few"):
        rgba[..., :3] = rng.integers(0, 4, (40, 50, 3)) * 60
    else:
        rgba[..., :3] = rng.integers(0, 256, (40, 50, 3))
    if kind.startswith("transparent"):
        rgba[..., 3] = rng.integers(0, 2, (40, 50)) * 255
    return rgba


KINDS = ["grey", "few colours", "many colours", "transparent", "transparent few"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_figure_keeps_every_pixel(kind):
    rgba = _image(kind)
    data = image_files.encode(Image.fromarray(rgba, "RGBA"))
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    assert np.array_equal(_pixels(data), rgba)


@pytest.mark.parametrize("kind", KINDS)
def test_every_png_form_keeps_every_pixel(kind):
    rgba = _image(kind)
    assert np.array_equal(_pixels(image_files.encode_png(Image.fromarray(rgba, "RGBA"))), rgba)


def test_a_plot_and_a_table_of_digits_are_smaller_than_their_smallest_png(tmp_path):
    """matplotlib's antialiased lines and a grey table of digits: each written exactly, in fewer
    bytes than the smallest exact PNG."""
    import torch

    from generator import figures

    rng = np.random.default_rng(3)
    figures.loss_curve(
        np.exp(-np.linspace(0, 3, 400)) + 0.05 * rng.random(400), tmp_path / "l.webp", title="loss"
    )
    digits = torch.rand(3, 4, 1, 28, 28, generator=torch.Generator().manual_seed(0)) ** 4
    figures.image_table(digits, tmp_path / "t.webp", row_labels=["a", "b", "c"])
    for name in ("l.webp", "t.webp"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "WEBP"
            png = image_files.encode_png(image)
            assert np.array_equal(_pixels(png), _pixels((tmp_path / name).read_bytes()))
        assert (tmp_path / name).stat().st_size < len(png), name


def test_the_same_image_gives_the_same_bytes():
    rgba = np.random.default_rng(2).integers(0, 256, (16, 16, 4), dtype=np.uint8)
    assert image_files.encode(rgba) == image_files.encode(rgba.copy())
    assert image_files.encode_png(rgba) == image_files.encode_png(rgba.copy())


def test_a_figure_named_for_another_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="written as .webp"):
        image_files.write(np.zeros((4, 4), np.uint8), tmp_path / "samples.png")
    assert not (tmp_path / "samples.png").exists()


def test_an_rgba_figure_from_an_older_entry_is_published_small_and_encoded_once(tmp_path):
    from generator.render import _SmallPngs

    rgba = np.full((30, 30, 4), 255, np.uint8)
    rgba[5:25, 5:25, :3] = 40
    old = tmp_path / "figure.png"
    Image.fromarray(rgba, "RGBA").save(old)  # as matplotlib writes it: RGBA
    read = _SmallPngs(tmp_path / "cache")
    published = read(old)
    assert len(published) < old.stat().st_size and np.array_equal(_pixels(published), rgba)
    (kept,) = (tmp_path / "cache").iterdir()
    kept.write_bytes(b"kept")  # the second time, the kept encoding is what is published
    assert read(old) == b"kept"
    small = tmp_path / "small.png"
    small.write_bytes(published)  # no longer RGBA: published as it is
    assert read(small) == published


def _stored_once(docs) -> dict[str, str]:
    """Sweep figures published once elsewhere: their own path under docs/ → where they are."""
    import json

    found = {}
    for path in docs.glob("assets/sweeps/*/sweep.json"):
        for point in json.loads(path.read_text())["points"]:
            if point.get("stored_at"):
                own = f"assets/sweeps/{path.parent.name}/{point['figure']}"
                found[own] = point["stored_at"]["path"]
    return found


def test_rendering_the_committed_write_up_keeps_every_pixel_and_settles(tmp_path):
    """A clone whose docs/ holds figures from before: render makes them small in place (the same
    pixels, samples.npz untouched), and a second render changes nothing."""
    import shutil

    from conftest import copy_project, gen

    docs = REPO / "docs"
    if not (docs / "index.md").is_file():
        pytest.skip("no committed docs/ in this checkout")
    project = copy_project(tmp_path / "clone")
    shutil.copytree(docs, project / "docs")
    gen(project, "render")
    before = after = 0
    stored_once = _stored_once(project / "docs")
    for path in sorted([*docs.glob("assets/**/*.png"), *docs.glob("assets/**/*.webp")]):
        rel = path.relative_to(docs).as_posix()
        published = (project / "docs" / stored_once.get(rel, rel)).read_bytes()
        assert np.array_equal(_pixels(published), _pixels(path.read_bytes())), path
        assert len(published) <= path.stat().st_size, path
        before = before + path.stat().st_size
        after = after + (0 if rel in stored_once else len(published))
    # committed figures already written small stay as they are; older PNGs shrink
    assert after <= before and before > 0, (before, after)
    for path in docs.glob("assets/*/samples.npz"):
        assert (project / path.relative_to(REPO)).read_bytes() == path.read_bytes()
    again = gen(project, "render")
    assert again.stdout.strip().splitlines()[-1] == "docs/: 0 file(s) updated", again.stdout
