"""What the pages' viewers show, derived from a section's published files (never from a model).

A viewer (site_assets/javascripts/viewers.js) takes the place of one still figure where scripts
run: an anagram that turns by its view, a hybrid that recedes, an edit that changes with
`i_start`, an inpainting before and after, a sampling run step by step. It needs single images
where a section saved a grid, and the frames of a GIF as one strip (STRIP_FRAMES of them at
most); both are made here from samples.npz and the GIFs, as lossless WebP under the section's
`viewer/` folder, and go into docs/ beside the section's own files. The still figure stays in
the page for readers without scripts.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import image_files

FOLDER = "viewer"
SAMPLES = "samples.npz"
# How a view turns an image on screen (CSS), by the name a1.8 records; the
# transforms animate, and "negate" inverts colours, as it does to a picture centred on zero.
TURNS = {"flip", "rot90cw", "rot90ccw", "rot180", "transpose", "negate"}
# The most frames a sampling run's strip holds: its scrubber steps through these, spread evenly
# over the GIF's (the strip is the viewer's own copy of frames the GIF holds as well).
STRIP_FRAMES = 16


@dataclass
class Viewers:
    """A section's viewers: the figure each one replaces → what the template writes into its root
    element; `files`, the images they show (path under the section's folder → bytes)."""

    by_figure: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


def _name(stem: str) -> str:
    return stem + image_files.SUFFIX


def _pixels(images):
    """(N, C, H, W) floats in [0, 1] → N uint8 arrays (H, W) or (H, W, 3)."""
    return [a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0) for a in image_files.to_uint8(images)]


def _strip(frames) -> bytes:
    """Frames of one size side by side, left to right, in one image."""
    import numpy as np

    return image_files.encode(np.concatenate(list(frames), axis=1))


def _load(folder: Path) -> dict | None:
    import numpy as np

    try:
        with np.load(folder / SAMPLES, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


def _rel(sid: str, name: str) -> str:
    return f"assets/{sid}/{FOLDER}/{name}"


def _anagrams(sid: str, z: dict, figure: str, out: Viewers) -> None:
    views = [v for v in str(z["view"]).split(",") if v]
    if not views or not set(views) <= TURNS:
        return
    shown = z["shown"] if "shown" in z else [True] * len(z["images"])
    items = []
    prompts = [z[f"prompts_view{k + 1}"] for k in range(len(views) + 1)]
    for i, image in enumerate(_pixels(z["images"])):
        if not shown[i]:
            continue
        name = _name(f"anagram_{i}")
        out.files[name] = image_files.encode(image)
        items.append({"src": _rel(sid, name), "shows": [str(p[i]) for p in prompts]})
        if "confident_all_views" in z:  # the figure's green frame
            items[-1]["confident"] = bool(z["confident_all_views"][i])
    out.by_figure[figure] = {"kind": "anagram", "views": views, "items": items}


def _hybrids(sid: str, z: dict, figure: str, far_scale: int, out: Viewers) -> None:
    if "far" not in z:
        return
    shown = z["shown"] if "shown" in z else [True] * len(z["images"])
    items = []
    for i, (image, far) in enumerate(zip(_pixels(z["images"]), _pixels(z["far"]))):
        if not shown[i]:
            continue
        close_name, far_name = _name(f"hybrid_{i}"), _name(f"hybrid_{i}_far")
        out.files[close_name] = image_files.encode(image)
        out.files[far_name] = image_files.encode(far)
        items.append(
            {
                "src": _rel(sid, close_name),
                "far": _rel(sid, far_name),
                "far_shows": str(z["prompts_low"][i]),
                "close_shows": str(z["prompts_high"][i]),
            }
        )
    size = int(z["images"].shape[-1])
    out.by_figure[figure] = {
        "kind": "zoom",
        "size": size,
        "far_size": int(z["far"].shape[-1]),
        "far_scale": far_scale,
        "items": items,
    }


def _series(sid: str, z: dict, data: dict, figure: str, out: Viewers) -> None:
    """SDEdit: for each edited image, its edits from the earliest start to the latest."""
    if "i_start" not in z or "source" not in z:
        return
    t_of = {r["i_start"]: r["t"] for r in data.get("rows", []) if "t" in r}
    images = _pixels(z["images"])
    items = []
    for k, source in enumerate(dict.fromkeys(str(s) for s in z["source"])):
        picked = sorted(
            (int(z["i_start"][i]), i) for i in range(len(images)) if str(z["source"][i]) == source
        )
        name = _name(f"edits_{k}")
        out.files[name] = _strip(images[i] for _, i in picked)
        items.append(
            {
                "src": _rel(sid, name),
                "name": source.rsplit("/", 1)[-1],
                "steps": [
                    f"i_start = {s}" + (f", t = {t_of[s]}" if s in t_of else "") for s, _ in picked
                ],
            }
        )
    out.by_figure[figure] = {"kind": "scrub", "param": "i_start", "items": items}


def _inpainting(sid: str, z: dict, figure: str, out: Viewers) -> None:
    if "originals" not in z or "masks" not in z:
        return
    holed = z["originals"] * (1 - z["masks"]) + 0.5 * z["masks"]
    items = []
    for i, (before, after) in enumerate(zip(_pixels(holed), _pixels(z["images"]))):
        before_name, after_name = _name(f"inpaint_{i}_before"), _name(f"inpaint_{i}_after")
        out.files[before_name] = image_files.encode(before)
        out.files[after_name] = image_files.encode(after)
        items.append({"before": _rel(sid, before_name), "after": _rel(sid, after_name)})
    out.by_figure[figure] = {"kind": "compare", "items": items}


def _picked(frames: list) -> list[int]:
    """Which frames a strip holds: each that differs from the one before, and of those at most
    STRIP_FRAMES spread evenly, the first and the last included."""
    distinct = [k for k, f in enumerate(frames) if k == 0 or not (f == frames[k - 1]).all()]
    n = len(distinct)
    if n <= STRIP_FRAMES:
        return distinct
    return [distinct[round(i * (n - 1) / (STRIP_FRAMES - 1))] for i in range(STRIP_FRAMES)]


def _gif_frames(sid: str, folder: Path, figure: str, out: Viewers) -> None:
    """A sampling GIF's frames (STRIP_FRAMES of them at most), left to right in one image, for the
    step scrubber; the GIF stays the figure without scripts."""
    import numpy as np
    from PIL import Image, ImageSequence

    try:
        with Image.open(folder / figure) as gif:
            frames = [np.array(f.convert("RGB")) for f in ImageSequence.Iterator(gif)]
    except OSError:
        return
    picked = _picked(frames)
    if len(picked) < 2:
        return
    name = _name(Path(figure).stem + "_frames")
    out.files[name] = _strip(frames[k] for k in picked)
    height, width = frames[0].shape[:2]
    out.by_figure[figure] = {
        "kind": "scrub",
        "param": "step",
        "play": True,
        "width": width,
        "height": height,
        "of": len(frames),
        "items": [{"src": _rel(sid, name), "steps": [str(k + 1) for k in picked]}],
    }


def derive(sid: str, folder: Path | None, figures: list[dict], params: dict, data: dict) -> Viewers:
    """The viewers of one section, from the files in `folder` (its store entry, or docs/)."""
    out = Viewers()
    if folder is None:
        return out
    names = {f["file"] for f in figures}
    # a figure by its stem: entries made before figures were WebP name theirs .png
    stems = {Path(name).stem: name for name in names}
    try:
        z = _load(folder) if (folder / SAMPLES).is_file() else None
        if z is not None:
            if "anagrams" in stems and "view" in z:
                _anagrams(sid, z, stems["anagrams"], out)
            if "hybrids" in stems:
                _hybrids(sid, z, stems["hybrids"], int(params.get("far_scale", 4)), out)
            if "edits" in stems:
                _series(sid, z, data, stems["edits"], out)
            if "inpainting" in stems:
                _inpainting(sid, z, stems["inpainting"], out)
        for name in sorted(names):
            if name.endswith(".gif"):
                _gif_frames(sid, folder, name, out)
    except (KeyError, IndexError, TypeError, ValueError):
        return Viewers()  # samples that lack what a viewer reads: the still figures stay alone
    return out


def attribute(value: Any) -> str:
    """A viewer's description as JSON, for a data- attribute (the template escapes it)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
