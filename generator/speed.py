"""The settings that choose how fast Part B's UNets run: precision and the fast paths.

Each is `auto` in gen.yaml, chosen per device before anything is keyed (hardware.py picks,
config.py records the choice and its reason in every record), or set by hand.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

Precision = Annotated[
    Literal["auto", "fp32", "bf16"],
    Field(
        description="fp32, bf16 autocast, or auto: bf16 where the device computes it natively, "
        "else fp32"
    ),
]

Switch = Literal["auto", "on", "off"]
ChannelsLast = Annotated[
    Switch,
    Field(
        description="the UNet's tensors channels-last (NHWC); auto: on a CUDA GPU, off on the CPU"
    ),
]
Compile = Annotated[
    Switch,
    Field(description="torch.compile the UNet; auto: off until measured faster (gen bench)"),
]
DataOnDevice = Annotated[
    Switch,
    Field(
        description="copy the training digits to the device once, not a batch at a time; auto: "
        "on a CUDA GPU"
    ),
]


def speed_identity(found: dict, added: tuple[str, ...]) -> dict:
    """A section's identity without the speed settings that leave results as they were: where
    the digits are batched from (the same numbers either way), and each setting of `added` (those
    that came after the section's first results) at its plain value, fp32 or off, so that results
    made before it existed keep their keys."""
    found = {k: v for k, v in found.items() if k != "data_on_device"}
    for name in added:
        if found.get(name) in ("fp32", "off"):
            del found[name]
    return found
