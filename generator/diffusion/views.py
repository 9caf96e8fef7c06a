"""Views for visual anagrams: orthogonal transforms of an image and their inverses (Geng et al.
2024).

A view acts on the model's own space, a (B, C, H, W) tensor exactly as the
denoiser sees it, not on the picture a person looks at. For the spatial views
(flips, rotations, transpose) that makes no difference. For `negate` it does:
x → −x is colour inversion only where the model's pixels are centred on zero,
as DeepFloyd IF's are ([−1, 1]); for a model trained on pixels in [0, 1] (the
MNIST models of Part B), −x is an image the model has never seen, and the
colour inversion of such an image is 1 − x, which is not orthogonal and does
not keep noise Gaussian with the same variance. Use `negate` only on a model
whose space is centred on zero.

Rotations by 90° and the transpose swap H and W, so they need square images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Tensor = torch.Tensor


@dataclass(frozen=True)
class View:
    name: str
    apply: Callable[[Tensor], Tensor]  # (B, C, H, W) -> (B, C, H, W) image as seen under the view
    inverse: Callable[[Tensor], Tensor]  # undoes `apply`: inverse(apply(x)) == x
    negates: bool = (
        False  # True where the view flips signs: a magnitude (a variance map) keeps its sign
    )

    def inverse_variance(self, v: Tensor) -> Tensor:
        """Map a per-pixel variance output back through the view: its spatial part only, never
        its sign."""
        out = self.inverse(v)
        return -out if self.negates else out


def _flip(x: Tensor) -> Tensor:
    return x.flip(-2)  # upside down: reverse the rows (H)


def _rot180(x: Tensor) -> Tensor:
    return x.rot90(2, dims=(-2, -1))


def _rot90cw(x: Tensor) -> Tensor:
    return x.rot90(-1, dims=(-2, -1))  # torch.rot90 with k > 0 turns counter-clockwise as displayed


def _rot90ccw(x: Tensor) -> Tensor:
    return x.rot90(1, dims=(-2, -1))


def _negate(x: Tensor) -> Tensor:
    return -x


def _transpose(x: Tensor) -> Tensor:
    return x.transpose(-2, -1)


def _identity(x: Tensor) -> Tensor:
    return x


VIEWS: dict[str, View] = {
    view.name: view
    for view in (
        View("identity", _identity, _identity),
        View("flip", _flip, _flip),
        View("rot180", _rot180, _rot180),
        View("rot90cw", _rot90cw, _rot90ccw),
        View("rot90ccw", _rot90ccw, _rot90cw),
        View("negate", _negate, _negate, negates=True),
        View("transpose", _transpose, _transpose),
    )
}


def get_view(name: str) -> View:
    """The registered view called `name`; an unknown name raises ValueError listing the valid
    ones."""
    try:
        return VIEWS[name]
    except KeyError:
        raise ValueError(f"unknown view {name!r}; valid views: {', '.join(VIEWS)}") from None
