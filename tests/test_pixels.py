"""What the project reads and writes pixel for pixel, by its own code rather than torchvision's
(which a build then need not import): MNIST from its IDX files, animation frames tiled as
make_grid tiles them, and samples.npz at the 8 bits a figure shows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import DATA_DIR

from generator.figures import tile
from generator.image_files import eight_bit
from generator.outputs import SAMPLES, write_samples


@pytest.mark.parametrize("train", [True, False])
def test_mnist_is_read_as_torchvision_reads_it(train):
    if not (DATA_DIR / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file():
        pytest.skip(f"MNIST is not under {DATA_DIR}; set GEN_DATA_DIR")
    from torchvision.datasets import MNIST

    from generator.data import mnist

    images, labels = mnist(DATA_DIR, train)
    theirs = MNIST(str(DATA_DIR), train=train)
    assert images.dtype == torch.float32 and labels.dtype == torch.int64
    assert torch.equal(images, theirs.data.unsqueeze(1).float() / 255)
    assert torch.equal(labels, theirs.targets)


@pytest.mark.parametrize(("count", "nrow", "channels"), [(20, 10, 1), (7, 3, 3), (2, 1, 1)])
def test_tile_lays_images_out_as_make_grid_does(count, nrow, channels):
    from torchvision.utils import make_grid

    images = torch.rand(count, channels, 6, 5, generator=torch.Generator().manual_seed(count))
    grid = make_grid(images, nrow=nrow, padding=2, pad_value=0.5)
    expected = (grid.numpy() * 255).round().astype(np.uint8)
    expected = expected[0] if channels == 1 else expected.transpose(1, 2, 0)
    assert np.array_equal(tile(images, nrow), expected)


def test_eight_bit_keeps_8_bit_images_and_rounds_the_rest_to_the_nearest_level():
    levels = torch.arange(256) / 255
    assert torch.equal(eight_bit(levels), levels)
    assert np.array_equal(eight_bit(levels.numpy()), levels.numpy())
    x = torch.tensor([0.0, 0.3 / 255, 0.6 / 255, 1.0])
    assert torch.allclose(eight_bit(x), torch.tensor([0.0, 0.0, 1 / 255, 1.0]))


def test_samples_npz_keeps_8_bits_a_pixel_and_the_same_arrays_give_the_same_bytes(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((4, 1, 28, 28), dtype=np.float32)
    samples = {"images": images, "labels": np.arange(4), "view": np.array("flip")}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        write_samples(tmp_path / name, samples)
    assert (tmp_path / "a" / SAMPLES).read_bytes() == (tmp_path / "b" / SAMPLES).read_bytes()
    with np.load(tmp_path / "a" / SAMPLES) as back:
        assert back["images"].dtype == np.float32
        assert np.array_equal(back["images"] * 255, np.round(images * 255))
        assert np.array_equal(back["labels"], np.arange(4)) and str(back["view"]) == "flip"
