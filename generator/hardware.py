"""What the device computes fast, and what `auto` settings pick from it; torch is imported only for a CUDA device."""

from __future__ import annotations

import functools
from pathlib import Path

BF16_CPU_FLAGS = (
    "avx512_bf16",
    "amx_bf16",
)  # AVX-512 BF16 and AMX: the CPUs that compute bf16 natively


@functools.cache  # every `precision: auto` of every load asks: /proc/cpuinfo is read once per process
def cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def bf16_units(device: str) -> bool:
    """Whether the device computes bf16 natively: a CUDA GPU that says so, or a CPU with AVX-512 BF16 or AMX."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.is_bf16_supported()
    return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)


def choose_precision(device: str) -> tuple[str, str]:
    """`precision: auto`: bf16 autocast where the device has bf16 units, else fp32; with the reason."""
    if device.startswith("cuda"):
        import torch

        if (
            not torch.cuda.is_available()
        ):  # a driver without a GPU torch can use: the build runs on the CPU
            return choose_precision("cpu")
        name = torch.cuda.get_device_name()
        if torch.cuda.is_bf16_supported():
            return "bf16", f"auto: {name} computes bf16 natively"
        return "fp32", f"auto: {name} has no native bf16"
    found = sorted(set(BF16_CPU_FLAGS) & cpu_flags())
    if found:
        return "bf16", f"auto: this CPU has bf16 units ({', '.join(found)})"
    return "fp32", "auto: this CPU has no bf16 units (no avx512_bf16 or amx_bf16 flag)"
