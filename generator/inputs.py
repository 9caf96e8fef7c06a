"""Part A's input images and masks: files (the project's own under site_assets/inputs, or a user's)
or MNIST digits.

An image is named by a string: a path (relative to the project folder, or
absolute) to any picture Pillow reads, or `mnist:N`, the N-th MNIST test digit.
A mask is a path to a picture of the same size as its image (white where new
content goes), or `rect:TOP,BOTTOM,LEFT,RIGHT`, a rectangle in fractions of
the height and width (`rect:0,0.4,0,1` is the top 40 %).

`check_image` and `check_mask` run when the parameters are read, before
anything is built, and need only Pillow; `load_image` and `load_mask` give
tensors at the model's size.
"""

from __future__ import annotations

from pathlib import Path

from .errors import UsageError

MNIST_TEST_SIZE = 10000
MAX_PIXELS = (
    8192 * 8192
)  # far more than any model here takes; larger inputs are refused before decoding


def _mnist_index(spec: str) -> int | None:
    if not spec.startswith("mnist:"):
        return None
    digits = spec[len("mnist:") :]
    index = int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 5 else -1
    if not 0 <= index < MNIST_TEST_SIZE:
        raise UsageError(
            f"bad image '{spec}': mnist:N needs N from 0 to {MNIST_TEST_SIZE - 1} (a test digit)"
        )
    return index


def input_path(spec: str, root: Path) -> Path:
    path = Path(spec).expanduser()
    return path if path.is_absolute() else root / path


def image_size(spec: str, root: Path, *, what: str = "image") -> tuple[int, int]:
    """(width, height) of an image file, checked to be readable; MNIST digits are 28×28."""
    if _mnist_index(spec) is not None:
        return (28, 28)
    from PIL import Image

    path = input_path(spec, root)
    if not path.is_file():
        raise UsageError(
            f"{what} '{spec}' not found (looked for {path}); give a path to a picture or mnist:N"
        )
    try:
        with Image.open(
            path
        ) as im:  # Pillow refuses more than MAX_IMAGE_PIXELS × 2 pixels here (a decompression bomb)
            if im.width * im.height > MAX_PIXELS:
                raise ValueError(f"{im.width}×{im.height} pixels, more than {MAX_PIXELS:,}")
            im.verify()  # the file's structure and checksums
        with Image.open(path) as im:
            im.load()  # every pixel decoded: corrupt data shows only here
            return im.size
    except (
        Exception
    ) as e:  # Pillow raises many kinds: OSError, SyntaxError, DecompressionBombError, ValueError...
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(
            f"{what} '{spec}' is not a readable picture ({reason}); give a PNG or JPEG"
        ) from None


def file_digest(spec: str, root: Path) -> str | None:
    """sha256 of the file a spec names (None for mnist:N and rect:), so that a changed file
    changes the cache key."""
    if spec.startswith(("mnist:", "rect:")):
        return None
    from .store import file_hash

    return file_hash(input_path(spec, root))


def check_image(spec: str, root: Path) -> None:
    image_size(spec, root)


def _rect(spec: str) -> tuple[float, float, float, float] | None:
    if not spec.startswith("rect:"):
        return None
    try:
        top, bottom, left, right = (float(v) for v in spec[len("rect:") :].split(","))
    except ValueError:
        top = bottom = left = right = -1.0
    if not (0 <= top < bottom <= 1 and 0 <= left < right <= 1):
        raise UsageError(
            f"bad mask '{spec}': rect:TOP,BOTTOM,LEFT,RIGHT needs fractions with 0 <= top < bottom "
            "<= 1 "
            "and 0 <= left < right <= 1"
        )
    return top, bottom, left, right


def check_mask(spec: str, image: str, root: Path) -> None:
    """A rectangle, or a picture of exactly its image's size."""
    if _rect(spec) is not None:
        return
    size = image_size(spec, root, what="mask")
    expected = image_size(image, root)
    if size != expected:
        raise UsageError(
            f"mask '{spec}' is {size[0]}×{size[1]} but its image '{image}' is "
            f"{expected[0]}×{expected[1]}; "
            "give a mask of the image's size, or rect:TOP,BOTTOM,LEFT,RIGHT"
        )


def load_image(spec: str, root: Path, data_root: Path, shape: tuple[int, int, int]):
    """The image as a (1, C, H, W) tensor in [0, 1] at `shape`: centre-cropped to square, then
    resized."""
    import torch
    from torchvision.transforms import v2

    index = _mnist_index(spec)
    if index is not None:
        from .data import mnist

        image = mnist(data_root, train=False)[0][index]  # (1, 28, 28) in [0, 1]
    else:
        from PIL import Image

        with Image.open(input_path(spec, root)) as im:
            image = v2.functional.to_image(im.convert("RGB")).float() / 255.0  # (3, h, w)
    C, H, W = shape
    side = min(image.shape[-2:])
    image = v2.functional.center_crop(image, [side, side])
    image = v2.functional.resize(image, [H, W], antialias=True).clamp(0, 1)
    if image.shape[0] != C:  # grey → colour repeats the channel; colour → grey takes the luminance
        image = (
            image.repeat(C, 1, 1) if image.shape[0] == 1 else v2.functional.rgb_to_grayscale(image)
        )
    return image.unsqueeze(0).to(torch.float32)


def load_mask(spec: str, root: Path, size: tuple[int, int]):
    """The mask as an (H, W) float tensor of 0 and 1 at `size` (1 where new content goes)."""
    import torch
    from torchvision.transforms import v2

    H, W = size
    rect = _rect(spec)
    if rect is not None:
        top, bottom, left, right = rect
        mask = torch.zeros(H, W)
        mask[round(top * H) : round(bottom * H), round(left * W) : round(right * W)] = 1.0
        return mask
    from PIL import Image

    with Image.open(input_path(spec, root)) as im:
        mask = v2.functional.to_image(im.convert("L")).float() / 255.0  # (1, h, w)
    side = min(mask.shape[-2:])
    mask = v2.functional.center_crop(mask, [side, side])
    mask = v2.functional.resize(mask, [H, W], interpolation=v2.InterpolationMode.NEAREST)
    return (mask[0] > 0.5).float()
