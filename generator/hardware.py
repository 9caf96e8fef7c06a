"""What the machine has and what `auto` settings pick from it: the one place that detects devices.

torch is imported only where a CUDA GPU may be there (an NVIDIA driver is loaded), so that `gen
list` and a fully cached build stay instant.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

DEVICES = ("auto", "cpu", "cuda")  # --device
PRECISIONS = ("fp32", "bf16")  # what `precision: auto` may become
PRECISION_VARIABLE = "GEN_PRECISION"  # forces `precision: auto` (a test run in fp32, then in bf16)
BF16_CPU_FLAGS = (
    "avx512_bf16",
    "amx_bf16",
)  # AVX-512 BF16 and AMX: the CPUs that compute bf16 natively


def nvidia_driver_present() -> bool:
    """An NVIDIA driver is loaded (Linux, containers with the GPU passed through) or WSL's GPU
    device is there. Without one, torch cannot see a CUDA GPU, so nothing need import torch to
    know."""
    return any(
        os.path.exists(p) for p in ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/dxg")
    )


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU; torch (seconds to import) is asked only where a driver is."""
    if not nvidia_driver_present():
        return False
    import torch

    return torch.cuda.is_available()


def device_problem(device: str) -> str | None:
    """What is wrong with --device before anything runs (asking the driver, not torch), or None."""
    if device not in DEVICES:
        return f"unknown device '{device}'; valid: {', '.join(DEVICES)}"
    if device == "cuda" and not nvidia_driver_present():
        return "--device cuda, but this machine has no NVIDIA driver; use --device cpu or auto"
    return None


def resolve_device(device: str) -> str:
    """auto → cuda where torch sees a GPU, else cpu. Raises ValueError for cuda without one."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but torch sees no CUDA GPU here; use --device cpu or auto")
    return device


def device_name(device: str) -> str:
    """The device as a record names it: cpu, or cuda with the GPU's name."""
    if device == "cuda":
        import torch

        return f"cuda ({torch.cuda.get_device_name()})"
    return device


# Every `precision: auto` of every load asks: /proc/cpuinfo is read once per process.
@functools.cache
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
    """Whether the device computes bf16 natively: a CUDA GPU that says so, or a CPU with AVX-512
    BF16 or AMX."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.is_bf16_supported()
    return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)


def forced_precision() -> str | None:
    """GEN_PRECISION, where it is set: what every `precision: auto` becomes. Raises ValueError for a
    value that is no precision."""
    value = os.environ.get(PRECISION_VARIABLE, "").strip()
    if not value:
        return None
    if value not in PRECISIONS:
        raise ValueError(
            f"{PRECISION_VARIABLE}={value!r} is no precision; set it to "
            f"{' or '.join(PRECISIONS)}, or unset it to let the device choose"
        )
    return value


def choose_precision(device: str) -> tuple[str, str]:
    """`precision: auto`: GEN_PRECISION where it is set, else bf16 autocast where the device has
    bf16 units, else fp32; with the reason."""
    forced = forced_precision()
    if forced:
        return forced, f"auto: {PRECISION_VARIABLE}={forced}"
    if device.startswith("cuda"):
        import torch

        if (
            not torch.cuda.is_available()
        ):  # a driver without a usable GPU: the build runs on the CPU
            return choose_precision("cpu")
        name = torch.cuda.get_device_name()
        if torch.cuda.is_bf16_supported():
            return "bf16", f"auto: {name} computes bf16 natively"
        return "fp32", f"auto: {name} has no native bf16"
    found = sorted(set(BF16_CPU_FLAGS) & cpu_flags())
    if found:
        return "bf16", f"auto: this CPU has bf16 units ({', '.join(found)})"
    return "fp32", "auto: this CPU has no bf16 units (no avx512_bf16 or amx_bf16 flag)"


# Part B's fast paths: each a setting `auto`, `on` or `off`, chosen per device as precision is.
FAST_PATHS = ("channels_last", "compile", "data_on_device")
MEASURED = "fast_paths.json"  # in the cache folder: what `gen bench` measured of them, per GPU
FASTER = 1.05  # a path measured at least this much faster than the plain loop is worth it


def read_measured(cache: Path) -> dict:
    """The fast paths' last measurement in the cache folder ({} for none, or one unreadable)."""
    import json

    try:
        return json.loads((cache / MEASURED).read_text())
    except (OSError, ValueError):
        return {}


def _measured_ratio(name: str, measured: dict | None) -> tuple[float, str] | None:
    """The slowest-model ratio of `name` over the plain loop that `gen bench` measured on this
    GPU, and the GPU's name; None where it was not measured on this GPU."""
    import torch

    gpu = torch.cuda.get_device_name()
    ratios = (measured or {}).get("train", {}).get(name)
    if not ratios or (measured or {}).get("gpu") != gpu:
        return None
    return min(ratios.values()), gpu


def choose_fast_path(name: str, device: str, measured: dict | None = None) -> tuple[str, str]:
    """`auto` for one of FAST_PATHS on `device` ("cpu" or "cuda"): on or off, with the reason.
    `measured`: what `gen bench` saved (MEASURED); on the GPU it measured, torch.compile is on
    where every model trained faster with it."""
    cuda = device.startswith("cuda") and cuda_available()
    if name == "data_on_device":
        if cuda:
            return "on", "auto: the training digits are copied to the GPU once, not every batch"
        return "off", "auto: on the CPU the digits are where the model is already"
    if name == "channels_last":
        if cuda:
            return "on", "auto: the GPU's tensor cores convolve channels-last without transposes"
        return "off", "auto: on the CPU channels-last measured 1.02× the default layout (noise)"
    if name == "compile":
        found = _measured_ratio(name, measured) if cuda else None
        if found and found[0] >= FASTER:
            return "on", f"auto: gen bench measured it {found[0]:.2f}× the eager loop on {found[1]}"
        if found:
            return (
                "off",
                f"auto: gen bench measured it {found[0]:.2f}× the eager loop on {found[1]}",
            )
        # Unmeasured: it compiles for minutes on a CPU, where it measured 0.92×, and each of a
        # build's trainings would pay the compile.
        return "off", "auto: torch.compile is not measured faster here (gen bench measures it)"
    raise ValueError(f"unknown fast path {name!r}")


def to_device(values, device):
    """A tensor drawn on the CPU, on `device`. To a GPU it goes from pinned memory without
    waiting: a copy from ordinary memory first waits for every step the GPU has queued."""
    import torch

    if torch.device(device).type != "cuda" or values.device.type == "cuda":
        return values.to(device)
    return values.pin_memory().to(device, non_blocking=True)


def torch_threads() -> int:
    """The threads torch computes with in this process (its default: the physical cores)."""
    import torch

    return torch.get_num_threads()


def blas_threads() -> int:
    """The threads numpy's BLAS (OpenBLAS) computes with in this process: what its environment
    variables say, else every core this process may use."""
    for name in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
