"""Image files: figures as lossless WebP, and the 8-bit pixels they hold.

Every figure and viewer image is written as lossless WebP: the very pixels of the smallest exact
PNG (grey, RGB or palette) in about three quarters of its bytes, and under half for matplotlib's
plots, whose antialiased lines hold thousands of colours. Each file is decoded again before it is
kept, and the same image always gives the same bytes. Sampling animations stay GIFs (`figures`).
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


SUFFIX = ".webp"  # a figure's file: every still figure and viewer image

# libwebp's effort (method 0–6) and, for lossless, quality 0–100 (how hard it searches). Measured
# on the published figures: method 4 at quality 100 is 28% smaller than the smallest PNGs and
# quicker to write than them; method 6 gains 1% more at 40 times the time.
_WEBP = {"lossless": True, "method": 4, "quality": 100, "exact": True}


def _rgba(image):
    import numpy as np
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    return image, np.asarray(image.convert("RGBA"))


def encode(image) -> bytes:
    """A PIL image (or a uint8 array (H, W), (H, W, 3) or (H, W, 4)) as lossless WebP, checked to
    decode to the same pixels."""
    import numpy as np
    from PIL import Image

    image, rgba = _rgba(image)
    opaque = bool((rgba[..., 3] == 255).all())
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba[..., :3] if opaque else rgba)).save(
        out, format="WEBP", **_WEBP
    )
    data = out.getvalue()
    with Image.open(io.BytesIO(data)) as back:
        if not np.array_equal(np.asarray(back.convert("RGBA")), rgba):
            raise ValueError("lossless WebP did not keep every pixel")
    return data


def write(image, path: Path) -> None:
    """`encode` into a file, whose name ends in SUFFIX (a figure named otherwise is a mistake)."""
    path = Path(path)
    if path.suffix != SUFFIX:
        raise ValueError(f"{path.name}: figures are written as {SUFFIX} files")
    path.write_bytes(encode(image))


def encode_png(image) -> bytes:
    """The smallest exact PNG of a PIL image: for figures of entries made before figures were
    WebP, which keep the names their records give them."""
    import numpy as np
    from PIL import Image

    image, rgba = _rgba(image)
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
