"""An MNIST classifier trained by the project itself, to score generated digits.

Two uses: the share of class-conditioned samples that it assigns to the digit
they were asked for, and a Fréchet distance between the Gaussians fitted to its
penultimate features of two sets of images (the FID of Heusel et al. 2017, with
this small network in place of Inception). Its numbers are only comparable
between runs that use the same classifier weights.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..image_files import eight_bit
from .weights import load_weights, save_weights


@dataclass(frozen=True)
class ClassifierConfig:
    channels: int = 16  # first conv block; the second has 2×
    features: int = 128  # F, the penultimate width used for the Fréchet distance
    dropout: float = 0.25
    num_classes: int = 10

    def to_dict(self) -> dict:
        return asdict(self)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, 1, 1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)
    )


class Classifier(nn.Module):
    def __init__(self, config: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.config = config
        C = config.channels
        self.block1 = _block(1, C)
        self.block2 = _block(C, 2 * C)
        self.dropout = nn.Dropout(config.dropout)
        self.fc1 = nn.Linear(2 * C * 7 * 7, config.features)
        self.fc2 = nn.Linear(config.features, config.num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 1, 28, 28) in [0, 1] → (B, F) penultimate activations."""
        h = self.block1(x)  # (B, C, 14, 14)
        h = self.block2(h)  # (B, 2C, 7, 7)
        h = self.dropout(h.flatten(1))  # (B, 2C·49)
        return F.relu(self.fc1(h))  # (B, F)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(self.embed(x)))  # (B, classes) logits


def shifted(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Each image moved by a whole number of pixels, up to `max_shift` each way, with zeros
    coming in: the augmentation that lets a small CNN pass 99% on MNIST."""
    n = x.shape[0]
    offsets = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=generator)  # (n, [dx, dy])
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, :, 2] = -2.0 * offsets.float() / x.shape[-1]  # whole pixels in [-1, 1] coordinates
    grid = F.affine_grid(theta, list(x.shape), align_corners=False).to(x.device)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def shrunk(x: torch.Tensor, share: float, generator: torch.Generator) -> torch.Tensor:
    """About `share` of the images seen from afar: shrunk to a half, a third or a quarter of
    their size and enlarged back, as Part A's hybrids are read. Without it, a classifier that
    reads 99% of test digits reads under half of them at 7×7."""
    n, size = x.shape[0], x.shape[-1]
    far = torch.rand(n, generator=generator) < share
    factor = torch.randint(2, 5, (n,), generator=generator)
    out = x.clone()
    for f in (2, 3, 4):
        pick = (far & (factor == f)).nonzero().flatten().to(x.device)
        if len(pick):
            small = F.interpolate(x[pick], size=size // f, mode="area")
            out[pick] = F.interpolate(small, size=size, mode="bilinear", align_corners=False)
    return out


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    device: str,
    max_shift: int = 0,
    far_share: float = 0.0,
    config: ClassifierConfig = ClassifierConfig(),
    progress=lambda it, **kw: it,
) -> Classifier:
    """Adam on cross-entropy with a OneCycle learning rate, on images shifted by up to `max_shift`
    pixels and a `far_share` of them seen from afar; returns the model in eval mode.

    Weights, shuffling and dropout all follow `generator`: the global RNG is
    seeded from it inside `torch.random.fork_rng` (nn.Dropout and the default
    initialisers take no generator) and restored afterwards.
    """
    n = images.shape[0]
    steps_per_epoch = (n + batch_size - 1) // batch_size
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Classifier(config).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch
        )
        model.train()
        for epoch in range(1, epochs + 1):
            order = torch.randperm(n, generator=generator)
            for step in progress(range(steps_per_epoch), desc=f"classifier epoch {epoch}/{epochs}"):
                index = order[step * batch_size : (step + 1) * batch_size]
                x, y = images[index].to(device), labels[index].to(device)  # (b, 1, 28, 28), (b,)
                if max_shift:
                    x = shifted(x, max_shift, generator)
                if far_share:
                    x = shrunk(x, far_share, generator)
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
    return model.eval()


@torch.no_grad()
def _batched(fn, model: Classifier, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """`fn` over batches of `x` at 8 bits a pixel: what a page shows and samples.npz keeps (MNIST's
    own digits are 8-bit already)."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat(
        [
            fn(eight_bit(x[i : i + batch_size]).to(device)).float().cpu()
            for i in range(0, x.shape[0], batch_size)
        ]
    )


def features(model: Classifier, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """(N, 1, 28, 28) in [0, 1] → (N, F) penultimate activations, for the Fréchet distance."""
    return _batched(model.embed, model, x, batch_size)


def predict(model: Classifier, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """(N, 1, 28, 28) in [0, 1] → (N,) predicted digits."""
    return read(model, x, batch_size)[0]


def read(model: Classifier, x: torch.Tensor, batch_size: int = 1000):
    """(N, 1, 28, 28) in [0, 1] → (N,) predicted digits and (N,) their probabilities."""
    probability, digits = _batched(model, model, x, batch_size).softmax(1).max(1)
    return digits, probability


def read_and_features(model: Classifier, x: torch.Tensor, batch_size: int = 1000):
    """`read` and `features` in one pass: (N,) digits, (N,) their probabilities, (N, F)
    features."""

    def both(batch: torch.Tensor) -> torch.Tensor:  # forward's own steps, the features kept
        feats = model.embed(batch)
        return torch.cat([feats, model.fc2(feats)], 1)

    out = _batched(both, model, x, batch_size)
    size = model.config.features
    probability, digits = out[:, size:].softmax(1).max(1)
    return digits, probability, out[:, :size]


def frechet_distance(
    feats_a: torch.Tensor | np.ndarray, feats_b: torch.Tensor | np.ndarray
) -> float:
    """‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2(Σ_a Σ_b)^½) between Gaussians fitted to two (N, F) sets
    (Heusel et al. 2017).

    The matrix square root comes from scipy.linalg.sqrtm in float64. Σ_a Σ_b is
    not symmetric, and rounding gives its root a tiny imaginary part (and
    near-singular covariances, from features that are always 0 after the ReLU,
    a slightly negative total): we keep the real part, as the reference FID
    code does, silence scipy's singular-matrix warning, and clamp at 0.
    """
    from scipy import linalg

    a = np.asarray(feats_a, dtype=np.float64)
    b = np.asarray(feats_b, dtype=np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)  # (F,)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)  # (F, F)
    with (
        warnings.catch_warnings()
    ):  # dead ReLU features make Σ singular; sqrtm still returns a usable root
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(cov_a @ cov_b)
    root = np.real(root)
    distance = float(
        ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(root)
    )
    return max(distance, 0.0)


def save_classifier(model: Classifier, path: Path, **meta) -> None:
    save_weights(model, path, "classifier", **meta)


def load_classifier(path: Path, device: str = "cpu") -> Classifier:
    return load_weights(
        lambda config: Classifier(ClassifierConfig(**config)), path, "classifier", device
    )


# ---------------------------------------------------------------- the scorer: the classifier and
# the test set's features

CONFIDENT = 0.9  # a digit is read confidently when the classifier gives it this probability
SCORER_WEIGHTS = "classifier.safetensors"
SCORER_REFERENCE = "test_features.npz"


def save_scorer(folder: Path, model: Classifier, reference: np.ndarray, labels: np.ndarray) -> None:
    """The classifier and the features of the reference set (the MNIST test digits) that Fréchet
    distances compare with."""
    save_classifier(model, folder / SCORER_WEIGHTS)
    np.savez(folder / SCORER_REFERENCE, features=reference, labels=labels)


class Scorer:
    """A saved classifier that reads generated digits and measures their Fréchet distance to the
    reference set."""

    def __init__(self, folder: Path, device: str):
        self.model = load_classifier(folder / SCORER_WEIGHTS, device)
        self.reference = np.load(folder / SCORER_REFERENCE)["features"]

    def frechet(self, images: torch.Tensor) -> float:
        return frechet_distance(features(self.model, images).double().numpy(), self.reference)

    def read(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N,) the digit read in each image, and (N,) the probability the classifier gives it."""
        return read(self.model, images)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.read(images)[0]

    def confident(self, images: torch.Tensor) -> torch.Tensor:
        """1.0 where the classifier reads some digit with probability ≥ CONFIDENT, else 0.0."""
        return (self.read(images)[1] >= CONFIDENT).float()

    def sure(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """1.0 where an image is read confidently as its label, else 0.0."""
        digits, probability = self.read(images)
        return ((digits == labels) & (probability >= CONFIDENT)).float()
