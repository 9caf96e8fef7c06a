"""Figures: labelled image tables, loss curves, sample grids and sampling animations, as
reproducible files.

matplotlib runs on the Agg backend with fixed dpi and no date or version in the
metadata, so the same images give the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Container, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from . import image_files  # noqa: E402

DPI = 100
_PNG_META = {"Software": None}


def _save(fig, path: Path) -> None:
    """A figure as lossless WebP (`image_files`), from matplotlib's RGBA PNG."""
    from PIL import Image

    out = io.BytesIO()
    fig.savefig(
        out, format="png", dpi=DPI, metadata=_PNG_META, bbox_inches="tight", pad_inches=0.05
    )
    plt.close(fig)
    out.seek(0)
    with Image.open(out) as image:
        image_files.write(image, path)


def _to_hwc(image: torch.Tensor) -> np.ndarray:
    array = image.detach().float().clamp(0, 1).cpu().numpy()
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


MARK = "#2e9d3a"  # the frame of an image that reads as intended


def image_table(
    images: torch.Tensor,
    path: Path,
    *,
    row_labels: Sequence[str] = (),
    col_labels: Sequence[str] = (),
    cell: float = 1.1,
    interpolation: str = "nearest",
    marked: torch.Tensor | None = None,
) -> None:
    """A grid of images (R, K, C, H, W) in [0, 1], with optional row and column labels, and a
    green frame round the cells where `marked` (R, K) is true.

    `nearest` shows small images as crisp pixels; images shown smaller than they are
    want `antialiased`, which filters instead of dropping rows and columns.
    """
    rows, cols = images.shape[:2]
    fig, axes = plt.subplots(
        rows, cols, figsize=(cols * cell + 0.6, rows * cell + 0.3), squeeze=False
    )
    for r in range(rows):
        for k in range(cols):
            ax = axes[r][k]
            ax.imshow(
                _to_hwc(images[r, k]), cmap="gray", vmin=0, vmax=1, interpolation=interpolation
            )
            ax.set_xticks([])
            ax.set_yticks([])
            if marked is not None and marked[r, k]:
                for spine in ax.spines.values():
                    spine.set_color(MARK)
                    spine.set_linewidth(3)
            if r == 0 and col_labels:
                ax.set_title(col_labels[k], fontsize=9)
            if k == 0 and row_labels:
                ax.set_ylabel(row_labels[r], fontsize=9, rotation=0, ha="right", va="center")
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    _save(fig, path)


def loss_curve(
    losses: Sequence[float], path: Path, *, title: str, per_epoch: int | None = None
) -> None:
    """Training loss per iteration on a log scale, with a running mean for reading the trend."""
    losses = np.asarray(losses, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot(np.arange(1, len(losses) + 1), losses, lw=0.6, alpha=0.5, label="per iteration")
    window = max(1, len(losses) // 50)
    if window > 1:
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(window, len(losses) + 1), smooth, lw=1.5, label=f"mean of {window}")
    if per_epoch:
        for boundary in range(per_epoch, len(losses), per_epoch):
            ax.axvline(boundary, color="0.85", lw=0.8, zorder=0)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def digit_shares(shares: dict[str, Sequence[float]], path: Path) -> None:
    """Side-by-side bars: each set's share (0 to 1) of each digit, as percentages."""
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    width = 0.8 / len(shares)
    for k, (name, values) in enumerate(shares.items()):
        x = np.arange(len(values)) + (k - (len(shares) - 1) / 2) * width
        ax.bar(x, 100 * np.asarray(values), width, label=name)
    ax.axhline(3, color="0.4", lw=0.8, ls="--", label="3%")
    ax.set_xticks(np.arange(10))
    ax.set_xlabel("digit read (probability ≥ 0.9)")
    ax.set_ylabel("share of confident readings (%)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def pair_rates(
    rates: dict[tuple[str, str], tuple[float, float]],
    classes: Sequence[str],
    path: Path,
    *,
    rows: str,
    columns: str,
    marked: Container[tuple[str, str]] = (),
) -> None:
    """A table of ordered pairs of classes: the first share (0 to 1) as colour and per cent, the
    second below it in brackets; pairs not tried are blank, and those in `marked` are framed."""
    n = len(classes)
    first = np.full((n, n), np.nan)
    for (a, b), (value, _) in rates.items():
        first[classes.index(a), classes.index(b)] = 100 * value
    fig, ax = plt.subplots(figsize=(0.62 * n + 1.4, 0.55 * n + 0.9))
    ax.imshow(first, cmap="Greens", vmin=0, vmax=100)
    for (a, b), (value, plain) in rates.items():
        i, j = classes.index(a), classes.index(b)
        dark = 100 * value > 60
        ax.text(
            j,
            i,
            f"{100 * value:.0f}\n({100 * plain:.0f})",
            ha="center",
            va="center",
            fontsize=7,
            color="white" if dark else "black",
        )
        if (a, b) in marked:
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec=MARK, lw=2.5))
    ax.set_xticks(range(n), classes)
    ax.set_yticks(range(n), classes)
    ax.set_xlabel(columns)
    ax.set_ylabel(rows)
    _save(fig, path)


def rate_plot(
    x: Sequence[float], rates: dict[str, Sequence[float]], path: Path, *, xlabel: str, title: str
) -> None:
    """Shares (0 to 1) against a swept parameter, one line per kind of reading, as percentages."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for label, values in rates.items():
        ax.plot(x, [100 * v for v in values], marker="o", lw=1.5, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("% of samples")
    ax.set_ylim(-3, 103)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def metric_plot(
    x: Sequence[float],
    y: Sequence[float],
    path: Path,
    *,
    xlabel: str,
    ylabel: str,
    ticks: Sequence[str] | None = None,
) -> None:
    """One metric against a swept parameter (`ticks`: labels of points that are not numbers)."""
    fig, ax = plt.subplots(figsize=(3.6, 2.6))
    ax.plot(x, y, marker="o", lw=1.5)
    if ticks is not None:
        ax.set_xticks(list(x), list(ticks), rotation=30, ha="right", fontsize=7)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_title(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(True, alpha=0.3)
    _save(fig, path)


def compare_methods(rows: Sequence[dict], path: Path) -> None:
    """Fréchet distance and the share read confidently against training time, one line per model
    and method (rows with "model", "method", "train_s", "fid", "confident", and for a guided
    model "confident_right", which is plotted in its place), one point per epoch."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.4))
    lines: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        lines.setdefault((row["model"], row["method"]), []).append(row)
    for (model, method), points in lines.items():
        points = sorted(points, key=lambda r: r["epoch"])
        style = {"ls": "-" if model == "class-conditioned" else "--", "marker": "o", "lw": 1.5}
        color = "C0" if method == "DDPM" else "C1"
        label = f"{method}, {model}"
        t = [r["train_s"] for r in points]
        left.plot(t, [r["fid"] for r in points], color=color, label=label, **style)
        read = [100 * r.get("confident_right", r["confident"]) for r in points]
        right.plot(t, read, color=color, label=label, **style)
    left.set_yscale("log")
    left.set_title("Fréchet distance (lower is better)", fontsize=10)
    right.set_title("% read confidently as a digit (guided: as the one asked for)", fontsize=9)
    right.set_ylim(-3, 103)
    for ax in (left, right):
        ax.set_xlabel("training time (s)")
        ax.grid(True, which="both", alpha=0.3)
    # below the plots, long enough to tell dashes from lines, covering no point
    handles, labels = right.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, handlelength=3.5)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    _save(fig, path)


def actual_size(rows: Sequence[Sequence[torch.Tensor]], path: Path, *, gap: int = 6) -> None:
    """Images (C, h, w) in [0, 1] at one screen pixel per pixel, rows of differently sized
    images, on grey."""
    height = sum(max(im.shape[-2] for im in row) for row in rows) + gap * (len(rows) + 1)
    width = max(sum(im.shape[-1] for im in row) + gap * (len(row) + 1) for row in rows)
    canvas = np.full((height, width), 128, dtype=np.uint8)
    y = gap
    for row in rows:
        x = gap
        for image in row:
            h, w = image.shape[-2:]
            canvas[y : y + h, x : x + w] = image_files.to_uint8(
                image.float().clamp(0, 1).mean(0).numpy()
            )
            x += w + gap
        y += max(im.shape[-2] for im in row) + gap
    save_image(canvas, path)


def tile(images: torch.Tensor, nrow: int, *, pad: int = 2) -> np.ndarray:
    """A uint8 grid (H, W) or (H, W, C) of images (N, C, h, w) in [0, 1], pixel for pixel: `nrow`
    images a row, `pad` grey pixels round each (torchvision's make_grid layout)."""
    array = image_files.to_uint8(images.detach().float().cpu().numpy())
    n, c, h, w = array.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    grid = np.full((c, rows * (h + pad) + pad, cols * (w + pad) + pad), 128, np.uint8)
    for k in range(n):
        y, x = (k // cols) * (h + pad) + pad, (k % cols) * (w + pad) + pad
        grid[:, y : y + h, x : x + w] = array[k]
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)


def save_gif(
    frames: Sequence[np.ndarray], path: Path, *, frame_ms: int = 80, hold_last_ms: int = 1500
) -> None:
    """An endlessly looping GIF; the last frame stays up a while so the result can be read."""
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    durations = [frame_ms] * (len(images) - 1) + [hold_last_ms]
    images[0].save(
        path, save_all=True, append_images=images[1:], duration=durations, loop=0, optimize=False
    )


def save_image(array: np.ndarray, path: Path) -> None:
    """A uint8 array (from `tile`) as a figure, pixel for pixel."""
    image_files.write(array, path)


# Samples a sampling animation shows: one of each digit where digits are asked for, five where none
# is (a1.5, b2.3, f2.3): their frames are mostly noise, which adds bytes and shows nothing more.
ANIMATED = 10
ANIMATED_UNCONDITIONAL = 5


class FrameRecorder:
    """A sampler callback that keeps x_t stacked over x̂0 of the first `count` samples, at the
    steps in `keep` (all: None)."""

    def __init__(self, count: int, keep: Container[int] | None = None):
        self.count = count
        self.keep = keep
        self.frames: list[torch.Tensor] = []  # each (2·count, C, H, W): x_t rows, then x̂0 rows

    def __call__(self, info) -> None:
        if self.keep is None or info.i in self.keep:
            self.frames.append(
                torch.cat([info.x_t[: self.count], info.x0_hat[: self.count]]).float().cpu()
            )


def evenly_spread(total: int, count: int) -> set[int]:
    """`count` step indices spread evenly over 0..total − 1, the first and the last included (all
    of them where count ≥ total)."""
    if count >= total:
        return set(range(total))
    return {round(i * (total - 1) / (count - 1)) for i in range(count)}


def animation(
    frames: Sequence[torch.Tensor],
    path: Path,
    *,
    to_pixels: Callable[[torch.Tensor], torch.Tensor] = lambda x: x,
) -> None:
    """A GIF of recorded frames, pixel for pixel (the page enlarges it): x_t in the top row, the
    estimate x̂0
    below, one frame per recorded step."""
    save_gif([tile(to_pixels(f), nrow=f.shape[0] // 2) for f in frames], path)
