"""PNGs as small as they go without changing a pixel.

matplotlib writes RGBA at 8 bits a channel; most of the project's figures are opaque, many are
grey, and most hold at most 256 colours (digits in grey, black text, a green frame). Each is
written in the smallest of the exact forms that fit: grey (L), RGB, or a palette, and only where
it decodes back to the very same pixels. The same image always gives the same bytes.
"""

from __future__ import annotations

import io
from pathlib import Path

LEVELS = 255  # a pixel's levels in a PNG, a GIF and samples.npz: 8 bits


def eight_bit(images):
    """Images in [0, 1] (a numpy array or a torch tensor) at the 8 bits a pixel that figures show
    and samples.npz keeps: each value k/255. The scorer reads images through this too, so that a
    section's samples.npz scores exactly as its record says."""
    return (images * LEVELS).round() / LEVELS


def to_uint8(images):
    """Images in [0, 1] (a numpy array; values outside are clipped) as their 8-bit pixels, 0 to
    255: the values `eight_bit` keeps, as a PNG or a GIF stores them."""
    import numpy as np

    return (np.clip(images, 0, 1) * LEVELS).round().astype(np.uint8)


def encode(image) -> bytes:
    """The smallest exact PNG of a PIL image (or a uint8 array (H, W), (H, W, 3) or (H, W, 4))."""
    import numpy as np
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    rgba = np.asarray(image.convert("RGBA"))
    opaque = bool((rgba[..., 3] == 255).all())
    rgb = rgba[..., :3]
    grey = opaque and (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    plain = rgb[..., 0] if grey else rgb if opaque else rgba
    forms = [Image.fromarray(np.ascontiguousarray(plain))]
    colours, index = np.unique(
        np.ascontiguousarray(rgba).view(np.uint32).reshape(-1), return_inverse=True
    )
    if len(colours) <= 256:
        table = colours.view(np.uint8).reshape(-1, 4)
        palette = Image.fromarray(index.reshape(rgba.shape[:2]).astype(np.uint8), "P")
        if opaque:
            palette.putpalette(table[:, :3].reshape(-1).tolist())
        else:
            palette.putpalette(table.reshape(-1).tolist(), rawmode="RGBA")
        forms.append(palette)
    best = None
    for form in forms:
        out = io.BytesIO()
        form.save(out, format="PNG", optimize=True)
        data = out.getvalue()
        with Image.open(io.BytesIO(data)) as back:  # exact, or not used
            if not np.array_equal(np.asarray(back.convert("RGBA")), rgba):
                continue
        if best is None or len(data) < len(best):
            best = data
    if best is None:  # cannot happen for the forms above; the plain one is always exact
        out = io.BytesIO()
        image.save(out, format="PNG")
        best = out.getvalue()
    return best


def write(image, path: Path) -> None:
    """`encode` into a file."""
    Path(path).write_bytes(encode(image))
