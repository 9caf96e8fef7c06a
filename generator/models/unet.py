"""The Part B UNets: unconditional, time-conditioned and class-conditioned, one class.

Follows the course's design (CS180 project 5B): two downsamplings 28→14→7, a
bottleneck flattened to 1×1, skip connections by concatenation. Conditioning
enters at two places, after the unflatten (2D channels) and after the first
upsampling block (D channels): `unflatten ← c1·unflatten + t1`,
`up1 ← c2·up1 + t2`. The flow-matching version's time-only UNet scales instead
(`time_modulation="multiplicative"`): `unflatten ← t1·unflatten`, `up1 ← t2·up1`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class UNetConfig:
    hidden: int = 128  # D, the channel width; the bottleneck has 2D
    in_channels: int = 1
    time_conditioned: bool = False  # takes t/T in [0, 1]
    num_classes: int = 0  # 0: no class conditioning; 10 for MNIST digits
    # How t enters a time-only UNet: "additive" (the DDPM write-up) or "multiplicative" (the
    # flow-matching course page); with classes, c scales and t shifts either way.
    time_modulation: str = "additive"

    def __post_init__(self):
        if self.time_modulation not in ("additive", "multiplicative"):
            raise ValueError(
                f"time_modulation is additive or multiplicative, not {self.time_modulation!r}"
            )
        if self.time_modulation == "multiplicative" and (
            self.num_classes or not self.time_conditioned
        ):
            raise ValueError("multiplicative time modulation is for a time-only UNet")

    def to_dict(self) -> dict:
        found = asdict(self)
        if self.time_modulation == "additive":  # the DDPMs' weight files stay as they were
            del found["time_modulation"]
        return found


def _conv_bn_gelu(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(channels), nn.GELU())


def Conv(c_in, c_out):  # keeps the size
    return _conv_bn_gelu(nn.Conv2d(c_in, c_out, 3, 1, 1), c_out)


def DownConv(c_in, c_out):  # halves the size
    return _conv_bn_gelu(nn.Conv2d(c_in, c_out, 3, 2, 1), c_out)


def UpConv(c_in, c_out):  # doubles the size
    return _conv_bn_gelu(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), c_out)


def Flatten():  # 7×7 → 1×1
    return nn.Sequential(nn.AvgPool2d(7), nn.GELU())


def Unflatten(channels):  # 1×1 → 7×7
    return _conv_bn_gelu(nn.ConvTranspose2d(channels, channels, 7, 7, 0), channels)


def ConvBlock(c_in, c_out):
    return nn.Sequential(Conv(c_in, c_out), Conv(c_out, c_out))


def DownBlock(c_in, c_out):
    return nn.Sequential(DownConv(c_in, c_out), ConvBlock(c_out, c_out))


def UpBlock(c_in, c_out):
    return nn.Sequential(UpConv(c_in, c_out), ConvBlock(c_out, c_out))


def FCBlock(f_in, f_out):
    return nn.Sequential(nn.Linear(f_in, f_out), nn.GELU(), nn.Linear(f_out, f_out))


class UNet(nn.Module):
    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        D, c = config.hidden, config.in_channels
        self.conv_in = ConvBlock(c, D)
        self.down1 = DownBlock(D, D)
        self.down2 = DownBlock(D, 2 * D)
        self.flatten = Flatten()
        self.unflatten = Unflatten(2 * D)
        self.up1 = UpBlock(4 * D, D)
        self.up2 = UpBlock(2 * D, D)
        self.conv_out = ConvBlock(2 * D, D)
        self.head = nn.Conv2d(D, c, 3, 1, 1)
        if config.time_conditioned:
            self.fc1_t = FCBlock(1, 2 * D)
            self.fc2_t = FCBlock(1, D)
        if config.num_classes:
            self.fc1_c = FCBlock(config.num_classes, 2 * D)
            self.fc2_c = FCBlock(config.num_classes, D)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor | None = None, c: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x: (B, C, 28, 28); t: (B,) in [0, 1] (t/T); c: (B, classes) one-hot, or zeros for 'no
        class'."""
        cfg = self.config
        if cfg.time_conditioned != (t is not None):
            raise ValueError("pass t exactly when the UNet is time-conditioned")
        if c is not None and not cfg.num_classes:
            raise ValueError("this UNet takes no class")

        x0 = self.conv_in(x)  # (B, D, 28, 28)
        x1 = self.down1(x0)  # (B, D, 14, 14)
        x2 = self.down2(x1)  # (B, 2D, 7, 7)
        h = self.unflatten(self.flatten(x2))  # (B, 2D, 7, 7)

        c1 = c2 = 1.0
        t1 = t2 = 0.0
        if cfg.num_classes:
            if c is None:  # no class is the all-zero one-hot vector, as in training with p_uncond
                c = x.new_zeros(x.shape[0], cfg.num_classes)
            c1 = self.fc1_c(c)[:, :, None, None]  # (B, 2D, 1, 1)
            c2 = self.fc2_c(c)[:, :, None, None]  # (B, D, 1, 1)
        if cfg.time_conditioned:
            t = t.reshape(-1, 1).to(x.dtype)
            t1 = self.fc1_t(t)[:, :, None, None]  # (B, 2D, 1, 1)
            t2 = self.fc2_t(t)[:, :, None, None]  # (B, D, 1, 1)

        if cfg.time_modulation == "multiplicative":
            c1, c2, t1, t2 = t1, t2, 0.0, 0.0  # time scales where a class would
        h = c1 * h + t1
        h = self.up1(torch.cat([h, x2], dim=1))  # (B, D, 14, 14)
        h = c2 * h + t2
        h = self.up2(torch.cat([h, x1], dim=1))  # (B, D, 28, 28)
        h = self.conv_out(torch.cat([h, x0], dim=1))  # (B, D, 28, 28)
        return self.head(h)  # (B, C, 28, 28)


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The class input c: (B,) labels → (B, classes) one-hot rows; the all-zero row is "no
    class"."""
    return F.one_hot(labels.long(), num_classes).float()


def layer_table(model: nn.Module) -> list[dict]:
    """Top-level blocks with their parameter counts, read off the model."""
    rows = []
    for name, module in model.named_children():
        rows.append(
            {
                "name": name,
                "layers": " → ".join(
                    type(m).__name__ for m in module.modules() if not list(m.children())
                ),
                "params": sum(p.numel() for p in module.parameters()),
            }
        )
    return rows


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
